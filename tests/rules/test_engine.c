/* Unit tests for the rule engine through its public API (engine.h, hooks.h): the tide.* modules
 * (json, msgpack, re, topic, store, crypto, log limits) from inside a rule VM, and the connect,
 * subscribe, deliver and disconnect chains with their return-value rules. Exits non-zero on any
 * failure. */
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

static int log_lines;

static void on_log(void *ctx, int level, const char *rule, const char *text)
{
    (void)ctx, (void)level, (void)rule, (void)text;
    log_lines++;
}

static const struct host host = {.monotonic_ms = mono, .now = now, .log = on_log};

/* Publishes topic/payload through e; returns the one output payload (static) or a verdict. */
static const char *publish(struct engine *e, const char *topic, const char *payload)
{
    struct msg_init mi = {.topic = topic, .topic_len = strlen(topic), .payload = payload,
                          .payload_len = strlen(payload), .origin = "c1"};
    struct hooks_client cl = {.client_id = "c1", .username = "u", .protocol = 5,
                              .address = "127.0.0.1", .listener = 1883};
    return publish_outcome(e, &mi, &cl);
}

static struct engine *load(void)
{
    struct engine_limits lim;
    engine_limits_default(&lim);
    return load_engine(&lim, &host);
}

/* Each line is one assertion run inside a rule VM: the rule returns "ok" or the failing line. */
static const char modules_rule[] =
    "local T = {\n"
    "  function() local j = tide.json return j.encode({1, 2, 3}) == '[1,2,3]' end,\n"
    "  function() return tide.json.encode({}) == '{}' end,\n"
    "  function() return tide.json.encode(tide.json.empty_array) == '[]' end,\n"
    "  function() return tide.json.encode(tide.json.decode('[]')) == '[]' end,\n"
    "  function() return tide.json.encode({a = 1.5}) == '{\"a\":1.5}' end,\n"
    "  function() return tide.json.encode(3) == '3' and tide.json.encode(-0.25) == '-0.25' end,\n"
    "  function() return tide.json.decode('null') == tide.json.null end,\n"
    "  function() return tide.json.decode('12345678901234567890') == '12345678901234567890' end,\n"
    "  function() return tide.json.decode('9007199254740992') == 9007199254740992 end,\n"
    "  function() return tide.json.decode('\"\\\\u00e9\\\\ud83d\\\\ude00\"') == '\\195\\169\\240\\159\\152\\128' end,\n"
    "  function() local v, e = tide.json.decode('{\"a\":') return v == nil and e:find('json') end,\n"
    "  function() local v, e = tide.json.decode(('['):rep(200)) return v == nil and e:find('deep') end,\n"
    "  function() local t = {} t.t = t local v, e = tide.json.encode(t) return v == nil and e ~= nil end,\n"
    "  function() local v, e = tide.json.encode(0/0) return v == nil end,\n"
    "  function() return tide.json.encode('a\"\\n\\1') == '\"a\\\\\"\\\\n\\\\u0001\"' end,\n"
    "  function() local v = tide.json.decode('{\"a\":[1,{\"b\":null}],\"c\":true}') return v.a[2].b == tide.json.null and v.c == true end,\n"
    "  function() local m = tide.msgpack return m.decode(m.encode({1, 'a', true})) [2] == 'a' end,\n"
    "  function() return tide.msgpack.encode({}) == '\\128' end,\n"
    "  function() return tide.msgpack.encode(1) == '\\1' and tide.msgpack.encode(-1) == '\\255' end,\n"
    "  function() return tide.msgpack.encode('\\255') == '\\196\\1\\255' end,\n"
    "  function() return tide.msgpack.encode('ab') == '\\162ab' end,\n"
    "  function() local v = tide.msgpack.decode(tide.msgpack.encode({x = 2^40, y = 1.5})) return v.x == 2^40 and v.y == 1.5 end,\n"
    "  function() local v, e = tide.msgpack.decode('\\221\\31\\255\\255\\255\\1') return v == nil and e:find('exceeds') end,\n"
    "  function() local v, e = tide.msgpack.decode('\\219\\255\\255\\255\\255') return v == nil end,\n"
    "  function() local v, e = tide.msgpack.decode('\\1\\2') return v == nil and e:find('trailing') end,\n"
    "  function() local m = tide.re.match('k=v', '(?<key>\\\\w+)=(\\\\w+)') return m[0] == 'k=v' and m.key == 'k' and m[2] == 'v' end,\n"
    "  function() return tide.re.test('ABC', 'abc', 'i') and not tide.re.test('ABC', 'abc') end,\n"
    "  function() return tide.re.match('x', 'y') == nil end,\n"
    "  function() local s, n = tide.re.gsub('a1b22', '\\\\d+', '<$0>') return s == 'a<1>b<22>' and n == 2 end,\n"
    "  function() local s = tide.re.gsub('k=v', '(?<k>\\\\w)=(\\\\w)', '${2}=${k}') return s == 'v=k' end,\n"
    "  function() local s = tide.re.gsub('abc', '[ac]', function(m) return m[0]:upper() end) return s == 'AbC' end,\n"
    "  function() return not pcall(tide.re.match, 'x', '(') end,\n"
    "  function() local v, e = tide.re.match(('a'):rep(40) .. 'b', '^(a|aa)+$') return v == nil and e == 'match_limit' end,\n"
    "  function() return tide.topic.matches('a/+/c', 'a/b/c') and not tide.topic.matches('#', '$SYS/x') end,\n"
    "  function() local t = tide.topic.split('a//b') return #t == 3 and t[2] == '' end,\n"
    "  function() return tide.store.set('k', 'v') and tide.store.get('k') == 'v' end,\n"
    "  function() return tide.store.incr('n') == 1 and tide.store.incr('n', 5) == 6 end,\n"
    "  function() local v, e = tide.store.incr('k') return v == nil and e == 'not_a_number' end,\n"
    "  function() tide.store.set('k', nil) return tide.store.get('k') == nil end,\n"
    "  function() return tide.crypto.hex(tide.crypto.sha256('abc')):sub(1, 8) == 'ba7816bf' end,\n"
    "  function() return tide.crypto.hex(tide.crypto.hmac('sha256', 'key', 'The quick brown fox jumps over the lazy dog')):sub(1, 8) == 'f7bc83f4' end,\n"
    "  function() return tide.crypto.b64encode('hi!?') == 'aGkhPw==' and tide.crypto.b64decode('aGkhPw') == 'hi!?' end,\n"
    "  function() return tide.crypto.b64decode('@@') == nil end,\n"
    "  function() return tide.crypto.equal('a', 'a') and not tide.crypto.equal('a', 'ab') end,\n"
    "  function() return type(tide.now()) == 'number' and tide.monotonic() > 0 end,\n"
    "  function() local s, e = tide.sink('nope'):send({a = 1}) return s == nil and e == 'no_such_sink' end,\n"
    "  function() return collectgarbage('count') > 0 and not pcall(collectgarbage, 'collect') end,\n"
    "  function() return _G.tide == tide and _VERSION ~= nil and print ~= nil end,\n"
    "  function() return string.dump == nil and ('').dump == nil and load == nil end,\n"
    "  function() for i = 1, 150 do tide.log.info('line %d', i) end return true end,\n"
    "}\n"
    "return { match = 'test/#', timeout_ms = 2000, on_publish = function(msg)\n"
    "  for i, f in ipairs(T) do local ok, r = pcall(f) if not ok or not r then\n"
    "    return { payload = 'case ' .. i .. ': ' .. tostring(r) } end end\n"
    "  return { payload = 'ok' } end }\n";

