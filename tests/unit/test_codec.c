/* Unit tests for the MQTT codec (core/codec.c, core/codec_props.c): tables of valid packets and of
 * malformed ones for 3.1, 3.1.1 and 5, a property placement matrix, and encode -> decode round
 * trips. Every packet is also decoded split at each byte and placed against a guard page, so an
 * over-read crashes. One program; exits non-zero on any failure. */
#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "unit.h"
#include "util/buf.h"
#include "util/err.h"

#define BODY(s) (const uint8_t *)(s), sizeof(s) - 1
#define BYTES(s) ((struct codec_bytes){(const uint8_t *)(s), sizeof(s) - 1})

static uint8_t *guard;
static size_t pagesz;

static void guard_init(void)
{
    pagesz = (size_t)sysconf(_SC_PAGESIZE);
    guard = mmap(NULL, 2 * pagesz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard == MAP_FAILED || mprotect(guard + pagesz, pagesz, PROT_NONE) != 0) {
        perror("guard page");
        exit(2);
    }
}

/* Copies p[0..n) so that it ends exactly at the inaccessible page. */
static const uint8_t *at_guard(const uint8_t *p, size_t n)
{
    uint8_t *dst = guard + pagesz - n;
    if (n)
        memcpy(dst, p, n);
    return dst;
}

/* Decodes a whole packet: the fixed header, then the body, both against the guard page. */
static int decode_packet(uint8_t ver, const uint8_t *pkt, size_t n, struct codec_packet *out)
{
    uint8_t first;
    uint32_t rem;
    size_t hl;
    const uint8_t *g = at_guard(pkt, n);
    int rc = codec_parse_fixed_header(g, n, &first, &rem, &hl);
    if (rc != 0)
        return rc;
    if (hl + rem != n)
        return TIDE_EINVAL; /* the test's own packet is inconsistent */
    g = at_guard(pkt + hl, rem);
    return codec_decode(ver, first, g, rem, out);
}

/* Runs one packet: whole (result must be `expect`), split at every byte through the fixed-header
 * parser (EPARTIAL until the header is complete), and every truncated body against the guard. */
static void run_packet(const char *name, uint8_t ver, const uint8_t *pkt, size_t n, int expect)
{
    struct codec_packet out;
    uint8_t first, f2;
    uint32_t rem, r2;
    size_t hl, h2;
    int rc = decode_packet(ver, pkt, n, &out);
    CHECK(rc == expect, "%s: got %d (%s), want %d", name, rc, tide_strerror(rc), expect);
    if (codec_parse_fixed_header(pkt, n, &first, &rem, &hl) != 0)
        return;
    for (size_t k = 0; k < n; k++) {
        rc = codec_parse_fixed_header(at_guard(pkt, k), k, &f2, &r2, &h2);
        if (k < hl) {
            CHECK(rc == TIDE_EPARTIAL, "%s: split %zu: got %d, want EPARTIAL", name, k, rc);
        } else {
            CHECK(rc == 0 && f2 == first && r2 == rem && h2 == hl, "%s: split %zu", name, k);
            /* a short body must never be read past its end (result does not matter) */
            (void)codec_decode(ver, first, at_guard(pkt + hl, k - hl), k - hl, &out);
        }
    }
}

/* Builds first byte + remaining length + body into b. */
static void frame(struct buf *b, uint8_t first, const uint8_t *body, size_t len)
{
    buf_reset(b);
    buf_put_u8(b, first);
    buf_put_varint(b, (uint32_t)len);
    buf_append(b, body, len);
}

struct pcase {
    const char *name;
    uint8_t ver;
    uint8_t first;
    const uint8_t *body;
    size_t len;
    int expect;
};

#define OK 0
#define MAL TIDE_EMALFORMED
#define PROTO TIDE_EPROTOCOL

/* Valid packets in every version: each decodes to 0. */
static const struct pcase valid[] = {
    {"connect 3.1 MQIsdp", 3, 0x10, BODY("\0\6MQIsdp\3\2\0\x3c\0\3abc"), OK},
    {"connect 3.1.1 empty client id", 4, 0x10, BODY("\0\4MQTT\4\2\0\x3c\0\0"), OK},
    {"connect 3.1.1 will user password", 4, 0x10,
     BODY("\0\4MQTT\4\xee\0\x3c\0\2id\0\1t\0\2wp\0\1u\0\2pw"), OK},
    {"connect 3.1.1 binary password", 4, 0x10, BODY("\0\4MQTT\4\xc2\0\0\0\1c\0\1u\0\2\xff\0"), OK},
    {"connect 5 minimal", 5, 0x10, BODY("\0\4MQTT\5\2\0\x3c\0\0\0"), OK},
    {"connect 5 will props", 5, 0x10,
     BODY("\0\4MQTT\5\x2e\0\x3c\5\x11\0\0\0\x10\0\1c\5\x18\0\0\0\5\0\1t\0\0"), OK},
    {"connect 5 password without username", 5, 0x10, BODY("\0\4MQTT\5\x42\0\0\0\0\1c\0\2pw"), OK},
    {"connect 5 auth method+data", 5, 0x10,
     BODY("\0\4MQTT\5\2\0\0\x0b\x15\0\3scr\x16\0\2\0\xff\0\1c"), OK},
    {"connack 3.1.1", 4, 0x20, BODY("\0\0"), OK},
    {"connack 3.1.1 session present", 4, 0x20, BODY("\1\0"), OK},
    {"connack 3.1.1 rc 5", 4, 0x20, BODY("\0\5"), OK},
    {"connack 5", 5, 0x20, BODY("\0\0\0"), OK},
    {"connack 5 max qos", 5, 0x20, BODY("\0\x87\2\x24\0"), OK},
    {"publish 3.1.1 qos0", 4, 0x30, BODY("\0\3a/bhello"), OK},
    {"publish 3.1.1 qos1 dup retain", 4, 0x3b, BODY("\0\3a/b\0\7x"), OK},
    {"publish 3.1.1 qos2 empty payload", 4, 0x34, BODY("\0\1t\x12\x34"), OK},
    {"publish 3.1 qos0", 3, 0x30, BODY("\0\1t"), OK},
    {"publish 3.1.1 multibyte topic", 4, 0x30,
     BODY("\0\12\xc3\xa9\xe2\x82\xac\x61\xf0\x9f\x98\x80"), OK},
    {"publish 5 qos0", 5, 0x30, BODY("\0\1t\0pl"), OK},
    {"publish 5 alias, empty topic", 5, 0x32, BODY("\0\0\0\1\3\x23\0\1x"), OK},
    {"publish 5 two subscription ids", 5, 0x30, BODY("\0\1t\4\x0b\1\x0b\2"), OK},
    {"publish 5 binary correlation", 5, 0x30, BODY("\0\1t\5\x09\0\2\xff\0"), OK},
    {"puback 3.1.1", 4, 0x40, BODY("\0\1"), OK},
    {"pubrec 3.1.1", 4, 0x50, BODY("\0\1"), OK},
    {"pubrel 3.1.1", 4, 0x62, BODY("\0\1"), OK},
    {"pubcomp 3.1.1", 4, 0x70, BODY("\xff\xff"), OK},
    {"puback 5 short", 5, 0x40, BODY("\0\1"), OK},
    {"puback 5 reason only", 5, 0x40, BODY("\0\1\x10"), OK},
    {"puback 5 empty props", 5, 0x40, BODY("\0\1\x80\0"), OK},
    {"puback 5 reason string", 5, 0x40, BODY("\0\1\0\3\x1f\0\0"), OK},
    {"pubrec 5 0x91", 5, 0x50, BODY("\0\1\x91"), OK},
    {"pubrel 5 0x92", 5, 0x62, BODY("\0\1\x92"), OK},
    {"pubcomp 5 user prop", 5, 0x70, BODY("\0\1\0\6\x26\0\1k\0\0"), OK},
    {"subscribe 3.1.1", 4, 0x82, BODY("\0\1\0\3a/b\1"), OK},
    {"subscribe 3.1.1 two", 4, 0x82, BODY("\0\2\0\1a\0\0\1b\2"), OK},
    {"subscribe 5 all options", 5, 0x82, BODY("\0\1\0\0\1a\x2e"), OK},
    {"subscribe 5 sub id", 5, 0x82, BODY("\0\1\2\x0b\x7f\0\1a\0"), OK},
    {"unsubscribe 3.1.1", 4, 0xa2, BODY("\0\1\0\1a"), OK},
    {"unsubscribe 5 two", 5, 0xa2, BODY("\0\1\0\0\1a\0\1b"), OK},
    {"suback 3.1.1", 4, 0x90, BODY("\0\1\0\1\2\x80"), OK},
    {"suback 5", 5, 0x90, BODY("\0\1\0\x97"), OK},
    {"unsuback 3.1.1", 4, 0xb0, BODY("\0\1"), OK},
    {"unsuback 5", 5, 0xb0, BODY("\0\1\0\x11"), OK},
    {"pingreq", 4, 0xc0, BODY(""), OK},
    {"pingresp", 5, 0xd0, BODY(""), OK},
    {"disconnect 3.1.1", 4, 0xe0, BODY(""), OK},
    {"disconnect 5 empty", 5, 0xe0, BODY(""), OK},
    {"disconnect 5 with will", 5, 0xe0, BODY("\x04"), OK},
    {"disconnect 5 empty props", 5, 0xe0, BODY("\x8e\0"), OK},
    {"disconnect 5 session expiry", 5, 0xe0, BODY("\0\5\x11\0\0\0\x3c"), OK},
    {"auth 5 empty", 5, 0xf0, BODY(""), OK},
    {"auth 5 continue", 5, 0xf0, BODY("\x18\6\x15\0\3abc"), OK},
};

