/* Decodes and encodes MQTT 3.1, 3.1.1 and 5 packets. Pure: no I/O, no logging, no libevent.
 * Decoding reads only the bytes it is given and allocates nothing: decoded strings and binary
 * fields point into the input and are valid as long as it is. Encoding appends to a struct buf.
 * Errors: TIDE_EPARTIAL (need more bytes, fixed header only), TIDE_EMALFORMED (MQTT 5 0x81),
 * TIDE_EPROTOCOL (0x82), TIDE_EVERSION (unsupported protocol level). */
#ifndef TIDE_CODEC_H
#define TIDE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

#define CODEC_MAX_REMAINING 268435455u /* largest Variable Byte Integer */

enum codec_version { MQTT_V31 = 3, MQTT_V311 = 4, MQTT_V5 = 5 };

enum codec_ptype {
    CODEC_CONNECT = 1,
    CODEC_CONNACK = 2,
    CODEC_PUBLISH = 3,
    CODEC_PUBACK = 4,
    CODEC_PUBREC = 5,
    CODEC_PUBREL = 6,
    CODEC_PUBCOMP = 7,
    CODEC_SUBSCRIBE = 8,
    CODEC_SUBACK = 9,
    CODEC_UNSUBSCRIBE = 10,
    CODEC_UNSUBACK = 11,
    CODEC_PINGREQ = 12,
    CODEC_PINGRESP = 13,
    CODEC_DISCONNECT = 14,
    CODEC_AUTH = 15,
};

