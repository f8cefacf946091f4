/* tide.json.encode / decode (RULES-API "Fine points"): decoded arrays carry tide.json.array_mt
 * so [] round-trips; tide.json.null and tide.json.empty_array; integral numbers without a decimal
 * point; integers beyond 2^53 decode as strings. Depth and size are bounded. Runtime failures
 * return nil, "json: ..."; output goes into a Lua-owned abuf, so raising never leaks. */
#include "engine_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#define JSON_MAX_DEPTH 128
#define JSON_MAX_SIZE (64u * 1024 * 1024)

/* registry keys: the addresses of these statics */
static const char key_array_mt = 'a';
static char json_null_token = 'n'; /* tide.json.null is this lightuserdata */
static const char key_scratch = 's';
/* The encode buffer keeps at most this much between calls. */
#define JSON_SCRATCH_KEEP (64u * 1024)

static void push_array_mt(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&key_array_mt);
    lua_rawget(L, LUA_REGISTRYINDEX);
}

void api_json_push_array_mt(lua_State *L)
{
    push_array_mt(L);
}

/* --- decode --- */
struct dec {
    lua_State *L;
    const char *p, *start, *end;
    const char *err;
    char msg[96];
};

static bool derr(struct dec *d, const char *what)
{
    if (!d->err) {
        snprintf(d->msg, sizeof(d->msg), "json: %s at byte %zu", what,
                 (size_t)(d->p - d->start) + 1);
        d->err = d->msg;
    }
    return false;
}

