/* tide.msgpack.encode / decode, by hand: strings that are valid UTF-8 encode as str, others as
 * bin (both decode to Lua strings); an empty table is a map; integral numbers encode as integers.
 * The decoder checks every declared length and element count against the bytes that remain
 * before it allocates anything (`dd 1f ff ff ff 01` is 6 bytes claiming a 500-million-element
 * array). Depth and size are bounded; failures return nil, "msgpack: ...". */
#include "engine_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"

#define MP_MAX_DEPTH 128
#define MP_MAX_SIZE (64u * 1024 * 1024)

/* --- decode --- */
struct mdec {
    lua_State *L;
    const uint8_t *p, *end;
    const char *err;
};

static bool mfail(struct mdec *d, const char *why)
{
    if (!d->err)
        d->err = why;
    return false;
}

static bool need(struct mdec *d, size_t n)
{
    return (size_t)(d->end - d->p) >= n ? true : mfail(d, "msgpack: truncated input");
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads an n-byte big-endian length; false if truncated. */
static bool len_of(struct mdec *d, int n, uint64_t *out)
{
    if (!need(d, (size_t)n))
        return false;
    *out = be(d->p, n);
    d->p += n;
    return true;
}

static bool mdec_value(struct mdec *d, int depth);

static bool mdec_str(struct mdec *d, uint64_t n)
{
    if (!need(d, n))
        return false;
    lua_pushlstring(d->L, (const char *)d->p, (size_t)n);
    d->p += n;
    return true;
}

static bool mdec_array(struct mdec *d, uint64_t n, int depth)
{
    /* every element takes at least one byte: a count above what remains is a lie */
    if (n > (uint64_t)(d->end - d->p))
        return mfail(d, "msgpack: array length exceeds the input");
    lua_createtable(d->L, n < 1024 ? (int)n : 1024, 0); /* grow as elements arrive */
    api_json_push_array_mt(d->L); /* [] stays an array, here and in tide.json.encode */
    lua_setmetatable(d->L, -2);
    for (uint64_t i = 1; i <= n; i++) {
        if (!mdec_value(d, depth + 1))
            return false;
        lua_rawseti(d->L, -2, (int)i);
    }
    return true;
}

static bool mdec_map(struct mdec *d, uint64_t n, int depth)
{
    if (n > (uint64_t)(d->end - d->p) / 2)
        return mfail(d, "msgpack: map length exceeds the input");
    lua_createtable(d->L, 0, n < 1024 ? (int)n : 1024);
    for (uint64_t i = 0; i < n; i++) {
        if (!mdec_value(d, depth + 1) || !mdec_value(d, depth + 1))
            return false;
        if (lua_isnil(d->L, -2) ||
            (lua_type(d->L, -2) == LUA_TNUMBER && isnan(lua_tonumber(d->L, -2))))
            return mfail(d, "msgpack: a nil or NaN map key");
        lua_rawset(d->L, -3);
    }
    return true;
}

static bool mdec_value(struct mdec *d, int depth)
{
    lua_State *L = d->L;
    uint64_t n;
    if (depth > MP_MAX_DEPTH)
        return mfail(d, "msgpack: nested too deep");
    luaL_checkstack(L, 4, "msgpack.decode");
    if (!need(d, 1))
        return false;
    uint8_t t = *d->p++;
    if (t <= 0x7f) {
        lua_pushnumber(L, t);
        return true;
    }
    if (t >= 0xe0) {
        lua_pushnumber(L, (int8_t)t);
        return true;
    }
    if ((t & 0xf0) == 0x80)
        return mdec_map(d, t & 0x0f, depth);
    if ((t & 0xf0) == 0x90)
        return mdec_array(d, t & 0x0f, depth);
    if ((t & 0xe0) == 0xa0)
        return mdec_str(d, t & 0x1f);
    switch (t) {
    case 0xc0: lua_pushnil(L); return true;
    case 0xc2: lua_pushboolean(L, 0); return true;
    case 0xc3: lua_pushboolean(L, 1); return true;
    case 0xc4: case 0xd9: return len_of(d, 1, &n) && mdec_str(d, n);
    case 0xc5: case 0xda: return len_of(d, 2, &n) && mdec_str(d, n);
    case 0xc6: case 0xdb: return len_of(d, 4, &n) && mdec_str(d, n);
    case 0xca: {
        if (!need(d, 4))
            return false;
        uint32_t u = (uint32_t)be(d->p, 4);
        float f;
        memcpy(&f, &u, 4);
        d->p += 4;
        lua_pushnumber(L, f);
        return true;
    }
    case 0xcb: {
        if (!need(d, 8))
            return false;
        uint64_t u = be(d->p, 8);
        double f;
        memcpy(&f, &u, 8);
        d->p += 8;
        lua_pushnumber(L, f);
        return true;
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        int w = 1 << (t - 0xcc);
        if (!len_of(d, w, &n))
            return false;
        lua_pushnumber(L, (double)n);
        return true;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int w = 1 << (t - 0xd0);
        if (!len_of(d, w, &n))
            return false;
        int64_t v = w == 1 ? (int8_t)n : w == 2 ? (int16_t)n : w == 4 ? (int32_t)n : (int64_t)n;
        lua_pushnumber(L, (double)v);
        return true;
    }
    case 0xdc: return len_of(d, 2, &n) && mdec_array(d, n, depth);
    case 0xdd: return len_of(d, 4, &n) && mdec_array(d, n, depth);
    case 0xde: return len_of(d, 2, &n) && mdec_map(d, n, depth);
    case 0xdf: return len_of(d, 4, &n) && mdec_map(d, n, depth);
    default: return mfail(d, "msgpack: extension types are not supported");
    }
}

/* Pushes the value s decodes to, or nil and an error string; returns how many it pushed. */
int api_msgpack_decode_string(lua_State *L, const char *s, size_t len)
{
    int top = lua_gettop(L);
    struct mdec d = {.L = L, .p = (const uint8_t *)s, .end = (const uint8_t *)s + len};
    if (len > MP_MAX_SIZE)
        mfail(&d, "msgpack: input too large");
    else if (mdec_value(&d, 0) && d.p != d.end)
        mfail(&d, "msgpack: trailing bytes");
    if (d.err) {
        lua_settop(L, top);
        lua_pushnil(L);
        lua_pushstring(L, d.err);
        return 2;
    }
    return 1;
}

/* tide.msgpack.decode(s) -> value | nil, err */
static int l_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_settop(L, 1);
    return api_msgpack_decode_string(L, s, len);
}

