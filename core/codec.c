/* Decodes and encodes MQTT 3.1, 3.1.1 and 5 packets (properties live in codec_props.c).
 * Pure: reads only the bytes it is given and allocates nothing; decoded strings point into the
 * input. Validates every field a receiver must check, but not topic syntax, aliases or anything
 * that needs session state: those are the caller's. Encoders append whole packets to a struct buf.
 */
#include "codec.h"

#include <string.h>

#include "codec_internal.h"
#include "util/buf.h"
#include "util/err.h"

bool codec_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        if (c < 0x80) {
            if (c == 0)
                return false; /* [MQTT-1.5.4-2] no U+0000 */
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            n = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        /* [MQTT-1.5.4-1] no overlong forms, no surrogates, nothing past U+10FFFF */
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n;
    }
    return true;
}

int codec_parse_fixed_header(const uint8_t *p, size_t len, uint8_t *first_byte, uint32_t *remaining,
                             size_t *header_len)
{
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (len < i + 2)
            return TIDE_EPARTIAL;
        uint8_t byte = p[i + 1];
        v |= (uint32_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *first_byte = p[0];
            *remaining = v;
            *header_len = i + 2;
            return 0;
        }
    }
    return TIDE_EMALFORMED;
}

static bool in_list(uint8_t code, const uint8_t *list, size_t n)
{
    return memchr(list, code, n) != NULL;
}

/* Reason codes each packet may carry (MQTT 5 §3.2.2.2, §3.4.2.1, §3.5.2.1, §3.6.2.1, §3.7.2.1,
 * §3.9.3, §3.11.3, §3.14.2.1, §3.15.2.1). */
static const uint8_t rc_connack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                     0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97,
                                     0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f};
static const uint8_t rc_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
static const uint8_t rc_pubrel[] = {0x00, 0x92};
static const uint8_t rc_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                    0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2};
static const uint8_t rc_suback3[] = {0x00, 0x01, 0x02, 0x80};
static const uint8_t rc_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91};
static const uint8_t rc_disconnect[] = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d,
                                        0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                        0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2};
static const uint8_t rc_auth[] = {0x00, 0x18, 0x19};

static bool reason_ok(uint8_t type, uint8_t rc)
{
    switch (type) {
    case CODEC_PUBACK:
    case CODEC_PUBREC:
        return in_list(rc, rc_puback, sizeof rc_puback);
    case CODEC_PUBREL:
    case CODEC_PUBCOMP:
        return in_list(rc, rc_pubrel, sizeof rc_pubrel);
    case CODEC_DISCONNECT:
        return in_list(rc, rc_disconnect, sizeof rc_disconnect);
    default: /* CODEC_AUTH */
        return in_list(rc, rc_auth, sizeof rc_auth);
    }
}

static bool name_is(const struct codec_bytes *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->len == n && memcmp(s->p, lit, n) == 0;
}

/* Protocol name and level: sets c->version to the format the connection should be answered in,
 * before anything else can fail. */
static int connect_version(struct rd *r, struct codec_connect *c)
{
    struct codec_bytes name;
    uint8_t level;
    c->version = MQTT_V311;
    if (rd_bin(r, &name) != 0 || rd_u8(r, &level) != 0)
        return TIDE_EMALFORMED;
    bool isdp = name_is(&name, "MQIsdp"), mqtt = name_is(&name, "MQTT");
    c->version = level == MQTT_V5 ? MQTT_V5 : isdp ? MQTT_V31 : MQTT_V311;
    if ((isdp && level == MQTT_V31) || (mqtt && (level == MQTT_V311 || level == MQTT_V5)))
        return 0;
    /* [MQTT-3.1.2-1] a wrong name is a protocol error; [MQTT-3.1.2-2] a known name with an
     * unknown level gets "unacceptable protocol version". */
    return isdp || mqtt ? TIDE_EVERSION : TIDE_EPROTOCOL;
}