static void skip_ws(struct dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static void add_utf8(luaL_Buffer *b, unsigned cp)
{
    if (cp < 0x80) {
        luaL_addchar(b, (char)cp);
    } else if (cp < 0x800) {
        luaL_addchar(b, (char)(0xC0 | cp >> 6));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        luaL_addchar(b, (char)(0xE0 | cp >> 12));
        luaL_addchar(b, (char)(0x80 | (cp >> 6 & 0x3F)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        luaL_addchar(b, (char)(0xF0 | cp >> 18));
        luaL_addchar(b, (char)(0x80 | (cp >> 12 & 0x3F)));
        luaL_addchar(b, (char)(0x80 | (cp >> 6 & 0x3F)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    }
}

/* d->p at the opening quote; pushes the string. */
static bool dec_string(struct dec *d)
{
    luaL_Buffer b;
    d->p++;
    /* fast path: no escapes */
    const char *q = d->p;
    while (q < d->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
        q++;
    if (q < d->end && *q == '"') {
        lua_pushlstring(d->L, d->p, (size_t)(q - d->p));
        d->p = q + 1;
        return true;
    }
    luaL_buffinit(d->L, &b);
    while (d->p < d->end && *d->p != '"') {
        unsigned char c = (unsigned char)*d->p;
        if (c < 0x20) {
            luaL_pushresult(&b);
            return derr(d, "control character in string");
        }
        if (c != '\\') {
            luaL_addchar(&b, (char)c);
            d->p++;
            continue;
        }
        if (d->end - d->p < 2) {
            luaL_pushresult(&b);
            return derr(d, "unfinished escape");
        }
        char e = d->p[1];
        d->p += 2;
        switch (e) {
        case '"': luaL_addchar(&b, '"'); break;
        case '\\': luaL_addchar(&b, '\\'); break;
        case '/': luaL_addchar(&b, '/'); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
            int cp = d->end - d->p >= 4 ? hex4(d->p) : -1;
            if (cp < 0) {
                luaL_pushresult(&b);
                return derr(d, "bad \\u escape");
            }
            d->p += 4;
            unsigned u = (unsigned)cp;
            if (u >= 0xD800 && u <= 0xDBFF && d->end - d->p >= 6 && d->p[0] == '\\' &&
                d->p[1] == 'u') {
                int lo = hex4(d->p + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    u = 0x10000 + ((u - 0xD800) << 10) + ((unsigned)lo - 0xDC00);
                    d->p += 6;
                }
            }
            if (u >= 0xD800 && u <= 0xDFFF)
                u = 0xFFFD; /* a lone surrogate */
            add_utf8(&b, u);
            break;
        }
        default: luaL_pushresult(&b); return derr(d, "bad escape");
        }
    }
    luaL_pushresult(&b);
    if (d->p >= d->end)
        return derr(d, "unfinished string");
    d->p++;
    return true;
}

/* Exact powers of ten: every one up to 1e22 is a double without rounding. */
static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
#define POW10_MAX 22
#define EXACT_INT_MAX 9007199254740992.0 /* 2^53 */

/* Pushes the number s[0..n) (already checked to be JSON number syntax) without strtod when that
 * is exact: at most 15 significant digits make an integer m below 2^53, and m times or divided
 * by an exact power of ten up to 1e22 is one correctly rounded operation, the same double strtod
 * gives (Clinger's fast path). Returns false to leave the number to strtod. */
static bool fast_number(lua_State *L, const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    bool neg = *p == '-';
    p += neg;
    uint64_t m = 0;
    int digits = 0, scale = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (digits || *p != '0')
            digits++;
        m = m * 10 + (uint64_t)(*p - '0');
        if (digits > 15)
            return false;
    }
    if (p < end && *p == '.') {
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            if (digits || *p != '0')
                digits++;
            m = m * 10 + (uint64_t)(*p - '0');
            scale--;
            if (digits > 15)
                return false;
        }
    }
    if (p < end) { /* an exponent */
        p++;
        bool eneg = *p == '-';
        p += *p == '-' || *p == '+';
        int ex = 0;
        for (; p < end; p++) {
            ex = ex * 10 + (*p - '0');
            if (ex > 400)
                return false;
        }
        scale += eneg ? -ex : ex;
    }
    double v = (double)m; /* exact: m < 10^15 */
    if (scale > POW10_MAX || scale < -POW10_MAX)
        return false;
    v = scale >= 0 ? v * pow10_exact[scale] : v / pow10_exact[-scale];
    if (scale > 0 && v >= EXACT_INT_MAX)
        return false; /* an integer beyond 2^53 stays a string: strtod's path decides */
    lua_pushnumber(L, neg ? -v : v);
    return true;
}

static bool dec_number(struct dec *d)
{
    const char *s = d->p, *q = d->p;
    bool integral = true;
    if (q < d->end && *q == '-')
        q++;
    if (q >= d->end || *q < '0' || *q > '9')
        return derr(d, "unexpected character");
    if (*q == '0')
        q++;
    else
        while (q < d->end && *q >= '0' && *q <= '9')
            q++;
    if (q < d->end && *q == '.') {
        integral = false;
        q++;
        if (q >= d->end || *q < '0' || *q > '9')
            return derr(d, "bad number");
        while (q < d->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < d->end && (*q == 'e' || *q == 'E')) {
        integral = false;
        q++;
        if (q < d->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= d->end || *q < '0' || *q > '9')
            return derr(d, "bad number");
        while (q < d->end && *q >= '0' && *q <= '9')
            q++;
    }
    size_t n = (size_t)(q - s);
    d->p = q;
    if (fast_number(d->L, s, n))
        return true;
    char buf[64];
    if (n >= sizeof(buf)) {
        if (integral) { /* far beyond 2^53: keep the digits */
            lua_pushlstring(d->L, s, n);
            return true;
        }
        return derr(d, "number too long");
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    double v = strtod(buf, NULL);
    if (integral && fabs(v) > 9007199254740992.0) /* 2^53: a double would lose digits */
        lua_pushlstring(d->L, s, n);
    else
        lua_pushnumber(d->L, v);
    return true;
}

static bool dec_value(struct dec *d, int depth);

static bool dec_array(struct dec *d, int depth)
{
    lua_State *L = d->L;
    d->p++;
    lua_newtable(L);
    push_array_mt(L);
    lua_setmetatable(L, -2);
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        return true;
    }
    for (int i = 1;; i++) {
        if (!dec_value(d, depth + 1))
            return false;
        lua_rawseti(L, -2, i);
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            return true;
        }
        return derr(d, "expected ',' or ']'");
    }
}

static bool dec_object(struct dec *d, int depth)
{
    lua_State *L = d->L;
    d->p++;
    lua_createtable(L, 0, 8); /* room for a small object and keys a rule adds: no rehash */
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        return true;
    }
    for (;;) {
        skip_ws(d);
        if (d->p >= d->end || *d->p != '"')
            return derr(d, "expected a string key");
        if (!dec_string(d))
            return false;
        skip_ws(d);
        if (d->p >= d->end || *d->p != ':')
            return derr(d, "expected ':'");
        d->p++;
        if (!dec_value(d, depth + 1))
            return false;
        lua_rawset(L, -3);
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p < d->end && *d->p == '}') {
            d->p++;
            return true;
        }
        return derr(d, "expected ',' or '}'");
    }
}

static bool literal(struct dec *d, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        return derr(d, "unexpected character");
    d->p += n;
    return true;
}

static bool dec_value(struct dec *d, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return derr(d, "nested too deep");
    luaL_checkstack(d->L, 6, "json.decode");
    skip_ws(d);
    if (d->p >= d->end)
        return derr(d, "unexpected end");
    switch (*d->p) {
    case '{': return dec_object(d, depth);
    case '[': return dec_array(d, depth);
    case '"': return dec_string(d);
    case 't':
        lua_pushboolean(d->L, 1);
        return literal(d, "true");
    case 'f':
        lua_pushboolean(d->L, 0);
        return literal(d, "false");
    case 'n':
        lua_pushlightuserdata(d->L, &json_null_token);
        return literal(d, "null");
    default: return dec_number(d);
    }
}

int api_json_decode_string(lua_State *L, const char *s, size_t len)
{
    int top = lua_gettop(L);
    struct dec d = {.L = L, .p = s, .start = s, .end = s + len};
    if (len > JSON_MAX_SIZE) {
        lua_pushnil(L);
        lua_pushliteral(L, "json: input too large");
        return 2;
    }
    if (dec_value(&d, 0)) {
        skip_ws(&d);
        if (d.p == d.end)
            return 1;
        derr(&d, "trailing characters");
    }
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushstring(L, d.err);
    return 2;
}

/* tide.json.decode(s) -> value | nil, err */
static int l_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    return api_json_decode_string(L, s, len);
}