/* MQTT 5 property identifiers (MQTT 5 §2.2.2.2). */
enum codec_prop_id {
    CODEC_PROP_PAYLOAD_FORMAT = 0x01,
    CODEC_PROP_MESSAGE_EXPIRY = 0x02,
    CODEC_PROP_CONTENT_TYPE = 0x03,
    CODEC_PROP_RESPONSE_TOPIC = 0x08,
    CODEC_PROP_CORRELATION_DATA = 0x09,
    CODEC_PROP_SUBSCRIPTION_ID = 0x0B,
    CODEC_PROP_SESSION_EXPIRY = 0x11,
    CODEC_PROP_ASSIGNED_CLIENT_ID = 0x12,
    CODEC_PROP_SERVER_KEEPALIVE = 0x13,
    CODEC_PROP_AUTH_METHOD = 0x15,
    CODEC_PROP_AUTH_DATA = 0x16,
    CODEC_PROP_REQUEST_PROBLEM_INFO = 0x17,
    CODEC_PROP_WILL_DELAY = 0x18,
    CODEC_PROP_REQUEST_RESPONSE_INFO = 0x19,
    CODEC_PROP_RESPONSE_INFO = 0x1A,
    CODEC_PROP_SERVER_REFERENCE = 0x1C,
    CODEC_PROP_REASON_STRING = 0x1F,
    CODEC_PROP_RECEIVE_MAX = 0x21,
    CODEC_PROP_TOPIC_ALIAS_MAX = 0x22,
    CODEC_PROP_TOPIC_ALIAS = 0x23,
    CODEC_PROP_MAX_QOS = 0x24,
    CODEC_PROP_RETAIN_AVAILABLE = 0x25,
    CODEC_PROP_USER = 0x26,
    CODEC_PROP_MAX_PACKET_SIZE = 0x27,
    CODEC_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
    CODEC_PROP_SUB_ID_AVAILABLE = 0x29,
    CODEC_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Bit for property id in codec_props.present. */
#define CODEC_BIT(id) (UINT64_C(1) << (id))
#define CODEC_HAS(props, id) (((props)->present & CODEC_BIT(id)) != 0)

/* Borrowed bytes (a string, binary data or a span of the input). */
struct codec_bytes {
    const uint8_t *p;
    size_t len;
};

struct codec_user_prop {
    struct codec_bytes name;
    struct codec_bytes value;
};

/* The properties of one packet (or of a will). On decode every field is borrowed from the input and
 * `raw` spans the whole property block (after its length), so user properties and repeated
 * subscription identifiers can be walked with the iterators below. On encode, set `present` bits
 * and fields; user properties come from `user`/`user_count`. Encoders read `raw` only when `user`
 * is NULL and `raw.p` is set (decoded props): then user properties and every subscription
 * identifier are re-encoded from it, so decoded props can be encoded again unchanged. Encoders
 * accept NULL for "no properties". */
struct codec_props {
    uint64_t present;
    uint8_t payload_format, request_problem_info, request_response_info, max_qos, retain_available,
        wildcard_sub_available, sub_id_available, shared_sub_available;
    uint16_t server_keepalive, receive_max, topic_alias_max, topic_alias;
    uint32_t message_expiry, session_expiry, will_delay, max_packet_size;
    uint32_t sub_id;       /* the first subscription identifier */
    uint32_t sub_id_count; /* how many (only PUBLISH to a client carries several) */
    struct codec_bytes content_type, response_topic, correlation_data, assigned_client_id,
        auth_method, auth_data, response_info, server_reference, reason_string;
    uint32_t user_count;   /* number of user properties */
    size_t user_bytes;     /* total name+value bytes of the user properties */
    const struct codec_user_prop *user; /* encode only */
    struct codec_bytes raw;             /* decode only */
};

/* Walk user properties of decoded props: start with *cursor = 0; returns true and fills name/value
 * while there is one more. On props built for encoding it walks `user[0..user_count)`. */
bool codec_props_next_user(const struct codec_props *pr, size_t *cursor,
                           struct codec_user_prop *out);
/* Walk subscription identifiers of decoded props, the same way (props built for encoding: the one
 * `sub_id`, if its present bit is set). */
bool codec_props_next_sub_id(const struct codec_props *pr, size_t *cursor, uint32_t *out);

struct codec_connect {
    uint8_t version; /* MQTT_V31/V311/V5; set as soon as it is known, even when decoding fails later */
    bool clean_start;
    bool will_flag, will_retain;
    uint8_t will_qos;
    bool has_username, has_password;
    uint16_t keepalive;
    struct codec_props props;
    struct codec_bytes client_id, username, password;
    struct codec_props will_props;
    struct codec_bytes will_topic, will_payload;
};

struct codec_connack {
    bool session_present;
    uint8_t reason; /* v5 reason code or 3.1.1 return code */
    struct codec_props props;
};

struct codec_publish {
    uint8_t qos;
    bool dup, retain;
    struct codec_bytes topic; /* may be empty (v5, with a topic alias) */
    uint16_t packet_id;       /* 0 for QoS 0 */
    struct codec_props props;
    struct codec_bytes payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
struct codec_ack {
    uint16_t packet_id;
    uint8_t reason; /* 0 when absent */
    struct codec_props props;
};

/* Subscription options byte (MQTT 5 §3.8.3.1); for 3.1.1 only the QoS bits are used. */
#define CODEC_SUBOPT_QOS(o) ((o)&0x03)
#define CODEC_SUBOPT_NO_LOCAL 0x04
#define CODEC_SUBOPT_RAP 0x08
#define CODEC_SUBOPT_RH(o) (((o) >> 4) & 0x03)

/* SUBSCRIBE and UNSUBSCRIBE: the topic list is walked with codec_next_filter. */
struct codec_subscribe {
    uint16_t packet_id;
    struct codec_props props;
    struct codec_bytes list; /* the payload: filters (with an options byte each for SUBSCRIBE) */
    uint32_t count;          /* number of filters; at least 1 [MQTT-3.8.3-3] [MQTT-3.10.3-2] */
};

/* Walk the filters of a decoded SUBSCRIBE (options filled) or UNSUBSCRIBE (options set to 0):
 * start with *cursor = 0; returns true while there is one more. */
bool codec_next_filter(const struct codec_subscribe *s, bool is_subscribe, size_t *cursor,
                       struct codec_bytes *filter, uint8_t *options);

/* SUBACK and UNSUBACK (3.1.1 UNSUBACK has no codes). */
struct codec_suback {
    uint16_t packet_id;
    struct codec_props props;
    struct codec_bytes codes;
};

/* DISCONNECT and AUTH. */
struct codec_disconnect {
    uint8_t reason;
    struct codec_props props;
};

struct codec_packet {
    uint8_t type; /* enum codec_ptype */
    uint8_t flags; /* low nibble of the first byte */
    union {
        struct codec_connect connect;
        struct codec_connack connack;
        struct codec_publish publish;
        struct codec_ack ack;
        struct codec_subscribe subscribe; /* SUBSCRIBE and UNSUBSCRIBE */
        struct codec_suback suback;       /* SUBACK and UNSUBACK */
        struct codec_disconnect disconnect; /* DISCONNECT and AUTH */
    } u;
};

/* Parses the fixed header at p[0..len). On success returns 0 and sets *first_byte, *remaining and
 * *header_len (2..5). TIDE_EPARTIAL when more bytes are needed; TIDE_EMALFORMED when the remaining
 * length takes more than 4 bytes. */
int codec_parse_fixed_header(const uint8_t *p, size_t len, uint8_t *first_byte,
                             uint32_t *remaining, size_t *header_len);

/* Decodes one packet whose first byte is `first_byte` and whose body (variable header + payload)
 * is body[0..len), for a connection speaking `version` (ignored for CONNECT, which carries its
 * own). Checks the fixed-header flags, every field's form, UTF-8 well-formedness (no U+0000, no
 * surrogates) of every string, and each property's presence, multiplicity and value range for
 * this packet type. Topic wildcard and alias rules are the caller's (they need session state).
 * `out` borrows from body. */
int codec_decode(uint8_t version, uint8_t first_byte, const uint8_t *body, size_t len,
                 struct codec_packet *out);

/* True if p[0..len) is well-formed UTF-8 as MQTT requires (no U+0000, no surrogates). */
bool codec_utf8_valid(const uint8_t *p, size_t len);

/* --- Encoding. Each appends one whole packet to b (never fails). v5-only fields are ignored for
 * older versions. Properties are written only for MQTT_V5. --- */

void codec_encode_connect(struct buf *b, const struct codec_connect *c);
/* 3.1.1 writes reason as the return code. */
void codec_encode_connack(struct buf *b, uint8_t version, bool session_present, uint8_t reason,
                          const struct codec_props *props);
/* type is CODEC_PUBACK..CODEC_PUBCOMP. v5 with reason 0 and no properties uses the 2-byte form. */
void codec_encode_ack(struct buf *b, uint8_t version, uint8_t type, uint16_t packet_id,
                      uint8_t reason, const struct codec_props *props);
void codec_encode_subscribe(struct buf *b, uint8_t version, uint16_t packet_id,
                            const struct codec_props *props, const struct codec_bytes *filters,
                            const uint8_t *options, size_t n);
void codec_encode_unsubscribe(struct buf *b, uint8_t version, uint16_t packet_id,
                              const struct codec_props *props, const struct codec_bytes *filters,
                              size_t n);
/* type is CODEC_SUBACK or CODEC_UNSUBACK; a 3.1.1 UNSUBACK ignores codes. */
void codec_encode_suback(struct buf *b, uint8_t version, uint8_t type, uint16_t packet_id,
                         const struct codec_props *props, const uint8_t *codes, size_t n);
/* PINGREQ, PINGRESP, or a 3.1.1 DISCONNECT: two bytes. */
void codec_encode_empty(struct buf *b, uint8_t type);
/* v5: reason 0 and no properties gives the 2-byte form; 3.1.1 always the 2-byte form. */
void codec_encode_disconnect(struct buf *b, uint8_t version, uint8_t reason,
                             const struct codec_props *props);
void codec_encode_auth(struct buf *b, uint8_t reason, const struct codec_props *props);
/* A whole PUBLISH (used by clients and tests; the broker uses codec_encode_publish_head). */
void codec_encode_publish(struct buf *b, uint8_t version, const struct codec_publish *p);

/* The per-delivery part of an outgoing PUBLISH. The broker shares payload bytes (and
 * `shared_props`, pre-encoded once per message) among subscribers and builds only this head. */
struct codec_publish_head {
    uint8_t version, qos;
    bool dup, retain;
    struct codec_bytes topic;     /* empty when topic_alias refers to an alias already sent */
    uint16_t packet_id;           /* ignored for QoS 0 */
    uint16_t topic_alias;         /* 0: none */
    bool has_expiry;
    uint32_t message_expiry;      /* remaining seconds */
    const uint32_t *sub_ids;
    size_t sub_id_count;
    struct codec_bytes shared_props; /* already-encoded properties (no length prefix) */
    size_t payload_len;
};

/* Size of the whole packet (head + payload), for Maximum Packet Size checks. */
size_t codec_publish_size(const struct codec_publish_head *h);
/* Appends the packet up to (not including) the payload. */
void codec_encode_publish_head(struct buf *b, const struct codec_publish_head *h);

/* Appends, as encoded properties with no length prefix, the properties of a received PUBLISH (or
 * will) that pass unchanged to subscribers: payload format, content type, response topic,
 * correlation data and user properties, in that order, user properties in their original order.
 * (Message expiry, topic alias and subscription identifiers are per delivery.) */
void codec_encode_forward_props(struct buf *b, const struct codec_props *in);

#endif
