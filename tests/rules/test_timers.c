/* Unit tests for tide.every / tide.after / tide.cancel lifetimes (RULES-API "Reload" and the
 * timer lines of "The API"): a callback that cancels its own timer or another one due in the same
 * loop turn, a callback that errors or runs out of time, a rule replaced or unloaded between two
 * timers due in one turn, and a stale id that must not cancel a newer timer. Meant to run under
 * ASan: the fake host below allocates every handle and frees it on cancel, and fires timers the
 * way libevent does (every due timer is taken into an active list first; one cancelled before its
 * turn is dropped from that list), so a use after free anywhere on the path shows. Exits non-zero
 * on any failure. */
#include "engine.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hooks.h"
#include "host.h"
#include "msg.h"
#include "rules_test_support.h"

/* --- a fake libevent: every live timer is due at every turn --- */
#define MAX_TIMERS 512
struct fake_timer {
    host_timer_fn fn;
    void *arg;
    bool repeat;
    bool pending; /* a one-shot that fired is no longer pending, but lives until cancelled */
};
static struct fake_timer *live[MAX_TIMERS]; /* every handle not yet cancelled */
static struct fake_timer *active[MAX_TIMERS]; /* this turn's due timers, in firing order */
static size_t nactive;

static void *timer_add(void *ctx, uint64_t ms, bool repeat, host_timer_fn fn, void *arg)
{
    (void)ctx, (void)ms;
    for (size_t i = 0; i < MAX_TIMERS; i++) {
        if (!live[i]) {
            live[i] = malloc(sizeof(*live[i]));
            *live[i] = (struct fake_timer){fn, arg, repeat, true};
            return live[i];
        }
    }
    return NULL;
}

static void timer_cancel(void *ctx, void *handle)
{
    (void)ctx;
    size_t i = 0;
    while (i < MAX_TIMERS && live[i] != handle)
        i++;
    check(i < MAX_TIMERS, "cancel of a live handle", "unknown or already cancelled handle");
    if (i == MAX_TIMERS)
        return;
    live[i] = NULL;
    for (size_t k = 0; k < nactive; k++) /* like event_del: out of the active queue too */
        if (active[k] == handle)
            active[k] = NULL;
    free(handle);
}

static int live_timers(void)
{
    int n = 0;
    for (size_t i = 0; i < MAX_TIMERS; i++)
        n += live[i] != NULL;
    return n;
}

/* One loop turn: between(arg) runs after the due timers are taken and before the first fires
 * (another event of the same turn, e.g. a reload), then each still-active timer fires. */
static void turn(void (*between)(void *), void *arg)
{
    nactive = 0;
    for (size_t i = 0; i < MAX_TIMERS; i++)
        if (live[i] && live[i]->pending)
            active[nactive++] = live[i];
    if (between)
        between(arg);
    for (size_t k = 0; k < nactive; k++) {
        struct fake_timer *t = active[k];
        if (!t)
            continue;
        active[k] = NULL;
        if (!t->repeat)
            t->pending = false; /* libevent deletes a one-shot before its callback */
        t->fn(t->arg);          /* may cancel (free) t */
    }
    nactive = 0;
}

static const struct host host = {.monotonic_ms = mono, .now = now, .log = collect_log,
                                 .timer_add = timer_add, .timer_cancel = timer_cancel};

/* --- helpers --- */
static const char probe_rule[] =
    "return { match = 'probe/+', on_publish = function(msg)\n"
    "  return {payload = tostring(tide.store.get(msg.topic:sub(7)))} end }\n";

static const char *store_get(struct engine *e, const char *key)
{
    char topic[96];
    snprintf(topic, sizeof(topic), "probe/%s", key);
    struct msg_init mi = {.topic = topic, .topic_len = strlen(topic), .payload = "p",
                          .payload_len = 1, .origin = "c1"};
    struct hooks_client cl = {.client_id = "c1", .protocol = 5, .address = "127.0.0.1"};
    return publish_outcome(e, &mi, &cl);
}

static bool store_is(struct engine *e, const char *key, const char *want)
{
    const char *got = store_get(e, key);
    if (strcmp(got, want) == 0)
        return true;
    fprintf(stderr, "  store %s: got %s, want %s\n", key, got, want);
    return false;
}

static int reload(struct engine *e)
{
    errbuf[0] = '\0';
    return engine_load(e, dir, true, on_err, NULL);
}

/* A fresh engine on a directory holding the probe rule and the given rule as 10-t.lua. */
static struct engine *start(const char *rule)
{
    clear_dir();
    write_rule("00-probe.lua", probe_rule);
    write_rule("10-t.lua", rule);
    struct engine_limits lim;
    engine_limits_default(&lim);
    lim.cpu_share = 0; /* the breaker would hide repeated aborts */
    return load_engine(&lim, &host);
}

static void stop(struct engine *e)
{
    engine_free(e);
    check(live_timers() == 0, "engine_free: every handle cancelled", NULL);
}

