/* Session state that survives a reconnect: subscriptions, the outbound inflight window and
 * queue, inbound QoS 2 packet ids, the will, session expiry, and acks held back for publishers
 * while this session's subscriber is congested (DESIGN.md's slow-subscriber policy).
 * Loop thread only. */
#ifndef TIDE_SESSION_H
#define TIDE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct config_listener;
struct conn;
struct event;
struct msg;

/* One message on its way to this session's client. */
struct delivery {
    struct msg *m;        /* holds a reference */
    uint8_t qos;          /* effective QoS for this subscriber */
    bool retain;          /* retain flag to send */
    uint8_t state;        /* DELIVERY_QUEUED, _WAIT_ACK (PUBACK/PUBREC), _WAIT_COMP */
    uint8_t flags;        /* DELIVERY_HOOKED, DELIVERY_ACL_EXEMPT */
    uint16_t packet_id;
    uint16_t sub_id_count;
    uint32_t sub_id;      /* when sub_id_count == 1 */
    uint32_t *sub_ids;    /* owned, when sub_id_count > 1 */
    char *share;          /* owned "$share/GROUP/FILTER" when delivered through a shared subscription */
};

enum { DELIVERY_QUEUED, DELIVERY_WAIT_ACK, DELIVERY_WAIT_COMP };

/* delivery.flags, and session_deliver's dflags:
 * HOOKED: the rules' on_deliver already ran (m is its frozen result: a resend carries the same
 * bytes, even across a reload); ACL_EXEMPT: a rule granted the subscription (on_subscribe true),
 * so the read ACL is not consulted; NO_RULES / RULES_WANT (dflags only): the router found no rule,
 * or a rule, wanting the topic, so a delivery sent at once does not look again (one that waits in
 * the queue does: when it goes out, the rules of that moment decide). */
#define DELIVERY_HOOKED 0x01
#define DELIVERY_ACL_EXEMPT 0x02
#define DELIVERY_NO_RULES 0x04
#define DELIVERY_RULES_WANT 0x08

/* In the subscription options the tree and session keep (never on the wire: bit 7 is reserved
 * in MQTT): the subscription was granted by a rule's `true`, exempt from the read ACL. */
#define SESSION_SUBOPT_RULE_GRANTED 0x80

/* A FIFO ring of deliveries. */
struct dqueue {
    struct delivery *v;
    uint32_t head, len, cap;
};

struct session_sub {
    char *filter;       /* as the client sent it, $share/ prefix included */
    char *actual;       /* what is in the tree when on_subscribe rewrote it ($share/ included),
                         * else NULL; UNSUBSCRIBE of `filter` removes it */
    uint8_t options;
    uint32_t sub_id;
};

/* An ack (PUBACK/PUBREC) owed to a publisher, held until every congested subscriber that got the
 * message has drained below its bound. */
struct held_ack {
    struct conn *publisher; /* NULL once the publisher's connection is gone */
    uint16_t packet_id;
    uint8_t type;           /* CODEC_PUBACK or CODEC_PUBREC */
    uint32_t blockers;      /* subscribers still congested */
};

/* Kept small: an idle client costs one session, one connection and a table slot. */
struct session {
    struct broker *b;
    struct conn *conn;       /* NULL while offline */
    const struct config_listener *lcfg; /* the listener of the last connection (its ACL) */
    char *username;          /* NULL for none */
    struct event *expiry_timer;
    struct msg *will;
    struct event *will_timer;
    struct session_sub *subs;
    struct dqueue inflight;  /* sent, waiting for acks, in send order */
    struct dqueue queue;     /* waiting for a send slot or for the client to come back */
    uint64_t queued_bytes;
    uint16_t *qos2_in;       /* inbound QoS 2 packet ids: PUBREC sent or held, PUBREL awaited */
    struct held_ack **waiters; /* acks waiting for this session to drain */
    void *rule_attrs;        /* the rules' per-client attrs from on_connect (hooks client_free) */
    uint32_t expiry_interval; /* seconds; UINT32_MAX: never */
    uint32_t will_delay;
    uint32_t sub_count, sub_cap;
    uint32_t qos2_in_count, qos2_in_cap;
    uint32_t waiter_count, waiter_cap;
    uint32_t match_gen;      /* router: de-duplication of overlapping matches */
    uint32_t match_slot;
    uint16_t next_packet_id;
    uint16_t client_id_len;
    uint8_t version;
    bool congested;
    char client_id[];        /* NUL-terminated, in the same allocation */
};

