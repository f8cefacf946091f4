/* Password files in mosquitto_passwd format: parse one into a table, verify a user's password
 * against its `$6$` (salted SHA-512) or `$7$` (PBKDF2-HMAC-SHA512) entry in constant time, and
 * encode new `$7$` hashes. Pure: the only I/O is reading the file in passwd_load_file; never logs
 * and never puts a password or a hash into an error message.
 *
 * File format (what Mosquitto 2.0 reads and mosquitto_passwd writes), one entry per line:
 *     USER:$7$ITERATIONS$SALT$HASH        PBKDF2-HMAC-SHA512, ITERATIONS >= 1
 *     USER:$6$SALT$HASH                   SHA-512(password || salt)
 * SALT and HASH are standard base64 with padding; HASH decodes to 64 bytes, SALT to 1..64 bytes
 * (mosquitto_passwd and tidemq write 12). USER and the hash are trimmed of surrounding blanks,
 * lines whose first non-blank character is '#' and blank lines are skipped, CR-LF is accepted.
 * tidemq is stricter than Mosquitto, which drops bad entries with a log line: any malformed line,
 * a plain-text password, an unknown hash type or a duplicate user fails the whole load with
 * "file:line: why", so a reload keeps the previous table instead of locking users out.
 *
 * Threads: a loaded table is read-only except for the verification cache (passwd_cache_*), which
 * the loop thread alone touches. The slow check runs on a self-contained struct passwd_check that
 * holds no pointer into the table, so a worker thread may run it while the loop reloads and frees
 * the table. Typical CONNECT flow on the loop thread:
 *     rc = passwd_cache_lookup(pw, user, ulen, pass, plen);     // fast: 0 / TIDE_EBADAUTH
 *     if (rc == TIDE_ENOTFOUND) {                               // not known yet: slow path
 *         passwd_check_prepare(pw, user, ulen, &job->chk);      // copies the entry
 *         ...worker: job->rc = passwd_check_run(&job->chk, job->pass, job->plen);
 *         ...back on the loop: if (job->rc == 0) passwd_cache_store(current_pw, &job->chk, ...);
 *     }                                                         // then crypto_wipe the copy */
#ifndef TIDE_PASSWD_H
#define TIDE_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PASSWD_HASH_LEN 64                /* SHA-512 output, the only hash length in the format */
#define PASSWD_SALT_LEN 12                /* salt bytes we write (as mosquitto_passwd does) */
#define PASSWD_SALT_MAX 64                /* longest salt we accept when reading */
#define PASSWD_DEFAULT_ITERATIONS 210000u /* OWASP 2023 figure for PBKDF2-HMAC-SHA512 */
#define PASSWD_MAX_ITERATIONS 10000000u   /* refuse files that would make one login take minutes */
#define PASSWD_USER_MAX 65535             /* MQTT string limit, as mosquitto_passwd checks */
#define PASSWD_FILE_MAX (64u << 20)       /* refuse password files above 64 MiB */
/* Room for "$7$" ITERATIONS "$" SALT "$" HASH and the NUL, for the longest salt we accept. */
#define PASSWD_HASH_STR_MAX 200

enum passwd_type {
    PASSWD_SHA512 = 6,        /* "$6$": one SHA-512 round, Mosquitto <= 1.6's default */
    PASSWD_PBKDF2_SHA512 = 7, /* "$7$": PBKDF2-HMAC-SHA512 */
};

struct passwd; /* opaque: a loaded password table */

/* Everything one verification needs, copied out of a table (or a dummy for an unknown user) so it
 * can run on another thread. Caller's storage; plain data, no pointers, no cleanup needed. */
struct passwd_check {
    enum passwd_type type;
    uint32_t iterations; /* 0 for PASSWD_SHA512 */
    size_t salt_len;
    unsigned char salt[PASSWD_SALT_MAX];
    unsigned char hash[PASSWD_HASH_LEN];
    bool known; /* false: a dummy for a user not in the table; passwd_check_run always fails */
};

/* Reads and parses the password file at path into a new table (*out). Returns 0, TIDE_EIO when the
 * file cannot be read (err: "path: strerror"), TIDE_ETOOBIG above PASSWD_FILE_MAX, or TIDE_EINVAL
 * for a malformed file (err: "path:line: why"); *out is set only on success. err may be NULL. The
 * caller frees the table with passwd_free. */
int passwd_load_file(struct passwd **out, const char *path, char *err, size_t errlen);

/* As passwd_load_file, parsing data[0..len) (which need not be NUL-terminated) and naming it name
 * in errors. The entry point for the fuzzer and the tests. Borrows data and name. */
