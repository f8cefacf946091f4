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

/* Byte classes for the scanners: one load and test per byte instead of a chain of compares. */
enum {
    C_WS = 1,    /* JSON whitespace */
    C_DSTOP = 2, /* ends decode's plain string run: '"', '\\' and control characters */
    C_ESC = 4,   /* encode must escape it: '"', '\\', control characters and DEL */
    C_DIGIT = 8, /* '0'..'9' */
};
/* X: '"', '\\' and control characters; the bytes 0x80..0xff are all 0. */
#define X (C_DSTOP | C_ESC)
#define W C_WS
#define E C_ESC
#define N C_DIGIT
/* clang-format off */
static const unsigned char cclass[256] = {
    /* 00 */ X, X, X, X, X, X, X, X, X, X|W, X|W, X, X, X|W, X, X,
    /* 10 */ X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    /* 20 */ W, 0, X, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 30 */ N, N, N, N, N, N, N, N, N, N, 0, 0, 0, 0, 0, 0,
    /* 40 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 50 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, X, 0, 0, 0,
    /* 60 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 70 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, E,
};
/* clang-format on */
#undef X
#undef W
#undef E
#undef N

static inline bool is_class(char c, unsigned cls)
{
    return cclass[(unsigned char)c] & cls;
}

static inline void skip_ws(struct dec *d)
{
    const char *p = d->p, *end = d->end;
    while (p < end && is_class(*p, C_WS))
        p++;
    d->p = p;
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

__attribute__((noinline)) static bool dec_string_escaped(struct dec *d);

static inline bool dec_string(struct dec *d)
{
    d->p++;
    /* fast path: no escapes */
    const char *q = d->p, *end = d->end;
    while (q < end && !is_class(*q, C_DSTOP))
        q++;
    if (q < end && *q == '"') {
        lua_pushlstring(d->L, d->p, (size_t)(q - d->p));
        d->p = q + 1;
        return true;
    }
    return dec_string_escaped(d);
}

/* The rest of dec_string, out of line: its luaL_Buffer is a large stack frame. d->p is just
 * after the opening quote. */
static bool dec_string_escaped(struct dec *d)
{
    luaL_Buffer b;
    /* The buffer may hold up to LUA_MINSTACK / 2 pieces on the stack at once. */
    luaL_checkstack(d->L, LUA_MINSTACK / 2 + 2, "json.decode");
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
        case '"':
            luaL_addchar(&b, '"');
            break;
        case '\\':
            luaL_addchar(&b, '\\');
            break;
        case '/':
            luaL_addchar(&b, '/');
            break;
        case 'b':
            luaL_addchar(&b, '\b');
            break;
        case 'f':
            luaL_addchar(&b, '\f');
            break;
        case 'n':
            luaL_addchar(&b, '\n');
            break;
        case 'r':
            luaL_addchar(&b, '\r');
            break;
        case 't':
            luaL_addchar(&b, '\t');
            break;
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
        default:
            luaL_pushresult(&b);
            return derr(d, "bad escape");
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

/* Parses and pushes a number in one pass. Its value is computed without strtod when that is
 * exact: at most 15 significant digits make an integer m below 2^53, and m times or divided by an
 * exact power of ten up to 1e22 is one correctly rounded operation, the same double strtod gives
 * (Clinger's fast path). Anything else is left to strtod. */
static bool dec_number(struct dec *d)
{
    const char *s = d->p, *q = d->p, *end = d->end;
    bool integral = true, fast = true;
    uint64_t m = 0;
    int digits = 0, scale = 0;
    bool neg = q < end && *q == '-';
    q += neg;
    if (q >= end || !is_class(*q, C_DIGIT))
        return derr(d, "unexpected character");
    if (*q == '0')
        q++; /* a leading zero is the whole integer part, and not a significant digit */
    else
        for (; q < end && is_class(*q, C_DIGIT); q++) {
            m = m * 10 + (uint64_t)(*q - '0');
            digits++;
        }
    if (q < end && *q == '.') {
        integral = false;
        q++;
        if (q >= end || !is_class(*q, C_DIGIT))
            return derr(d, "bad number");
        for (; q < end && is_class(*q, C_DIGIT); q++) {
            if (digits || *q != '0')
                digits++;
            if (digits <= 15) {
                m = m * 10 + (uint64_t)(*q - '0');
                scale--;
            }
        }
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        integral = false;
        q++;
        bool eneg = q < end && *q == '-';
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q >= end || !is_class(*q, C_DIGIT))
            return derr(d, "bad number");
        int ex = 0;
        for (; q < end && is_class(*q, C_DIGIT); q++)
            if (ex <= 400)
                ex = ex * 10 + (*q - '0');
        if (ex > 400)
            fast = false;
        scale += eneg ? -ex : ex;
    }
    size_t n = (size_t)(q - s);
    d->p = q;
    if (fast && digits <= 15 && scale <= POW10_MAX && scale >= -POW10_MAX) {
        double v = (double)m; /* exact: m < 10^15 */
        v = scale >= 0 ? v * pow10_exact[scale] : v / pow10_exact[-scale];
        /* an integer beyond 2^53 stays a string: strtod's path decides */
        if (!(scale > 0 && v >= EXACT_INT_MAX)) {
            lua_pushnumber(d->L, neg ? -v : v);
            return true;
        }
    }
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

static inline bool dec_value(struct dec *d, int depth);

/* Stack slots a container needs while it is being filled: itself, a key and a scalar value. The
 * root value is covered by the check in api_json_decode_string; a nested container checks for its
 * own, so one check per container (not per value) covers everything. */
#define DEC_SLOTS 4

static bool dec_array(struct dec *d, int depth)
{
    lua_State *L = d->L;
    d->p++;
    if (depth)
        luaL_checkstack(L, DEC_SLOTS, "json.decode");
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
    if (depth)
        luaL_checkstack(L, DEC_SLOTS, "json.decode");
    lua_createtable(L, 0, 8); /* room for a small object and keys a rule adds: no rehash */
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        return true;
    }
    for (;;) {
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
            skip_ws(d);
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

/* Pushes one value. The caller has made room for it (DEC_SLOTS). Inline: the containers, out of
 * line, are where the recursion goes. */
static inline bool dec_value(struct dec *d, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return derr(d, "nested too deep");
    skip_ws(d);
    if (d->p >= d->end)
        return derr(d, "unexpected end");
    switch (*d->p) {
    case '{':
        return dec_object(d, depth);
    case '[':
        return dec_array(d, depth);
    case '"':
        return dec_string(d);
    case 't':
        lua_pushboolean(d->L, 1);
        return literal(d, "true");
    case 'f':
        lua_pushboolean(d->L, 0);
        return literal(d, "false");
    case 'n':
        lua_pushlightuserdata(d->L, &json_null_token);
        return literal(d, "null");
    default:
        return dec_number(d);
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
    luaL_checkstack(L, DEC_SLOTS, "json.decode");
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
static inline bool needs_escape(unsigned char c)
{
    return cclass[c] & C_ESC;
}

static bool enc_string(struct enc *e, const char *s, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    size_t i = 0;
    struct abuf *b = e->b;
    if (b->p && n + 2 <= b->cap - b->len) { /* the common case: room for it all, quoted */
        char *o = b->p + b->len + 1;
        if (n <= 32) { /* a short string: copy while looking, no memcpy call */
            for (; i < n && !needs_escape((unsigned char)s[i]); i++)
                o[i] = s[i];
        } else {
            while (i < n && !needs_escape((unsigned char)s[i]))
                i++;
            if (i == n)
                memcpy(o, s, n);
        }
        if (i == n) { /* nothing to escape */
            o[-1] = '"';
            o[n] = '"';
            b->len += n + 2;
            return true;
        }
    } else {
        while (i < n && !needs_escape((unsigned char)s[i]))
            i++;
        if (i == n)
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

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Formats v into buf (room for 24 bytes at least) without printf when that is exact: an integer
 * below 2^53, or a value that k decimals (the fewest that work) represent exactly enough, i.e.
 * (double)n / 10^k == v for n = round(v * 10^k): the division is correctly rounded like strtod,
 * so the text "n / 10^k" reads back as v. Returns the length, or 0 to leave v to printf. */
static int fast_format(double v, char *buf)
{
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
    /* Right to left into tmp: k decimals, the point, the integer part (at least "0"), the sign.
     * At most 18 bytes (16 digits or "0." and 15 decimals, and a sign), copied out as a fixed
     * 24 bytes: no length-dependent memcpy. */
    char tmp[48] = {0}, *end = tmp + 24, *p = end;
    uint64_t u = (uint64_t)x;
    int i = 0;
    for (; i + 2 <= k; i += 2) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * (u % 100), 2);
        u /= 100;
    }
    if (i < k) {
        *--p = (char)('0' + u % 10);
        u /= 10;
    }
    if (k)
        *--p = '.';
    while (u >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * (u % 100), 2);
        u /= 100;
    }
    if (u || p[0] == '.' || p == end)
        *--p = (char)('0' + u);
    if (signbit(v))
        *--p = '-';
    memcpy(buf, p, 24);
    return (int)(end - p);
}

static bool enc_number(struct enc *e, double v)
{
    char buf[40];
    int n;
    if (!isfinite(v)) {
        e->err = "json: cannot encode NaN or infinity";
        return false;
    }
    struct abuf *b = e->b;
    if (b->p && b->cap - b->len >= 24) { /* the common case: format in place */
        if ((n = fast_format(v, b->p + b->len)) > 0) {
            b->len += (size_t)n;
            return true;
        }
    } else if ((n = fast_format(v, buf)) > 0) {
        return put(e, buf, (size_t)n);
    }
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        n = snprintf(buf, sizeof(buf), "%.0f", v);
    else {
        n = snprintf(buf, sizeof(buf), "%.14g", v);
        if (strtod(buf, NULL) != v)
            n = snprintf(buf, sizeof(buf), "%.17g", v);
    }
    return put(e, buf, (size_t)n);
}

static inline bool enc_value(struct enc *e, int idx, int depth);

/* Stack slots a table needs while it is walked: a key and a value (or a metatable and
 * array_mt). The root is covered by the check in encode_into; a nested table checks for its own. */
#define ENC_SLOTS 4

/* True if the key at idx could index an array: an integer from 1 to 1e15. */
static inline bool index_key(lua_State *L, int idx, double *k)
{
    *k = lua_type(L, idx) == LUA_TNUMBER ? lua_tonumber(L, idx) : 0;
    return *k >= 1 && *k == floor(*k) && *k <= 1e15;
}

static bool enc_array(struct enc *e, int idx, int top, size_t n, int depth)
{
    lua_State *L = e->L;
    if (!put(e, "[", 1))
        return false;
    for (size_t i = 1; i <= n; i++) {
        if (i > 1 && !put(e, ",", 1))
            return false;
        lua_rawgeti(L, idx, (int)i);
        bool ok = enc_value(e, top + 1, depth + 1);
        lua_pop(L, 1);
        if (!ok)
            return false;
    }
    return put(e, "]", 1);
}

/* Writes the table at idx as an object. The walk starts over unless its first pair is already
 * on the stack (at top + 1 and top + 2). */
static bool enc_object(struct enc *e, int idx, int top, bool started, int depth)
{
    lua_State *L = e->L;
    if (!put(e, "{", 1))
        return false;
    if (!started) {
        lua_pushnil(L);
        if (!lua_next(L, idx))
            return put(e, "}", 1);
    }
    for (bool first = true;; first = false) { /* stack: ... key value */
        if (!first && !put(e, ",", 1))
            return false;
        int kt = lua_type(L, top + 1);
        if (kt == LUA_TSTRING) {
            size_t kl;
            const char *k = lua_tolstring(L, top + 1, &kl);
            if (!enc_string(e, k, kl))
                return false;
        } else if (kt == LUA_TNUMBER) {
            if (!put(e, "\"", 1) || !enc_number(e, lua_tonumber(L, top + 1)) || !put(e, "\"", 1))
                return false;
        } else {
            e->err = "json: a table key must be a string or a number";
            return false;
        }
        if (!put(e, ":", 1) || !enc_value(e, top + 2, depth + 1))
            return false;
        lua_pop(L, 1);
        if (!lua_next(L, idx))
            return put(e, "}", 1);
    }
}

/* A table is an array if it carries array_mt, or if its keys are exactly 1..n (n > 0); the
 * first key that cannot be an index makes it an object, and the walk goes on from there. */
static bool enc_table(struct enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth)
        luaL_checkstack(L, ENC_SLOTS, "json.encode");
    int top = lua_gettop(L);
    if (lua_getmetatable(L, idx)) {
        push_array_mt(L);
        bool arr = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (arr)
            return enc_array(e, idx, top, lua_objlen(L, idx), depth);
    }
    lua_pushnil(L);
    if (!lua_next(L, idx))
        return put(e, "{}", 2);
    double k;
    if (!index_key(L, top + 1, &k))
        return enc_object(e, idx, top, true, depth);
    size_t count = 0;
    double max = 0;
    do {
        lua_pop(L, 1);
        count++;
        if (!index_key(L, top + 1, &k)) {
            lua_pop(L, 1); /* an object: no need to see the other keys */
            return enc_object(e, idx, top, false, depth);
        }
        if (k > max)
            max = k;
    } while (lua_next(L, idx));
    if ((double)count == max)
        return enc_array(e, idx, top, count, depth);
    return enc_object(e, idx, top, false, depth);
}

static inline __attribute__((always_inline)) bool enc_value(struct enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth > JSON_MAX_DEPTH) {
        e->err = "json: nested too deep (or a cycle)";
        return false;
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return put(e, "null", 4);
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? put(e, "true", 4) : put(e, "false", 5);
    case LUA_TNUMBER:
        return enc_number(e, lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return enc_string(e, s, n);
    }
    case LUA_TTABLE:
        return enc_table(e, idx, depth);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &json_null_token)
            return put(e, "null", 4);
        /* fall through */
    default:
        e->err = "json: cannot encode this type";
        return false;
    }
}

/* The VM's encode buffer: one abuf per VM, kept in the registry (and as an upvalue of
 * tide.json.encode) and reused, so an encode allocates nothing but its result string. Encoding
 * never runs Lua code, so no second encode can start while one is using it; one that raised left
 * only bytes to forget. */
static struct abuf *scratch_get(lua_State *L)
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
    lua_pop(L, 1); /* the registry keeps it */
    return b;
}

/* Encodes the value at idx (absolute) into b, emptied; pushes the string or nil, err. */
static int encode_into(lua_State *L, int idx, struct abuf *b)
{
    struct enc e = {.L = L, .b = b};
    b->len = 0;
    luaL_checkstack(L, ENC_SLOTS, "json.encode");
    int top = lua_gettop(L);
    bool ok = enc_value(&e, idx, 0);
    lua_settop(L, top);
    if (ok)
        lua_pushlstring(L, b->len ? b->p : "", b->len);
    if (b->cap > JSON_SCRATCH_KEEP) { /* a large output: give the memory back */
        b->fn(b->ud, b->p, b->cap, 0);
        b->p = NULL;
        b->cap = 0;
    }
    if (!ok) {
        lua_pushnil(L);
        lua_pushstring(L, e.err);
        return 2;
    }
    return 1;
}

int api_json_encode_value(lua_State *L, int idx)
{
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    return encode_into(L, idx, scratch_get(L));
}

/* tide.json.encode(v) -> string | nil, err */
static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    return encode_into(L, 1, lua_touserdata(L, lua_upvalueindex(1)));
}

static const luaL_Reg api_json[] = {
    {"encode", l_encode},
    {"decode", l_decode},
    {NULL, NULL},
};

void api_json_open(lua_State *L)
{
    lua_newtable(L); /* stack: tide json */
    scratch_get(L);
    lua_pushlightuserdata(L, (void *)&key_scratch);
    lua_rawget(L, LUA_REGISTRYINDEX); /* stack: tide json abuf */
    luaL_setfuncs(L, api_json, 1);    /* the abuf is encode's upvalue (decode ignores it) */
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
