/* Client connections: non-blocking sockets on libevent events, framing (peek the fixed header,
 * wait for the whole packet within the size bound, decode from contiguous bytes), batched output
 * (one write per connection per loop iteration, payloads shared by reference), deadlines checked
 * by the broker's tick, back-pressure bookkeeping and deferred freeing. Nothing here frees a conn
 * inside a callback chain: conn_close schedules, conn_reap frees. */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "broker.h"
#include "codec.h"
#include "auth.h"
#include "config.h"
#include "hooks.h"
#include "listener.h"
#include "log.h"
#include "msg.h"
#include "proto.h"
#include "session.h"
#include "tls.h"
#include "topic.h"
#include "transport.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/err.h"

/* Output bound per connection: past it QoS 0 deliveries are dropped and QoS 1/2 wait in the
 * session queue; the queue is pumped again once the output is below half of it. */
#define OUTPUT_HIGH (256 * 1024)
#define OUTPUT_LOW (OUTPUT_HIGH / 2)
/* Payloads at least this big enter the output by reference (shared among subscribers); smaller
 * ones are copied, which costs less than libevent's per-reference chain allocation. */
#define SHARE_PAYLOAD_MIN 1024
/* A closing connection gets this long to flush its last bytes. */
#define CLOSE_FLUSH_MS 2000
/* Outbound topic aliases we use at most, whatever the client allows. */
#define ALIAS_OUT_CAP 32
/* Reads per wake-up before yielding to other connections (fairness). */
#define READS_PER_WAKE 4
/* Smallest allocation for a carried partial packet. */
#define CARRY_MIN 256
/* A carried partial packet up to this size is copied into the shared read buffer and read
 * behind, so a busy connection takes a full buffer per read (reading into the partial packet's
 * own small buffer took two or three packets per system call, and for TLS as many wake-ups);
 * a larger one is gathered in its own buffer, sized for the packet. */
#define CARRY_VIA_RBUF_MAX 4096

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);

static void store_addr(struct conn *c, const struct sockaddr *sa)
{
    c->family = (uint8_t)sa->sa_family;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        memcpy(c->addr, &s6->sin6_addr, 16);
        c->port = ntohs(s6->sin6_port);
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memcpy(c->addr, &s4->sin_addr, 4);
        c->port = ntohs(s4->sin_port);
    }
}

const char *conn_addr(const struct conn *c, char *buf)
{
    if (c->family == AF_INET) { /* by hand: rules ask for it per message, and glibc's
                                 * inet_ntop formats IPv4 with sprintf (~0.2 us) */
        char *p = buf;
        for (int i = 0; i < 4; i++) {
            unsigned v = c->addr[i];
            if (v >= 100)
                *p++ = (char)('0' + v / 100);
            if (v >= 10)
                *p++ = (char)('0' + v / 10 % 10);
            *p++ = (char)('0' + v % 10);
            *p++ = i < 3 ? '.' : '\0';
        }
        return buf;
    }
    if (!inet_ntop(c->family, c->addr, buf, 46))
        strcpy(buf, "?");
    return buf;
}

/* The read event is allocated with the conn, at the next 16-byte boundary after it. */
#define CONN_HEAD ((sizeof(struct conn) + 15) & ~(size_t)15)

struct event *conn_read_event(struct conn *c)
{
    return (struct event *)((char *)c + CONN_HEAD);
}

const struct hooks_tls *conn_tls_peer(const struct conn *c)
{
    return c->tr ? tls_peer(c->tr) : NULL;
}

const char *conn_tls_identity(const struct conn *c)
{
    return c->tr ? tls_peer_identity(c->tr) : NULL;
}

static size_t listener_conn_count(const struct broker *b, const struct config_listener *l)
{
    size_t n = 0;
    for (const struct conn *c = b->conns; c; c = c->next)
        n += c->lcfg == l && c->state != CONN_CLOSING;
    return n;
}

