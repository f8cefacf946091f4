/* A string-keyed hash map of void * values (open addressing, linear probing, backward-shift
 * deletion). Keys are borrowed: the caller keeps each key's bytes alive while it is in the map
 * (typically the key is a field of the value). No I/O. */
#ifndef TIDE_UTIL_HASH_H
#define TIDE_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

struct hmap_slot { /* 24 bytes: one per session, so it is kept small */
    const char *key;
    uint32_t len;
    uint32_t hash;
    void *value;
};

struct hmap {
    struct hmap_slot *slots;
    size_t cap;   /* power of two, or 0 */
    size_t count;
};

void hmap_init(struct hmap *m);
/* Frees the table (not the values). */
void hmap_fini(struct hmap *m);
/* Returns the value for key, or NULL. */
void *hmap_get(const struct hmap *m, const char *key, size_t len);
/* Inserts or replaces; returns the previous value or NULL. Keys are at most 4 GiB. */
void *hmap_put(struct hmap *m, const char *key, size_t len, void *value);
/* Removes key; returns its value or NULL. */
void *hmap_del(struct hmap *m, const char *key, size_t len);

/* Iteration: start with *i = 0; returns the next value or NULL at the end. The map must not be
 * changed during iteration, except by hmap_del of the value just returned followed by
 * restarting from the same *i - 1 — simpler: collect first, then delete. */
void *hmap_next(const struct hmap *m, size_t *i);

/* 64-bit FNV-1a, exposed for other tables keyed by bytes. */
uint64_t hash_bytes(const void *p, size_t len);

#endif
