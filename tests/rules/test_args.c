/* Unit tests for args.c and builder.c: which parts of msg and client a hook's bytecode reads
 * (each shape of use, and every way a parameter can escape, which must fall back to the whole
 * table), and that a rule sees exactly the same values whichever way its arguments were built —
 * fields read directly, through an escape, through a closure, for a broker message without a
 * client, on_publish and on_deliver. Exits non-zero on failure. */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "hooks.h"
#include "host.h"
#include "msg.h"
#include "rules_test_support.h"

static const char *const msg_names[] = {"topic", "payload",    "qos", "retain",
                                        "from",  "properties", NULL};
static const char *const client_names[] = {"client_id", "username", "protocol", "address",
                                           "listener",  "attrs",    NULL};

/* "-" unused, "*" the whole table, else the field names read, comma-separated in list order. */
static void describe(const struct arg_use *u, int p, char *out, size_t cap)
{
    const char *const *names = p ? client_names : msg_names;
    if (u->how[p] == ARG_UNUSED) {
        snprintf(out, cap, "-");
        return;
    }
    if (u->how[p] == ARG_ALL) {
        snprintf(out, cap, "*");
        return;
    }
    size_t n = 0;
    out[0] = '\0';
    for (int k = 0; names[k]; k++)
        if (u->fields[p] & (UINT32_C(1) << k))
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "," : "", names[k]);
}

struct job {
    struct engine *e;
    const char *src;
    struct arg_use u;
    bool loaded;
};

static int analyse_in(lua_State *L)
{
    struct job *j = lua_touserdata(L, 1);
    if (luaL_loadstring(L, j->src) != 0)
        return 0;
    lua_call(L, 0, 1);
    j->loaded = true;
    static const char *const *const names[ARGS_PARAMS] = {msg_names, client_names};
    args_analyze(j->e, L, names, &j->u);
    return 0;
}

/* Analyses the function `src` returns; checks msg's and client's answers. */
static void expect_use(struct engine *e, const char *src, const char *want_msg,
                       const char *want_client)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    struct job j = {.e = e, .src = src};
    int rc = lua_cpcall(L, analyse_in, &j);
    char m[128], c[128], detail[512];
    describe(&j.u, 0, m, sizeof(m));
    describe(&j.u, 1, c, sizeof(c));
    snprintf(detail, sizeof(detail), "%s: got msg=%s client=%s, want msg=%s client=%s", src, m, c,
             want_msg, want_client);
    check(rc == 0 && j.loaded && strcmp(m, want_msg) == 0 && strcmp(c, want_client) == 0,
          "analysis", detail);
    lua_close(L);
}

