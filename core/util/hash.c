/* Open-addressing string-keyed hash map. */
#include "util/hash.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

uint64_t hash_bytes(const void *p, size_t len)
{
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

void hmap_init(struct hmap *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

void hmap_fini(struct hmap *m)
{
    free(m->slots);
    hmap_init(m);
}

static size_t find(const struct hmap *m, const char *key, size_t len, uint32_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const struct hmap_slot *s = &m->slots[i];
        if (!s->key)
            return i;
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
            return i;
    }
}

static void grow(struct hmap *m)
{
    struct hmap_slot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap = oldcap ? oldcap * 2 : 16;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].key)
            m->slots[find(m, old[i].key, old[i].len, old[i].hash)] = old[i];
    }
    free(old);
}

void *hmap_get(const struct hmap *m, const char *key, size_t len)
{
    if (!m->count)
        return NULL;
    const struct hmap_slot *s = &m->slots[find(m, key, len, (uint32_t)hash_bytes(key, len))];
    return s->key ? s->value : NULL;
}

void *hmap_put(struct hmap *m, const char *key, size_t len, void *value)
{
    if ((m->count + 1) * 4 > m->cap * 3)
        grow(m);
    uint32_t h = (uint32_t)hash_bytes(key, len);
    struct hmap_slot *s = &m->slots[find(m, key, len, h)];
    void *prev = s->key ? s->value : NULL;
    if (!s->key)
        m->count++;
    s->key = key;
    s->len = (uint32_t)len;
    s->hash = h;
    s->value = value;
    return prev;
}

void *hmap_del(struct hmap *m, const char *key, size_t len)
{
    if (!m->count)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = find(m, key, len, (uint32_t)hash_bytes(key, len));
    if (!m->slots[i].key)
        return NULL;
    void *value = m->slots[i].value;
    /* backward-shift deletion keeps probe chains intact without tombstones */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].key)
            break;
        size_t home = m->slots[j].hash & mask;
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->count--;
    return value;
}

void *hmap_next(const struct hmap *m, size_t *i)
{
    while (*i < m->cap) {
        const struct hmap_slot *s = &m->slots[(*i)++];
        if (s->key)
            return s->value;
    }
    return NULL;
}
