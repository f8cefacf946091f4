/* Unit tests for core/proxy_header.c (PROXY protocol v1/v2 framing and decoding) and
 * core/connect_rate.c (per-address token buckets), as tables of {name, input, expected}. Every
 * header is also fed in every split (the length must be partial before its end, and the bytes
 * consumed while partial must belong to it) and followed by trailing bytes that must not be
 * counted. Exits non-zero on any failure. */
#include "proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "connect_rate.h"
#include "unit.h"
#include "util/err.h"

struct header_case {
    const char *name;
    const char *bytes;
    size_t len; /* 0: strlen(bytes) */
    int length; /* proxy_header_length of the whole: > 0, or a TIDE_E* */
    int decode; /* proxy_header_decode: 0 or TIDE_EMALFORMED (when length > 0) */
    bool local;
    int family;
    const char *addr;
    unsigned port;
};

#define SIG "\r\n\r\n\0\r\nQUIT\n"
/* A header refused by proxy_header_length (length < 0) or by proxy_header_decode. */
#define BAD(name, bytes, len, length, decode)                                                      \
    {                                                                                              \
        name, bytes, len, length, decode, false, 0, NULL, 0                                        \
    }

static const struct header_case cases[] = {
    {"v1 TCP4", "PROXY TCP4 192.0.2.7 10.0.0.1 51234 1883\r\n", 0, 42, 0, false, AF_INET,
     "192.0.2.7", 51234},
    {"v1 TCP6", "PROXY TCP6 2001:db8::7 2001:db8::1 40000 1883\r\n", 0, 47, 0, false, AF_INET6,
     "2001:db8::7", 40000},
    {"v1 UNKNOWN", "PROXY UNKNOWN\r\n", 0, 15, 0, true, 0, NULL, 0},
    {"v1 UNKNOWN with addresses", "PROXY UNKNOWN ffff::1 ::1 1 2\r\n", 0, 31, 0, true, 0, NULL, 0},
    {"v1 port 0 and 65535", "PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n", 0, 36, 0, false, AF_INET,
     "1.2.3.4", 0},
    {"v1 longest",
     "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
     0, 104, 0, false, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535},
    BAD("v1 port too big", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 1883\r\n", 0, 39, TIDE_EMALFORMED),
    BAD("v1 port not digits", "PROXY TCP4 1.2.3.4 5.6.7.8 12a 1883\r\n", 0, 37, TIDE_EMALFORMED),
    BAD("v1 family mismatch", "PROXY TCP4 ::1 ::1 1 2\r\n", 0, 24, TIDE_EMALFORMED),
    BAD("v1 bad address", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", 0, 30, TIDE_EMALFORMED),
    BAD("v1 unknown protocol", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", 0, 32, TIDE_EMALFORMED),
    BAD("v1 missing field", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 0, 30, TIDE_EMALFORMED),
    BAD("v1 extra field", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", 0, 34, TIDE_EMALFORMED),
    BAD("v1 double space", "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", 0, 33, TIDE_EMALFORMED),
    BAD("v1 bare LF", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 0, TIDE_EMALFORMED, 0),
    BAD("v1 lower case", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 0, TIDE_EMALFORMED, 0),
    BAD("v1 without CRLF in 107 bytes",
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "65535 65535 xxxxxxxx",
        0, TIDE_ETOOBIG, 0),
    BAD("MQTT CONNECT instead", "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c", 12, TIDE_EMALFORMED, 0),
    BAD("TLS ClientHello instead", "\x16\x03\x01\x02\x00", 5, TIDE_EMALFORMED, 0),
    {"v2 PROXY TCP4",
     SIG "\x21\x11\x00\x0c"
         "\xc0\x00\x02\x07"
         "\x0a\x00\x00\x01"
         "\xc8\x22"
         "\x07\x5b",
     28, 28, 0, false, AF_INET, "192.0.2.7", 51234},
    {"v2 PROXY TCP6",
     SIG "\x21\x21\x00\x24"
         "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07"
         "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
         "\x9c\x40\x07\x5b",
     52, 52, 0, false, AF_INET6, "2001:db8::7", 40000},
    {"v2 PROXY TCP4 with TLVs",
     SIG "\x21\x11\x00\x14"
         "\xc0\x00\x02\x07"
         "\x0a\x00\x00\x01"
         "\xc8\x22\x07\x5b"
         "\x04\x00\x05hello",
     36, 36, 0, false, AF_INET, "192.0.2.7", 51234},
    {"v2 LOCAL", SIG "\x20\x00\x00\x00", 16, 16, 0, true, 0, NULL, 0},
    {"v2 LOCAL with addresses",
     SIG "\x20\x11\x00\x0c"
         "\x01\x02\x03\x04\x05\x06\x07\x08\0\1\0\2",
     28, 28, 0, true, 0, NULL, 0},
    {"v2 PROXY UNSPEC", SIG "\x21\x00\x00\x00", 16, 16, 0, true, 0, NULL, 0},
    {"v2 PROXY UNIX", SIG "\x21\x31\x00\x00", 16, 16, 0, true, 0, NULL, 0},
    BAD("v2 version 1",
        SIG "\x11\x11\x00\x0c"
            "\x01\x02\x03\x04\x05\x06\x07\x08\0\1\0\2",
        28, TIDE_EMALFORMED, 0),
    BAD("v2 command 2",
        SIG "\x22\x11\x00\x0c"
            "\x01\x02\x03\x04\x05\x06\x07\x08\0\1\0\2",
        28, 28, TIDE_EMALFORMED),
    BAD("v2 family 4",
        SIG "\x21\x41\x00\x0c"
            "\x01\x02\x03\x04\x05\x06\x07\x08\0\1\0\2",
        28, 28, TIDE_EMALFORMED),
    BAD("v2 TCP4 too short",
        SIG "\x21\x11\x00\x08"
            "\x01\x02\x03\x04\x05\x06\x07\x08",
        24, 24, TIDE_EMALFORMED),
    BAD("v2 length over the bound", SIG "\x21\x11\x04\x00", 16, TIDE_ETOOBIG, 0),
    BAD("v2 broken signature", "\r\n\r\n\0\r\nQUIZ\n\x21\x11\x00\x00", 16, TIDE_EMALFORMED, 0),
};

static void check_case(const struct header_case *c)
{
    size_t n = c->len ? c->len : strlen(c->bytes);
    const char *why = NULL;
    /* trailing bytes (a CONNECT) must not change the length */
    uint8_t *buf = malloc(n + 8);
    memcpy(buf, c->bytes, n);
    memcpy(buf + n, "\x10\x0c\x00\x04MQTT", 8);
    int len = proxy_header_length(buf, n + 8, &why);
    CHECK_EQ(len, c->length, "%s: length", c->name);
    if (c->length < 0)
        CHECK(why != NULL, "%s: no reason for %d", c->name, c->length);
    /* a prefix shorter than the header is partial, or already gives the whole's answer */
    size_t upto = c->length > 0 ? (size_t)c->length : n;
    for (size_t k = 0; k < upto; k++) {
        uint8_t *part = malloc(k ? k : 1); /* exact size: an over-read is an ASan error */
        memcpy(part, buf, k);
        int r = proxy_header_length(part, k, &why);
        /* v2 announces its length after 16 bytes: known before the header is complete */
        CHECK(r == TIDE_EPARTIAL || r == c->length, "%s: prefix of %zu bytes gave %d", c->name, k,
              r);
        free(part);
    }
    if (c->length > 0) {
        uint8_t *exact = malloc((size_t)c->length);
        memcpy(exact, buf, (size_t)c->length);
        struct proxy_header h;
        int r = proxy_header_decode(exact, (size_t)c->length, &h, &why);
        CHECK_EQ(r, c->decode, "%s: decode", c->name);
        if (r == 0 && c->decode == 0) {
            CHECK_EQ(h.local, c->local, "%s: local", c->name);
            if (!c->local) {
                char text[INET6_ADDRSTRLEN] = "";
                inet_ntop(h.family, h.addr, text, sizeof text);
                CHECK_EQ(h.family, c->family, "%s: family", c->name);
                CHECK_STR(text, c->addr, "%s: address", c->name);
                CHECK_EQ(h.port, c->port, "%s: port", c->name);
            }
        }
        free(exact);
    }
    free(buf);
}

static struct sockaddr_storage v4(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    inet_pton(AF_INET, text, &s4->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    inet_pton(AF_INET6, text, &s6->sin6_addr);
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static bool allowed(enum connect_rate_verdict v)
{
    return v == CONNECT_RATE_ALLOW || v == CONNECT_RATE_UNTRACKED ||
           v == CONNECT_RATE_UNTRACKED_FIRST;
}

static void check_connect_rate(void)
{
    /* 2 a second, bursts of 2 */
    struct connect_rate *r = connect_rate_new(2, 2, 4);
    struct sockaddr_storage a = v4("192.0.2.1"), b = v4("192.0.2.2");
    CHECK(allowed(connect_rate_check(r, SA(a), 1000)), "burst 1");
    CHECK(allowed(connect_rate_check(r, SA(a), 1000)), "burst 2");
    CHECK_EQ(connect_rate_check(r, SA(a), 1000), CONNECT_RATE_REFUSE_FIRST, "over the burst");
    CHECK_EQ(connect_rate_check(r, SA(a), 1100), CONNECT_RATE_REFUSE, "still over, not logged");
    CHECK(allowed(connect_rate_check(r, SA(b), 1100)), "another address is not affected");
    CHECK(allowed(connect_rate_check(r, SA(a), 1500)), "one token back after 500 ms");
    CHECK_EQ(connect_rate_check(r, SA(a), 1500), CONNECT_RATE_REFUSE_FIRST, "a new episode");
    /* refused attempts cost nothing: 500 ms later there is a token again */
    CHECK(allowed(connect_rate_check(r, SA(a), 2000)), "refusals did not cost tokens");

    /* IPv6 is grouped by /64; an IPv4-mapped address is its IPv4 address */
    struct sockaddr_storage x1 = v6("2001:db8:1:2::1"), x2 = v6("2001:db8:1:2:ffff::9"),
                            y = v6("2001:db8:1:3::1"), mapped = v6("::ffff:192.0.2.2");
    CHECK(allowed(connect_rate_check(r, SA(x1), 3000)), "v6 1");
    CHECK(allowed(connect_rate_check(r, SA(x2), 3000)), "v6 2, same /64");
    CHECK_EQ(connect_rate_check(r, SA(x1), 3000), CONNECT_RATE_REFUSE_FIRST, "v6 /64 over");
    CHECK(allowed(connect_rate_check(r, SA(y), 3000)), "v6 other /64");
    CHECK_EQ(connect_rate_sweep(r, 3000), 2, "a and b refilled by 3000: swept");
    CHECK(allowed(connect_rate_check(r, SA(mapped), 3000)), "mapped 1");
    CHECK(allowed(connect_rate_check(r, SA(b), 3000)), "b 2");
    CHECK_EQ(connect_rate_check(r, SA(mapped), 3000), CONNECT_RATE_REFUSE_FIRST,
             "mapped counts as its IPv4 address");

    /* bounded: 4 addresses at most; a fifth is untracked (allowed), reported once per sweep */
    CHECK_EQ(connect_rate_count(r), 3, "tracked");
    struct sockaddr_storage c = v4("192.0.2.3"), d = v4("192.0.2.4"), e = v4("192.0.2.5");
    CHECK(allowed(connect_rate_check(r, SA(c), 3000)), "c");
    CHECK_EQ(connect_rate_count(r), 4, "full");
    CHECK_EQ(connect_rate_check(r, SA(d), 3000), CONNECT_RATE_UNTRACKED_FIRST, "d untracked");
    CHECK_EQ(connect_rate_check(r, SA(e), 3000), CONNECT_RATE_UNTRACKED, "e untracked, quiet");
    CHECK_EQ(connect_rate_count(r), 4, "still bounded");
    CHECK_EQ(connect_rate_sweep(r, 10000), 4, "everything refilled: swept");
    CHECK_EQ(connect_rate_count(r), 0, "empty");
    CHECK_EQ(connect_rate_check(r, SA(d), 10000), CONNECT_RATE_ALLOW, "d tracked again");

    /* many addresses, swept: nothing leaks (ASan) and deletion during the sweep misses none */
    for (unsigned i = 0; i < 3; i++) {
        struct sockaddr_storage s = v4("198.51.100.0");
        ((uint8_t *)&((struct sockaddr_in *)&s)->sin_addr)[3] = (uint8_t)i;
        connect_rate_check(r, SA(s), 10000);
    }
    CHECK_EQ(connect_rate_sweep(r, 20000), 4, "all four swept");
    connect_rate_free(r);

    /* a huge rate does not overflow the refill */
    r = connect_rate_new(UINT32_MAX, UINT32_MAX, 8);
    CHECK(allowed(connect_rate_check(r, SA(a), 0)), "huge 1");
    CHECK(allowed(connect_rate_check(r, SA(a), UINT64_MAX / 2)), "huge after a long time");
    connect_rate_free(r);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
    check_connect_rate();
    return unit_finish();
}
