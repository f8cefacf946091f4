/* MQTT 5 properties (MQTT 5 §2.2.2): decodes and validates a property block for one packet type,
 * walks user properties and subscription identifiers, and encodes property blocks. Pure like the
 * rest of the codec: no I/O, no logging, no allocation; decoded fields borrow from the input. */
#include "codec.h"

#include <stddef.h>
#include <string.h>

#include "codec_internal.h"
#include "util/buf.h"

enum { T_NONE, T_BYTE, T_U16, T_U32, T_VAR, T_STR, T_BIN, T_PAIR };

#define F_BOOL 0x1    /* value must be 0 or 1, else Protocol Error */
#define F_NONZERO 0x2 /* value 0 is a Protocol Error */

#define W(t) (1u << (t))
#define WILL W(CODEC_CTX_WILL)
#define ACKS (W(CODEC_PUBACK) | W(CODEC_PUBREC) | W(CODEC_PUBREL) | W(CODEC_PUBCOMP))

struct pinfo {
    uint8_t type, flags;
    uint16_t where; /* bit per packet type (bit 0: will properties) where the id may appear */
    uint16_t off;   /* offset of the field in struct codec_props */
};

#define P(t, fl, w, f)                                                                             \
    {                                                                                              \
        t, fl, w, offsetof(struct codec_props, f)                                                  \
    }

/* Which property may appear where, and its type: MQTT 5 §2.2.2.2. */
static const struct pinfo info[CODEC_PROP_SHARED_SUB_AVAILABLE + 1] = {
    [CODEC_PROP_PAYLOAD_FORMAT] = P(T_BYTE, F_BOOL, W(CODEC_PUBLISH) | WILL, payload_format),
    [CODEC_PROP_MESSAGE_EXPIRY] = P(T_U32, 0, W(CODEC_PUBLISH) | WILL, message_expiry),
    [CODEC_PROP_CONTENT_TYPE] = P(T_STR, 0, W(CODEC_PUBLISH) | WILL, content_type),
    [CODEC_PROP_RESPONSE_TOPIC] = P(T_STR, 0, W(CODEC_PUBLISH) | WILL, response_topic),
    [CODEC_PROP_CORRELATION_DATA] = P(T_BIN, 0, W(CODEC_PUBLISH) | WILL, correlation_data),
    [CODEC_PROP_SUBSCRIPTION_ID] =
        P(T_VAR, F_NONZERO, W(CODEC_PUBLISH) | W(CODEC_SUBSCRIBE), sub_id),
    [CODEC_PROP_SESSION_EXPIRY] =
        P(T_U32, 0, W(CODEC_CONNECT) | W(CODEC_CONNACK) | W(CODEC_DISCONNECT), session_expiry),
    [CODEC_PROP_ASSIGNED_CLIENT_ID] = P(T_STR, 0, W(CODEC_CONNACK), assigned_client_id),
    [CODEC_PROP_SERVER_KEEPALIVE] = P(T_U16, 0, W(CODEC_CONNACK), server_keepalive),
    [CODEC_PROP_AUTH_METHOD] =
        P(T_STR, 0, W(CODEC_CONNECT) | W(CODEC_CONNACK) | W(CODEC_AUTH), auth_method),
    [CODEC_PROP_AUTH_DATA] =
        P(T_BIN, 0, W(CODEC_CONNECT) | W(CODEC_CONNACK) | W(CODEC_AUTH), auth_data),
    [CODEC_PROP_REQUEST_PROBLEM_INFO] = P(T_BYTE, F_BOOL, W(CODEC_CONNECT), request_problem_info),
    [CODEC_PROP_WILL_DELAY] = P(T_U32, 0, WILL, will_delay),
    [CODEC_PROP_REQUEST_RESPONSE_INFO] = P(T_BYTE, F_BOOL, W(CODEC_CONNECT), request_response_info),
    [CODEC_PROP_RESPONSE_INFO] = P(T_STR, 0, W(CODEC_CONNACK), response_info),
    [CODEC_PROP_SERVER_REFERENCE] =
        P(T_STR, 0, W(CODEC_CONNACK) | W(CODEC_DISCONNECT), server_reference),
    [CODEC_PROP_REASON_STRING] = P(T_STR, 0,
                                   W(CODEC_CONNACK) | ACKS | W(CODEC_SUBACK) | W(CODEC_UNSUBACK) |
                                       W(CODEC_DISCONNECT) | W(CODEC_AUTH),
                                   reason_string),
    [CODEC_PROP_RECEIVE_MAX] =
        P(T_U16, F_NONZERO, W(CODEC_CONNECT) | W(CODEC_CONNACK), receive_max),
    [CODEC_PROP_TOPIC_ALIAS_MAX] =
        P(T_U16, 0, W(CODEC_CONNECT) | W(CODEC_CONNACK), topic_alias_max),
    [CODEC_PROP_TOPIC_ALIAS] = P(T_U16, F_NONZERO, W(CODEC_PUBLISH), topic_alias),
    [CODEC_PROP_MAX_QOS] = P(T_BYTE, F_BOOL, W(CODEC_CONNACK), max_qos),
    [CODEC_PROP_RETAIN_AVAILABLE] = P(T_BYTE, F_BOOL, W(CODEC_CONNACK), retain_available),
    [CODEC_PROP_USER] = P(T_PAIR, 0,
                          W(CODEC_CONNECT) | W(CODEC_CONNACK) | W(CODEC_PUBLISH) | WILL | ACKS |
                              W(CODEC_SUBSCRIBE) | W(CODEC_SUBACK) | W(CODEC_UNSUBSCRIBE) |
                              W(CODEC_UNSUBACK) | W(CODEC_DISCONNECT) | W(CODEC_AUTH),
                          user),
    [CODEC_PROP_MAX_PACKET_SIZE] =
        P(T_U32, F_NONZERO, W(CODEC_CONNECT) | W(CODEC_CONNACK), max_packet_size),
    [CODEC_PROP_WILDCARD_SUB_AVAILABLE] =
        P(T_BYTE, F_BOOL, W(CODEC_CONNACK), wildcard_sub_available),
    [CODEC_PROP_SUB_ID_AVAILABLE] = P(T_BYTE, F_BOOL, W(CODEC_CONNACK), sub_id_available),
    [CODEC_PROP_SHARED_SUB_AVAILABLE] = P(T_BYTE, F_BOOL, W(CODEC_CONNACK), shared_sub_available),
};

