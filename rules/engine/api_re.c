/* tide.re: PCRE2 regular expressions for rules — match, test and gsub with flags "imsx". Patterns
 * are JIT-compiled once and cached in the engine (shared by every rule, bounded); every match runs
 * under PCRE2 match and depth limits. A pattern that does not compile raises naming it; a match
 * that hits a limit returns nil, "match_limit". */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "util/alloc.h"

#define RE_CACHE_MAX 256
#define RE_PATTERN_MAX 4096
#define RE_OVECTOR_PAIRS 64
#define RE_MATCH_LIMIT 200000
#define RE_DEPTH_LIMIT 2000

struct re_entry {
    char *key;
    size_t klen;
    pcre2_code *code;
};

static void cache_clear(struct engine *e)
{
    size_t i = 0;
    struct re_entry *x;
    while ((x = hmap_next(&e->re_cache, &i)) != NULL) {
        pcre2_code_free(x->code);
        free(x->key);
        free(x);
    }
    hmap_fini(&e->re_cache);
    hmap_init(&e->re_cache);
}

void api_re_fini(struct engine *e)
{
    cache_clear(e);
    pcre2_match_data_free(e->re_match_data);
    pcre2_match_context_free(e->re_mctx);
    e->re_match_data = NULL;
    e->re_mctx = NULL;
}

static uint32_t parse_flags(lua_State *L, int idx)
{
    uint32_t o = 0;
    const char *f = luaL_optstring(L, idx, "");
    for (; *f; f++) {
        switch (*f) {
        case 'i': o |= PCRE2_CASELESS; break;
        case 'm': o |= PCRE2_MULTILINE; break;
        case 's': o |= PCRE2_DOTALL; break;
        case 'x': o |= PCRE2_EXTENDED; break;
        default: luaL_argerror(L, idx, "flags are a string of i m s x");
        }
    }
    return o;
}

/* The compiled pattern for (pattern at idx, flags at fidx), from the cache or compiled now. The
 * engine owns it (raising afterwards leaks nothing). */
static pcre2_code *compiled(lua_State *L, int idx, int fidx)
{
    struct engine *e = vm_rule(L)->eng;
    size_t pl;
    const char *p = luaL_checklstring(L, idx, &pl);
    uint32_t opts = parse_flags(L, fidx);
    char key[RE_PATTERN_MAX + 16];
    if (pl > RE_PATTERN_MAX)
        luaL_argerror(L, idx, "a pattern of at most 4096 bytes");
    size_t kl = (size_t)snprintf(key, sizeof(key), "%x:", (unsigned)opts);
    memcpy(key + kl, p, pl);
    kl += pl;
    struct re_entry *hit = hmap_get(&e->re_cache, key, kl);
    if (hit)
        return hit->code;
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)p, pl, opts, &errcode, &erroff, NULL);
    if (!code) {
        char msg[160];
        pcre2_get_error_message(errcode, (PCRE2_UCHAR *)msg, sizeof(msg));
        luaL_error(L, "tide.re: pattern \"%s\" does not compile: %s at offset %d", p, msg,
                   (int)erroff);
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if it fails */
    if (!e->re_match_data) {
        e->re_match_data = pcre2_match_data_create(RE_OVECTOR_PAIRS, NULL);
        e->re_mctx = pcre2_match_context_create(NULL);
        if (!e->re_match_data || !e->re_mctx)
            panic("out of memory");
        pcre2_set_match_limit(e->re_mctx, RE_MATCH_LIMIT);
        pcre2_set_depth_limit(e->re_mctx, RE_DEPTH_LIMIT);
    }
    /* full: start over, unless a gsub callback still uses a cached pattern */
    if (e->re_cache.count >= RE_CACHE_MAX && e->re_busy == 0)
        cache_clear(e);
    struct re_entry *x = xcalloc(1, sizeof(*x));
    x->code = code;
    x->key = xmemdup(key, kl);
    x->klen = kl;
    struct re_entry *old = hmap_put(&e->re_cache, x->key, kl, x);
    if (old) {
        pcre2_code_free(old->code);
        free(old->key);
        free(old);
    }
    return code;
}

/* Runs one match; returns pcre2_match's rc (>= 0 match, NOMATCH, or an error). */
static int run(lua_State *L, pcre2_code *code, const char *s, size_t len, size_t start)
{
    struct engine *e = vm_rule(L)->eng;
    return pcre2_match(code, (PCRE2_SPTR)s, len, start, 0, e->re_match_data, e->re_mctx);
}

/* Pushes {[0]=whole, [1]=g1, ..., name=...} for the match in the engine's match data; groups that
 * did not take part are false. */
static void push_match(lua_State *L, pcre2_code *code, const char *s, int rc)
{
    struct engine *e = vm_rule(L)->eng;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->re_match_data);
    uint32_t ncap = 0;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &ncap);
    if (ncap >= RE_OVECTOR_PAIRS)
        ncap = RE_OVECTOR_PAIRS - 1;
    if (rc == 0)
        rc = RE_OVECTOR_PAIRS;
    lua_createtable(L, (int)ncap, 1);
    for (uint32_t i = 0; i <= ncap; i++) {
        if ((int)i < rc && ov[2 * i] != PCRE2_UNSET)
            lua_pushlstring(L, s + ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
        else
            lua_pushboolean(L, 0);
        lua_rawseti(L, -2, (int)i);
    }
    uint32_t nnames = 0, esize = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(code, PCRE2_INFO_NAMECOUNT, &nnames);
    pcre2_pattern_info(code, PCRE2_INFO_NAMEENTRYSIZE, &esize);
    pcre2_pattern_info(code, PCRE2_INFO_NAMETABLE, &table);
    for (uint32_t i = 0; i < nnames && table; i++) {
        const uint8_t *ent = table + (size_t)i * esize;
        int g = ent[0] << 8 | ent[1];
        if (g <= (int)ncap) {
            lua_rawgeti(L, -1, g);
            lua_setfield(L, -2, (const char *)ent + 2);
        }
    }
}