static void test_modules(void)
{
    clear_dir();
    write_rule("10-modules.lua", modules_rule);
    struct engine *e = load();
    if (!e)
        return;
    log_lines = 0;
    const char *r = publish(e, "test/x", "p");
    check(strcmp(r, "ok") == 0, "tide.* modules", r);
    check(log_lines == 100, "tide.log limited to 100 lines a second", NULL);
    check(strcmp(publish(e, "other", "same"), "same") == 0, "no match: untouched", NULL);
    struct hooks hk;
    engine_hooks(e, &hk);
    check(!hk.wants(hk.ctx, "other", 5) && hk.wants(hk.ctx, "test/1", 6), "wants", NULL);
    engine_free(e);
}

static const char auth_rule[] =
    "return {\n"
    "  on_connect = function(conn)\n"
    "    conn.attrs.tenant = 'acme'\n"
    "    if conn.username == 'bad' then return false, 'bad_username_or_password', 'nope' end\n"
    "    if conn.username == 'weird' then return false, 'no_such_reason' end\n"
    "    if conn.username == 'boom' then error('password was ' .. conn.password) end\n"
    "    if conn.username == 'ok' then return true end\n"
    "  end,\n"
    "  on_subscribe = function(sub, client)\n"
    "    if client.attrs.tenant ~= 'acme' then return false end\n"
    "    if sub.filter == 'deny/#' then return false end\n"
    "    if sub.filter == 'cap/#' then return 1 end\n"
    "    if sub.filter == 'rw/#' then return { filter = 'acme/rw/#', qos = 0 } end\n"
    "    if sub.filter == 'ok/#' then return true end\n"
    "  end,\n"
    "  on_deliver = function(msg, client)\n"
    "    if msg.topic == 'd/hide' then return false end\n"
    "    if msg.topic == 'd/low' then return { qos = 0, payload = 'low' } end\n"
    "    if msg.topic == 'd/raise' then return { qos = 2 } end\n"
    "  end,\n"
    "}\n";