static void test_analysis(void)
{
    struct engine_limits lim;
    engine_limits_default(&lim);
    struct host h = {.monotonic_ms = mono, .now = now};
    struct engine *e = engine_new(&lim, &h);
    /* reading nothing, or only constant-named fields */
    expect_use(e, "return function(msg, client) return nil end", "-", "-");
    expect_use(e, "return function() end", "-", "-");
    expect_use(e, "return function(msg) return msg.topic == 'x' end", "topic", "-");
    expect_use(e,
               "return function(msg, client) if client.username == 'a' then return false end "
               "end",
               "-", "username");
    expect_use(e,
               "return function(msg, client) return {payload = msg.payload .. client.client_id}"
               " end",
               "payload", "client_id");
    expect_use(e, "return function(msg) return msg.from.client_id, msg.properties.user end",
               "from,properties", "-");
    expect_use(e,
               "return function(msg, client) return client.attrs.role, client.protocol, "
               "client.address, client.listener end",
               "-", "protocol,address,listener,attrs");
    expect_use(e, "return function(msg) local t = {msg.topic, msg.qos, msg.retain} return t end",
               "topic,qos,retain", "-");
    expect_use(e, "return function(msg) while msg.qos > 5 do end end", "qos", "-");
    expect_use(e, "return function(msg) return msg.nosuchfield end", "", "-");
    expect_use(e, "return function(a, b, c) return c end", "-", "-");
    expect_use(e,
               "return function(msg) local x = msg.topic; local y = x .. msg.topic; return y "
               "end",
               "topic", "-");
    /* every escape needs the whole table */
    expect_use(e, "return function(msg) return msg end", "*", "-");
    expect_use(e, "return function(msg, client) return msg.topic, client end", "topic", "*");
    expect_use(e, "return function(msg) local m = msg; return m.topic end", "*", "-");
    expect_use(e, "return function(msg) print(msg) end", "*", "-");
    expect_use(e, "return function(msg) for k in pairs(msg) do end end", "*", "-");
    expect_use(e, "return function(msg) return msg[1] end", "*", "-");
    expect_use(e, "return function(msg, k) return msg[k] end", "*", "*");
    expect_use(e, "return function(msg) msg.topic = 'x' end", "*", "-");
    expect_use(e, "return function(msg) msg = msg.payload; return msg end", "*", "-");
    expect_use(e, "return function(msg, client) client = msg.from end", "from", "*");
    expect_use(e, "return function(msg, client) client = nil; return msg.topic end", "topic", "*");
    expect_use(e, "return function(msg) return function() return msg.topic end end", "*", "-");
    expect_use(e, "return function(msg) local f = function() end; return msg.topic end", "*", "-");
    expect_use(e, "return function(msg) if msg then return 1 end end", "*", "-");
    expect_use(e, "return function(msg) return msg == nil end", "*", "-");
    expect_use(e, "return function(msg) return #msg end", "*", "-");
    expect_use(e, "return function(msg) return msg:upper() end", "*", "-");
    expect_use(e, "return function(msg) return msg.topic or msg end", "*", "-");
    expect_use(e, "return function(msg) local t = {}; t.m = msg end", "*", "-");
    expect_use(e, "return function(msg) _G.keep = msg end", "*", "-");
    expect_use(e, "local up; return function(msg) up = msg end", "*", "-");
    expect_use(e, "return function(msg, client) return select('#', msg, client) end", "*", "*");
    expect_use(e, "return function(...) return ... end", "*", "*");
    expect_use(e, "return function(msg, ...) return msg.topic end", "*", "*");
    expect_use(e, "return print", "*", "*");
    expect_use(e, "return function(msg) return tostring(msg.payload):upper() end", "payload", "-");
    engine_free(e);
}

static void on_log(void *ctx, int level, const char *rule, const char *text)
{
    (void)ctx, (void)level, (void)rule, (void)text;
}

static const struct host host = {.monotonic_ms = mono, .now = now, .log = on_log};

static const struct hooks_client client = {
    .client_id = "c1", .username = "u1", .protocol = 5, .address = "10.0.0.7", .listener = 1883};

static struct engine *load_rule(const char *text)
{
    return load_single_rule(text, &host);
}

/* Publishes a message on a/b with payload p as `from` (NULL: the broker's own) through a rule
 * with this on_publish; checks the first output's payload. */
static void expect_publish(const char *hook, const struct hooks_client *from, const char *want)
{
    char text[2048];
    snprintf(text, sizeof(text), "return { on_publish = %s }\n", hook);
    struct engine *e = load_rule(text);
    if (!e)
        return;
    struct msg_init mi = {.topic = "a/b",
                          .topic_len = 3,
                          .payload = "p",
                          .payload_len = 1,
                          .origin = "c1",
                          .qos = 1,
                          .retain = true};
    for (int round = 0; round < 2; round++) { /* the first call shapes the builder */
        const char *got = publish_outcome(e, &mi, from);
        char detail[2600];
        snprintf(detail, sizeof(detail), "%.1000s (call %d): got '%.1000s', want '%s'", hook,
                 round + 1, got, want);
        check(strcmp(got, want) == 0, "values", detail);
    }
    engine_free(e);
}

