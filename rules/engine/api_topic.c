/* tide.topic.matches(filter, topic) and tide.topic.split(topic), on core/topic.h's rules (so a
 * rule's idea of matching is the broker's: wildcards never match a leading '$'). */
#include "engine_internal.h"

#include <string.h>

#include <lauxlib.h>

#include "topic.h"

/* tide.topic.matches(filter, topic) -> boolean (false for an invalid filter or name) */
static int l_matches(lua_State *L)
{
    size_t fl, tl;
    const char *f = luaL_checklstring(L, 1, &fl);
    const char *t = luaL_checklstring(L, 2, &tl);
    bool ok = topic_validate_filter(f, fl) == 0 && topic_validate_name(t, tl) == 0 &&
              topic_matches(f, fl, t, tl);
    lua_pushboolean(L, ok);
    return 1;
}

/* tide.topic.split(topic) -> {level, ...} ("a//b" gives {"a", "", "b"}) */
static int l_split(lua_State *L)
{
    size_t len;
    const char *t = luaL_checklstring(L, 1, &len);
    lua_createtable(L, (int)topic_levels(t, len), 0);
    int i = 1;
    const char *p = t, *end = t + len;
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;
        lua_pushlstring(L, p, (size_t)(stop - p));
        lua_rawseti(L, -2, i++);
        if (!slash)
            break;
        p = slash + 1;
    }
    return 1;
}

static const luaL_Reg api_topic[] = {
    {"matches", l_matches},
    {"split", l_split},
    {NULL, NULL},
};

void api_topic_open(lua_State *L)
{
    lua_newtable(L);
    luaL_setfuncs(L, api_topic, 0);
    lua_setfield(L, -2, "topic");
}
