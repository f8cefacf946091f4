/* Unit tests for core/subtree.c: add/replace/remove, matching tables, overlapping filters, shared
 * groups, large nodes (the owner index), pruning, and a randomized cross-check of subtree_match
 * against topic_matches over every subscription. Exits non-zero on any failure. */
#include "subtree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topic.h"
#include "unit.h"
#include "util/err.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char owners[2048]; /* owner k is &owners[k]; the tree never dereferences it */

/* --- a collector for subtree_match ------------------------------------------------------------ */

#define MAXHITS 4096

struct hits {
    uint32_t ids[MAXHITS]; /* sub_id of each visited subscription */
    size_t n;
    struct subtree_group *groups[MAXHITS];
    size_t ng;
};

static void on_sub(void *ctx, const struct subtree_sub *sub)
{
    struct hits *h = ctx;
    if (h->n < MAXHITS)
        h->ids[h->n++] = sub->sub_id;
}

static void on_group(void *ctx, struct subtree_group *g)
{
    struct hits *h = ctx;
    if (h->ng < MAXHITS)
        h->groups[h->ng++] = g;
}

static void collect(const struct subtree *t, const char *name, struct hits *h)
{
    h->n = h->ng = 0;
    subtree_match(t, name, strlen(name), on_sub, on_group, h);
}

static uint64_t mask_of(const struct hits *h)
{
    uint64_t m = 0;
    for (size_t i = 0; i < h->n; i++)
        m |= 1ull << (h->ids[i] - 1);
    return m;
}

/* --- matching table: subscription i has sub_id i + 1 ------------------------------------------ */

static const char *const filters[] = {
    "a",   "a/b",   "a/+",    "a/#",    "#",   "+",     "+/+", "/#", "/+",   "a//b", /* 0-9 */
    "+/b", "a/b/c", "$SYS/#", "$SYS/+", "+/#", "a/+/c", "/",   "a/", "$SYS", "//",   /* 10-19 */
};

#define B(i) (1ull << (i))

static const struct {
    const char *name;
    const char *topic;
    uint64_t expected;
} match_cases[] = {
    {"a", "a", B(0) | B(3) | B(4) | B(5) | B(14)},
    {"a/b", "a/b", B(1) | B(2) | B(3) | B(4) | B(6) | B(10) | B(14)},
    {"a/b/c", "a/b/c", B(3) | B(4) | B(11) | B(14) | B(15)},
    {"a/x/c", "a/x/c", B(3) | B(4) | B(14) | B(15)},
    {"a//c", "a//c", B(3) | B(4) | B(14) | B(15)},
    {"a//b", "a//b", B(3) | B(4) | B(9) | B(14)},
    {"a/", "a/", B(2) | B(3) | B(4) | B(6) | B(14) | B(17)},
    {"/", "/", B(4) | B(6) | B(7) | B(8) | B(14) | B(16)},
    {"/a", "/a", B(4) | B(6) | B(7) | B(8) | B(14)},
    {"/b", "/b", B(4) | B(6) | B(7) | B(8) | B(10) | B(14)},
    {"//", "//", B(4) | B(7) | B(14) | B(19)},
    {"b", "b", B(4) | B(5) | B(14)},
    {"b/c/d", "b/c/d", B(4) | B(14)},
    {"[MQTT-4.7.2-1] $SYS", "$SYS", B(12) | B(18)},
    {"[MQTT-4.7.2-1] $SYS/x", "$SYS/x", B(12) | B(13)},
    {"[MQTT-4.7.2-1] $SYS/x/y", "$SYS/x/y", B(12)},
    {"[MQTT-4.7.2-1] $other", "$other/b", 0},
    {"a/$x", "a/$x", B(2) | B(3) | B(4) | B(6) | B(14)},
};