/* The malformed-input catalogue, each with the code it must give. */
static const struct pcase bad[] = {
    /* fixed header [MQTT-2.2.2-1] [MQTT-2.2.2-2] */
    {"reserved type 0", 4, 0x00, BODY(""), MAL},
    {"auth before v5", 4, 0xf0, BODY(""), MAL},
    {"connect flags 0001", 4, 0x11, BODY("\0\4MQTT\4\2\0\0\0\0"), MAL},
    {"pubrel flags 0000", 4, 0x60, BODY("\0\1"), MAL},
    {"subscribe flags 0000", 4, 0x80, BODY("\0\1\0\1a\0"), MAL},
    {"unsubscribe flags 0011", 5, 0xa3, BODY("\0\1\0\0\1a"), MAL},
    {"puback flags 0010", 4, 0x42, BODY("\0\1"), MAL},
    {"pingreq flags 0001", 4, 0xc1, BODY(""), MAL},
    {"disconnect flags 0010", 5, 0xe2, BODY(""), MAL},
    /* CONNECT */
    {"connect wrong name [MQTT-3.1.2-1]", 4, 0x10, BODY("\0\4MQTX\4\2\0\0\0\0"), PROTO},
    {"connect MQTT level 3", 4, 0x10, BODY("\0\4MQTT\3\2\0\0\0\0"), TIDE_EVERSION},
    {"connect MQTT level 6", 4, 0x10, BODY("\0\4MQTT\6\2\0\0\0\0"), TIDE_EVERSION},
    {"connect MQIsdp level 4", 4, 0x10, BODY("\0\6MQIsdp\4\2\0\0\0\0"), TIDE_EVERSION},
    {"connect no level", 4, 0x10, BODY("\0\4MQTT"), MAL},
    {"connect name runs past", 4, 0x10, BODY("\0\7MQTT"), MAL},
    {"connect reserved flag [MQTT-3.1.2-3]", 4, 0x10, BODY("\0\4MQTT\4\3\0\0\0\0"), MAL},
    {"connect will qos 3 [MQTT-3.1.2-14]", 4, 0x10, BODY("\0\4MQTT\4\x1e\0\0\0\0\0\1t\0\0"), MAL},
    {"connect will qos w/o will [MQTT-3.1.2-13]", 4, 0x10, BODY("\0\4MQTT\4\x0a\0\0\0\0"), MAL},
    {"connect will retain w/o will [MQTT-3.1.2-15]", 5, 0x10, BODY("\0\4MQTT\5\x22\0\0\0\0\0"),
     MAL},
    {"connect 3.1.1 password w/o user [MQTT-3.1.2-22]", 4, 0x10,
     BODY("\0\4MQTT\4\x42\0\0\0\0\0\1p"), MAL},
    {"connect 3.1 password w/o user", 3, 0x10, BODY("\0\6MQIsdp\3\x42\0\0\0\1c\0\1p"), MAL},
    {"connect no keepalive", 4, 0x10, BODY("\0\4MQTT\4\2\0"), MAL},
    {"connect client id runs past", 4, 0x10, BODY("\0\4MQTT\4\2\0\0\0\5ab"), MAL},
    {"connect trailing byte", 4, 0x10, BODY("\0\4MQTT\4\2\0\0\0\0\0"), MAL},
    {"connect missing username", 4, 0x10, BODY("\0\4MQTT\4\x82\0\0\0\0"), MAL},
    {"connect missing will payload", 4, 0x10, BODY("\0\4MQTT\4\x06\0\0\0\0\0\1t"), MAL},
    {"connect client id U+0000 [MQTT-1.5.4-2]", 4, 0x10, BODY("\0\4MQTT\4\2\0\0\0\2a\0"), MAL},
    {"connect username overlong NUL", 4, 0x10, BODY("\0\4MQTT\4\x82\0\0\0\0\0\2\xc0\x80"), MAL},
    {"connect will topic surrogate [MQTT-1.5.4-1]", 4, 0x10,
     BODY("\0\4MQTT\4\6\0\0\0\0\0\3\xed\xa0\x80\0\0"), MAL},
    {"connect 5 props run past", 5, 0x10, BODY("\0\4MQTT\5\2\0\0\x09\x11\0\0\0\0\0\0"), MAL},
    {"connect 5 no props length", 5, 0x10, BODY("\0\4MQTT\5\2\0\0"), MAL},
    {"connect 5 receive max 0", 5, 0x10, BODY("\0\4MQTT\5\2\0\0\3\x21\0\0\0\0"), PROTO},
    {"connect 5 max packet size 0", 5, 0x10, BODY("\0\4MQTT\5\2\0\0\5\x27\0\0\0\0\0\0"), PROTO},
    {"connect 5 request problem info 2", 5, 0x10, BODY("\0\4MQTT\5\2\0\0\2\x17\2\0\0"), PROTO},
    {"connect 5 request response info 2", 5, 0x10, BODY("\0\4MQTT\5\2\0\0\2\x19\2\0\0"), PROTO},
    {"connect 5 session expiry twice", 5, 0x10,
     BODY("\0\4MQTT\5\2\0\0\x0a\x11\0\0\0\1\x11\0\0\0\2\0\0"), PROTO},
    {"connect 5 auth data without method", 5, 0x10, BODY("\0\4MQTT\5\2\0\0\3\x16\0\0\0\0"), PROTO},
    {"connect 5 unknown prop 0x04", 5, 0x10, BODY("\0\4MQTT\5\2\0\0\2\x04\0\0\0"), MAL},
    {"connect 5 unknown prop 0x80", 5, 0x10, BODY("\0\4MQTT\5\2\0\0\2\x80\1\0\0"), MAL},
    {"connect 5 server keepalive", 5, 0x10, BODY("\0\4MQTT\5\2\0\0\3\x13\0\1\0\0"), MAL},
    {"connect 5 will props topic alias", 5, 0x10, BODY("\0\4MQTT\5\6\0\0\0\0\0\3\x23\0\1\0\1t\0\0"),
     MAL},
    {"connect 5 will payload format 2", 5, 0x10, BODY("\0\4MQTT\5\6\0\0\0\0\0\2\x01\2\0\1t\0\0"),
     PROTO},
    {"connect 5 will delay twice", 5, 0x10,
     BODY("\0\4MQTT\5\6\0\0\0\0\0\x0a\x18\0\0\0\1\x18\0\0\0\1\0\1t\0\0"), PROTO},
    {"connect 5 will props run past", 5, 0x10, BODY("\0\4MQTT\5\6\0\0\0\0\0\x09\x18\0\0"), MAL},
    /* CONNACK */
    {"connack 3.1.1 reserved flags [MQTT-3.2.2-1]", 4, 0x20, BODY("\2\0"), MAL},
    {"connack 3.1.1 too long", 4, 0x20, BODY("\0\0\0"), MAL},
    {"connack 3.1.1 too short", 4, 0x20, BODY("\0"), MAL},
    {"connack 3.1.1 rc 6", 4, 0x20, BODY("\0\6"), PROTO},
    {"connack 5 reason 0x01", 5, 0x20, BODY("\0\1\0"), PROTO},
    {"connack 5 max qos 2", 5, 0x20, BODY("\0\0\2\x24\2"), PROTO},
    {"connack 5 retain available 2", 5, 0x20, BODY("\0\0\2\x25\2"), PROTO},
    {"connack 5 wildcard available 2", 5, 0x20, BODY("\0\0\2\x28\2"), PROTO},
    {"connack 5 sub id available 2", 5, 0x20, BODY("\0\0\2\x29\2"), PROTO},
    {"connack 5 shared available 2", 5, 0x20, BODY("\0\0\2\x2a\2"), PROTO},
    {"connack 5 receive max 0", 5, 0x20, BODY("\0\0\3\x21\0\0"), PROTO},
    {"connack 5 will delay", 5, 0x20, BODY("\0\0\5\x18\0\0\0\0"), MAL},
    /* PUBLISH */
    {"publish qos 3 [MQTT-3.3.1-4]", 4, 0x36, BODY("\0\1t\0\1"), MAL},
    {"publish qos 0 dup [MQTT-3.3.1-2]", 4, 0x38, BODY("\0\1t"), MAL},
    {"publish qos 1 packet id 0 [MQTT-2.2.1-3]", 4, 0x32, BODY("\0\1t\0\0"), PROTO},
    {"publish qos 2 packet id 0", 5, 0x34, BODY("\0\1t\0\0\0"), PROTO},
    {"publish missing packet id", 4, 0x32, BODY("\0\1t"), MAL},
    {"publish empty body", 4, 0x30, BODY(""), MAL},
    {"publish topic runs past", 4, 0x30, BODY("\0\5abc"), MAL},
    {"publish topic lone continuation", 4, 0x30, BODY("\0\1\x80"), MAL},
    {"publish topic > U+10FFFF", 4, 0x30, BODY("\0\4\xf4\x90\x80\x80"), MAL},
    {"publish topic 5-byte lead", 4, 0x30, BODY("\0\1\xf8"), MAL},
    {"publish topic truncated sequence", 4, 0x30, BODY("\0\1\xc3"), MAL},
    {"publish topic overlong 3-byte", 4, 0x30, BODY("\0\3\xe0\x80\xaf"), MAL},
    {"publish topic U+0000", 5, 0x30, BODY("\0\1\0\0"), MAL},
    {"publish 5 missing props", 5, 0x30, BODY("\0\1t"), MAL},
    {"publish 5 props run past", 5, 0x30, BODY("\0\1t\7\x23\0\1"), MAL},
    {"publish 5 props length truncated varint", 5, 0x30, BODY("\0\1t\x80"), MAL},
    {"publish 5 topic alias 0", 5, 0x30, BODY("\0\1t\3\x23\0\0"), PROTO},
    {"publish 5 topic alias twice", 5, 0x30, BODY("\0\1t\6\x23\0\1\x23\0\2"), PROTO},
    {"publish 5 payload format 2", 5, 0x30, BODY("\0\1t\2\1\2"), PROTO},
    {"publish 5 sub id 0", 5, 0x30, BODY("\0\1t\2\x0b\0"), PROTO},
    {"publish 5 sub id 5-byte varint", 5, 0x30, BODY("\0\1t\6\x0b\xff\xff\xff\xff\1"), MAL},
    {"publish 5 sub id truncated varint", 5, 0x30, BODY("\0\1t\2\x0b\x80"), MAL},
    {"publish 5 session expiry", 5, 0x30, BODY("\0\1t\5\x11\0\0\0\1"), MAL},
    {"publish 5 content type bad utf-8", 5, 0x30, BODY("\0\1t\4\3\0\1\xff"), MAL},
    {"publish 5 content type twice", 5, 0x30, BODY("\0\1t\6\3\0\0\3\0\0"), PROTO},
    {"publish 5 user name U+0000", 5, 0x30, BODY("\0\1t\6\x26\0\1\0\0\0"), MAL},
    {"publish 5 user value surrogate", 5, 0x30, BODY("\0\1t\x08\x26\0\0\0\3\xed\xbf\xbf"), MAL},
    {"publish 5 user value runs past", 5, 0x30, BODY("\0\1t\6\x26\0\1k\0\3"), MAL},
    {"publish 5 message expiry short", 5, 0x30, BODY("\0\1t\3\2\0\0"), MAL},
    /* PUBACK, PUBREC, PUBREL, PUBCOMP */
    {"puback 3.1.1 too long", 4, 0x40, BODY("\0\1\0"), MAL},
    {"puback too short", 4, 0x40, BODY("\0"), MAL},
    {"puback packet id 0", 4, 0x40, BODY("\0\0"), PROTO},
    {"pubrec 5 packet id 0", 5, 0x50, BODY("\0\0\x10"), PROTO},
    {"puback 5 reason 0x92", 5, 0x40, BODY("\0\1\x92"), PROTO},
    {"pubrec 5 reason 0x01", 5, 0x50, BODY("\0\1\1"), PROTO},
    {"pubrel 5 reason 0x10", 5, 0x62, BODY("\0\1\x10"), PROTO},
    {"pubcomp 5 reason 0x80", 5, 0x70, BODY("\0\1\x80\0"), PROTO},
    {"pubrec 5 trailing after props", 5, 0x50, BODY("\0\1\0\0\0"), MAL},
    {"puback 5 props run past", 5, 0x40, BODY("\0\1\0\4\x1f\0"), MAL},
    {"puback 5 content type", 5, 0x40, BODY("\0\1\0\3\3\0\0"), MAL},
    {"puback 5 reason string twice", 5, 0x40, BODY("\0\1\0\6\x1f\0\0\x1f\0\0"), PROTO},
    /* SUBSCRIBE, UNSUBSCRIBE */
    {"subscribe 3.1.1 empty [MQTT-3.8.3-3]", 4, 0x82, BODY("\0\1"), MAL},
    {"subscribe 5 empty", 5, 0x82, BODY("\0\1\0"), PROTO},
    {"subscribe packet id 0", 4, 0x82, BODY("\0\0\0\1a\0"), PROTO},
    {"subscribe 3.1.1 option bit 2", 4, 0x82, BODY("\0\1\0\1a\4"), MAL},
    {"subscribe 3.1.1 qos 3", 4, 0x82, BODY("\0\1\0\1a\3"), MAL},
    {"subscribe 5 option bit 6 [MQTT-3.8.3-5]", 5, 0x82, BODY("\0\1\0\0\1a\x40"), MAL},
    {"subscribe 5 option bit 7", 5, 0x82, BODY("\0\1\0\0\1a\x80"), MAL},
    {"subscribe 5 retain handling 3", 5, 0x82, BODY("\0\1\0\0\1a\x30"), MAL},
    {"subscribe 5 qos 3", 5, 0x82, BODY("\0\1\0\0\1a\3"), MAL},
    {"subscribe missing options", 4, 0x82, BODY("\0\1\0\1a"), MAL},
    {"subscribe second missing options", 4, 0x82, BODY("\0\1\0\1a\0\0\1b"), MAL},
    {"subscribe filter bad utf-8", 4, 0x82, BODY("\0\1\0\1\xfe\0"), MAL},
    {"subscribe 5 sub id twice", 5, 0x82, BODY("\0\1\4\x0b\1\x0b\2\0\1a\0"), PROTO},
    {"subscribe 5 sub id 0", 5, 0x82, BODY("\0\1\2\x0b\0\0\1a\0"), PROTO},
    {"subscribe 5 topic alias", 5, 0x82, BODY("\0\1\3\x23\0\1\0\1a\0"), MAL},
    {"unsubscribe 3.1.1 empty [MQTT-3.10.3-2]", 4, 0xa2, BODY("\0\1"), MAL},
    {"unsubscribe 5 empty", 5, 0xa2, BODY("\0\1\0"), PROTO},
    {"unsubscribe packet id 0", 5, 0xa2, BODY("\0\0\0\0\1a"), PROTO},
    {"unsubscribe filter runs past", 4, 0xa2, BODY("\0\1\0\2a"), MAL},
    {"unsubscribe 5 sub id", 5, 0xa2, BODY("\0\1\2\x0b\1\0\1a"), MAL},
    /* SUBACK, UNSUBACK */
    {"suback 3.1.1 code 3", 4, 0x90, BODY("\0\1\3"), PROTO},
    {"suback 3.1.1 no codes", 4, 0x90, BODY("\0\1"), MAL},
    {"suback 5 code 0x10", 5, 0x90, BODY("\0\1\0\x10"), PROTO},
    {"suback 5 no codes", 5, 0x90, BODY("\0\1\0"), PROTO},
    {"unsuback 3.1.1 with codes", 4, 0xb0, BODY("\0\1\0"), MAL},
    {"unsuback 5 code 0x02", 5, 0xb0, BODY("\0\1\0\2"), PROTO},
    /* PINGREQ, PINGRESP, DISCONNECT, AUTH */
    {"pingreq with body", 4, 0xc0, BODY("\0"), MAL},
    {"pingresp with body", 5, 0xd0, BODY("\0"), MAL},
    {"disconnect 3.1.1 with body", 4, 0xe0, BODY("\0"), MAL},
    {"disconnect 5 reason 0x05", 5, 0xe0, BODY("\x05"), PROTO},
    {"disconnect 5 trailing after props", 5, 0xe0, BODY("\0\0\0"), MAL},
    {"disconnect 5 receive max", 5, 0xe0, BODY("\0\3\x21\0\1"), MAL},
    {"disconnect 5 props run past", 5, 0xe0, BODY("\0\2\x11"), MAL},
    {"auth 5 reason 0x01", 5, 0xf0, BODY("\1"), PROTO},
    {"auth 5 session expiry", 5, 0xf0, BODY("\x18\5\x11\0\0\0\0"), MAL},
};

