/* The rule environment: opens the allowed standard libraries in a rule's VM and replaces its
 * globals with a table holding exactly RULES-API "The sandbox" list (the allow-list below is the
 * one place that list lives). Closes string.dump on the string metatable route too, and puts the
 * budgeted pattern functions and table.sort in place of LuaJIT's. */
#include "engine_internal.h"

#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "log.h"

/* Base-library globals a rule may use. */
static const char *const allowed_globals[] = {
    "assert", "error",  "ipairs",   "next",   "pairs",    "pcall",        "xpcall",
    "select", "tonumber", "tostring", "type", "unpack",   "rawget",       "rawset",
    "rawequal", "setmetatable", "getmetatable", "_VERSION", NULL,
};

/* Whole library tables a rule may use (string loses dump below). */
static const char *const allowed_libs[] = {"string", "table", "math", "bit", "coroutine", NULL};

/* The part of os a rule may use. */
static const char *const allowed_os[] = {"time", "clock", "date", NULL};

/* collectgarbage("count") only. */
static int l_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "count");
    if (strcmp(opt, "count") != 0)
        return luaL_error(L, "collectgarbage: only \"count\" is allowed in rules");
    lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT, 0) +
                          (lua_Number)lua_gc(L, LUA_GCCOUNTB, 0) / 1024.0);
    return 1;
}

/* print(...): tostring of each argument, tab-separated, logged at info. */
static int l_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    vm_check_cstack(L); /* __tostring may print: C recursion */
    lua_getglobal(L, "tostring"); /* stack: args... tostring */
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, n + 1);
        lua_pushvalue(L, i);
        lua_call(L, 1, 1);
        if (!lua_isstring(L, -1))
            return luaL_error(L, "print: tostring must return a string");
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    api_log_line(vm_rule(L), LOG_INFO, s, len);
    return 0;
}

static void open_lib(lua_State *L, lua_CFunction f)
{
    lua_pushcfunction(L, f);
    lua_call(L, 0, 0);
}

int sandbox_open(lua_State *L, void *ud)
{
    (void)ud;
    open_lib(L, luaopen_base);
    open_lib(L, luaopen_table);
    open_lib(L, luaopen_string);
    open_lib(L, luaopen_math);
    open_lib(L, luaopen_bit);
    open_lib(L, luaopen_os);

    /* string.dump goes from the one string table, which is also the string metatable's __index */
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    api_string_open(L);
    lua_pop(L, 1);
    lua_getglobal(L, "table"); /* a budgeted table.sort */
    api_table_open(L);
    lua_pop(L, 1);

    lua_newtable(L); /* stack: env */
    for (const char *const *g = allowed_globals; *g; g++) {
        lua_getglobal(L, *g);
        lua_setfield(L, -2, *g);
    }
    for (const char *const *g = allowed_libs; *g; g++) {
        lua_getglobal(L, *g);
        if (!lua_istable(L, -1))
            return luaL_error(L, "sandbox: library %s missing", *g);
        lua_setfield(L, -2, *g);
    }
    lua_getglobal(L, "os"); /* stack: env os */
    lua_newtable(L);        /* stack: env os safe_os */
    for (const char *const *g = allowed_os; *g; g++) {
        lua_getfield(L, -2, *g);
        lua_setfield(L, -2, *g);
    }
    lua_setfield(L, -3, "os");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_collectgarbage);
    lua_setfield(L, -2, "collectgarbage");
    lua_pushcfunction(L, l_print);
    lua_setfield(L, -2, "print");
    api_open(L); /* stack: env tide */
    lua_setfield(L, -2, "tide");
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
    /* the rule's globals from now on: chunks loaded later get env as their environment */
    lua_replace(L, LUA_GLOBALSINDEX);
    return 0;
}
