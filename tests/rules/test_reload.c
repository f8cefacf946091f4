/* Unit tests for engine_load as a reload (RULES-API "Reload" and the "Loading" fine points): an
 * unchanged file keeps its VM (state, timers, counters), a no-change reload does nothing, a changed
 * rule's init(state) gets the old on_unload() result, a failing compile or init leaves the running
 * bundle exactly as it was, a deleted file's on_unload runs, tide.store survives, and the bundle
 * hash follows the contents. Uses a fake timer host. Exits non-zero on any failure. */
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

/* A fake timer host: live timers are kept in a table and fired by the test. */
#define MAX_TIMERS 300
struct fake_timer {
    bool live;
    host_timer_fn fn;
    void *arg;
};
static struct fake_timer timers[MAX_TIMERS];

static void *timer_add(void *ctx, uint64_t ms, bool repeat, host_timer_fn fn, void *arg)
{
    (void)ctx, (void)ms, (void)repeat;
    for (int i = 0; i < MAX_TIMERS; i++) {
        if (!timers[i].live) {
            timers[i] = (struct fake_timer){true, fn, arg};
            return &timers[i];
        }
    }
    return NULL;
}

static void timer_cancel(void *ctx, void *handle)
{
    (void)ctx;
    ((struct fake_timer *)handle)->live = false;
}

static int live_timers(void)
{
    int n = 0;
    for (int i = 0; i < MAX_TIMERS; i++)
        n += timers[i].live;
    return n;
}

static void fire_timers(void)
{
    for (int i = 0; i < MAX_TIMERS; i++)
        if (timers[i].live)
            timers[i].fn(timers[i].arg);
}

static const struct host host = {.monotonic_ms = mono, .now = now, .log = collect_log,
                                 .timer_add = timer_add, .timer_cancel = timer_cancel};

static void remove_rule(const char *name)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
}

static int reload(struct engine *e)
{
    errbuf[0] = '\0';
    return engine_load(e, dir, true, on_err, NULL);
}

/* Publishes on topic; returns the first output payload (static) or a verdict. */
static const char *publish(struct engine *e, const char *topic)
{
    struct msg_init mi = {.topic = topic, .topic_len = strlen(topic), .payload = "p",
                          .payload_len = 1, .origin = "c1"};
    struct hooks_client cl = {.client_id = "c1", .protocol = 5, .address = "127.0.0.1"};
    return publish_outcome(e, &mi, &cl);
}

/* A counter rule: each publish on its topic answers "<tag>:<n>"; on_unload hands n over; a
 * timer counts ticks into tide.store. */
static void counter_rule(const char *file, const char *topic, const char *tag)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "local n = 0\n"
             "return {\n"
             "  match = '%s',\n"
             "  init = function(state)\n"
             "    if state then n = state.n end\n"
             "    tide.store.incr('inits_%s')\n"
             "    tide.every(1, function() tide.store.incr('ticks_%s') end)\n"
             "  end,\n"
             "  on_unload = function() tide.store.incr('unloads_%s') return {n = n} end,\n"
             "  on_publish = function(msg) n = n + 1 return {payload = '%s:' .. n} end,\n"
             "}\n",
             topic, tag, tag, tag, tag);
    write_rule(file, text);
}

/* The store value of key, read through a probe rule's on_publish ("nil" when unset). */
static const char *store_get(struct engine *e, const char *key)
{
    char topic[96];
    snprintf(topic, sizeof(topic), "probe/%s", key);
    return publish(e, topic);
}

static const char probe_rule[] =
    "return { match = 'probe/+', on_publish = function(msg)\n"
    "  return {payload = tostring(tide.store.get(msg.topic:sub(7)))} end }\n";