struct conn *conn_new(struct broker *b, const struct config_listener *lcfg, int fd,
                      const struct sockaddr *addr, int addrlen)
{
    (void)addrlen;
    const struct config *cfg = b->cfg;
    if ((cfg->max_connections && b->conn_count >= cfg->max_connections) ||
        (lcfg->max_connections && listener_conn_count(b, lcfg) >= lcfg->max_connections)) {
        b->stats.refused_connections++;
        log_notice("conn", "refused connection: connection limit reached listener=%u",
                   lcfg->port);
        evutil_closesocket(fd);
        return NULL;
    }
    /* the read event lives in the same allocation: one allocation per idle connection */
    struct conn *c = xcalloc(1, CONN_HEAD + event_get_struct_event_size());
    c->b = b;
    c->lcfg = lcfg;
    c->fd = fd;
    c->state = CONN_NEW;
    store_addr(c, addr);
    c->last_rx_ms = c->last_progress_ms = broker_now_ms();
    c->max_packet_in = cfg->max_connect_packet_size;
    char a[46];
    if (listener_transport_new(b, lcfg, fd, conn_addr(c, a), &c->tr) < 0) {
        log_warn("conn", "refused connection: cannot set up its transport listener=%u",
                 lcfg->port);
        evutil_closesocket(fd);
        free(c);
        return NULL;
    }

    if (cfg->set_tcp_nodelay && addr->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    evutil_make_socket_nonblocking(fd);
    event_assign(conn_read_event(c), b->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    event_add(conn_read_event(c), NULL);

    c->next = b->conns;
    if (b->conns)
        b->conns->prev = c;
    b->conns = c;
    b->conn_count++;
    return c;
}

/* --- output --- */

static void queue_flush(struct conn *c)
{
    if (c->flush_queued)
        return;
    c->flush_queued = true;
    c->flush_next = c->b->flush;
    c->b->flush = c;
    event_active(c->b->flusher, EV_TIMEOUT, 0);
}

static struct evbuffer *output(struct conn *c)
{
    if (!c->out)
        c->out = evbuffer_new();
    queue_flush(c);
    return c->out;
}

void conn_send(struct conn *c, const void *p, size_t len)
{
    evbuffer_add(output(c), p, len);
    c->b->stats.packets_sent++;
    c->b->stats.bytes_sent += len;
}

size_t conn_output_pending(const struct conn *c)
{
    size_t n = c->out ? evbuffer_get_length(c->out) : 0;
    return c->tr ? n + transport_pending_out(c->tr) : n;
}

bool conn_output_congested(const struct conn *c)
{
    return conn_output_pending(c) >= OUTPUT_HIGH;
}

static void release_payload(const void *data, size_t len, void *extra)
{
    (void)data;
    (void)len;
    struct msg *m = extra;
    msg_release(&m);
}

/* Picks the outbound alias for topic t: *alias set, and returns true when the topic must still be
 * sent (a new or replaced mapping). */
static bool pick_alias(struct conn *c, const char *t, size_t len, uint16_t *alias)
{
    for (uint16_t i = 1; i <= c->alias_out_max; i++) {
        struct alias_out *a = &c->alias_out[i];
        if (a->topic && a->len == len && memcmp(a->topic, t, len) == 0) {
            *alias = i;
            return false;
        }
    }
    uint16_t i = c->alias_out_next;
    c->alias_out_next = (uint16_t)(i % c->alias_out_max + 1);
    free(c->alias_out[i].topic);
    c->alias_out[i].topic = xstrndup(t, len);
    c->alias_out[i].len = len;
    *alias = i;
    return true;
}

bool conn_send_publish(struct conn *c, struct msg *m, uint8_t qos, bool retain, bool dup,
                       uint16_t packet_id, const uint32_t *sub_ids, size_t sub_id_count)
{
    struct broker *b = c->b;
    uint64_t now = broker_now_ms();
    struct codec_publish_head h = {
        .version = c->version,
        .qos = qos,
        .dup = dup,
        .retain = retain,
        .topic = {(const uint8_t *)m->topic, m->topic_len},
        .packet_id = packet_id,
        .has_expiry = m->has_expiry,
        .message_expiry = m->has_expiry ? msg_remaining_expiry(m, now) : 0,
        .sub_ids = sub_ids,
        .sub_id_count = c->version == MQTT_V5 ? sub_id_count : 0,
        .shared_props = {m->props, c->version == MQTT_V5 ? m->props_len : 0},
        .payload_len = m->payload_len,
    };
    if (c->lcfg->mount_point) {
        size_t strip = topic_mounted_prefix(c->lcfg->mount_point, m->topic, m->topic_len);
        h.topic.p += strip;
        h.topic.len -= strip;
    }
    if (c->max_packet_out && codec_publish_size(&h) > c->max_packet_out) {
        /* [MQTT-3.1.2-25] too big for this client: skipped as if sent */
        b->stats.dropped_too_big++;
        return false;
    }
    if (c->alias_out_max && c->version == MQTT_V5) {
        uint16_t alias;
        if (!pick_alias(c, (const char *)h.topic.p, h.topic.len, &alias))
            h.topic.len = 0;
        h.topic_alias = alias;
    }
    struct buf *sb = &b->scratch;
    buf_reset(sb);
    codec_encode_publish_head(sb, &h);
    struct evbuffer *out = output(c);
    evbuffer_add(out, sb->data, sb->len);
    if (m->payload_len >= SHARE_PAYLOAD_MIN)
        evbuffer_add_reference(out, m->payload, m->payload_len, release_payload, msg_retain(m));
    else if (m->payload_len)
        evbuffer_add(out, m->payload, m->payload_len);
    b->stats.bytes_sent += sb->len + m->payload_len;
    b->stats.msgs_sent++;
    b->stats.packets_sent++;
    b->stats.pub_sent_qos[qos]++;
    return true;
}

void conn_send_ack(struct conn *c, uint8_t type, uint16_t packet_id, uint8_t reason)
{
    struct buf *sb = &c->b->scratch;
    buf_reset(sb);
    codec_encode_ack(sb, c->version, type, packet_id, reason, NULL);
    conn_send(c, sb->data, sb->len);
}

/* --- closing and freeing --- */

static void schedule_reap(struct conn *c)
{
    if (c->reap_queued)
        return;
    c->reap_queued = true;
    c->reap_next = c->b->reap;
    c->b->reap = c;
    event_active(c->b->reaper, EV_TIMEOUT, 0);
}

/* Once a closing connection's output is written: free it if the peer is gone, else half-close
 * and wait (reading and discarding) for the peer's EOF or the flush deadline. Closing a socket
 * with unread input makes the kernel send a reset, which can destroy a DISCONNECT the client
 * has not read yet. */
static void finish_close(struct conn *c)
{
    if (c->peer_closed) {
        schedule_reap(c);
        return;
    }
    transport_shutdown(c->tr); /* TLS close_notify... before the socket's half-close */
    shutdown(c->fd, SHUT_WR);
}

/* The snake-case reason on_disconnect gets (RULES-API) for conn_close's reason and text. */
static const char *disconnect_reason(uint8_t reason, const char *why)
{
    static const struct {
        const char *why, *name;
    } names[] = {
        {"client disconnected", "normal"},       {"disconnect with will", "will_requested"},
        {"keepalive timeout", "keepalive_timeout"}, {"session taken over", "session_taken_over"},
        {"server shutdown", "server_shutdown"},  {"exit", "server_shutdown"},
        {"closed by peer", "socket_error"},      {"socket error", "socket_error"},
        {"slow consumer", "kicked"},
    };
    for (size_t i = 0; why && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(why, names[i].why) == 0)
            return names[i].name;
    if (reason == 0x8D)
        return "keepalive_timeout";
    if (reason == 0x8E)
        return "session_taken_over";
    if (reason == 0x8B)
        return "server_shutdown";
    return "protocol_error";
}

void conn_close(struct conn *c, uint8_t reason, const char *why)
{
    if (c->state == CONN_CLOSING)
        return;
    struct broker *b = c->b;
    enum conn_state was = (enum conn_state)c->state;
    c->state = CONN_CLOSING;
    c->last_rx_ms = broker_now_ms(); /* from now on: the start of the flush deadline */
    if (was == CONN_ACTIVE && c->version == MQTT_V5 && reason >= 0x80) {
        struct buf *sb = &b->scratch;
        buf_reset(sb);
        codec_encode_disconnect(sb, MQTT_V5, reason, NULL);
        conn_send(c, sb->data, sb->len);
    }
    auth_cancel(b, c);
    free(c->pending_connect);
    c->pending_connect = NULL;
    free(c->in); /* reading goes on only to discard (see finish_close) */
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    if (was == CONN_ACTIVE)
        b->connected_count--;
    char a[46];
    if (b->cfg->connection_messages && was == CONN_ACTIVE)
        log_notice("conn", "client disconnected client=%s addr=%s reason=%s",
                   c->s ? c->s->client_id : "?", conn_addr(c, a), why ? why : "normal");
    else
        log_info("conn", "connection closed addr=%s port=%u reason=%s", conn_addr(c, a),
                 c->port, why ? why : "normal");
    for (size_t i = 0; i < c->held_count; i++)
        c->held[i]->publisher = NULL;
    c->held_count = 0;
    if (c->s) {
        struct session *s = c->s;
        const struct hooks *h = b->hooks;
        if (h && was == CONN_ACTIVE) { /* never for a refused connection */
            struct hooks_client hc;
            session_hooks_client(s, &hc, a);
            h->on_disconnect(h->ctx, &hc, disconnect_reason(reason, why));
        }
        c->s = NULL;
        session_detach(s, c->will_on_close);
    }
    if (conn_output_pending(c) == 0)
        finish_close(c); /* else the flush finishes first (or the deadline passes) */
}

static void conn_free(struct conn *c)
{
    struct broker *b = c->b;
    session_free_attrs(b, &c->rule_attrs);
    if (c->prev)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    b->conn_count--;
    if (c->flush_queued) {
        struct conn **pp = &b->flush;
        while (*pp != c)
            pp = &(*pp)->flush_next;
        *pp = c->flush_next;
    }
    event_del(conn_read_event(c));
    if (c->wev)
        event_free(c->wev);
    if (c->out)
        evbuffer_free(c->out); /* releases shared payload references */
    transport_free(c->tr);
    evutil_closesocket(c->fd);
    free(c->in);
    if (c->alias_in) {
        for (uint16_t i = 1; i <= c->alias_in_max; i++)
            free(c->alias_in[i]);
        free(c->alias_in);
    }
    if (c->alias_out) {
        for (uint16_t i = 1; i <= c->alias_out_max; i++)
            free(c->alias_out[i].topic);
        free(c->alias_out);
    }
    free(c->held);
    free(c);
}

void conn_reap(struct broker *b)
{
    while (b->reap) {
        struct conn *c = b->reap;
        b->reap = c->reap_next;
        conn_free(c);
    }
}

void conn_destroy_all(struct broker *b)
{
    conn_reap(b);
    while (b->conns) {
        struct conn *c = b->conns;
        conn_close(c, 0, "exit");
        if (c->reap_queued)
            conn_reap(b);
        else
            conn_free(c);
    }
}

/* --- writing --- */

/* Arms the one-shot write event (created when first needed). */
static void wait_writable(struct conn *c)
{
    if (!c->wev)
        c->wev = event_new(c->b->base, c->fd, EV_WRITE, on_writable, c);
    event_add(c->wev, NULL);
}

/* Writes what the socket takes now. Returns false if the connection was closed. */
static bool write_out(struct conn *c)
{
    if (!c->out)
        return true;
    bool wait_read = false;
    while (conn_output_pending(c)) {
        const char *why = NULL;
        ssize_t n = transport_write(c->tr, c->fd, c->out, &why);
        if (n > 0) {
            c->last_progress_ms = broker_now_ms();
            c->kq_watch = true;
            continue;
        }
        if (n == TRANSPORT_WANT_WRITE)
            break;
        if (n == TRANSPORT_WANT_READ) {
            /* a transport's handshake: on_readable retries the write */
            wait_read = c->write_wants_read = true;
            break;
        }
        /* the peer is gone: what was waiting cannot be delivered */
        evbuffer_drain(c->out, evbuffer_get_length(c->out));
        c->peer_closed = true;
        if (c->state == CONN_CLOSING) {
            schedule_reap(c);
        } else {
            c->will_on_close = true;
            conn_close(c, 0, why ? why : "socket error");
        }
        return false;
    }
    size_t left = conn_output_pending(c);
    if (left) {
        if (!wait_read)
            wait_writable(c);
    } else if (c->state == CONN_CLOSING) {
        finish_close(c);
        return false;
    }
    /* room again: let queued deliveries in */
    if (c->s && c->state == CONN_ACTIVE && c->s->queue.len && left < OUTPUT_LOW)
        session_pump(c->s);
    return true;
}

void conn_flush_all(struct broker *b)
{
    /* write_out may queue more output (a pump), which re-queues that conn: loop until empty */
    while (b->flush) {
        struct conn *c = b->flush;
        b->flush = c->flush_next;
        c->flush_queued = false;
        if (c->wev && event_pending(c->wev, EV_WRITE, NULL))
            continue; /* the socket is full: on_writable resumes */
        write_out(c);
    }
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct conn *c = arg;
    bool retry_read = c->read_wants_write;
    c->read_wants_write = false;
    /* write first: a read that waited for writability may be waiting for its own answers
     * (WebSocket pongs) to leave */
    if (!write_out(c) || !retry_read)
        return;
    /* the transport's read was waiting for this (a handshake reply did not fit) */
    event_add(conn_read_event(c), NULL);
    on_readable(fd, EV_READ, c);
}

/* A transport's read needs the socket writable first: stop watching for input meanwhile (the
 * socket may stay readable, and retrying the read would only spin) and retry the read from
 * on_writable. */
static void read_when_writable(struct conn *c)
{
    c->read_wants_write = true;
    event_del(conn_read_event(c));
    wait_writable(c);
}

/* --- reading --- */

/* Handles every whole packet in p[0..len); returns the bytes consumed. Sets *need to the size of
 * the incomplete packet at the end when its header is known (else 0). */
static size_t process(struct conn *c, uint8_t *p, size_t len, size_t *need)
{
    struct broker *b = c->b;
    size_t off = 0;
    *need = 0;
    while ((c->state == CONN_NEW || c->state == CONN_ACTIVE) && len - off >= 2) {
        uint8_t first;
        uint32_t remaining;
        size_t hlen;
        int rc = codec_parse_fixed_header(p + off, len - off, &first, &remaining, &hlen);
        if (rc == TIDE_EPARTIAL)
            break;
        if (rc < 0) {
            b->stats.closed_protocol_error++;
            c->will_on_close = true;
            conn_close(c, proto_reason(rc), "malformed remaining length");
            break;
        }
        size_t total = hlen + remaining;
        if (total > c->max_packet_in) {
            if (c->state == CONN_NEW) {
                b->stats.refused_connect_too_big++;
                conn_close(c, 0, "packet before CONNECT over max_connect_packet_size");
            } else {
                b->stats.refused_packet_too_big++;
                c->will_on_close = true;
                conn_close(c, 0x95, "packet too large");
            }
            break;
        }
        if (len - off < total) {
            *need = total;
            break;
        }
        uint8_t *pkt_bytes = p + off;
        off += total;
        c->last_rx_ms = broker_now_ms();
        b->stats.packets_received++;
        uint8_t type = first >> 4;
        if (c->state == CONN_NEW && type != CODEC_CONNECT) {
            conn_close(c, 0, "packet before CONNECT"); /* [MQTT-3.1.0-1] */
            break;
        }
        struct codec_packet pkt;
        rc = codec_decode(c->version, first, pkt_bytes + hlen, remaining, &pkt);
        if (rc == 0) {
            rc = proto_handle(c, &pkt);
            if (c->state == CONN_AUTH) {
                /* the password is checked off the loop: keep the CONNECT to finish it then */
                c->pending_connect = xmemdup(pkt_bytes, total);
                c->pending_connect_len = (uint32_t)total;
                break;
            }
        } else if (type == CODEC_CONNECT && c->state == CONN_NEW) {
            proto_connect_refuse(c, pkt.u.connect.version, rc);
            rc = 0; /* answered and closed */
        }
        if (rc < 0 && c->state != CONN_CLOSING) {
            b->stats.closed_protocol_error++;
            c->will_on_close = true;
            conn_close(c, proto_reason(rc), tide_strerror(rc));
        }
    }
    return off;
}

/* Keeps the unprocessed tail p[0..len) of a read into the shared buffer, in a buffer of the
 * connection's own sized for the packet it starts (need, when its header was complete). */
static void carry(struct conn *c, const uint8_t *p, size_t len, size_t need)
{
    size_t cap = need > len ? need : len;
    if (cap < CARRY_MIN)
        cap = CARRY_MIN;
    c->in = xmalloc(cap);
    memcpy(c->in, p, len);
    c->in_len = (uint32_t)len;
    c->in_cap = (uint32_t)cap;
}

/* Lets a transport that may hold bytes the socket will not announce again be read again soon
 * (transport.h, "Buffering contract"); a plain socket stays readable by itself. */
static void read_again(struct conn *c)
{
    if (c->tr)
        event_active(conn_read_event(c), EV_READ, 0);
}

/* A transport's read may produce output of its own (a WebSocket pong or close frame, its HTTP
 * handshake answer): have it written with this iteration's flush. */
static void flush_transport_output(struct conn *c)
{
    if (c->tr && transport_pending_out(c->tr))
        output(c);
}

/* A transport read that returned n <= 0 and must wait: arranges the wait it asked for and returns
 * true; false for the end of the stream or an error. */
static bool read_waits(struct conn *c, ssize_t n)
{
    if (n == TRANSPORT_WANT_READ) {
        if (transport_has_input(c->tr))
            read_again(c); /* stopped at a layer's own bound, not drained */
        return true;
    }
    if (n == TRANSPORT_WANT_WRITE) {
        read_when_writable(c);
        return true;
    }
    return false;
}

/* A closing connection reads only to see the peer's EOF; what it reads is thrown away. It reads
 * the raw socket (a NULL transport), past TLS or WebSocket framing: those layers said goodbye in
 * finish_close and have nothing more to decode. */
static void discard_input(struct conn *c)
{
    for (int round = 0; round < READS_PER_WAKE; round++) {
        const char *why;
        ssize_t n = transport_read(NULL, c->fd, c->b->rbuf, BROKER_RBUF_SIZE, &why);
        if (n > 0)
            continue;
        if (n == TRANSPORT_WANT_READ)
            return;
        c->peer_closed = true;
        if (conn_output_pending(c) == 0)
            schedule_reap(c);
        return;
    }
}

/* While its password is checked a connection keeps reading, only to buffer what follows the
 * CONNECT (still bounded by max_connect_packet_size) and to notice the peer leaving, which
 * cancels the check. */
static void buffer_input(struct conn *c)
{
    uint32_t limit = c->b->cfg->max_connect_packet_size;
    for (;;) {
        if (c->in_len == c->in_cap) {
            if (c->in_cap >= limit) {
                c->b->stats.refused_connect_too_big++;
                conn_close(c, 0, "bytes before CONNACK over max_connect_packet_size");
                return;
            }
            c->in_cap = c->in_cap ? c->in_cap * 2 : CARRY_MIN;
            if (c->in_cap > limit)
                c->in_cap = limit;
            c->in = xrealloc(c->in, c->in_cap);
        }
        const char *why = NULL;
        ssize_t n = transport_read(c->tr, c->fd, c->in + c->in_len, c->in_cap - c->in_len, &why);
        flush_transport_output(c);
        if (n > 0) {
            c->in_len += (uint32_t)n;
            c->b->stats.bytes_received += (uint64_t)n;
            continue;
        }
        if (read_waits(c, n))
            return;
        c->peer_closed = true;
        conn_close(c, 0, n == 0 ? "closed by peer" : why);
        return;
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct conn *c = arg;
    struct broker *b = c->b;
    if (c->write_wants_read) {
        /* the transport's write was waiting for this */
        c->write_wants_read = false;
        if (!write_out(c))
            return;
    }
    if (c->state == CONN_CLOSING) {
        discard_input(c);
        return;
    }
    if (c->state == CONN_AUTH) {
        buffer_input(c);
        return;
    }
    for (int round = 0; round < READS_PER_WAKE && (c->state == CONN_NEW || c->state == CONN_ACTIVE);
         round++) {
        uint8_t *buf;
        size_t have, room;
        if (c->in_len > 0 && c->in_cap > CARRY_VIA_RBUF_MAX) {
            /* a large partial packet is waiting: read into its own buffer, growing it as needed */
            if (c->in_len == c->in_cap) {
                c->in_cap *= 2; /* header still incomplete; bounded by the size check */
                c->in = xrealloc(c->in, c->in_cap);
            }
            buf = c->in;
            have = c->in_len;
            room = c->in_cap - c->in_len;
        } else {
            /* nothing or a small partial packet waiting: the shared buffer, behind it (c->in keeps
             * its copy until a read succeeds) */
            buf = b->rbuf;
            have = c->in_len;
            if (have)
                memcpy(buf, c->in, have);
            room = BROKER_RBUF_SIZE - have;
        }
        const char *why = NULL;
        ssize_t n = transport_read(c->tr, fd, buf + have, room, &why);
        flush_transport_output(c);
        if (n == 0) {
            c->will_on_close = true;
            c->peer_closed = true;
            conn_close(c, 0, "closed by peer");
            return;
        }
        if (n < 0) {
            if (read_waits(c, n))
                return;
            c->will_on_close = true;
            c->peer_closed = true;
            conn_close(c, 0, why);
            return;
        }
        b->stats.bytes_received += (uint64_t)n;
        have += (size_t)n;
        if (buf == b->rbuf && c->in) {
            free(c->in); /* its bytes are at the start of the shared buffer now */
            c->in = NULL;
            c->in_len = c->in_cap = 0;
        }
        size_t need;
        size_t used = process(c, buf, have, &need);
        if (c->state == CONN_CLOSING)
            return;
        size_t left = have - used;
        if (left == 0) {
            free(c->in);
            c->in = NULL;
            c->in_len = c->in_cap = 0;
        } else if (buf == b->rbuf) {
            carry(c, buf + used, left, need);
        } else {
            memmove(c->in, c->in + used, left);
            c->in_len = (uint32_t)left;
            if (need > c->in_cap) {
                c->in = xrealloc(c->in, need);
                c->in_cap = (uint32_t)need;
            }
        }
        if ((size_t)n < room && !(c->tr && transport_has_input(c->tr)))
            return; /* the socket (and the transport) is drained */
        if (c->state == CONN_AUTH) {
            read_again(c); /* buffer_input takes what a transport still holds */
            return;
        }
    }
    if (c->state == CONN_NEW || c->state == CONN_ACTIVE)
        read_again(c); /* yielded for fairness */
}

void conn_resume(struct conn *c)
{
    if (c->state == CONN_CLOSING || !c->in_len)
        return;
    size_t need, used = process(c, c->in, c->in_len, &need);
    if (c->state == CONN_CLOSING)
        return;
    size_t left = c->in_len - used;
    memmove(c->in, c->in + used, left);
    c->in_len = (uint32_t)left;
    if (need > c->in_cap) {
        c->in = xrealloc(c->in, need);
        c->in_cap = (uint32_t)need;
    }
    if (!left) {
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
    }
}

/* --- deadlines --- */

void conn_start_keepalive(struct conn *c)
{
    c->last_rx_ms = broker_now_ms();
    if (c->alias_out_max > ALIAS_OUT_CAP)
        c->alias_out_max = ALIAS_OUT_CAP;
    if (c->alias_out_max) {
        c->alias_out = xcalloc((size_t)c->alias_out_max + 1, sizeof *c->alias_out);
        c->alias_out_next = 1;
    }
    if (c->alias_in_max)
        c->alias_in = xcalloc((size_t)c->alias_in_max + 1, sizeof *c->alias_in);
}

/* True while messages wait for c's client: in its queue, our output buffer, or the kernel's send
 * queue (on loopback the kernel takes megabytes). A shrinking kernel queue counts as progress. */
static bool waiting_output(struct conn *c, uint64_t now)
{
    if (c->s->queue.len || conn_output_pending(c))
        return true;
    if (!c->kq_watch)
        return false;
    int queued = 0;
    if (ioctl(c->fd, SIOCOUTQ, &queued) != 0 || queued <= 0) {
        c->kq_watch = false;
        return false;
    }
    if ((uint32_t)queued != c->kq_last) {
        c->kq_last = (uint32_t)queued;
        c->last_progress_ms = now;
    }
    return true;
}

void conn_check_timeouts(struct broker *b, uint64_t now)
{
    const struct config *cfg = b->cfg;
    for (struct conn *c = b->conns, *next; c; c = next) {
        next = c->next;
        switch (c->state) {
        case CONN_NEW:
        case CONN_AUTH:
            if (now - c->last_rx_ms >= cfg->connect_timeout_ms) {
                b->stats.closed_connect_timeout++;
                conn_close(c, 0, "connect timeout");
            }
            break;
        case CONN_ACTIVE:
            /* [MQTT-3.1.2-24] nothing received for 1.5 x keepalive */
            if (c->keepalive && now - c->last_rx_ms >= (uint64_t)c->keepalive * 1500) {
                b->stats.closed_keepalive++;
                c->will_on_close = true;
                conn_close(c, 0x8D, "keepalive timeout");
                break;
            }
            /* slow consumer: drains nothing and acks nothing while messages wait for it */
            if (c->s && waiting_output(c, now)) {
                if (cfg->slow_consumer_timeout_ms &&
                    now - c->last_progress_ms > cfg->slow_consumer_timeout_ms) {
                    b->stats.closed_slow_consumer++;
                    c->will_on_close = true;
                    conn_close(c, 0x97, "slow consumer");
                }
            } else {
                c->last_progress_ms = now;
                if (c->out && !c->flush_queued && evbuffer_get_length(c->out) == 0) {
                    evbuffer_free(c->out); /* idle connections hold no buffers */
                    c->out = NULL;
                }
                transport_idle(c->tr); /* nor do their TLS / WebSocket layers */
            }
            break;
        case CONN_CLOSING:
            if (!c->reap_queued && now - c->last_rx_ms >= CLOSE_FLUSH_MS)
                schedule_reap(c);
            break;
        }
    }
}
