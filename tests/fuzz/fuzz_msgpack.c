/* libFuzzer harness for tide.msgpack (rules/engine/api_msgpack.c): decodes the input through the
 * Lua function in a plain Lua state; whatever decodes is encoded and decoded again (and must
 * decode). The length checks must hold before anything is allocated: `dd 1f ff ff ff 01` is in
 * the seed corpus. Built like fuzz_json.c. */
#include "engine_internal.h"

#include <stdlib.h>

#include <lauxlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int open_msgpack(lua_State *L)
{
    lua_newtable(L);
    api_msgpack_open(L);
    lua_getfield(L, -1, "msgpack");
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.msgpack");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L;
    if (!L) {
        L = luaL_newstate();
        if (lua_cpcall(L, open_msgpack, NULL) != 0)
            abort();
    }
    lua_settop(L, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.msgpack"); /* 1: msgpack */
    lua_getfield(L, 1, "decode");
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 1, 0) == 0 && !lua_isnil(L, -1)) { /* 2: value */
        lua_getfield(L, 1, "encode");
        lua_pushvalue(L, 2);
        if (lua_pcall(L, 1, 1, 0) == 0 && lua_isstring(L, -1)) {
            lua_getfield(L, 1, "decode");
            lua_insert(L, -2);
            if (lua_pcall(L, 1, 1, 0) != 0 || lua_isnil(L, -1))
                abort(); /* what we encode must decode */
        }
    }
    lua_settop(L, 0);
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
