/* libFuzzer harness for the ACL parser and checks: loads the input as an ACL file through the
 * in-memory entry point and, when it loads, asks publish, read and subscribe questions for a few
 * client ids and user names (including ones %c/%u must refuse) about fixed topics and about
 * topics taken from the input's own lines, so matching, substitution, filter intersection and
 * the regex limits all run. Build with clang -fsanitize=fuzzer,address,undefined from
 * core/acl.c, core/topic.c, the core/util sources and this file (link -lpcre2-8 -lcrypto); seeds
 * are in tests/fuzz/corpus/acl, keywords in tests/fuzz/acl.dict. */
#include "acl.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ids[] = {"dev1", "a/b", "$SYS", "+"};
static const char *const users[] = {NULL, "alice", "u/v", ""};
static const char *const topics[] = {
    "a", "a/b", "#", "+/+", "a/#", "$SYS/broker", "$SYS/#", "public", "devices/dev1/x", "/"};

static void ask(const struct acl *a, const char *t, size_t n)
{
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        const char *u = users[i];
        (void)acl_can_publish(a, ids[i], u, t, n);
        (void)acl_can_read(a, ids[i], u, t, n);
        (void)acl_can_subscribe(a, ids[i], u, t, n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct acl *a = NULL;
    char err[256];

    if (acl_load_buffer(&a, "fuzz.acl", in, size, err, sizeof(err)) != 0)
        return 0;
    (void)acl_entry_count(a);
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
        ask(a, topics[i], strlen(topics[i]));
    /* each line's last word, the shape of the filters the file itself names */
    size_t pos = 0;
    for (int lines = 0; pos < size && lines < 32; lines++) {
        const char *nl = memchr(in + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - in) : size, start = end;
        while (start > pos && in[start - 1] != ' ' && in[start - 1] != '\t')
            start--;
        if (end > start)
            ask(a, in + start, end - start);
        pos = end + 1;
    }
    acl_free(a);
    return 0;
}