static void test_tables(void)
{
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        frame(&b, valid[i].first, valid[i].body, valid[i].len);
        run_packet(valid[i].name, valid[i].ver, b.data, b.len, valid[i].expect);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        frame(&b, bad[i].first, bad[i].body, bad[i].len);
        run_packet(bad[i].name, bad[i].ver, b.data, b.len, bad[i].expect);
    }
    buf_fini(&b);
}

static void test_fixed_header(void)
{
    static const struct {
        const char *name;
        const char *in;
        size_t len;
        int rc;
        uint32_t rem;
        size_t hl;
    } t[] = {
        {"empty", "", 0, TIDE_EPARTIAL, 0, 0},
        {"1 byte", "\x30", 1, TIDE_EPARTIAL, 0, 0},
        {"rl 0", "\xc0\0", 2, 0, 0, 2},
        {"rl 127", "\x30\x7f", 2, 0, 127, 2},
        {"rl 128", "\x30\x80\x01", 3, 0, 128, 3},
        {"rl 16383", "\x30\xff\x7f", 3, 0, 16383, 3},
        {"rl 16384", "\x30\x80\x80\x01", 4, 0, 16384, 4},
        {"rl max", "\x30\xff\xff\xff\x7f", 5, 0, CODEC_MAX_REMAINING, 5},
        {"rl continues", "\x30\xff\xff", 3, TIDE_EPARTIAL, 0, 0},
        {"rl 5 bytes", "\x30\xff\xff\xff\xff\x01", 6, TIDE_EMALFORMED, 0, 0},
        {"rl 5 bytes, 4 given", "\x30\xff\xff\xff\xff", 5, TIDE_EMALFORMED, 0, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint8_t first;
        uint32_t rem = 0;
        size_t hl = 0;
        const uint8_t *g = at_guard((const uint8_t *)t[i].in, t[i].len);
        int rc = codec_parse_fixed_header(g, t[i].len, &first, &rem, &hl);
        CHECK(rc == t[i].rc, "fixed header %s: got %d", t[i].name, rc);
        if (rc == 0)
            CHECK(rem == t[i].rem && hl == t[i].hl, "fixed header %s: values", t[i].name);
    }
}

static void test_utf8(void)
{
    static const struct {
        const char *in;
        size_t len;
        bool ok;
    } t[] = {
        {"", 0, true},
        {"abc", 3, true},
        {"\xc2\x80", 2, true},
        {"\xdf\xbf", 2, true},
        {"\xe0\xa0\x80", 3, true},
        {"\xed\x9f\xbf", 3, true},     /* U+D7FF */
        {"\xee\x80\x80", 3, true},     /* U+E000 */
        {"\xef\xbf\xbf", 3, true},     /* U+FFFF: a noncharacter, allowed */
        {"\xf4\x8f\xbf\xbf", 4, true}, /* U+10FFFF */
        {"\x01\x7f", 2, true},         /* control characters are allowed */
        {"\0", 1, false},
        {"\xc0\x80", 2, false},
        {"\xc1\xbf", 2, false},
        {"\xe0\x9f\xbf", 3, false},
        {"\xf0\x8f\xbf\xbf", 4, false},
        {"\xed\xa0\x80", 3, false},
        {"\xed\xbf\xbf", 3, false},
        {"\xf4\x90\x80\x80", 4, false},
        {"\xf5\x80\x80\x80", 4, false},
        {"\xff", 1, false},
        {"\x80", 1, false},
        {"\xc2", 1, false},
        {"\xe2\x82", 2, false},
        {"\xc2\x41", 2, false},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const uint8_t *g = at_guard((const uint8_t *)t[i].in, t[i].len);
        CHECK(codec_utf8_valid(g, t[i].len) == t[i].ok, "utf8 case %zu", i);
    }
}

/* CONNECT sets version even when a later field fails, and fields land where they should. */
static void test_connect_fields(void)
{
    static const struct {
        const char *name;
        uint8_t first;
        const uint8_t *body;
        size_t len;
        int rc;
        uint8_t version;
    } t[] = {
        {"3.1", 0x10, BODY("\0\6MQIsdp\3\2\0\0\0\1c"), 0, MQTT_V31},
        {"3.1.1", 0x10, BODY("\0\4MQTT\4\2\0\0\0\1c"), 0, MQTT_V311},
        {"5", 0x10, BODY("\0\4MQTT\5\2\0\0\0\0\1c"), 0, MQTT_V5},
        {"5 bad later", 0x10, BODY("\0\4MQTT\5\3\0\0\0\0\1c"), MAL, MQTT_V5},
        {"5 bad flags nibble", 0x12, BODY("\0\4MQTT\5\2\0\0\0\0\1c"), MAL, MQTT_V5},
        {"5 bad props", 0x10, BODY("\0\4MQTT\5\2\0\0\2\x23\0\0\1c"), MAL, MQTT_V5},
        {"MQTT level 3", 0x10, BODY("\0\4MQTT\3\2\0\0\0\1c"), TIDE_EVERSION, MQTT_V311},
        {"MQTT level 9", 0x10, BODY("\0\4MQTT\x09\2\0\0\0\1c"), TIDE_EVERSION, MQTT_V311},
        {"MQIsdp level 4", 0x10, BODY("\0\6MQIsdp\4\2\0\0\0\1c"), TIDE_EVERSION, MQTT_V31},
        {"MQIsdp level 5", 0x10, BODY("\0\6MQIsdp\5\2\0\0\0\1c"), TIDE_EVERSION, MQTT_V5},
        {"bad name level 5", 0x10, BODY("\0\4mqtt\5\2\0\0\0\1c"), PROTO, MQTT_V5},
        {"bad name level 4", 0x10, BODY("\0\3MQT\4\2\0\0\0\1c"), PROTO, MQTT_V311},
        {"truncated name", 0x10, BODY("\0\4MQ"), MAL, MQTT_V311},
    };
    struct codec_packet p;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int rc = codec_decode(MQTT_V311, t[i].first, at_guard(t[i].body, t[i].len), t[i].len, &p);
        CHECK(rc == t[i].rc, "connect %s: rc %d", t[i].name, rc);
        CHECK(p.u.connect.version == t[i].version, "connect %s: version %u", t[i].name,
              p.u.connect.version);
    }
    static const uint8_t full[] = "\0\4MQTT\4\xee\1\2\0\2id\0\1t\0\2wp\0\1u\0\2pw";
    int rc = codec_decode(MQTT_V5, 0x10, full, sizeof full - 1, &p);
    struct codec_connect *c = &p.u.connect;
    CHECK(rc == 0 && p.type == CODEC_CONNECT && c->version == MQTT_V311 && c->clean_start &&
              c->will_flag && c->will_retain && c->will_qos == 1 && c->has_username &&
              c->has_password && c->keepalive == 0x102,
          "connect 3.1.1 flags");
    CHECK(c->client_id.len == 2 && memcmp(c->client_id.p, "id", 2) == 0 && c->will_topic.len == 1 &&
              c->will_payload.len == 2 && c->username.len == 1 && c->password.len == 2 &&
              memcmp(c->password.p, "pw", 2) == 0,
          "connect 3.1.1 payload fields");
}

