/* table.sort for rule VMs: LuaJIT's is one C call the count hook cannot see (a million elements
 * take half a second, all inside one 5 ms budget), and its comparator recursion is C recursion.
 * This one is a heapsort — no recursion of its own, n log n whatever the input — that checks the
 * call's budget every few hundred comparisons and the C-stack guard before each comparator call.
 * Lua 5.1 semantics otherwise: raw access to t[1..#t], `<` (metamethods included) or comp(a, b). */
#include "engine_internal.h"

#include <lauxlib.h>

#define SORT_CHECK_EVERY 256

struct sorter {
    bool has_cmp;
    unsigned steps;
};

/* stack[a] < stack[b] */
static bool less(lua_State *L, struct sorter *s, int a, int b)
{
    if (++s->steps % SORT_CHECK_EVERY == 0)
        vm_check_budget(L);
    if (!s->has_cmp)
        return lua_lessthan(L, a, b);
    vm_check_cstack(L);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, a);
    lua_pushvalue(L, b);
    lua_call(L, 2, 1);
    bool r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
}

/* Moves t[root] down the max-heap t[root..end] to its place. */
static void sift(lua_State *L, struct sorter *s, lua_Integer root, lua_Integer end)
{
    lua_rawgeti(L, 1, (int)root); /* stack: t comp v */
    int v = lua_gettop(L);
    while (root <= end / 2) {
        lua_Integer child = root * 2;
        lua_rawgeti(L, 1, (int)child); /* stack: ... v c */
        if (child < end) {
            lua_rawgeti(L, 1, (int)child + 1); /* stack: ... v c c1 */
            if (less(L, s, v + 1, v + 2)) {
                child++;
                lua_replace(L, v + 1);
            } else {
                lua_pop(L, 1);
            }
        }
        if (!less(L, s, v, v + 1)) {
            lua_pop(L, 1);
            break;
        }
        lua_rawseti(L, 1, (int)root); /* t[root] = c */
        root = child;
    }
    lua_rawseti(L, 1, (int)root); /* t[root] = v */
}

/* table.sort(t[, comp]) */
static int l_sort(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_objlen(L, 1);
    struct sorter s = {!lua_isnoneornil(L, 2), 0};
    if (s.has_cmp)
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    luaL_checkstack(L, 8, "table.sort");
    for (lua_Integer i = n / 2; i >= 1; i--)
        sift(L, &s, i, n);
    for (lua_Integer end = n; end > 1; end--) {
        lua_rawgeti(L, 1, 1);
        lua_rawgeti(L, 1, (int)end);
        lua_rawseti(L, 1, 1);        /* t[1] = t[end] */
        lua_rawseti(L, 1, (int)end); /* t[end] = the largest */
        sift(L, &s, 1, end - 1);
    }
    return 0;
}

void api_table_open(lua_State *L)
{
    lua_pushcfunction(L, l_sort);
    lua_setfield(L, -2, "sort"); /* onto the table library on top of the stack */
}