/* --- encode --- */
struct enc {
    lua_State *L;
    struct abuf *b;
    const char *err;
};

static inline bool put(struct enc *e, const char *s, size_t n)
{
    struct abuf *b = e->b;
    if (b->p && n <= b->cap - b->len) { /* the common case, inline */
        memcpy(b->p + b->len, s, n);
        b->len += n;
        return true;
    }
    if (!abuf_add(b, s, n)) {
        if (!e->err)
            e->err = "json: output too large or out of memory";
        return false;
    }
    return true;
}

/* Bytes a JSON string cannot hold as they are: '"', '\\', control characters and DEL. */
static bool needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\' || c == 0x7f;
}

static bool enc_string(struct enc *e, const char *s, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n && !needs_escape((unsigned char)s[i]))
        i++;
    if (i == n) { /* the common case: nothing to escape, one copy with the quotes */
        struct abuf *b = e->b;
        if (b->p && n + 2 <= b->cap - b->len) {
            b->p[b->len] = '"';
            memcpy(b->p + b->len + 1, s, n);
            b->p[b->len + n + 1] = '"';
            b->len += n + 2;
            return true;
        }
        return put(e, "\"", 1) && put(e, s, n) && put(e, "\"", 1);
    }
    if (!put(e, "\"", 1))
        return false;
    size_t run = 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!needs_escape(c))
            continue;
        const char *esc;
        char u[7];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else {
            memcpy(u, "\\u00", 4);
            u[4] = hexd[c >> 4];
            u[5] = hexd[c & 15];
            u[6] = '\0';
            esc = u;
        }
        if (!put(e, s + run, i - run) || !put(e, esc, strlen(esc)))
            return false;
        run = i + 1;
    }
    return put(e, s + run, n - run) && put(e, "\"", 1);
}

