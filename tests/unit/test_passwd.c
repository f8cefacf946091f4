/* Unit tests for core/passwd.c and core/util/crypto.c: base64, SHA-512 and PBKDF2 vectors, password
 * file parsing (accepted and refused files with their file:line errors), verification of `$6$` and
 * `$7$` entries written by Debian's mosquitto_passwd (fixed fixtures, plus a file generated at
 * run time when /usr/bin/mosquitto_passwd exists), encoding, the unknown-user dummy and the
 * verification cache. Tables of {name, input, expected}; exits non-zero on any failure. Prints
 * how long one `$7$` check takes at the default iteration count (a figure, never asserted). */
#include "passwd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/crypto.h"
#include "util/err.h"

#include "unit.h"

#define MOSQUITTO_PASSWD "/usr/bin/mosquitto_passwd"

static void check(bool ok, const char *what, const char *name)
{
    CHECK(ok, "%s: %s", what, name);
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

/* ---- crypto ------------------------------------------------------------------------------- */

struct b64_case {
    const char *name;
    const char *raw;
    const char *enc;
};

/* RFC 4648 section 10 */
static const struct b64_case b64_cases[] = {
    {"empty", "", ""},
    {"f", "f", "Zg=="},
    {"fo", "fo", "Zm8="},
    {"foo", "foo", "Zm9v"},
    {"foob", "foob", "Zm9vYg=="},
    {"fooba", "fooba", "Zm9vYmE="},
    {"foobar", "foobar", "Zm9vYmFy"},
};

struct b64_dec_case {
    const char *name;
    const char *in;
    int expected;
    const char *raw; /* when expected == 0 */
};

static const struct b64_dec_case b64_dec_cases[] = {
    {"unpadded 1", "Zg", 0, "f"},
    {"unpadded 2", "Zm8", 0, "fo"},
    {"plus slash", "+/8=", 0, "\xfb\xff"},
    {"one char", "Z", TIDE_EINVAL, NULL},
    {"five chars", "Zm9vY", TIDE_EINVAL, NULL},
    {"short padding", "Zg=", TIDE_EINVAL, NULL},
    {"three pads", "Z===", TIDE_EINVAL, NULL},
    {"only pads", "====", TIDE_EINVAL, NULL},
    {"pad inside", "Zg==Zg==", TIDE_EINVAL, NULL},
    {"bad char", "Zm9v!A==", TIDE_EINVAL, NULL},
    {"space", "Zm9 v", TIDE_EINVAL, NULL},
    {"url alphabet", "-_8=", TIDE_EINVAL, NULL},
    {"too big", "Zm9vYmFyYmF6", TIDE_ETOOBIG, NULL},
};

static void test_base64(void)
{
    for (size_t i = 0; i < sizeof(b64_cases) / sizeof(b64_cases[0]); i++) {
        const struct b64_case *c = &b64_cases[i];
        char enc[64];
        unsigned char raw[64];
        size_t n = crypto_base64_encode(c->raw, strlen(c->raw), enc, sizeof(enc)), m = 99;
        check(n == strlen(c->enc) && strcmp(enc, c->enc) == 0, "base64 encode", c->name);
        int rc = crypto_base64_decode(c->enc, strlen(c->enc), raw, sizeof(raw), &m);
        check(rc == 0 && m == strlen(c->raw) && memcmp(raw, c->raw, m) == 0, "base64 decode",
              c->name);
    }
    char tiny[4];
    check(crypto_base64_encode("f", 1, tiny, sizeof(tiny)) == 0, "base64 encode", "no room");
    for (size_t i = 0; i < sizeof(b64_dec_cases) / sizeof(b64_dec_cases[0]); i++) {
        const struct b64_dec_case *c = &b64_dec_cases[i];
        unsigned char raw[6];
        size_t m = 0;
        int rc = crypto_base64_decode(c->in, strlen(c->in), raw, sizeof(raw), &m);
        check(rc == c->expected &&
                  (rc != 0 || (m == strlen(c->raw) && memcmp(raw, c->raw, m) == 0)),
              "base64 decode", c->name);
    }
}

struct kdf_case {
    const char *name;
    const char *pass, *salt;
    uint32_t iterations; /* 0: plain SHA-512 of pass || salt */
    const char *hex;
};

/* PBKDF2-HMAC-SHA512 and SHA-512 vectors, cross-checked with Python's hashlib */
static const struct kdf_case kdf_cases[] = {
    {"sha512 abc", "abc", "", 0,
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3fe"
     "ebbd454d4423643ce80e2a9ac94fa54ca49f"},
    {"sha512 a+bc", "a", "bc", 0,
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3fe"
     "ebbd454d4423643ce80e2a9ac94fa54ca49f"},
    {"pbkdf2 c=1", "password", "salt", 1,
     "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252c02d470a285a0501bad999bfe943"
     "c08f050235d7d68b1da55e63f73b60a57fce"},
    {"pbkdf2 c=2", "password", "salt", 2,
     "e1d9c16aa681708a45f5c7c4e215ceb66e011a2e9f0040713f18aefdb866d53cf76cab2868a39b9f7840edce4fef"
     "5a82be67335c77a6068e04112754f27ccf4e"},
};

static void test_kdf(void)
{
    for (size_t i = 0; i < sizeof(kdf_cases) / sizeof(kdf_cases[0]); i++) {
        const struct kdf_case *c = &kdf_cases[i];
        unsigned char out[64];
        char h[129];
        int rc = c->iterations
                     ? crypto_pbkdf2_sha512(c->pass, strlen(c->pass), c->salt, strlen(c->salt),
                                            c->iterations, out, sizeof(out))
                     : crypto_sha512(c->pass, strlen(c->pass), c->salt, strlen(c->salt), out);
        hex(out, sizeof(out), h);
        check(rc == 0 && strcmp(h, c->hex) == 0, "kdf", c->name);
    }
    unsigned char out[64];
    check(crypto_pbkdf2_sha512("p", 1, "s", 1, 0, out, sizeof(out)) == TIDE_EINVAL, "kdf",
          "zero iterations refused");
    unsigned char m1[64], m2[64];
    check(crypto_hmac_sha512("k", 1, "ab", 2, "c", 1, m1) == 0 &&
              crypto_hmac_sha512("k", 1, "a", 1, "bc", 2, m2) == 0 && memcmp(m1, m2, 64) == 0,
          "hmac", "two parts hash as one");
    check(crypto_equal("abc", "abc", 3) && !crypto_equal("abc", "abd", 3), "crypto_equal",
          "compares");
}

/* ---- loading ------------------------------------------------------------------------------ */

/* Written by Debian's mosquitto_passwd 2.0.11: alice/secret ($7$, 101 iterations) and sixer/sixpass
 * (-H sha512). */
#define ALICE7                                                                                     \
    "alice:$7$101$ciQ52cwtLQEmRbT4$/MoYxjjLIxOLv82xDNFl2qe95I/"                                    \
    "g5rIaevkShzH6A2AmuNyoFbzG0GIAbyG4mlAjaUORSclTrfAIP1Y9vqbvYg=="
#define SIXER6                                                                                     \
    "sixer:$6$XKWZ8bShBd+6AQxD$"                                                                   \
    "LnoslvXENgi2tqpDj3hHAmb9sDzTY7JxkwcTcTygcwwkCMPBLgMUHet6dVtwW7YJjSNBZ1VwD9ukPWn+jey6rQ=="
#define H7                                                                                         \
    "$7$101$ciQ52cwtLQEmRbT4$/MoYxjjLIxOLv82xDNFl2qe95I/"                                          \
    "g5rIaevkShzH6A2AmuNyoFbzG0GIAbyG4mlAjaUORSclTrfAIP1Y9vqbvYg=="
#define HASH64                                                                                     \
    "/MoYxjjLIxOLv82xDNFl2qe95I/g5rIaevkShzH6A2AmuNyoFbzG0GIAbyG4mlAjaUORSclTrfAIP1Y9vqbvYg=="

struct load_case {
    const char *name;
    const char *in;
    int expected;    /* load result */
    size_t users;    /* when it loads */
    const char *err; /* substring of the error, when it does not */
};

static const struct load_case load_cases[] = {
    {"empty file", "", 0, 0, NULL},
    {"one $7$", ALICE7 "\n", 0, 1, NULL},
    {"no final newline", ALICE7, 0, 1, NULL},
    {"crlf", ALICE7 "\r\n" SIXER6 "\r\n", 0, 2, NULL},
    {"comments and blanks", "# users\n\n   \n" ALICE7 "\n  # indented\n" SIXER6 "\n", 0, 2, NULL},
    {"blanks around fields", "  alice  :  " H7 "  \n", 0, 1, NULL},
    {"unpadded base64",
     "bob:$7$5$ciQ52cwtLQEmRbT4$/MoYxjjLIxOLv82xDNFl2qe95I/g5rIaevkShzH6A2AmuN"
     "yoFbzG0GIAbyG4mlAjaUORSclTrfAIP1Y9vqbvYg\n",
     0, 1, NULL},
    {"16-byte salt", "bob:$6$AAAAAAAAAAAAAAAAAAAAAA==$" HASH64 "\n", 0, 1, NULL},
    {"plain text", "# x\nalice:secret\n", TIDE_EINVAL, 0, "t.pw:2: not a $6$ or $7$ hash"},
    {"no colon", ALICE7 "\nbob\n", TIDE_EINVAL, 0, "t.pw:2: expected USER:HASH"},
    {"empty user", ":" H7 "\n", TIDE_EINVAL, 0, "t.pw:1: empty user name"},
    {"empty hash", "bob:  \n", TIDE_EINVAL, 0, "t.pw:1: missing password hash"},
    {"second colon", "bob:" H7 ":x\n", TIDE_EINVAL, 0, "t.pw:1: unexpected ':'"},
    {"duplicate user", ALICE7 "\n" SIXER6 "\n" ALICE7 "\n", TIDE_EINVAL, 0,
     "t.pw:3: duplicate user 'alice'"},
    {"unknown type", "bob:$5$abc$def\n", TIDE_EINVAL, 0, "t.pw:1: unknown hash type"},
    {"$7$ no iterations", "bob:$7$$ciQ52cwtLQEmRbT4$" HASH64 "\n", TIDE_EINVAL, 0,
     "expected $7$ITERATIONS$SALT$HASH"},
    {"$7$ zero iterations", "bob:$7$0$ciQ52cwtLQEmRbT4$" HASH64 "\n", TIDE_EINVAL, 0, "at least 1"},
    {"$7$ huge iterations", "bob:$7$99999999999999999999$ciQ52cwtLQEmRbT4$" HASH64 "\n",
     TIDE_EINVAL, 0, "above 10000000"},
    {"$7$ negative iterations", "bob:$7$-5$ciQ52cwtLQEmRbT4$" HASH64 "\n", TIDE_EINVAL, 0,
     "expected $7$ITERATIONS"},
    {"$7$ missing hash", "bob:$7$101$ciQ52cwtLQEmRbT4\n", TIDE_EINVAL, 0, "expected $SALT$HASH"},
    {"extra field", "bob:" H7 "$x\n", TIDE_EINVAL, 0, "too many '$'"},
    {"bad salt", "bob:$7$101$ci!52cwtLQEmRbT4$" HASH64 "\n", TIDE_EINVAL, 0, "salt is not valid"},
    {"empty salt", "bob:$6$$" HASH64 "\n", TIDE_EINVAL, 0, "salt is not valid"},
    {"short hash", "bob:$7$101$ciQ52cwtLQEmRbT4$AAAA\n", TIDE_EINVAL, 0, "64 bytes"},
    {"long hash", "bob:$6$ciQ52cwtLQEmRbT4$" HASH64 "AAAA\n", TIDE_EINVAL, 0, "64 bytes"},
    {"bad hash",
     "bob:$6$ciQ52cwtLQEmRbT4$*MoYxjjLIxOLv82xDNFl2qe95I/g5rIaevkShzH6A2AmuNyoFbzG0G"
     "IAbyG4mlAjaUORSclTrfAIP1Y9vqbvYg==\n",
     TIDE_EINVAL, 0, "hash is not valid"},
};

static void test_load(void)
{
    for (size_t i = 0; i < sizeof(load_cases) / sizeof(load_cases[0]); i++) {
        const struct load_case *c = &load_cases[i];
        struct passwd *pw = NULL;
        char err[256] = "";
        int rc = passwd_load_buffer(&pw, "t.pw", c->in, strlen(c->in), err, sizeof(err));
        bool ok = rc == c->expected;
        if (ok && rc == 0)
            ok = passwd_count(pw) == c->users;
        if (ok && rc != 0)
            ok = pw == NULL && strstr(err, c->err) != NULL;
        if (!ok)
            fprintf(stderr, "  rc=%d err='%s'\n", rc, err);
        check(ok, "load", c->name);
        passwd_free(pw);
    }
    struct passwd *pw = NULL;
    char err[256];
    check(passwd_load_file(&pw, "/nonexistent/tidemq.pw", err, sizeof(err)) == TIDE_EIO &&
              strstr(err, "/nonexistent/tidemq.pw: ") == err,
          "load", "missing file says path: why");
    check(passwd_load_buffer(&pw, "t.pw", "bob:x\n", 6, NULL, 0) == TIDE_EINVAL, "load",
          "NULL err buffer");
    const char nul[] = "bo\0b:" H7 "\n";
    check(passwd_load_buffer(&pw, "t.pw", nul, sizeof(nul) - 1, err, sizeof(err)) == TIDE_EINVAL,
          "load", "NUL in user name");
}

struct split_case {
    const char *name;
    const char *in;
    int expected;
    const char *user, *hash;
};

static const struct split_case split_cases[] = {
    {"entry", "a:b", 1, "a", "b"},
    {"trimmed", " \ta : b \r", 1, "a", "b"},
    {"blank", " \t\r", 0, NULL, NULL},
    {"comment", "#a:b", 0, NULL, NULL},
    {"user with space", "a b:c", 1, "a b", "c"},
    {"no colon", "ab", TIDE_EINVAL, NULL, NULL},
    {"two colons", "a:b:c", TIDE_EINVAL, NULL, NULL},
};

static void test_split(void)
{
    for (size_t i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
        const struct split_case *c = &split_cases[i];
        const char *u = NULL, *h = NULL, *why = NULL;
        size_t un = 0, hn = 0;
        int rc = passwd_split_line(c->in, strlen(c->in), &u, &un, &h, &hn, &why);
        bool ok = rc == c->expected;
        if (ok && rc == 1)
            ok = un == strlen(c->user) && memcmp(u, c->user, un) == 0 && hn == strlen(c->hash) &&
                 memcmp(h, c->hash, hn) == 0;
        if (ok && rc < 0)
            ok = why != NULL;
        check(ok, "split", c->name);
    }
}

/* ---- verification ------------------------------------------------------------------------- */

struct verify_case {
    const char *name;
    const char *user, *pass;
    int expected;
};

static const struct verify_case verify_cases[] = {
    {"$7$ right password", "alice", "secret", 0},
    {"$7$ wrong password", "alice", "Secret", TIDE_EBADAUTH},
    {"$7$ prefix of password", "alice", "secre", TIDE_EBADAUTH},
    {"$7$ password plus byte", "alice", "secret\n", TIDE_EBADAUTH},
    {"$7$ empty password", "alice", "", TIDE_EBADAUTH},
    {"$6$ right password", "sixer", "sixpass", 0},
    {"$6$ wrong password", "sixer", "sixpas", TIDE_EBADAUTH},
    {"user names are exact", "Alice", "secret", TIDE_EBADAUTH},
    {"unknown user", "mallory", "secret", TIDE_EBADAUTH},
    {"empty user", "", "", TIDE_EBADAUTH},
};

static void test_verify(void)
{
    const char *file = "# from mosquitto_passwd\n" ALICE7 "\n" SIXER6 "\n";
    struct passwd *pw = NULL;
    char err[256];
    if (passwd_load_buffer(&pw, "fixture", file, strlen(file), err, sizeof(err)) != 0) {
        check(false, "verify", err);
        return;
    }
    for (size_t i = 0; i < sizeof(verify_cases) / sizeof(verify_cases[0]); i++) {
        const struct verify_case *c = &verify_cases[i];
        int rc = passwd_verify(pw, c->user, strlen(c->user), c->pass, strlen(c->pass));
        check(rc == c->expected, "verify", c->name);
    }
    check(passwd_has_user(pw, "alice", 5) && !passwd_has_user(pw, "alic", 4), "verify", "has_user");
    /* the dummy for unknown users costs what the dearest entry costs */
    struct passwd_check chk;
    passwd_check_prepare(pw, "mallory", 7, &chk);
    check(!chk.known && chk.type == PASSWD_PBKDF2_SHA512 && chk.iterations == 101, "verify",
          "dummy copies the dearest entry");
    passwd_check_prepare(pw, "sixer", 5, &chk);
    check(chk.known && chk.type == PASSWD_SHA512, "verify", "prepare copies the entry");
    passwd_free(pw);

    /* a table with only $6$ entries gets a $6$ dummy; an empty one still answers */
    file = SIXER6 "\n";
    passwd_load_buffer(&pw, "fixture", file, strlen(file), err, sizeof(err));
    passwd_check_prepare(pw, "x", 1, &chk);
    check(!chk.known && chk.type == PASSWD_SHA512, "verify", "$6$ dummy");
    passwd_free(pw);
    passwd_load_buffer(&pw, "fixture", "", 0, err, sizeof(err));
    check(passwd_verify(pw, "x", 1, "y", 1) == TIDE_EBADAUTH, "verify", "empty table");
    passwd_free(pw);
}

static void test_encode(void)
{
    char h[PASSWD_HASH_STR_MAX];
    struct passwd_check chk;
    check(passwd_encode_hash(h, sizeof(h), "pa:ss word", 10, 1000) == 0 &&
              strncmp(h, "$7$1000$", 8) == 0 && strlen(h) == 8 + 16 + 1 + 88,
          "encode", "shape $7$1000$<16>$<88>");
    check(passwd_parse_hash(h, strlen(h), &chk, NULL) == 0 && chk.salt_len == PASSWD_SALT_LEN &&
              chk.iterations == 1000,
          "encode", "parses back");
    check(passwd_check_run(&chk, "pa:ss word", 10) == 0, "encode", "verifies");
    check(passwd_check_run(&chk, "pa:ss wore", 10) == TIDE_EBADAUTH, "encode", "wrong fails");
    char h2[PASSWD_HASH_STR_MAX];
    passwd_encode_hash(h2, sizeof(h2), "pa:ss word", 10, 1000);
    check(strcmp(h, h2) != 0, "encode", "fresh salt each time");
    check(passwd_encode_hash(h, sizeof(h), "x", 1, 0) == TIDE_EINVAL, "encode", "zero iterations");
    check(passwd_encode_hash(h, sizeof(h), "x", 1, PASSWD_MAX_ITERATIONS + 1) == TIDE_EINVAL,
          "encode", "too many iterations");
    check(passwd_encode_hash(h, 100, "x", 1, 1) == TIDE_ETOOBIG, "encode", "small buffer");
    /* binary passwords (MQTT allows any bytes) hash all their bytes */
    passwd_encode_hash(h, sizeof(h), "a\0b", 3, 10);
    passwd_parse_hash(h, strlen(h), &chk, NULL);
    check(passwd_check_run(&chk, "a\0b", 3) == 0 && passwd_check_run(&chk, "a", 1) != 0, "encode",
          "binary password");
}

static void test_cache(void)
{
    const char *file = ALICE7 "\n" SIXER6 "\n";
    struct passwd *pw = NULL, *pw2 = NULL;
    char err[256];
    passwd_load_buffer(&pw, "c", file, strlen(file), err, sizeof(err));
    passwd_load_buffer(&pw2, "c", file, strlen(file), err, sizeof(err));
    struct passwd_check chk, bad;
    check(passwd_cache_lookup(pw, "alice", 5, "secret", 6) == TIDE_ENOTFOUND, "cache",
          "empty at load");
    passwd_check_prepare(pw, "alice", 5, &chk);
    check(passwd_check_run(&chk, "secret", 6) == 0, "cache", "slow path verifies");
    passwd_cache_store(pw, &chk, "alice", 5, "secret", 6);
    check(passwd_cache_lookup(pw, "alice", 5, "secret", 6) == 0, "cache", "hit");
    check(passwd_cache_lookup(pw, "alice", 5, "secreT", 6) == TIDE_EBADAUTH, "cache",
          "wrong password is refused fast");
    check(passwd_cache_lookup(pw, "sixer", 5, "sixpass", 7) == TIDE_ENOTFOUND, "cache",
          "other users not cached");
    check(passwd_cache_lookup(pw, "bob", 3, "secret", 6) == TIDE_ENOTFOUND, "cache",
          "unknown user goes the slow way");
    check(passwd_cache_lookup(pw2, "alice", 5, "secret", 6) == TIDE_ENOTFOUND, "cache",
          "a reloaded table starts empty");
    /* a check prepared from another entry (the file changed under a running check) is ignored */
    passwd_check_prepare(pw2, "sixer", 5, &bad);
    passwd_cache_store(pw2, &bad, "alice", 5, "sixpass", 7);
    check(passwd_cache_lookup(pw2, "alice", 5, "sixpass", 7) == TIDE_ENOTFOUND, "cache",
          "stale check not stored");
    passwd_check_prepare(pw2, "nobody", 6, &bad);
    passwd_cache_store(pw2, &bad, "nobody", 6, "x", 1);
    check(passwd_cache_lookup(pw2, "nobody", 6, "x", 1) == TIDE_ENOTFOUND, "cache",
          "dummy not stored");
    passwd_free(pw);
    passwd_free(pw2);
}

/* ---- files written by the real mosquitto_passwd ------------------------------------------- */

static void test_mosquitto_passwd(void)
{
    if (access(MOSQUITTO_PASSWD, X_OK) != 0) {
        printf("skip: %s not installed (fixed fixtures still cover its format)\n",
               MOSQUITTO_PASSWD);
        return;
    }
    char dir[] = "/tmp/tidemq-test-passwd-XXXXXX";
    if (!mkdtemp(dir)) {
        check(false, "mosquitto_passwd", "mkdtemp");
        return;
    }
    char path[128], cmd[1024];
    snprintf(path, sizeof(path), "%s/pw", dir);
    snprintf(cmd, sizeof(cmd),
             MOSQUITTO_PASSWD " -c -b %s anna 'p@ss w0rd' && " MOSQUITTO_PASSWD
                              " -b %s ben b && " MOSQUITTO_PASSWD " -H sha512 -b %s cleo c",
             path, path, path);
    int rc = system(cmd);
    struct passwd *pw = NULL;
    char err[256] = "";
    if (rc == 0)
        rc = passwd_load_file(&pw, path, err, sizeof(err));
    check(rc == 0, "mosquitto_passwd", "its file loads");
    if (rc == 0) {
        check(passwd_count(pw) == 3, "mosquitto_passwd", "three users");
        check(passwd_verify(pw, "anna", 4, "p@ss w0rd", 9) == 0, "mosquitto_passwd",
              "$7$ with a space verifies");
        check(passwd_verify(pw, "ben", 3, "b", 1) == 0, "mosquitto_passwd", "second $7$");
        check(passwd_verify(pw, "cleo", 4, "c", 1) == 0, "mosquitto_passwd", "-H sha512 ($6$)");
        check(passwd_verify(pw, "anna", 4, "p@ss w0rD", 9) == TIDE_EBADAUTH, "mosquitto_passwd",
              "wrong password");
    } else {
        fprintf(stderr, "  %s\n", err);
    }
    passwd_free(pw);
    unlink(path);
    rmdir(dir);
}

static void measure(void)
{
    char h[PASSWD_HASH_STR_MAX];
    struct passwd_check chk;
    passwd_encode_hash(h, sizeof(h), "secret", 6, PASSWD_DEFAULT_ITERATIONS);
    passwd_parse_hash(h, strlen(h), &chk, NULL);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = passwd_check_run(&chk, "secret", 6);
    clock_gettime(CLOCK_MONOTONIC, &b);
    check(rc == 0, "measure", "default iterations verify");
    printf("one $7$ check at %u iterations: %.1f ms\n", PASSWD_DEFAULT_ITERATIONS,
           (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6);
}

int main(void)
{
    test_base64();
    test_kdf();
    test_split();
    test_load();
    test_verify();
    test_encode();
    test_cache();
    test_mosquitto_passwd();
    measure();
    return unit_finish();
}