/* --- Round trips --- */

static bool bytes_eq(struct codec_bytes a, struct codec_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* a was built for encoding, b decoded from the result. */
static bool props_eq(const struct codec_props *a, const struct codec_props *b)
{
    uint64_t want = a->present;
    if (a->user_count)
        want |= CODEC_BIT(CODEC_PROP_USER);
    if (want != b->present)
        return false;
    if (a->payload_format != b->payload_format ||
        a->request_problem_info != b->request_problem_info ||
        a->request_response_info != b->request_response_info || a->max_qos != b->max_qos ||
        a->retain_available != b->retain_available ||
        a->wildcard_sub_available != b->wildcard_sub_available ||
        a->sub_id_available != b->sub_id_available ||
        a->shared_sub_available != b->shared_sub_available ||
        a->server_keepalive != b->server_keepalive || a->receive_max != b->receive_max ||
        a->topic_alias_max != b->topic_alias_max || a->topic_alias != b->topic_alias ||
        a->message_expiry != b->message_expiry || a->session_expiry != b->session_expiry ||
        a->will_delay != b->will_delay || a->max_packet_size != b->max_packet_size)
        return false;
    if (!bytes_eq(a->content_type, b->content_type) ||
        !bytes_eq(a->response_topic, b->response_topic) ||
        !bytes_eq(a->correlation_data, b->correlation_data) ||
        !bytes_eq(a->assigned_client_id, b->assigned_client_id) ||
        !bytes_eq(a->auth_method, b->auth_method) || !bytes_eq(a->auth_data, b->auth_data) ||
        !bytes_eq(a->response_info, b->response_info) ||
        !bytes_eq(a->server_reference, b->server_reference) ||
        !bytes_eq(a->reason_string, b->reason_string))
        return false;
    if (CODEC_HAS(a, CODEC_PROP_SUBSCRIPTION_ID) &&
        (b->sub_id != a->sub_id || b->sub_id_count != 1))
        return false;
    size_t ca = 0, cb = 0, bytes = 0;
    struct codec_user_prop ua, ub;
    uint32_t n = 0;
    while (codec_props_next_user(a, &ca, &ua)) {
        if (!codec_props_next_user(b, &cb, &ub) || !bytes_eq(ua.name, ub.name) ||
            !bytes_eq(ua.value, ub.value))
            return false;
        n++;
        bytes += ua.name.len + ua.value.len;
    }
    return !codec_props_next_user(b, &cb, &ub) && n == b->user_count && bytes == b->user_bytes;
}

static const struct codec_user_prop users[] = {
    {{(const uint8_t *)"k1", 2}, {(const uint8_t *)"v1", 2}},
    {{(const uint8_t *)"k1", 2}, {(const uint8_t *)"", 0}},
    {{(const uint8_t *)"\xc3\xa9", 2}, {(const uint8_t *)"value", 5}},
};

#define SET(pr, id) ((pr).present |= CODEC_BIT(id))

/* Encodes into b and decodes it back (as version ver), checking the packet is whole. */
static int reparse(const char *name, uint8_t ver, struct buf *b, struct codec_packet *out)
{
    run_packet(name, ver, b->data, b->len, 0);
    return decode_packet(ver, b->data, b->len, out);
}

static void test_roundtrip_connect(void)
{
    struct buf b;
    buf_init(&b);
    for (uint8_t ver = MQTT_V31; ver <= MQTT_V5; ver++) {
        for (int variant = 0; variant < 4; variant++) {
            struct codec_connect c = {0};
            struct codec_packet p;
            c.version = ver;
            c.clean_start = variant & 1;
            c.keepalive = (uint16_t)(60 * variant);
            c.client_id = BYTES("client-\xe2\x82\xac");
            if (variant >= 2) {
                c.will_flag = true;
                c.will_qos = (uint8_t)(variant - 1);
                c.will_retain = variant == 3;
                c.will_topic = BYTES("will/t");
                c.will_payload = BYTES("\0\xff bye");
                c.has_username = true;
                c.username = BYTES("user");
                c.has_password = true;
                c.password = BYTES("\xff\0pw");
            }
            if (ver == MQTT_V5 && variant >= 1) {
                SET(c.props, CODEC_PROP_SESSION_EXPIRY);
                c.props.session_expiry = 0xfffffffe;
                SET(c.props, CODEC_PROP_RECEIVE_MAX);
                c.props.receive_max = 20;
                SET(c.props, CODEC_PROP_MAX_PACKET_SIZE);
                c.props.max_packet_size = 1 << 20;
                SET(c.props, CODEC_PROP_TOPIC_ALIAS_MAX);
                c.props.topic_alias_max = 10;
                SET(c.props, CODEC_PROP_REQUEST_RESPONSE_INFO);
                c.props.request_response_info = 1;
                SET(c.props, CODEC_PROP_REQUEST_PROBLEM_INFO);
                c.props.request_problem_info = 0;
                SET(c.props, CODEC_PROP_AUTH_METHOD);
                c.props.auth_method = BYTES("SCRAM-SHA-256");
                SET(c.props, CODEC_PROP_AUTH_DATA);
                c.props.auth_data = BYTES("\0\1\2");
                c.props.user = users;
                c.props.user_count = 3;
                SET(c.will_props, CODEC_PROP_WILL_DELAY);
                c.will_props.will_delay = 30;
                SET(c.will_props, CODEC_PROP_PAYLOAD_FORMAT);
                c.will_props.payload_format = 1;
                SET(c.will_props, CODEC_PROP_MESSAGE_EXPIRY);
                c.will_props.message_expiry = 100;
                SET(c.will_props, CODEC_PROP_CONTENT_TYPE);
                c.will_props.content_type = BYTES("text/plain");
                SET(c.will_props, CODEC_PROP_RESPONSE_TOPIC);
                c.will_props.response_topic = BYTES("resp/t");
                SET(c.will_props, CODEC_PROP_CORRELATION_DATA);
                c.will_props.correlation_data = BYTES("\x01\x02");
                c.will_props.user = users + 1;
                c.will_props.user_count = 1;
            }
            buf_reset(&b);
            codec_encode_connect(&b, &c);
            int rc = reparse("rt connect", MQTT_V311, &b, &p);
            struct codec_connect *d = &p.u.connect;
            CHECK(rc == 0 && d->version == ver && d->clean_start == c.clean_start &&
                      d->keepalive == c.keepalive && d->will_flag == c.will_flag &&
                      d->will_qos == c.will_qos && d->will_retain == c.will_retain &&
                      d->has_username == c.has_username && d->has_password == c.has_password,
                  "rt connect v%u/%d header", ver, variant);
            CHECK(bytes_eq(d->client_id, c.client_id) && bytes_eq(d->username, c.username) &&
                      bytes_eq(d->password, c.password) && bytes_eq(d->will_topic, c.will_topic) &&
                      bytes_eq(d->will_payload, c.will_payload),
                  "rt connect v%u/%d payload", ver, variant);
            if (ver == MQTT_V5 && c.will_flag)
                CHECK(props_eq(&c.props, &d->props) && props_eq(&c.will_props, &d->will_props),
                      "rt connect v5/%d props", variant);
            else if (ver == MQTT_V5)
                CHECK(props_eq(&c.props, &d->props), "rt connect v5/%d props", variant);
        }
    }
    buf_fini(&b);
}

static void test_roundtrip_connack(void)
{
    struct buf b;
    struct codec_packet p;
    struct codec_props pr = {0};
    buf_init(&b);
    codec_encode_connack(&b, MQTT_V311, true, 0, NULL);
    CHECK(b.len == 4 && memcmp(b.data, "\x20\x02\x01\x00", 4) == 0, "connack 3.1.1 bytes");
    buf_reset(&b);
    codec_encode_connack(&b, MQTT_V5, false, 0x80, NULL);
    CHECK(b.len == 5 && memcmp(b.data, "\x20\x03\x00\x80\x00", 5) == 0, "connack 5 bytes");
    SET(pr, CODEC_PROP_SESSION_EXPIRY);
    pr.session_expiry = 3600;
    SET(pr, CODEC_PROP_ASSIGNED_CLIENT_ID);
    pr.assigned_client_id = BYTES("auto-1");
    SET(pr, CODEC_PROP_SERVER_KEEPALIVE);
    pr.server_keepalive = 30;
    SET(pr, CODEC_PROP_AUTH_METHOD);
    pr.auth_method = BYTES("m");
    SET(pr, CODEC_PROP_AUTH_DATA);
    pr.auth_data = BYTES("");
    SET(pr, CODEC_PROP_RESPONSE_INFO);
    pr.response_info = BYTES("info");
    SET(pr, CODEC_PROP_SERVER_REFERENCE);
    pr.server_reference = BYTES("other:1883");
    SET(pr, CODEC_PROP_REASON_STRING);
    pr.reason_string = BYTES("why");
    SET(pr, CODEC_PROP_RECEIVE_MAX);
    pr.receive_max = 65535;
    SET(pr, CODEC_PROP_TOPIC_ALIAS_MAX);
    pr.topic_alias_max = 0;
    SET(pr, CODEC_PROP_MAX_QOS);
    pr.max_qos = 1;
    SET(pr, CODEC_PROP_RETAIN_AVAILABLE);
    SET(pr, CODEC_PROP_MAX_PACKET_SIZE);
    pr.max_packet_size = 268435460;
    SET(pr, CODEC_PROP_WILDCARD_SUB_AVAILABLE);
    pr.wildcard_sub_available = 1;
    SET(pr, CODEC_PROP_SUB_ID_AVAILABLE);
    SET(pr, CODEC_PROP_SHARED_SUB_AVAILABLE);
    pr.shared_sub_available = 1;
    pr.user = users;
    pr.user_count = 2;
    buf_reset(&b);
    codec_encode_connack(&b, MQTT_V5, true, 0, &pr);
    int rc = reparse("rt connack", MQTT_V5, &b, &p);
    CHECK(rc == 0 && p.u.connack.session_present && p.u.connack.reason == 0 &&
              props_eq(&pr, &p.u.connack.props),
          "rt connack 5 all properties");
    buf_fini(&b);
}

static void test_roundtrip_publish(void)
{
    struct buf b;
    buf_init(&b);
    for (uint8_t ver = MQTT_V31; ver <= MQTT_V5; ver++) {
        for (uint8_t qos = 0; qos < 3; qos++) {
            struct codec_publish pub = {0};
            struct codec_packet p;
            pub.qos = qos;
            pub.dup = qos > 0;
            pub.retain = qos == 1;
            pub.topic = BYTES("a/b/\xf0\x9f\x98\x80");
            pub.packet_id = qos ? (uint16_t)(1000 * qos) : 0;
            pub.payload = BYTES("\0payload\xff");
            if (ver == MQTT_V5) {
                SET(pub.props, CODEC_PROP_PAYLOAD_FORMAT);
                SET(pub.props, CODEC_PROP_MESSAGE_EXPIRY);
                pub.props.message_expiry = 7;
                SET(pub.props, CODEC_PROP_CONTENT_TYPE);
                pub.props.content_type = BYTES("application/json");
                SET(pub.props, CODEC_PROP_RESPONSE_TOPIC);
                pub.props.response_topic = BYTES("r");
                SET(pub.props, CODEC_PROP_CORRELATION_DATA);
                pub.props.correlation_data = BYTES("\0\0");
                SET(pub.props, CODEC_PROP_TOPIC_ALIAS);
                pub.props.topic_alias = 3;
                SET(pub.props, CODEC_PROP_SUBSCRIPTION_ID);
                pub.props.sub_id = CODEC_MAX_REMAINING;
                pub.props.user = users;
                pub.props.user_count = 3;
            }
            buf_reset(&b);
            codec_encode_publish(&b, ver, &pub);
            int rc = reparse("rt publish", ver, &b, &p);
            struct codec_publish *d = &p.u.publish;
            CHECK(rc == 0 && d->qos == qos && d->dup == pub.dup && d->retain == pub.retain &&
                      d->packet_id == pub.packet_id && bytes_eq(d->topic, pub.topic) &&
                      bytes_eq(d->payload, pub.payload),
                  "rt publish v%u qos%u", ver, qos);
            if (ver == MQTT_V5)
                CHECK(props_eq(&pub.props, &d->props), "rt publish v5 qos%u props", qos);
        }
    }
    buf_fini(&b);
}

static void test_roundtrip_acks(void)
{
    struct buf b;
    struct codec_packet p;
    struct codec_props pr = {0};
    buf_init(&b);
    SET(pr, CODEC_PROP_REASON_STRING);
    pr.reason_string = BYTES("no");
    pr.user = users;
    pr.user_count = 1;
    for (uint8_t ver = MQTT_V311; ver <= MQTT_V5; ver++) {
        for (uint8_t type = CODEC_PUBACK; type <= CODEC_PUBCOMP; type++) {
            uint8_t reason = type <= CODEC_PUBREC ? 0x97 : 0x92;
            for (int form = 0; form < 3; form++) {
                uint8_t r = form == 0 ? 0 : reason;
                const struct codec_props *ppr = form == 2 ? &pr : NULL;
                buf_reset(&b);
                codec_encode_ack(&b, ver, type, 0xabcd, r, ppr);
                size_t want = ver != MQTT_V5 || form == 0 ? 4 : form == 1 ? 5 : b.len;
                CHECK(b.len == want, "ack %u v%u form %d length %zu", type, ver, form, b.len);
                int rc = reparse("rt ack", ver, &b, &p);
                struct codec_props empty = {0};
                CHECK(rc == 0 && p.type == type && p.u.ack.packet_id == 0xabcd &&
                          p.u.ack.reason == (ver == MQTT_V5 ? r : 0) &&
                          props_eq(ppr && ver == MQTT_V5 ? ppr : &empty, &p.u.ack.props),
                      "rt ack %u v%u form %d", type, ver, form);
            }
        }
    }
    buf_fini(&b);
}

static void test_roundtrip_subscribe(void)
{
    struct buf b;
    struct codec_packet p;
    struct codec_props pr = {0};
    const struct codec_bytes filters[] = {BYTES("a/+/c"), BYTES("#"), BYTES("$share/g/x")};
    const uint8_t opts[] = {0x00, 0x2e, 0x11};
    buf_init(&b);
    SET(pr, CODEC_PROP_SUBSCRIPTION_ID);
    pr.sub_id = 200;
    pr.user = users + 2;
    pr.user_count = 1;
    struct codec_props upr = {.user = users, .user_count = 3};
    for (uint8_t ver = MQTT_V311; ver <= MQTT_V5; ver++) {
        buf_reset(&b);
        codec_encode_subscribe(&b, ver, 7, &pr, filters, opts, 3);
        int rc = reparse("rt subscribe", ver, &b, &p);
        CHECK(rc == 0 && p.type == CODEC_SUBSCRIBE && p.flags == 2 &&
                  p.u.subscribe.packet_id == 7 && p.u.subscribe.count == 3,
              "rt subscribe v%u", ver);
        if (ver == MQTT_V5)
            CHECK(props_eq(&pr, &p.u.subscribe.props), "rt subscribe v5 props");
        size_t cur = 0, i = 0;
        struct codec_bytes f;
        uint8_t o;
        while (codec_next_filter(&p.u.subscribe, true, &cur, &f, &o)) {
            uint8_t want = ver == MQTT_V5 ? opts[i] : CODEC_SUBOPT_QOS(opts[i]);
            CHECK(i < 3 && bytes_eq(f, filters[i]) && o == want, "subscribe filter %zu", i);
            i++;
        }
        CHECK(i == 3, "subscribe filter count");

        buf_reset(&b);
        codec_encode_unsubscribe(&b, ver, 8, &upr, filters, 2);
        rc = reparse("rt unsubscribe", ver, &b, &p);
        CHECK(rc == 0 && p.type == CODEC_UNSUBSCRIBE && p.u.subscribe.packet_id == 8 &&
                  p.u.subscribe.count == 2,
              "rt unsubscribe v%u", ver);
        if (ver == MQTT_V5) /* no subscription identifier in UNSUBSCRIBE: users only */
            CHECK(props_eq(&upr, &p.u.subscribe.props), "rt unsubscribe v5 props");
        cur = i = 0;
        while (codec_next_filter(&p.u.subscribe, false, &cur, &f, &o)) {
            CHECK(i < 2 && bytes_eq(f, filters[i]) && o == 0, "unsubscribe filter %zu", i);
            i++;
        }
        CHECK(i == 2, "unsubscribe filter count");
    }
    buf_fini(&b);
}

static void test_roundtrip_suback(void)
{
    struct buf b;
    struct codec_packet p;
    struct codec_props pr = {0};
    const uint8_t codes[] = {0x00, 0x01, 0x02, 0x80};
    const uint8_t ucodes[] = {0x00, 0x11};
    buf_init(&b);
    SET(pr, CODEC_PROP_REASON_STRING);
    pr.reason_string = BYTES("ok");
    for (uint8_t ver = MQTT_V311; ver <= MQTT_V5; ver++) {
        buf_reset(&b);
        codec_encode_suback(&b, ver, CODEC_SUBACK, 9, &pr, codes, 4);
        int rc = reparse("rt suback", ver, &b, &p);
        CHECK(rc == 0 && p.u.suback.packet_id == 9 && p.u.suback.codes.len == 4 &&
                  memcmp(p.u.suback.codes.p, codes, 4) == 0,
              "rt suback v%u", ver);
        if (ver == MQTT_V5)
            CHECK(props_eq(&pr, &p.u.suback.props), "rt suback props");
        buf_reset(&b);
        codec_encode_suback(&b, ver, CODEC_UNSUBACK, 10, &pr, ucodes, 2);
        rc = reparse("rt unsuback", ver, &b, &p);
        CHECK(rc == 0 && p.u.suback.packet_id == 10 &&
                  p.u.suback.codes.len == (ver == MQTT_V5 ? 2u : 0u),
              "rt unsuback v%u", ver);
    }
    buf_fini(&b);
}

static void test_roundtrip_small(void)
{
    struct buf b;
    struct codec_packet p;
    struct codec_props pr = {0};
    buf_init(&b);
    codec_encode_empty(&b, CODEC_PINGREQ);
    codec_encode_empty(&b, CODEC_PINGRESP);
    codec_encode_disconnect(&b, MQTT_V311, 0x8e, &pr);
    codec_encode_disconnect(&b, MQTT_V5, 0, NULL);
    codec_encode_auth(&b, 0, NULL);
    CHECK(b.len == 10 && memcmp(b.data, "\xc0\0\xd0\0\xe0\0\xe0\0\xf0\0", 10) == 0, "2-byte forms");
    buf_reset(&b);
    codec_encode_disconnect(&b, MQTT_V5, 0x04, NULL);
    CHECK(b.len == 3 && memcmp(b.data, "\xe0\1\x04", 3) == 0, "disconnect reason-only form");
    SET(pr, CODEC_PROP_SESSION_EXPIRY);
    pr.session_expiry = 0;
    SET(pr, CODEC_PROP_SERVER_REFERENCE);
    pr.server_reference = BYTES("srv");
    SET(pr, CODEC_PROP_REASON_STRING);
    pr.reason_string = BYTES("bye");
    pr.user = users;
    pr.user_count = 3;
    buf_reset(&b);
    codec_encode_disconnect(&b, MQTT_V5, 0, &pr);
    int rc = reparse("rt disconnect", MQTT_V5, &b, &p);
    CHECK(rc == 0 && p.u.disconnect.reason == 0 && props_eq(&pr, &p.u.disconnect.props),
          "rt disconnect v5 props");
    struct codec_props ap = {0};
    SET(ap, CODEC_PROP_AUTH_METHOD);
    ap.auth_method = BYTES("SCRAM");
    SET(ap, CODEC_PROP_AUTH_DATA);
    ap.auth_data = BYTES("\x00\x01");
    SET(ap, CODEC_PROP_REASON_STRING);
    ap.reason_string = BYTES("more");
    ap.user = users;
    ap.user_count = 1;
    buf_reset(&b);
    codec_encode_auth(&b, 0x18, &ap);
    rc = reparse("rt auth", MQTT_V5, &b, &p);
    CHECK(rc == 0 && p.type == CODEC_AUTH && p.u.disconnect.reason == 0x18 &&
              props_eq(&ap, &p.u.disconnect.props),
          "rt auth props");
    buf_fini(&b);
}

/* The broker's per-subscriber head + the shared forwarded properties + the payload. */
static void test_publish_head(void)
{
    struct buf fwd, out;
    struct codec_packet p, q;
    buf_init(&fwd);
    buf_init(&out);
    static const uint8_t src[] = "\0\3a/b\0\5"
                                 "\x23\x26\0\1x\0\1y\x01\1\x02\0\0\0\x10\x23\0\4\x03\0\1c"
                                 "\x26\0\1z\0\0\x08\0\1r\x09\0\1\xaa"
                                 "PAYLOAD";
    /* decoded in place (not at the guard page, which later checks overwrite): p borrows src */
    int rc = codec_decode(MQTT_V5, 0x32, src, sizeof src - 1, &p);
    CHECK(rc == 0 && p.u.publish.props.user_count == 2, "head source decodes (%d)", rc);
    codec_encode_forward_props(&fwd, &p.u.publish.props);
    const uint32_t sids[] = {1, 300, CODEC_MAX_REMAINING};
    for (uint8_t ver = MQTT_V311; ver <= MQTT_V5; ver++) {
        for (int v = 0; v < 3; v++) {
            struct codec_publish_head h = {0};
            h.version = ver;
            h.qos = (uint8_t)v;
            h.dup = v == 2;
            h.retain = v == 1;
            h.topic = v == 1 && ver == MQTT_V5 ? BYTES("") : p.u.publish.topic;
            h.packet_id = 77;
            h.topic_alias = v == 1 ? 5 : 0;
            h.has_expiry = v != 0;
            h.message_expiry = 12;
            h.sub_ids = sids;
            h.sub_id_count = (size_t)v + 1;
            h.shared_props.p = fwd.data;
            h.shared_props.len = fwd.len;
            h.payload_len = p.u.publish.payload.len;
            buf_reset(&out);
            codec_encode_publish_head(&out, &h);
            buf_append(&out, p.u.publish.payload.p, p.u.publish.payload.len);
            CHECK(codec_publish_size(&h) == out.len, "publish size v%u/%d", ver, v);
            rc = reparse("publish head", ver, &out, &q);
            struct codec_publish *d = &q.u.publish;
            CHECK(rc == 0 && d->qos == h.qos && d->dup == h.dup && d->retain == h.retain &&
                      d->packet_id == (v ? 77 : 0) && bytes_eq(d->topic, h.topic) &&
                      bytes_eq(d->payload, p.u.publish.payload),
                  "publish head v%u/%d fields", ver, v);
            if (ver != MQTT_V5)
                continue;
            const struct codec_props *a = &p.u.publish.props, *z = &d->props;
            CHECK(z->payload_format == 1 && bytes_eq(z->content_type, a->content_type) &&
                      bytes_eq(z->response_topic, a->response_topic) &&
                      bytes_eq(z->correlation_data, a->correlation_data) && z->user_count == 2 &&
                      z->user_bytes == a->user_bytes,
                  "forwarded props v%d", v);
            CHECK(CODEC_HAS(z, CODEC_PROP_MESSAGE_EXPIRY) == h.has_expiry &&
                      (!h.has_expiry || z->message_expiry == 12) &&
                      z->topic_alias == h.topic_alias && z->sub_id_count == h.sub_id_count &&
                      z->sub_id == 1,
                  "per-delivery props v%d", v);
            size_t c1 = 0, c2 = 0, i = 0;
            struct codec_user_prop u1, u2;
            while (codec_props_next_user(a, &c1, &u1)) {
                CHECK(codec_props_next_user(z, &c2, &u2) && bytes_eq(u1.name, u2.name) &&
                          bytes_eq(u1.value, u2.value),
                      "forwarded user %zu in order", i);
                i++;
            }
            uint32_t sid;
            c1 = i = 0;
            while (codec_props_next_sub_id(z, &c1, &sid)) {
                CHECK(i < h.sub_id_count && sid == sids[i], "sub id %zu", i);
                i++;
            }
            CHECK(i == h.sub_id_count, "sub id count v%d", v);
        }
    }
    buf_fini(&fwd);
    buf_fini(&out);
}

/* Every property in every packet: allowed where the spec table (§2.2.2.2) says, Malformed
 * elsewhere; a second copy is a Protocol Error except user properties and PUBLISH sub ids. */
#define WILLCTX 16
#define M(t) (1u << (t))
static void test_placement(void)
{
    static const struct {
        uint8_t id;
        const char *val;
        size_t len;
        unsigned where;
    } props[] = {
        {0x01, "\x01", 1, M(CODEC_PUBLISH) | M(WILLCTX)},
        {0x02, "\0\0\0\1", 4, M(CODEC_PUBLISH) | M(WILLCTX)},
        {0x03, "\0\1a", 3, M(CODEC_PUBLISH) | M(WILLCTX)},
        {0x08, "\0\1a", 3, M(CODEC_PUBLISH) | M(WILLCTX)},
        {0x09, "\0\1\xff", 3, M(CODEC_PUBLISH) | M(WILLCTX)},
        {0x0b, "\x81\x01", 2, M(CODEC_PUBLISH) | M(CODEC_SUBSCRIBE)},
        {0x11, "\0\0\0\1", 4, M(CODEC_CONNECT) | M(CODEC_CONNACK) | M(CODEC_DISCONNECT)},
        {0x12, "\0\1a", 3, M(CODEC_CONNACK)},
        {0x13, "\0\1", 2, M(CODEC_CONNACK)},
        {0x15, "\0\1a", 3, M(CODEC_CONNECT) | M(CODEC_CONNACK) | M(CODEC_AUTH)},
        {0x16, "\0\1\xff", 3, M(CODEC_CONNECT) | M(CODEC_CONNACK) | M(CODEC_AUTH)},
        {0x17, "\x01", 1, M(CODEC_CONNECT)},
        {0x18, "\0\0\0\1", 4, M(WILLCTX)},
        {0x19, "\x01", 1, M(CODEC_CONNECT)},
        {0x1a, "\0\1a", 3, M(CODEC_CONNACK)},
        {0x1c, "\0\1a", 3, M(CODEC_CONNACK) | M(CODEC_DISCONNECT)},
        {0x1f, "\0\1a", 3,
         M(CODEC_CONNACK) | M(CODEC_PUBACK) | M(CODEC_PUBREC) | M(CODEC_PUBREL) | M(CODEC_PUBCOMP) |
             M(CODEC_SUBACK) | M(CODEC_UNSUBACK) | M(CODEC_DISCONNECT) | M(CODEC_AUTH)},
        {0x21, "\0\1", 2, M(CODEC_CONNECT) | M(CODEC_CONNACK)},
        {0x22, "\0\1", 2, M(CODEC_CONNECT) | M(CODEC_CONNACK)},
        {0x23, "\0\1", 2, M(CODEC_PUBLISH)},
        {0x24, "\x01", 1, M(CODEC_CONNACK)},
        {0x25, "\x01", 1, M(CODEC_CONNACK)},
        {0x26, "\0\1a\0\1b", 6,
         (0xffffu & ~(M(0) | M(CODEC_PINGREQ) | M(CODEC_PINGRESP))) | M(WILLCTX)},
        {0x27, "\0\0\1\0", 4, M(CODEC_CONNECT) | M(CODEC_CONNACK)},
        {0x28, "\x01", 1, M(CODEC_CONNACK)},
        {0x29, "\x01", 1, M(CODEC_CONNACK)},
        {0x2a, "\x01", 1, M(CODEC_CONNACK)},
    };
    static const uint8_t ctxs[] = {
        CODEC_CONNECT,     WILLCTX,        CODEC_CONNACK,    CODEC_PUBLISH,   CODEC_PUBACK,
        CODEC_PUBREC,      CODEC_PUBREL,   CODEC_PUBCOMP,    CODEC_SUBSCRIBE, CODEC_SUBACK,
        CODEC_UNSUBSCRIBE, CODEC_UNSUBACK, CODEC_DISCONNECT, CODEC_AUTH};
    struct buf body, pkt;
    buf_init(&body);
    buf_init(&pkt);
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++) {
        for (int copies = 1; copies <= 2; copies++) {
            uint8_t blk[32];
            size_t bl = 0;
            for (int k = 0; k < copies; k++) {
                blk[bl++] = props[i].id;
                memcpy(blk + bl, props[i].val, props[i].len);
                bl += props[i].len;
            }
            for (size_t j = 0; j < sizeof ctxs; j++) {
                uint8_t ctx = ctxs[j], first = (uint8_t)(ctx << 4);
                buf_reset(&body);
                switch (ctx) {
                case CODEC_CONNECT:
                    buf_append(&body, "\0\4MQTT\5\2\0\0", 10);
                    buf_put_varint(&body, (uint32_t)bl);
                    buf_append(&body, blk, bl);
                    buf_append(&body, "\0\1c", 3);
                    break;
                case WILLCTX:
                    first = 0x10;
                    buf_append(&body, "\0\4MQTT\5\6\0\0\0\0\1c", 14);
                    buf_put_varint(&body, (uint32_t)bl);
                    buf_append(&body, blk, bl);
                    buf_append(&body, "\0\1t\0\0", 5);
                    break;
                case CODEC_PUBLISH:
                    first = 0x32;
                    buf_append(&body, "\0\1t\0\1", 5);
                    buf_put_varint(&body, (uint32_t)bl);
                    buf_append(&body, blk, bl);
                    break;
                case CODEC_SUBSCRIBE:
                case CODEC_UNSUBSCRIBE:
                case CODEC_SUBACK:
                case CODEC_UNSUBACK:
                    if (ctx == CODEC_SUBSCRIBE || ctx == CODEC_UNSUBSCRIBE)
                        first |= 2;
                    buf_append(&body, "\0\1", 2);
                    buf_put_varint(&body, (uint32_t)bl);
                    buf_append(&body, blk, bl);
                    if (ctx == CODEC_SUBSCRIBE)
                        buf_append(&body, "\0\1t\0", 4);
                    else if (ctx == CODEC_UNSUBSCRIBE)
                        buf_append(&body, "\0\1t", 3);
                    else
                        buf_put_u8(&body, 0);
                    break;
                case CODEC_CONNACK:
                case CODEC_DISCONNECT:
                case CODEC_AUTH:
                    buf_append(&body, "\0", ctx == CODEC_CONNACK ? 1 : 0);
                    buf_put_u8(&body, 0);
                    buf_put_varint(&body, (uint32_t)bl);
                    buf_append(&body, blk, bl);
                    break;
                default: /* PUBACK..PUBCOMP */
                    if (ctx == CODEC_PUBREL)
                        first |= 2;
                    buf_append(&body, "\0\1\0", 3);
                    buf_put_varint(&body, (uint32_t)bl);
                    buf_append(&body, blk, bl);
                    break;
                }
                int want = 0;
                if (!(props[i].where & M(ctx)))
                    want = MAL;
                else if (copies == 2 && props[i].id != CODEC_PROP_USER &&
                         !(props[i].id == CODEC_PROP_SUBSCRIPTION_ID && ctx == CODEC_PUBLISH))
                    want = PROTO;
                else if (props[i].id == CODEC_PROP_AUTH_DATA && ctx == CODEC_CONNECT)
                    want = PROTO; /* Authentication Data without a Method */
                char name[64];
                snprintf(name, sizeof name, "prop 0x%02x x%d in ctx %u", props[i].id, copies, ctx);
                frame(&pkt, first, body.data, body.len);
                run_packet(name, MQTT_V5, pkt.data, pkt.len, want);
            }
        }
    }
    buf_fini(&body);
    buf_fini(&pkt);
}