static void test_values(void)
{
    /* fields read by name see exactly what the whole tables hold */
    expect_publish("function(msg, client) return {payload = msg.topic .. '|' .. msg.payload .. '|'"
                   " .. msg.qos .. '|' .. tostring(msg.retain) .. '|' .. msg.from.client_id .. '|'"
                   " .. msg.from.username .. '|' .. #msg.properties.user} end",
                   &client, "a/b|p|1|true|c1|u1|0");
    expect_publish("function(msg, client) return {payload = client.client_id .. '|' .. "
                   "client.username .. '|' .. client.protocol .. '|' .. client.address .. '|' .. "
                   "client.listener .. '|' .. type(client.attrs) .. '|' .. "
                   "tostring(next(client.attrs))} end",
                   &client, "c1|u1|5|10.0.0.7|1883|table|nil");
    expect_publish("function(msg, client) return {payload = tostring(msg.nosuch) .. "
                   "tostring(client.nosuch)} end",
                   &client, "nilnil");
    /* the same through escapes: the whole tables */
    expect_publish("function(msg, client) local keys = {}\n"
                   "  for k in pairs(msg) do keys[#keys + 1] = k end\n"
                   "  for k in pairs(client) do keys[#keys + 1] = k end\n"
                   "  table.sort(keys) return {payload = table.concat(keys, ',')} end",
                   &client,
                   "address,attrs,client_id,from,listener,payload,properties,protocol,qos,"
                   "retain,topic,username");
    expect_publish("function(msg, client) local f = function() return msg.topic .. client.address "
                   "end return {payload = f()} end",
                   &client, "a/b10.0.0.7");
    /* a broker message: no client, msg.from nil, client nil whatever is read of it */
    expect_publish("function(msg, client) return {payload = tostring(msg.from) .. '|' .. "
                   "tostring(client)} end",
                   NULL, "nil|nil");
    expect_publish("function(msg, client) local ok = pcall(function() return client.username end)"
                   " return {payload = tostring(ok) .. '|' .. tostring(msg.from)} end",
                   NULL, "false|nil");
    expect_publish("function(msg) return {payload = tostring(msg.from)} end", NULL, "nil");
    expect_publish("function(msg, client) return {payload = msg.payload .. tostring(client and "
                   "client.client_id)} end",
                   NULL, "pnil");
    /* a hook reading nothing still runs, and its answer counts */
    expect_publish("function(msg, client) return false end", &client, "dropped");
}

/* The engine calls hooks the way the analysis says, shaped when the rule loads: a hook reading
 * nothing is called bare (no builder), one reading fields by name gets a builder for those. */
static void test_shapes(void)
{
    struct engine *e = load_rule("return { on_publish = function(msg, client) return nil end,\n"
                                 "  on_deliver = function(msg, client) return client.username end }\n");
    if (!e)
        return;
    const struct rule *r = e->cur->rules[0];
    const struct hook_shape *pub = &r->shape[0], *del = &r->shape[1];
    check(pub->builder_ref == LUA_NOREF && pub->use.how[0] == ARG_UNUSED &&
              pub->use.how[1] == ARG_UNUSED,
          "a hook reading nothing is called bare", NULL);
    check(del->builder_ref != LUA_NOREF && del->use.how[0] == ARG_UNUSED &&
              del->use.how[1] == ARG_FIELDS && del->use.fields[1] == 1u << 1 /* username */,
          "a hook reading client.username gets a builder for it alone", NULL);
    engine_free(e);
}

/* on_deliver: the subscriber's client table, msg by name. */
static void test_deliver(void)
{
    struct engine *e =
        load_rule("return { on_deliver = function(msg, client)\n"
                  "  if client.client_id == 'blocked' then return false end\n"
                  "  return {payload = msg.payload .. '>' .. client.username} end }\n");
    if (!e)
        return;
    struct msg_init mi = {.topic = "a/b", .topic_len = 3, .payload = "p", .payload_len = 1};
    const struct hooks_client blocked = {.client_id = "blocked", .protocol = 4};
    for (int round = 0; round < 2; round++) {
        struct msg *m = msg_new(&mi);
        struct msg *out = engine_on_deliver_filter(e, m, &client, "a/+", 3);
        check(out && out->payload_len == 4 && memcmp(out->payload, "p>u1", 4) == 0,
              "on_deliver reads msg.payload and client.username", NULL);
        if (out)
            msg_release(&out);
        out = engine_on_deliver_filter(e, m, &blocked, "a/+", 3);
        check(out == NULL, "on_deliver withholds by client.client_id", NULL);
        if (out)
            msg_release(&out);
        msg_release(&m);
    }
    engine_free(e);
}

int main(void)
{
    if (make_rules_dir("/tmp/tidemq-args-XXXXXX", 0700) != 0)
        return 1;
    test_analysis();
    test_values();
    test_shapes();
    test_deliver();
    return finish("test_args");
}