#define NPROPS (sizeof info / sizeof info[0])

/* One property value as read: a number, or one or two byte spans. */
struct pval {
    uint32_t num;
    struct codec_bytes a, b;
};

/* Reads one property. An unknown identifier, or a value running past the block, is malformed.
 * With check, strings are UTF-8 validated. */
static int read_prop(struct rd *r, bool check, uint8_t *id, struct pval *v)
{
    uint8_t b8;
    uint16_t b16;
    /* All MQTT 5 identifiers are one byte; a continuation bit makes one unknown. */
    if (rd_u8(r, id) != 0 || *id >= NPROPS || info[*id].type == T_NONE)
        return TIDE_EMALFORMED;
    switch (info[*id].type) {
    case T_BYTE:
        if (rd_u8(r, &b8) != 0)
            return TIDE_EMALFORMED;
        v->num = b8;
        return 0;
    case T_U16:
        if (rd_u16(r, &b16) != 0)
            return TIDE_EMALFORMED;
        v->num = b16;
        return 0;
    case T_U32:
        return rd_u32(r, &v->num);
    case T_VAR:
        return rd_varint(r, &v->num);
    case T_STR:
        return check ? rd_str(r, &v->a) : rd_bin(r, &v->a);
    case T_BIN:
        return rd_bin(r, &v->a);
    default: /* T_PAIR */
        if (check)
            return rd_str(r, &v->a) != 0 || rd_str(r, &v->b) != 0 ? TIDE_EMALFORMED : 0;
        return rd_bin(r, &v->a) != 0 || rd_bin(r, &v->b) != 0 ? TIDE_EMALFORMED : 0;
    }
}

