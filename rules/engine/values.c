/* Values crossing between C and a rule, by copy, both ways (RULES-API "The values"): the conn,
 * client, msg and sub tables; messages rebuilt from the partial tables rules return (validated,
 * naming the field); per-client attrs; and MQTT 5 reason names. Raises only before it owns
 * anything; never keeps a Lua value. */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"
#include "hooks.h"
#include "msg.h"
#include "topic.h"
#include "util/alloc.h"
#include "util/buf.h"

#define USER_PROPS_MAX 1024

/* --- reasons --- */
struct reason {
    const char *name;
    uint8_t code;
    const char *kinds; /* 'C' CONNACK, 'S' SUBACK, 'P' PUBACK/PUBREC */
};

static const struct reason reasons[] = {
    {"success", 0x00, ""},
    {"unspecified_error", 0x80, "CSP"},
    {"malformed_packet", 0x81, "C"},
    {"protocol_error", 0x82, "C"},
    {"implementation_specific_error", 0x83, "CSP"},
    {"unsupported_protocol_version", 0x84, "C"},
    {"client_identifier_not_valid", 0x85, "C"},
    {"bad_username_or_password", 0x86, "C"},
    {"not_authorized", 0x87, "CSP"},
    {"server_unavailable", 0x88, "C"},
    {"server_busy", 0x89, "C"},
    {"banned", 0x8A, "C"},
    {"bad_authentication_method", 0x8C, "C"},
    {"topic_filter_invalid", 0x8F, "S"},
    {"topic_name_invalid", 0x90, "CP"},
    {"packet_identifier_in_use", 0x91, "SP"},
    {"packet_too_large", 0x95, "C"},
    {"quota_exceeded", 0x97, "CSP"},
    {"payload_format_invalid", 0x99, "CP"},
    {"retain_not_supported", 0x9A, "C"},
    {"qos_not_supported", 0x9B, "C"},
    {"use_another_server", 0x9C, "C"},
    {"server_moved", 0x9D, "C"},
    {"shared_subscriptions_not_supported", 0x9E, "S"},
    {"connection_rate_exceeded", 0x9F, "C"},
    {"subscription_identifiers_not_supported", 0xA1, "S"},
    {"wildcard_subscriptions_not_supported", 0xA2, "S"},
};

uint8_t values_reason(lua_State *L, int idx, char kind, bool *unknown)
{
    *unknown = false;
    if (lua_type(L, idx) == LUA_TNIL)
        return 0x87;
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        const struct reason *rs = &reasons[i];
        if (!strchr(rs->kinds, kind) || !*rs->kinds)
            continue;
        if (lua_type(L, idx) == LUA_TSTRING && strcmp(lua_tostring(L, idx), rs->name) == 0)
            return rs->code;
        if (lua_type(L, idx) == LUA_TNUMBER && lua_tonumber(L, idx) == rs->code)
            return rs->code;
    }
    *unknown = true;
    return 0x80;
}

const char *values_reason_name(uint8_t code)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].code == code)
            return reasons[i].name;
    return "unspecified_error";
}

/* --- C -> Lua --- */
static void set_str(lua_State *L, const char *k, const void *p, size_t n)
{
    if (!p)
        return;
    lua_pushlstring(L, p, n);
    lua_setfield(L, -2, k);
}

static void set_cstr(lua_State *L, const char *k, const char *s)
{
    if (s)
        set_str(L, k, s, strlen(s));
}

static void set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, bool v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

static const char *protocol_name(uint8_t p)
{
    return p == 3 ? "3.1" : p == 4 ? "3.1.1" : "5";
}

/* One user property pair {name, value} appended to the list on top. */
static void push_user_pair(lua_State *L, const void *n, size_t nl, const void *v, size_t vl, int i)
{
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, n, nl);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, v, vl);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, i);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