/* --- the cases --- */

/* A one-shot passing its own id to tide.cancel: already done, so false; it fires once. */
static void test_after_cancels_itself(void)
{
    struct engine *e = start(
        "local id\n"
        "return { init = function()\n"
        "  id = tide.after(0.01, function()\n"
        "    tide.store.incr('n'); tide.store.set('c', tostring(tide.cancel(id))) end) end }\n");
    if (!e)
        return;
    turn(NULL, NULL);
    turn(NULL, NULL);
    check(store_is(e, "n", "1") && store_is(e, "c", "false"), "after: cancels itself", NULL);
    check(live_timers() == 0, "after: handle freed once", NULL);
    stop(e);
}

/* A repeating timer that cancels itself on its third tick, then arms a new one-shot (which may
 * reuse both the freed memory and the registry slot). */
static void test_every_cancels_itself(void)
{
    struct engine *e = start(
        "local id\n"
        "return { init = function()\n"
        "  id = tide.every(0.01, function()\n"
        "    local n = tide.store.incr('n')\n"
        "    if n == 3 then tide.store.set('c', tostring(tide.cancel(id)))\n"
        "      tide.after(0.01, function() tide.store.incr('later') end) end end) end }\n");
    if (!e)
        return;
    for (int i = 0; i < 6; i++)
        turn(NULL, NULL);
    check(store_is(e, "n", "3") && store_is(e, "c", "true"), "every: cancels itself", NULL);
    check(store_is(e, "later", "1"), "every: the timer armed after the cancel fires", NULL);
    check(live_timers() == 0, "every: handles freed", NULL);
    stop(e);
}

/* Two timers due in the same turn: the first to fire cancels the other, which must not fire.
 * Both kinds, both orders (the fake host fires in handle order). */
static void test_cancel_other_same_turn(void)
{
    static const char *const kinds[][2] = {{"after", "after"}, {"after", "every"},
                                           {"every", "after"}, {"every", "every"}};
    for (size_t k = 0; k < 4; k++) {
        char rule[1024];
        snprintf(rule, sizeof(rule),
                 "local a, b\n"
                 "return { init = function()\n"
                 "  a = tide.%s(0.01, function() tide.store.incr('a')\n"
                 "    if b then tide.store.set('ca', tostring(tide.cancel(b))); b = nil end end)\n"
                 "  b = tide.%s(0.01, function() tide.store.incr('b')\n"
                 "    if a then tide.store.set('cb', tostring(tide.cancel(a))); a = nil end end)\n"
                 "end }\n",
                 kinds[k][0], kinds[k][1]);
        struct engine *e = start(rule);
        if (!e)
            return;
        turn(NULL, NULL);
        turn(NULL, NULL);
        /* exactly one fired first and cancelled the other, which never ran */
        const char *a = store_get(e, "a");
        bool a_first = strcmp(a, "nil") != 0;
        char what[64];
        snprintf(what, sizeof(what), "%s/%s: one cancels the other", kinds[k][0], kinds[k][1]);
        if (a_first)
            check(store_is(e, "ca", "true") && store_is(e, "b", "nil"), what, NULL);
        else
            check(store_is(e, "cb", "true") && store_is(e, "a", "nil"), what, NULL);
        stop(e);
    }
}

/* A callback that raises, or runs out of time, is counted; a repeating timer keeps its schedule
 * and a one-shot is freed. Then the rule is unloaded with the timer still armed. */
static void test_error_and_timeout(void)
{
    struct engine *e = start(
        "return { timeout_ms = 5, init = function()\n"
        "  tide.every(0.01, function() tide.store.incr('e'); error('boom') end)\n"
        "  tide.after(0.01, function() error('once') end)\n"
        "  tide.every(0.01, function() tide.store.incr('t'); while true do end end)\n"
        "  tide.after(0.01, function() while true do end end)\n"
        "end }\n");
    if (!e)
        return;
    logbuf[0] = '\0';
    turn(NULL, NULL);
    turn(NULL, NULL);
    check(store_is(e, "e", "2") && store_is(e, "t", "2"), "error/timeout: repeating keep firing",
          NULL);
    check(strstr(logbuf, "timer aborted: ") != NULL, "error/timeout: logged", logbuf);
    struct engine_rule_stats st;
    engine_rule_stats(e, 1, &st);
    check(st.timeouts >= 3 && st.errors >= 3, "error/timeout: counted", st.last_error);
    check(live_timers() == 2, "error/timeout: the one-shots are freed", NULL);
    char path[160];
    snprintf(path, sizeof(path), "%s/10-t.lua", dir);
    unlink(path);
    check(reload(e) == 0 && live_timers() == 0, "error/timeout: unload stops the timers", errbuf);
    turn(NULL, NULL);
    stop(e);
}