static void *field(struct codec_props *pr, uint8_t id)
{
    return (char *)pr + info[id].off;
}

static const void *cfield(const struct codec_props *pr, uint8_t id)
{
    return (const char *)pr + info[id].off;
}

static uint32_t get_num(const struct codec_props *pr, uint8_t id)
{
    switch (info[id].type) {
    case T_BYTE:
        return *(const uint8_t *)cfield(pr, id);
    case T_U16:
        return *(const uint16_t *)cfield(pr, id);
    default:
        return *(const uint32_t *)cfield(pr, id);
    }
}

static void store(struct codec_props *pr, uint8_t id, const struct pval *v)
{
    switch (info[id].type) {
    case T_BYTE:
        *(uint8_t *)field(pr, id) = (uint8_t)v->num;
        break;
    case T_U16:
        *(uint16_t *)field(pr, id) = (uint16_t)v->num;
        break;
    case T_U32:
        *(uint32_t *)field(pr, id) = v->num;
        break;
    case T_VAR: /* the subscription identifier */
        if (pr->sub_id_count++ == 0)
            pr->sub_id = v->num;
        break;
    case T_STR:
    case T_BIN:
        *(struct codec_bytes *)field(pr, id) = v->a;
        break;
    default: /* T_PAIR: walked later through raw */
        pr->user_count++;
        pr->user_bytes += v->a.len + v->b.len;
        break;
    }
}

int codec_props_decode(struct rd *r, uint8_t ctx, struct codec_props *out)
{
    uint32_t n;
    memset(out, 0, sizeof *out);
    if (rd_varint(r, &n) != 0 || n > rd_left(r))
        return TIDE_EMALFORMED; /* property length runs past the packet */
    struct rd in = {r->p + r->pos, n, 0};
    out->raw.p = in.p;
    out->raw.len = n;
    r->pos += n;
    while (rd_left(&in) > 0) {
        uint8_t id;
        struct pval v;
        int rc = read_prop(&in, true, &id, &v);
        if (rc != 0)
            return rc;
        /* An identifier not valid for this packet is a Malformed Packet (§2.2.2.2). */
        if (!(info[id].where & W(ctx)))
            return TIDE_EMALFORMED;
        /* Only user properties, and subscription identifiers in PUBLISH, may repeat. */
        if (CODEC_HAS(out, id) && id != CODEC_PROP_USER &&
            !(id == CODEC_PROP_SUBSCRIPTION_ID && ctx == CODEC_PUBLISH))
            return TIDE_EPROTOCOL;
        if ((info[id].flags & F_BOOL) && v.num > 1)
            return TIDE_EPROTOCOL;
        if ((info[id].flags & F_NONZERO) && v.num == 0)
            return TIDE_EPROTOCOL;
        out->present |= CODEC_BIT(id);
        store(out, id, &v);
    }
    return 0;
}

bool codec_props_next_user(const struct codec_props *pr, size_t *cursor,
                           struct codec_user_prop *out)
{
    if (pr->user) {
        if (*cursor >= pr->user_count)
            return false;
        *out = pr->user[(*cursor)++];
        return true;
    }
    if (!pr->raw.p || *cursor > pr->raw.len)
        return false;
    struct rd in = {pr->raw.p, pr->raw.len, *cursor};
    while (rd_left(&in) > 0) {
        uint8_t id;
        struct pval v;
        if (read_prop(&in, false, &id, &v) != 0)
            break;
        if (id == CODEC_PROP_USER) {
            out->name = v.a;
            out->value = v.b;
            *cursor = in.pos;
            return true;
        }
    }
    *cursor = pr->raw.len + 1;
    return false;
}

