/* Unit tests for core/retain.c: set/replace/clear, matching with wildcards and '$' topics,
 * count/bytes accounting, reference ownership, and a randomized cross-check of retain_match
 * against topic_matches over every stored topic. Exits non-zero on any failure. */
#include "retain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "topic.h"
#include "unit.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct msg *mk(const char *topic, const char *payload)
{
    struct msg_init in = {
        .topic = topic,
        .topic_len = strlen(topic),
        .payload = payload,
        .payload_len = strlen(payload),
        .retain = true,
    };
    return msg_new(&in);
}

/* Stores m and drops the creator's reference: the store then holds the only one. */
static void put(struct retain_store *s, const char *topic, const char *payload)
{
    struct msg *m = mk(topic, payload);
    retain_set(s, m);
    msg_release(&m);
}

#define MAXHITS 1024

struct hits {
    const struct msg *m[MAXHITS];
    size_t n;
};

static void on_msg(void *ctx, struct msg *m)
{
    struct hits *h = ctx;
    if (h->n < MAXHITS)
        h->m[h->n++] = m;
}

static void collect(const struct retain_store *s, const char *f, struct hits *h)
{
    h->n = 0;
    retain_match(s, f, strlen(f), on_msg, h);
}

/* --- matching table: stored topic i is bit i -------------------------------------------------- */

static const char *const topics[] = {
    "a",    "a/b",    "a/b/c",    "a/",   "/", "/a", "a//b",     "b", /* 0-7 */
    "$SYS", "$SYS/x", "$SYS/x/y", "a/$x", "$", "//", "cc/dd/ee",      /* 8-14 */
};

#define B(i) (1u << (i))

static const struct {
    const char *name;
    const char *filter;
    uint32_t expected;
} match_cases[] = {
    {"exact", "a/b", B(1)},
    {"exact miss", "a/x", 0},
    {"prefix is not a match", "a/b/c/d", 0},
    {"empty last level", "a/", B(3)},
    {"slash", "/", B(4)},
    {"empty levels", "a//b", B(6)},
    {"# excludes $", "#", 0x7fffu & ~(B(8) | B(9) | B(10) | B(12))},
    {"a/# includes a", "a/#", B(0) | B(1) | B(2) | B(3) | B(6) | B(11)},
    {"a/b/#", "a/b/#", B(1) | B(2)},
    {"+", "+", B(0) | B(7)},
    {"+/+", "+/+", B(1) | B(3) | B(4) | B(5) | B(11)},
    {"/#", "/#", B(4) | B(5) | B(13)},
    {"/+", "/+", B(4) | B(5)},
    {"+/#", "+/#", 0x7fffu & ~(B(8) | B(9) | B(10) | B(12))},
    {"a/+/c", "a/+/c", B(2)},
    {"+/+/+", "+/+/+", B(2) | B(6) | B(13) | B(14)},
    {"a/+ matches a/$x", "a/+", B(1) | B(3) | B(11)},
    {"[MQTT-4.7.2-1] $SYS/#", "$SYS/#", B(8) | B(9) | B(10)},
    {"[MQTT-4.7.2-1] $SYS/+", "$SYS/+", B(9)},
    {"[MQTT-4.7.2-1] +/x", "+/x", 0},
    {"[MQTT-4.7.2-1] + skips $", "+", B(0) | B(7)},
    {"$ exact", "$", B(12)},
    {"cc/#", "cc/#", B(14)},
};

static uint32_t mask_of(const struct hits *h)
{
    uint32_t m = 0;
    for (size_t i = 0; i < h->n; i++) {
        for (size_t j = 0; j < N(topics); j++) {
            if (strcmp(h->m[i]->topic, topics[j]) == 0)
                m |= B(j);
        }
    }
    return m;
}

static void test_match_table(void)
{
    struct retain_store *s = retain_new();
    for (size_t i = 0; i < N(topics); i++)
        put(s, topics[i], "p");
    CHECK_EQ(retain_count(s), N(topics), "table: count");
    CHECK_EQ(retain_bytes(s), N(topics), "table: bytes");
    static struct hits h;
    for (size_t i = 0; i < N(match_cases); i++) {
        collect(s, match_cases[i].filter, &h);
        uint32_t m = mask_of(&h);
        bool ok = m == match_cases[i].expected && (size_t)__builtin_popcount(m) == h.n;
        if (!ok)
            fprintf(stderr, "  got %#x want %#x\n", m, match_cases[i].expected);
        CHECK(ok, "match: %s", match_cases[i].name);
    }
    retain_free(s);
}

/* --- set / replace / clear -------------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *topic;
    const char *payload; /* NULL: retain_clear */
    size_t count;
    uint64_t bytes;
} seq_cases[] = {
    {"set", "x/y", "hello", 1, 5},
    {"set other", "x/z", "abc", 2, 8},
    {"replace", "x/y", "hi", 2, 5},
    {"set parent", "x", "1234", 3, 9},
    {"[MQTT-3.3.1-6] empty payload clears", "x/y", "", 2, 7},
    {"[MQTT-3.3.1-7] empty payload not stored", "q", "", 2, 7},
    {"clear missing", "nope/x", NULL, 2, 7},
    {"clear inner node without message", "x/z/w", NULL, 2, 7},
    {"clear", "x/z", NULL, 1, 4},
    {"clear twice", "x/z", NULL, 1, 4},
    {"clear last", "x", NULL, 0, 0},
    {"set after prune", "x/y", "again", 1, 5},
    {"clear again", "x/y", NULL, 0, 0},
};