/* Decoded properties can be re-encoded as they are (user properties and sub ids from raw). */
static void test_reencode_decoded(void)
{
    struct buf in, out;
    struct codec_packet p, q;
    static const uint8_t src[] = "\0\1t\x0e\x0b\1\x26\0\1a\0\1b\x0b\2\x23\0\3";
    buf_init(&in);
    buf_init(&out);
    frame(&in, 0x30, src, sizeof src - 1);
    int rc = decode_packet(MQTT_V5, in.data, in.len, &p);
    CHECK(rc == 0 && p.u.publish.props.sub_id_count == 2 && p.u.publish.props.user_count == 1,
          "multi sub id source");
    codec_encode_publish(&out, MQTT_V5, &p.u.publish);
    rc = reparse("reencode", MQTT_V5, &out, &q);
    CHECK(rc == 0 && q.u.publish.props.sub_id_count == 2 && q.u.publish.props.sub_id == 1 &&
              q.u.publish.props.user_count == 1 && q.u.publish.props.topic_alias == 3,
          "re-encoded decoded props");
    buf_fini(&in);
    buf_fini(&out);
}

int main(void)
{
    guard_init();
    test_fixed_header();
    test_utf8();
    test_tables();
    test_connect_fields();
    test_roundtrip_connect();
    test_roundtrip_connack();
    test_roundtrip_publish();
    test_roundtrip_acks();
    test_roundtrip_subscribe();
    test_roundtrip_suback();
    test_roundtrip_small();
    test_publish_head();
    test_placement();
    test_reencode_decoded();
    printf("test_codec: %zu valid + %zu malformed table cases\n", sizeof valid / sizeof valid[0],
           sizeof bad / sizeof bad[0]);
    return unit_finish();
}
