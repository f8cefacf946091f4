/* The `tide` table: opens every tide.* module in order (the whole surface reads in api_open),
 * plus the small shared pieces of the glue: the per-hook context check, tide.now/monotonic, and
 * abuf, the Lua-owned output buffer the encoders write into. */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define ABUF_MT "tide.abuf"

static int l_now(lua_State *L)
{
    struct engine *e = vm_rule(L)->eng;
    lua_pushnumber(L, e->host.now ? e->host.now(e->host.ctx) : 0);
    return 1;
}

static int l_monotonic(lua_State *L)
{
    struct engine *e = vm_rule(L)->eng;
    uint64_t ms = e->host.monotonic_ms ? e->host.monotonic_ms(e->host.ctx)
                                       : vm_wall_ns() / 1000000u;
    lua_pushnumber(L, (lua_Number)ms / 1000.0);
    return 1;
}

static const luaL_Reg api_time[] = {
    {"now", l_now},
    {"monotonic", l_monotonic},
    {NULL, NULL},
};

void api_open(lua_State *L)
{
    lua_newtable(L); /* stack: tide */
    luaL_register(L, NULL, api_time);
    api_publish_open(L); /* tide.publish, tide.every, tide.after, tide.cancel, tide.sink */
    api_json_open(L);
    api_msgpack_open(L);
    api_re_open(L);
    api_topic_open(L);
    api_log_open(L);
    api_store_open(L);
    api_crypto_open(L);
}

void api_check(lua_State *L, unsigned allowed, const char *fname)
{
    struct rule *r = vm_rule(L);
    if (!(r->ctx & allowed))
        luaL_error(L, "%s: not allowed %s", fname,
                   r->ctx == VM_CTX_CHUNK    ? "in the top-level chunk (use init)"
                   : r->ctx == VM_CTX_UNLOAD ? "in on_unload"
                                             : "here");
}

/* --- abuf --- */
static int l_abuf_gc(lua_State *L)
{
    struct abuf *b = lua_touserdata(L, 1);
    if (b && b->p) {
        b->fn(b->ud, b->p, b->cap, 0);
        b->p = NULL;
    }
    return 0;
}

struct abuf *abuf_push(lua_State *L, size_t max)
{
    struct abuf *b = lua_newuserdata(L, sizeof(*b));
    memset(b, 0, sizeof(*b));
    b->max = max;
    b->fn = lua_getallocf(L, &b->ud);
    if (luaL_newmetatable(L, ABUF_MT)) {
        lua_pushcfunction(L, l_abuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return b;
}

bool abuf_add(struct abuf *b, const void *p, size_t n)
{
    if (n > b->max - b->len)
        return false;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > b->max)
            cap = b->max;
        char *q = b->fn(b->ud, b->p, b->cap, cap);
        if (!q)
            return false;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return true;
}

bool abuf_addc(struct abuf *b, char c)
{
    return abuf_add(b, &c, 1);
}