static void test_chains(void)
{
    clear_dir();
    write_rule("10-auth.lua", auth_rule);
    struct engine *e = load();
    if (!e)
        return;
    struct hooks_connect c = {.client = {.client_id = "c", .protocol = 5, .address = "::1"},
                              .password = (const uint8_t *)"s3cret", .password_len = 6};
    struct hooks_answer a;
    void *attrs = NULL;
    c.client.username = "bad";
    engine_on_connect(e, &c, &a, &attrs);
    check(a.verdict == HOOKS_REFUSE && a.reason == 0x86 && strcmp(a.reason_string, "nope") == 0,
          "connect refused with reason", NULL);
    engine_client_free(e, attrs);
    c.client.username = "weird";
    engine_on_connect(e, &c, &a, &attrs);
    check(a.verdict == HOOKS_REFUSE && a.reason == 0x80, "unknown reason -> 0x80", NULL);
    engine_client_free(e, attrs);
    c.client.username = "boom";
    engine_on_connect(e, &c, &a, &attrs);
    struct engine_rule_stats st;
    engine_rule_stats(e, 0, &st);
    check(a.verdict == HOOKS_REFUSE && !strstr(st.last_error, "s3cret") &&
              strstr(st.last_error, "***"),
          "error: refused, password scrubbed", st.last_error);
    engine_client_free(e, attrs);
    c.client.username = "nobody";
    engine_on_connect(e, &c, &a, &attrs);
    check(a.verdict == HOOKS_PASS, "connect nil -> pass", NULL);
    engine_client_free(e, attrs);
    c.client.username = "ok";
    engine_on_connect(e, &c, &a, &attrs);
    check(a.verdict == HOOKS_ACCEPT && attrs != NULL, "connect accepted with attrs", NULL);

    struct hooks_client cl = {.client_id = "c", .protocol = 5, .attrs = attrs};
    struct hooks_sub_answer sa;
    struct hooks_sub s = {.filter = "deny/#", .filter_len = 6, .options = 1};
    engine_on_subscribe(e, &cl, &s, &sa);
    check(sa.a.verdict == HOOKS_REFUSE && sa.a.reason == 0x87, "subscribe refused", NULL);
    s.filter = "cap/#";
    s.filter_len = strlen(s.filter);
    engine_on_subscribe(e, &cl, &s, &sa);
    check(sa.a.verdict == HOOKS_PASS && sa.max_qos == 1, "subscribe qos cap", NULL);
    s.filter = "rw/#";
    s.filter_len = strlen(s.filter);
    engine_on_subscribe(e, &cl, &s, &sa);
    check(sa.filter && strcmp(sa.filter, "acme/rw/#") == 0 && sa.max_qos == 0,
          "subscribe rewrite", NULL);
    free(sa.filter);
    free(sa.share);
    s.filter = "ok/#";
    s.filter_len = strlen(s.filter);
    engine_on_subscribe(e, &cl, &s, &sa);
    check(sa.a.verdict == HOOKS_ACCEPT, "subscribe accepted", NULL);

    struct msg_init mi = {.topic = "d/hide", .topic_len = 6, .payload = "x", .payload_len = 1,
                          .qos = 1};
    struct msg *m = msg_new(&mi);
    check(engine_on_deliver(e, m, &cl) == NULL, "deliver withheld", NULL);
    msg_release(&m);
    mi.topic = "d/low";
    mi.topic_len = strlen(mi.topic);
    m = msg_new(&mi);
    struct msg *d = engine_on_deliver(e, m, &cl);
    engine_rule_stats(e, 0, &st);
    check(d && d != m && d->qos == 0 && d->payload_len == 3, "deliver lowered copy",
          st.last_error);
    msg_release(&d);
    msg_release(&m);
    mi.topic = "d/raise";
    mi.topic_len = strlen(mi.topic);
    m = msg_new(&mi);
    d = engine_on_deliver(e, m, &cl);
    check(d == NULL, "deliver raising qos is a rule error (drop)", NULL);
    msg_release(&m);
    mi.topic = "d/same";
    mi.topic_len = strlen(mi.topic);
    m = msg_new(&mi);
    d = engine_on_deliver(e, m, &cl);
    check(d == m && m->refs == 2, "deliver unchanged: same message, new reference", NULL);
    msg_release(&d);
    msg_release(&m);
    engine_on_disconnect(e, &cl, "normal");
    engine_client_free(e, attrs);
    engine_rule_stats(e, 0, &st);
    check(st.calls >= 12 && st.errors == 2 && st.refusals >= 4, "counters", NULL);
    engine_free(e);
}

