/* The children of a topic-tree node, keyed by topic level: a small open-addressing hash of
 * pointers to the caller's child nodes (linear probing, power-of-two capacity kept at most 3/4
 * full, backward-shift deletion, no tombstones). Each child embeds a struct level_key directly
 * followed by its level bytes, and the table reads that key at a fixed offset inside the node, so
 * it never copies a key and allocates only its slot array. Shared by the subscription tree and
 * the retained store, which keep their own node structs. Pure: no I/O, no logging. */
#ifndef TIDE_LEVELS_H
#define TIDE_LEVELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A child's key. In the node it must be followed immediately by its `len` level bytes
 * (`struct level_key key; char lvl[];`), which LEVEL_KEY_CHECK proves at compile time. */
struct level_key {
    uint32_t h;   /* level_hash() of the bytes; the table never recomputes it */
    uint32_t len; /* number of level bytes (topic levels are at most 65535 bytes) */
};

/* Fails to compile unless node type T keeps its level bytes `bytes` right after its key `key`. */
#define LEVEL_KEY_CHECK(T, key, bytes)                                                             \
    _Static_assert(offsetof(T, bytes) == offsetof(T, key) + sizeof(struct level_key),              \
                   #T "." #bytes " must directly follow " #T "." #key)

/* A table of child nodes. All-zero is the empty table. It owns its slot array, never the nodes.
 * Callers may visit every child by scanning slots[0 .. cap) and skipping NULL slots; the table
 * must not change during such a scan. */
struct level_table {
    void **slots;   /* cap entries, NULL where empty; NULL while count is 0 */
    uint32_t count; /* children in the table */
    uint32_t cap;   /* a power of two, or 0 */
};

/* The two lookup functions run once per topic level of every match, so they are inline: the
 * caller's constant key_off then folds away, as it did when each tree had its own copy. */

/* The hash of one level's bytes (32-bit FNV-1a). s may be NULL when len is 0. */
static inline uint32_t level_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

/* Returns the child whose key (at byte offset key_off in each node) has hash h and bytes
 * s[0 .. len), or NULL if there is none. h must be level_hash(s, len). Borrows everything;
 * allocates nothing. The result is owned by the caller's tree, not by the table. */
static inline void *level_find(const struct level_table *t, size_t key_off, const char *s,
                               size_t len, uint32_t h)
{
    if (!t->cap)
        return NULL;
    uint32_t m = t->cap - 1, i = h & m;
    void *c;
    while ((c = t->slots[i]) != NULL) {
        const struct level_key *k = (const struct level_key *)((const char *)c + key_off);
        if (k->h == h && k->len == len && memcmp(k + 1, s, len) == 0)
            return c;
        i = (i + 1) & m;
    }
    return NULL;
}

/* Adds node, whose key lies at byte offset key_off and must already be filled in, growing the
 * slot array when needed (allocation failure aborts, as xcalloc does). The table borrows node
 * until level_del removes it; no child with an equal key may be in the table already. */
void level_add(struct level_table *t, size_t key_off, void *node);

/* Removes node (which must be in the table), shifting later entries of its probe run back.
 * Frees the slot array when the table becomes empty. Does not touch or free node itself. */
void level_del(struct level_table *t, size_t key_off, const void *node);

/* Frees the slot array (never the children) and leaves t empty. */
void level_fini(struct level_table *t);

#endif
