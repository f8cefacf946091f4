/* A client connection: the socket, packet framing, keepalive and connect deadlines, batched
 * output with back-pressure, topic aliases, and deferred freeing. What survives a reconnect lives
 * in struct session, not here. An idle connection holds no buffers: input is read into the
 * broker's shared read buffer and only a partial packet is kept; the output buffer exists while
 * there is output. Loop thread only. */
#ifndef TIDE_CONN_H
#define TIDE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct config_listener;
struct event;
struct evbuffer;
struct held_ack;
struct msg;
struct session;
struct sockaddr;
struct transport;
struct hooks_tls;

/* NEW: before CONNECT; AUTH: CONNECT received, its password being checked off the loop (reading
 * paused); ACTIVE: CONNACK sent; CLOSING: on its way out. */
enum conn_state { CONN_NEW, CONN_AUTH, CONN_ACTIVE, CONN_CLOSING };

struct alias_out {
    char *topic; /* owned copy, NULL when the slot is free */
    size_t len;
};

/* Kept compact (fields grouped by size): an idle client costs this, its read event (stored
 * right after it, see conn_read_event) and its session. */
struct conn {
    struct broker *b;
    const struct config_listener *lcfg;
    struct session *s;          /* NULL until CONNECT succeeds */
    struct event *wev;          /* write event, created when a write first blocks */
    struct evbuffer *out;       /* pending output, NULL when there is none */
    struct transport *tr;       /* TLS / WebSocket layers (transport.h); NULL: plain TCP */
    uint8_t *in;                /* bytes of a partial packet carried between reads, or NULL */
    char **alias_in;            /* inbound topic aliases, index 1..alias_in_max */
    struct alias_out *alias_out;/* outbound aliases, index 1..alias_out_max */
    struct held_ack **held;     /* acks owed to this publisher and held back */
    void *auth_job;             /* the password check in flight (state AUTH), owned by auth.c */
    uint8_t *pending_connect;   /* the CONNECT packet waiting for that check (owned) */
    void *rule_attrs;           /* on_connect's attrs until the session takes them (owned) */
    struct conn *next, *prev;   /* broker's list of connections */
    struct conn *reap_next;
    struct conn *flush_next;    /* broker's list of connections with output to write */

    /* while open: when a packet last arrived (keepalive; before CONNECT: the accept time);
     * once closing: when conn_close ran (the flush deadline counts from it) */
    uint64_t last_rx_ms;
    uint64_t last_progress_ms;  /* output drained or an ack received */

    int fd;
    uint32_t in_len, in_cap;
    uint32_t pending_connect_len;
    uint32_t max_packet_in;     /* largest packet we accept */
    uint32_t max_packet_out;    /* the client's Maximum Packet Size (0: protocol max) */
    uint32_t held_qos1;         /* QoS 1 PUBACKs held back (count toward receive_max) */
    uint32_t held_count, held_cap;

    uint16_t port;              /* the client's source port */
    uint16_t keepalive;         /* seconds, as agreed */
    uint16_t send_quota;        /* the client's Receive Maximum, capped by max_inflight_messages */
    uint16_t receive_max;       /* what we told the client (v5) */
    uint16_t alias_in_max;
    uint16_t alias_out_max, alias_out_next;

    uint8_t state;              /* enum conn_state */
    uint8_t version;            /* MQTT_V31/V311/V5; 0 before CONNECT */
    uint8_t family;             /* AF_INET or AF_INET6 */
    uint8_t addr[16];           /* the client's address (conn_addr formats it) */
    bool request_problem_info;
    bool password_ok;           /* the password check passed: proto_connect skips it */
    bool will_on_close;         /* publish the will when this connection ends */
    bool flush_queued, reap_queued;
    bool peer_closed;           /* read saw EOF or an error: nothing more to wait for */
    bool kq_watch;              /* bytes may sit in the kernel's send queue (slow consumers) */
    bool read_wants_write;      /* the transport's read waits for the socket to be writable */
    bool write_wants_read;      /* the transport's write waits for the socket to be readable */
    uint32_t kq_last;           /* the kernel send queue length seen at the last tick */
};

/* Formats c's address into buf (at least 46 bytes); returns buf. */
const char *conn_addr(const struct conn *c, char *buf);
/* The persistent read event stored right after c. */
struct event *conn_read_event(struct conn *c);
/* c's TLS peer for rules and logs: the client certificate's subject and issuer (one-line
 * RFC 2253 text, "" without a certificate) and whether it was verified against cafile/capath.
 * NULL when c is not over TLS (or the handshake has not finished). Owned by c's transport. */
const struct hooks_tls *conn_tls_peer(const struct conn *c);
/* The common name of c's client certificate when the TLS handshake verified it, else NULL
 * (use_identity_as_username). Owned by c's transport. */
const char *conn_tls_identity(const struct conn *c);

/* Takes ownership of fd (a connected socket). Returns the new connection, or NULL if it was refused
 * (and closed) because of a connection limit. */
struct conn *conn_new(struct broker *b, const struct config_listener *lcfg, int fd,
                      const struct sockaddr *addr, int addrlen);

/* Closes c: v5 with reason >= 0x80 after CONNACK sends DISCONNECT(reason) first; stops reading;
 * detaches the session (wills, session expiry); frees c at the end of the loop iteration. `why` is
 * a static string for the log. Safe to call twice. */
void conn_close(struct conn *c, uint8_t reason, const char *why);
static inline bool conn_is_closing(const struct conn *c)
{
    return c->state == CONN_CLOSING;
}

/* Appends the bytes of an encoded packet to c's output. */
void conn_send(struct conn *c, const void *p, size_t len);
/* Bytes waiting in c's output buffer. */
size_t conn_output_pending(const struct conn *c);
/* True when c's output is above its bound (QoS 0 deliveries are dropped, others wait). */
bool conn_output_congested(const struct conn *c);

/* Sends a PUBLISH of m to c with the given per-delivery head fields; uses an outbound topic alias
 * when the client allows them. Shares m's payload (taking a reference until the bytes are written).
 * Returns false without sending if the packet exceeds the client's Maximum Packet Size. */
bool conn_send_publish(struct conn *c, struct msg *m, uint8_t qos, bool retain, bool dup,
                       uint16_t packet_id, const uint32_t *sub_ids, size_t sub_id_count);

/* Sends (or, while held, does nothing) an ack: PUBACK/PUBREC for an inbound message. */
void conn_send_ack(struct conn *c, uint8_t type, uint16_t packet_id, uint8_t reason);

/* Frees the connections closed during this loop iteration (the reaper event). */
void conn_reap(struct broker *b);
/* Teardown only: closes and frees every connection at once, flushed or not. */
void conn_destroy_all(struct broker *b);

/* After state AUTH: handles the bytes that arrived behind the CONNECT while it was checked. */
void conn_resume(struct conn *c);

/* Sets up what CONNECT negotiated (keepalive clock, topic alias tables). */
void conn_start_keepalive(struct conn *c);

/* Writes the output of every connection that got some during this loop iteration (the flusher
 * event: one write per connection per wake-up). */
void conn_flush_all(struct broker *b);

/* The periodic duty: connect timeouts, keepalive, flush deadlines of closing connections, slow
 * consumers, and freeing idle output buffers. */
void conn_check_timeouts(struct broker *b, uint64_t now);

#endif