static void test_sequence(void)
{
    struct retain_store *s = retain_new();
    for (size_t i = 0; i < N(seq_cases); i++) {
        const char *t = seq_cases[i].topic;
        if (seq_cases[i].payload)
            put(s, t, seq_cases[i].payload);
        else
            retain_clear(s, t, strlen(t));
        CHECK(retain_count(s) == seq_cases[i].count && retain_bytes(s) == seq_cases[i].bytes,
              "sequence: %s: count %zu bytes %llu", seq_cases[i].name, retain_count(s),
              (unsigned long long)retain_bytes(s));
    }
    static struct hits h;
    collect(s, "#", &h);
    CHECK_EQ(h.n, 0, "sequence: nothing left");
    retain_free(s);
}

static void test_refs(void)
{
    struct retain_store *s = retain_new();
    struct msg *m = mk("r/t", "v1");
    retain_set(s, m);
    CHECK_EQ(m->refs, 2, "refs: store takes a reference");
    retain_set(s, m);
    CHECK(m->refs == 2 && retain_count(s) == 1, "refs: re-setting the same message");
    struct msg *m2 = mk("r/t", "v2");
    retain_set(s, m2);
    CHECK(m->refs == 1 && m2->refs == 2, "refs: replace releases the old one");
    static struct hits h;
    collect(s, "r/t", &h);
    CHECK(h.n == 1 && h.m[0] == m2, "refs: match returns the new message");
    retain_clear(s, "r/t", 3);
    CHECK_EQ(m2->refs, 1, "refs: clear releases");
    retain_set(s, m2);
    retain_free(s);
    CHECK_EQ(m2->refs, 1, "refs: free releases");
    msg_release(&m);
    msg_release(&m2);
}

/* --- randomized cross-check against topic_matches --------------------------------------------- */

static const char *const lvls[] = {"a", "b", "", "$x", "cc"};

static void rand_topic(char *out, bool filter)
{
    do {
        int depth = 1 + rand() % 4;
        out[0] = '\0';
        for (int d = 0; d < depth; d++) {
            if (d)
                strcat(out, "/");
            int r = rand() % (filter ? 8 : 5);
            if (r == 5 || r == 6) {
                strcat(out, "+");
            } else if (r == 7) {
                strcat(out, "#");
                break;
            } else {
                strcat(out, lvls[r]);
            }
        }
    } while (out[0] == '\0'); /* "" is neither a valid name nor a valid filter */
}

static void test_random(void)
{
    enum { ROUNDS = 5000, MAXT = 400 };
    static char stored[MAXT][40];
    static struct hits h;
    size_t nt = 0;
    uint64_t bytes = 0;
    bool ok = true;
    struct retain_store *s = retain_new();
    srand(4242);
    for (int round = 0; round < ROUNDS && ok; round++) {
        char t[40];
        rand_topic(t, false);
        ok &= topic_validate_name(t, strlen(t)) == 0;
        size_t at = nt;
        for (size_t i = 0; i < nt; i++) {
            if (strcmp(stored[i], t) == 0)
                at = i;
        }
        if (rand() % 3 == 0 || nt == MAXT) {
            if (rand() % 2)
                retain_clear(s, t, strlen(t));
            else
                put(s, t, "");
            if (at < nt) {
                bytes -= strlen(stored[at]);
                memcpy(stored[at], stored[--nt], sizeof stored[0]);
            }
        } else {
            put(s, t, t); /* payload = topic, so bytes are checkable */
            if (at == nt)
                memcpy(stored[nt++], t, sizeof stored[0]);
            else
                bytes -= strlen(t);
            bytes += strlen(t);
        }
        ok &= retain_count(s) == nt && retain_bytes(s) == bytes;

        char f[40];
        rand_topic(f, true);
        ok &= topic_validate_filter(f, strlen(f)) == 0;
        collect(s, f, &h);
        size_t want = 0;
        for (size_t i = 0; i < nt; i++)
            want += topic_matches(f, strlen(f), stored[i], strlen(stored[i]));
        ok &= h.n == want;
        for (size_t i = 0; i < h.n; i++) {
            ok &= topic_matches(f, strlen(f), h.m[i]->topic, h.m[i]->topic_len);
            for (size_t j = 0; j < i; j++)
                ok &= h.m[j] != h.m[i];
        }
        if (!ok)
            fprintf(stderr, "  round %d filter '%s'\n", round, f);
    }
    CHECK(ok, "random: retain_match equals brute force");
    retain_free(s);
}

int main(void)
{
    test_match_table();
    test_sequence();
    test_refs();
    test_random();
    return unit_finish();
}