/* --- encode --- */
struct menc {
    lua_State *L;
    struct abuf *b;
    const char *err;
};

static bool mput(struct menc *e, const void *p, size_t n)
{
    if (abuf_add(e->b, p, n))
        return true;
    if (!e->err)
        e->err = "msgpack: output too large or out of memory";
    return false;
}

static bool mput_head(struct menc *e, uint8_t t, uint64_t v, int w)
{
    uint8_t buf[9];
    buf[0] = t;
    for (int i = 0; i < w; i++)
        buf[1 + i] = (uint8_t)(v >> (8 * (w - 1 - i)));
    return mput(e, buf, (size_t)w + 1);
}

static bool menc_number(struct menc *e, double v)
{
    if (v == floor(v) && v >= -9223372036854775808.0 && v < 18446744073709551616.0) {
        if (v >= 0) {
            uint64_t u = (uint64_t)v;
            if (u <= 0x7f)
                return mput_head(e, (uint8_t)u, 0, 0);
            if (u <= 0xff)
                return mput_head(e, 0xcc, u, 1);
            if (u <= 0xffff)
                return mput_head(e, 0xcd, u, 2);
            if (u <= 0xffffffffu)
                return mput_head(e, 0xce, u, 4);
            return mput_head(e, 0xcf, u, 8);
        }
        int64_t s = (int64_t)v;
        if (s >= -32)
            return mput_head(e, (uint8_t)(int8_t)s, 0, 0);
        if (s >= -128)
            return mput_head(e, 0xd0, (uint64_t)s & 0xff, 1);
        if (s >= -32768)
            return mput_head(e, 0xd1, (uint64_t)s & 0xffff, 2);
        if (s >= INT32_MIN)
            return mput_head(e, 0xd2, (uint64_t)s & 0xffffffffu, 4);
        return mput_head(e, 0xd3, (uint64_t)s, 8);
    }
    uint64_t u;
    memcpy(&u, &v, 8);
    return mput_head(e, 0xcb, u, 8);
}

