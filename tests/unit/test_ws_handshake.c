/* Unit tests for the WebSocket opening handshake (core/ws_handshake.c): a table of requests with
 * the status each must get, RFC 6455's own key example, every request cut at each byte (must ask
 * for more, never answer early unless the bytes so far are not HTTP) and placed against a guard
 * page so an over-read crashes, the size bound, and the responses' shape. */
#include "ws_handshake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "unit.h"
#include "util/err.h"

static uint8_t *guard;
static size_t pagesz;

static void guard_init(void)
{
    pagesz = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = 4 * pagesz; /* WS_HANDSHAKE_MAX + room must fit before the guard */
    while (span < WS_HANDSHAKE_MAX + 2 * pagesz)
        span += pagesz;
    guard = mmap(NULL, span + pagesz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard == MAP_FAILED || mprotect(guard + span, pagesz, PROT_NONE) != 0) {
        perror("guard page");
        exit(2);
    }
    pagesz = span; /* from here on: the usable bytes before the guard */
}

static const uint8_t *at_guard(const void *p, size_t n)
{
    uint8_t *dst = guard + pagesz - n;
    memcpy(dst, p, n);
    return dst;
}

#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define HOST "Host: server.example.com\r\n"
#define UPGRADE "Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define VERSION "Sec-WebSocket-Version: 13\r\n"
#define MQTT "Sec-WebSocket-Protocol: mqtt\r\n"

struct hs_case {
    const char *name;
    const char *req;
    int status;              /* expected h.status */
    const char *subprotocol; /* expected when 101 */
    int rc;                  /* 0: the whole request's length; else the error code */
};

static const struct hs_case cases[] = {
    {"paho-style request", "GET /mqtt HTTP/1.1\r\n" HOST UPGRADE KEY VERSION MQTT "\r\n", 101,
     "mqtt", 0},
    {"lower-case names, odd spacing, LF line ends",
     "GET / HTTP/1.1\nhost:x\nupgrade:   WebSocket \nconnection: keep-alive, Upgrade\n"
     "sec-websocket-key:dGhlIHNhbXBsZSBub25jZQ==\nsec-websocket-version: 13\n"
     "sec-websocket-protocol: chat, mqtt\n\n",
     101, "mqtt", 0},
    {"mqttv3.1 offered first wins",
     "GET /ws HTTP/1.1\r\n" HOST UPGRADE KEY VERSION
     "Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n\r\n",
     101, "mqttv3.1", 0},
    {"protocol across two header lines",
     "GET / HTTP/1.1\r\n" HOST UPGRADE KEY VERSION
     "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
     101, "mqtt", 0},
    {"HTTP/1.2 is later than 1.1", "GET / HTTP/1.2\r\n" HOST UPGRADE KEY VERSION MQTT "\r\n", 101,
     "mqtt", 0},
    {"subprotocol is case-sensitive",
     "GET / HTTP/1.1\r\n" HOST UPGRADE KEY VERSION "Sec-WebSocket-Protocol: MQTT\r\n\r\n", 400,
     NULL, 0},
    {"no subprotocol", "GET / HTTP/1.1\r\n" HOST UPGRADE KEY VERSION "\r\n", 400, NULL, 0},
    {"other subprotocols only",
     "GET / HTTP/1.1\r\n" HOST UPGRADE KEY VERSION
     "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n",
     400, NULL, 0},
    {"missing key", "GET / HTTP/1.1\r\n" HOST UPGRADE VERSION MQTT "\r\n", 400, NULL, 0},
    {"two keys", "GET / HTTP/1.1\r\n" HOST UPGRADE KEY KEY VERSION MQTT "\r\n", 400, NULL, 0},
    {"key without its padding",
     "GET / HTTP/1.1\r\n" HOST UPGRADE "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n" VERSION MQTT
     "\r\n",
     400, NULL, 0},
    {"key of 15 bytes",
     "GET / HTTP/1.1\r\n" HOST UPGRADE "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZA=\r\n" VERSION MQTT
     "\r\n",
     400, NULL, 0},
    {"key not base64",
     "GET / HTTP/1.1\r\n" HOST UPGRADE
     "Sec-WebSocket-Key: !!!!IHNhbXBsZSBub25jZQ==\r\n" VERSION MQTT "\r\n",
     400, NULL, 0},
    {"wrong version",
     "GET / HTTP/1.1\r\n" HOST UPGRADE KEY "Sec-WebSocket-Version: 8\r\n" MQTT "\r\n", 426, NULL,
     0},
    {"no version", "GET / HTTP/1.1\r\n" HOST UPGRADE KEY MQTT "\r\n", 426, NULL, 0},
    {"plain HTTP GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426, NULL, 0},
    {"connection without upgrade",
     "GET / HTTP/1.1\r\n" HOST "Upgrade: websocket\r\nConnection: keep-alive\r\n" KEY VERSION MQTT
     "\r\n",
     426, NULL, 0},
    {"missing host", "GET / HTTP/1.1\r\n" UPGRADE KEY VERSION MQTT "\r\n", 400, NULL, 0},
    {"POST", "POST / HTTP/1.1\r\n" HOST UPGRADE KEY VERSION MQTT "\r\n", 405, NULL, 0},
    {"HTTP/1.0", "GET / HTTP/1.0\r\n" HOST UPGRADE KEY VERSION MQTT "\r\n", 400, NULL, 0},
    {"request line without version", "GET /\r\n" HOST "\r\n", 400, NULL, 0},
    {"obsolete line folding",
     "GET / HTTP/1.1\r\n" HOST UPGRADE KEY VERSION MQTT " continued\r\n\r\n", 400, NULL, 0},
    {"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n" UPGRADE KEY VERSION MQTT "\r\n", 400,
     NULL, 0},
    {"raw MQTT CONNECT", "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 400, NULL,
     TIDE_EMALFORMED},
    {"leading empty line", "\r\nGET / HTTP/1.1\r\n", 400, NULL, TIDE_EMALFORMED},
    {"lone CR", "GET / HTTP/1.1\rHost: x\r\n", 400, NULL, TIDE_EMALFORMED},
};

/* Parses c's request whole, then every proper prefix of it, each placed against the guard. */
static void run_case(const struct hs_case *c)
{
    size_t n = strlen(c->req);
    struct ws_handshake h;
    int rc = ws_handshake_parse(at_guard(c->req, n), n, &h);
    CHECK_EQ(rc, c->rc ? c->rc : (int)n, "%s: result", c->name);
    CHECK_EQ(h.status, c->status, "%s: status (%s)", c->name, h.reason ? h.reason : "");
    if (c->status == 101) {
        CHECK_STR(h.subprotocol, c->subprotocol, "%s: subprotocol", c->name);
        CHECK_STR(h.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "%s: RFC 6455 1.3 accept", c->name);
    }
    for (size_t cut = 0; cut < n; cut++) {
        rc = ws_handshake_parse(at_guard(c->req, cut), cut, &h);
        if (c->rc == TIDE_EMALFORMED) {
            /* early refusal is allowed once the bad byte has arrived */
            if (rc != TIDE_EPARTIAL)
                CHECK_EQ(rc, TIDE_EMALFORMED, "%s: cut at %zu", c->name, cut);
        } else if (rc != TIDE_EPARTIAL) {
            CHECK_EQ(rc, TIDE_EPARTIAL, "%s: cut at %zu", c->name, cut);
            break;
        }
    }
}

/* A NUL byte (which the table's strings cannot hold) is refused as soon as it arrives. */
static void test_nul_byte(void)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\0y";
    struct ws_handshake h;
    int rc = ws_handshake_parse(at_guard(req, sizeof req - 1), sizeof req - 1, &h);
    CHECK_EQ(rc, TIDE_EMALFORMED, "NUL in a header");
    CHECK_EQ(h.status, 400, "NUL in a header: 400");
}