/* Writes the digits of u ending at end (exclusive); returns where they start. */
static char *put_digits(char *end, uint64_t u)
{
    do {
        *--end = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    return end;
}

/* Formats v into buf without printf when that is exact: an integer below 2^53, or a value that
 * k decimals (the fewest that work) represent exactly enough, i.e. (double)n / 10^k == v for
 * n = round(v * 10^k): the division is correctly rounded like strtod, so the text "n / 10^k"
 * reads back as v. Returns the length, or 0 to leave v to printf. */
static int fast_format(double v, char *buf)
{
    char tmp[32], *end = tmp + sizeof(tmp);
    double a = fabs(v);
    if (a >= EXACT_INT_MAX)
        return 0;
    int k = 0;
    double x = a;
    if (x != floor(x)) {
        for (k = 1;; k++) {
            if (k > 15)
                return 0;
            x = a * pow10_exact[k];
            if (x >= EXACT_INT_MAX)
                return 0;
            x = nearbyint(x);
            if (x / pow10_exact[k] == a)
                break;
        }
    }
    char *p = put_digits(end, (uint64_t)x);
    while (end - p <= k) /* "0." and leading zeros of a fraction */
        *--p = '0';
    int n = 0;
    if (signbit(v))
        buf[n++] = '-';
    int intlen = (int)(end - p) - k;
    memcpy(buf + n, p, (size_t)intlen);
    n += intlen;
    if (k) {
        buf[n++] = '.';
        memcpy(buf + n, p + intlen, (size_t)k);
        n += k;
    }
    return n;
}

static bool enc_number(struct enc *e, double v)
{
    char buf[40];
    int n;
    if (!isfinite(v)) {
        e->err = "json: cannot encode NaN or infinity";
        return false;
    }
    if ((n = fast_format(v, buf)) > 0)
        return put(e, buf, (size_t)n);
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        n = snprintf(buf, sizeof(buf), "%.0f", v);
    else {
        n = snprintf(buf, sizeof(buf), "%.14g", v);
        if (strtod(buf, NULL) != v)
            n = snprintf(buf, sizeof(buf), "%.17g", v);
    }
    return put(e, buf, (size_t)n);
}

static bool enc_value(struct enc *e, int idx, int depth);

/* True if the table at idx should be a JSON array; *len gets its length. */
static bool is_array(lua_State *L, int idx, size_t *len)
{
    if (lua_getmetatable(L, idx)) {
        push_array_mt(L);
        bool arr = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (arr) {
            *len = lua_objlen(L, idx);
            return true;
        }
    }
    size_t count = 0;
    double max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        double k = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        if (!(k >= 1 && k == floor(k) && k <= 1e15)) {
            lua_pop(L, 1); /* an object: no need to see the other keys */
            return false;
        }
        if (k > max)
            max = k;
    }
    *len = count;
    return count > 0 && (double)count == max;
}

