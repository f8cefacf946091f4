/* `tidemq rules check DIR` and `tidemq rules test DIR [--input FILE]`: the rule engine offline.
 * Implements host.h without a broker (routes, logs and sink sends are recorded into the output
 * line; timers are accepted and never fire) and reads/writes JSON lines through a plain helper Lua
 * state using tide.json. Exit status: 0 bundle loaded, 1 it did not, 2 usage. */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "cmd.h"
#include "codec.h"
#include "hooks.h"
#include "log.h"
#include "msg.h"
#include "util/alloc.h"
#include "util/crypto.h"
#include "util/err.h"

struct offline {
    lua_State *H;   /* helper state: JSON in and out */
    int rec;        /* registry ref of the current line's record table, LUA_NOREF outside */
    bool in_line;
};

static struct offline off = {.rec = LUA_NOREF};

/* Appends the value on top of H to list `key` of the current record (pops it). */
static void rec_append(const char *key)
{
    lua_State *H = off.H;
    lua_rawgeti(H, LUA_REGISTRYINDEX, off.rec); /* v rec */
    lua_getfield(H, -1, key);                   /* v rec list */
    if (lua_isnil(H, -1)) {
        lua_pop(H, 1);
        lua_newtable(H);
        lua_pushvalue(H, -1);
        lua_setfield(H, -3, key);
    }
    lua_pushvalue(H, -3);
    lua_rawseti(H, -2, (int)lua_objlen(H, -2) + 1);
    lua_pop(H, 3);
}

static void set_payload(lua_State *H, const uint8_t *p, size_t n)
{
    if (codec_utf8_valid(p, n) || n == 0) {
        lua_pushlstring(H, (const char *)p, n);
        lua_setfield(H, -2, "payload");
        return;
    }
    char *b64 = xmalloc(CRYPTO_BASE64_LEN(n) + 1);
    crypto_base64_encode(p, n, b64, CRYPTO_BASE64_LEN(n) + 1);
    lua_pushstring(H, b64);
    free(b64);
    lua_setfield(H, -2, "payload_b64");
}

struct push_msg_args {
    const struct msg *m;
};

static int push_msg_fn(lua_State *H)
{
    const struct msg *m = lua_touserdata(H, 1);
    values_push_msg(H, m, NULL); /* ud msg */
    lua_pushnil(H);
    lua_setfield(H, -2, "payload");
    set_payload(H, m->payload, m->payload_len);
    lua_getfield(H, -1, "properties"); /* ud msg props */
    lua_getfield(H, -1, "user");
    if (lua_objlen(H, -1) == 0) {
        lua_pushnil(H);
        lua_setfield(H, -3, "user");
    }
    lua_pop(H, 1);
    lua_pushnil(H);
    if (!lua_next(H, -2)) {
        lua_pushnil(H);
        lua_setfield(H, -3, "properties");
    } else {
        lua_pop(H, 2);
    }
    lua_pop(H, 1);
    lua_setfield(H, LUA_REGISTRYINDEX, "tidemq.tmp");
    return 0;
}

/* Pushes m as {topic, payload|payload_b64, qos, retain[, properties]} onto H. */
static void push_out_msg(const struct msg *m)
{
    lua_State *H = off.H;
    if (lua_cpcall(H, push_msg_fn, (void *)m) != 0)
        panic("rules test: %s", lua_tostring(H, -1));
    lua_getfield(H, LUA_REGISTRYINDEX, "tidemq.tmp");
}

static void host_route(void *ctx, struct msg *m, const char *rule)
{
    (void)ctx;
    if (!off.in_line)
        return;
    push_out_msg(m);
    lua_pushstring(off.H, rule);
    lua_setfield(off.H, -2, "rule");
    rec_append("published");
}

static const char *level_name(int level)
{
    return level == LOG_ERROR ? "error" : level == LOG_WARN ? "warn"
           : level == LOG_DEBUG ? "debug" : "info";
}