void values_push_props(lua_State *L, const struct msg *m)
{
    const uint8_t *p = m->props, *end = m->props + m->props_len;
    int nuser = 0;
    lua_createtable(L, 0, 4);
    lua_newtable(L); /* stack: props user */
    while (p < end) {
        uint8_t id = *p++;
        if (id == CODEC_PROP_PAYLOAD_FORMAT && p < end) {
            lua_pushnumber(L, *p++);
            lua_setfield(L, -3, "payload_format");
        } else if ((id == CODEC_PROP_CONTENT_TYPE || id == CODEC_PROP_RESPONSE_TOPIC ||
                    id == CODEC_PROP_CORRELATION_DATA) &&
                   end - p >= 2 && end - p - 2 >= get16(p)) {
            uint16_t n = get16(p);
            lua_pushlstring(L, (const char *)p + 2, n);
            lua_setfield(L, -3, id == CODEC_PROP_CONTENT_TYPE    ? "content_type"
                                : id == CODEC_PROP_RESPONSE_TOPIC ? "response_topic"
                                                                  : "correlation_data");
            p += 2 + n;
        } else if (id == CODEC_PROP_USER && end - p >= 2 && end - p - 2 >= get16(p)) {
            const uint8_t *name = p + 2;
            uint16_t nl = get16(p);
            p += 2 + nl;
            if (end - p < 2 || end - p - 2 < get16(p))
                break;
            push_user_pair(L, name, nl, p + 2, get16(p), ++nuser);
            p += 2 + get16(p);
        } else {
            break; /* not a forwarded property: nothing after it can be trusted */
        }
    }
    lua_setfield(L, -2, "user");
    if (m->has_expiry)
        set_num(L, "message_expiry", m->expiry_interval);
}

void values_push_msg(lua_State *L, const struct msg *m, const struct hooks_client *from)
{
    lua_createtable(L, 0, 6);
    set_str(L, "topic", m->topic, m->topic_len);
    set_str(L, "payload", m->payload ? (const char *)m->payload : "", m->payload_len);
    set_num(L, "qos", m->qos);
    set_bool(L, "retain", m->retain);
    if (from) {
        lua_createtable(L, 0, 2);
        set_cstr(L, "client_id", from->client_id);
        set_cstr(L, "username", from->username);
        lua_setfield(L, -2, "from");
    }
    values_push_props(L, m);
    lua_setfield(L, -2, "properties");
}

void values_push_client(lua_State *L, const struct hooks_client *c)
{
    lua_createtable(L, 0, 6);
    set_cstr(L, "client_id", c->client_id);
    set_cstr(L, "username", c->username);
    set_cstr(L, "protocol", protocol_name(c->protocol));
    set_cstr(L, "address", c->address);
    set_num(L, "listener", c->listener);
    values_push_attrs(L, c->attrs);
    lua_setfield(L, -2, "attrs");
}

static void push_conn_props(lua_State *L, const struct codec_props *pr)
{
    lua_newtable(L);
    lua_newtable(L); /* stack: props user */
    if (pr) {
        size_t cur = 0;
        struct codec_user_prop u;
        int n = 0;
        while (codec_props_next_user(pr, &cur, &u))
            push_user_pair(L, u.name.p, u.name.len, u.value.p, u.value.len, ++n);
    }
    lua_setfield(L, -2, "user");
    if (!pr)
        return;
    if (CODEC_HAS(pr, CODEC_PROP_SESSION_EXPIRY))
        set_num(L, "session_expiry", pr->session_expiry);
    if (CODEC_HAS(pr, CODEC_PROP_RECEIVE_MAX))
        set_num(L, "receive_maximum", pr->receive_max);
    if (CODEC_HAS(pr, CODEC_PROP_MAX_PACKET_SIZE))
        set_num(L, "maximum_packet_size", pr->max_packet_size);
    if (CODEC_HAS(pr, CODEC_PROP_TOPIC_ALIAS_MAX))
        set_num(L, "topic_alias_maximum", pr->topic_alias_max);
    if (CODEC_HAS(pr, CODEC_PROP_REQUEST_RESPONSE_INFO))
        set_num(L, "request_response_information", pr->request_response_info);
    if (CODEC_HAS(pr, CODEC_PROP_REQUEST_PROBLEM_INFO))
        set_num(L, "request_problem_information", pr->request_problem_info);
    if (CODEC_HAS(pr, CODEC_PROP_AUTH_METHOD))
        set_str(L, "authentication_method", pr->auth_method.p, pr->auth_method.len);
}

