/* struct broker: all broker state, passed down explicitly (no hidden globals), so a later
 * multi-loop design needs no rewrite. Owns the event base, listeners, connections, sessions, the
 * subscription tree and the retained store. Loop thread only. */
#ifndef TIDE_BROKER_H
#define TIDE_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/hash.h"

struct auth;
struct config;
struct conn;
struct connect_rate;
struct event;
struct event_base;
struct hooks;
struct listener;
struct msg;
struct proxy;
struct retain_store;
struct rules_host;
struct subtree;

/* The shared read buffer: sockets are read into it and only a partial packet is copied out. */
#define BROKER_RBUF_SIZE (64 * 1024)

/* Counters; each limit has one, and $SYS publishes them. */
struct broker_stats {
    uint64_t packets_received, packets_sent; /* every MQTT packet ($SYS messages/...) */
    uint64_t msgs_received, msgs_sent, bytes_received, bytes_sent; /* PUBLISH only, bytes all */
    uint64_t pub_received_qos[3], pub_sent_qos[3];
    uint64_t connects_total;          /* connections ever accepted (CONNACK 0) */
    uint64_t clients_maximum;         /* highest concurrent connected */
    uint64_t dropped_qos0_congested;  /* QoS 0 dropped: subscriber's output over its bound */
    uint64_t dropped_queue_full;      /* offline queue over max_queued_messages/bytes */
    uint64_t dropped_expired;         /* message expiry passed before delivery */
    uint64_t dropped_too_big;         /* larger than the subscriber's Maximum Packet Size */
    uint64_t acks_held;               /* publisher acks held back by a congested subscriber */
    uint64_t refused_connect_too_big; /* bytes before CONNECT over max_connect_packet_size */
    uint64_t refused_packet_too_big;  /* over max_packet_size */
    uint64_t closed_connect_timeout;
    uint64_t closed_keepalive;
    uint64_t closed_slow_consumer;
    uint64_t closed_protocol_error;
    uint64_t refused_connections;     /* max_connections, global or per listener */
    uint64_t refused_sessions;        /* max_sessions */
    uint64_t refused_subscriptions;   /* max_subscriptions_per_client */
    uint64_t refused_user_properties; /* max_user_properties */
    uint64_t refused_retained;        /* max_retained_messages / bytes */
    uint64_t refused_memory;          /* memory_limit */
    uint64_t refused_message_size;    /* message_size_limit */
    uint64_t refused_keepalive;       /* 3.1.1 keepalive outside max_keepalive */
    uint64_t refused_qos;             /* QoS above the listener's max_qos */
    uint64_t refused_acl;             /* publish/subscribe/will denied, deliveries withheld */
    uint64_t accept_paused;           /* EMFILE: accepting paused */
    uint64_t refused_connect_rate;    /* connect_rate_per_address */
    uint64_t refused_proxy;           /* PROXY header: untrusted source, malformed, too slow */
};

struct broker {
    struct config *cfg;
    struct event_base *base;
    struct listener **listeners;
    size_t listener_count;

    struct conn *conns;      /* every live connection (doubly linked) */
    size_t conn_count;       /* sockets open */
    size_t connected_count;  /* CONNACK sent and not closed */
    struct conn *reap;       /* closed connections to free at the end of this loop iteration */
    struct event *reaper;
    struct conn *flush;      /* connections with output to write in this loop iteration */
    struct event *flusher;
    uint8_t *rbuf;           /* BROKER_RBUF_SIZE bytes */

    struct hmap sessions;    /* client id -> struct session */
    struct subtree *subs;
    struct retain_store *retained;
    struct auth *auth;       /* password and ACL tables, the password worker */
    struct proxy *proxy;     /* sockets still reading their PROXY header (proxy.c), or NULL */
    struct connect_rate *connect_rate; /* NULL unless connect_rate_per_address is set */
    struct event *rate_sweep;          /* forgets refilled connect_rate buckets */
    /* The rules (core/hooks.h; set by the rules host, which owns them): `hooks` is NULL while no
     * rule is loaded, so core pays nothing then; `hooks_engine` stays set while an engine exists,
     * to free the per-client attrs a previous bundle made. */
    const struct hooks *hooks;
    const struct hooks *hooks_engine;
    void (*sys_rules)(void *arg); /* publishes the rules' $SYS figures (INTERFACES.md #2) */
    void *sys_rules_arg;
    struct rules_host *rules;     /* the engine's glue (cmd_serve.c owns it; core never uses it) */

    struct event *sys_timer;
    struct event *tick_timer; /* deadlines: connect timeout, keepalive, slow consumers */
    struct event *shutdown_check;
    uint64_t start_ms;
    uint64_t msg_bytes;       /* bytes held by live messages (memory_limit) */
    uint64_t fd_capacity;
    uint32_t match_gen;       /* per-publish stamp for de-duplicating overlapping matches */
    struct buf scratch;       /* encode scratch; contents valid only inside one call */
    struct buf mount;         /* topic scratch for listener mount points, likewise */
    bool shutting_down;
    struct broker_stats stats;
};

/* Monotonic milliseconds (coarse clock: cheap, ~4 ms resolution). */
uint64_t broker_now_ms(void);

/* Creates the broker for cfg (borrowed; must outlive the broker) on base. Opens listeners.
 * Returns NULL (after logging why) when a listener cannot be opened. */
struct broker *broker_new(struct config *cfg, struct event_base *base);
/* Graceful shutdown: v5 clients get DISCONNECT 0x8B, wills without delay and delayed wills are
 * published, then the loop is asked to exit. */
void broker_shutdown(struct broker *b);
void broker_free(struct broker *b);
/* SIGHUP: rebuilds every TLS listener's context from its certificate files; a listener whose new
 * files fail keeps serving with the old ones (logged). */
void broker_reload_tls(struct broker *b);

/* Publishes a message of the broker's own (e.g. $SYS) to subscribers: takes no reference from the
 * caller's point of view (the caller keeps its own). */
void broker_publish_own(struct broker *b, const char *topic, const void *payload, size_t len,
                        bool retain);

#endif
