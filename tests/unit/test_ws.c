/* Unit tests for the WebSocket transport layer (core/ws.c) over a socketpair: the upgrade, then
 * masked client frames (fragmented, with a ping between fragments, several packets per frame)
 * decoded by reads of every small size, so the in-place decoding is exercised at each buffer
 * boundary; outgoing frames; the close handshake; a refused upgrade. */
#include "ws.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "transport.h"
#include "unit.h"

#define REQUEST                                                                                    \
    "GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"               \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"                 \
    "Sec-WebSocket-Protocol: mqtt\r\n\r\n"

/* Appends a masked client frame to out; returns its length. */
static size_t client_frame(uint8_t *out, int fin, int opcode, const void *payload, size_t n)
{
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        out[h++] = (uint8_t)(0x80 | n);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    memcpy(out + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = ((const uint8_t *)payload)[i] ^ key[i % 4];
    return h + n;
}

struct pair {
    int server, client;
    struct transport *t;
};

static void pair_open(struct pair *p)
{
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
        perror("socketpair");
        exit(2);
    }
    p->server = fds[0];
    p->client = fds[1];
    fcntl(p->server, F_SETFL, O_NONBLOCK);
    p->t = ws_transport_new(NULL, p->server);
}

static void pair_close(struct pair *p)
{
    transport_free(p->t);
    close(p->server);
    close(p->client);
}

/* Writes the transport's pending output to the socket; returns the bytes the client reads. */
static size_t flush_and_receive(struct pair *p, uint8_t *buf, size_t cap)
{
    struct evbuffer *out = evbuffer_new();
    const char *why;
    while (transport_pending_out(p->t))
        if (transport_write(p->t, p->server, out, &why) < 0)
            break;
    evbuffer_free(out);
    ssize_t n = recv(p->client, buf, cap, MSG_DONTWAIT);
    return n > 0 ? (size_t)n : 0;
}

/* Reads through the transport with reads of at most `room` bytes until `want` bytes came or it
 * reports something else than data; returns the last result. */
static ssize_t read_all(struct pair *p, uint8_t *got, size_t want, size_t room, size_t *have)
{
    const char *why = NULL;
    ssize_t n = 0;
    *have = 0;
    while (*have < want) {
        size_t r = want - *have < room ? want - *have : room;
        n = transport_read(p->t, p->server, got + *have, r, &why);
        if (n <= 0)
            return n;
        *have += (size_t)n;
    }
    return n;
}

static const uint8_t pingreq[] = {0xc0, 0x00};

static void test_stream_at_every_read_size(void)
{
    /* MQTT bytes: CONNECT-like filler split over fragments, then 3 packets in one frame */
    uint8_t mqtt[300];
    for (size_t i = 0; i < sizeof mqtt; i++)
        mqtt[i] = (uint8_t)(i * 7);
    for (size_t room = 1; room <= 40; room++) {
        struct pair p;
        pair_open(&p);
        static uint8_t wire[4096];
        size_t n = strlen(REQUEST);
        memcpy(wire, REQUEST, n);
        n += client_frame(wire + n, 0, 2, mqtt, 100);       /* binary, not final */
        n += client_frame(wire + n, 1, 9, "ping!", 5);      /* ping between fragments */
        n += client_frame(wire + n, 0, 0, mqtt + 100, 0);   /* empty continuation */
        n += client_frame(wire + n, 1, 0, mqtt + 100, 150); /* final continuation */
        n += client_frame(wire + n, 1, 2, mqtt + 250, 50);  /* a whole binary frame */
        if (write(p.client, wire, n) != (ssize_t)n) {
            FAIL("short write to the socketpair");
            pair_close(&p);
            return;
        }
        uint8_t got[sizeof mqtt];
        size_t have;
        read_all(&p, got, sizeof got, room, &have);
        CHECK_EQ(have, sizeof mqtt, "room %zu: all MQTT bytes", room);
        CHECK(memcmp(got, mqtt, have) == 0, "room %zu: bytes in order", room);
        const char *why;
        CHECK_EQ(transport_read(p.t, p.server, got, sizeof got, &why), TRANSPORT_WANT_READ,
                 "room %zu: then nothing more", room);
        uint8_t reply[1024];
        size_t r = flush_and_receive(&p, reply, sizeof reply);
        const char *ok = "HTTP/1.1 101 Switching Protocols\r\n";
        CHECK(r > strlen(ok) && !memcmp(reply, ok, strlen(ok)), "room %zu: 101 first", room);
        const uint8_t *end = memmem(reply, r, "\r\n\r\n", 4);
        static const uint8_t pong[] = {0x8a, 5, 'p', 'i', 'n', 'g', '!'};
        CHECK(end && (size_t)(reply + r - end - 4) == sizeof pong &&
                  !memcmp(end + 4, pong, sizeof pong),
              "room %zu: then the pong, unmasked", room);
        pair_close(&p);
    }
}

