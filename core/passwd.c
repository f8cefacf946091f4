/* Password files in mosquitto_passwd format: parsing into a table, constant-time verification of
 * `$6$` and `$7$` entries, the per-table verification cache, and encoding of new `$7$` hashes.
 * Owns each table (entries, user names, the by-user index, the cache key). Pure: reads only the
 * file passwd_load_file names, never logs, never copies a password or a hash into a message. */
#include "passwd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/crypto.h"
#include "util/err.h"
#include "util/file.h"
#include "util/hash.h"

#define CACHE_KEY_LEN 32

struct entry {
    char *user;
    size_t ulen;
    struct passwd_check chk;
    bool cached; /* mac holds HMAC(key, salt || verified password) */
    unsigned char mac[CRYPTO_SHA512_LEN];
};

struct passwd {
    struct entry *entries;
    size_t count, cap;
    struct hmap by_user;       /* user -> index + 1, cast to a pointer */
    struct passwd_check dummy; /* what an unknown user is checked against */
    unsigned char key[CACHE_KEY_LEN];
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trims blanks on both sides of s[0..*len) and returns the new start. */
static const char *trim(const char *s, size_t *len)
{
    size_t n = *len;
    while (n > 0 && is_blank(*s)) {
        s++;
        n--;
    }
    while (n > 0 && is_blank(s[n - 1]))
        n--;
    *len = n;
    return s;
}

int passwd_split_line(const char *line, size_t len, const char **user, size_t *ulen,
                      const char **hash, size_t *hlen, const char **why)
{
    const char *s = trim(line, &len);
    if (len == 0 || s[0] == '#')
        return 0;
    const char *colon = memchr(s, ':', len);
    if (!colon) {
        *why = "expected USER:HASH";
        return TIDE_EINVAL;
    }
    size_t un = (size_t)(colon - s);
    const char *u = trim(s, &un);
    size_t hn = len - (size_t)(colon + 1 - s);
    const char *h = trim(colon + 1, &hn);
    if (un == 0) {
        *why = "empty user name";
        return TIDE_EINVAL;
    }
    if (hn == 0) {
        *why = "missing password hash";
        return TIDE_EINVAL;
    }
    if (memchr(h, ':', hn)) {
        *why = "unexpected ':' after the password hash";
        return TIDE_EINVAL;
    }
    *user = u;
    *ulen = un;
    *hash = h;
    *hlen = hn;
    return 1;
}

/* Parses SALT$HASH (the tail shared by both hash types) into chk. */
static int parse_salt_hash(const char *s, size_t len, struct passwd_check *chk, const char **why)
{
    const char *dollar = memchr(s, '$', len);
    if (!dollar) {
        *why = "expected $SALT$HASH";
        return TIDE_EINVAL;
    }
    size_t slen = (size_t)(dollar - s), hlen = len - slen - 1, n = 0;
    const char *h = dollar + 1;
    if (memchr(h, '$', hlen)) {
        *why = "too many '$' fields in the password hash";
        return TIDE_EINVAL;
    }
    int rc = crypto_base64_decode(s, slen, chk->salt, sizeof(chk->salt), &chk->salt_len);
    if (rc != 0 || chk->salt_len == 0) {
        *why = rc == TIDE_ETOOBIG ? "salt longer than 64 bytes" : "salt is not valid base64";
        return TIDE_EINVAL;
    }
    rc = crypto_base64_decode(h, hlen, chk->hash, sizeof(chk->hash), &n);
    if (rc == TIDE_EINVAL) {
        *why = "hash is not valid base64";
        return TIDE_EINVAL;
    }
    if (rc != 0 || n != PASSWD_HASH_LEN) {
        *why = "hash does not decode to 64 bytes";
        return TIDE_EINVAL;
    }
    return 0;
}

int passwd_parse_hash(const char *s, size_t len, struct passwd_check *chk, const char **why)
{
    const char *dummy_why;
    if (!why)
        why = &dummy_why;
    memset(chk, 0, sizeof(*chk));
    chk->known = true;
    if (len >= 3 && memcmp(s, "$6$", 3) == 0) {
        chk->type = PASSWD_SHA512;
        return parse_salt_hash(s + 3, len - 3, chk, why);
    }
    if (len < 3 || memcmp(s, "$7$", 3) != 0) {
        *why = len > 0 && s[0] == '$' ? "unknown hash type (tidemq reads $6$ and $7$)"
                                      : "not a $6$ or $7$ hash (a plain-text password? convert "
                                        "the file with `tidemq passwd -U FILE`)";
        return TIDE_EINVAL;
    }
    chk->type = PASSWD_PBKDF2_SHA512;
    size_t i = 3;
    uint64_t it = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && it <= PASSWD_MAX_ITERATIONS)
        it = it * 10 + (uint64_t)(s[i++] - '0');
    if (i == 3 || i >= len || s[i] != '$') {
        *why = it > PASSWD_MAX_ITERATIONS ? "iteration count above 10000000"
                                          : "expected $7$ITERATIONS$SALT$HASH";
        return TIDE_EINVAL;
    }
    if (it < 1 || it > PASSWD_MAX_ITERATIONS) {
        *why = it < 1 ? "iteration count must be at least 1" : "iteration count above 10000000";
        return TIDE_EINVAL;
    }
    chk->iterations = (uint32_t)it;
    return parse_salt_hash(s + i + 1, len - i - 1, chk, why);
}

