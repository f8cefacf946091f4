/* tide.crypto: sha256, hmac(alg, key, s), b64encode/b64decode (standard or URL alphabet, padding
 * optional), hex, and a constant-time equal — enough to check HMAC or JWT-style tokens. The rule
 * engine's one OpenSSL file; results are raw bytes unless named otherwise. */
#include "engine_internal.h"

#include <string.h>

#include <lauxlib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define CRYPTO_INPUT_MAX (64u * 1024 * 1024)

void api_sha256(const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 0;
    if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) || len != 32)
        memset(out, 0, 32); /* libcrypto broken: every bundle hashes alike, reloads still work */
}

/* tide.crypto.sha256(s) -> 32 raw bytes */
static int l_sha256(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(s, len, md, &n, EVP_sha256(), NULL)) {
        lua_pushnil(L);
        lua_pushliteral(L, "crypto_failed");
        return 2;
    }
    lua_pushlstring(L, (const char *)md, n);
    return 1;
}

/* tide.crypto.hmac(alg, key, s) -> raw MAC; alg is sha1, sha256, sha384 or sha512 */
static int l_hmac(lua_State *L)
{
    const char *alg = luaL_checkstring(L, 1);
    size_t kl, sl;
    const char *key = luaL_checklstring(L, 2, &kl);
    const char *s = luaL_checklstring(L, 3, &sl);
    const EVP_MD *md = strcmp(alg, "sha256") == 0   ? EVP_sha256()
                       : strcmp(alg, "sha1") == 0   ? EVP_sha1()
                       : strcmp(alg, "sha384") == 0 ? EVP_sha384()
                       : strcmp(alg, "sha512") == 0 ? EVP_sha512()
                                                    : NULL;
    if (!md)
        return luaL_argerror(L, 1, "sha1, sha256, sha384 or sha512");
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (kl > INT32_MAX || !HMAC(md, key, (int)kl, (const unsigned char *)s, sl, out, &n)) {
        lua_pushnil(L);
        lua_pushliteral(L, "crypto_failed");
        return 2;
    }
    lua_pushlstring(L, (const char *)out, n);
    return 1;
}

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* tide.crypto.b64encode(s[, "url"]) -> text (the URL alphabet has no padding) */
static int l_b64encode(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    bool url = lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "url") == 0;
    const char *al = url ? b64url : b64std;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < len)
            v |= s[i + 2];
        luaL_addchar(&b, al[v >> 18 & 63]);
        luaL_addchar(&b, al[v >> 12 & 63]);
        if (i + 1 < len)
            luaL_addchar(&b, al[v >> 6 & 63]);
        else if (!url)
            luaL_addchar(&b, '=');
        if (i + 2 < len)
            luaL_addchar(&b, al[v & 63]);
        else if (!url)
            luaL_addchar(&b, '=');
    }
    luaL_pushresult(&b);
    return 1;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* tide.crypto.b64decode(s) -> bytes | nil, "invalid_base64" (either alphabet, padding optional) */
static int l_b64decode(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    while (len && s[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        goto bad;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64val(s[i]);
        if (v < 0) {
            luaL_pushresult(&b);
            lua_pop(L, 1);
            goto bad;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            luaL_addchar(&b, (char)(acc >> bits & 0xff));
        }
    }
    luaL_pushresult(&b);
    return 1;
bad:
    lua_pushnil(L);
    lua_pushliteral(L, "invalid_base64");
    return 2;
}

/* tide.crypto.hex(s) -> lowercase hex text */
static int l_hex(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    static const char digits[] = "0123456789abcdef";
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        luaL_addchar(&b, digits[s[i] >> 4]);
        luaL_addchar(&b, digits[s[i] & 15]);
    }
    luaL_pushresult(&b);
    return 1;
}

/* tide.crypto.equal(a, b) -> boolean, in time that depends only on the lengths */
static int l_equal(lua_State *L)
{
    size_t al, bl;
    const char *a = luaL_checklstring(L, 1, &al);
    const char *b = luaL_checklstring(L, 2, &bl);
    lua_pushboolean(L, al == bl && CRYPTO_memcmp(a, b, al) == 0);
    return 1;
}

static const luaL_Reg api_crypto[] = {
    {"sha256", l_sha256},       {"hmac", l_hmac}, {"b64encode", l_b64encode},
    {"b64decode", l_b64decode}, {"hex", l_hex},   {"equal", l_equal},
    {NULL, NULL},
};

void api_crypto_open(lua_State *L)
{
    lua_newtable(L);
    luaL_setfuncs(L, api_crypto, 0);
    lua_setfield(L, -2, "crypto");
}
