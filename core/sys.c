/* $SYS publisher: broker figures as retained messages of the broker's own. */
#include "sys.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "broker.h"
#include "config.h"
#include "retain.h"
#include "subtree.h"

static void put(struct broker *b, const char *topic, const char *value)
{
    broker_publish_own(b, topic, value, strlen(value), true);
}

static void put_u64(struct broker *b, const char *topic, uint64_t v)
{
    char s[32];
    snprintf(s, sizeof s, "%" PRIu64, v);
    put(b, topic, s);
}

void sys_publish(struct broker *b)
{
    const struct broker_stats *st = &b->stats;
    char s[64];
    /* first, so the retained count below includes them from the first round */
    if (b->sys_rules)
        b->sys_rules(b->sys_rules_arg); /* $SYS/broker/rules/... (the rules host) */
    put(b, "$SYS/broker/version", "tidemq version " TIDEMQ_VERSION);
    snprintf(s, sizeof s, "%" PRIu64 " seconds", (broker_now_ms() - b->start_ms) / 1000);
    put(b, "$SYS/broker/uptime", s);
    size_t sessions = b->sessions.count;
    put_u64(b, "$SYS/broker/clients/connected", b->connected_count);
    put_u64(b, "$SYS/broker/clients/active", b->connected_count);
    put_u64(b, "$SYS/broker/clients/total", sessions > b->connected_count ? sessions
                                                                           : b->connected_count);
    put_u64(b, "$SYS/broker/clients/disconnected",
            sessions > b->connected_count ? sessions - b->connected_count : 0);
    put_u64(b, "$SYS/broker/clients/maximum", st->clients_maximum);
    /* as Mosquitto: messages/... counts packets of every type, publish/messages/... PUBLISH */
    put_u64(b, "$SYS/broker/messages/received", st->packets_received);
    put_u64(b, "$SYS/broker/messages/sent", st->packets_sent);
    put_u64(b, "$SYS/broker/publish/messages/received", st->msgs_received);
    put_u64(b, "$SYS/broker/publish/messages/sent", st->msgs_sent);
    put_u64(b, "$SYS/broker/publish/messages/dropped",
            st->dropped_qos0_congested + st->dropped_queue_full + st->dropped_expired +
                st->dropped_too_big);
    put_u64(b, "$SYS/broker/bytes/received", st->bytes_received);
    put_u64(b, "$SYS/broker/bytes/sent", st->bytes_sent);
    put_u64(b, "$SYS/broker/subscriptions/count", subtree_count(b->subs));
    put_u64(b, "$SYS/broker/retained messages/count", retain_count(b->retained));
    put_u64(b, "$SYS/broker/store/messages/bytes", b->msg_bytes);
    put_u64(b, "$SYS/broker/connections/open", b->conn_count);
    put_u64(b, "$SYS/broker/connections/capacity", b->fd_capacity);

    /* tidemq: one counter per limit */
    static const struct {
        const char *name;
        size_t offset;
    } counters[] = {
#define C(field) {#field, offsetof(struct broker_stats, field)}
        C(dropped_qos0_congested), C(dropped_queue_full), C(dropped_expired), C(dropped_too_big),
        C(acks_held), C(refused_connect_too_big), C(refused_packet_too_big),
        C(closed_connect_timeout), C(closed_keepalive), C(closed_slow_consumer),
        C(closed_protocol_error), C(refused_connections), C(refused_sessions),
        C(refused_subscriptions), C(refused_user_properties), C(refused_retained),
        C(refused_memory), C(refused_message_size), C(refused_keepalive), C(refused_qos),
        C(refused_acl), C(accept_paused), C(refused_connect_rate), C(refused_proxy),
#undef C
    };
    char topic[128];
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        snprintf(topic, sizeof topic, "$SYS/broker/limits/%s", counters[i].name);
        put_u64(b, topic, *(const uint64_t *)((const char *)st + counters[i].offset));
    }
}

static void on_sys(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sys_publish(arg);
}

void sys_start(struct broker *b)
{
    if (!b->cfg->sys_interval)
        return;
    b->sys_timer = event_new(b->base, -1, EV_PERSIST, on_sys, b);
    struct timeval tv = {(time_t)b->cfg->sys_interval, 0};
    event_add(b->sys_timer, &tv);
    sys_publish(b);
}