static void test_load_errors(void)
{
    clear_dir();
    write_rule("10-a.lua", "return { match = 'a', on_publish = function() end }");
    write_rule("20-b.lua", "return { timeout_ms = 'fast' }");
    struct engine_limits lim;
    engine_limits_default(&lim);
    struct engine *e = engine_new(&lim, &host);
    errbuf[0] = '\0';
    check(engine_load(e, dir, false, on_err, NULL) != 0 && strstr(errbuf, "20-b.lua") &&
              strstr(errbuf, "timeout_ms"),
          "bad field named", errbuf);
    check(engine_rule_count(e) == 0, "failed bundle not installed", NULL);
    clear_dir();
    write_rule("10-a.lua", "return { init = function() error('no') end }");
    check(engine_load(e, dir, true, on_err, NULL) != 0 && strstr(errbuf, "init"),
          "failing init stops the bundle", errbuf);
    clear_dir();
    write_rule("10-a.lua", "return { memory_limit = '1M', match = {'x/#', 'y'}, "
                           "on_error = 'pass', on_publish = function() error('x') end }");
    check(engine_load(e, dir, true, on_err, NULL) == 0, "options accepted", errbuf);
    check(strcmp(publish(e, "y", "kept"), "kept") == 0, "on_error pass keeps the message",
          NULL);
    clear_dir();
    write_rule("10-a.lua", "tide.every(1, function() end) return {}");
    check(engine_load(e, dir, true, on_err, NULL) != 0 && strstr(errbuf, "top-level chunk"),
          "timers are not created from the top-level chunk", errbuf);
    clear_dir();
    write_rule("10-a.lua", "return { init = function() assert(tide.every(0.5, function() end)) "
                           "assert(not pcall(tide.after, 0.001, print)) end }");
    check(engine_load(e, dir, true, on_err, NULL) != 0, "no timer host: init fails", errbuf);
    engine_free(e);
}

int main(void)
{
    if (make_rules_dir("/tmp/tidemq-test-engine-XXXXXX", 0755) != 0)
        return 1;
    test_modules();
    test_chains();
    test_load_errors();
    return finish("test_engine");
}
