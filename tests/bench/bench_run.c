/* The course of one tidemq-bench run: builds the scenario's connections and topics, opens them
 * with bounded concurrency, then steps through warm-up, the measured window and the drain on a
 * housekeeping timer, samples the broker's /proc figures at the window's edges, and fills the
 * result. Every phase has a deadline, so a run always ends by itself. */
#include "bench.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/alloc.h"

#define NS 1000000000ull
/* The drain ends early once nothing was delivered or acknowledged for this long. */
#define QUIET_NS NS
/* Connections scenario: pause between the last CONNACK and the RSS sample, so the broker has
 * finished its per-connection work. */
#define SETTLE_NS (NS / 2)
#define PING_INTERVAL_S 20

static uint64_t secs_ns(double s)
{
    return (uint64_t)(s * 1e9);
}

void bench_error(struct bench *b, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!b->error_count++)
        snprintf(b->error, sizeof(b->error), "%s", msg);
    if (b->error_count <= 5)
        fprintf(stderr, "tidemq-bench: %s\n", msg);
    else if (b->error_count == 6)
        fprintf(stderr, "tidemq-bench: (further errors counted, not printed)\n");
}

static int resolve(struct bench *b)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", b->o.port);
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(b->o.host, port, &hints, &res);
    if (rc) {
        bench_error(b, "cannot resolve %s: %s", b->o.host, gai_strerror(rc));
        return -1;
    }
    memcpy(&b->addr, res->ai_addr, res->ai_addrlen);
    b->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static char *topic_of(const struct bench *b, const char *kind, long i)
{
    char t[128];
    if (i < 0)
        snprintf(t, sizeof(t), "%s/%s", b->tag, kind);
    else
        snprintf(t, sizeof(t), "%s/%s/%ld", b->tag, kind, i);
    return xstrdup(t);
}

/* Subscribers first, then publishers: conns[0..nsubs) and conns[nsubs..nconns). */
static void build(struct bench *b)
{
    const struct bench_opts *o = &b->o;
    unsigned np = o->publishers, ns = o->subscribers;
    if (o->scenario == SCEN_CONNECTIONS) {
        b->nconns = o->connections;
        b->conns = xcalloc(b->nconns, sizeof(*b->conns));
        for (unsigned i = 0; i < b->nconns; i++)
            bconn_init(&b->conns[i], b, ROLE_IDLE, i, NULL);
        return;
    }
    b->nsubs = ns;
    b->npubs = np;
    b->nconns = ns + np;
    b->conns = xcalloc(b->nconns, sizeof(*b->conns));

    /* topics[0..np) are the publish topics; topics[np] (if any) the shared filter */
    b->ntopics = np + 1;
    b->topics = xcalloc(b->ntopics, sizeof(*b->topics));
    const char *filter;
    if (o->scenario == SCEN_PAIRS) {
        for (unsigned i = 0; i < np; i++)
            b->topics[i] = topic_of(b, "pair", i);
        b->topics[np] = xstrdup("");
        b->copies_per_msg = 1;
    } else {
        const char *kind = o->scenario == SCEN_FAN_IN ? "in" : "out";
        bool per_pub = o->scenario == SCEN_FAN_IN && o->wildcard;
        for (unsigned i = 0; i < np; i++)
            b->topics[i] = topic_of(b, kind, per_pub ? (long)i : -1);
        b->topics[np] = per_pub ? topic_of(b, o->scenario == SCEN_FAN_IN ? "in/+" : "out/+", -1)
                                : topic_of(b, kind, -1);
        b->copies_per_msg = ns;
    }
    filter = b->topics[np];

    for (unsigned i = 0; i < ns; i++) {
        struct bconn *c = &b->conns[i];
        bool pair = o->scenario == SCEN_PAIRS;
        bconn_init(c, b, ROLE_SUB, i, pair ? b->topics[i] : filter);
        c->track_n = pair ? 1 : np;
        c->next_seq = xcalloc(c->track_n, sizeof(*c->next_seq));
    }
    for (unsigned i = 0; i < np; i++)
        bconn_init(&b->conns[ns + i], b, ROLE_PUB, i, b->topics[i]);
}

