/* The arguments of on_publish and on_deliver: msg and client, built with only the fields the hook
 * reads (args.c finds which). Per rule and hook, a small Lua function is generated and compiled
 * in the rule's VM (kept in its registry, out of the rule's reach) that takes those fields' values,
 * makes the tables and calls the hook as a tail call, so a message enters Lua once. Its table
 * constructors compile to TDUP, a copy of a template whose keys are already in place, so a field
 * costs one bytecode instead of a C-API lua_setfield (interning the key, then a new hash slot). A
 * hook that reads neither argument is called bare. The tables are the ones values_push_msg and
 * values_push_client make, less the fields no code can observe. */
#include "engine_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "hooks.h"
#include "msg.h"

/* Each parameter's field names, in the order of args.c's bits and of the values pushed. */
enum { M_TOPIC, M_PAYLOAD, M_QOS, M_RETAIN, M_FROM, M_PROPERTIES, M_COUNT };
enum { C_CLIENT_ID, C_USERNAME, C_PROTOCOL, C_ADDRESS, C_LISTENER, C_ATTRS, C_COUNT };

static const char *const msg_names[M_COUNT + 1] = {
    "topic", "payload", "qos", "retain", "from", "properties", NULL,
};
static const char *const client_names[C_COUNT + 1] = {
    "client_id", "username", "protocol", "address", "listener", "attrs", NULL,
};

/* Per field: the builder's parameter(s) and the constructor entry. */
static const char *const msg_params[M_COUNT] = {"topic",  "payload",    "qos",
                                                "retain", "fid, fuser", "props"};
static const char *const msg_entries[M_COUNT] = {
    "topic = topic",
    "payload = payload",
    "qos = qos",
    "retain = retain",
    "from = fid and {client_id = fid, username = fuser} or nil",
    "properties = props or {user = {}}",
};
static const char *const client_params[C_COUNT] = {"cid",  "cuser",    "proto",
                                                   "addr", "listener", "attrs"};
static const char *const client_entries[C_COUNT] = {
    "client_id = cid", "username = cuser",    "protocol = PROTOCOL[proto] or '5'",
    "address = addr",  "listener = listener", "attrs = attrs or {}",
};

#define BUILDER_SRC_MAX 1024

struct src {
    char text[BUILDER_SRC_MAX];
    size_t len;
};

static void add(struct src *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->text + s->len, sizeof(s->text) - s->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        s->len += (size_t)n < sizeof(s->text) - s->len ? (size_t)n : sizeof(s->text) - s->len - 1;
}

/* The fields of parameter p the builder makes: a bit per name. */
static uint32_t wanted(const struct arg_use *u, int p, int count)
{
    if (u->how[p] == ARG_ALL)
        return (UINT32_C(1) << count) - 1;
    return u->how[p] == ARG_FIELDS ? u->fields[p] : 0;
}

/* The table constructor of one parameter, its fields separated by commas. */
static void add_table(struct src *s, uint32_t bits, const char *const *entries, int count)
{
    add(s, "{");
    const char *sep = "";
    for (int k = 0; k < count; k++) {
        if (bits & (UINT32_C(1) << k)) {
            add(s, "%s%s", sep, entries[k]);
            sep = ", ";
        }
    }
    add(s, "}");
}

/* The builder's source for u: function(fn, <the values>) return fn(msg, client) end. */
static void generate(const struct arg_use *u, struct src *s)
{
    uint32_t mb = wanted(u, 0, M_COUNT), cb = wanted(u, 1, C_COUNT);
    add(s, "local PROTOCOL = {[3] = '3.1', [4] = '3.1.1', [5] = '5'}\n");
    add(s, "return function(fn");
    for (int k = 0; k < M_COUNT; k++)
        if (mb & (UINT32_C(1) << k))
            add(s, ", %s", msg_params[k]);
    if (u->how[1] != ARG_UNUSED) {
        add(s, ", hc");
        for (int k = 0; k < C_COUNT; k++)
            if (cb & (UINT32_C(1) << k))
                add(s, ", %s", client_params[k]);
    }
    add(s, ")\n  return fn(");
    if (u->how[0] == ARG_UNUSED)
        add(s, "nil");
    else
        add_table(s, mb, msg_entries, M_COUNT);
    if (u->how[1] != ARG_UNUSED) {
        add(s, ", hc and ");
        add_table(s, cb, client_entries, C_COUNT);
        add(s, " or nil");
    }
    add(s, ")\nend\n");
}

