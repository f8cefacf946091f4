/* string.find, string.match, string.gmatch and string.gsub for rule VMs, on pattern.c's budgeted
 * matcher instead of LuaJIT's uninterruptible one (installed in the string table, which is also
 * the string metatable's __index, so s:find(...) takes the same road). Lua 5.1 semantics. */
#include "engine_internal.h"

#include <string.h>

#include <lauxlib.h>

#include "pattern.h"

/* The budget callback: raises out of the matcher (which owns nothing) when time is up. */
static int check(void *ud)
{
    vm_check_budget(ud);
    return 0;
}

/* Lua 5.1's string-position rule: negative counts from the end. */
static ptrdiff_t posrelat(ptrdiff_t pos, size_t len)
{
    if (pos < 0)
        pos += (ptrdiff_t)len + 1;
    return pos >= 0 ? pos : 0;
}

static void raise_if_failed(lua_State *L, const struct pattern_state *ps)
{
    if (ps->error)
        luaL_error(L, "%s", ps->error);
}

/* Pushes capture i (or the whole match when there are none and i is 0). */
static void push_capture(lua_State *L, const struct pattern_state *ps, int i, const char *s,
                         const char *e)
{
    if (i >= ps->level) {
        if (i == 0)
            lua_pushlstring(L, s, (size_t)(e - s));
        else
            luaL_error(L, "invalid capture index");
        return;
    }
    const struct pattern_capture *c = &ps->capture[i];
    if (c->len == PATTERN_CAP_UNFINISHED)
        luaL_error(L, "unfinished capture");
    if (c->len == PATTERN_CAP_POSITION)
        lua_pushinteger(L, c->init - ps->src + 1);
    else
        lua_pushlstring(L, c->init, (size_t)c->len);
}

static int push_captures(lua_State *L, const struct pattern_state *ps, const char *s,
                         const char *e, bool whole_if_none)
{
    int n = (ps->level == 0 && whole_if_none) ? 1 : ps->level;
    luaL_checkstack(L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(L, ps, i, s, e);
    return n;
}

static const char *memfind(const char *s, size_t sl, const char *p, size_t pl)
{
    if (pl == 0)
        return s;
    while (pl <= sl) {
        const char *q = memchr(s, p[0], sl - pl + 1);
        if (!q)
            return NULL;
        if (memcmp(q, p, pl) == 0)
            return q;
        sl -= (size_t)(q + 1 - s);
        s = q + 1;
    }
    return NULL;
}

static int find_aux(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    ptrdiff_t init = posrelat(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init < 0)
        init = 0;
    else if ((size_t)init > ls)
        init = (ptrdiff_t)ls;
    if (find && (lua_toboolean(L, 4) || pattern_is_plain(p, lp))) {
        const char *q = memfind(s + init, ls - (size_t)init, p, lp);
        if (!q) {
            lua_pushnil(L);
            return 1;
        }
        lua_pushinteger(L, q - s + 1);
        lua_pushinteger(L, (ptrdiff_t)(q - s) + (ptrdiff_t)lp);
        return 2;
    }
    struct pattern_state ps;
    pattern_init(&ps, s, ls, p, lp, check, L);
    size_t st, en;
    int rc = pattern_find(&ps, (size_t)init, &st, &en);
    raise_if_failed(L, &ps);
    if (rc <= 0) {
        lua_pushnil(L);
        return 1;
    }
    if (find) {
        lua_pushinteger(L, (lua_Integer)st + 1);
        lua_pushinteger(L, (lua_Integer)en);
        return push_captures(L, &ps, NULL, NULL, false) + 2;
    }
    return push_captures(L, &ps, s + st, s + en, true);
}

static int l_find(lua_State *L)
{
    return find_aux(L, true);
}

static int l_match(lua_State *L)
{
    return find_aux(L, false);
}

/* upvalues: subject, pattern, position (0-based) */
static int gmatch_next(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    size_t pos = (size_t)lua_tointeger(L, lua_upvalueindex(3));
    struct pattern_state ps;
    pattern_init(&ps, s, ls, p, lp, check, L);
    /* as in Lua 5.1, gmatch takes '^' literally: try each start without an anchor */
    for (const char *src = s + pos; src <= s + ls; src++) {
        const char *e = pattern_match_at(&ps, src, p);
        raise_if_failed(L, &ps);
        if (e) {
            size_t next = (size_t)(e - s);
            if (e == src)
                next++;
            lua_pushinteger(L, (lua_Integer)next);
            lua_replace(L, lua_upvalueindex(3));
            return push_captures(L, &ps, src, e, true);
        }
    }
    return 0;
}

static int l_gmatch(lua_State *L)
{
    luaL_checkstring(L, 1);
    luaL_checkstring(L, 2);
    lua_settop(L, 2);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* Appends the replacement for the match s..e to b. */
static void add_value(lua_State *L, luaL_Buffer *b, const struct pattern_state *ps, const char *s,
                      const char *e, int rtype)
{
    if (rtype == LUA_TSTRING || rtype == LUA_TNUMBER) {
        size_t l;
        const char *r = lua_tolstring(L, 3, &l);
        for (size_t i = 0; i < l; i++) {
            if (r[i] != '%' || i + 1 >= l) {
                luaL_addchar(b, r[i]);
                continue;
            }
            i++;
            if (r[i] < '0' || r[i] > '9') {
                luaL_addchar(b, r[i]);
            } else if (r[i] == '0') {
                luaL_addlstring(b, s, (size_t)(e - s));
            } else {
                push_capture(L, ps, r[i] - '1', s, e);
                luaL_addvalue(b);
            }
        }
        return;
    }
    if (rtype == LUA_TFUNCTION) {
        vm_check_cstack(L);
        lua_pushvalue(L, 3);
        int n = push_captures(L, ps, s, e, true);
        lua_call(L, n, 1);
    } else {
        push_capture(L, ps, 0, s, e);
        lua_gettable(L, 3);
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s)); /* nil or false: keep the match */
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int l_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int rtype = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    luaL_argcheck(L, rtype == LUA_TNUMBER || rtype == LUA_TSTRING || rtype == LUA_TFUNCTION ||
                         rtype == LUA_TTABLE,
                  3, "string/function/table expected");
    bool anchor = lp > 0 && *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    struct pattern_state ps;
    pattern_init(&ps, src, ls, p, lp, check, L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    const char *s = src;
    lua_Integer n = 0;
    while (n < max_n) {
        const char *e = pattern_match_at(&ps, s, p);
        raise_if_failed(L, &ps);
        if (e) {
            n++;
            add_value(L, &b, &ps, s, e, rtype);
        }
        if (e && e > s)
            s = e;
        else if (s < src + ls)
            luaL_addchar(&b, *s++);
        else
            break;
        if (anchor)
            break;
    }
    luaL_addlstring(&b, s, (size_t)(src + ls - s));
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

static const luaL_Reg api_string[] = {
    {"find", l_find},
    {"match", l_match},
    {"gmatch", l_gmatch},
    {"gsub", l_gsub},
    {NULL, NULL},
};

void api_string_open(lua_State *L)
{
    luaL_setfuncs(L, api_string, 0); /* onto the string table on top of the stack */
}
