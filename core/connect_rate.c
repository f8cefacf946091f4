/* Per-address connection token buckets in a bounded, swept hash table (see connect_rate.h). */
#include "connect_rate.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/alloc.h"
#include "util/crypto.h"
#include "util/hash.h"

/* Tokens are counted in thousandths so that a rate of N a second refills N thousandths a
 * millisecond: integer arithmetic, no drift. */
#define MILLI 1000u
#define SALT_LEN 8
/* Longest key: salt, family, 8 bytes of an IPv6 /64. */
#define KEY_MAX (SALT_LEN + 1 + 8)
/* When the table is full, a sweep is tried at most this often from the accept path. */
#define FULL_SWEEP_MS 100

struct bucket {
    uint64_t tokens; /* thousandths of a connection, at last_ms */
    uint64_t last_ms;
    bool refusing; /* refused since it was last allowed */
    uint8_t key_len;
    uint8_t key[KEY_MAX]; /* the map's key points here */
};

struct connect_rate {
    struct hmap buckets;           /* key -> struct bucket (owned) */
    uint64_t per_second, capacity; /* capacity in thousandths */
    size_t max_addresses;
    uint64_t last_full_sweep_ms;
    bool full_reported; /* UNTRACKED_FIRST returned since the last sweep */
    /* A random prefix to every key: the table's hash is not keyed, and addresses come from
     * clients; unpredictable hashes keep a crafted set of addresses from piling into one probe
     * chain. */
    uint8_t salt[SALT_LEN];
};

struct connect_rate *connect_rate_new(uint32_t per_second, uint32_t burst, size_t max_addresses)
{
    struct connect_rate *r = xcalloc(1, sizeof *r);
    hmap_init(&r->buckets);
    r->per_second = per_second ? per_second : 1;
    r->capacity = (uint64_t)(burst ? burst : 1) * MILLI;
    r->max_addresses = max_addresses ? max_addresses : 1;
    if (crypto_random(r->salt, sizeof r->salt) != 0)
        memset(r->salt, 0, sizeof r->salt); /* still correct, only easier to collide */
    return r;
}

void connect_rate_free(struct connect_rate *r)
{
    if (!r)
        return;
    size_t i = 0;
    struct bucket *bk;
    while ((bk = hmap_next(&r->buckets, &i)))
        free(bk);
    hmap_fini(&r->buckets);
    free(r);
}

/* Builds the key for addr into key; returns its length, or 0 for a family not limited. */
static size_t make_key(const struct connect_rate *r, const struct sockaddr *addr, uint8_t *key)
{
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(key, r->salt, SALT_LEN);
    if (addr->sa_family == AF_INET) {
        key[SALT_LEN] = 4;
        memcpy(key + SALT_LEN + 1, &((const struct sockaddr_in *)addr)->sin_addr, 4);
        return SALT_LEN + 1 + 4;
    }
    if (addr->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
        if (memcmp(a, v4_mapped, sizeof v4_mapped) == 0) {
            key[SALT_LEN] = 4;
            memcpy(key + SALT_LEN + 1, a + 12, 4);
            return SALT_LEN + 1 + 4;
        }
        /* one /64 is what a single customer or host is usually given: counting per /128 would
         * let one machine rotate through 2^64 addresses */
        key[SALT_LEN] = 6;
        memcpy(key + SALT_LEN + 1, a, 8);
        return SALT_LEN + 1 + 8;
    }
    return 0;
}

/* Brings bk's tokens up to now (never above capacity). */
static void refill(const struct connect_rate *r, struct bucket *bk, uint64_t now_ms)
{
    if (now_ms <= bk->last_ms)
        return;
    uint64_t elapsed = now_ms - bk->last_ms;
    /* past this long the bucket is full whatever the rate (and the product cannot overflow) */
    uint64_t t =
        elapsed > r->capacity / r->per_second ? r->capacity : bk->tokens + r->per_second * elapsed;
    bk->tokens = t < r->capacity ? t : r->capacity;
    bk->last_ms = now_ms;
}

static size_t remove_full(struct connect_rate *r, uint64_t now_ms)
{
    size_t removed = 0, i = 0;
    struct bucket *bk;
    while ((bk = hmap_next(&r->buckets, &i))) {
        refill(r, bk, now_ms);
        if (bk->tokens < r->capacity)
            continue;
        /* a full bucket behaves exactly like no bucket */
        hmap_del(&r->buckets, (const char *)bk->key, bk->key_len);
        free(bk);
        removed++;
        i--; /* hash.h: after deleting the value just returned, resume from the same slot */
    }
    return removed;
}

enum connect_rate_verdict connect_rate_check(struct connect_rate *r, const struct sockaddr *addr,
                                             uint64_t now_ms)
{
    uint8_t key[KEY_MAX];
    size_t len = make_key(r, addr, key);
    if (!len)
        return CONNECT_RATE_ALLOW;
    struct bucket *bk = hmap_get(&r->buckets, (const char *)key, len);
    if (!bk) {
        if (r->buckets.count >= r->max_addresses &&
            now_ms - r->last_full_sweep_ms >= FULL_SWEEP_MS) {
            r->last_full_sweep_ms = now_ms;
            remove_full(r, now_ms);
        }
        if (r->buckets.count >= r->max_addresses) {
            bool first = !r->full_reported;
            r->full_reported = true;
            return first ? CONNECT_RATE_UNTRACKED_FIRST : CONNECT_RATE_UNTRACKED;
        }
        bk = xcalloc(1, sizeof *bk);
        memcpy(bk->key, key, len);
        bk->key_len = (uint8_t)len;
        bk->tokens = r->capacity;
        bk->last_ms = now_ms;
        hmap_put(&r->buckets, (const char *)bk->key, len, bk);
    }
    refill(r, bk, now_ms);
    if (bk->tokens < MILLI) {
        /* a refused attempt costs nothing: the address gets exactly the configured rate, however
         * hard it hammers */
        bool first = !bk->refusing;
        bk->refusing = true;
        return first ? CONNECT_RATE_REFUSE_FIRST : CONNECT_RATE_REFUSE;
    }
    bk->tokens -= MILLI;
    bk->refusing = false;
    return CONNECT_RATE_ALLOW;
}

size_t connect_rate_sweep(struct connect_rate *r, uint64_t now_ms)
{
    r->full_reported = false;
    return remove_full(r, now_ms);
}

size_t connect_rate_count(const struct connect_rate *r)
{
    return r->buckets.count;
}
