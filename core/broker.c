/* The broker object: construction (listeners, tree, store, timers), the end-of-iteration reaper,
 * the once-a-second duty (slow consumers), graceful shutdown and teardown. */
#include "broker.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "auth.h"
#include "codec.h"
#include "config.h"
#include "conn.h"
#include "connect_rate.h"
#include "hooks.h"
#include "listener.h"
#include "log.h"
#include "msg.h"
#include "proto.h"
#include "proxy.h"
#include "retain.h"
#include "router.h"
#include "session.h"
#include "subtree.h"
#include "sys.h"
#include "util/alloc.h"

#define SHUTDOWN_FLUSH_MS 2000
/* Deadline checks (connect timeout, keepalive, slow consumers) run this often. */
#define TICK_MS 250

uint64_t broker_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_reap(arg);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_flush_all(arg);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct broker *b = arg;
    conn_check_timeouts(b, broker_now_ms());
}

static void on_rate_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct broker *b = arg;
    connect_rate_sweep(b->connect_rate, broker_now_ms());
}

struct broker *broker_new(struct config *cfg, struct event_base *base)
{
    struct broker *b = xcalloc(1, sizeof *b);
    b->cfg = cfg;
    b->base = base;
    b->start_ms = broker_now_ms();
    hmap_init(&b->sessions);
    buf_init(&b->scratch);
    buf_init(&b->mount);
    b->subs = subtree_new();
    b->retained = retain_new();
    b->reaper = event_new(base, -1, 0, on_reap, b);
    b->flusher = event_new(base, -1, 0, on_flush, b);
    b->rbuf = xmalloc(BROKER_RBUF_SIZE);
    b->tick_timer = event_new(base, -1, EV_PERSIST, on_tick, b);
    struct timeval tick = {0, TICK_MS * 1000};
    event_add(b->tick_timer, &tick);
    if (auth_open(b, proto_password_checked) < 0) {
        broker_free(b);
        return NULL;
    }
    if (cfg->connect_rate_per_address) {
        /* N a second, in bursts of N: CONFIG.md gives the rate alone */
        b->connect_rate =
            connect_rate_new(cfg->connect_rate_per_address, cfg->connect_rate_per_address,
                             CONNECT_RATE_MAX_ADDRESSES);
        b->rate_sweep = event_new(base, -1, EV_PERSIST, on_rate_sweep, b);
        struct timeval sweep = {CONNECT_RATE_SWEEP_MS / 1000,
                                (CONNECT_RATE_SWEEP_MS % 1000) * 1000};
        event_add(b->rate_sweep, &sweep);
    }
    b->listeners = xcalloc(cfg->listener_count ? cfg->listener_count : 1, sizeof *b->listeners);
    for (size_t i = 0; i < cfg->listener_count; i++) {
        struct listener *l = listener_open(b, &cfg->listeners[i]);
        if (!l) {
            broker_free(b);
            return NULL;
        }
        b->listeners[b->listener_count++] = l;
    }
    sys_start(b);
    return b;
}

void broker_reload_tls(struct broker *b)
{
    for (size_t k = 0; k < b->listener_count; k++)
        listener_reload_tls(b->listeners[k]);
}

void broker_publish_own(struct broker *b, const char *topic, const void *payload, size_t len,
                        bool retain)
{
    struct msg_init in = {
        .topic = topic,
        .topic_len = strlen(topic),
        .payload = payload,
        .payload_len = len,
        .retain = retain,
        .now_ms = broker_now_ms(),
        .account = &b->msg_bytes,
    };
    struct msg *m = msg_new(&in);
    router_publish(b, m, NULL);
    msg_release(&m);
}

/* During shutdown: leave the loop as soon as every connection has flushed and gone. */
static void on_shutdown_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct broker *b = arg;
    if (!b->conns)
        event_base_loopexit(b->base, NULL);
}

void broker_shutdown(struct broker *b)
{
    if (b->shutting_down)
        return;
    log_notice("broker", "shutting down");
    /* Wills first, while their subscribers are still connected: wills without a delay are
     * published as Mosquitto does, and (no persistence yet) delayed wills too (CONFIG.md). */
    size_t i = 0;
    struct session *s;
    struct session **all = xcalloc(b->sessions.count + 1, sizeof *all);
    size_t n = 0;
    while ((s = hmap_next(&b->sessions, &i)))
        all[n++] = s;
    for (size_t k = 0; k < n; k++) {
        struct msg *will = all[k]->will;
        bool delayed = all[k]->will_timer && evtimer_pending(all[k]->will_timer, NULL);
        if (!will || (!all[k]->conn && !delayed))
            continue;
        will = msg_restart_expiry(will, broker_now_ms());
        msg_release(&all[k]->will);
        if (b->hooks && b->hooks->wants(b->hooks->ctx, will->topic, will->topic_len))
            router_publish_as(b, will, all[k]); /* wills pass through on_publish (RULES-API) */
        else
            router_publish(b, will, NULL);
        msg_release(&will);
    }
    free(all);
    b->shutting_down = true;
    for (size_t k = 0; k < b->listener_count; k++)
        listener_free(b->listeners[k]);
    b->listener_count = 0;
    proxy_drop_all(b);
    for (struct conn *c = b->conns; c; c = c->next)
        conn_close(c, 0x8B, "server shutdown"); /* v5: DISCONNECT 0x8B Server shutting down */
    b->shutdown_check = event_new(b->base, -1, EV_PERSIST, on_shutdown_check, b);
    struct timeval tick = {0, 20000}, limit = {SHUTDOWN_FLUSH_MS / 1000, 0};
    event_add(b->shutdown_check, &tick);
    event_base_loopexit(b->base, &limit);
    if (b->sys_timer)
        event_del(b->sys_timer);
    event_del(b->tick_timer);
}

void broker_free(struct broker *b)
{
    if (!b)
        return;
    b->shutting_down = true;
    for (size_t k = 0; k < b->listener_count; k++)
        listener_free(b->listeners[k]);
    free(b->listeners);
    b->listeners = NULL;
    proxy_free(b);
    conn_destroy_all(b);
    size_t i = 0;
    struct session *s;
    while ((s = hmap_next(&b->sessions, &i))) {
        msg_release(&s->will);
        session_end(s);
        i = 0;
    }
    hmap_fini(&b->sessions);
    auth_close(b);
    subtree_free(b->subs);
    retain_free(b->retained);
    if (b->sys_timer)
        event_free(b->sys_timer);
    event_free(b->tick_timer);
    if (b->rate_sweep)
        event_free(b->rate_sweep);
    connect_rate_free(b->connect_rate);
    event_free(b->reaper);
    event_free(b->flusher);
    free(b->rbuf);
    if (b->shutdown_check)
        event_free(b->shutdown_check);
    buf_fini(&b->scratch);
    buf_fini(&b->mount);
    free(b);
}