static void test_match_table(void)
{
    struct subtree *t = subtree_new();
    for (size_t i = 0; i < N(filters); i++)
        subtree_add(t, NULL, 0, filters[i], strlen(filters[i]), &owners[i], 0, (uint32_t)i + 1,
                    NULL);
    CHECK_EQ(subtree_count(t), N(filters), "table: count");
    static struct hits h;
    for (size_t i = 0; i < N(match_cases); i++) {
        collect(t, match_cases[i].topic, &h);
        uint64_t m = mask_of(&h);
        bool ok = m == match_cases[i].expected && (size_t)__builtin_popcountll(m) == h.n;
        if (!ok)
            fprintf(stderr, "  got %#llx want %#llx\n", (unsigned long long)m,
                    (unsigned long long)match_cases[i].expected);
        CHECK(ok, "match: %s", match_cases[i].name);
    }
    subtree_free(t);
}

/* --- add / replace / remove sequence ---------------------------------------------------------- */

enum op { ADD, DEL };

static const struct {
    const char *name;
    enum op op;
    const char *group;
    const char *filter;
    int owner;
    uint8_t options;
    int rc;
    bool replaced;
    size_t count;
} seq_cases[] = {
    {"add", ADD, NULL, "a/b", 1, 1, 0, false, 1},
    {"add other owner", ADD, NULL, "a/b", 2, 1, 0, false, 2},
    {"replace", ADD, NULL, "a/b", 1, 2, 0, true, 2},
    {"add other filter", ADD, NULL, "a/+", 1, 0, 0, false, 3},
    {"add shared", ADD, "g", "a/b", 1, 0, 0, false, 4},
    {"shared is separate", ADD, "h", "a/b", 1, 0, 0, false, 5},
    {"replace shared", ADD, "g", "a/b", 1, 1, 0, true, 5},
    {"remove missing owner", DEL, NULL, "a/b", 3, 0, TIDE_ENOTFOUND, false, 5},
    {"remove missing filter", DEL, NULL, "x/y", 1, 0, TIDE_ENOTFOUND, false, 5},
    {"remove missing group", DEL, "z", "a/b", 1, 0, TIDE_ENOTFOUND, false, 5},
    {"remove prefix node", DEL, NULL, "a", 1, 0, TIDE_ENOTFOUND, false, 5},
    {"remove", DEL, NULL, "a/b", 1, 0, 0, false, 4},
    {"remove twice", DEL, NULL, "a/b", 1, 0, TIDE_ENOTFOUND, false, 4},
    {"remove shared", DEL, "g", "a/b", 1, 0, 0, false, 3},
    {"remove shared h", DEL, "h", "a/b", 1, 0, 0, false, 2},
    {"remove other", DEL, NULL, "a/b", 2, 0, 0, false, 1},
    {"remove last", DEL, NULL, "a/+", 1, 0, 0, false, 0},
    {"re-add after prune", ADD, NULL, "a/b", 1, 0, 0, false, 1},
    {"remove again", DEL, NULL, "a/b", 1, 0, 0, false, 0},
};

static void test_sequence(void)
{
    struct subtree *t = subtree_new();
    for (size_t i = 0; i < N(seq_cases); i++) {
        const char *g = seq_cases[i].group, *f = seq_cases[i].filter;
        size_t gl = g ? strlen(g) : 0;
        bool rep = false;
        int rc;
        if (seq_cases[i].op == ADD)
            rc = subtree_add(t, g, gl, f, strlen(f), &owners[seq_cases[i].owner],
                             seq_cases[i].options, 7, &rep);
        else
            rc = subtree_remove(t, g, gl, f, strlen(f), &owners[seq_cases[i].owner]);
        CHECK(rc == seq_cases[i].rc && rep == seq_cases[i].replaced &&
                  subtree_count(t) == seq_cases[i].count,
              "sequence: %s: rc %d replaced %d count %zu", seq_cases[i].name, rc, rep,
              subtree_count(t));
    }
    subtree_free(t);
}

static void test_replace_options(void)
{
    struct subtree *t = subtree_new();
    subtree_add(t, NULL, 0, "x", 1, &owners[1], 1, 10, NULL);
    subtree_add(t, NULL, 0, "x", 1, &owners[1], 2, 11, NULL);
    static struct hits h;
    collect(t, "x", &h);
    CHECK(h.n == 1 && h.ids[0] == 11, "replace: one entry with the new sub_id");
    subtree_free(t);
}

