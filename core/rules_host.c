/* The rule engine inside the broker: struct host (routing, log, timers, clocks, sinks), the
 * engine's lifecycle (load at start, reload on change or SIGHUP) and its $SYS figures. */
#include "rules_host.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>

#include "broker.h"
#include "config.h"
#include "engine.h"
#include "hooks.h"
#include "host.h"
#include "log.h"
#include "msg.h"
#include "router.h"
#include "rules_watch.h"
#include "sys.h"
#include "util/alloc.h"
#include "util/err.h"

struct host_timer {
    struct event *ev;
    host_timer_fn fn;
    void *arg;
};

struct rules_host {
    struct engine *e;
    struct host host;
    struct hooks hooks;
    struct broker *b;         /* NULL until rules_host_attach */
    struct event_base *base;
    char *dir;                /* NULL: the default directory does not exist (yet) */
    char *default_dir;        /* `rules` beside the config file, or ./rules */
    struct rules_watch *watch;
    /* messages rules published, routed on the next turn of the loop: routing inside the event
     * that made them (a delivery, a subscription) would re-enter the router */
    struct msg **pending;
    size_t npending, cap_pending;
    struct event *route_ev;
    /* the rule names last published under $SYS/broker/rules/, to clear those that went away */
    char **sys_names;
    size_t nsys;
};

/* --- struct host --- */

static void on_route(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct rules_host *h = arg;
    /* take the batch: what routing makes rules publish waits for the next turn */
    struct msg **batch = h->pending;
    size_t n = h->npending;
    h->pending = NULL;
    h->npending = h->cap_pending = 0;
    for (size_t i = 0; i < n; i++) {
        router_publish(h->b, batch[i], NULL);
        msg_release(&batch[i]);
    }
    free(batch);
}

static void host_route(void *ctx, struct msg *m, const char *rule)
{
    (void)rule;
    struct rules_host *h = ctx;
    if (h->npending == h->cap_pending) {
        h->cap_pending = h->cap_pending ? h->cap_pending * 2 : 16;
        h->pending = xrealloc(h->pending, h->cap_pending * sizeof *h->pending);
    }
    h->pending[h->npending++] = msg_retain(m);
    if (h->b)
        event_active(h->route_ev, EV_TIMEOUT, 0);
}

static void host_log(void *ctx, int level, const char *rule, const char *text)
{
    (void)ctx;
    log_at((enum log_level)level, "rule", "%s: %s", rule, text);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct host_timer *t = arg;
    t->fn(t->arg); /* may cancel (free) t */
}

static void *host_timer_add(void *ctx, uint64_t ms, bool repeat, host_timer_fn fn, void *arg)
{
    struct rules_host *h = ctx;
    struct host_timer *t = xcalloc(1, sizeof *t);
    t->fn = fn;
    t->arg = arg;
    t->ev = event_new(h->base, -1, repeat ? EV_PERSIST : 0, on_timer, t);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (!t->ev || event_add(t->ev, &tv) != 0) {
        if (t->ev)
            event_free(t->ev);
        free(t);
        return NULL;
    }
    return t;
}

static void host_timer_cancel(void *ctx, void *handle)
{
    (void)ctx;
    struct host_timer *t = handle;
    if (!t)
        return;
    event_free(t->ev); /* libevent allows this from inside the timer's own callback */
    free(t);
}

static uint64_t host_monotonic_ms(void *ctx)
{
    (void)ctx;
    return broker_now_ms();
}

static int host_sink_send(void *ctx, const char *name, const void *data, size_t len,
                          const char *opts_json)
{
    (void)ctx;
    (void)name;
    (void)data;
    (void)len;
    (void)opts_json;
    return TIDE_ENOTFOUND; /* no sinks in this build: send gives nil, "no_such_sink" */
}

/* --- loading --- */

static void on_load_error(void *arg, const char *text)
{
    (void)arg;
    log_error("rules", "%s", text);
}

