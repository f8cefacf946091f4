/* The WebSocket transport layer: the upgrade handshake, then wslay's event context decoding the
 * client's frames from the layer below into the MQTT byte stream, and the broker's output sent as
 * binary frames. Owns the handshake buffer (freed once the upgrade is done), the wslay context
 * (freed between messages while the connection is idle, see ws_idle; 8 KB of an idle connection's
 * 9 KB otherwise) and `wire`, the encoded bytes (HTTP answer, frames) the layer below has not
 * taken yet.
 *
 * Reading decodes in place: frames are read into the caller's buffer and their payload is copied
 * back to its front. That is safe because a payload byte is always read before it is emitted and
 * wslay copies what it is given into its own buffer first, so the write position never passes
 * the read position; and it means decoded bytes never outgrow the caller's buffer.
 *
 * Outgoing frames are written here, not by wslay: a server frame is a 2-10 byte header and the
 * unmasked payload (RFC 6455 5.2), and building it here lets the output evbuffer's chains (shared
 * payload references included) move into the frame without a copy, where wslay_event_queue_msg
 * would copy every message twice. wslay still writes the control frames it answers with (pong,
 * close); both kinds enter `wire` only as whole frames, so they never interleave. */
#include "ws.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <wslay/wslay.h>

#include "transport.h"
#include "util/alloc.h"
#include "util/err.h"
#include "ws_handshake.h"

/* The handshake buffer starts this big and doubles up to WS_HANDSHAKE_MAX. */
#define HS_INITIAL 1024
/* RFC 6455 7.4.1 status codes */
#define WS_CLOSE_NORMAL 1000
/* Pongs and close answers queued in wire and not yet written since wire last drained: past this
 * the connection stops reading (a client that pings without reading cannot grow the broker's
 * memory), until its socket takes them. */
#define WS_CONTROL_MAX (64u * 1024)
/* Reads from the layer below per ws_read: frames without MQTT payload (pings, empty binary
 * frames) do not fill the caller's buffer, so the loop needs its own bound to yield. */
#define WS_READS_PER_CALL 4
#define WS_CLOSE_UNSUPPORTED_DATA 1003

enum ws_state {
    WS_HANDSHAKE, /* reading the HTTP upgrade request */
    WS_OPEN,      /* exchanging frames */
    WS_ENDED,     /* the peer's close frame arrived: reads report the end of the stream */
    WS_FAILED,    /* refused or broken: reads report `failure` */
};

struct ws {
    struct transport head;       /* first: the transport_ops see a struct transport * */
    wslay_event_context_ptr ctx; /* NULL until the upgrade is accepted */
    struct evbuffer *wire;       /* encoded bytes not yet taken by the layer below, or NULL */
    uint8_t *hs;                 /* raw bytes not yet parsed or fed (the handshake's), or NULL */
    const char *failure;         /* static: why, once state is WS_FAILED */
    /* the current read, for the wslay callbacks */
    const uint8_t *feed; /* raw bytes to hand to wslay */
    size_t feed_len;
    uint8_t *out; /* where decoded MQTT bytes go */
    size_t out_len;
    /* Bytes handed to wslay that are not yet part of a whole frame, and the size of the frame
     * being received: at 0 outside a fragmented message, wslay holds no state worth keeping and
     * its context (two 4 KB buffers) can be freed while the connection is idle. */
    uint64_t unframed, frame_size;
    uint16_t hs_len, hs_cap;
    uint8_t state;   /* enum ws_state */
    uint8_t opcode;  /* of the frame being received */
    bool text_frame; /* a text frame arrived: closing with 1003 */
    bool in_message; /* between the fragments of a binary message */
    bool close_sent; /* our close frame is in wire (written here, not by wslay) */
    bool capped;     /* the last read stopped at WS_READS_PER_CALL: read again (has_input) */
    uint32_t control_queued; /* control-frame bytes added to wire since it was last empty */
};

/* --- wslay callbacks --- */

static ssize_t on_wslay_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                             void *arg)
{
    (void)flags;
    struct ws *w = arg;
    if (w->text_frame) {
        /* stop decoding: the rest of this read is not MQTT */
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    if (!w->feed_len) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < w->feed_len ? len : w->feed_len;
    memcpy(buf, w->feed, n);
    w->feed += n;
    w->feed_len -= n;
    w->unframed += n;
    return (ssize_t)n;
}

/* Control frames wslay answers with (pong, close). Always takes everything: they go to `wire`. */
static ssize_t on_wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                             int flags, void *arg)
{
    (void)ctx;
    (void)flags;
    struct ws *w = arg;
    if (!w->wire)
        w->wire = evbuffer_new();
    evbuffer_add(w->wire, data, len);
    w->control_queued = w->control_queued + len > UINT32_MAX ? UINT32_MAX
                                                             : (uint32_t)(w->control_queued + len);
    return (ssize_t)len;
}