/* Finds what the hook on top of the stack reads and makes its builder (may raise). */
static void shape_hook(lua_State *L, struct rule *r, struct hook_shape *sh)
{
    static const char *const *const names[ARGS_PARAMS] = {msg_names, client_names};
    struct arg_use u;
    args_analyze(r->eng, L, names, &u);
    int ref = LUA_NOREF;
    if (u.how[0] != ARG_UNUSED || u.how[1] != ARG_UNUSED) {
        struct src s = {.len = 0};
        generate(&u, &s);
        if (luaL_loadbuffer(L, s.text, s.len, "=tidemq") != 0)
            lua_error(L); /* out of memory: the call fails like any other */
        lua_call(L, 0, 1);
        ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    sh->use = u;
    sh->builder_ref = ref;
}

void builder_prepare(lua_State *L, struct rule *r)
{
    static const int hooks[] = {RH_PUBLISH, RH_DELIVER};
    for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++) {
        if (r->hook_ref[hooks[i]] == LUA_NOREF)
            continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->hook_ref[hooks[i]]);
        shape_hook(L, r, &r->shape[hooks[i] == RH_DELIVER]);
        lua_pop(L, 1);
    }
}

static void push_cstr(lua_State *L, const char *s)
{
    if (s)
        lua_pushstring(L, s);
    else
        lua_pushnil(L);
}

int builder_push_call(lua_State *L, struct rule *r, int hook, const struct msg *m,
                      const struct hooks_client *from, const struct hooks_client *client)
{
    const struct hook_shape *sh = &r->shape[hook == RH_DELIVER]; /* shaped at load */
    if (sh->builder_ref == LUA_NOREF)
        return 0; /* hook(): nothing to build */
    luaL_checkstack(L, M_COUNT + C_COUNT + 4, "hook arguments");
    int base = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, sh->builder_ref);
    lua_insert(L, -2); /* stack: builder fn */
    uint32_t mb = wanted(&sh->use, 0, M_COUNT), cb = wanted(&sh->use, 1, C_COUNT);
    int from_id = 0; /* stack index of msg.from's client id, reused for client when the same */
    if (mb & (1u << M_TOPIC))
        lua_pushlstring(L, m->topic, m->topic_len);
    if (mb & (1u << M_PAYLOAD))
        lua_pushlstring(L, m->payload ? (const char *)m->payload : "", m->payload_len);
    if (mb & (1u << M_QOS))
        lua_pushnumber(L, m->qos);
    if (mb & (1u << M_RETAIN))
        lua_pushboolean(L, m->retain);
    if (mb & (1u << M_FROM)) {
        push_cstr(L, from ? from->client_id : NULL); /* a hooks_client always has a client id */
        from_id = from ? lua_gettop(L) : 0;
        push_cstr(L, from ? from->username : NULL);
    }
    if (mb & (1u << M_PROPERTIES)) {
        if (m->props_len || m->has_expiry)
            values_push_props(L, m); /* rare: built here, field by field */
        else
            lua_pushnil(L);
    }
    if (sh->use.how[1] != ARG_UNUSED) {
        lua_pushboolean(L, client != NULL);
        bool same = client && client == from && from_id;
        if (cb & (1u << C_CLIENT_ID)) {
            if (same)
                lua_pushvalue(L, from_id);
            else
                push_cstr(L, client ? client->client_id : NULL);
        }
        if (cb & (1u << C_USERNAME)) {
            if (same)
                lua_pushvalue(L, from_id + 1);
            else
                push_cstr(L, client ? client->username : NULL);
        }
        if (cb & (1u << C_PROTOCOL))
            lua_pushnumber(L, client ? client->protocol : 0); /* named by the builder */
        if (cb & (1u << C_ADDRESS))
            push_cstr(L, client ? client->address : NULL);
        if (cb & (1u << C_LISTENER))
            lua_pushnumber(L, client ? client->listener : 0);
        if (cb & (1u << C_ATTRS)) {
            if (client && !values_attrs_empty(client->attrs))
                values_push_attrs(L, client->attrs);
            else
                lua_pushnil(L);
        }
    }
    return lua_gettop(L) - base; /* the hook and the values, after the builder */
}