/* After a bundle loaded: what is running, and how each rule has done so far. */
static void log_bundle(struct rules_host *h)
{
    size_t n = engine_rule_count(h->e);
    log_notice("rules", "bundle %s loaded from %s: %zu rule%s",
               engine_bundle_hash(h->e)[0] ? engine_bundle_hash(h->e) : "(empty)", h->dir, n,
               n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++) {
        struct engine_rule_stats st;
        if (engine_rule_stats(h->e, i, &st) != 0)
            continue;
        log_notice("rules",
                   "rule=%s calls=%" PRIu64 " errors=%" PRIu64 " timeouts=%" PRIu64
                   " drops=%" PRIu64 " refusals=%" PRIu64 " mean_us=%.1f max_us=%.1f%s%s",
                   st.name, st.calls, st.errors, st.timeouts, st.drops, st.refusals, st.mean_us,
                   st.max_us, st.last_error[0] ? " last_error=" : "", st.last_error);
    }
}

/* The hooks core calls: none while the bundle is empty, so the broker pays nothing then. */
static void install_hooks(struct rules_host *h)
{
    if (!h->b)
        return;
    h->b->hooks_engine = &h->hooks;
    h->b->hooks = engine_rule_count(h->e) ? &h->hooks : NULL;
}

static void on_dir_change(void *arg)
{
    rules_host_reload(arg, "rules directory changed");
}

struct rules_host *rules_host_new(const struct config *cfg, struct event_base *base)
{
    struct rules_host *h = xcalloc(1, sizeof *h);
    h->base = base;
    h->host = (struct host){
        .ctx = h,
        .route = host_route,
        .log = host_log,
        .timer_add = host_timer_add,
        .timer_cancel = host_timer_cancel,
        .now = engine_wall_clock,
        .monotonic_ms = host_monotonic_ms,
        .sink_send = host_sink_send,
    };
    struct engine_limits lim;
    engine_limits_default(&lim);
    lim.timeout_ms = cfg->rule_timeout_ms;
    lim.memory_limit = cfg->rule_memory_limit;
    lim.cpu_share = cfg->rule_cpu_share;
    /* 0 disables the bound (the broker checks it before the rules: INTERFACES.md #4) */
    lim.max_payload = cfg->rule_max_payload ? cfg->rule_max_payload : UINT64_MAX;
    lim.store_limit = cfg->rule_store_limit;
    h->e = engine_new(&lim, &h->host);
    engine_hooks(h->e, &h->hooks);
    h->route_ev = event_new(base, -1, 0, on_route, h);

    /* the default: `rules` beside the config file, or ./rules without one (CONFIG.md) */
    const char *slash = cfg->path ? strrchr(cfg->path, '/') : NULL;
    if (slash && asprintf(&h->default_dir, "%.*s/rules", (int)(slash - cfg->path), cfg->path) < 0)
        panic("out of memory");
    if (!h->default_dir)
        h->default_dir = xstrdup("rules");
    const char *dir = cfg->rules_dir ? cfg->rules_dir : h->default_dir;
    struct stat st;
    if (!cfg->rules_dir_explicit && stat(dir, &st) != 0 && errno == ENOENT) {
        log_notice("rules", "rules directory %s does not exist: no rules", dir);
        return h;
    }
    h->dir = xstrdup(dir);
    if (engine_load(h->e, h->dir, true, on_load_error, h) != 0) {
        log_error("rules", "%s: the rules did not load: not starting", dir);
        rules_host_free(h);
        return NULL;
    }
    log_bundle(h);
    return h;
}

void rules_host_reload(struct rules_host *h, const char *why)
{
    if (!h->dir) {
        struct stat st;
        if (stat(h->default_dir, &st) != 0) {
            log_notice("rules", "%s: rules directory %s does not exist: no rules", why,
                       h->default_dir);
            return;
        }
        h->dir = xstrdup(h->default_dir); /* the default directory appeared: serve, watch it */
        if (h->b)
            h->watch = rules_watch_new(h->base, h->dir, on_dir_change, h);
    }
    log_notice("rules", "%s: reloading %s", why, h->dir);
    if (engine_load(h->e, h->dir, true, on_load_error, h) != 0) {
        log_error("rules", "%s: reload failed: the running rules stay as they were", h->dir);
        return;
    }
    install_hooks(h);
    log_bundle(h);
}