static void host_log(void *ctx, int level, const char *rule, const char *text)
{
    (void)ctx;
    if (!off.in_line) {
        fprintf(stderr, "%s [rule] rule=%s %s\n", level_name(level), rule, text);
        return;
    }
    lua_State *H = off.H;
    lua_createtable(H, 0, 3);
    lua_pushstring(H, rule);
    lua_setfield(H, -2, "rule");
    lua_pushstring(H, level_name(level));
    lua_setfield(H, -2, "level");
    lua_pushstring(H, text);
    lua_setfield(H, -2, "text");
    rec_append("logs");
}

static void *host_timer_add(void *ctx, uint64_t ms, bool repeat, host_timer_fn fn, void *arg)
{
    (void)ctx, (void)ms, (void)repeat, (void)fn, (void)arg;
    return xmalloc(1); /* offline: accepted, never fires */
}

static void host_timer_cancel(void *ctx, void *handle)
{
    (void)ctx;
    free(handle);
}

static uint64_t host_monotonic_ms(void *ctx)
{
    (void)ctx;
    return vm_wall_ns() / 1000000u;
}

static int host_sink_send(void *ctx, const char *name, const void *data, size_t len,
                          const char *opts)
{
    (void)ctx, (void)opts;
    if (off.in_line) {
        lua_State *H = off.H;
        lua_createtable(H, 0, 3);
        lua_pushstring(H, name);
        lua_setfield(H, -2, "sink");
        set_payload(H, data, len);
        lua_pushliteral(H, "no_such_sink");
        lua_setfield(H, -2, "result");
        rec_append("sinks");
    }
    return TIDE_ENOTFOUND;
}

static const struct host offline_host = {
    .route = host_route,
    .log = host_log,
    .timer_add = host_timer_add,
    .timer_cancel = host_timer_cancel,
    .now = engine_wall_clock,
    .monotonic_ms = host_monotonic_ms,
    .sink_send = host_sink_send,
};

static void print_error(void *arg, const char *text)
{
    (void)arg;
    fprintf(stderr, "%s\n", text);
}

static int usage(void)
{
    fprintf(stderr, "usage: tidemq rules check DIR\n"
                    "       tidemq rules test DIR [--input FILE]\n");
    return 2;
}

/* --- one input line --- */
struct line_in {
    char *err;
    struct msg *m;
    struct hooks_client client;
    struct attrs *attrs;
};

static const char *opt_str(lua_State *H, int t, const char *k, const char *def)
{
    lua_getfield(H, t, k);
    const char *s = lua_type(H, -1) == LUA_TSTRING ? lua_tostring(H, -1) : def;
    lua_pop(H, 1); /* the string stays alive in the table */
    return s;
}

