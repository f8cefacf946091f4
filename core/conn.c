/* Client connections: a bufferevent per socket, framing (peek the fixed header, wait for the
 * whole packet within the size bound, decode from contiguous bytes, drain), keepalive and connect
 * timers, output with shared payload bytes, back-pressure bookkeeping and deferred freeing.
 * Nothing here frees a conn inside a callback chain: conn_close schedules, conn_reap frees. */
#include "conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "broker.h"
#include "codec.h"
#include "config.h"
#include "log.h"
#include "msg.h"
#include "proto.h"
#include "session.h"
#include "topic.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/err.h"

/* Output bound per connection: past it QoS 0 deliveries are dropped and QoS 1/2 wait in the
 * session queue. Writes resume (and the queue is pumped) below half of it. */
#define OUTPUT_HIGH (256 * 1024)
#define OUTPUT_LOW (OUTPUT_HIGH / 2)
/* Payloads at least this big enter the output by reference (shared among subscribers); smaller
 * ones are copied, which costs less than libevent's per-reference chain allocation. */
#define SHARE_PAYLOAD_MIN 1024
/* A closing connection gets this long to flush its last bytes. */
#define CLOSE_FLUSH_MS 2000
/* Outbound topic aliases we use at most, whatever the client allows. */
#define ALIAS_OUT_CAP 32

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);

/* Output drained by a write: the client is making progress (slow-consumer policy). */
static void on_output_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    if (info->n_deleted)
        ((struct conn *)arg)->last_progress_ms = broker_now_ms();
}

static void arm_timer(struct conn *c, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(c->timer, &tv);
}

static void format_addr(struct conn *c, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, c->addr, sizeof c->addr);
        c->port = ntohs(s6->sin6_port);
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, c->addr, sizeof c->addr);
        c->port = ntohs(s4->sin_port);
    } else {
        strcpy(c->addr, "?");
    }
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
    struct conn *c = xcalloc(1, sizeof *c);
    c->b = b;
    c->lcfg = lcfg;
    c->state = CONN_NEW;
    format_addr(c, addr);
    c->last_rx_ms = c->last_progress_ms = broker_now_ms();
    c->max_packet_in = cfg->max_connect_packet_size;

    if (cfg->set_tcp_nodelay && addr->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    evutil_make_socket_nonblocking(fd);
    c->bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev)
        panic("bufferevent_socket_new failed");
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    evbuffer_add_cb(bufferevent_get_output(c->bev), on_output_drained, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUTPUT_LOW, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->timer = evtimer_new(b->base, on_timer, c);
    arm_timer(c, cfg->connect_timeout_ms);

    c->next = b->conns;
    if (b->conns)
        b->conns->prev = c;
    b->conns = c;
    b->conn_count++;
    return c;
}

void conn_send(struct conn *c, const void *p, size_t len)
{
    evbuffer_add(bufferevent_get_output(c->bev), p, len);
    c->b->stats.bytes_sent += len;
}

size_t conn_output_pending(const struct conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
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
        .topic = {(const uint8_t *)m->topic, m->topic_len},  /* mount point stripped below */
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
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add(out, sb->data, sb->len);
    if (m->payload_len >= SHARE_PAYLOAD_MIN)
        evbuffer_add_reference(out, m->payload, m->payload_len, release_payload, msg_retain(m));
    else if (m->payload_len)
        evbuffer_add(out, m->payload, m->payload_len);
    b->stats.bytes_sent += sb->len + m->payload_len;
    b->stats.msgs_sent++;
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

static void schedule_reap(struct conn *c)
{
    if (c->reap_next || c->b->reap == c)
        return;
    c->reap_next = c->b->reap;
    c->b->reap = c;
    event_active(c->b->reaper, EV_TIMEOUT, 0);
}

void conn_close(struct conn *c, uint8_t reason, const char *why)
{
    if (c->state == CONN_CLOSING)
        return;
    struct broker *b = c->b;
    enum conn_state was = c->state;
    c->state = CONN_CLOSING;
    c->close_reason = reason;
    c->close_why = why;
    if (was == CONN_ACTIVE && c->version == MQTT_V5 && reason >= 0x80) {
        struct buf *sb = &b->scratch;
        buf_reset(sb);
        codec_encode_disconnect(sb, MQTT_V5, reason, NULL);
        evbuffer_add(bufferevent_get_output(c->bev), sb->data, sb->len);
    }
    bufferevent_disable(c->bev, EV_READ);
    if (was == CONN_ACTIVE)
        b->connected_count--;
    if (b->cfg->connection_messages && was == CONN_ACTIVE)
        log_notice("conn", "client disconnected client=%s addr=%s reason=%s",
                   c->s ? c->s->client_id : "?", c->addr, why ? why : "normal");
    else
        log_info("conn", "connection closed addr=%s port=%u reason=%s", c->addr, c->port,
                 why ? why : "normal");
    for (size_t i = 0; i < c->held_count; i++)
        c->held[i]->publisher = NULL;
    c->held_count = 0;
    if (c->s) {
        struct session *s = c->s;
        c->s = NULL;
        session_detach(s, c->will_on_close);
    }
    evtimer_del(c->timer);
    if (conn_output_pending(c) == 0) {
        schedule_reap(c);
    } else {
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        arm_timer(c, CLOSE_FLUSH_MS);
    }
}

static void conn_free(struct conn *c)
{
    struct broker *b = c->b;
    if (c->prev)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    b->conn_count--;
    bufferevent_free(c->bev);
    event_free(c->timer);
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
        c->reap_next = NULL;
        conn_free(c);
    }
}