static void start_more(struct bench *b)
{
    if (b->starting)
        return; /* a connection that failed at once, from inside the loop below */
    b->starting = true;
    while (b->phase == PH_CONNECT && b->pending < b->o.connect_concurrency &&
           b->next_start < b->nconns) {
        struct bconn *c = &b->conns[b->next_start++];
        b->pending++;
        bconn_start(c); /* may resolve (fail) at once */
    }
    b->starting = false;
}

static void pump_all(struct bench *b)
{
    for (unsigned i = b->nsubs; i < b->nconns; i++)
        bconn_pump(&b->conns[i]);
}

static void enter(struct bench *b, enum bench_phase ph)
{
    b->phase = ph;
    b->phase_ns = now_ns();
}

static void window_open(struct bench *b)
{
    b->counting = true;
    b->win_begin_ns = now_ns();
    b->self_cpu0_ns = proc_self_cpu_ns();
    if (b->o.broker_pid && proc_cpu_ns(b->o.broker_pid, &b->cpu0_ns) < 0) {
        bench_error(b, "cannot read /proc/%d/stat: broker CPU not reported", (int)b->o.broker_pid);
        b->o.broker_pid = 0;
    }
}

static void window_close(struct bench *b)
{
    if (!b->counting)
        return;
    b->counting = false;
    b->win_end_ns = now_ns();
    b->self_cpu1_ns = proc_self_cpu_ns();
    if (b->o.broker_pid && proc_cpu_ns(b->o.broker_pid, &b->cpu1_ns) == 0)
        b->have_cpu = true;
}

static void finish(struct bench *b)
{
    if (b->phase == PH_DONE)
        return;
    if (b->phase == PH_MEASURE)
        b->measure_end_ns = now_ns();
    window_close(b);
    enter(b, PH_DONE);
    b->end_ns = b->phase_ns;
    if (b->o.broker_pid)
        b->have_rss_end = proc_rss_kb(b->o.broker_pid, &b->rss_end_kb) == 0;
    for (unsigned i = 0; i < b->nconns; i++)
        bconn_close(&b->conns[i]);
    event_base_loopbreak(b->base);
}

static void start_measure(struct bench *b)
{
    enter(b, PH_MEASURE);
    b->measure_ns = b->phase_ns;
    b->last_progress_ns = b->phase_ns;
    window_open(b);
    for (unsigned i = b->nsubs; i < b->nconns; i++)
        b->conns[i].phase_sent = 0;
    pump_all(b);
}

static void connect_done(struct bench *b)
{
    b->connect_end_ns = now_ns();
    if (b->o.scenario == SCEN_CONNECTIONS) {
        enter(b, PH_SETTLE);
        return;
    }
    if (b->failed) {
        bench_error(b, "%u of %u connections failed; not publishing", b->failed, b->nconns);
        finish(b);
        return;
    }
    if (b->o.warmup > 0) {
        enter(b, PH_WARMUP);
        pump_all(b);
    } else {
        start_measure(b);
    }
}

void bench_conn_resolved(struct bench *b, struct bconn *c)
{
    b->pending--;
    b->resolved++;
    if (c->state == CS_READY)
        b->ready++;
    else
        b->failed++;
    if (b->phase != PH_CONNECT)
        return;
    if (b->resolved == b->nconns)
        connect_done(b);
    else
        start_more(b);
}

void bench_conn_lost(struct bench *b, struct bconn *c, const char *why)
{
    b->lost++;
    if (c->role == ROLE_PUB && !c->done) {
        c->done = true;
        b->pubs_done++;
    }
    /* Idle connections dropped during the hold are the connections scenario's result, not an
     * error of the generator; report them once in the error line all the same. */
    bench_error(b, "%s %u lost: %s",
                c->role == ROLE_PUB   ? "publisher"
                : c->role == ROLE_SUB ? "subscriber"
                                      : "connection",
                c->idx, why);
}