/* Relative cost of checking one entry: PBKDF2 costs about one SHA-512 per iteration. */
static uint64_t cost(const struct passwd_check *c)
{
    return c->type == PASSWD_PBKDF2_SHA512 ? (uint64_t)c->iterations + 1 : 1;
}

static void add_entry(struct passwd *pw, const char *user, size_t ulen,
                      const struct passwd_check *chk)
{
    if (pw->count == pw->cap) {
        pw->cap = pw->cap ? pw->cap * 2 : 16;
        pw->entries = xrealloc(pw->entries, pw->cap * sizeof(*pw->entries));
    }
    struct entry *e = &pw->entries[pw->count];
    memset(e, 0, sizeof(*e));
    e->user = xstrndup(user, ulen);
    e->ulen = ulen;
    e->chk = *chk;
    pw->count++;
    hmap_put(&pw->by_user, e->user, ulen, (void *)(uintptr_t)pw->count);
}

static const struct entry *find(const struct passwd *pw, const char *user, size_t ulen)
{
    uintptr_t v = (uintptr_t)hmap_get(&pw->by_user, user, ulen);
    return v ? &pw->entries[v - 1] : NULL;
}

int passwd_load_buffer(struct passwd **out, const char *name, const char *data, size_t len,
                       char *err, size_t errlen)
{
    if (len > PASSWD_FILE_MAX) {
        err_printf(err, errlen, "%s: file larger than %u bytes", name, PASSWD_FILE_MAX);
        return TIDE_ETOOBIG;
    }
    struct passwd *pw = xcalloc(1, sizeof(*pw));
    hmap_init(&pw->by_user);
    if (crypto_random(pw->key, sizeof(pw->key)) != 0) {
        err_printf(err, errlen, "%s: no randomness available for the verification cache", name);
        passwd_free(pw);
        return TIDE_EIO;
    }
    pw->dummy.type = PASSWD_SHA512;
    pw->dummy.salt_len = PASSWD_SALT_LEN;
    size_t lineno = 0, pos = 0;
    while (pos < len) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        const char *user, *hash, *why = NULL;
        size_t ulen, hlen;
        struct passwd_check chk;
        int rc = passwd_split_line(line, n, &user, &ulen, &hash, &hlen, &why);
        if (rc == 0)
            continue;
        if (rc == 1 && ulen > PASSWD_USER_MAX) {
            rc = TIDE_EINVAL;
            why = "user name longer than 65535 bytes";
        }
        if (rc == 1 && memchr(user, '\0', ulen)) {
            rc = TIDE_EINVAL;
            why = "NUL byte in user name";
        }
        if (rc == 1 && find(pw, user, ulen)) {
            err_printf(err, errlen, "%s:%zu: duplicate user '%.*s'", name, lineno, (int)ulen, user);
            passwd_free(pw);
            return TIDE_EINVAL;
        }
        if (rc == 1)
            rc = passwd_parse_hash(hash, hlen, &chk, &why);
        if (rc < 0) {
            err_printf(err, errlen, "%s:%zu: %s", name, lineno, why);
            passwd_free(pw);
            return TIDE_EINVAL;
        }
        add_entry(pw, user, ulen, &chk);
        if (cost(&chk) > cost(&pw->dummy)) {
            pw->dummy.type = chk.type;
            pw->dummy.iterations = chk.iterations;
        }
    }
    *out = pw;
    return 0;
}

int passwd_load_file(struct passwd **out, const char *path, char *err, size_t errlen)
{
    char *data;
    size_t len;
    int rc = file_read_all(path, PASSWD_FILE_MAX, &data, &len, err, errlen);
    if (rc < 0)
        return rc;
    rc = passwd_load_buffer(out, path, data, len, err, errlen);
    crypto_wipe(data, len);
    free(data);
    return rc;
}

void passwd_free(struct passwd *pw)
{
    if (!pw)
        return;
    for (size_t i = 0; i < pw->count; i++) {
        free(pw->entries[i].user);
        crypto_wipe(&pw->entries[i], sizeof(pw->entries[i]));
    }
    free(pw->entries);
    hmap_fini(&pw->by_user);
    crypto_wipe(pw, sizeof(*pw));
    free(pw);
}