static int decode_connect(uint8_t flags, struct rd *r, struct codec_connect *c)
{
    uint8_t cf;
    int rc = connect_version(r, c);
    if (rc != 0)
        return rc;
    bool v5 = c->version == MQTT_V5;
    if (flags != 0)
        return TIDE_EMALFORMED; /* [MQTT-2.2.2-2] */
    if (rd_u8(r, &cf) != 0 || rd_u16(r, &c->keepalive) != 0)
        return TIDE_EMALFORMED;
    if (cf & 0x01)
        return TIDE_EMALFORMED; /* [MQTT-3.1.2-3] reserved flag */
    c->clean_start = cf & 0x02;
    c->will_flag = cf & 0x04;
    c->will_qos = (cf >> 3) & 0x03;
    c->will_retain = cf & 0x20;
    c->has_password = cf & 0x40;
    c->has_username = cf & 0x80;
    if (c->will_qos == 3)
        return TIDE_EMALFORMED; /* [MQTT-3.1.2-14] */
    if (!c->will_flag && (c->will_qos != 0 || c->will_retain))
        return TIDE_EMALFORMED; /* [MQTT-3.1.2-13] [MQTT-3.1.2-15] */
    if (!v5 && c->has_password && !c->has_username)
        return TIDE_EMALFORMED; /* [MQTT-3.1.2-22] */
    if (v5) {
        if ((rc = codec_props_decode(r, CODEC_CONNECT, &c->props)) != 0)
            return rc;
        /* §3.1.2.11.10: Authentication Data without a Method is a Protocol Error */
        if (CODEC_HAS(&c->props, CODEC_PROP_AUTH_DATA) &&
            !CODEC_HAS(&c->props, CODEC_PROP_AUTH_METHOD))
            return TIDE_EPROTOCOL;
    }
    if (rd_str(r, &c->client_id) != 0)
        return TIDE_EMALFORMED;
    if (c->will_flag) {
        if (v5 && (rc = codec_props_decode(r, CODEC_CTX_WILL, &c->will_props)) != 0)
            return rc;
        if (rd_str(r, &c->will_topic) != 0 || rd_bin(r, &c->will_payload) != 0)
            return TIDE_EMALFORMED;
    }
    if (c->has_username && rd_str(r, &c->username) != 0)
        return TIDE_EMALFORMED;
    if (c->has_password && rd_bin(r, &c->password) != 0)
        return TIDE_EMALFORMED;
    return rd_left(r) ? TIDE_EMALFORMED : 0;
}

static int decode_connack(bool v5, struct rd *r, struct codec_connack *a)
{
    uint8_t af;
    int rc;
    if (rd_u8(r, &af) != 0 || rd_u8(r, &a->reason) != 0)
        return TIDE_EMALFORMED;
    if (af & 0xfe)
        return TIDE_EMALFORMED; /* [MQTT-3.2.2-1] reserved bits */
    a->session_present = af & 0x01;
    if (v5 && (rc = codec_props_decode(r, CODEC_CONNACK, &a->props)) != 0)
        return rc;
    if (rd_left(r))
        return TIDE_EMALFORMED;
    if (v5 ? !in_list(a->reason, rc_connack, sizeof rc_connack) : a->reason > 5)
        return TIDE_EPROTOCOL;
    return 0;
}