static void on_wslay_frame_start(wslay_event_context_ptr ctx,
                                 const struct wslay_event_on_frame_recv_start_arg *arg, void *a)
{
    struct ws *w = a;
    w->opcode = arg->opcode;
    /* a client frame's header: 2 bytes, the extended length (wslay insists on the shortest
     * form), the 4-byte mask (wslay refuses an unmasked frame before this is called) */
    uint64_t len = arg->payload_length;
    w->frame_size = 2 + 4 + (len >= 65536 ? 8 : len >= 126 ? 2 : 0) + len;
    if (arg->opcode == WSLAY_BINARY_FRAME || arg->opcode == WSLAY_CONTINUATION_FRAME)
        w->in_message = !arg->fin;
    if (arg->opcode == WSLAY_TEXT_FRAME && !w->text_frame) {
        /* [MQTT-6.0.0-1] MQTT goes in binary frames; a text frame closes the connection */
        static const char reason[] = "MQTT needs binary frames";
        w->text_frame = true;
        wslay_event_queue_close(ctx, WS_CLOSE_UNSUPPORTED_DATA, (const uint8_t *)reason,
                                sizeof reason - 1);
    }
}

static void on_wslay_frame_chunk(wslay_event_context_ptr ctx,
                                 const struct wslay_event_on_frame_recv_chunk_arg *arg, void *a)
{
    (void)ctx;
    struct ws *w = a;
    /* a binary frame or its continuation (a continuation of text never gets here: text fails) */
    if (w->text_frame || (w->opcode != WSLAY_BINARY_FRAME && w->opcode != WSLAY_CONTINUATION_FRAME))
        return;
    /* [MQTT-6.0.0-2] frames and MQTT packets need not line up: this is just a byte stream */
    memcpy(w->out + w->out_len, arg->data, arg->data_length);
    w->out_len += arg->data_length;
}

static void on_wslay_frame_end(wslay_event_context_ptr ctx, void *a)
{
    (void)ctx;
    struct ws *w = a;
    w->unframed -= w->frame_size;
}

static const struct wslay_event_callbacks wslay_callbacks = {
    .recv_callback = on_wslay_recv,
    .send_callback = on_wslay_send,
    .on_frame_recv_start_callback = on_wslay_frame_start,
    .on_frame_recv_chunk_callback = on_wslay_frame_chunk,
    .on_frame_recv_end_callback = on_wslay_frame_end,
};

/* Creates the frame decoder: after the upgrade, and again when an idle connection that had its
 * context released (ws_idle) receives bytes. */
static void start_decoder(struct ws *w)
{
    if (wslay_event_context_server_init(&w->ctx, &wslay_callbacks, w) != 0)
        panic("out of memory for a WebSocket context"); /* as xmalloc would */
    /* payloads stream through on_wslay_frame_chunk instead of being collected per message:
     * conn.c already bounds MQTT packets, and a message may be as big as max_packet_size */
    wslay_event_config_set_no_buffering(w->ctx, 1);
}

/* --- reading --- */

static ssize_t fail(struct ws *w, const char *why, const char **whyp)
{
    w->state = WS_FAILED;
    w->failure = why;
    *whyp = why;
    return TRANSPORT_ERROR;
}

/* Queues the answer to the upgrade request; on 101 starts the frame decoder. */
static void answer(struct ws *w, const struct ws_handshake *h)
{
    char resp[WS_RESPONSE_MAX];
    size_t n = ws_handshake_response(h, resp, sizeof resp);
    on_wslay_send(NULL, (const uint8_t *)resp, n, 0, w);
    if (h->status != 101)
        return;
    start_decoder(w);
    w->state = WS_OPEN;
}

/* Reads the upgrade request from the layer below. Returns 0 once it is answered (state OPEN or
 * FAILED), or a TRANSPORT_* / end-of-stream result to pass up. */