static void check_connect_timeouts(struct bench *b, uint64_t now)
{
    uint64_t limit = secs_ns(b->o.connect_timeout);
    for (unsigned i = 0; i < b->next_start; i++) {
        struct bconn *c = &b->conns[i];
        if ((c->state == CS_TCP || c->state == CS_CONNACK || c->state == CS_SUBACK) &&
            now - c->started_ns > limit)
            bconn_fail(c, c->state == CS_TCP       ? "TCP connect timed out"
                          : c->state == CS_CONNACK ? "no CONNACK in time"
                                                   : "no SUBACK in time");
    }
}

static bool drained(const struct bench *b, bool warm)
{
    if (warm)
        return b->warm_delivered >= b->warm_sent * b->copies_per_msg &&
               (b->o.qos == 0 || b->warm_acked >= b->warm_sent);
    return b->delivered >= b->sent * b->copies_per_msg && (b->o.qos == 0 || b->acked >= b->sent);
}

/* A drain ends when everything arrived, after --drain seconds, or after QUIET_NS without any
 * delivery or acknowledgement. */
static bool drain_over(const struct bench *b, bool warm, uint64_t now)
{
    return drained(b, warm) || now - b->phase_ns >= secs_ns(b->o.drain) ||
           now - b->last_progress_ns >= QUIET_NS;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;
    (void)fd;
    (void)what;
    uint64_t now = now_ns();
    uint64_t in_phase = now - b->phase_ns;
    if (now > b->deadline_ns) {
        bench_error(b, "run deadline passed in phase %d; stopping", (int)b->phase);
        finish(b);
        return;
    }
    switch (b->phase) {
    case PH_CONNECT:
        check_connect_timeouts(b, now);
        break;
    case PH_SETTLE:
        if (in_phase >= SETTLE_NS) {
            if (b->o.broker_pid)
                b->have_rss_after = proc_rss_kb(b->o.broker_pid, &b->rss_after_kb) == 0;
            start_measure(b); /* the hold */
        }
        break;
    case PH_WARMUP:
        if (in_phase >= secs_ns(b->o.warmup)) {
            enter(b, PH_WARM_DRAIN);
            b->last_progress_ns = now;
            pump_all(b); /* flushes, sends nothing new */
        } else if (b->o.rate > 0) {
            pump_all(b);
        }
        break;
    case PH_WARM_DRAIN:
        if (drain_over(b, true, now))
            start_measure(b);
        break;
    case PH_MEASURE:
        if (in_phase >= secs_ns(b->o.duration) ||
            (b->o.messages && b->npubs && b->pubs_done == b->npubs)) {
            b->measure_end_ns = now;
            if (!b->o.messages)
                window_close(b);
            if (b->o.scenario == SCEN_CONNECTIONS) {
                finish(b);
            } else {
                enter(b, PH_DRAIN);
                b->last_progress_ns = now;
                pump_all(b); /* flushes, sends nothing new */
            }
        } else if (b->o.rate > 0) {
            pump_all(b);
        }
        break;
    case PH_DRAIN:
        if (drain_over(b, false, now))
            finish(b);
        break;
    case PH_DONE:
        break;
    }
}

static void on_ping(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;
    (void)fd;
    (void)what;
    for (unsigned i = 0; i < b->nconns; i++)
        bconn_ping(&b->conns[i]);
}

