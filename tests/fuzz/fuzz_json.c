/* libFuzzer harness for tide.json (rules/engine/api_json.c): decodes the input in a plain Lua
 * state; whatever decodes is encoded again and decoded once more (and must decode). Build with
 * clang -fsanitize=fuzzer,address,undefined from the rules/engine sources (except cmd_rules.c), the core
 * files they use, and this file; link LuaJIT, PCRE2 and libcrypto. */
#include "engine_internal.h"

#include <stdlib.h>

#include <lauxlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int open_json(lua_State *L)
{
    lua_newtable(L);
    api_json_open(L);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *L;
    if (!L) {
        L = luaL_newstate();
        if (lua_cpcall(L, open_json, NULL) != 0)
            abort();
    }
    lua_settop(L, 0);
    if (api_json_decode_string(L, (const char *)data, size) == 1) {
        if (api_json_encode_value(L, 1) == 1) {
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            if (api_json_decode_string(L, s, n) != 1)
                abort(); /* what we encode must decode */
        }
    }
    lua_settop(L, 0);
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