static int limit_hit(lua_State *L, int rc)
{
    lua_pushnil(L);
    lua_pushstring(L, rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
                              rc == PCRE2_ERROR_JIT_STACKLIMIT
                          ? "match_limit"
                          : "match_failed");
    return 2;
}

/* tide.re.match(s, pattern[, flags]) -> captures | nil */
static int l_match(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    pcre2_code *code = compiled(L, 2, 3);
    int rc = run(L, code, s, len, 0);
    if (rc == PCRE2_ERROR_NOMATCH) {
        lua_pushnil(L);
        return 1;
    }
    if (rc < 0)
        return limit_hit(L, rc);
    push_match(L, code, s, rc);
    return 1;
}

/* tide.re.test(s, pattern[, flags]) -> boolean */
static int l_test(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    pcre2_code *code = compiled(L, 2, 3);
    int rc = run(L, code, s, len, 0);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
        return limit_hit(L, rc);
    lua_pushboolean(L, rc >= 0);
    return 1;
}

/* Appends the expansion of repl ($0-$9, ${n}, ${name}, $$) for the match table on top. */
static void expand(lua_State *L, luaL_Buffer *b, const char *r, size_t rl, int mt)
{
    for (size_t i = 0; i < rl; i++) {
        if (r[i] != '$' || i + 1 >= rl) {
            luaL_addchar(b, r[i]);
            continue;
        }
        char c = r[++i];
        if (c == '$') {
            luaL_addchar(b, '$');
        } else if (c >= '0' && c <= '9') {
            lua_rawgeti(L, mt, c - '0');
            if (lua_type(L, -1) == LUA_TSTRING)
                luaL_addvalue(b);
            else
                lua_pop(L, 1);
        } else if (c == '{') {
            const char *close = memchr(r + i, '}', rl - i);
            if (!close)
                luaL_error(L, "tide.re.gsub: unclosed ${ in the replacement");
            size_t nl = (size_t)(close - (r + i + 1));
            lua_pushlstring(L, r + i + 1, nl);
            char *end;
            long g = strtol(lua_tostring(L, -1), &end, 10);
            if (nl && *end == '\0') {
                lua_pop(L, 1);
                lua_rawgeti(L, mt, (int)g);
            } else {
                lua_rawget(L, mt);
            }
            if (lua_type(L, -1) == LUA_TSTRING)
                luaL_addvalue(b);
            else
                lua_pop(L, 1);
            i = (size_t)(close - r);
        } else {
            luaL_addchar(b, '$');
            luaL_addchar(b, c);
        }
    }
}

/* tide.re.gsub(s, pattern, repl[, flags]) -> new string, count (or nil, "match_limit") */
static int l_gsub(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int rt = lua_type(L, 3);
    luaL_argcheck(L, rt == LUA_TSTRING || rt == LUA_TNUMBER || rt == LUA_TFUNCTION, 3,
                  "a string or a function");
    pcre2_code *code = compiled(L, 2, 4);
    lua_settop(L, 3);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t start = 0;
    int n = 0;
    while (start <= len) {
        vm_check_budget(L);
        int rc = run(L, code, s, len, start);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            luaL_pushresult(&b);
            return limit_hit(L, rc);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(vm_rule(L)->eng->re_match_data);
        size_t m0 = ov[0], m1 = ov[1]; /* copies: a callback may run other matches */
        if (m1 < m0 || m0 < start) /* \K tricks: refuse rather than loop */
            break;
        luaL_addlstring(&b, s + start, m0 - start);
        push_match(L, code, s, rc); /* stack: s p repl [buffer pieces] mt */
        if (rt == LUA_TFUNCTION) {
            vm_check_cstack(L);
            lua_pushvalue(L, 3);
            lua_insert(L, -2);
            struct engine *e = vm_rule(L)->eng;
            e->re_busy++; /* code must outlive the callback (see compiled) */
            lua_call(L, 1, 1);
            e->re_busy--;
            if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
                luaL_addvalue(&b);
            } else if (!lua_toboolean(L, -1)) {
                lua_pop(L, 1);
                luaL_addlstring(&b, s + m0, m1 - m0);
            } else {
                return luaL_error(L, "tide.re.gsub: the function returned a %s",
                                  luaL_typename(L, -1));
            }
        } else {
            size_t rl;
            const char *r = lua_tolstring(L, 3, &rl);
            int mt = lua_gettop(L);
            luaL_Buffer tmp; /* expand into its own buffer, then add it as one value */
            luaL_buffinit(L, &tmp);
            expand(L, &tmp, r, rl, mt);
            luaL_pushresult(&tmp);
            lua_remove(L, mt);
            luaL_addvalue(&b);
        }
        n++;
        if (m1 == m0) {
            if (m0 < len)
                luaL_addchar(&b, s[m0]);
            start = m0 + 1;
        } else {
            start = m1;
        }
    }
    if (start < len)
        luaL_addlstring(&b, s + start, len - start);
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

static const luaL_Reg api_re[] = {
    {"match", l_match},
    {"test", l_test},
    {"gsub", l_gsub},
    {NULL, NULL},
};

void api_re_open(lua_State *L)
{
    lua_newtable(L);
    luaL_setfuncs(L, api_re, 0);
    lua_setfield(L, -2, "re");
}
