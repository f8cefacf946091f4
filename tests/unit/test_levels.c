/* Unit tests for core/levels.c: FNV-1a vectors, then tables of {name, children added, children
 * deleted, expected slot layout} with forced hashes, so collisions, probe runs that wrap past the
 * last slot and backward-shift deletion across the wrap are pinned slot by slot; then a
 * randomized cross-check against a plain set with hashes whose homes are the last 16 slots
 * whatever the capacity (long runs that wrap).
 * Exits non-zero on any failure. */
#include "levels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct tnode {
    int id;
    struct level_key key;
    char lvl[16];
};
LEVEL_KEY_CHECK(struct tnode, key, lvl);

#define KEY offsetof(struct tnode, key)

static void node_set(struct tnode *n, int id, const char *lvl, size_t len, uint32_t h)
{
    n->id = id;
    n->key = (struct level_key){.h = h, .len = (uint32_t)len};
    memcpy(n->lvl, lvl, len);
}

static struct tnode *find(const struct level_table *t, const struct tnode *like)
{
    return level_find(t, KEY, like->lvl, like->key.len, like->key.h);
}

/* --- hash vectors ----------------------------------------------------------------------------- */

static const struct {
    const char *in;
    uint32_t expected;
} hash_cases[] = {
    {"", 0x811c9dc5u},
    {"a", 0xe40c292cu},
    {"foobar", 0xbf9cf968u},
};

static void test_hash(void)
{
    for (size_t i = 0; i < N(hash_cases); i++) {
        const char *s = hash_cases[i].in;
        CHECK_EQ(level_hash(s, strlen(s)), hash_cases[i].expected, "hash: '%s'", s);
    }
}

/* --- layout table ----------------------------------------------------------------------------- */

/* A child is "lvl@h" (h forced, so the layout is predictable) or "lvl" (h = level_hash(lvl)); an
 * empty lvl is allowed ("@3"). A layout lists every slot's level, "." for an empty slot; NULL
 * skips the layout check. Children are added in order, then the deletions run in order; growing
 * re-inserts the children in their old slot order, which is not the order they were added in. */
static const struct {
    const char *name;
    const char *add;
    const char *del;
    const char *slots;
} cases[] = {
    {"empty table", "", "", ""},
    {"one child", "a@0", "", "a ."},
    {"home slots", "a@0 b@1 c@2 d@3", "", "a b c d . . . ."},
    {"collisions probe forward", "a@1 b@1 c@1", "", ". a b c"},
    /* grown from 4 slots to 8 when d is added, re-inserting c a b in their old slot order */
    {"run wraps past the last slot", "a@6 b@6 c@6 d@7", "", "b d . . . . c a"},
    {"delete head of a wrapped run shifts all back", "a@6 b@6 c@6 d@7", "c", "d . . . . . a b"},
    {"delete inside a wrapped run", "a@6 b@6 c@6 d@7", "a", "d . . . . . c b"},
    {"delete just after the wrap", "a@6 b@6 c@6 d@7", "b", "d . . . . . c a"},
    {"delete tail of a wrapped run", "a@6 b@6 c@6 d@7", "d", "b . . . . . c a"},
    {"entries at home after the wrap stay", "a@6 b@6 c@0 d@0", "b", "c d . . . . a ."},
    {"one at home stays, a later one moves back across the wrap", "f@1 g@2 x@6 y@7 z@6", "x",
     ". f g . . . z y"},
    {"delete two across the wrap", "a@7 b@7 c@7 d@0 e@1", "a c", "d e . . . . . b"},
    {"same hash, different bytes", "ab@5 ba@5", "", ". ab ba ."},
    {"same hash, different length", "a@5 aa@5 @5", "aa", ". a @ ."},
    {"deleting every child frees the slots", "a@3 b@3", "a b", ""},
    {"real hashes", "sensors temp humidity $SYS + #", "temp", NULL},
};

struct built {
    struct tnode nodes[8];
    size_t n;
};

/* Parses one "lvl@h" or "lvl" token of s at *p into n; false at the end of s. */
static bool next_child(const char **p, struct tnode *n, int id)
{
    const char *s = *p + strspn(*p, " ");
    size_t len = strcspn(s, " ");
    if (len == 0)
        return false;
    const char *at = memchr(s, '@', len);
    size_t llen = at ? (size_t)(at - s) : len;
    node_set(n, id, s, llen, at ? (uint32_t)strtoul(at + 1, NULL, 10) : level_hash(s, llen));
    *p = s + len;
    return true;
}