int passwd_load_buffer(struct passwd **out, const char *name, const char *data, size_t len,
                       char *err, size_t errlen);

/* Frees a table (NULL is fine). Wipes the hashes and the cache first. */
void passwd_free(struct passwd *pw);

/* Number of users in the table. */
size_t passwd_count(const struct passwd *pw);

/* True if user[0..ulen) has an entry. For tools and tests; the broker must not answer CONNECT
 * differently for unknown users (passwd_verify and passwd_check_prepare hide the difference). */
bool passwd_has_user(const struct passwd *pw, const char *user, size_t ulen);

/* Verifies pass[0..plen) for user[0..ulen) synchronously: passwd_check_prepare plus
 * passwd_check_run. Returns 0 on a match, TIDE_EBADAUTH for a wrong password or an unknown user
 * (which costs about as much as a known one), TIDE_EIO if libcrypto fails. Slow for `$7$`
 * entries: never call it on the loop thread. Borrows everything; thread-safe on a table no one
 * frees meanwhile. */
int passwd_verify(const struct passwd *pw, const char *user, size_t ulen, const char *pass,
                  size_t plen);

/* Copies user's entry into *chk, or, for an unknown user, a dummy with random salt and hash whose
 * cost matches the table's most expensive entry (so timing does not tell unknown users from known
 * ones). Fast; call it on the loop thread. Borrows pw and user; chk keeps no pointer into pw. */
void passwd_check_prepare(const struct passwd *pw, const char *user, size_t ulen,
                          struct passwd_check *chk);

/* Hashes pass[0..plen) as chk says and compares with chk's hash in constant time. Returns 0 on a
 * match, TIDE_EBADAUTH otherwise (always for a dummy), TIDE_EIO if libcrypto fails. Pure CPU,
 * thread-safe, and slow for `$7$` (see the lead's note for the measured figure): run it on a
 * worker thread. Wipes its intermediate hash; the caller wipes pass. */
int passwd_check_run(const struct passwd_check *chk, const char *pass, size_t plen);

/* Loop-thread fast path. Returns 0 if pass is the password this table has already verified for
 * user (passwd_cache_store), TIDE_EBADAUTH if the user has a verified password and pass is a
 * different one, TIDE_ENOTFOUND if there is nothing cached for user (unknown user, or no
 * successful login since the table was loaded): run the slow check then. Costs one HMAC-SHA512
 * and a constant-time compare. The cache dies with the table, so a reloaded file (a new
 * generation) starts empty and can never accept an old password. */
int passwd_cache_lookup(const struct passwd *pw, const char *user, size_t ulen, const char *pass,
                        size_t plen);

/* Records that pass verified for user, after passwd_check_run(chk, pass, plen) returned 0. Does
 * nothing if user's entry in pw is no longer the one chk was prepared from (the file was reloaded
 * and the user's hash changed or the user was removed), or if chk is a dummy. Stores
 * HMAC-SHA512(per-table random key, user, pass), never the password. Loop thread only. */
void passwd_cache_store(struct passwd *pw, const struct passwd_check *chk, const char *user,
                        size_t ulen, const char *pass, size_t plen);

/* Parses a hash string "$7$ITER$SALT$HASH" or "$6$SALT$HASH" (s[0..len), no surrounding blanks)
 * into *chk (known = true). Returns 0, or TIDE_EINVAL with a static reason in *why (why may be
 * NULL). Used by the loader and by `tidemq passwd -U` to recognise already-hashed entries. */
int passwd_parse_hash(const char *s, size_t len, struct passwd_check *chk, const char **why);

/* Hashes pass[0..plen) with a fresh 12-byte random salt and PBKDF2-HMAC-SHA512 at iterations
 * (1..PASSWD_MAX_ITERATIONS) and writes "$7$ITER$SALT$HASH" NUL-terminated into out. Returns 0,
 * TIDE_EINVAL for bad iterations, TIDE_ETOOBIG if outlen < PASSWD_HASH_STR_MAX, TIDE_EIO if
 * libcrypto fails. Slow (it runs PBKDF2). Borrows pass. */
int passwd_encode_hash(char *out, size_t outlen, const char *pass, size_t plen,
                       uint32_t iterations);

/* Splits one line (without its '\n'; a trailing '\r' is allowed) of a password file. Returns 1 and
 * sets user/hash (pointing into line, trimmed) for an entry; 0 for a blank or comment line;
 * TIDE_EINVAL with a static reason in *why for a line that is neither (no ':', empty user or
 * hash, a second ':'). Shared by the loader and `tidemq passwd`, so both read files alike. */
int passwd_split_line(const char *line, size_t len, const char **user, size_t *ulen,
                      const char **hash, size_t *hlen, const char **why);

#endif