size_t passwd_count(const struct passwd *pw)
{
    return pw->count;
}

bool passwd_has_user(const struct passwd *pw, const char *user, size_t ulen)
{
    return find(pw, user, ulen) != NULL;
}

void passwd_check_prepare(const struct passwd *pw, const char *user, size_t ulen,
                          struct passwd_check *chk)
{
    const struct entry *e = find(pw, user, ulen);
    *chk = e ? e->chk : pw->dummy;
    if (!e)
        chk->known = false;
}

int passwd_check_run(const struct passwd_check *chk, const char *pass, size_t plen)
{
    unsigned char h[PASSWD_HASH_LEN];
    int rc;
    if (chk->type == PASSWD_PBKDF2_SHA512)
        rc = crypto_pbkdf2_sha512(pass, plen, chk->salt, chk->salt_len, chk->iterations, h,
                                  sizeof(h));
    else
        rc = crypto_sha512(pass, plen, chk->salt, chk->salt_len, h);
    /* compare even for a dummy so both paths take the same time */
    bool same = crypto_equal(h, chk->hash, sizeof(h));
    crypto_wipe(h, sizeof(h));
    if (rc != 0)
        return rc == TIDE_EINVAL ? TIDE_EBADAUTH : rc;
    return same && chk->known ? 0 : TIDE_EBADAUTH;
}

int passwd_verify(const struct passwd *pw, const char *user, size_t ulen, const char *pass,
                  size_t plen)
{
    struct passwd_check chk;
    passwd_check_prepare(pw, user, ulen, &chk);
    return passwd_check_run(&chk, pass, plen);
}

/* HMAC(key, salt || pass): what the cache keeps for a verified password. */
static int cache_mac(const struct passwd *pw, const struct entry *e, const char *pass, size_t plen,
                     unsigned char out[CRYPTO_SHA512_LEN])
{
    return crypto_hmac_sha512(pw->key, sizeof(pw->key), e->chk.salt, e->chk.salt_len, pass, plen,
                              out);
}

int passwd_cache_lookup(const struct passwd *pw, const char *user, size_t ulen, const char *pass,
                        size_t plen)
{
    const struct entry *e = find(pw, user, ulen);
    unsigned char mac[CRYPTO_SHA512_LEN];
    if (!e || !e->cached || cache_mac(pw, e, pass, plen, mac) != 0)
        return TIDE_ENOTFOUND;
    bool same = crypto_equal(mac, e->mac, sizeof(mac));
    crypto_wipe(mac, sizeof(mac));
    return same ? 0 : TIDE_EBADAUTH;
}

void passwd_cache_store(struct passwd *pw, const struct passwd_check *chk, const char *user,
                        size_t ulen, const char *pass, size_t plen)
{
    struct entry *e = (struct entry *)find(pw, user, ulen);
    if (!chk->known || !e || e->chk.type != chk->type || e->chk.iterations != chk->iterations ||
        e->chk.salt_len != chk->salt_len || memcmp(e->chk.salt, chk->salt, chk->salt_len) != 0 ||
        memcmp(e->chk.hash, chk->hash, sizeof(chk->hash)) != 0)
        return;
    if (cache_mac(pw, e, pass, plen, e->mac) == 0)
        e->cached = true;
}

int passwd_encode_hash(char *out, size_t outlen, const char *pass, size_t plen, uint32_t iterations)
{
    unsigned char salt[PASSWD_SALT_LEN], hash[PASSWD_HASH_LEN];
    char salt64[CRYPTO_BASE64_LEN(PASSWD_SALT_LEN) + 1],
        hash64[CRYPTO_BASE64_LEN(PASSWD_HASH_LEN) + 1];
    if (iterations < 1 || iterations > PASSWD_MAX_ITERATIONS)
        return TIDE_EINVAL;
    if (outlen < PASSWD_HASH_STR_MAX)
        return TIDE_ETOOBIG;
    int rc = crypto_random(salt, sizeof(salt));
    if (rc == 0)
        rc = crypto_pbkdf2_sha512(pass, plen, salt, sizeof(salt), iterations, hash, sizeof(hash));
    if (rc == 0) {
        crypto_base64_encode(salt, sizeof(salt), salt64, sizeof(salt64));
        crypto_base64_encode(hash, sizeof(hash), hash64, sizeof(hash64));
        snprintf(out, outlen, "$7$%u$%s$%s", (unsigned)iterations, salt64, hash64);
    }
    crypto_wipe(hash, sizeof(hash));
    crypto_wipe(hash64, sizeof(hash64));
    return rc;
}