static bool menc_string(struct menc *e, const char *s, size_t n)
{
    bool ok;
    if (codec_utf8_valid((const uint8_t *)s, n) || n == 0) {
        if (n <= 31)
            ok = mput_head(e, (uint8_t)(0xa0 | n), 0, 0);
        else if (n <= 0xff)
            ok = mput_head(e, 0xd9, n, 1);
        else if (n <= 0xffff)
            ok = mput_head(e, 0xda, n, 2);
        else
            ok = mput_head(e, 0xdb, n, 4);
    } else {
        if (n <= 0xff)
            ok = mput_head(e, 0xc4, n, 1);
        else if (n <= 0xffff)
            ok = mput_head(e, 0xc5, n, 2);
        else
            ok = mput_head(e, 0xc6, n, 4);
    }
    return ok && mput(e, s, n);
}

static bool menc_value(struct menc *e, int idx, int depth);

static bool menc_table(struct menc *e, int idx, int depth)
{
    lua_State *L = e->L;
    size_t count = 0;
    double max = 0;
    bool seq = true;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        double k = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        if (k >= 1 && k == floor(k) && k <= 1e15) {
            if (k > max)
                max = k;
        } else {
            seq = false;
        }
    }
    if (count == 0 && lua_getmetatable(L, idx)) { /* tide.json.empty_array, a decoded [] */
        api_json_push_array_mt(L);
        bool arr = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (arr)
            return mput_head(e, 0x90, 0, 0);
    }
    if (seq && count > 0 && (double)count == max) {
        bool ok = count <= 15 ? mput_head(e, (uint8_t)(0x90 | count), 0, 0)
                  : count <= 0xffff ? mput_head(e, 0xdc, count, 2)
                                    : mput_head(e, 0xdd, count, 4);
        for (size_t i = 1; ok && i <= count; i++) {
            lua_rawgeti(L, idx, (int)i);
            ok = menc_value(e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        return ok;
    }
    if (!(count <= 15 ? mput_head(e, (uint8_t)(0x80 | count), 0, 0)
          : count <= 0xffff ? mput_head(e, 0xde, count, 2)
                            : mput_head(e, 0xdf, count, 4)))
        return false;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (!menc_value(e, lua_gettop(L) - 1, depth + 1) ||
            !menc_value(e, lua_gettop(L), depth + 1))
            return false;
        lua_pop(L, 1);
    }
    return true;
}

static bool menc_value(struct menc *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth > MP_MAX_DEPTH) {
        e->err = "msgpack: nested too deep (or a cycle)";
        return false;
    }
    luaL_checkstack(L, 4, "msgpack.encode");
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return mput_head(e, 0xc0, 0, 0);
    case LUA_TBOOLEAN: return mput_head(e, lua_toboolean(L, idx) ? 0xc3 : 0xc2, 0, 0);
    case LUA_TNUMBER: return menc_number(e, lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return menc_string(e, s, n);
    }
    case LUA_TTABLE: return menc_table(e, idx, depth);
    default: e->err = "msgpack: cannot encode this type"; return false;
    }
}

/* Pushes the encoding of the value at idx, or nil and an error string; returns how many it
 * pushed. */
int api_msgpack_encode_value(lua_State *L, int idx)
{
    int top;
    idx = idx < 0 && idx > LUA_REGISTRYINDEX ? lua_gettop(L) + idx + 1 : idx;
    struct menc e = {.L = L};
    e.b = abuf_push(L, MP_MAX_SIZE); /* stack: ... abuf */
    top = lua_gettop(L);
    if (!menc_value(&e, idx, 0)) {
        lua_settop(L, top - 1);
        lua_pushnil(L);
        lua_pushstring(L, e.err);
        return 2;
    }
    lua_settop(L, top);
    lua_pushlstring(L, e.b->len ? e.b->p : "", e.b->len);
    lua_remove(L, top); /* the abuf: the string is a copy */
    return 1;
}

/* tide.msgpack.encode(v) -> string | nil, err */
static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    return api_msgpack_encode_value(L, 1);
}

static const luaL_Reg api_msgpack[] = {
    {"encode", l_encode},
    {"decode", l_decode},
    {NULL, NULL},
};

void api_msgpack_open(lua_State *L)
{
    lua_newtable(L);
    luaL_setfuncs(L, api_msgpack, 0);
    lua_setfield(L, -2, "msgpack");
}