static void test_reload(void)
{
    struct engine_limits lim;
    engine_limits_default(&lim);
    struct engine *e = engine_new(&lim, &host);

    check(strcmp(engine_bundle_hash(e), "") == 0, "no bundle: empty hash", NULL);
    write_rule("00-probe.lua", probe_rule);
    counter_rule("10-a.lua", "a", "a");
    check(reload(e) == 0, "first load", errbuf);
    char h1[80];
    snprintf(h1, sizeof(h1), "%s", engine_bundle_hash(e));
    check(strlen(h1) == 64, "hash is 64 hex digits", h1);
    check(strcmp(publish(e, "a"), "a:1") == 0, "first load: init(nil)", NULL);
    check(strcmp(publish(e, "a"), "a:2") == 0, "counter runs", NULL);
    check(live_timers() == 1, "one timer", NULL);
    fire_timers();
    check(strcmp(store_get(e, "ticks_a"), "1") == 0, "timer ticks", NULL);

    /* no change at all: nothing happens */
    check(reload(e) == 0, "no-change reload", errbuf);
    check(strcmp(engine_bundle_hash(e), h1) == 0, "no change: same hash", NULL);
    check(strcmp(publish(e, "a"), "a:3") == 0, "no change: state intact", NULL);
    check(strcmp(store_get(e, "inits_a"), "1") == 0, "no change: no init", NULL);
    check(strcmp(store_get(e, "unloads_a"), "nil") == 0, "no change: no on_unload", NULL);

    /* another file added: a is untouched, its counters continue */
    struct engine_rule_stats st;
    engine_rule_stats(e, 1, &st);
    uint64_t calls = st.calls;
    counter_rule("20-b.lua", "b", "b");
    check(reload(e) == 0, "add b", errbuf);
    check(strcmp(engine_bundle_hash(e), h1) != 0, "new file: new hash", NULL);
    check(engine_rule_count(e) == 3, "three rules", NULL);
    check(strcmp(publish(e, "a"), "a:4") == 0, "unchanged file keeps its VM", NULL);
    check(strcmp(publish(e, "b"), "b:1") == 0, "new file: init(nil)", NULL);
    check(strcmp(store_get(e, "inits_a"), "1") == 0 &&
              strcmp(store_get(e, "unloads_a"), "nil") == 0,
          "unchanged file: no on_unload/init", NULL);
    engine_rule_stats(e, 1, &st);
    check(strcmp(st.name, "10-a") == 0 && st.calls == calls + 1, "kept rule's counters continue",
          NULL);
    check(live_timers() == 2, "kept timer plus the new one", NULL);

    /* a changed: the new version gets the old state */
    counter_rule("10-a.lua", "a", "a2");
    check(reload(e) == 0, "change a", errbuf);
    check(strcmp(store_get(e, "unloads_a"), "1") == 0, "old on_unload ran", NULL);
    check(strcmp(publish(e, "a"), "a2:5") == 0, "init(state) carries on_unload's table", NULL);
    check(live_timers() == 2, "old version's timer stopped with its VM", NULL);
    engine_rule_stats(e, 1, &st);
    check(st.calls == 1, "a replaced rule starts new counters", NULL);

    /* a broken edit: the running bundle stays exactly as it was */
    char h2[80];
    snprintf(h2, sizeof(h2), "%s", engine_bundle_hash(e));
    write_rule("10-a.lua", "local x = \nreturn {}\n");
    write_rule("30-c.lua", "return { on_publish = function() end }\n");
    check(reload(e) != 0 && strstr(errbuf, "10-a.lua:2:"), "syntax error names file:line", errbuf);
    check(strcmp(engine_bundle_hash(e), h2) == 0 && engine_rule_count(e) == 3,
          "failed reload: old bundle stays", NULL);
    check(strcmp(publish(e, "a"), "a2:6") == 0, "failed reload: old VM keeps serving", NULL);
    check(live_timers() == 2, "failed reload: timers unchanged", NULL);

    /* a failing init: the new VMs (and their timers) are discarded */
    write_rule("10-a.lua", "return { match = 'a', init = function(s)\n"
                           "  tide.every(1, function() end)\n"
                           "  error('init says no: ' .. tostring(s and s.n)) end,\n"
                           "  on_publish = function() return {payload = 'bad'} end }\n");
    remove_rule("30-c.lua");
    check(reload(e) != 0 && strstr(errbuf, "init says no: 6"),
          "failing init is reported (and got the snapshot)", errbuf);
    check(strcmp(publish(e, "a"), "a2:7") == 0, "failing init: old VM keeps serving", NULL);
    check(live_timers() == 2, "failing init: its timer is gone", NULL);
    check(strcmp(engine_bundle_hash(e), h2) == 0, "failing init: hash unchanged", NULL);

    /* the good save replaces it; deleting b runs b's on_unload */
    counter_rule("10-a.lua", "a", "a3");
    remove_rule("20-b.lua");
    check(reload(e) == 0, "good save after a failure", errbuf);
    check(engine_rule_count(e) == 2, "b unloaded", NULL);
    check(strcmp(store_get(e, "unloads_b"), "1") == 0, "deleted file: on_unload ran", NULL);
    check(strcmp(publish(e, "b"), "p") == 0, "deleted rule no longer runs", NULL);
    check(strcmp(publish(e, "a"), "a3:8") == 0, "state carried past a failed reload", NULL);
    check(live_timers() == 1, "deleted rule's timer stopped", NULL);

    /* on_unload that cannot hand over (a function inside) or raises: init gets nil, logged */
    logbuf[0] = '\0';
    write_rule("10-a.lua", "return { init = function(s) tide.store.set('s1', tostring(s)) end,\n"
                           "  on_unload = function() return {f = print} end }\n");
    check(reload(e) == 0, "replace with unload-broken rule", errbuf);
    write_rule("10-a.lua", "return { init = function(s) tide.store.set('s2', tostring(s)) end }\n");
    check(reload(e) == 0 && strstr(logbuf, "cannot be carried"),
          "unserializable state: logged, reload goes on", logbuf);
    check(strcmp(store_get(e, "s2"), "nil") == 0, "unserializable state: init(nil)", NULL);

    /* timers are capped per rule: a timer made per message is a leak */
    write_rule("10-a.lua", "return { init = function()\n"
                           "  for i = 1, 256 do tide.after(60, function() end) end\n"
                           "  tide.store.set('cap', tostring(pcall(tide.after, 60, print))) end }\n");
    check(reload(e) == 0, "256 timers", errbuf);
    check(strcmp(store_get(e, "cap"), "false") == 0, "the 257th timer raises", NULL);
    check(live_timers() <= MAX_TIMERS, "fake host not overrun", NULL);

    /* an empty directory is an empty bundle */
    remove_rule("10-a.lua");
    remove_rule("00-probe.lua");
    check(reload(e) == 0 && engine_rule_count(e) == 0 && strcmp(engine_bundle_hash(e), "") == 0,
          "empty directory: no rules, empty hash", errbuf);
    check(live_timers() == 0, "every timer stopped", NULL);
    engine_free(e);
}