void conn_destroy_all(struct broker *b)
{
    conn_reap(b);
    while (b->conns) {
        struct conn *c = b->conns;
        conn_close(c, 0, "exit");
        if (c->reap_next || b->reap == c)
            conn_reap(b);
        else
            conn_free(c);
    }
}

void conn_start_keepalive(struct conn *c)
{
    evtimer_del(c->timer);
    c->last_rx_ms = broker_now_ms();
    if (c->keepalive)
        arm_timer(c, (uint64_t)c->keepalive * 1500);
    if (c->alias_out_max > ALIAS_OUT_CAP)
        c->alias_out_max = ALIAS_OUT_CAP;
    if (c->alias_out_max) {
        c->alias_out = xcalloc((size_t)c->alias_out_max + 1, sizeof *c->alias_out);
        c->alias_out_next = 1;
    }
    if (c->alias_in_max)
        c->alias_in = xcalloc((size_t)c->alias_in_max + 1, sizeof *c->alias_in);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    struct broker *b = c->b;
    if (c->state == CONN_CLOSING) {
        schedule_reap(c); /* flush took too long */
        return;
    }
    if (c->state == CONN_NEW) {
        b->stats.closed_connect_timeout++;
        conn_close(c, 0, "connect timeout");
        return;
    }
    uint64_t limit = (uint64_t)c->keepalive * 1500, idle = broker_now_ms() - c->last_rx_ms;
    if (idle >= limit) {
        /* [MQTT-3.1.2-24] nothing received for 1.5 x keepalive */
        b->stats.closed_keepalive++;
        c->will_on_close = true;
        conn_close(c, 0x8D, "keepalive timeout");
        return;
    }
    arm_timer(c, limit - idle);
}

/* Decodes and handles every whole packet in the input. */
static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct broker *b = c->b;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (c->state != CONN_CLOSING) {
        size_t avail = evbuffer_get_length(in);
        if (avail < 2)
            return;
        uint8_t hdr[5], first;
        uint32_t remaining;
        size_t hlen, n = evbuffer_copyout(in, hdr, avail < 5 ? avail : 5);
        int rc = codec_parse_fixed_header(hdr, n, &first, &remaining, &hlen);
        if (rc == TIDE_EPARTIAL)
            return;
        if (rc < 0) {
            b->stats.closed_protocol_error++;
            c->will_on_close = true;
            conn_close(c, proto_reason(rc), "malformed remaining length");
            return;
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
            return;
        }
        if (avail < total)
            return;
        uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)total);
        c->last_rx_ms = broker_now_ms();
        b->stats.bytes_received += total;
        uint8_t type = first >> 4;
        struct codec_packet pkt;
        if (c->state == CONN_NEW && type != CODEC_CONNECT) {
            /* [MQTT-3.1.0-1] the first packet must be CONNECT */
            evbuffer_drain(in, total);
            conn_close(c, 0, "packet before CONNECT");
            return;
        }
        rc = codec_decode(c->version, first, p + hlen, remaining, &pkt);
        if (rc == 0) {
            rc = proto_handle(c, &pkt);
        } else if (type == CODEC_CONNECT && c->state == CONN_NEW) {
            proto_connect_refuse(c, pkt.u.connect.version, rc);
            rc = 0; /* already answered and closed */
        }
        evbuffer_drain(in, total);
        if (rc < 0 && c->state != CONN_CLOSING) {
            b->stats.closed_protocol_error++;
            c->will_on_close = true;
            conn_close(c, proto_reason(rc), tide_strerror(rc));
        }
    }
}

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (c->state == CONN_CLOSING) {
        if (conn_output_pending(c) == 0)
            schedule_reap(c);
        return;
    }
    c->last_progress_ms = broker_now_ms();
    if (c->s)
        session_pump(c->s);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (c->state == CONN_CLOSING) {
        schedule_reap(c);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        c->will_on_close = true;
        conn_close(c, 0, (what & BEV_EVENT_EOF) ? "closed by peer" : "socket error");
    }
}