/* Finds the session of client_id, or NULL. */
struct session *session_find(struct broker *b, const char *client_id, size_t len);
/* Creates an empty session registered under client_id. */
struct session *session_new(struct broker *b, const char *client_id, size_t len);
/* Ends a session: removes its subscriptions, publishes its pending will, re-routes QoS 1
 * messages that came through shared subscriptions, releases held acks, frees it. */
void session_end(struct session *s);

/* Binds s to c (after CONNECT), cancelling expiry and will-delay timers; resends the inflight
 * window with DUP (and PUBREL for QoS 2 awaiting PUBCOMP) then pumps the queue. */
void session_attach(struct session *s, struct conn *c, bool resumed);
/* Unbinds s from its connection (which is closing). Publishes or delays the will if will is set,
 * releases acks held on s, starts the expiry timer or ends the session. */
void session_detach(struct session *s, bool publish_will);

/* Offers m to s: sends at once, queues, or drops (counted). Takes its own reference. Returns true if
 * s is congested, so a QoS 1/2 publisher's ack should wait for it (see session_hold_ack). dflags:
 * DELIVERY_* flags. The rules' on_deliver runs when the message goes out (now or from the queue). */
bool session_deliver(struct session *s, struct msg *m, uint8_t qos, bool retain,
                     const uint32_t *sub_ids, size_t sub_id_count, const char *share,
                     size_t share_len, uint8_t dflags);
/* Runs the rules' on_deliver for *m (a reference the caller owns) going to s: *m becomes what to
 * deliver, or is released and set to NULL when the rules withhold it; *qos is lowered if the rule
 * lowered it. share: the "$share/G/F" it comes through, or NULL. Only when b->hooks is set. */
bool session_deliver_hook(struct session *s, struct msg **m, uint8_t *qos, const char *share,
                          size_t share_len);
struct hooks_client;
/* The hooks' view of s's client; addr is a buffer of at least 46 bytes for its address. */
void session_hooks_client(const struct session *s, struct hooks_client *out, char *addr);
/* Frees attrs (a session's or connection's rule attrs) through the broker's engine. */
void session_free_attrs(struct broker *b, void **attrs);
/* The subscriber's current read permission on m (the ACL file of its listener, if any). */
bool session_may_read(const struct session *s, const struct msg *m);

/* Adds ha to the acks waiting for s to drain. */
void session_hold_ack(struct session *s, struct held_ack *ha);
/* Moves queued deliveries into the inflight window while the client can take them. */
void session_pump(struct session *s);

/* Client acks. Return TIDE_ENOTFOUND for an unknown packet id (v5: reason 0x92 where relevant). */
int session_puback(struct session *s, uint16_t packet_id);
int session_pubrec(struct session *s, uint16_t packet_id, uint8_t reason);
int session_pubcomp(struct session *s, uint16_t packet_id);

/* Subscriptions recorded on the session, keyed by the client's filter, and their routing entry in
 * the tree (one per session and tree filter, derived from every subscription mapping to it). Adds
 * or replaces; returns true if it replaced an existing one. actual (NULL: the same as filter) is
 * what the tree holds when a rule rewrote the subscription; a replaced one that was elsewhere in
 * the tree leaves that entry only if nothing else of s maps to it. */
bool session_sub_add(struct session *s, const char *filter, size_t len, uint8_t options,
                     uint32_t sub_id, const char *actual, size_t actual_len);
/* Removes; returns false if s had no such subscription. The tree entry stays while another
 * subscription of s maps to the same filter. */
bool session_sub_remove(struct session *s, const char *filter, size_t len);
/* Removes every subscription from s and from the tree. */
void session_sub_clear(struct session *s);

/* Inbound QoS 2 packet ids. */
bool session_qos2_has(const struct session *s, uint16_t packet_id);
void session_qos2_add(struct session *s, uint16_t packet_id);
bool session_qos2_remove(struct session *s, uint16_t packet_id);

/* Drops every queued and inflight delivery (clean start). */
void session_clear_messages(struct session *s);

/* Releases one blocker of ha; sends the ack when none remain and frees ha. */
void held_ack_release(struct held_ack *ha);

#endif
