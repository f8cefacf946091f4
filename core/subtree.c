/* The subscription tree: one node per filter level, literal children in a level table (levels.h)
 * keyed by the level string, '+' and '#' children on their own edges. Each node owns its
 * subscriptions in an array (with an owner -> index hash once it grows) and its shared groups.
 * Owns every node, array and string it allocates; never touches an owner. Pure: no I/O, no
 * logging, and subtree_match allocates nothing. */
#include "subtree.h"

#include <stdlib.h>
#include <string.h>

#include "levels.h"
#include "util/alloc.h"
#include "util/err.h"

/* A sub list up to this size is scanned; past it an owner -> index hash keeps removal O(1). */
#define SCAN_MAX 8

struct sublist {
    struct subtree_sub *v;
    uint32_t n, cap;
    uint32_t *idx; /* linear probing; a slot holds index + 1, 0 is empty; NULL while small */
    uint32_t icap; /* power of two, n <= icap / 2 */
};

struct group {
    struct subtree_group pub; /* members/count mirror l; name and filter are stored after us */
    struct sublist l;
};

struct node {
    struct node *parent;
    struct node *plus;       /* the '+' child */
    struct node *hash;       /* the '#' child */
    struct level_table kids; /* literal children by level */
    struct group **groups;
    struct sublist subs;
    uint32_t ngroups;
    struct level_key key; /* of lvl, in the parent's table (h is 0 on a '+' or '#' edge) */
    char lvl[];
};
LEVEL_KEY_CHECK(struct node, key, lvl);

#define KEY offsetof(struct node, key)

struct subtree {
    struct node *root;
    size_t count;
};

struct mctx {
    subtree_sub_fn sub_fn;
    subtree_group_fn group_fn;
    void *ctx;
};

/* --- owner index ------------------------------------------------------------------------------ */

static uint32_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static void idx_put(struct sublist *l, uint32_t i)
{
    uint32_t m = l->icap - 1, s = ptr_hash(l->v[i].owner) & m;
    while (l->idx[s])
        s = (s + 1) & m;
    l->idx[s] = i + 1;
}

static uint32_t *idx_slot(const struct sublist *l, const void *owner)
{
    uint32_t m = l->icap - 1, s = ptr_hash(owner) & m;
    while (l->idx[s]) {
        if (l->v[l->idx[s] - 1].owner == owner)
            return &l->idx[s];
        s = (s + 1) & m;
    }
    return NULL;
}

/* Empties slot s and shifts later entries of the probe run back (no tombstones). */
static void idx_del(struct sublist *l, uint32_t s)
{
    uint32_t m = l->icap - 1, i = s, j = s;
    l->idx[i] = 0;
    for (;;) {
        j = (j + 1) & m;
        if (!l->idx[j])
            return;
        uint32_t home = ptr_hash(l->v[l->idx[j] - 1].owner) & m;
        /* the entry at j may stay if its home lies cyclically in (i, j] */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
            continue;
        l->idx[i] = l->idx[j];
        l->idx[j] = 0;
        i = j;
    }
}

static void idx_rebuild(struct sublist *l, uint32_t cap)
{
    free(l->idx);
    l->idx = xcalloc(cap, sizeof *l->idx);
    l->icap = cap;
    for (uint32_t i = 0; i < l->n; i++)
        idx_put(l, i);
}

/* --- subscription lists ----------------------------------------------------------------------- */

static long sl_find(const struct sublist *l, const void *owner)
{
    if (l->idx) {
        const uint32_t *s = idx_slot(l, owner);
        return s ? (long)*s - 1 : -1;
    }
    for (uint32_t i = 0; i < l->n; i++) {
        if (l->v[i].owner == owner)
            return (long)i;
    }
    return -1;
}

static void sl_append(struct sublist *l, void *owner, uint8_t options, uint32_t sub_id)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1;
        l->v = xrealloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    l->v[l->n++] = (struct subtree_sub){.owner = owner, .options = options, .sub_id = sub_id};
    if (l->idx && l->n * 2 <= l->icap)
        idx_put(l, l->n - 1);
    else if (l->idx || l->n > SCAN_MAX)
        idx_rebuild(l, l->icap ? l->icap * 2 : 4 * SCAN_MAX);
}

static void sl_fini(struct sublist *l)
{
    free(l->v);
    free(l->idx);
    memset(l, 0, sizeof *l);
}