static struct tnode *by_name(struct built *b, const struct tnode *like)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->nodes[i].key.len == like->key.len &&
            memcmp(b->nodes[i].lvl, like->lvl, like->key.len) == 0)
            return &b->nodes[i];
    }
    return NULL;
}

static void layout(const struct level_table *t, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < t->cap && o < cap; i++) {
        const struct tnode *c = t->slots[i];
        o += (size_t)snprintf(out + o, cap - o, "%s%.*s", i ? " " : "", c ? (int)c->key.len : 1,
                              c ? c->lvl : ".");
        if (c && c->key.len == 0)
            o += (size_t)snprintf(out + o, cap - o, "@");
    }
}

static void test_table(void)
{
    for (size_t k = 0; k < N(cases); k++) {
        static struct built b;
        struct level_table t = {0};
        struct tnode like;
        bool deleted[N(b.nodes)] = {false};
        const char *p = cases[k].add;
        b.n = 0;
        while (b.n < N(b.nodes) && next_child(&p, &b.nodes[b.n], (int)b.n)) {
            level_add(&t, KEY, &b.nodes[b.n]);
            b.n++;
        }
        size_t live = b.n;
        for (p = cases[k].del; next_child(&p, &like, -1);) {
            struct tnode *c = by_name(&b, &like);
            if (!CHECK(c, "%s: bad case", cases[k].name))
                continue;
            level_del(&t, KEY, c);
            deleted[c->id] = true;
            live--;
        }
        CHECK_EQ(t.count, live, "%s: count", cases[k].name);
        for (size_t i = 0; i < b.n; i++) {
            struct tnode *want = deleted[i] ? NULL : &b.nodes[i];
            CHECK(find(&t, &b.nodes[i]) == want, "%s: find '%.*s' (%s)", cases[k].name,
                  (int)b.nodes[i].key.len, b.nodes[i].lvl, deleted[i] ? "deleted" : "present");
        }
        node_set(&like, -1, "zz", 2, 6);
        CHECK(!find(&t, &like), "%s: absent key", cases[k].name);
        if (cases[k].slots) {
            char got[128];
            layout(&t, got, sizeof got);
            CHECK_STR(got, cases[k].slots, "%s: layout", cases[k].name);
        }
        CHECK(live || (!t.slots && t.cap == 0), "%s: emptied table holds no slots", cases[k].name);
        level_fini(&t);
        CHECK(!t.slots && t.count == 0 && t.cap == 0, "%s: fini", cases[k].name);
    }
}

/* --- randomized cross-check ------------------------------------------------------------------- */

/* Every child sits in its own probe run: no empty slot between its home and its slot. */
static bool runs_intact(const struct level_table *t)
{
    for (uint32_t i = 0; i < t->cap; i++) {
        const struct tnode *c = t->slots[i];
        if (!c)
            continue;
        for (uint32_t j = c->key.h & (t->cap - 1); j != i; j = (j + 1) & (t->cap - 1)) {
            if (!t->slots[j])
                return false;
        }
    }
    return t->count * 4 <= t->cap * 3;
}

static void test_random(void)
{
    enum { NODES = 300, ROUNDS = 20000 };
    static struct tnode nodes[NODES];
    static bool in[NODES];
    struct level_table t = {0};
    size_t live = 0;
    bool ok = true;
    srand(2024);
    for (int i = 0; i < NODES; i++) {
        char s[16];
        int len = snprintf(s, sizeof s, "n%d", i);
        /* home is one of the last 16 slots at every capacity >= 16: every long run wraps */
        node_set(&nodes[i], i, s, (size_t)len, UINT32_MAX - (uint32_t)(rand() % 16));
    }
    for (int round = 0; round < ROUNDS && ok; round++) {
        int i = rand() % NODES;
        if (in[i]) {
            level_del(&t, KEY, &nodes[i]);
            live--;
        } else {
            level_add(&t, KEY, &nodes[i]);
            live++;
        }
        in[i] = !in[i];
        ok &= t.count == live && runs_intact(&t);
        for (int k = 0; k < 8; k++) {
            int j = rand() % NODES;
            ok &= find(&t, &nodes[j]) == (in[j] ? &nodes[j] : NULL);
        }
        if (!ok)
            fprintf(stderr, "  round %d node %d\n", round, i);
    }
    CHECK(ok, "random: level table equals a plain set");
    for (int i = 0; i < NODES; i++) {
        if (in[i])
            level_del(&t, KEY, &nodes[i]);
    }
    CHECK(t.count == 0 && !t.slots, "random: empty after deleting all");
}

int main(void)
{
    test_hash();
    test_table();
    test_random();
    return unit_finish();
}
