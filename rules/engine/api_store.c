/* tide.store: a small in-memory key-value store shared by all rules (strings and numbers, with an
 * optional TTL in fractional seconds), capped at rule_store_limit bytes. Owned by the engine, so
 * it outlives reloads but not restarts. Expired keys go lazily, and all at once when full. */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "util/alloc.h"
#include "util/hash.h"

#define STORE_KEY_MAX 1024
#define STORE_ENTRY_OVERHEAD 64

struct entry {
    char *key;
    size_t klen;
    bool is_num;
    double num;
    char *s;
    size_t slen;
    uint64_t expires_ms; /* 0: never */
};

struct store {
    struct hmap map;
    uint64_t used, limit;
};

struct store *store_new(uint64_t limit)
{
    struct store *s = xcalloc(1, sizeof(*s));
    hmap_init(&s->map);
    s->limit = limit;
    return s;
}

static size_t cost(const struct entry *x)
{
    return x->klen + x->slen + sizeof(*x) + STORE_ENTRY_OVERHEAD;
}

static void entry_free(struct entry *x)
{
    free(x->key);
    free(x->s);
    free(x);
}

void store_free(struct store *s)
{
    if (!s)
        return;
    size_t i = 0;
    struct entry *x;
    while ((x = hmap_next(&s->map, &i)) != NULL)
        entry_free(x);
    hmap_fini(&s->map);
    free(s);
}

static uint64_t now_ms(lua_State *L)
{
    struct engine *e = vm_rule(L)->eng;
    return e->host.monotonic_ms ? e->host.monotonic_ms(e->host.ctx) : vm_wall_ns() / 1000000u;
}

static void del(struct store *s, struct entry *x)
{
    hmap_del(&s->map, x->key, x->klen);
    s->used -= cost(x);
    entry_free(x);
}

/* The live entry for key, dropping it if it expired. */
static struct entry *find(struct store *s, const char *k, size_t kl, uint64_t now)
{
    struct entry *x = hmap_get(&s->map, k, kl);
    if (x && x->expires_ms && x->expires_ms <= now) {
        del(s, x);
        x = NULL;
    }
    return x;
}

static void sweep(struct store *s, uint64_t now)
{
    struct entry **dead = NULL;
    size_t n = 0, i = 0;
    struct entry *x;
    while ((x = hmap_next(&s->map, &i)) != NULL)
        if (x->expires_ms && x->expires_ms <= now) {
            dead = xrealloc(dead, (n + 1) * sizeof(*dead));
            dead[n++] = x;
        }
    for (size_t k = 0; k < n; k++)
        del(s, dead[k]);
    free(dead);
}

static struct store *store_of(lua_State *L)
{
    return vm_rule(L)->eng->store;
}

static const char *check_key(lua_State *L, size_t *kl)
{
    const char *k = luaL_checklstring(L, 1, kl);
    if (*kl == 0 || *kl > STORE_KEY_MAX)
        luaL_argerror(L, 1, "a key of 1 to 1024 bytes");
    return k;
}

static uint64_t check_ttl(lua_State *L, int idx, uint64_t now)
{
    if (lua_isnoneornil(L, idx))
        return 0;
    double t = luaL_checknumber(L, idx);
    if (!(t > 0 && t < 1e9))
        luaL_argerror(L, idx, "a TTL in seconds > 0");
    return now + (uint64_t)(t * 1000.0 + 0.5);
}

/* Writes key = (num | s) with expiry; returns false when the store is full. Never raises. */
static bool put(struct store *s, const char *k, size_t kl, bool is_num, double num,
                const char *str, size_t sl, uint64_t expires, uint64_t now)
{
    struct entry *old = find(s, k, kl, now);
    uint64_t need = kl + (is_num ? 0 : sl) + sizeof(struct entry) + STORE_ENTRY_OVERHEAD;
    uint64_t freed = old ? cost(old) : 0;
    if (s->used - freed + need > s->limit) {
        sweep(s, now);
        old = find(s, k, kl, now);
        freed = old ? cost(old) : 0;
        if (s->used - freed + need > s->limit)
            return false;
    }
    if (old)
        del(s, old);
    struct entry *x = xcalloc(1, sizeof(*x));
    x->key = xmemdup(k, kl);
    x->klen = kl;
    x->is_num = is_num;
    x->num = num;
    if (!is_num) {
        x->s = xmemdup(str, sl);
        x->slen = sl;
    }
    x->expires_ms = expires;
    hmap_put(&s->map, x->key, kl, x);
    s->used += cost(x);
    return true;
}

/* tide.store.get(key) -> value | nil */
static int l_get(lua_State *L)
{
    size_t kl;
    const char *k = check_key(L, &kl);
    struct entry *x = find(store_of(L), k, kl, now_ms(L));
    if (!x)
        lua_pushnil(L);
    else if (x->is_num)
        lua_pushnumber(L, x->num);
    else
        lua_pushlstring(L, x->s, x->slen);
    return 1;
}

/* tide.store.set(key, value[, ttl_s]) -> true | nil, "store_full"; a nil value deletes */
static int l_set(lua_State *L)
{
    size_t kl, sl = 0;
    const char *k = check_key(L, &kl);
    int t = lua_type(L, 2);
    uint64_t now = now_ms(L);
    uint64_t exp = check_ttl(L, 3, now);
    struct store *s = store_of(L);
    if (t == LUA_TNIL) {
        struct entry *x = find(s, k, kl, now);
        if (x)
            del(s, x);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (t != LUA_TNUMBER && t != LUA_TSTRING)
        return luaL_argerror(L, 2, "a string or a number");
    const char *str = t == LUA_TSTRING ? lua_tolstring(L, 2, &sl) : NULL;
    if (!put(s, k, kl, t == LUA_TNUMBER, lua_tonumber(L, 2), str, sl, exp, now)) {
        lua_pushnil(L);
        lua_pushliteral(L, "store_full");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* tide.store.incr(key[, n][, ttl_s]) -> new value | nil, "not_a_number" | nil, "store_full".
 * The TTL is set only when the key is created. */
static int l_incr(lua_State *L)
{
    size_t kl;
    const char *k = check_key(L, &kl);
    double n = luaL_optnumber(L, 2, 1);
    uint64_t now = now_ms(L);
    uint64_t exp = check_ttl(L, 3, now);
    struct store *s = store_of(L);
    struct entry *x = find(s, k, kl, now);
    if (x && !x->is_num) {
        lua_pushnil(L);
        lua_pushliteral(L, "not_a_number");
        return 2;
    }
    if (x) {
        x->num += n;
        lua_pushnumber(L, x->num);
        return 1;
    }
    if (!put(s, k, kl, true, n, NULL, 0, exp, now)) {
        lua_pushnil(L);
        lua_pushliteral(L, "store_full");
        return 2;
    }
    lua_pushnumber(L, n);
    return 1;
}

static const luaL_Reg api_store[] = {
    {"get", l_get},
    {"set", l_set},
    {"incr", l_incr},
    {NULL, NULL},
};

void api_store_open(lua_State *L)
{
    lua_newtable(L);
    luaL_setfuncs(L, api_store, 0);
    lua_setfield(L, -2, "store");
}