/* --- $SYS/broker/rules/... --- */

static void sys_put(struct broker *b, const char *name, const char *what, const char *value)
{
    char topic[512];
    if (name)
        snprintf(topic, sizeof topic, "$SYS/broker/rules/%s/%s", name, what);
    else
        snprintf(topic, sizeof topic, "$SYS/broker/rules/%s", what);
    broker_publish_own(b, topic, value, strlen(value), true);
}

static void sys_put_u64(struct broker *b, const char *name, const char *what, uint64_t v)
{
    char s[32];
    snprintf(s, sizeof s, "%" PRIu64, v);
    sys_put(b, name, what, s);
}

static const char *const sys_fields[] = {"calls",  "errors", "timeouts", "drops",
                                         "refusals", "mean_us", "max_us", "last_error"};

/* A rule that went away: its retained figures are cleared (an empty retained message). */
static void sys_clear(struct broker *b, const char *name)
{
    for (size_t k = 0; k < sizeof sys_fields / sizeof sys_fields[0]; k++)
        sys_put(b, name, sys_fields[k], "");
}

static void sys_rules(void *arg)
{
    struct rules_host *h = arg;
    struct broker *b = h->b;
    size_t n = engine_rule_count(h->e);
    char **names = xcalloc(n ? n : 1, sizeof *names);
    sys_put_u64(b, NULL, "count", n);
    sys_put(b, NULL, "bundle", engine_bundle_hash(h->e));
    for (size_t i = 0; i < n; i++) {
        struct engine_rule_stats st;
        if (engine_rule_stats(h->e, i, &st) != 0) {
            names[i] = xstrdup("");
            continue;
        }
        names[i] = xstrdup(st.name);
        char v[64];
        sys_put_u64(b, st.name, "calls", st.calls);
        sys_put_u64(b, st.name, "errors", st.errors);
        sys_put_u64(b, st.name, "timeouts", st.timeouts);
        sys_put_u64(b, st.name, "drops", st.drops);
        sys_put_u64(b, st.name, "refusals", st.refusals);
        snprintf(v, sizeof v, "%.1f", st.mean_us);
        sys_put(b, st.name, "mean_us", v);
        snprintf(v, sizeof v, "%.1f", st.max_us);
        sys_put(b, st.name, "max_us", v);
        sys_put(b, st.name, "last_error", st.last_error);
    }
    for (size_t k = 0; k < h->nsys; k++) {
        bool still = false;
        for (size_t i = 0; i < n && !still; i++)
            still = strcmp(h->sys_names[k], names[i]) == 0;
        if (!still && h->sys_names[k][0])
            sys_clear(b, h->sys_names[k]);
        free(h->sys_names[k]);
    }
    free(h->sys_names);
    h->sys_names = names;
    h->nsys = n;
}

void rules_host_attach(struct rules_host *h, struct broker *b)
{
    h->b = b;
    b->rules = h;
    b->sys_rules = sys_rules;
    b->sys_rules_arg = h;
    install_hooks(h);
    if (h->npending)
        event_active(h->route_ev, EV_TIMEOUT, 0); /* what init published */
    if (h->dir)
        h->watch = rules_watch_new(h->base, h->dir, on_dir_change, h);
    if (b->cfg->sys_interval)
        sys_publish(b); /* again, now with the rules' figures, before any client connects */
}

void rules_host_free(struct rules_host *h)
{
    if (!h)
        return;
    rules_watch_free(h->watch);
    engine_free(h->e);
    for (size_t i = 0; i < h->npending; i++)
        msg_release(&h->pending[i]);
    free(h->pending);
    event_free(h->route_ev);
    for (size_t k = 0; k < h->nsys; k++)
        free(h->sys_names[k]);
    free(h->sys_names);
    free(h->dir);
    free(h->default_dir);
    free(h);
}