/* Swap-remove entry i, fixing the moved entry's index slot. */
static void sl_remove(struct sublist *l, uint32_t i)
{
    uint32_t last = l->n - 1;
    if (l->idx)
        idx_del(l, (uint32_t)(idx_slot(l, l->v[i].owner) - l->idx));
    if (i != last) {
        l->v[i] = l->v[last];
        if (l->idx)
            *idx_slot(l, l->v[i].owner) = i + 1; /* finds the slot holding last + 1 */
    }
    if (--l->n == 0)
        sl_fini(l);
}

/* --- nodes ------------------------------------------------------------------------------------ */

static struct node *node_new(struct node *parent, const char *s, size_t len, uint32_t h)
{
    struct node *n = xcalloc(1, sizeof *n + len + 1);
    n->parent = parent;
    n->key = (struct level_key){.h = h, .len = (uint32_t)len};
    memcpy(n->lvl, s, len);
    return n;
}

static bool node_empty(const struct node *n)
{
    return n->subs.n == 0 && n->ngroups == 0 && n->kids.count == 0 && !n->plus && !n->hash;
}

static void node_free(struct node *n)
{
    for (uint32_t i = 0; i < n->kids.cap; i++) {
        if (n->kids.slots[i])
            node_free(n->kids.slots[i]);
    }
    if (n->plus)
        node_free(n->plus);
    if (n->hash)
        node_free(n->hash);
    for (uint32_t i = 0; i < n->ngroups; i++) {
        sl_fini(&n->groups[i]->l);
        free(n->groups[i]);
    }
    free(n->groups);
    sl_fini(&n->subs);
    level_fini(&n->kids);
    free(n);
}

/* The node of filter f, created on the way when create is set; NULL if absent otherwise. */
static struct node *path(struct subtree *t, const char *f, size_t flen, bool create)
{
    struct node *n = t->root;
    const char *p = f, *end = f + flen;
    for (;;) {
        const char *e = memchr(p, '/', (size_t)(end - p));
        if (!e)
            e = end;
        size_t len = (size_t)(e - p);
        struct node **edge = NULL;
        if (len == 1 && *p == '+')
            edge = &n->plus;
        else if (len == 1 && *p == '#')
            edge = &n->hash;
        if (edge) {
            if (!*edge && create)
                *edge = node_new(n, p, len, 0);
            n = *edge;
        } else {
            uint32_t h = level_hash(p, len);
            struct node *c = level_find(&n->kids, KEY, p, len, h);
            if (!c && create) {
                c = node_new(n, p, len, h);
                level_add(&n->kids, KEY, c);
            }
            n = c;
        }
        if (!n || e == end)
            return n;
        p = e + 1;
    }
}

/* Frees n and its ancestors while they hold nothing (the root stays). */
static void prune(struct subtree *t, struct node *n)
{
    while (n != t->root && node_empty(n)) {
        struct node *p = n->parent;
        if (p->plus == n)
            p->plus = NULL;
        else if (p->hash == n)
            p->hash = NULL;
        else
            level_del(&p->kids, KEY, n);
        free(n);
        n = p;
    }
}

/* --- groups ----------------------------------------------------------------------------------- */

static struct group *group_find(const struct node *n, const char *name, size_t len, uint32_t *at)
{
    for (uint32_t i = 0; i < n->ngroups; i++) {
        const char *g = n->groups[i]->pub.name;
        if (strncmp(g, name, len) == 0 && g[len] == '\0') {
            *at = i;
            return n->groups[i];
        }
    }
    return NULL;
}

static struct group *group_add(struct node *n, const char *name, size_t nlen, const char *f,
                               size_t flen)
{
    struct group *g = xcalloc(1, sizeof *g + nlen + 1 + flen + 1);
    char *s = (char *)(g + 1);
    memcpy(s, name, nlen);
    s[nlen] = '\0';
    memcpy(s + nlen + 1, f, flen);
    s[nlen + 1 + flen] = '\0';
    g->pub.name = s;
    g->pub.filter = s + nlen + 1;
    n->groups = xrealloc(n->groups, (n->ngroups + 1) * sizeof *n->groups);
    n->groups[n->ngroups++] = g;
    return g;
}

static void group_sync(struct group *g)
{
    g->pub.members = g->l.v;
    g->pub.count = g->l.n;
    if (g->pub.cursor >= g->pub.count)
        g->pub.cursor = 0;
}

