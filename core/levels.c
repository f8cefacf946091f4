/* The open-addressing table of a topic-tree node's children, keyed by topic level: the changing
 * half (add, delete, free); the lookup half is inline in levels.h. Owns only slot arrays; the
 * keys and their bytes live in the caller's nodes and are read in place. Pure: no I/O, no
 * logging. */
#include "levels.h"

#include <assert.h>
#include <stdlib.h>

#include "util/alloc.h"

static const struct level_key *key_of(const void *node, size_t key_off)
{
    return (const struct level_key *)((const char *)node + key_off);
}

/* Puts node in the first free slot of its probe run; the table has a free slot. */
static void put(void **slots, uint32_t cap, size_t key_off, void *node)
{
    uint32_t m = cap - 1, i = key_of(node, key_off)->h & m;
    while (slots[i])
        i = (i + 1) & m;
    slots[i] = node;
}

void level_add(struct level_table *t, size_t key_off, void *node)
{
    if ((t->count + 1) * 4 > t->cap * 3) {
        uint32_t cap = t->cap ? t->cap * 2 : 2;
        void **slots = xcalloc(cap, sizeof *slots);
        for (uint32_t i = 0; i < t->cap; i++) {
            if (t->slots[i])
                put(slots, cap, key_off, t->slots[i]);
        }
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    put(t->slots, t->cap, key_off, node);
    t->count++;
}

void level_del(struct level_table *t, size_t key_off, const void *node)
{
    uint32_t m = t->cap - 1, i = key_of(node, key_off)->h & m, j;
    while (t->slots[i] != node) {
        assert(t->slots[i] != NULL); /* node is not in the table */
        i = (i + 1) & m;
    }
    t->slots[i] = NULL;
    for (j = (i + 1) & m; t->slots[j]; j = (j + 1) & m) {
        uint32_t home = key_of(t->slots[j], key_off)->h & m;
        /* the entry at j may stay if its home lies cyclically in (i, j] */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
            continue;
        t->slots[i] = t->slots[j];
        t->slots[j] = NULL;
        i = j;
    }
    if (--t->count == 0)
        level_fini(t);
}

void level_fini(struct level_table *t)
{
    free(t->slots);
    t->slots = NULL;
    t->count = 0;
    t->cap = 0;
}