void values_push_conn(lua_State *L, const struct hooks_connect *c)
{
    lua_createtable(L, 0, 14);
    set_cstr(L, "client_id", c->client.client_id);
    set_cstr(L, "username", c->client.username);
    set_str(L, "password", c->password, c->password_len);
    set_cstr(L, "protocol", protocol_name(c->client.protocol));
    set_cstr(L, "address", c->client.address);
    set_num(L, "port", c->client.port);
    set_num(L, "listener", c->client.listener);
    set_bool(L, "clean_start", c->clean_start);
    set_num(L, "keepalive", c->keepalive);
    if (c->tls) {
        lua_createtable(L, 0, 3);
        set_cstr(L, "subject", c->tls->subject);
        set_cstr(L, "issuer", c->tls->issuer);
        set_bool(L, "verified", c->tls->verified);
        lua_setfield(L, -2, "tls");
    }
    push_conn_props(L, c->props);
    lua_setfield(L, -2, "properties");
    values_push_attrs(L, c->client.attrs);
    lua_setfield(L, -2, "attrs");
}

void values_push_sub(lua_State *L, const struct hooks_sub *s)
{
    lua_createtable(L, 0, 6);
    set_str(L, "filter", s->filter, s->filter_len);
    set_num(L, "qos", CODEC_SUBOPT_QOS(s->options));
    set_bool(L, "no_local", (s->options & CODEC_SUBOPT_NO_LOCAL) != 0);
    set_bool(L, "retain_as_published", (s->options & CODEC_SUBOPT_RAP) != 0);
    set_num(L, "retain_handling", CODEC_SUBOPT_RH(s->options));
    if (s->share)
        set_str(L, "share", s->share, s->share_len);
}

/* --- attrs --- */
struct attr {
    char *key;
    int type; /* LUA_TSTRING, LUA_TNUMBER, LUA_TBOOLEAN */
    char *s;
    size_t slen;
    double num;
};

struct attrs {
    struct attr *v;
    size_t n;
};

/* Bounds on what a client's attrs keep (C memory outside any VM's cap, searched linearly): keys
 * past ATTRS_MAX, and keys or strings longer than ATTR_VALUE_MAX, are not kept. */
#define ATTRS_MAX 64
#define ATTR_VALUE_MAX 4096

void values_push_attrs(lua_State *L, const struct attrs *a)
{
    lua_newtable(L);
    for (size_t i = 0; a && i < a->n; i++) {
        const struct attr *x = &a->v[i];
        if (x->type == LUA_TSTRING)
            lua_pushlstring(L, x->s, x->slen);
        else if (x->type == LUA_TNUMBER)
            lua_pushnumber(L, x->num);
        else
            lua_pushboolean(L, x->num != 0);
        lua_setfield(L, -2, x->key);
    }
}

bool values_attrs_empty(const struct attrs *a)
{
    return !a || !a->n;
}

void values_read_attrs(lua_State *L, int idx, struct attrs **ap)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return;
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int vt = lua_type(L, -1);
        if (lua_type(L, -2) == LUA_TSTRING && lua_objlen(L, -2) <= ATTR_VALUE_MAX &&
            (vt == LUA_TNUMBER || vt == LUA_TBOOLEAN ||
             (vt == LUA_TSTRING && lua_objlen(L, -1) <= ATTR_VALUE_MAX))) {
            if (!*ap)
                *ap = xcalloc(1, sizeof(**ap));
            struct attrs *a = *ap;
            const char *k = lua_tostring(L, -2);
            struct attr *x = NULL;
            for (size_t i = 0; i < a->n && !x; i++)
                if (strcmp(a->v[i].key, k) == 0)
                    x = &a->v[i];
            if (!x && a->n >= ATTRS_MAX) {
                lua_pop(L, 1);
                continue;
            }
            if (!x) {
                a->v = xrealloc(a->v, (a->n + 1) * sizeof(*a->v));
                x = &a->v[a->n++];
                x->key = xstrdup(k);
            } else {
                free(x->s);
            }
            x->s = NULL;
            x->type = vt;
            if (vt == LUA_TSTRING) {
                const char *s = lua_tolstring(L, -1, &x->slen);
                x->s = xmemdup(s, x->slen);
            } else {
                x->num = vt == LUA_TNUMBER ? lua_tonumber(L, -1) : lua_toboolean(L, -1);
            }
        }
        lua_pop(L, 1);
    }
}