static bool enc_table(struct enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    size_t n;
    if (is_array(L, idx, &n)) {
        if (!put(e, "[", 1))
            return false;
        for (size_t i = 1; i <= n; i++) {
            if (i > 1 && !put(e, ",", 1))
                return false;
            lua_rawgeti(L, idx, (int)i);
            bool ok = enc_value(e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
            if (!ok)
                return false;
        }
        return put(e, "]", 1);
    }
    if (!put(e, "{", 1))
        return false;
    bool first = true;
    lua_pushnil(L);
    while (lua_next(L, idx)) { /* stack: ... key value */
        int kt = lua_type(L, -2);
        if (!first && !put(e, ",", 1))
            return false;
        first = false;
        if (kt == LUA_TSTRING) {
            size_t kl;
            const char *k = lua_tolstring(L, -2, &kl);
            if (!enc_string(e, k, kl))
                return false;
        } else if (kt == LUA_TNUMBER) {
            if (!put(e, "\"", 1) || !enc_number(e, lua_tonumber(L, -2)) || !put(e, "\"", 1))
                return false;
        } else {
            e->err = "json: a table key must be a string or a number";
            return false;
        }
        if (!put(e, ":", 1) || !enc_value(e, lua_gettop(L), depth + 1))
            return false;
        lua_pop(L, 1);
    }
    return put(e, "}", 1);
}

static bool enc_value(struct enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth > JSON_MAX_DEPTH) {
        e->err = "json: nested too deep (or a cycle)";
        return false;
    }
    luaL_checkstack(L, 4, "json.encode");
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return put(e, "null", 4);
    case LUA_TBOOLEAN: return lua_toboolean(L, idx) ? put(e, "true", 4) : put(e, "false", 5);
    case LUA_TNUMBER: return enc_number(e, lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return enc_string(e, s, n);
    }
    case LUA_TTABLE: return enc_table(e, idx, depth);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &json_null_token)
            return put(e, "null", 4);
        /* fall through */
    default:
        e->err = "json: cannot encode this type";
        return false;
    }
}

/* Pushes the VM's encode buffer, emptied: one abuf per VM, kept in the registry and reused, so
 * an encode allocates nothing but its result string. Encoding never runs Lua code, so no second
 * encode can start while one is using it; one that raised left only bytes to forget. */
static struct abuf *scratch_push(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&key_scratch);
    lua_rawget(L, LUA_REGISTRYINDEX);
    struct abuf *b = lua_touserdata(L, -1);
    if (!b) {
        lua_pop(L, 1);
        b = abuf_push(L, JSON_MAX_SIZE);
        lua_pushlightuserdata(L, (void *)&key_scratch);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    b->len = 0;
    return b;
}

int api_json_encode_value(lua_State *L, int idx)
{
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    struct enc e = {.L = L};
    e.b = scratch_push(L); /* stack: ... abuf */
    int top = lua_gettop(L);
    bool ok = enc_value(&e, idx, 0);
    lua_settop(L, top);
    if (ok)
        lua_pushlstring(L, e.b->len ? e.b->p : "", e.b->len);
    if (e.b->cap > JSON_SCRATCH_KEEP) { /* a large output: give the memory back */
        e.b->fn(e.b->ud, e.b->p, e.b->cap, 0);
        e.b->p = NULL;
        e.b->cap = 0;
    }
    if (!ok) {
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_pushstring(L, e.err);
        return 2;
    }
    lua_remove(L, -2); /* the abuf stays in the registry */
    return 1;
}

/* tide.json.encode(v) -> string | nil, err */
static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    return api_json_encode_value(L, 1);
}

static const luaL_Reg api_json[] = {
    {"encode", l_encode},
    {"decode", l_decode},
    {NULL, NULL},
};

void api_json_open(lua_State *L)
{
    lua_newtable(L); /* stack: tide json */
    luaL_setfuncs(L, api_json, 0);
    lua_pushlightuserdata(L, (void *)&key_array_mt);
    lua_newtable(L); /* stack: tide json key mt */
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -1);
    lua_setfield(L, -4, "array_mt");
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, &json_null_token);
    lua_setfield(L, -2, "null");
    lua_newtable(L);
    push_array_mt(L);
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "empty_array");
    lua_setfield(L, -2, "json");
}