bool codec_props_next_sub_id(const struct codec_props *pr, size_t *cursor, uint32_t *out)
{
    if (pr->user || !pr->raw.p) { /* built by a caller for encoding: the one sub_id field */
        if (*cursor != 0 || !CODEC_HAS(pr, CODEC_PROP_SUBSCRIPTION_ID))
            return false;
        *cursor = 1;
        *out = pr->sub_id;
        return true;
    }
    if (*cursor > pr->raw.len)
        return false;
    struct rd in = {pr->raw.p, pr->raw.len, *cursor};
    while (rd_left(&in) > 0) {
        uint8_t id;
        struct pval v;
        if (read_prop(&in, false, &id, &v) != 0)
            break;
        if (id == CODEC_PROP_SUBSCRIPTION_ID) {
            *out = v.num;
            *cursor = in.pos;
            return true;
        }
    }
    *cursor = pr->raw.len + 1;
    return false;
}

static bool has_user(const struct codec_props *pr)
{
    size_t c = 0;
    struct codec_user_prop u;
    return codec_props_next_user(pr, &c, &u);
}

bool codec_props_empty(const struct codec_props *pr)
{
    uint32_t sid;
    size_t c = 0;
    if (!pr)
        return true;
    if (pr->present & ~(CODEC_BIT(CODEC_PROP_USER) | CODEC_BIT(CODEC_PROP_SUBSCRIPTION_ID)))
        return false;
    return !has_user(pr) && !codec_props_next_sub_id(pr, &c, &sid);
}

/* Appends property id with its value taken from pr. */
static void put_prop(struct buf *b, const struct codec_props *pr, uint8_t id)
{
    const struct codec_bytes *s;
    buf_put_u8(b, id);
    switch (info[id].type) {
    case T_BYTE:
        buf_put_u8(b, (uint8_t)get_num(pr, id));
        break;
    case T_U16:
        buf_put_u16(b, (uint16_t)get_num(pr, id));
        break;
    case T_U32:
        buf_put_u32(b, get_num(pr, id));
        break;
    default: /* T_STR, T_BIN */
        s = cfield(pr, id);
        buf_put_str(b, s->p, s->len);
        break;
    }
}

static void put_users(struct buf *b, const struct codec_props *pr)
{
    size_t c = 0;
    struct codec_user_prop u;
    while (codec_props_next_user(pr, &c, &u)) {
        buf_put_u8(b, CODEC_PROP_USER);
        buf_put_str(b, u.name.p, u.name.len);
        buf_put_str(b, u.value.p, u.value.len);
    }
}

void codec_props_encode(struct buf *b, const struct codec_props *pr)
{
    size_t mark = b->len;
    if (pr) {
        for (uint8_t id = 1; id < NPROPS; id++) {
            if (info[id].type == T_NONE || info[id].type == T_VAR || info[id].type == T_PAIR)
                continue;
            if (CODEC_HAS(pr, id))
                put_prop(b, pr, id);
        }
        size_t c = 0;
        uint32_t sid;
        while (codec_props_next_sub_id(pr, &c, &sid)) {
            buf_put_u8(b, CODEC_PROP_SUBSCRIPTION_ID);
            buf_put_varint(b, sid);
        }
        put_users(b, pr);
    }
    codec_insert_len(b, mark);
}

void codec_encode_forward_props(struct buf *b, const struct codec_props *in)
{
    static const uint8_t ids[] = {CODEC_PROP_PAYLOAD_FORMAT, CODEC_PROP_CONTENT_TYPE,
                                  CODEC_PROP_RESPONSE_TOPIC, CODEC_PROP_CORRELATION_DATA};
    for (size_t i = 0; i < sizeof ids; i++)
        if (CODEC_HAS(in, ids[i]))
            put_prop(b, in, ids[i]);
    put_users(b, in);
}

void codec_insert_len(struct buf *b, size_t at)
{
    size_t n = b->len - at;
    size_t vs = varint_size((uint32_t)n);
    buf_reserve(b, vs);
    memmove(b->data + at + vs, b->data + at, n);
    uint8_t *q = b->data + at;
    do {
        uint8_t byte = n & 0x7f;
        n >>= 7;
        *q++ = (uint8_t)(n ? byte | 0x80 : byte);
    } while (n);
    b->len += vs;
}