void values_free_attrs(struct attrs *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->v[i].key);
        free(a->v[i].s);
    }
    free(a->v);
    free(a);
}

/* --- Lua -> C: messages --- */
struct props_in {
    bool given;
    int payload_format; /* -1 absent */
    const char *content_type, *response_topic, *correlation;
    size_t ct_len, rt_len, cd_len;
    bool has_expiry;
    double expiry;
    struct codec_user_prop *user;
    size_t nuser;
};

static const char *opt_string(lua_State *L, int idx, const char *what, const char *field,
                              size_t *len, bool utf8)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "%s: field '%s' must be a string", what, field);
    const char *s = lua_tolstring(L, idx, len);
    if (utf8 && !codec_utf8_valid((const uint8_t *)s, *len))
        luaL_error(L, "%s: field '%s' must be valid UTF-8", what, field);
    if (*len > 65535)
        luaL_error(L, "%s: field '%s' is longer than 65535 bytes", what, field);
    return s;
}

/* Raises unless every key of the table at idx is one of names. */
static void check_keys(lua_State *L, int idx, const char *what, const char *prefix,
                       const char *const *names)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        bool ok = false;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (const char *const *n = names; *n && !ok; n++)
                ok = strcmp(lua_tostring(L, -2), *n) == 0;
        if (!ok) {
            if (lua_type(L, -2) == LUA_TSTRING)
                luaL_error(L, "%s: field '%s%s' is not allowed here", what, prefix,
                           lua_tostring(L, -2));
            luaL_error(L, "%s: a %s key is not allowed here", what, luaL_typename(L, -2));
        }
        lua_pop(L, 1);
    }
}

/* Pushes t[k] of the table at idx and returns its type (the value stays on the stack). */
static int field(lua_State *L, int idx, const char *k)
{
    lua_getfield(L, idx, k);
    return lua_type(L, -1);
}

static const char *const prop_names[] = {"content_type", "response_topic", "correlation_data",
                                         "payload_format", "message_expiry", "user", NULL};

/* Reads the properties table at idx (absolute) into *pi. Borrowed strings stay valid while the
 * table is (the caller keeps it on the stack and runs no Lua code). Raises naming the field. */