/* An owner with several matching filters is visited once per filter. */
static void test_overlap(void)
{
    struct subtree *t = subtree_new();
    const char *fs[] = {"a/b", "a/+", "#", "a/#", "+/b", "+/+"};
    for (size_t i = 0; i < N(fs); i++)
        subtree_add(t, NULL, 0, fs[i], strlen(fs[i]), &owners[1], 0, (uint32_t)i + 1, NULL);
    static struct hits h;
    collect(t, "a/b", &h);
    CHECK(h.n == N(fs) && mask_of(&h) == 0x3f, "overlap: once per filter");
    collect(t, "a", &h);
    CHECK(h.n == 2 && mask_of(&h) == (B(2) | B(3)), "overlap: a matches # and a/#");
    subtree_free(t);
}

static struct subtree_group *find_group(const struct hits *h, const char *name)
{
    for (size_t i = 0; i < h->ng; i++) {
        if (strcmp(h->groups[i]->name, name) == 0)
            return h->groups[i];
    }
    return NULL;
}

static void test_shared(void)
{
    struct subtree *t = subtree_new();
    for (int k = 1; k <= 3; k++)
        subtree_add(t, "g1", 2, "a/+", 3, &owners[k], 1, (uint32_t)k, NULL);
    subtree_add(t, "g2", 2, "a/+", 3, &owners[1], 0, 9, NULL);
    subtree_add(t, "g1", 2, "a/#", 3, &owners[4], 0, 5, NULL);
    subtree_add(t, NULL, 0, "a/+", 3, &owners[1], 0, 6, NULL);
    CHECK_EQ(subtree_count(t), 6, "shared: count includes members");

    static struct hits h;
    collect(t, "a/x", &h);
    CHECK(h.n == 1 && h.ids[0] == 6, "shared: plain subscriber separate from groups");
    CHECK_EQ(h.ng, 3, "shared: one call per matching group");
    struct subtree_group *g1 = NULL;
    for (size_t i = 0; i < h.ng; i++) {
        if (strcmp(h.groups[i]->name, "g1") == 0 && strcmp(h.groups[i]->filter, "a/+") == 0)
            g1 = h.groups[i];
    }
    CHECK(g1 && g1->count == 3, "shared: g1 at a/+ has 3 members");
    struct subtree_group *g2 = find_group(&h, "g2");
    CHECK(g2 && g2->count == 1 && g2->members[0].owner == &owners[1] &&
              strcmp(g2->filter, "a/+") == 0,
          "shared: g2 member and filter");

    collect(t, "$SYS/x", &h);
    CHECK(h.n == 0 && h.ng == 0, "shared: [MQTT-4.7.2-1] no groups on $ topics");

    /* the cursor is the broker's, but stays < count */
    g1->cursor = 2;
    subtree_remove(t, "g1", 2, "a/+", 3, &owners[3]);
    collect(t, "a/x", &h);
    g1 = NULL;
    for (size_t i = 0; i < h.ng; i++) {
        if (strcmp(h.groups[i]->filter, "a/+") == 0 && strcmp(h.groups[i]->name, "g1") == 0)
            g1 = h.groups[i];
    }
    CHECK(g1 && g1->count == 2 && g1->cursor < g1->count, "shared: cursor kept below count");
    bool seen1 = false, seen2 = false;
    for (size_t i = 0; g1 && i < g1->count; i++) {
        seen1 |= g1->members[i].owner == &owners[1];
        seen2 |= g1->members[i].owner == &owners[2];
    }
    CHECK(seen1 && seen2, "shared: remaining members");

    subtree_remove(t, "g1", 2, "a/+", 3, &owners[1]);
    subtree_remove(t, "g1", 2, "a/+", 3, &owners[2]);
    collect(t, "a/x", &h);
    CHECK_EQ(h.ng, 2, "shared: empty group at a/+ removed (g2 and g1 at a/# left)");
    size_t g1_at_plus = 0;
    for (size_t i = 0; i < h.ng; i++)
        g1_at_plus +=
            strcmp(h.groups[i]->filter, "a/+") == 0 && strcmp(h.groups[i]->name, "g1") == 0;
    CHECK_EQ(g1_at_plus, 0, "shared: g1 gone from a/+");
    CHECK_EQ(subtree_remove(t, "g1", 2, "a/+", 3, &owners[1]), TIDE_ENOTFOUND,
             "shared: remove from removed group");

    subtree_remove(t, "g2", 2, "a/+", 3, &owners[1]);
    subtree_remove(t, "g1", 2, "a/#", 3, &owners[4]);
    subtree_remove(t, NULL, 0, "a/+", 3, &owners[1]);
    CHECK_EQ(subtree_count(t), 0, "shared: all removed");
    collect(t, "a/x", &h);
    CHECK(h.n == 0 && h.ng == 0, "shared: nothing matches after removal");
    subtree_free(t);
}

