/* libFuzzer harness for the password file parser and the base64 codec: loads the input as a
 * password file through the in-memory entry point and, when it loads, runs the cheap paths
 * (lookup, the cache, prepare) and the slow check only for entries of at most 1000 iterations so a
 * run stays fast; also feeds the input to passwd_parse_hash and checks that base64 decoding
 * followed by encoding gives back canonical text. Build with clang -fsanitize=fuzzer,address,
 * undefined from core/passwd.c, the core/util sources and this file (link -lcrypto); seeds are in
 * tests/fuzz/corpus/passwd. */
#include "passwd.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void base64_roundtrip(const char *in, size_t n)
{
    unsigned char raw[256];
    char enc[CRYPTO_BASE64_LEN(sizeof(raw)) + 1];
    size_t m = 0;
    if (n > 300 || crypto_base64_decode(in, n, raw, sizeof(raw), &m) != 0)
        return;
    size_t e = crypto_base64_encode(raw, m, enc, sizeof(enc));
    unsigned char again[256];
    size_t m2 = 0;
    /* the canonical re-encoding decodes to the same bytes */
    if (e != CRYPTO_BASE64_LEN(m) || crypto_base64_decode(enc, e, again, sizeof(again), &m2) != 0 ||
        m2 != m || memcmp(raw, again, m) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct passwd *pw = NULL;
    struct passwd_check chk;
    char err[256];

    base64_roundtrip(in, size);
    if (passwd_parse_hash(in, size, &chk, NULL) == 0 &&
        (chk.type == PASSWD_SHA512 || chk.iterations <= 1000))
        (void)passwd_check_run(&chk, "secret", 6);

    if (passwd_load_buffer(&pw, "fuzz.pw", in, size, err, sizeof(err)) != 0)
        return 0;
    /* look up the first line's user, whatever it is, and a user that is surely absent */
    const char *colon = memchr(in, ':', size);
    size_t ulen = colon ? (size_t)(colon - in) : 0;
    const char *users[2] = {in, "\x01nobody"};
    size_t lens[2] = {ulen, 7};
    for (int i = 0; i < 2; i++) {
        (void)passwd_has_user(pw, users[i], lens[i]);
        passwd_check_prepare(pw, users[i], lens[i], &chk);
        if (chk.type == PASSWD_SHA512 || chk.iterations <= 1000) {
            if (passwd_check_run(&chk, "secret", 6) == 0)
                passwd_cache_store(pw, &chk, users[i], lens[i], "secret", 6);
        }
        (void)passwd_cache_lookup(pw, users[i], lens[i], "secret", 6);
        (void)passwd_cache_lookup(pw, users[i], lens[i], "other", 5);
    }
    (void)passwd_count(pw);
    passwd_free(pw);
    return 0;
}
