/* Unit tests for the rule engine's per-message fast paths (rperf): the argument builder makes the
 * same msg and client tables as before (every field, plain tables, fresh per call); a hook that
 * declares fewer parameters still works and one with `...` sees both; the count hook, left armed
 * between calls, still stops a loop after many fast calls and the VM serves again afterwards; the
 * memory cap still holds with the block cache; JSON numbers round-trip through the fast
 * formatter and parser; the topic memo follows a rewritten topic. Exits non-zero on failure. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hooks.h"
#include "host.h"
#include "msg.h"
#include "rules_test_support.h"

static void on_log(void *ctx, int level, const char *rule, const char *text)
{
    (void)ctx, (void)level, (void)rule, (void)text;
}

static const struct host host = {.monotonic_ms = mono, .now = now, .log = on_log};

static struct engine *load_rule(const char *text)
{
    return load_single_rule(text, &host);
}

static const struct hooks_client client = {.client_id = "c1", .username = "u1", .protocol = 4,
                                           .address = "10.0.0.7", .listener = 1883};

/* Publishes through e; returns the first output payload (static), "dropped" or "refused:N". */
static const char *publish(struct engine *e, const char *topic, const char *payload)
{
    struct msg_init mi = {.topic = topic, .topic_len = strlen(topic), .payload = payload,
                          .payload_len = strlen(payload), .origin = "c1", .qos = 1};
    return publish_outcome(e, &mi, &client);
}

static void expect(struct engine *e, const char *what, const char *payload, const char *want)
{
    const char *got = publish(e, "a/b", payload);
    char detail[4300];
    snprintf(detail, sizeof(detail), "got '%s', want '%s'", got, want);
    check(strcmp(got, want) == 0, what, detail);
}

/* Every field of msg and client, their types, plainness (no metatable) and freshness. */
static const char fields_rule[] =
    "local seen\n"
    "return { on_publish = function(msg, client)\n"
    "  local keys = {}\n"
    "  for k in pairs(msg) do keys[#keys + 1] = k end\n"
    "  table.sort(keys)\n"
    "  local ck = {}\n"
    "  for k in pairs(client) do ck[#ck + 1] = k end\n"
    "  table.sort(ck)\n"
    "  local ok = msg.topic == 'a/b' and msg.qos == 1 and msg.retain == false\n"
    "    and msg.from.client_id == 'c1' and msg.from.username == 'u1'\n"
    "    and type(msg.properties) == 'table' and #msg.properties.user == 0\n"
    "    and getmetatable(msg) == nil and getmetatable(client) == nil\n"
    "    and rawget(msg, 'payload') == msg.payload\n"
    "    and client.client_id == 'c1' and client.username == 'u1' and client.protocol == '3.1.1'\n"
    "    and client.address == '10.0.0.7' and client.listener == 1883\n"
    "    and type(client.attrs) == 'table' and next(client.attrs) == nil\n"
    "    and table.concat(keys, ',') == 'from,payload,properties,qos,retain,topic'\n"
    "    and table.concat(ck, ',') == 'address,attrs,client_id,listener,protocol,username'\n"
    "  if seen and (seen == msg or seen.properties == msg.properties) then ok = false end\n"
    "  msg.topic = 'changed'; msg.properties.user[1] = {'x', 'y'}; client.attrs.k = 1\n"
    "  seen = msg\n"
    "  return { payload = ok and ('ok:' .. msg.payload) or 'bad' }\n"
    "end }\n";

static void test_fields(void)
{
    struct engine *e = load_rule(fields_rule);
    if (!e)
        return;
    expect(e, "fields: first call", "p1", "ok:p1");
    expect(e, "fields: second call gets fresh tables", "p2", "ok:p2");
    engine_free(e);
}

static void test_params(void)
{
    struct engine *e = load_rule("return { on_publish = function() return { payload = 'none' } "
                                 "end }\n");
    if (e) {
        expect(e, "no parameters", "x", "none");
        engine_free(e);
    }
    e = load_rule("return { on_publish = function(msg) return { payload = msg.payload .. '!' } "
                  "end }\n");
    if (e) {
        expect(e, "msg only", "x", "x!");
        expect(e, "msg only, again", "y", "y!");
        engine_free(e);
    }
    e = load_rule("return { on_publish = function(...) local m, c = ...\n"
                  "  return { payload = m.payload .. ':' .. c.client_id .. ':' .. select('#', ...) }"
                  " end }\n");
    if (e) {
        expect(e, "vararg sees msg and client", "x", "x:c1:2");
        engine_free(e);
    }
    e = load_rule("return { on_publish = print }\n"); /* a C function: arguments built */
    if (e) {
        expect(e, "a C function as the hook", "x", "x");
        engine_free(e);
    }
}

static void test_budget_after_fast_calls(void)
{
    struct engine *e = load_rule("return { on_publish = function(msg, client)\n"
                                 "  if msg.payload == 'loop' then while true do end end\n"
                                 "  if msg.payload == 'pcall' then\n"
                                 "    pcall(function() while true do end end) return {payload='x'}"
                                 "  end\n"
                                 "end, timeout_ms = 20 }\n");
    if (!e)
        return;
    for (int i = 0; i < 5000; i++)
        publish(e, "a/b", "fast");
    expect(e, "a loop after 5000 fast calls is stopped", "loop", "refused:128");
    expect(e, "a pcall cannot swallow the abort", "pcall", "refused:128");
    expect(e, "the VM serves again after an abort", "fine", "fine");
    struct engine_rule_stats st;
    check(engine_rule_stats(e, 0, &st) == 0 && st.timeouts == 2, "timeouts counted", NULL);
    engine_free(e);
}

