/* libFuzzer harness for the MQTT codec: the input is one or more packets as a broker would read
 * them (fixed header, then body), decoded under each protocol version; every decoded packet is
 * re-encoded and its user properties, subscription ids and filters are walked. The first input
 * byte picks the version. Seeds in tests/fuzz/corpus/codec. */
#include "codec.h"

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct codec_packet *p, uint8_t version, struct buf *b)
{
    size_t cursor = 0;
    struct codec_user_prop up;
    uint32_t id;
    struct codec_bytes f;
    uint8_t opts;
    switch (p->type) {
    case CODEC_CONNECT: codec_encode_connect(b, &p->u.connect); break;
    case CODEC_PUBLISH:
        while (codec_props_next_user(&p->u.publish.props, &cursor, &up))
            ;
        cursor = 0;
        while (codec_props_next_sub_id(&p->u.publish.props, &cursor, &id))
            ;
        codec_encode_publish(b, version, &p->u.publish);
        codec_encode_forward_props(b, &p->u.publish.props);
        break;
    case CODEC_SUBSCRIBE:
    case CODEC_UNSUBSCRIBE:
        while (codec_next_filter(&p->u.subscribe, p->type == CODEC_SUBSCRIBE, &cursor, &f, &opts))
            ;
        break;
    case CODEC_PUBACK:
    case CODEC_PUBREC:
    case CODEC_PUBREL:
    case CODEC_PUBCOMP:
        codec_encode_ack(b, version, p->type, p->u.ack.packet_id, p->u.ack.reason,
                         &p->u.ack.props);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
    uint8_t version = versions[data[0] % 3];
    data++, size--;
    struct buf b;
    buf_init(&b);
    while (size >= 2) {
        uint8_t first;
        uint32_t remaining;
        size_t hlen;
        if (codec_parse_fixed_header(data, size, &first, &remaining, &hlen) < 0)
            break;
        if (size - hlen < remaining)
            break;
        struct codec_packet p;
        if (codec_decode(version, first, data + hlen, remaining, &p) == 0) {
            buf_reset(&b);
            walk(&p, version, &b);
        }
        data += hlen + remaining;
        size -= hlen + remaining;
    }
    buf_fini(&b);
    return 0;
}