static void group_del(struct node *n, uint32_t at)
{
    free(n->groups[at]);
    n->groups[at] = n->groups[--n->ngroups];
    if (n->ngroups == 0) {
        free(n->groups);
        n->groups = NULL;
    }
}

/* --- API -------------------------------------------------------------------------------------- */

struct subtree *subtree_new(void)
{
    struct subtree *t = xcalloc(1, sizeof *t);
    t->root = node_new(NULL, "", 0, 0);
    return t;
}

void subtree_free(struct subtree *t)
{
    if (!t)
        return;
    node_free(t->root);
    free(t);
}

int subtree_add(struct subtree *t, const char *group, size_t group_len, const char *f, size_t flen,
                void *owner, uint8_t options, uint32_t sub_id, bool *replaced)
{
    struct node *n = path(t, f, flen, true);
    struct group *g = NULL;
    uint32_t at;
    if (group) {
        g = group_find(n, group, group_len, &at);
        if (!g)
            g = group_add(n, group, group_len, f, flen);
    }
    struct sublist *l = g ? &g->l : &n->subs;
    long i = sl_find(l, owner);
    if (replaced)
        *replaced = i >= 0;
    if (i >= 0) {
        l->v[i].options = options;
        l->v[i].sub_id = sub_id;
        return 0;
    }
    sl_append(l, owner, options, sub_id);
    t->count++;
    if (g)
        group_sync(g);
    return 0;
}

int subtree_remove(struct subtree *t, const char *group, size_t group_len, const char *f,
                   size_t flen, void *owner)
{
    struct node *n = path(t, f, flen, false);
    if (!n)
        return TIDE_ENOTFOUND;
    struct group *g = NULL;
    uint32_t at = 0;
    if (group) {
        g = group_find(n, group, group_len, &at);
        if (!g)
            return TIDE_ENOTFOUND;
    }
    struct sublist *l = g ? &g->l : &n->subs;
    long i = sl_find(l, owner);
    if (i < 0)
        return TIDE_ENOTFOUND;
    sl_remove(l, (uint32_t)i);
    t->count--;
    if (g) {
        group_sync(g);
        if (g->l.n == 0)
            group_del(n, at);
    }
    prune(t, n);
    return 0;
}

static void emit(const struct node *n, const struct mctx *m)
{
    if (m->sub_fn) {
        for (uint32_t i = 0; i < n->subs.n; i++)
            m->sub_fn(m->ctx, &n->subs.v[i]);
    }
    if (m->group_fn) {
        for (uint32_t i = 0; i < n->ngroups; i++)
            m->group_fn(m->ctx, &n->groups[i]->pub);
    }
}

/* n has matched every name level before p; p is NULL once the name is used up. Recursion depth is
 * bounded by the depth of the tree along the name (the broker's topic depth limit). */
static void walk(const struct node *n, const char *p, const char *end, const struct mctx *m)
{
    if (!p) {
        emit(n, m);
        if (n->hash) /* "a/#" matches "a" */
            emit(n->hash, m);
        return;
    }
    if (n->hash)
        emit(n->hash, m);
    const char *e = memchr(p, '/', (size_t)(end - p));
    const char *next = e ? e + 1 : NULL;
    if (!e)
        e = end;
    if (n->kids.count) {
        size_t len = (size_t)(e - p);
        const struct node *c = level_find(&n->kids, KEY, p, len, level_hash(p, len));
        if (c)
            walk(c, next, end, m);
    }
    if (n->plus)
        walk(n->plus, next, end, m);
}

void subtree_match(const struct subtree *t, const char *name, size_t len, subtree_sub_fn sub_fn,
                   subtree_group_fn group_fn, void *ctx)
{
    struct mctx m = {.sub_fn = sub_fn, .group_fn = group_fn, .ctx = ctx};
    const struct node *r = t->root;
    if (len == 0 || name[0] != '$') {
        walk(r, name, name + len, &m);
        return;
    }
    /* [MQTT-4.7.2-1] a '$' name's first level is matched only literally, never by '+' or '#' */
    if (!r->kids.count)
        return;
    const char *e = memchr(name, '/', len);
    const char *next = e ? e + 1 : NULL;
    size_t l1 = e ? (size_t)(e - name) : len;
    const struct node *c = level_find(&r->kids, KEY, name, l1, level_hash(name, l1));
    if (c)
        walk(c, next, name + len, &m);
}

size_t subtree_count(const struct subtree *t)
{
    return t->count;
}