static void fill_result(const struct bench *b, struct bench_result *r)
{
    memset(r, 0, sizeof(*r));
    r->sent = b->sent;
    r->acked = b->acked;
    r->expected = b->sent * b->copies_per_msg;
    r->delivered = b->delivered;
    r->dropped = r->expected > r->delivered ? r->expected - r->delivered : 0;
    r->out_of_order = b->out_of_order;
    r->warm_sent = b->warm_sent;
    r->warm_delivered = b->warm_delivered;
    if (b->measure_ns && b->measure_end_ns > b->measure_ns)
        r->publish_s = (double)(b->measure_end_ns - b->measure_ns) / 1e9;
    if (b->win_end_ns > b->win_begin_ns)
        r->window_s = (double)(b->win_end_ns - b->win_begin_ns) / 1e9;
    r->win_delivered = b->win_delivered;
    if (b->measure_ns && b->last_delivery_ns > b->measure_ns)
        r->deliver_s = (double)(b->last_delivery_ns - b->measure_ns) / 1e9;
    if (r->window_s > 0)
        r->delivered_per_s = (double)r->win_delivered / r->window_s;
    if (r->publish_s > 0)
        r->sent_per_s = (double)r->sent / r->publish_s;
    r->lat_p50_ns = hist_quantile(&b->hist, 0.50);
    r->lat_p99_ns = hist_quantile(&b->hist, 0.99);
    r->lat_p999_ns = hist_quantile(&b->hist, 0.999);
    r->lat_max_ns = b->hist.total ? b->hist.max : 0;
    if (b->have_cpu && b->cpu1_ns >= b->cpu0_ns) {
        r->have_cpu = true;
        r->broker_cpu_s = (double)(b->cpu1_ns - b->cpu0_ns) / 1e9;
        if (r->win_delivered)
            r->broker_cpu_us_per_msg = r->broker_cpu_s * 1e6 / (double)r->win_delivered;
    }
    r->have_rss = b->have_rss_end;
    r->broker_rss_kb = b->rss_end_kb;
    if (b->win_end_ns > b->win_begin_ns)
        r->bench_cpu_pct = 100.0 * (double)(b->self_cpu1_ns - b->self_cpu0_ns) /
                           (double)(b->win_end_ns - b->win_begin_ns);

    r->attempted = b->next_start;
    r->connected = b->ready;
    r->failed = b->failed + (b->nconns - b->resolved); /* never resolved: cut short */
    r->lost = b->lost;
    if (b->connect_end_ns > b->connect_begin_ns)
        r->connect_s = (double)(b->connect_end_ns - b->connect_begin_ns) / 1e9;
    r->rss_before_kb = b->rss_before_kb;
    r->rss_after_kb = b->rss_after_kb;
    if (b->have_rss_before && b->have_rss_after && b->ready)
        r->rss_per_conn_bytes =
            ((double)b->rss_after_kb - (double)b->rss_before_kb) * 1024.0 / b->ready;
    r->nofile = b->nofile;
}

int bench_run(struct bench *b, struct bench_result *r)
{
    const struct bench_opts *o = &b->o;
    snprintf(b->tag, sizeof(b->tag), "tb%d", (int)getpid());
    hist_init(&b->hist);
    int ret = -1;
    if (resolve(b) < 0)
        goto out;
    build(b);
    if (b->nconns + 32 > b->nofile) {
        bench_error(b, "%u connections need more open files than RLIMIT_NOFILE %llu allows",
                    b->nconns, (unsigned long long)b->nofile);
        goto out;
    }

    /* Bound everything: connecting, warm-up, window, drain, with slack. */
    double connect_budget = o->connect_timeout + (double)b->nconns / 1000.0 + 5;
    b->deadline_ns =
        now_ns() + secs_ns(connect_budget + 1 + o->warmup + o->duration + 2 * o->drain + 5);

    struct timeval tick_tv = {0, o->rate > 0 ? 1000 : 10000};
    struct timeval ping_tv = {PING_INTERVAL_S, 0};
    b->tick = event_new(b->base, -1, EV_PERSIST, on_tick, b);
    b->pinger = event_new(b->base, -1, EV_PERSIST, on_ping, b);
    event_add(b->tick, &tick_tv);
    if (o->keepalive)
        event_add(b->pinger, &ping_tv);

    if (o->broker_pid)
        b->have_rss_before = proc_rss_kb(o->broker_pid, &b->rss_before_kb) == 0;
    enter(b, PH_CONNECT);
    b->connect_begin_ns = b->phase_ns;
    if (b->nconns == 0)
        connect_done(b);
    else
        start_more(b);

    event_base_dispatch(b->base);
    finish(b); /* no-op unless the loop ran dry */
    /* ok: every connection came up and stayed up */
    ret = b->failed || b->lost || b->resolved < b->nconns ? -1 : 0;
out:
    fill_result(b, r);
    return ret;
}
