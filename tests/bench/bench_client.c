/* One MQTT client connection of tidemq-bench: non-blocking connect, CONNECT/SUBSCRIBE, the QoS 1/2
 * handshakes on both sides, and the publisher's send loop. Reads go into one linear buffer per
 * connection and are decoded in place with core/codec; writes are batched in a struct buf and sent
 * with one send() per batch. The hot path (PUBLISH out, PUBLISH in, acks) never allocates: the
 * PUBLISH is encoded once into a template and patched per message. */
#include "bench.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "codec.h"
#include "util/alloc.h"
#include "util/err.h"

/* A publisher appends at most this much before sending; a QoS 0 publisher with no rate limit
 * then waits for the socket to be writable again, which is what "as fast as flow control allows"
 * means. */
#define OUT_BATCH (64 * 1024)
/* Subscribers read as much as the kernel has, so the bench measures the broker, not itself. */
#define IN_CAP_SUB (256 * 1024)
#define IN_CAP_PUB (16 * 1024)
#define IN_CAP_IDLE 256
/* Reads per wake-up before yielding to the other connections. */
#define READS_PER_WAKEUP 8

static void drop(struct bconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const struct codec_props no_props; /* all zero: no properties */

static void arm_write(struct bconn *c)
{
    if (!c->write_armed && c->ev_write) {
        event_add(c->ev_write, NULL);
        c->write_armed = true;
    }
}

/* Closes the socket and frees the events; the buffers stay until bconn_fini. */
static void teardown(struct bconn *c)
{
    if (c->ev_read) {
        event_free(c->ev_read);
        c->ev_read = NULL;
    }
    if (c->ev_write) {
        event_free(c->ev_write);
        c->ev_write = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->write_armed = false;
    c->out.len = 0;
    c->out_off = 0;
}

/* The connection failed (before it was ready) or was lost (after). Tells the run; the caller
 * must not use the socket afterwards. */
static void drop(struct bconn *c, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);

    bool was_ready = c->state == CS_READY;
    teardown(c);
    if (was_ready) {
        c->state = CS_LOST;
        bench_conn_lost(c->b, c, why);
    } else {
        c->state = CS_FAILED;
        bench_error(c->b, "%s %u: %s",
                    c->role == ROLE_PUB   ? "publisher"
                    : c->role == ROLE_SUB ? "subscriber"
                                          : "connection",
                    c->idx, why);
        bench_conn_resolved(c->b, c);
    }
}

void bconn_fail(struct bconn *c, const char *why)
{
    drop(c, "%s", why);
}

/* Sends what is buffered. On EAGAIN waits for EV_WRITE (on_write sends the rest). */
static int flush(struct bconn *c)
{
    if (c->fd < 0)
        return -1;
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            arm_write(c);
            return 0;
        }
        drop(c, "send: %s", n < 0 ? strerror(errno) : "wrote nothing");
        return -1;
    }
    c->out.len = 0;
    c->out_off = 0;
    return 0;
}

void bconn_init(struct bconn *c, struct bench *b, enum bconn_role role, unsigned idx,
                const char *topic)
{
    memset(c, 0, sizeof(*c));
    c->b = b;
    c->fd = -1;
    c->role = role;
    c->idx = idx;
    c->topic = topic;
    c->state = CS_QUEUED;
    buf_init(&c->out);
    buf_init(&c->tmpl);
}

void bconn_fini(struct bconn *c)
{
    teardown(c);
    buf_fini(&c->out);
    buf_fini(&c->tmpl);
    free(c->in);
    free(c->free_ids);
    free(c->id_state);
    free(c->next_seq);
    c->in = NULL;
    c->free_ids = NULL;
    c->id_state = NULL;
    c->next_seq = NULL;
}

/* --json-payload: fills pay[0..n) with the JSON object of BENCH_JSON_MIN (zero digits) and
 * records where the three hex fields' digits start. */
static void json_template(struct bconn *c, uint8_t *pay, size_t n)
{
    static const char head[] = "{\"t\":\"0000000000000000\",\"p\":\"00000000\",\"s\":\"00000000\","
                               "\"c\":21.25";
    size_t hl = sizeof(head) - 1, extra = n - hl - 1; /* n >= BENCH_JSON_MIN = hl + 1 */
    memcpy(pay, head, hl);
    if (extra >= 8) { /* ,"x":"xxx..." */
        memcpy(pay + hl, ",\"x\":\"", 6);
        memset(pay + hl + 6, 'x', extra - 7);
        pay[hl + extra - 1] = '"';
    } else {
        memset(pay + hl, ' ', extra);
    }
    pay[n - 1] = '}';
    c->json_t = (size_t)(strstr(head, "\"t\":\"") - head) + 5;
    c->json_p = (size_t)(strstr(head, "\"p\":\"") - head) + 5;
    c->json_s = (size_t)(strstr(head, "\"s\":\"") - head) + 5;
}