/* Another event of the same turn (the rules directory watch) replaces or unloads the rule after
 * its timers were taken as due and before they fire: they must be dropped, not fired. */
static void reload_between(void *arg)
{
    check(reload(arg) == 0, "reload between: loads", errbuf);
}

static void test_reload_while_due(void)
{
    const char *rule = "return { init = function()\n"
                       "  tide.every(0.01, function() tide.store.incr('old_every') end)\n"
                       "  tide.after(0.01, function() tide.store.incr('old_after') end) end }\n";
    struct engine *e = start(rule);
    if (!e)
        return;
    write_rule("10-t.lua", "return { init = function()\n"
                           "  tide.every(0.01, function() tide.store.incr('new_every') end) end }\n");
    turn(reload_between, e);
    check(store_is(e, "old_every", "nil") && store_is(e, "old_after", "nil"),
          "replaced while due: old timers never fire", NULL);
    turn(NULL, NULL);
    check(store_is(e, "new_every", "1"), "replaced: the new version's timer fires", NULL);
    char path[160];
    snprintf(path, sizeof(path), "%s/10-t.lua", dir);
    unlink(path);
    turn(reload_between, e);
    check(store_is(e, "new_every", "1") && live_timers() == 0,
          "unloaded while due: nothing fires, nothing left", NULL);
    stop(e);
}

/* The timer's callback publishes; another rule passes the message back, and this rule's
 * on_publish cancels the timer that is still firing (the tide.publish queue drains inside the
 * timer's event). */
static void test_cancel_from_drain(void)
{
    clear_dir();
    write_rule("00-probe.lua", probe_rule);
    write_rule("10-t.lua",
               "local id\n"
               "return { match = 'back/#', init = function()\n"
               "    id = tide.every(0.01, function() tide.store.incr('n')\n"
               "      tide.publish('ping/x', 'p') end) end,\n"
               "  on_publish = function(msg)\n"
               "    tide.store.set('c', tostring(tide.cancel(id))); return false end }\n");
    write_rule("20-echo.lua", "return { match = 'ping/#', on_publish = function(msg)\n"
                              "  tide.publish('back/x', 'p'); return false end }\n");
    struct engine_limits lim;
    engine_limits_default(&lim);
    struct engine *e = load_engine(&lim, &host);
    if (!e)
        return;
    turn(NULL, NULL);
    turn(NULL, NULL);
    check(store_is(e, "n", "1") && store_is(e, "c", "true"),
          "cancelled from the drain while firing", NULL);
    check(live_timers() == 0, "drain cancel: handle freed", NULL);
    stop(e);
}

/* An id is the timer's for good: once a one-shot fired, or a timer was cancelled, tide.cancel(its
 * id) must not cancel a timer made later (by its own callback, or by a later hook). */
static void test_stale_id(void)
{
    struct engine *e = start(
        "local first, second, gone\n"
        "return { match = 'go/#', init = function()\n"
        "    first = tide.after(0.01, function()\n"
        "      second = tide.after(0.01, function() tide.store.incr('second') end)\n"
        "      tide.store.set('same', tostring(second == first))\n"
        "      tide.store.set('c', tostring(tide.cancel(first))) end)\n"
        "    gone = tide.every(0.01, function() end)\n"
        "    tide.cancel(gone) end,\n"
        "  on_publish = function()\n"
        "    local later = tide.after(0.01, function() tide.store.incr('later') end)\n"
        "    tide.store.set('ids', tostring(later ~= first and later ~= second and later ~= gone))\n"
        "    tide.store.set('c2', tostring(tide.cancel(first)) .. tostring(tide.cancel(second))\n"
        "      .. tostring(tide.cancel(gone))) end }\n");
    if (!e)
        return;
    turn(NULL, NULL);
    turn(NULL, NULL);
    check(store_is(e, "same", "false"), "stale id: a new timer gets a new id", NULL);
    check(store_is(e, "c", "false") && store_is(e, "second", "1"),
          "stale id: cancels nothing from the callback", NULL);
    struct msg_init mi = {.topic = "go/x", .topic_len = 4, .payload = "p", .payload_len = 1,
                          .origin = "c1"};
    struct hooks_client cl = {.client_id = "c1", .protocol = 5, .address = "127.0.0.1"};
    publish_outcome(e, &mi, &cl);
    turn(NULL, NULL);
    check(store_is(e, "ids", "true") && store_is(e, "c2", "falsefalsefalse") &&
              store_is(e, "later", "1"),
          "stale id: cancels nothing from a later hook", NULL);
    stop(e);
}

int main(void)
{
    if (make_rules_dir("/tmp/tidemq-timers-XXXXXX", 0755) != 0)
        return 1;
    test_after_cancels_itself();
    test_every_cancels_itself();
    test_cancel_other_same_turn();
    test_error_and_timeout();
    test_reload_while_due();
    test_cancel_from_drain();
    test_stale_id();
    return finish("test_timers");
}