static void test_output_frames_and_close_handshake(void)
{
    struct pair p;
    pair_open(&p);
    uint8_t wire[512];
    size_t n = strlen(REQUEST);
    memcpy(wire, REQUEST, n);
    n += client_frame(wire + n, 1, 2, pingreq, 2);
    CHECK_EQ(write(p.client, wire, n), (ssize_t)n, "request written");
    uint8_t got[64], reply[70000];
    size_t have;
    read_all(&p, got, 2, sizeof got, &have);
    CHECK(have == 2 && !memcmp(got, pingreq, 2), "PINGREQ decoded");
    flush_and_receive(&p, reply, sizeof reply); /* the 101 */

    /* idle between messages (the context may go), and inside a frame header (it must stay) */
    transport_idle(p.t);
    n = client_frame(wire, 1, 2, pingreq, 2);
    CHECK_EQ(write(p.client, wire, 3), 3, "half a header written");
    const char *why0;
    CHECK_EQ(transport_read(p.t, p.server, got, sizeof got, &why0), TRANSPORT_WANT_READ,
             "half a header: nothing yet");
    transport_idle(p.t);
    CHECK_EQ(write(p.client, wire + 3, n - 3), (ssize_t)(n - 3), "the rest written");
    read_all(&p, got, 2, sizeof got, &have);
    CHECK(have == 2 && !memcmp(got, pingreq, 2), "PINGREQ decoded across an idle tick");

    /* output: small, 16-bit and 64-bit lengths, each one frame */
    static uint8_t big[66000];
    size_t sizes[] = {2, 300, sizeof big};
    for (size_t k = 0; k < 3; k++) {
        struct evbuffer *out = evbuffer_new();
        evbuffer_add(out, big, sizes[k]);
        const char *why;
        size_t total = 0, expect_hdr = sizes[k] < 126 ? 2 : sizes[k] < 65536 ? 4 : 10;
        while (evbuffer_get_length(out) || transport_pending_out(p.t)) {
            ssize_t w = transport_write(p.t, p.server, out, &why);
            ssize_t r = recv(p.client, reply + total, sizeof reply - total, MSG_DONTWAIT);
            if (r > 0)
                total += (size_t)r;
            if (w < 0 && w != TRANSPORT_WANT_WRITE)
                break;
        }
        for (ssize_t r;
             (r = recv(p.client, reply + total, sizeof reply - total, MSG_DONTWAIT)) > 0;)
            total += (size_t)r;
        CHECK_EQ(total, expect_hdr + sizes[k], "output of %zu bytes: one frame", sizes[k]);
        CHECK_EQ(reply[0], 0x82, "output of %zu: FIN + binary", sizes[k]);
        CHECK_EQ(reply[1] & 0x80, 0, "output of %zu: unmasked", sizes[k]);
        evbuffer_free(out);
    }

    /* the client closes: the read reports the end of the stream, the answer is a close frame */
    n = client_frame(wire, 1, 8, "\x03\xe8", 2);
    CHECK_EQ(write(p.client, wire, n), (ssize_t)n, "close written");
    const char *why;
    CHECK_EQ(transport_read(p.t, p.server, got, sizeof got, &why), 0, "close: end of stream");
    size_t r = flush_and_receive(&p, reply, sizeof reply);
    CHECK(r == 4 && reply[0] == 0x88 && reply[2] == 0x03 && reply[3] == 0xe8,
          "close answered with close 1000");
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, pingreq, 2);
    transport_write(p.t, p.server, out, &why);
    CHECK_EQ(evbuffer_get_length(out), 0, "after the close, output is dropped");
    CHECK_EQ(recv(p.client, reply, sizeof reply, MSG_DONTWAIT), -1, "and nothing is sent");
    evbuffer_free(out);
    pair_close(&p);
}

static void test_refused_upgrade(void)
{
    struct pair p;
    pair_open(&p);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ(write(p.client, req, sizeof req - 1), (ssize_t)(sizeof req - 1), "request written");
    uint8_t got[64];
    const char *why = NULL;
    CHECK_EQ(transport_read(p.t, p.server, got, sizeof got, &why), TRANSPORT_ERROR,
             "plain GET: error");
    CHECK(why && strstr(why, "upgrade"), "why names the upgrade: %s", why ? why : "(null)");
    char reply[1024] = {0};
    flush_and_receive(&p, (uint8_t *)reply, sizeof reply - 1);
    CHECK(!strncmp(reply, "HTTP/1.1 426 ", 13), "426 answered: %.40s", reply);
    pair_close(&p);
}

int main(void)
{
    test_stream_at_every_read_size();
    test_output_frames_and_close_handshake();
    test_refused_upgrade();
    return unit_finish();
}