/* stack: ud(line_in) -- parses registry "tidemq.in" into li (raises on a bad field) */
static int parse_line_fn(lua_State *H)
{
    struct line_in *li = lua_touserdata(H, 1);
    lua_getfield(H, LUA_REGISTRYINDEX, "tidemq.in"); /* 2: input */
    if (!lua_istable(H, 2))
        return luaL_error(H, "input: a line must be a JSON object");
    size_t tl, pl = 0;
    lua_getfield(H, 2, "topic"); /* 3 */
    if (lua_type(H, 3) != LUA_TSTRING)
        return luaL_error(H, "input: field 'topic' must be a string");
    const char *topic = lua_tolstring(H, 3, &tl);
    lua_getfield(H, 2, "payload"); /* 4 */
    lua_getfield(H, 2, "payload_b64"); /* 5 */
    const char *payload = "";
    if (lua_type(H, 5) == LUA_TSTRING) {
        size_t bl;
        const char *b = lua_tolstring(H, 5, &bl);
        unsigned char *out = lua_newuserdata(H, bl + 1);
        if (crypto_base64_decode(b, bl, out, bl + 1, &pl) != 0)
            return luaL_error(H, "input: field 'payload_b64' is not base64");
        payload = (const char *)out;
    } else if (lua_type(H, 4) == LUA_TSTRING) {
        payload = lua_tolstring(H, 4, &pl);
    } else if (!lua_isnil(H, 4)) {
        return luaL_error(H, "input: field 'payload' must be a string");
    }
    /* qos, retain and properties are checked like a rule's partial message */
    lua_newtable(H); /* opts */
    static const char *const keys[] = {"qos", "retain", "properties"};
    for (int i = 0; i < 3; i++) {
        lua_getfield(H, 2, keys[i]);
        lua_setfield(H, -2, keys[i]);
    }
    struct msg base = {.refs = 1, .topic = topic, .topic_len = tl,
                       .payload = (const uint8_t *)payload, .payload_len = pl, .origin = ""};
    int opts = lua_gettop(H);
    lua_getfield(H, 2, "client"); /* client */
    int ct = lua_gettop(H);
    if (!lua_isnil(H, ct) && !lua_istable(H, ct))
        return luaL_error(H, "input: field 'client' must be an object");
    if (lua_isnil(H, ct)) {
        lua_newtable(H);
        lua_replace(H, ct);
    }
    li->client.client_id = opt_str(H, ct, "client_id", "test");
    li->client.username = opt_str(H, ct, "username", NULL);
    const char *proto = opt_str(H, ct, "protocol", "5");
    li->client.protocol = strcmp(proto, "3.1") == 0 ? 3 : strcmp(proto, "3.1.1") == 0 ? 4 : 5;
    li->client.address = opt_str(H, ct, "address", "127.0.0.1");
    lua_getfield(H, ct, "listener");
    li->client.listener = (uint16_t)lua_tointeger(H, -1);
    lua_getfield(H, ct, "attrs");
    values_read_attrs(H, -1, &li->attrs);
    li->client.attrs = li->attrs;
    base.origin = li->client.client_id;
    li->m = values_to_msg(H, opts, &base, "input", false, NULL, 0, vm_wall_ns() / 1000000u);
    lua_pushvalue(H, 2);
    lua_setfield(H, LUA_REGISTRYINDEX, "tidemq.keep"); /* client strings stay alive */
    return 0;
}

static void push_errors(struct engine *e, uint64_t *before)
{
    lua_State *H = off.H;
    for (size_t i = 0; i < engine_rule_count(e); i++) {
        struct engine_rule_stats st;
        engine_rule_stats(e, i, &st);
        uint64_t n = st.errors + st.timeouts;
        if (n == before[i])
            continue;
        lua_createtable(H, 0, 2);
        lua_pushstring(H, st.name);
        lua_setfield(H, -2, "rule");
        lua_pushstring(H, st.last_error);
        lua_setfield(H, -2, "error");
        rec_append("errors");
    }
}