static void test_memory_cap(void)
{
    struct engine *e = load_rule("local keep = {}\n"
                                 "return { memory_limit = '2M', on_publish = function(msg)\n"
                                 "  if msg.payload == 'bomb' then\n"
                                 "    local s = string.rep('x', 4e6)\n"
                                 "  end\n"
                                 "  if msg.payload == 'small' then for i = 1, 200 do keep[i] = {} end"
                                 "  end\n"
                                 "end }\n");
    if (!e)
        return;
    for (int i = 0; i < 2000; i++)
        publish(e, "a/b", "small");
    expect(e, "a table bomb hits the memory cap", "bomb", "refused:128");
    expect(e, "the VM serves again after running out of memory", "ok", "ok");
    struct engine_rule_stats st;
    memset(&st, 0, sizeof(st));
    int rc = engine_rule_stats(e, 0, &st);
    char detail[400];
    snprintf(detail, sizeof(detail), "rc %d errors %llu timeouts %llu last '%s'", rc,
             (unsigned long long)st.errors, (unsigned long long)st.timeouts,
             st.last_error ? st.last_error : "");
    check(rc == 0 && st.errors == 1, "the bomb is counted", detail);
    engine_free(e);
}

static void test_json_numbers(void)
{
    struct engine *e = load_rule(
        "local j = tide.json\n"
        "local function rt(v) local s = j.encode(v) local w = j.decode(s)\n"
        "  if w ~= v and not (v ~= v) then error(string.format('%.17g -> %s -> %.17g', v, s, w)) end\n"
        "  return s end\n"
        /* 4,000 round trips in one call: far beyond the default 5 ms under ASan on a busy box */
        "return { timeout_ms = 2000, on_publish = function(msg)\n"
        "  local out = {}\n"
        "  for _, v in ipairs({0, -0.5, 21.5, 70.7, 0.1, 1/3, 2^53, 1e-7, 123.456,\n"
        "                      1e22, 1e300, 5e-324, 3.14159, 100, -7}) do out[#out + 1] = rt(v) end\n"
        "  local x = 0.5\n"
        "  for i = 1, 2000 do x = (x * 1103515245 + 12345) % 2147483648 rt(x / 1024) rt(x / 3) end\n"
        "  local d = j.decode('[1e2, -0, 0.000001234, 12345678901234567890, 1.5E-3, 9007199254740995]')\n"
        "  if d[1] ~= 100 or 1/d[2] ~= -math.huge or d[3] ~= 0.000001234 or\n"
        "     d[4] ~= '12345678901234567890' or d[5] ~= 0.0015 or d[6] ~= '9007199254740995' then\n"
        "    error('decode') end\n"
        "  return { payload = table.concat(out, ' ') }\n"
        "end }\n");
    if (!e)
        return;
    const char *got = publish(e, "a/b", "x");
    struct engine_rule_stats st;
    if (strncmp(got, "refused", 7) == 0 && engine_rule_stats(e, 0, &st) == 0)
        fprintf(stderr, "json rule error: %s\n", st.last_error);
    expect(e, "json numbers round-trip and read as before", "x",
           "0 -0.5 21.5 70.7 0.1 0.33333333333333331 9007199254740992 0.0000001 123.456 1e+22 "
           "1e+300 4.9406564584125e-324 3.14159 100 -7");
    engine_free(e);
}

/* on_deliver: a rule that rewrites the topic makes the next rule see the new one (the memo of
 * the last topic matched must not answer for the old). */
static void test_deliver_memo(void)
{
    clear_dir();
    write_rule("10-a.lua", "return { match = 'a/#', on_deliver = function(msg, client)\n"
                           "  return { topic = 'a/c' } end }\n");
    write_rule("20-b.lua", "return { match = 'a/c', on_deliver = function(msg, client)\n"
                           "  return { payload = 'seen by b' } end }\n");
    write_rule("30-c.lua", "return { match = 'a/b', on_deliver = function(msg, client)\n"
                           "  return { payload = 'wrong' } end }\n");
    struct engine_limits lim;
    engine_limits_default(&lim);
    struct engine *e = engine_new(&lim, &host);
    if (engine_load(e, dir, true, on_err, NULL) != 0) {
        check(0, "deliver memo load", errbuf);
        engine_free(e);
        return;
    }
    struct msg_init mi = {.topic = "a/b", .topic_len = 3, .payload = "p", .payload_len = 1};
    for (int round = 0; round < 2; round++) {
        struct msg *m = msg_new(&mi);
        check(engine_wants_deliver(e, "a/b", 3) && !engine_wants_publish(e, "a/b", 3),
              "wants_deliver / wants_publish", NULL);
        struct msg *out = engine_on_deliver_filter(e, m, &client, "a/+", 3);
        check(out && out->topic_len == 3 && memcmp(out->topic, "a/c", 3) == 0 &&
                  out->payload_len == 9 && memcmp(out->payload, "seen by b", 9) == 0,
              "on_deliver sees the rewritten topic", NULL);
        if (out)
            msg_release(&out);
        msg_release(&m);
    }
    check(!engine_wants(e, "b/b", 3) && !engine_wants_deliver(e, "b/b", 3), "no match", NULL);
    engine_free(e);
}

int main(void)
{
    if (make_rules_dir("/tmp/tidemq-hotpath-XXXXXX", 0700) != 0)
        return 1;
    test_fields();
    test_params();
    test_budget_after_fast_calls();
    test_memory_cap();
    test_json_numbers();
    test_deliver_memo();
    return finish("test_hotpath");
}
