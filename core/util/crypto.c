/* Thin wrappers over OpenSSL's libcrypto: SHA-1, SHA-512, HMAC-SHA512, PBKDF2-HMAC-SHA512, base64,
 * random bytes, constant-time comparison and wiping. Owns no state; the base64 decoder is written out here
 * because EVP_DecodeBlock neither checks padding nor reports the decoded length exactly. */
#include "util/crypto.h"

#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "util/err.h"

int crypto_sha512(const void *a, size_t alen, const void *b, size_t blen,
                  unsigned char out[CRYPTO_SHA512_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, a, alen) == 1 &&
             (blen == 0 || EVP_DigestUpdate(ctx, b, blen) == 1) &&
             EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == CRYPTO_SHA512_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : TIDE_EIO;
}

int crypto_sha1(const void *a, size_t alen, const void *b, size_t blen,
                unsigned char out[CRYPTO_SHA1_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, a, alen) == 1 &&
             (blen == 0 || EVP_DigestUpdate(ctx, b, blen) == 1) &&
             EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == CRYPTO_SHA1_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : TIDE_EIO;
}

int crypto_hmac_sha512(const void *key, size_t klen, const void *a, size_t alen, const void *b,
                       size_t blen, unsigned char out[CRYPTO_SHA512_LEN])
{
    char digest[] = "SHA512";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    size_t n = 0;
    int ok = ctx && EVP_MAC_init(ctx, key, klen, params) == 1 &&
             EVP_MAC_update(ctx, a, alen) == 1 &&
             (blen == 0 || EVP_MAC_update(ctx, b, blen) == 1) &&
             EVP_MAC_final(ctx, out, &n, CRYPTO_SHA512_LEN) == 1 && n == CRYPTO_SHA512_LEN;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok ? 0 : TIDE_EIO;
}

int crypto_pbkdf2_sha512(const void *pass, size_t plen, const void *salt, size_t slen,
                         uint32_t iterations, unsigned char *out, size_t outlen)
{
    if (plen > INT_MAX || slen > INT_MAX || outlen > INT_MAX || iterations == 0 ||
        iterations > INT_MAX)
        return TIDE_EINVAL;
    if (PKCS5_PBKDF2_HMAC(pass, (int)plen, salt, (int)slen, (int)iterations, EVP_sha512(),
                          (int)outlen, out) != 1)
        return TIDE_EIO;
    return 0;
}

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t crypto_base64_encode(const void *in, size_t n, char *out, size_t outlen)
{
    const unsigned char *p = in;
    size_t need = CRYPTO_BASE64_LEN(n);
    if (n > (SIZE_MAX - 3) / 4 * 3 - 3 || outlen < need + 1)
        return 0;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* Value of one base64 character, or -1. */
static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int crypto_base64_decode(const char *in, size_t n, unsigned char *out, size_t outcap,
                         size_t *outlen)
{
    size_t pad = 0;
    if (n % 4 == 0 && n >= 4) {
        if (in[n - 1] == '=')
            pad++;
        if (in[n - 2] == '=')
            pad++;
        if (pad == 1 || pad == 2) /* "x===" is not base64; neither is "==" inside the data */
            n -= pad;
    }
    if (n % 4 == 1)
        return TIDE_EINVAL;
    size_t total = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (total > outcap)
        return TIDE_ETOOBIG;
    uint32_t acc = 0;
    size_t bits = 0, o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = sextet((unsigned char)in[i]);
        if (v < 0)
            return TIDE_EINVAL;
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *outlen = o;
    return 0;
}

int crypto_random(void *out, size_t n)
{
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        if (RAND_bytes(out, chunk) != 1)
            return TIDE_EIO;
        out = (unsigned char *)out + chunk;
        n -= (size_t)chunk;
    }
    return 0;
}

bool crypto_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void crypto_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}