static int decode_publish(bool v5, uint8_t flags, struct rd *r, struct codec_publish *p)
{
    int rc;
    p->qos = (flags >> 1) & 0x03;
    p->dup = flags & 0x08;
    p->retain = flags & 0x01;
    if (p->qos == 3)
        return TIDE_EMALFORMED; /* [MQTT-3.3.1-4] */
    if (p->dup && p->qos == 0)
        return TIDE_EMALFORMED; /* [MQTT-3.3.1-2] */
    if (rd_str(r, &p->topic) != 0)
        return TIDE_EMALFORMED;
    if (p->qos > 0) {
        if (rd_u16(r, &p->packet_id) != 0)
            return TIDE_EMALFORMED;
        if (p->packet_id == 0)
            return TIDE_EPROTOCOL; /* [MQTT-2.2.1-3] */
    }
    if (v5 && (rc = codec_props_decode(r, CODEC_PUBLISH, &p->props)) != 0)
        return rc;
    p->payload.p = r->p + r->pos;
    p->payload.len = rd_left(r);
    return 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP. v5 short forms: 2 bytes (reason 0), 3 (no properties). */
static int decode_ack(bool v5, uint8_t type, struct rd *r, struct codec_ack *a)
{
    int rc;
    if (rd_u16(r, &a->packet_id) != 0)
        return TIDE_EMALFORMED;
    if (a->packet_id == 0)
        return TIDE_EPROTOCOL; /* [MQTT-2.2.1-3] */
    if (!v5 || rd_left(r) == 0)
        return rd_left(r) ? TIDE_EMALFORMED : 0;
    if (rd_u8(r, &a->reason) != 0)
        return TIDE_EMALFORMED;
    if (rd_left(r) > 0) {
        if ((rc = codec_props_decode(r, type, &a->props)) != 0)
            return rc;
        if (rd_left(r))
            return TIDE_EMALFORMED;
    }
    return reason_ok(type, a->reason) ? 0 : TIDE_EPROTOCOL;
}

static int check_options(bool v5, uint8_t o)
{
    if (CODEC_SUBOPT_QOS(o) == 3)
        return TIDE_EMALFORMED; /* [MQTT-3-8.3-4] */
    if (!v5)
        return (o & 0xfc) ? TIDE_EMALFORMED : 0; /* [MQTT-3-8.3-4] 3.1.1 reserved bits */
    if ((o & 0xc0) || CODEC_SUBOPT_RH(o) == 3)
        return TIDE_EMALFORMED; /* [MQTT-3.8.3-5] reserved bits; QoS 3; Retain Handling 3 */
    return 0;
}

/* SUBSCRIBE and UNSUBSCRIBE. */
static int decode_subscribe(bool v5, uint8_t type, struct rd *r, struct codec_subscribe *s)
{
    int rc;
    bool sub = type == CODEC_SUBSCRIBE;
    if (rd_u16(r, &s->packet_id) != 0)
        return TIDE_EMALFORMED;
    if (s->packet_id == 0)
        return TIDE_EPROTOCOL; /* [MQTT-2.2.1-3] */
    if (v5 && (rc = codec_props_decode(r, type, &s->props)) != 0)
        return rc;
    s->list.p = r->p + r->pos;
    s->list.len = rd_left(r);
    while (rd_left(r) > 0) {
        struct codec_bytes f;
        uint8_t o;
        if (rd_str(r, &f) != 0)
            return TIDE_EMALFORMED;
        if (sub && (rd_u8(r, &o) != 0 || check_options(v5, o) != 0))
            return TIDE_EMALFORMED;
        s->count++;
    }
    if (s->count == 0) /* [MQTT-3.8.3-3] [MQTT-3.10.3-2] */
        return v5 ? TIDE_EPROTOCOL : TIDE_EMALFORMED;
    return 0;
}

bool codec_next_filter(const struct codec_subscribe *s, bool is_subscribe, size_t *cursor,
                       struct codec_bytes *filter, uint8_t *options)
{
    if (*cursor >= s->list.len)
        return false;
    struct rd r = {s->list.p, s->list.len, *cursor};
    uint8_t o = 0;
    if (rd_bin(&r, filter) != 0 || (is_subscribe && rd_u8(&r, &o) != 0)) {
        *cursor = s->list.len;
        return false;
    }
    *options = o;
    *cursor = r.pos;
    return true;
}

/* SUBACK and UNSUBACK. */
static int decode_suback(bool v5, uint8_t type, struct rd *r, struct codec_suback *a)
{
    int rc;
    if (rd_u16(r, &a->packet_id) != 0)
        return TIDE_EMALFORMED;
    if (a->packet_id == 0)
        return TIDE_EPROTOCOL;
    if (v5 && (rc = codec_props_decode(r, type, &a->props)) != 0)
        return rc;
    a->codes.p = r->p + r->pos;
    a->codes.len = rd_left(r);
    if (!v5 && type == CODEC_UNSUBACK)
        return a->codes.len ? TIDE_EMALFORMED : 0;
    if (a->codes.len == 0)
        return v5 ? TIDE_EPROTOCOL : TIDE_EMALFORMED;
    for (size_t i = 0; i < a->codes.len; i++) {
        uint8_t c = a->codes.p[i];
        bool ok = type == CODEC_UNSUBACK ? in_list(c, rc_unsuback, sizeof rc_unsuback)
                  : v5                   ? in_list(c, rc_suback, sizeof rc_suback)
                                         : in_list(c, rc_suback3, sizeof rc_suback3);
        if (!ok)
            return TIDE_EPROTOCOL;
    }
    return 0;
}

/* DISCONNECT and AUTH (v5): length 0 means reason 0, length 1 the reason alone. */
static int decode_disconnect(bool v5, uint8_t type, struct rd *r, struct codec_disconnect *d)
{
    int rc;
    if (!v5 || rd_left(r) == 0)
        return rd_left(r) ? TIDE_EMALFORMED : 0;
    if (rd_u8(r, &d->reason) != 0)
        return TIDE_EMALFORMED;
    if (rd_left(r) > 0) {
        if ((rc = codec_props_decode(r, type, &d->props)) != 0)
            return rc;
        if (rd_left(r))
            return TIDE_EMALFORMED;
    }
    return reason_ok(type, d->reason) ? 0 : TIDE_EPROTOCOL;
}

int codec_decode(uint8_t version, uint8_t first_byte, const uint8_t *body, size_t len,
                 struct codec_packet *out)
{
    uint8_t type = first_byte >> 4, flags = first_byte & 0x0f;
    bool v5 = version == MQTT_V5;
    struct rd r = {body, len, 0};
    memset(out, 0, sizeof *out);
    out->type = type;
    out->flags = flags;
    if (type == CODEC_CONNECT)
        return decode_connect(flags, &r, &out->u.connect);
    /* [MQTT-2.2.2-1] [MQTT-2.2.2-2] fixed-header flags */
    if (type == CODEC_PUBREL || type == CODEC_SUBSCRIBE || type == CODEC_UNSUBSCRIBE) {
        if (flags != 0x02)
            return TIDE_EMALFORMED;
    } else if (type != CODEC_PUBLISH && flags != 0) {
        return TIDE_EMALFORMED;
    }
    switch (type) {
    case CODEC_CONNACK:
        return decode_connack(v5, &r, &out->u.connack);
    case CODEC_PUBLISH:
        return decode_publish(v5, flags, &r, &out->u.publish);
    case CODEC_PUBACK:
    case CODEC_PUBREC:
    case CODEC_PUBREL:
    case CODEC_PUBCOMP:
        return decode_ack(v5, type, &r, &out->u.ack);
    case CODEC_SUBSCRIBE:
    case CODEC_UNSUBSCRIBE:
        return decode_subscribe(v5, type, &r, &out->u.subscribe);
    case CODEC_SUBACK:
    case CODEC_UNSUBACK:
        return decode_suback(v5, type, &r, &out->u.suback);
    case CODEC_PINGREQ:
    case CODEC_PINGRESP:
        return len ? TIDE_EMALFORMED : 0;
    case CODEC_DISCONNECT:
        return decode_disconnect(v5, type, &r, &out->u.disconnect);
    case CODEC_AUTH:
        if (!v5)
            return TIDE_EMALFORMED; /* type 15 is reserved before MQTT 5 */
        return decode_disconnect(v5, type, &r, &out->u.disconnect);
    default:
        return TIDE_EMALFORMED; /* type 0 is reserved */
    }
}

/* --- Encoding --- */

/* Appends the first byte; returns where the body starts (for codec_insert_len). */
static size_t begin(struct buf *b, uint8_t first_byte)
{
    buf_put_u8(b, first_byte);
    return b->len;
}

void codec_encode_connect(struct buf *b, const struct codec_connect *c)
{
    bool v5 = c->version == MQTT_V5;
    size_t at = begin(b, CODEC_CONNECT << 4);
    if (c->version == MQTT_V31)
        buf_put_str(b, "MQIsdp", 6);
    else
        buf_put_str(b, "MQTT", 4);
    buf_put_u8(b, c->version);
    uint8_t cf = (uint8_t)((c->has_username ? 0x80 : 0) | (c->has_password ? 0x40 : 0) |
                           (c->clean_start ? 0x02 : 0));
    if (c->will_flag)
        cf |= (uint8_t)(0x04 | (c->will_qos & 0x03) << 3 | (c->will_retain ? 0x20 : 0));
    buf_put_u8(b, cf);
    buf_put_u16(b, c->keepalive);
    if (v5)
        codec_props_encode(b, &c->props);
    buf_put_str(b, c->client_id.p, c->client_id.len);
    if (c->will_flag) {
        if (v5)
            codec_props_encode(b, &c->will_props);
        buf_put_str(b, c->will_topic.p, c->will_topic.len);
        buf_put_str(b, c->will_payload.p, c->will_payload.len);
    }
    if (c->has_username)
        buf_put_str(b, c->username.p, c->username.len);
    if (c->has_password)
        buf_put_str(b, c->password.p, c->password.len);
    codec_insert_len(b, at);
}

void codec_encode_connack(struct buf *b, uint8_t version, bool session_present, uint8_t reason,
                          const struct codec_props *props)
{
    size_t at = begin(b, CODEC_CONNACK << 4);
    buf_put_u8(b, session_present ? 1 : 0);
    buf_put_u8(b, reason);
    if (version == MQTT_V5)
        codec_props_encode(b, props);
    codec_insert_len(b, at);
}

void codec_encode_ack(struct buf *b, uint8_t version, uint8_t type, uint16_t packet_id,
                      uint8_t reason, const struct codec_props *props)
{
    size_t at = begin(b, (uint8_t)(type << 4 | (type == CODEC_PUBREL ? 0x02 : 0)));
    buf_put_u16(b, packet_id);
    if (version == MQTT_V5 && (reason != 0 || !codec_props_empty(props))) {
        buf_put_u8(b, reason);
        if (!codec_props_empty(props))
            codec_props_encode(b, props);
    }
    codec_insert_len(b, at);
}

void codec_encode_subscribe(struct buf *b, uint8_t version, uint16_t packet_id,
                            const struct codec_props *props, const struct codec_bytes *filters,
                            const uint8_t *options, size_t n)
{
    size_t at = begin(b, CODEC_SUBSCRIBE << 4 | 0x02);
    buf_put_u16(b, packet_id);
    if (version == MQTT_V5)
        codec_props_encode(b, props);
    for (size_t i = 0; i < n; i++) {
        buf_put_str(b, filters[i].p, filters[i].len);
        buf_put_u8(b, version == MQTT_V5 ? options[i] : CODEC_SUBOPT_QOS(options[i]));
    }
    codec_insert_len(b, at);
}

void codec_encode_unsubscribe(struct buf *b, uint8_t version, uint16_t packet_id,
                              const struct codec_props *props, const struct codec_bytes *filters,
                              size_t n)
{
    size_t at = begin(b, CODEC_UNSUBSCRIBE << 4 | 0x02);
    buf_put_u16(b, packet_id);
    if (version == MQTT_V5)
        codec_props_encode(b, props);
    for (size_t i = 0; i < n; i++)
        buf_put_str(b, filters[i].p, filters[i].len);
    codec_insert_len(b, at);
}

void codec_encode_suback(struct buf *b, uint8_t version, uint8_t type, uint16_t packet_id,
                         const struct codec_props *props, const uint8_t *codes, size_t n)
{
    size_t at = begin(b, (uint8_t)(type << 4));
    buf_put_u16(b, packet_id);
    if (version == MQTT_V5)
        codec_props_encode(b, props);
    if (version == MQTT_V5 || type == CODEC_SUBACK)
        buf_append(b, codes, n);
    codec_insert_len(b, at);
}

void codec_encode_empty(struct buf *b, uint8_t type)
{
    buf_put_u8(b, (uint8_t)(type << 4));
    buf_put_u8(b, 0);
}

/* DISCONNECT and AUTH bodies: nothing for reason 0 without properties, else the reason, then
 * the properties if any. */
static void put_reason_props(struct buf *b, uint8_t reason, const struct codec_props *props)
{
    bool empty = codec_props_empty(props);
    if (reason == 0 && empty)
        return;
    buf_put_u8(b, reason);
    if (!empty)
        codec_props_encode(b, props);
}

void codec_encode_disconnect(struct buf *b, uint8_t version, uint8_t reason,
                             const struct codec_props *props)
{
    size_t at = begin(b, CODEC_DISCONNECT << 4);
    if (version == MQTT_V5)
        put_reason_props(b, reason, props);
    codec_insert_len(b, at);
}

void codec_encode_auth(struct buf *b, uint8_t reason, const struct codec_props *props)
{
    size_t at = begin(b, CODEC_AUTH << 4);
    put_reason_props(b, reason, props);
    codec_insert_len(b, at);
}

static uint8_t publish_first(uint8_t qos, bool dup, bool retain)
{
    /* [MQTT-3.3.1-2] DUP is 0 for QoS 0 */
    return (uint8_t)(CODEC_PUBLISH << 4 | (dup && qos ? 0x08 : 0) | (qos & 0x03) << 1 |
                     (retain ? 0x01 : 0));
}

void codec_encode_publish(struct buf *b, uint8_t version, const struct codec_publish *p)
{
    size_t at = begin(b, publish_first(p->qos, p->dup, p->retain));
    buf_put_str(b, p->topic.p, p->topic.len);
    if (p->qos)
        buf_put_u16(b, p->packet_id);
    if (version == MQTT_V5)
        codec_props_encode(b, &p->props);
    buf_append(b, p->payload.p, p->payload.len);
    codec_insert_len(b, at);
}

static size_t head_props_len(const struct codec_publish_head *h)
{
    size_t n = h->shared_props.len + (h->topic_alias ? 3 : 0) + (h->has_expiry ? 5 : 0);
    for (size_t i = 0; i < h->sub_id_count; i++)
        n += 1 + varint_size(h->sub_ids[i]);
    return n;
}

static size_t head_remaining(const struct codec_publish_head *h)
{
    size_t n = 2 + h->topic.len + (h->qos ? 2 : 0) + h->payload_len;
    if (h->version == MQTT_V5) {
        size_t pl = head_props_len(h);
        n += varint_size((uint32_t)pl) + pl;
    }
    return n;
}

size_t codec_publish_size(const struct codec_publish_head *h)
{
    size_t rem = head_remaining(h);
    return 1 + varint_size((uint32_t)rem) + rem;
}

void codec_encode_publish_head(struct buf *b, const struct codec_publish_head *h)
{
    buf_put_u8(b, publish_first(h->qos, h->dup, h->retain));
    buf_put_varint(b, (uint32_t)head_remaining(h));
    buf_put_str(b, h->topic.p, h->topic.len);
    if (h->qos)
        buf_put_u16(b, h->packet_id);
    if (h->version != MQTT_V5)
        return;
    buf_put_varint(b, (uint32_t)head_props_len(h));
    if (h->has_expiry) {
        buf_put_u8(b, CODEC_PROP_MESSAGE_EXPIRY);
        buf_put_u32(b, h->message_expiry);
    }
    if (h->topic_alias) {
        buf_put_u8(b, CODEC_PROP_TOPIC_ALIAS);
        buf_put_u16(b, h->topic_alias);
    }
    for (size_t i = 0; i < h->sub_id_count; i++) {
        buf_put_u8(b, CODEC_PROP_SUBSCRIPTION_ID);
        buf_put_varint(b, h->sub_ids[i]);
    }
    buf_append(b, h->shared_props.p, h->shared_props.len);
}
