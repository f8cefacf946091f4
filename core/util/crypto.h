/* Thin wrappers over OpenSSL's libcrypto for the password file and its tool (and SHA-1 for the
 * WebSocket handshake): SHA-512, HMAC-SHA512, PBKDF2-HMAC-SHA512, base64, random bytes,
 * constant-time comparison and wiping. The only file
 * that includes OpenSSL headers apart from tls.c. No I/O (except the CSPRNG), no logging,
 * thread-safe. */
#ifndef TIDE_UTIL_CRYPTO_H
#define TIDE_UTIL_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA512_LEN 64
#define CRYPTO_SHA1_LEN 20

/* Characters base64 needs for n bytes, with '=' padding, without the NUL. */
#define CRYPTO_BASE64_LEN(n) ((((n) + 2) / 3) * 4)

/* SHA-512 of a followed by b (b may be NULL when blen is 0) into out (64 bytes). Returns 0, or
 * TIDE_EIO if libcrypto fails. Borrows everything. */
int crypto_sha512(const void *a, size_t alen, const void *b, size_t blen,
                  unsigned char out[CRYPTO_SHA512_LEN]);

/* SHA-1 of a followed by b (b may be NULL when blen is 0) into out (20 bytes). Only for protocols
 * that fix it and need no collision resistance (the WebSocket handshake's Sec-WebSocket-Accept,
 * RFC 6455 4.2.2). Returns 0, or TIDE_EIO if libcrypto fails. Borrows everything. */
int crypto_sha1(const void *a, size_t alen, const void *b, size_t blen,
                unsigned char out[CRYPTO_SHA1_LEN]);

/* HMAC-SHA512 under key of a followed by b (b may be NULL when blen is 0) into out (64 bytes).
 * Returns 0, or TIDE_EIO if libcrypto fails. Borrows everything. */
int crypto_hmac_sha512(const void *key, size_t klen, const void *a, size_t alen, const void *b,
                       size_t blen, unsigned char out[CRYPTO_SHA512_LEN]);

/* PBKDF2-HMAC-SHA512 (RFC 8018) of pass with salt and iterations (>= 1), writing outlen bytes.
 * CPU-bound: at 210000 iterations this takes tens to hundreds of milliseconds, so the broker calls
 * it only off the loop thread. Returns 0, TIDE_EINVAL for a length above INT_MAX or zero
 * iterations, or TIDE_EIO if libcrypto fails. */
int crypto_pbkdf2_sha512(const void *pass, size_t plen, const void *salt, size_t slen,
                         uint32_t iterations, unsigned char *out, size_t outlen);

/* Encodes n bytes as standard base64 with '=' padding and no line breaks, NUL-terminated, into
 * out, which must hold CRYPTO_BASE64_LEN(n) + 1 bytes. Returns the number of characters written
 * (without the NUL), or 0 when outlen is too small (out is then left untouched). */
size_t crypto_base64_encode(const void *in, size_t n, char *out, size_t outlen);

/* Decodes standard base64 (RFC 4648 alphabet; '=' padding optional but, when present, exact; no
 * whitespace) from in[0..n) into out. Returns 0 and sets *outlen, or TIDE_EINVAL for a character
 * outside the alphabet, bad padding or a length that cannot be base64, or TIDE_ETOOBIG when the
 * result does not fit in outcap bytes (out may then be partly written). */
int crypto_base64_decode(const char *in, size_t n, unsigned char *out, size_t outcap,
                         size_t *outlen);

/* Fills out with n bytes from the operating system's CSPRNG (via RAND_bytes). Returns 0, or
 * TIDE_EIO if no randomness is available. */
int crypto_random(void *out, size_t n);

/* True if a and b hold the same n bytes. Takes the same time for every pair of inputs of length
 * n, so it leaks no prefix length (CRYPTO_memcmp). */
bool crypto_equal(const void *a, const void *b, size_t n);

/* Overwrites n bytes at p with zeros in a way the compiler cannot elide (OPENSSL_cleanse). For
 * passwords and derived keys before their memory is freed or reused. */
void crypto_wipe(void *p, size_t n);

#endif