static void read_props(lua_State *L, int idx, const char *what, struct props_in *pi)
{
    check_keys(L, idx, what, "properties.", prop_names);
    pi->given = true;
    luaL_checkstack(L, 12, what);
    if (field(L, idx, "content_type") != LUA_TNIL)
        pi->content_type = opt_string(L, -1, what, "properties.content_type", &pi->ct_len, true);
    if (field(L, idx, "response_topic") != LUA_TNIL) {
        pi->response_topic = opt_string(L, -1, what, "properties.response_topic", &pi->rt_len,
                                        true);
        if (topic_validate_name(pi->response_topic, pi->rt_len) != 0)
            luaL_error(L, "%s: field 'properties.response_topic' is not a topic name", what);
    }
    if (field(L, idx, "correlation_data") != LUA_TNIL)
        pi->correlation = opt_string(L, -1, what, "properties.correlation_data", &pi->cd_len,
                                     false);
    int t = field(L, idx, "payload_format");
    if (t == LUA_TBOOLEAN)
        pi->payload_format = lua_toboolean(L, -1);
    else if (t == LUA_TNUMBER && (lua_tonumber(L, -1) == 0 || lua_tonumber(L, -1) == 1))
        pi->payload_format = (int)lua_tonumber(L, -1);
    else if (t != LUA_TNIL)
        luaL_error(L, "%s: field 'properties.payload_format' must be 0 or 1", what);
    t = field(L, idx, "message_expiry");
    if (t != LUA_TNIL) {
        double e = lua_tonumber(L, -1);
        if (t != LUA_TNUMBER || !(e >= 0 && e <= 4294967295.0) || e != (double)(uint32_t)e)
            luaL_error(L, "%s: field 'properties.message_expiry' must be an integer >= 0", what);
        pi->has_expiry = true;
        pi->expiry = e;
    }
    t = field(L, idx, "user");
    if (t == LUA_TNIL)
        return;
    if (t != LUA_TTABLE)
        luaL_error(L, "%s: field 'properties.user' must be a list of {name, value}", what);
    int list = lua_gettop(L);
    size_t n = lua_objlen(L, list);
    if (n > USER_PROPS_MAX)
        luaL_error(L, "%s: field 'properties.user' has more than %d entries", what,
                   USER_PROPS_MAX);
    /* Lua owns the array (left on the stack): nothing leaks if a later check raises */
    pi->user = lua_newuserdata(L, (n ? n : 1) * sizeof(*pi->user));
    pi->nuser = n;
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, list, (int)i + 1);
        if (lua_type(L, -1) != LUA_TTABLE)
            luaL_error(L, "%s: field 'properties.user[%d]' must be {name, value}", what,
                       (int)i + 1);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        size_t nl, vl;
        const char *nm = opt_string(L, -2, what, "properties.user[i][1]", &nl, true);
        const char *vv = opt_string(L, -1, what, "properties.user[i][2]", &vl, true);
        pi->user[i].name.p = (const uint8_t *)nm;
        pi->user[i].name.len = nl;
        pi->user[i].value.p = (const uint8_t *)vv;
        pi->user[i].value.len = vl;
        lua_pop(L, 3); /* the strings stay alive in the list */
    }
}

/* The fields a returned message may have; on_deliver allows the first MSG_DELIVER_FIELDS. */
enum { MF_TOPIC, MF_PAYLOAD, MF_QOS, MF_RETAIN, MF_PROPERTIES, MF_COUNT };
#define MSG_DELIVER_FIELDS 3
static const struct {
    const char *name;
    size_t len;
} msg_fields[MF_COUNT] = {
    {"topic", 5}, {"payload", 7}, {"qos", 3}, {"retain", 6}, {"properties", 10},
};

/* One traversal of the table at idx: pushes MF_COUNT slots (nil for an absent field) and moves
 * each field's value into its slot; raises on a key that is not allowed (as check_keys). Returns
 * the index of the first slot. Cheaper than a lua_getfield per field, each of which interns its
 * key again. */
static int read_msg_fields(lua_State *L, int idx, const char *what, int allowed)
{
    luaL_checkstack(L, MF_COUNT + 20, what);
    int slot = lua_gettop(L) + 1;
    for (int i = 0; i < MF_COUNT; i++)
        lua_pushnil(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int which = -1;
        if (lua_type(L, -2) == LUA_TSTRING) {
            size_t kl;
            const char *k = lua_tolstring(L, -2, &kl);
            for (int i = 0; i < allowed && which < 0; i++)
                if (kl == msg_fields[i].len && memcmp(k, msg_fields[i].name, kl) == 0)
                    which = i;
            if (which < 0)
                luaL_error(L, "%s: field '%s' is not allowed here", what, k);
        } else {
            luaL_error(L, "%s: a %s key is not allowed here", what, luaL_typename(L, -2));
        }
        lua_replace(L, slot + which); /* pops the value; the key stays for lua_next */
    }
    return slot;
}

