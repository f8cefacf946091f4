/* The retained-message store: one node per topic level, children in a level table (levels.h)
 * keyed by the level string, each node holding at most one message. Owns its nodes and one
 * reference to each stored message. Pure: no I/O, no logging, no clock (expiry is the caller's
 * business), and retain_match allocates nothing. */
#include "retain.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "levels.h"
#include "msg.h"
#include "util/alloc.h"

struct rnode {
    struct rnode *parent;
    struct level_table kids; /* children by level */
    struct msg *m;           /* the retained message of this topic, or NULL */
    struct level_key key;    /* of lvl, in the parent's table */
    char lvl[];
};
LEVEL_KEY_CHECK(struct rnode, key, lvl);

#define KEY offsetof(struct rnode, key)

struct retain_store {
    struct rnode *root; /* zero levels; never holds a message (names are non-empty) */
    size_t count;
    uint64_t bytes;
};

struct mctx {
    retain_fn fn;
    void *ctx;
};

/* --- nodes ------------------------------------------------------------------------------------ */

static struct rnode *node_new(struct rnode *parent, const char *s, size_t len, uint32_t h)
{
    struct rnode *n = xcalloc(1, sizeof *n + len + 1);
    n->parent = parent;
    n->key = (struct level_key){.h = h, .len = (uint32_t)len};
    memcpy(n->lvl, s, len);
    return n;
}

static void node_free(struct rnode *n)
{
    for (uint32_t i = 0; i < n->kids.cap; i++) {
        if (n->kids.slots[i])
            node_free(n->kids.slots[i]);
    }
    msg_release(&n->m);
    level_fini(&n->kids);
    free(n);
}

/* The node of topic t, created on the way when create is set; NULL if absent otherwise. */
static struct rnode *path(struct retain_store *s, const char *t, size_t len, bool create)
{
    struct rnode *n = s->root;
    const char *p = t, *end = t + len;
    for (;;) {
        const char *e = memchr(p, '/', (size_t)(end - p));
        if (!e)
            e = end;
        size_t llen = (size_t)(e - p);
        uint32_t h = level_hash(p, llen);
        struct rnode *c = level_find(&n->kids, KEY, p, llen, h);
        if (!c && create) {
            c = node_new(n, p, llen, h);
            level_add(&n->kids, KEY, c);
        }
        n = c;
        if (!n || e == end)
            return n;
        p = e + 1;
    }
}

static void prune(struct retain_store *s, struct rnode *n)
{
    while (n != s->root && !n->m && n->kids.count == 0) {
        struct rnode *p = n->parent;
        level_del(&p->kids, KEY, n);
        free(n);
        n = p;
    }
}

/* --- API -------------------------------------------------------------------------------------- */

struct retain_store *retain_new(void)
{
    struct retain_store *s = xcalloc(1, sizeof *s);
    s->root = node_new(NULL, "", 0, 0);
    return s;
}

void retain_free(struct retain_store *s)
{
    if (!s)
        return;
    node_free(s->root);
    free(s);
}

void retain_set(struct retain_store *s, struct msg *m)
{
    if (m->payload_len == 0) { /* [MQTT-3.3.1-6] [MQTT-3.3.1-7] an empty payload clears */
        retain_clear(s, m->topic, m->topic_len);
        return;
    }
    struct rnode *n = path(s, m->topic, m->topic_len, true);
    struct msg *old = n->m;
    n->m = msg_retain(m);
    if (old) {
        s->bytes -= old->payload_len;
        msg_release(&old);
    } else {
        s->count++;
    }
    s->bytes += m->payload_len;
}

void retain_clear(struct retain_store *s, const char *t, size_t len)
{
    struct rnode *n = path(s, t, len, false);
    if (!n || !n->m)
        return;
    s->bytes -= n->m->payload_len;
    s->count--;
    msg_release(&n->m);
    prune(s, n);
}

static bool is_dollar(const struct rnode *n)
{
    return n->key.len > 0 && n->lvl[0] == '$';
}

/* '#': n and everything under it; at the first level '$' topics are skipped [MQTT-4.7.2-1]. */
static void all(const struct rnode *n, bool first, const struct mctx *m)
{
    if (n->m)
        m->fn(m->ctx, n->m);
    for (uint32_t i = 0; i < n->kids.cap; i++) {
        const struct rnode *c = n->kids.slots[i];
        if (c && !(first && is_dollar(c)))
            all(c, false, m);
    }
}

/* n has matched every filter level before p; p is NULL once the filter is used up. */
static void walk(const struct rnode *n, const char *p, const char *end, bool first,
                 const struct mctx *m)
{
    if (!p) {
        if (n->m)
            m->fn(m->ctx, n->m);
        return;
    }
    const char *e = memchr(p, '/', (size_t)(end - p));
    const char *next = e ? e + 1 : NULL;
    if (!e)
        e = end;
    size_t len = (size_t)(e - p);
    if (len == 1 && *p == '#') { /* "a/#" matches "a" too (§4.7.1.2) */
        all(n, first, m);
    } else if (len == 1 && *p == '+') {
        for (uint32_t i = 0; i < n->kids.cap; i++) {
            const struct rnode *c = n->kids.slots[i];
            if (c && !(first && is_dollar(c)))
                walk(c, next, end, false, m);
        }
    } else {
        const struct rnode *c =
            n->kids.count ? level_find(&n->kids, KEY, p, len, level_hash(p, len)) : NULL;
        if (c)
            walk(c, next, end, false, m);
    }
}

void retain_match(const struct retain_store *s, const char *f, size_t flen, retain_fn fn, void *ctx)
{
    struct mctx m = {.fn = fn, .ctx = ctx};
    walk(s->root, f, f + flen, true, &m);
}

size_t retain_count(const struct retain_store *s)
{
    return s->count;
}

uint64_t retain_bytes(const struct retain_store *s)
{
    return s->bytes;
}