static ssize_t read_handshake(struct ws *w, const char **why)
{
    for (;;) {
        if (w->hs_len == w->hs_cap) {
            w->hs_cap = w->hs_cap ? (uint16_t)(w->hs_cap * 2) : HS_INITIAL;
            w->hs = xrealloc(w->hs, w->hs_cap);
        }
        ssize_t n = transport_read(w->head.lower, w->head.fd, w->hs + w->hs_len,
                                   (size_t)(w->hs_cap - w->hs_len), why);
        if (n <= 0)
            return n;
        w->hs_len = (uint16_t)(w->hs_len + n);
        struct ws_handshake h;
        int rc = ws_handshake_parse(w->hs, w->hs_len, &h);
        if (rc == TIDE_EPARTIAL)
            continue;
        answer(w, &h);
        if (rc < 0 || h.status != 101) {
            free(w->hs);
            w->hs = NULL;
            w->hs_len = w->hs_cap = 0;
            fail(w, h.reason, why);
            return 0;
        }
        /* what followed the request is already frames: keep it to feed first */
        w->hs_len = (uint16_t)(w->hs_len - rc);
        memmove(w->hs, w->hs + rc, w->hs_len);
        if (!w->hs_len) {
            free(w->hs);
            w->hs = NULL;
            w->hs_cap = 0;
        }
        return 0;
    }
}

/* Runs wslay over w->feed, appending payload at w->out + w->out_len and control answers to wire.
 * Returns 0, or TRANSPORT_ERROR with the state set to FAILED (or ENDED at the peer's close). */
static int decode(struct ws *w, const char **why)
{
    if (!w->ctx)
        start_decoder(w);
    int rv = wslay_event_recv(w->ctx);
    wslay_event_send(w->ctx); /* into wire: never blocks */
    if (w->text_frame)
        return (int)fail(w, "websocket text frame", why);
    if (rv != 0)
        return (int)fail(w, "websocket protocol error", why);
    if (!wslay_event_get_read_enabled(w->ctx)) {
        if (!wslay_event_get_close_received(w->ctx))
            return (int)fail(w, "websocket protocol error", why);
        w->state = WS_ENDED;
    }
    return 0;
}

static ssize_t ws_read(struct transport *t, void *buf, size_t len, const char **why)
{
    struct ws *w = (struct ws *)t;
    if (w->state == WS_HANDSHAKE) {
        ssize_t n = read_handshake(w, why);
        if (n != 0 || w->state == WS_HANDSHAKE)
            return n;
    }
    w->out = buf;
    w->out_len = 0;
    w->capped = false;
    ssize_t lower = 0;
    bool control_full = false;
    int reads = 0;
    while (w->state == WS_OPEN && w->out_len < len) {
        if (w->control_queued > WS_CONTROL_MAX) {
            control_full = true;
            break;
        }
        size_t room = len - w->out_len;
        if (w->hs) {
            /* bytes that came with the request: not in buf, so feed at most what buf can take */
            size_t n = w->hs_len < room ? w->hs_len : room;
            w->feed = w->hs;
            w->feed_len = n;
            int rc = decode(w, why);
            w->hs_len = (uint16_t)(w->hs_len - n);
            memmove(w->hs, w->hs + n, w->hs_len);
            if (!w->hs_len) {
                free(w->hs);
                w->hs = NULL;
                w->hs_cap = 0;
            }
            if (rc < 0)
                break;
            continue;
        }
        /* in place: the frames land where their payload is copied to (see the file comment) */
        if (reads++ == WS_READS_PER_CALL) {
            w->capped = true;
            break;
        }
        uint8_t *at = w->out + w->out_len;
        lower = transport_read(w->head.lower, w->head.fd, at, room, why);
        if (lower <= 0)
            break;
        w->feed = at;
        w->feed_len = (size_t)lower;
        if (decode(w, why) < 0 || (size_t)lower < room)
            break; /* failed, or the layer below has nothing more now */
    }
    w->feed = NULL;
    w->feed_len = 0;
    if (w->out_len)
        return (ssize_t)w->out_len; /* what came before an end or an error first */
    if (w->state == WS_ENDED)
        return 0;
    if (w->state == WS_FAILED) {
        *why = w->failure;
        return TRANSPORT_ERROR;
    }
    if (control_full)
        return TRANSPORT_WANT_WRITE; /* conn.c reads again once the socket takes our answers */
    if (w->capped)
        return TRANSPORT_WANT_READ; /* with has_input true: conn.c reads again soon */
    return lower < 0 ? lower : (lower == 0 ? 0 : TRANSPORT_WANT_READ);
}

/* --- writing --- */

