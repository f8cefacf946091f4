/* Packet dispatch for established connections and the one map from TIDE_E* codes to MQTT 5
 * reason codes and 3.1.1 CONNACK return codes. */
#include "proto.h"

#include "codec.h"
#include "config.h"
#include "conn.h"
#include "util/buf.h"
#include "util/err.h"
#include "broker.h"

bool proto_user_props_ok(struct broker *b, const struct codec_props *p)
{
    const struct config *cfg = b->cfg;
    if ((!cfg->max_user_properties || p->user_count <= cfg->max_user_properties) &&
        (!cfg->max_user_properties_bytes || p->user_bytes <= cfg->max_user_properties_bytes))
        return true;
    b->stats.refused_user_properties++;
    return false;
}

uint8_t proto_reason(int err)
{
    switch (err) {
    case TIDE_EMALFORMED: return 0x81;
    case TIDE_EPROTOCOL: return 0x82;
    case TIDE_EVERSION: return 0x84;
    case TIDE_ECLIENTID: return 0x85;
    case TIDE_EBADAUTH: return 0x86;
    case TIDE_EDENIED: return 0x87;
    case TIDE_EBUSY: return 0x89;
    case TIDE_EAUTHMETHOD: return 0x8C;
    case TIDE_ETOPIC: return 0x90;
    case TIDE_ERECVMAX: return 0x93;
    case TIDE_EALIAS: return 0x94;
    case TIDE_ETOOBIG: return 0x95;
    case TIDE_EQUOTA: return 0x97;
    case TIDE_ENOMEM: return 0x97;
    case TIDE_ERETAIN: return 0x9A;
    case TIDE_EQOS: return 0x9B;
    }
    return 0x80;
}

uint8_t proto_connack_rc(int err)
{
    switch (err) {
    case TIDE_EVERSION: return 1;
    case TIDE_ECLIENTID:
    case TIDE_EKEEPALIVE: return 2;
    case TIDE_EBUSY:
    case TIDE_EQUOTA:
    case TIDE_ENOMEM: return 3;
    case TIDE_EBADAUTH: return 4;
    }
    return 5;
}

int proto_handle(struct conn *c, struct codec_packet *p)
{
    switch (p->type) {
    case CODEC_CONNECT:
        if (c->state != CONN_NEW)
            return TIDE_EPROTOCOL; /* [MQTT-3.1.0-2] a second CONNECT */
        return proto_connect(c, &p->u.connect);
    case CODEC_PUBLISH: return proto_publish(c, &p->u.publish);
    case CODEC_PUBACK:
    case CODEC_PUBREC:
    case CODEC_PUBREL:
    case CODEC_PUBCOMP: return proto_ack(c, p->type, &p->u.ack);
    case CODEC_SUBSCRIBE: return proto_subscribe(c, &p->u.subscribe);
    case CODEC_UNSUBSCRIBE: return proto_unsubscribe(c, &p->u.subscribe);
    case CODEC_PINGREQ: {
        struct buf *sb = &c->b->scratch;
        buf_reset(sb);
        codec_encode_empty(sb, CODEC_PINGRESP);
        conn_send(c, sb->data, sb->len);
        return 0;
    }
    case CODEC_DISCONNECT: return proto_disconnect(c, &p->u.disconnect);
    case CODEC_AUTH:
        /* no enhanced authentication method is supported [MQTT-4.12.0-1] */
        return TIDE_EAUTHMETHOD;
    }
    return TIDE_EPROTOCOL; /* a server-to-client packet type from a client */
}