static void put_hex(uint8_t *p, uint64_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--, v >>= 4)
        p[i] = (uint8_t)"0123456789abcdef"[v & 15];
}

/* Reads the hex string value of "key" in a JSON payload; false if absent or malformed. */
static bool json_hex(const uint8_t *p, size_t n, char key, int digits, uint64_t *out)
{
    const char pat[6] = {'"', key, '"', ':', '"', 0};
    const uint8_t *q = memmem(p, n, pat, 5);
    if (!q || (size_t)(p + n - (q + 5)) < (size_t)digits + 1 || q[5 + digits] != '"')
        return false;
    uint64_t v = 0;
    for (int i = 0; i < digits; i++) {
        uint8_t ch = q[5 + i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

/* Encodes the publisher's PUBLISH once; each message copies it and patches the packet id and the
 * first 16 payload bytes (or, with --json-payload, the three hex fields). */
static void build_template(struct bconn *c)
{
    const struct bench_opts *o = &c->b->o;
    uint8_t *zeros = xcalloc(1, o->payload);
    if (o->json_payload)
        json_template(c, zeros, o->payload);
    struct codec_publish p;
    memset(&p, 0, sizeof(p));
    p.qos = o->qos;
    p.topic.p = (const uint8_t *)c->topic;
    p.topic.len = strlen(c->topic);
    p.packet_id = o->qos ? 1 : 0;
    p.payload.p = zeros;
    p.payload.len = o->payload;
    buf_reset(&c->tmpl);
    codec_encode_publish(&c->tmpl, o->protocol, &p);
    free(zeros);

    c->pay_off = c->tmpl.len - o->payload;
    /* Before the payload: [packet id][v5: property length 0]. */
    c->pid_off = c->pay_off - 2 - (o->protocol == MQTT_V5 ? 1 : 0);
    if (o->qos && (c->tmpl.data[c->pid_off] != 0 || c->tmpl.data[c->pid_off + 1] != 1))
        panic("bench: unexpected PUBLISH layout from codec_encode_publish");

    if (o->qos) {
        c->free_ids = xmalloc(sizeof(*c->free_ids) * o->inflight);
        c->id_state = xcalloc((size_t)o->inflight + 1, 1);
        /* Popped from the top: ids go out as 1, 2, 3, ... */
        for (unsigned i = 0; i < o->inflight; i++)
            c->free_ids[i] = (uint16_t)(o->inflight - i);
        c->free_n = o->inflight;
    }
}

static void send_connect(struct bconn *c)
{
    const struct bench_opts *o = &c->b->o;
    char id[96];
    int n = snprintf(id, sizeof(id), "%s-%c%u", c->b->tag,
                     c->role == ROLE_PUB   ? 'p'
                     : c->role == ROLE_SUB ? 's'
                                           : 'i',
                     c->idx);
    struct codec_connect cc;
    memset(&cc, 0, sizeof(cc));
    cc.version = o->protocol;
    cc.clean_start = true;
    cc.keepalive = (uint16_t)o->keepalive;
    cc.client_id.p = (const uint8_t *)id;
    cc.client_id.len = (size_t)n;
    codec_encode_connect(&c->out, &cc);
}

static void send_subscribe(struct bconn *c)
{
    const struct bench_opts *o = &c->b->o;
    struct codec_bytes filter = {(const uint8_t *)c->topic, strlen(c->topic)};
    uint8_t options = o->qos;
    codec_encode_subscribe(&c->out, o->protocol, 1, &no_props, &filter, &options, 1);
}

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

void bconn_start(struct bconn *c)
{
    struct bench *b = c->b;
    c->in_cap = c->role == ROLE_SUB ? IN_CAP_SUB : c->role == ROLE_PUB ? IN_CAP_PUB : IN_CAP_IDLE;
    c->in = xmalloc(c->in_cap);
    c->in_len = 0;
    if (c->role == ROLE_PUB)
        build_template(c);
    c->started_ns = now_ns();
    c->state = CS_TCP;

    c->fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        drop(c, "socket: %s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (const struct sockaddr *)&b->addr, b->addrlen) < 0 && errno != EINPROGRESS) {
        drop(c, "connect: %s", strerror(errno));
        return;
    }
    c->ev_read = event_new(b->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
    c->ev_write = event_new(b->base, c->fd, EV_WRITE, on_write, c);
    if (!c->ev_read || !c->ev_write) {
        drop(c, "event_new failed");
        return;
    }
    arm_write(c); /* the connect completes when the socket becomes writable */
}

static void append_publish(struct bconn *c, uint64_t ts, bool warm)
{
    uint8_t *p = buf_reserve(&c->out, c->tmpl.len);
    memcpy(p, c->tmpl.data, c->tmpl.len);
    if (c->b->o.qos) {
        uint16_t id = c->free_ids[--c->free_n];
        p[c->pid_off] = (uint8_t)(id >> 8);
        p[c->pid_off + 1] = (uint8_t)id;
        c->id_state[id] = ID_WAIT_ACK | (warm ? ID_WARMUP : 0);
    }
    uint32_t who = c->idx | (warm ? BENCH_WARMUP_BIT : 0);
    uint32_t seq = warm ? c->warm_seq++ : c->seq++;
    if (c->b->o.json_payload) {
        put_hex(p + c->pay_off + c->json_t, ts, 16);
        put_hex(p + c->pay_off + c->json_p, who, 8);
        put_hex(p + c->pay_off + c->json_s, seq, 8);
    } else {
        memcpy(p + c->pay_off, &ts, 8);
        memcpy(p + c->pay_off + 8, &who, 4);
        memcpy(p + c->pay_off + 12, &seq, 4);
    }
    c->out.len += c->tmpl.len;
}

void bconn_pump(struct bconn *c)
{
    struct bench *b = c->b;
    const struct bench_opts *o = &b->o;
    if (c->role != ROLE_PUB || c->state != CS_READY)
        return;
    bool warm = b->phase == PH_WARMUP;
    bool publishing = (warm || b->phase == PH_MEASURE) && !c->done;
    if (c->write_armed || !publishing) {
        if (!c->write_armed)
            flush(c); /* PUBRELs */
        return;
    }

    uint64_t now = now_ns();
    uint64_t budget = UINT64_MAX;
    if (o->rate > 0) {
        double due = o->rate * (double)(now - b->phase_ns) / 1e9;
        budget = due > (double)c->phase_sent ? (uint64_t)due - c->phase_sent : 0;
    }
    if (!warm && o->messages && o->messages - c->seq < budget)
        budget = o->messages - c->seq;

    uint64_t n = 0;
    while (n < budget && c->out.len - c->out_off < OUT_BATCH) {
        if (o->qos && !c->free_n)
            break;
        append_publish(c, now, warm);
        n++;
    }
    c->phase_sent += n;
    if (warm)
        b->warm_sent += n;
    else
        b->sent += n;
    if (!warm && o->messages && c->seq >= o->messages) {
        c->done = true;
        b->pubs_done++;
    }
    if (flush(c) < 0)
        return;
    /* Unpaced QoS 0: come back as soon as the socket takes more (immediately if it already
     * does), so one publisher cannot monopolise the loop. */
    if (o->qos == 0 && o->rate <= 0 && !c->done)
        arm_write(c);
}

void bconn_ping(struct bconn *c)
{
    if (c->state != CS_READY)
        return;
    codec_encode_empty(&c->out, CODEC_PINGREQ);
    if (!c->write_armed)
        flush(c);
}

void bconn_close(struct bconn *c)
{
    if (c->fd >= 0 && c->state == CS_READY) {
        codec_encode_disconnect(&c->out, c->b->o.protocol, 0, &no_props);
        /* Best effort, never waits: whatever the socket refuses is dropped. */
        while (c->out_off < c->out.len) {
            ssize_t n =
                send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            c->out_off += (size_t)n;
        }
    }
    teardown(c);
    if (c->state == CS_READY)
        c->state = CS_CLOSED;
    else if (c->state != CS_LOST && c->state != CS_FAILED && c->state != CS_QUEUED)
        c->state = CS_FAILED;
}

/* A PUBLISH reached a subscriber: count it, check order, record latency. */
static void deliver(struct bconn *c, const struct codec_publish *p, uint64_t t)
{
    struct bench *b = c->b;
    if (p->payload.len < BENCH_PAYLOAD_MIN)
        return; /* not ours */
    uint64_t ts;
    uint32_t who, seq;
    if (b->o.json_payload) { /* a rule may have rewritten it: the fields are found by name */
        uint64_t w, q;
        if (!json_hex(p->payload.p, p->payload.len, 't', 16, &ts) ||
            !json_hex(p->payload.p, p->payload.len, 'p', 8, &w) ||
            !json_hex(p->payload.p, p->payload.len, 's', 8, &q)) {
            if (!b->bad_payloads++)
                bench_error(b, "subscriber %u: a payload without the JSON fields t, p, s",
                            c->idx);
            return;
        }
        who = (uint32_t)w;
        seq = (uint32_t)q;
    } else {
        memcpy(&ts, p->payload.p, 8);
        memcpy(&who, p->payload.p + 8, 4);
        memcpy(&seq, p->payload.p + 12, 4);
    }
    b->last_progress_ns = t;
    b->win_delivered += b->counting;
    if (who & BENCH_WARMUP_BIT) {
        b->warm_delivered++;
        return;
    }
    unsigned slot = c->track_n == 1 ? 0 : who;
    if (slot < c->track_n) {
        if (seq < c->next_seq[slot])
            b->out_of_order++; /* a duplicate or a reordering */
        else
            c->next_seq[slot] = seq + 1;
    }
    c->received++;
    b->delivered++;
    b->last_delivery_ns = t;
    if (t > ts)
        hist_add(&b->hist, t - ts);
}

/* A QoS 1/2 flow of ours completed (PUBACK, PUBCOMP, or a v5 error reason). */
static void complete(struct bconn *c, uint16_t id, uint64_t t)
{
    struct bench *b = c->b;
    if (c->id_state[id] & ID_WARMUP)
        b->warm_acked++;
    else
        b->acked++;
    c->id_state[id] = ID_FREE;
    c->free_ids[c->free_n++] = id;
    b->last_progress_ns = t;
}

/* Returns the packet id's state, or -1 (after recording the error) for an id we did not send. */
static int id_check(struct bconn *c, uint16_t id, uint8_t want, const char *what)
{
    if (c->role != ROLE_PUB || !c->id_state || id == 0 || id > c->b->o.inflight ||
        (c->id_state[id] & ~ID_WARMUP) != want) {
        bench_error(c->b, "publisher %u: unexpected %s for packet id %u", c->idx, what, id);
        return -1;
    }
    return c->id_state[id];
}

/* Handles one decoded packet. Returns -1 if the connection was dropped. */
static int handle(struct bconn *c, const struct codec_packet *pk, uint64_t t)
{
    struct bench *b = c->b;
    uint8_t v = b->o.protocol;
    switch (pk->type) {
    case CODEC_CONNACK:
        if (c->state != CS_CONNACK) {
            drop(c, "unexpected CONNACK");
            return -1;
        }
        if (pk->u.connack.reason != 0) {
            drop(c, "CONNACK refused, reason 0x%02x", pk->u.connack.reason);
            return -1;
        }
        /* v5: never exceed the broker's Receive Maximum [MQTT-3.3.4-7]. The stack still holds
         * every id, so shrinking it keeps only valid ones. */
        if (c->free_ids && CODEC_HAS(&pk->u.connack.props, CODEC_PROP_RECEIVE_MAX) &&
            pk->u.connack.props.receive_max < c->free_n)
            c->free_n = pk->u.connack.props.receive_max;
        if (c->role == ROLE_SUB) {
            send_subscribe(c);
            c->state = CS_SUBACK;
        } else {
            c->state = CS_READY;
            bench_conn_resolved(b, c);
        }
        return 0;
    case CODEC_SUBACK:
        if (c->state != CS_SUBACK) {
            drop(c, "unexpected SUBACK");
            return -1;
        }
        if (pk->u.suback.codes.len < 1 || pk->u.suback.codes.p[0] >= 0x80) {
            drop(c, "SUBSCRIBE refused, code 0x%02x",
                 pk->u.suback.codes.len ? pk->u.suback.codes.p[0] : 0xff);
            return -1;
        }
        c->state = CS_READY;
        bench_conn_resolved(b, c);
        return 0;
    case CODEC_PUBLISH: {
        const struct codec_publish *p = &pk->u.publish;
        deliver(c, p, t);
        if (p->qos == 1)
            codec_encode_ack(&c->out, v, CODEC_PUBACK, p->packet_id, 0, &no_props);
        else if (p->qos == 2)
            codec_encode_ack(&c->out, v, CODEC_PUBREC, p->packet_id, 0, &no_props);
        return 0;
    }
    case CODEC_PUBREL:
        codec_encode_ack(&c->out, v, CODEC_PUBCOMP, pk->u.ack.packet_id, 0, &no_props);
        return 0;
    case CODEC_PUBACK:
        if (id_check(c, pk->u.ack.packet_id, ID_WAIT_ACK, "PUBACK") < 0)
            return 0;
        if (pk->u.ack.reason >= 0x80)
            bench_error(b, "publisher %u: PUBACK reason 0x%02x", c->idx, pk->u.ack.reason);
        complete(c, pk->u.ack.packet_id, t);
        return 0;
    case CODEC_PUBREC: {
        uint16_t id = pk->u.ack.packet_id;
        int st = id_check(c, id, ID_WAIT_ACK, "PUBREC");
        if (st < 0)
            return 0;
        if (pk->u.ack.reason >= 0x80) { /* v5: the flow ends here */
            bench_error(b, "publisher %u: PUBREC reason 0x%02x", c->idx, pk->u.ack.reason);
            complete(c, id, t);
            return 0;
        }
        c->id_state[id] = (uint8_t)(ID_WAIT_COMP | (st & ID_WARMUP));
        codec_encode_ack(&c->out, v, CODEC_PUBREL, id, 0, &no_props);
        return 0;
    }
    case CODEC_PUBCOMP:
        if (id_check(c, pk->u.ack.packet_id, ID_WAIT_COMP, "PUBCOMP") >= 0)
            complete(c, pk->u.ack.packet_id, t);
        return 0;
    case CODEC_PINGRESP:
        return 0;
    case CODEC_DISCONNECT:
        drop(c, "DISCONNECT from broker, reason 0x%02x", pk->u.disconnect.reason);
        return -1;
    default:
        drop(c, "unexpected packet type %u", pk->type);
        return -1;
    }
}

/* Decodes every complete packet in c->in. Returns -1 if the connection was dropped. */
static int parse(struct bconn *c, uint64_t t)
{
    size_t pos = 0, need = 0;
    while (pos < c->in_len) {
        uint8_t first;
        uint32_t rem;
        size_t hl;
        int rc = codec_parse_fixed_header(c->in + pos, c->in_len - pos, &first, &rem, &hl);
        if (rc == TIDE_EPARTIAL)
            break;
        if (rc < 0) {
            drop(c, "bad fixed header: %s", tide_strerror(rc));
            return -1;
        }
        size_t total = hl + rem;
        if (total > c->in_len - pos) {
            need = total;
            break;
        }
        struct codec_packet pk;
        rc = codec_decode(c->b->o.protocol, first, c->in + pos + hl, rem, &pk);
        if (rc < 0) {
            drop(c, "cannot decode packet type %u: %s", first >> 4, tide_strerror(rc));
            return -1;
        }
        if (handle(c, &pk, t) < 0 || c->fd < 0) /* dropped, or the run ended */
            return -1;
        pos += total;
    }
    if (pos) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    if (need > c->in_cap) { /* a packet larger than the buffer: grow once, to fit it */
        c->in = xrealloc(c->in, need);
        c->in_cap = need;
    }
    return 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct bconn *c = arg;
    (void)what;
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        size_t room = c->in_cap - c->in_len;
        ssize_t n = recv(fd, c->in + c->in_len, room, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            if (parse(c, now_ns()) < 0)
                return;
            if ((size_t)n < room)
                break; /* the kernel had no more */
            continue;
        }
        if (n == 0) {
            drop(c, "connection closed by broker");
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        drop(c, "recv: %s", strerror(errno));
        return;
    }
    if (c->role == ROLE_PUB)
        bconn_pump(c); /* acks freed window slots; also sends PUBRELs */
    else if (!c->write_armed && c->out.len)
        flush(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct bconn *c = arg;
    (void)what;
    c->write_armed = false;
    if (c->state == CS_TCP) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            drop(c, "connect: %s", strerror(err));
            return;
        }
        c->state = CS_CONNACK;
        event_add(c->ev_read, NULL);
        send_connect(c);
        flush(c);
        return;
    }
    if (flush(c) < 0 || c->write_armed)
        return;
    bconn_pump(c);
}