static void run_line(struct engine *e, const char *line, size_t len, long lineno)
{
    lua_State *H = off.H;
    lua_newtable(H);
    off.rec = luaL_ref(H, LUA_REGISTRYINDEX);
    lua_rawgeti(H, LUA_REGISTRYINDEX, off.rec);
    lua_pushnumber(H, (double)lineno);
    lua_setfield(H, -2, "line");
    lua_pop(H, 1);

    struct line_in li = {0};
    if (api_json_decode_string(H, line, len) != 1) {
        const char *err = lua_tostring(H, -1);
        lua_rawgeti(H, LUA_REGISTRYINDEX, off.rec);
        lua_pushfstring(H, "invalid_input: %s", err);
        lua_setfield(H, -2, "error");
        lua_pop(H, 3);
        goto out;
    }
    lua_setfield(H, LUA_REGISTRYINDEX, "tidemq.in");
    if (lua_cpcall(H, parse_line_fn, &li) != 0) {
        const char *err = lua_tostring(H, -1);
        lua_rawgeti(H, LUA_REGISTRYINDEX, off.rec);
        lua_pushfstring(H, "invalid_input: %s", err);
        lua_setfield(H, -2, "error");
        lua_pop(H, 2);
        goto out;
    }
    size_t n = engine_rule_count(e);
    uint64_t *before = xcalloc(n ? n : 1, sizeof(*before));
    for (size_t i = 0; i < n; i++) {
        struct engine_rule_stats st;
        engine_rule_stats(e, i, &st);
        before[i] = st.errors + st.timeouts;
    }
    off.in_line = true;
    struct hooks_publish_answer a;
    engine_on_publish(e, li.m, &li.client, 0, &a);
    off.in_line = false;
    push_errors(e, before);
    free(before);
    lua_rawgeti(H, LUA_REGISTRYINDEX, off.rec); /* rec */
    const char *result = a.a.verdict == HOOKS_REFUSE ? "refused"
                         : a.out_count == 0          ? "dropped"
                                                     : "routed";
    lua_pushstring(H, result);
    lua_setfield(H, -2, "result");
    if (a.a.verdict == HOOKS_REFUSE) {
        lua_pushstring(H, values_reason_name(a.a.reason));
        lua_setfield(H, -2, "reason");
        lua_pushnumber(H, a.a.reason);
        lua_setfield(H, -2, "code");
        if (a.a.reason_string[0]) {
            lua_pushstring(H, a.a.reason_string);
            lua_setfield(H, -2, "reason_string");
        }
    }
    lua_newtable(H);
    for (size_t i = 0; i < a.out_count; i++) {
        push_out_msg(a.out[i]);
        lua_rawseti(H, -2, (int)i + 1);
        msg_release(&a.out[i]);
    }
    if (a.out_count)
        lua_setfield(H, -2, "messages");
    else
        lua_pop(H, 1);
    hooks_publish_answer_fini(&a);
    lua_pop(H, 1);
out:
    lua_rawgeti(H, LUA_REGISTRYINDEX, off.rec);
    if (api_json_encode_value(H, -1) == 1)
        printf("%s\n", lua_tostring(H, -1));
    else
        printf("{\"line\":%ld,\"error\":\"cannot encode the result\"}\n", lineno);
    fflush(stdout);
    lua_settop(H, 0);
    luaL_unref(H, LUA_REGISTRYINDEX, off.rec);
    off.rec = LUA_NOREF;
    msg_release(&li.m);
    values_free_attrs(li.attrs);
}

static int helper_open(lua_State *H)
{
    lua_newtable(H);
    api_json_open(H);
    return 0;
}

static int rules_test(struct engine *e, FILE *in)
{
    off.H = luaL_newstate();
    if (!off.H || lua_cpcall(off.H, helper_open, NULL) != 0) {
        fprintf(stderr, "tidemq rules test: cannot create a Lua state\n");
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    while ((n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            line[--n] = '\0';
        if (n == 0)
            continue;
        run_line(e, line, (size_t)n, lineno);
    }
    free(line);
    lua_close(off.H);
    off.H = NULL;
    return 0;
}

int cmd_rules(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *sub = argv[1], *dir = argv[2], *input = NULL;
    bool test = strcmp(sub, "test") == 0;
    if (!test && strcmp(sub, "check") != 0)
        return usage();
    for (int i = 3; i < argc; i++) {
        if (test && strcmp(argv[i], "--input") == 0 && i + 1 < argc)
            input = argv[++i];
        else
            return usage();
    }
    FILE *in = stdin;
    if (input && !(in = fopen(input, "r"))) {
        fprintf(stderr, "tidemq rules test: cannot open %s\n", input);
        return 2;
    }
    struct engine_limits lim;
    engine_limits_default(&lim);
    struct engine *e = engine_new(&lim, &offline_host);
    int rc = engine_load(e, dir, test, print_error, NULL);
    if (rc != 0) {
        engine_free(e);
        if (in != stdin)
            fclose(in);
        return 1;
    }
    if (!test)
        printf("%s: %zu rules ok\n", dir, engine_rule_count(e));
    else
        rc = rules_test(e, in);
    engine_free(e);
    if (in != stdin)
        fclose(in);
    return rc;
}