/* Many owners on one node and one group: exercises the owner index and swap-remove. */
static void test_large_node(void)
{
    enum { K = 1500 };
    struct subtree *t = subtree_new();
    static int order[K];
    for (int k = 0; k < K; k++) {
        subtree_add(t, NULL, 0, "big/+", 5, &owners[k], 0, (uint32_t)k + 1, NULL);
        subtree_add(t, "g", 1, "big/+", 5, &owners[k], 0, (uint32_t)k + 1, NULL);
        order[k] = k;
    }
    bool rep = false;
    subtree_add(t, NULL, 0, "big/+", 5, &owners[K / 2], 3, 99999, &rep);
    CHECK(rep && subtree_count(t) == 2 * K, "large: replace in indexed node");
    srand(7);
    for (int k = K - 1; k > 0; k--) {
        int j = rand() % (k + 1), tmp = order[k];
        order[k] = order[j];
        order[j] = tmp;
    }
    static struct hits h;
    bool ok = true;
    for (int i = 0; i < K; i++) {
        ok &= subtree_remove(t, NULL, 0, "big/+", 5, &owners[order[i]]) == 0;
        ok &= subtree_remove(t, "g", 1, "big/+", 5, &owners[order[i]]) == 0;
        ok &= subtree_remove(t, NULL, 0, "big/+", 5, &owners[order[i]]) == TIDE_ENOTFOUND;
        if (i % 97 == 0) {
            collect(t, "big/x", &h);
            ok &= h.n == (size_t)(K - 1 - i);
            ok &= i == K - 1 ? h.ng == 0 : h.ng == 1 && h.groups[0]->count == (size_t)(K - 1 - i);
        }
    }
    CHECK(ok, "large: random-order removal");
    CHECK_EQ(subtree_count(t), 0, "large: empty at end");
    subtree_free(t);
}

/* --- randomized cross-check against topic_matches --------------------------------------------- */

struct shadow {
    int owner;
    int group; /* -1: not shared */
    char filter[40];
    uint32_t sub_id;
};

static const char *const lvls[] = {"a", "b", "", "$x", "cc"};
static const char *const groups[] = {"g", "h"};