struct msg *values_to_msg(lua_State *L, int idx, const struct msg *base, const char *what,
                          bool deliver, const char *filter, size_t filter_len, uint64_t now_ms)
{
    struct props_in pi = {.payload_format = -1};
    const char *topic = base->topic, *payload = (const char *)base->payload;
    size_t tlen = base->topic_len, plen = base->payload_len;
    int qos = base->qos;
    bool retain = base->retain;

    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "%s: a message must be a table, got %s", what, luaL_typename(L, idx));
    int f = read_msg_fields(L, idx, what, deliver ? MSG_DELIVER_FIELDS : MF_COUNT);
    int t = lua_type(L, f + MF_TOPIC);
    if (t != LUA_TNIL) {
        topic = opt_string(L, f + MF_TOPIC, what, "topic", &tlen, true);
        if (topic_validate_name(topic, tlen) != 0)
            luaL_error(L, "%s: field 'topic' is not a valid topic name", what);
        if (deliver && (tlen != base->topic_len || memcmp(topic, base->topic, tlen) != 0) &&
            (!filter || !topic_matches(filter, filter_len, topic, tlen)))
            luaL_error(L, "%s: field 'topic' no longer matches the subscription's filter", what);
    }
    t = lua_type(L, f + MF_PAYLOAD);
    if (t == LUA_TSTRING || t == LUA_TNUMBER)
        payload = lua_tolstring(L, f + MF_PAYLOAD, &plen);
    else if (t != LUA_TNIL)
        luaL_error(L, "%s: field 'payload' must be a string", what);
    t = lua_type(L, f + MF_QOS);
    if (t != LUA_TNIL) {
        double q = lua_tonumber(L, f + MF_QOS);
        if (t != LUA_TNUMBER || !(q == 0 || q == 1 || q == 2))
            luaL_error(L, "%s: field 'qos' must be 0, 1 or 2", what);
        if (deliver && q > base->qos)
            luaL_error(L, "%s: field 'qos' may only be lowered in on_deliver", what);
        qos = (int)q;
    }
    if (!deliver) {
        t = lua_type(L, f + MF_RETAIN);
        if (t == LUA_TBOOLEAN)
            retain = lua_toboolean(L, f + MF_RETAIN);
        else if (t != LUA_TNIL)
            luaL_error(L, "%s: field 'retain' must be a boolean", what);
        t = lua_type(L, f + MF_PROPERTIES);
        if (t == LUA_TTABLE)
            read_props(L, f + MF_PROPERTIES, what, &pi);
        else if (t != LUA_TNIL)
            luaL_error(L, "%s: field 'properties' must be a table", what);
    }

    /* From here on nothing raises: C owns the buffer and then the message. */
    struct msg_init in = {
        .topic = topic, .topic_len = tlen, .payload = payload, .payload_len = plen,
        .props = base->props, .props_len = base->props_len, .origin = base->origin,
        .qos = (uint8_t)qos, .retain = retain, .has_expiry = base->has_expiry,
        .now_ms = now_ms, .account = base->account,
    };
    if (base->has_expiry)
        in.expiry_interval = msg_remaining_expiry(base, now_ms);
    struct buf b;
    buf_init(&b);
    if (pi.given) {
        struct codec_props cp;
        memset(&cp, 0, sizeof(cp));
        if (pi.payload_format >= 0) {
            cp.present |= CODEC_BIT(CODEC_PROP_PAYLOAD_FORMAT);
            cp.payload_format = (uint8_t)pi.payload_format;
        }
        if (pi.content_type) {
            cp.present |= CODEC_BIT(CODEC_PROP_CONTENT_TYPE);
            cp.content_type = (struct codec_bytes){(const uint8_t *)pi.content_type, pi.ct_len};
        }
        if (pi.response_topic) {
            cp.present |= CODEC_BIT(CODEC_PROP_RESPONSE_TOPIC);
            cp.response_topic = (struct codec_bytes){(const uint8_t *)pi.response_topic, pi.rt_len};
        }
        if (pi.correlation) {
            cp.present |= CODEC_BIT(CODEC_PROP_CORRELATION_DATA);
            cp.correlation_data = (struct codec_bytes){(const uint8_t *)pi.correlation, pi.cd_len};
        }
        if (pi.nuser) {
            cp.present |= CODEC_BIT(CODEC_PROP_USER);
            cp.user = pi.user;
            cp.user_count = (uint32_t)pi.nuser;
        }
        codec_encode_forward_props(&b, &cp);
        in.props = b.data;
        in.props_len = b.len;
        in.has_expiry = pi.has_expiry;
        in.expiry_interval = pi.has_expiry ? (uint32_t)pi.expiry : 0;
    }
    struct msg *m = msg_new(&in);
    buf_fini(&b);
    return m;
}