/* Moves all of out into wire as one binary frame (FIN set, unmasked: RFC 6455 5.1, 5.2). */
static void frame(struct ws *w, struct evbuffer *out)
{
    size_t len = evbuffer_get_length(out);
    uint8_t hdr[10];
    size_t n = 2;
    hdr[0] = 0x80 | WSLAY_BINARY_FRAME;
    if (len < 126) {
        hdr[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)len;
        n = 4;
    } else {
        hdr[1] = 127;
        for (int i = 0; i < 8; i++)
            hdr[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        n = 10;
    }
    if (!w->wire)
        w->wire = evbuffer_new();
    evbuffer_add(w->wire, hdr, n);
    evbuffer_add_buffer(w->wire, out); /* moves the chains: no copy */
}

static bool may_send_data(const struct ws *w)
{
    return w->state == WS_OPEN && !w->close_sent && !(w->ctx && wslay_event_get_close_sent(w->ctx));
}

static ssize_t ws_write(struct transport *t, struct evbuffer *out, const char **why)
{
    struct ws *w = (struct ws *)t;
    ssize_t progress = 0;
    size_t have = out ? evbuffer_get_length(out) : 0;
    if (have && !may_send_data(w)) {
        /* after a close frame nothing may follow it (RFC 6455 5.5.1): what is left is lost */
        evbuffer_drain(out, have);
        progress = (ssize_t)have;
        have = 0;
    }
    for (;;) {
        if (!w->wire || !evbuffer_get_length(w->wire)) {
            w->control_queued = 0;
            if (!have)
                break;
            frame(w, out);
            have = 0;
        }
        ssize_t n = transport_write(w->head.lower, w->head.fd, w->wire, why);
        if (n > 0) {
            progress += n;
            continue;
        }
        if (n == TRANSPORT_ERROR)
            return n;
        return progress ? progress : n; /* WANT_READ / WANT_WRITE */
    }
    return progress; /* an empty wire is freed by ws_idle, not after every write */
}

static size_t ws_pending_out(const struct transport *t)
{
    const struct ws *w = (const struct ws *)t;
    return w->wire ? evbuffer_get_length(w->wire) : 0;
}

static void ws_shutdown(struct transport *t)
{
    struct ws *w = (struct ws *)t;
    if (!may_send_data(w))
        return; /* no upgrade, or a close frame went out already */
    /* RFC 6455 7.1.2: the closing side sends a close frame before closing the connection; written
     * here because an idle connection may have no wslay context */
    static const uint8_t close_normal[] = {0x80 | WSLAY_CONNECTION_CLOSE, 2, WS_CLOSE_NORMAL >> 8,
                                           WS_CLOSE_NORMAL & 0xff};
    on_wslay_send(NULL, close_normal, sizeof close_normal, 0, w);
    w->close_sent = true;
    const char *why;
    if (w->wire && evbuffer_get_length(w->wire)) {
        transport_write(w->head.lower, w->head.fd, w->wire, &why); /* best effort, once */
        /* the socket is half-closed next: what did not fit now never will */
        evbuffer_drain(w->wire, evbuffer_get_length(w->wire));
    }
}

/* Between messages, with nothing in flight either way, wslay keeps nothing worth 8 KB: free its
 * context (decode recreates it) and the empty output buffer. */
static void ws_idle(struct transport *t)
{
    struct ws *w = (struct ws *)t;
    if (w->ctx && w->state == WS_OPEN && !w->unframed && !w->in_message &&
        !wslay_event_get_queued_msg_count(w->ctx) && !wslay_event_get_close_sent(w->ctx)) {
        wslay_event_context_free(w->ctx);
        w->ctx = NULL;
    }
    if (w->wire && !evbuffer_get_length(w->wire)) {
        evbuffer_free(w->wire);
        w->wire = NULL;
    }
}

static void ws_free(struct transport *t)
{
    struct ws *w = (struct ws *)t;
    if (w->ctx)
        wslay_event_context_free(w->ctx);
    if (w->wire)
        evbuffer_free(w->wire);
    free(w->hs);
    free(w);
}

/* A read stopped at its bound with more perhaps waiting below (ws_read). */
static bool ws_has_input(const struct transport *t)
{
    return ((const struct ws *)t)->capped;
}

static const struct transport_ops ws_ops = {
    .name = "ws",
    .has_input = ws_has_input,
    .read = ws_read,
    .write = ws_write,
    .pending_out = ws_pending_out,
    .shutdown = ws_shutdown,
    .free = ws_free,
    .idle = ws_idle,
};

struct transport *ws_transport_new(struct transport *lower, int fd)
{
    struct ws *w = xcalloc(1, sizeof *w);
    w->head.ops = &ws_ops;
    w->head.lower = lower;
    w->head.fd = fd;
    w->state = WS_HANDSHAKE;
    return &w->head;
}