static void rand_topic(char *out, bool filter)
{
    int depth = 1 + rand() % 4;
    out[0] = '\0';
    for (int d = 0; d < depth; d++) {
        if (d)
            strcat(out, "/");
        int r = rand() % (filter ? 8 : 5);
        if (r == 5 || r == 6)
            strcat(out, "+");
        else if (r == 7) {
            strcat(out, "#");
            return;
        } else {
            strcat(out, lvls[r]);
        }
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void test_random(void)
{
    enum { MAXS = 600, OWNERS = 30, ROUNDS = 4000 };
    static struct shadow sh[MAXS];
    static struct hits h;
    static uint32_t want[MAXHITS];
    size_t ns = 0;
    uint32_t next_id = 1;
    bool ok = true;
    struct subtree *t = subtree_new();
    srand(12345);
    for (int round = 0; round < ROUNDS && ok; round++) {
        struct shadow s = {.owner = rand() % OWNERS, .group = rand() % 4 == 0 ? rand() % 2 : -1};
        rand_topic(s.filter, true);
        if (topic_validate_filter(s.filter, strlen(s.filter)) != 0) {
            ok = s.filter[0] == '\0'; /* only "" can come out invalid; skip it */
            continue;
        }
        const char *g = s.group >= 0 ? groups[s.group] : NULL;
        size_t at = ns;
        for (size_t i = 0; i < ns; i++) {
            if (sh[i].owner == s.owner && sh[i].group == s.group &&
                strcmp(sh[i].filter, s.filter) == 0)
                at = i;
        }
        if (rand() % 3 == 0 || ns == MAXS) { /* remove */
            int rc = subtree_remove(t, g, g ? 1 : 0, s.filter, strlen(s.filter), &owners[s.owner]);
            ok &= rc == (at < ns ? 0 : TIDE_ENOTFOUND);
            if (at < ns)
                sh[at] = sh[--ns];
        } else {
            bool rep;
            s.sub_id = next_id++;
            subtree_add(t, g, g ? 1 : 0, s.filter, strlen(s.filter), &owners[s.owner], 0, s.sub_id,
                        &rep);
            ok &= rep == (at < ns);
            sh[at] = s;
            if (at == ns)
                ns++;
        }
        ok &= subtree_count(t) == ns;

        char name[40];
        do
            rand_topic(name, false);
        while (topic_validate_name(name, strlen(name)) != 0);
        collect(t, name, &h);
        size_t nw = 0, members = 0, ngroups = 0;
        for (size_t i = 0; i < ns; i++) {
            if (!topic_matches(sh[i].filter, strlen(sh[i].filter), name, strlen(name)))
                continue;
            if (sh[i].group < 0) {
                want[nw++] = sh[i].sub_id;
                continue;
            }
            members++;
            bool first = true; /* count distinct (group, filter) pairs */
            for (size_t j = 0; j < i; j++) {
                if (sh[j].group == sh[i].group && strcmp(sh[j].filter, sh[i].filter) == 0)
                    first = false;
            }
            ngroups += first;
        }
        qsort(want, nw, sizeof want[0], cmp_u32);
        qsort(h.ids, h.n, sizeof h.ids[0], cmp_u32);
        ok &= h.n == nw && memcmp(h.ids, want, nw * sizeof want[0]) == 0;
        size_t got_members = 0;
        for (size_t i = 0; i < h.ng; i++) {
            struct subtree_group *gr = h.groups[i];
            got_members += gr->count;
            ok &= topic_matches(gr->filter, strlen(gr->filter), name, strlen(name));
            for (size_t m = 0; m < gr->count; m++) {
                bool found = false;
                for (size_t j = 0; j < ns; j++) {
                    found |= sh[j].group >= 0 && strcmp(groups[sh[j].group], gr->name) == 0 &&
                             strcmp(sh[j].filter, gr->filter) == 0 &&
                             &owners[sh[j].owner] == gr->members[m].owner &&
                             sh[j].sub_id == gr->members[m].sub_id;
                }
                ok &= found;
            }
        }
        ok &= h.ng == ngroups && got_members == members;
        if (!ok)
            fprintf(stderr, "  round %d name '%s'\n", round, name);
    }
    CHECK(ok, "random: subtree_match equals brute force");
    for (size_t i = 0; i < ns; i++) {
        const char *g = sh[i].group >= 0 ? groups[sh[i].group] : NULL;
        subtree_remove(t, g, g ? 1 : 0, sh[i].filter, strlen(sh[i].filter), &owners[sh[i].owner]);
    }
    CHECK_EQ(subtree_count(t), 0, "random: empty after removing all");
    subtree_free(t);
}

int main(void)
{
    test_match_table();
    test_sequence();
    test_replace_options();
    test_overlap();
    test_shared();
    test_large_node();
    test_random();
    return unit_finish();
}