/* What follows the request (the first WebSocket frame) is not part of it. */
static void test_trailing_bytes(void)
{
    const char req[] = "GET / HTTP/1.1\r\n" HOST UPGRADE KEY VERSION MQTT "\r\n\x82\x85";
    struct ws_handshake h;
    int rc = ws_handshake_parse((const uint8_t *)req, sizeof req - 1, &h);
    CHECK_EQ(rc, (int)(sizeof req - 3), "trailing frame bytes: request length");
    CHECK_EQ(h.status, 101, "trailing frame bytes: accepted");
}

static void test_size_bound(void)
{
    static char big[WS_HANDSHAKE_MAX + 16];
    size_t n = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX-Pad: ");
    memset(big + n, 'a', sizeof big - n);
    struct ws_handshake h;
    int rc = ws_handshake_parse(at_guard(big, WS_HANDSHAKE_MAX - 1), WS_HANDSHAKE_MAX - 1, &h);
    CHECK_EQ(rc, TIDE_EPARTIAL, "one byte under the bound: still partial");
    rc = ws_handshake_parse(at_guard(big, WS_HANDSHAKE_MAX), WS_HANDSHAKE_MAX, &h);
    CHECK_EQ(rc, TIDE_ETOOBIG, "at the bound without an end");
    CHECK_EQ(h.status, 431, "at the bound: 431");
    rc = ws_handshake_parse(at_guard(big, sizeof big), sizeof big, &h);
    CHECK_EQ(rc, TIDE_ETOOBIG, "past the bound: reads only up to it");
}

static void test_responses(void)
{
    const char req[] = "GET /mqtt HTTP/1.1\r\n" HOST UPGRADE KEY VERSION MQTT "\r\n";
    struct ws_handshake h;
    char out[WS_RESPONSE_MAX];
    ws_handshake_parse((const uint8_t *)req, sizeof req - 1, &h);
    size_t n = ws_handshake_response(&h, out, sizeof out);
    CHECK_STR(out,
              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
              "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
              "101 response");
    CHECK_EQ(n, strlen(out), "101 response length");

    const char bad[] =
        "GET / HTTP/1.1\r\n" HOST UPGRADE KEY "Sec-WebSocket-Version: 7\r\n" MQTT "\r\n";
    ws_handshake_parse((const uint8_t *)bad, sizeof bad - 1, &h);
    n = ws_handshake_response(&h, out, sizeof out);
    CHECK(n > 0 && !strncmp(out, "HTTP/1.1 426 Upgrade Required\r\n", 31), "426 status line: %s",
          out);
    CHECK(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n") != NULL, "426 names version 13");
    CHECK(strstr(out, "\r\nConnection: close\r\n") != NULL, "error says Connection: close");
    const char *body = strstr(out, "\r\n\r\n");
    const char *cl = strstr(out, "Content-Length: ");
    CHECK(body && cl && (size_t)atoi(cl + 16) == strlen(body + 4), "Content-Length matches body");
    CHECK_EQ(ws_handshake_response(&h, out, 20), 0, "too small a buffer: 0");
}

int main(void)
{
    guard_init();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
    test_nul_byte();
    test_trailing_bytes();
    test_size_bound();
    test_responses();
    return unit_finish();
}