/* A rules file others can write is refused, and the running bundle stays. */
static void test_unsafe(void)
{
    struct engine_limits lim;
    engine_limits_default(&lim);
    struct engine *e = engine_new(&lim, &host);
    write_rule("10-a.lua", "return {}\n");
    check(reload(e) == 0 && engine_rule_count(e) == 1, "safe file loads", errbuf);
    char path[160];
    snprintf(path, sizeof(path), "%s/10-a.lua", dir);
    chmod(path, 0666);
    check(reload(e) != 0 && strstr(errbuf, "writable by group or others"),
          "world-writable file refused", errbuf);
    check(engine_rule_count(e) == 1, "refused: old bundle stays", NULL);
    chmod(path, 0644);
    chmod(dir, 0775);
    check(reload(e) != 0 && strstr(errbuf, "refusing a rules directory"),
          "group-writable directory refused", errbuf);
    chmod(dir, 0755);
    remove_rule("10-a.lua");
    engine_free(e);
}

/* A bundle loaded without init (`rules check`) is not kept by a load that runs init. */
static void test_check_then_init(void)
{
    struct engine_limits lim;
    engine_limits_default(&lim);
    struct engine *e = engine_new(&lim, &host);
    write_rule("00-probe.lua", probe_rule);
    write_rule("10-a.lua", "return { init = function() tide.store.incr('a_init') end }\n");
    errbuf[0] = '\0';
    check(engine_load(e, dir, false, on_err, NULL) == 0, "load without init", errbuf);
    check(strcmp(store_get(e, "a_init"), "nil") == 0, "no init ran", NULL);
    check(reload(e) == 0, "same files, with init", errbuf);
    check(strcmp(store_get(e, "a_init"), "1") == 0, "init ran on the load that asked for it", NULL);
    remove_rule("10-a.lua");
    remove_rule("00-probe.lua");
    engine_free(e);
}

int main(void)
{
    if (make_rules_dir("/tmp/tidemq-test-reload-XXXXXX", 0755) != 0)
        return 1;
    test_reload();
    test_unsafe();
    test_check_then_init();
    return finish("test_reload");
}
