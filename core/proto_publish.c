/* Inbound PUBLISH (topic aliases, topic rules, limits, QoS 2 duplicate detection, flow control,
 * routing with the publisher's ack held while a subscriber is congested) and the four acks. */
#include "proto.h"

#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "auth.h"
#include "broker.h"
#include "codec.h"
#include "config.h"
#include "conn.h"
#include "hooks.h"
#include "log.h"
#include "msg.h"
#include "router.h"
#include "session.h"
#include "topic.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/err.h"

/* Resolves the topic of p through the connection's inbound aliases [MQTT-3.3.2-3..12]. */
static int resolve_topic(struct conn *c, const struct codec_publish *p, const char **topic,
                         size_t *len)
{
    *topic = (const char *)p->topic.p;
    *len = p->topic.len;
    if (c->version != MQTT_V5 || !CODEC_HAS(&p->props, CODEC_PROP_TOPIC_ALIAS)) {
        /* an empty topic needs an alias [MQTT-3.3.2-1] */
        return *len ? 0 : TIDE_EPROTOCOL;
    }
    uint16_t alias = p->props.topic_alias;
    if (alias > c->alias_in_max) /* (alias 0 is refused by the codec as a protocol error) */
        return TIDE_EALIAS; /* [MQTT-3.3.2-9] [MQTT-3.3.2-10] */
    if (*len) {
        free(c->alias_in[alias]);
        c->alias_in[alias] = xstrndup(*topic, *len);
        return 0;
    }
    if (!c->alias_in[alias])
        return TIDE_EPROTOCOL; /* an alias never set on this connection */
    *topic = c->alias_in[alias];
    *len = strlen(*topic);
    return 0;
}

static bool reserved_topic(const char *t, size_t len)
{
    return (len >= 5 && memcmp(t, "$SYS/", 5) == 0) || (len == 4 && memcmp(t, "$SYS", 4) == 0) ||
           (len >= 7 && memcmp(t, "$share/", 7) == 0);
}

/* Acknowledges a message that will not be routed: v5 with `reason` (and `text` as its Reason
 * String when the client allows one), 3.1.1 as a success. */
static void ack_unrouted_text(struct conn *c, const struct codec_publish *p, uint8_t reason,
                              const char *text)
{
    if (p->qos == 0)
        return;
    uint8_t r = c->version == MQTT_V5 ? reason : 0;
    if (p->qos == 2 && r < 0x80)
        session_qos2_add(c->s, p->packet_id);
    uint8_t type = p->qos == 1 ? CODEC_PUBACK : CODEC_PUBREC;
    if (!r || !text || !text[0] || !c->request_problem_info) {
        conn_send_ack(c, type, p->packet_id, r);
        return;
    }
    struct codec_props pr = {0};
    pr.present |= CODEC_BIT(CODEC_PROP_REASON_STRING);
    pr.reason_string = (struct codec_bytes){(const uint8_t *)text, strlen(text)};
    struct buf *sb = &c->b->scratch;
    buf_reset(sb);
    codec_encode_ack(sb, c->version, type, p->packet_id, r, &pr);
    conn_send(c, sb->data, sb->len);
}

static void ack_unrouted(struct conn *c, const struct codec_publish *p, uint8_t reason)
{
    ack_unrouted_text(c, p, reason, NULL);
}

static struct msg *make_msg(struct conn *c, const struct codec_publish *p, const char *topic,
                            size_t len)
{
    struct broker *b = c->b;
    if (c->lcfg->mount_point) {
        topic_mount(c->lcfg->mount_point, topic, len, &b->mount);
        topic = (const char *)b->mount.data;
        len = b->mount.len;
    }
    struct buf *sb = &b->scratch;
    buf_reset(sb);
    if (c->version == MQTT_V5)
        codec_encode_forward_props(sb, &p->props);
    struct msg_init in = {
        .topic = topic,
        .topic_len = len,
        .payload = p->payload.p,
        .payload_len = p->payload.len,
        .props = sb->data,
        .props_len = sb->len,
        .origin = c->s->client_id,
        .qos = p->qos,
        .retain = p->retain,
        .has_expiry = c->version == MQTT_V5 && CODEC_HAS(&p->props, CODEC_PROP_MESSAGE_EXPIRY),
        .expiry_interval = p->props.message_expiry,
        .now_ms = broker_now_ms(),
        .account = &b->msg_bytes,
    };
    return msg_new(&in);
}

/* Routes each of msgs[0..n) (references owned here) for a publish, holding a QoS 1/2
 * publisher's ack while a congested subscriber holds any of them. no_rules: the caller found that
 * no rule wants the topic (the router need not look again). */
static void route_acked(struct conn *c, const struct codec_publish *p, struct msg **msgs, size_t n,
                        bool no_rules)
{
    struct broker *b = c->b;
    void (*publish)(struct broker *, struct msg *, struct held_ack *) =
        no_rules ? router_publish_no_rules : router_publish;
    if (p->qos == 0) {
        for (size_t i = 0; i < n; i++) {
            publish(b, msgs[i], NULL);
            msg_release(&msgs[i]);
        }
        return;
    }
    if (p->qos == 2)
        session_qos2_add(c->s, p->packet_id);
    struct held_ack *ha = xmalloc(sizeof *ha);
    *ha = (struct held_ack){c, p->packet_id, p->qos == 1 ? CODEC_PUBACK : CODEC_PUBREC, 1};
    if (c->held_count == c->held_cap) {
        c->held_cap = c->held_cap ? c->held_cap * 2 : 8;
        c->held = xrealloc(c->held, c->held_cap * sizeof *c->held);
    }
    c->held[c->held_count++] = ha;
    if (ha->type == CODEC_PUBACK)
        c->held_qos1++;
    for (size_t i = 0; i < n; i++) {
        publish(b, msgs[i], ha);
        msg_release(&msgs[i]);
    }
    if (ha->blockers > 1)
        b->stats.acks_held++;
    held_ack_release(ha); /* the guard reference: sends the ack unless a subscriber holds it */
}

/* A message some rule's match filter covers (RULES-API on_publish): runs once, at the first
 * receipt of its packet id, and what comes out is routed; a drop is acknowledged with success, a
 * refusal with its reason (a rule aborted under on_error "drop": 0x80; a payload over
 * rule_max_payload, refused by the engine before any rule runs: 0x97). Takes m. */
static void publish_through_rules(struct conn *c, const struct codec_publish *p, struct msg *m)
{
    struct broker *b = c->b;
    struct hooks_publish_answer a;
    router_rules_publish(b, m, c->s, &a);
    msg_release(&m);
    if (conn_is_closing(c) || !c->s) {
        for (size_t i = 0; i < a.out_count; i++)
            msg_release(&a.out[i]);
        hooks_publish_answer_fini(&a);
        return;
    }
    if (a.a.verdict == HOOKS_PASS)
        route_acked(c, p, a.out, a.out_count, false);
    else
        ack_unrouted_text(c, p, a.a.verdict == HOOKS_DROP ? 0 : a.a.reason, a.a.reason_string);
    hooks_publish_answer_fini(&a);
}

int proto_publish(struct conn *c, struct codec_publish *p)
{
    struct broker *b = c->b;
    const struct config *cfg = b->cfg;
    struct session *s = c->s;
    const char *topic;
    size_t len;
    if (CODEC_HAS(&p->props, CODEC_PROP_SUBSCRIPTION_ID))
        return TIDE_EPROTOCOL; /* [MQTT-3.3.4-6] only the server sends subscription ids */
    int rc = resolve_topic(c, p, &topic, &len);
    if (rc < 0)
        return rc;
    if (topic_validate_name(topic, len) < 0)
        return TIDE_ETOPIC; /* [MQTT-3.3.2-2] no wildcards in a PUBLISH topic */
    if (p->qos > c->lcfg->max_qos) {
        b->stats.refused_qos++;
        return TIDE_EQOS; /* [MQTT-3.2.2-11] */
    }
    if (p->retain && !cfg->retain_available)
        return TIDE_ERETAIN; /* [MQTT-3.2.2-14] */

    b->stats.msgs_received++;
    b->stats.pub_received_qos[p->qos]++;

    if (p->qos == 2 && session_qos2_has(s, p->packet_id)) {
        /* [MQTT-4.3.3-9] a resent QoS 2 PUBLISH is not delivered again; answer it unless its
         * PUBREC is still held back */
        for (size_t i = 0; i < c->held_count; i++)
            if (c->held[i]->packet_id == p->packet_id && c->held[i]->type == CODEC_PUBREC)
                return 0;
        conn_send_ack(c, CODEC_PUBREC, p->packet_id, 0);
        return 0;
    }
    if (p->qos > 0 && c->version == MQTT_V5 &&
        c->held_qos1 + s->qos2_in_count >= c->receive_max)
        return TIDE_ERECVMAX; /* [MQTT-3.3.4-7] more than Receive Maximum unacknowledged */

    if (reserved_topic(topic, len)) {
        ack_unrouted(c, p, 0x87); /* clients may not publish to $SYS or $share */
        return 0;
    }
    if (!proto_user_props_ok(b, &p->props)) {
        ack_unrouted(c, p, 0x97);
        return 0;
    }
    if (cfg->message_size_limit && p->payload.len > cfg->message_size_limit) {
        b->stats.refused_message_size++;
        ack_unrouted(c, p, 0x97);
        return 0;
    }
    if (cfg->memory_limit && b->msg_bytes > cfg->memory_limit &&
        !(p->retain && p->payload.len == 0)) { /* clearing a retained message frees memory */
        b->stats.refused_memory++;
        ack_unrouted(c, p, 0x97);
        return 0;
    }

    struct msg *m = make_msg(c, p, topic, len);
    const struct hooks *h = b->hooks;
    if (h && h->wants(h->ctx, m->topic, m->topic_len)) {
        publish_through_rules(c, p, m);
        return 0;
    }
    const struct acl *acl = auth_acl(b, c->lcfg);
    if (acl && !acl_can_publish(acl, s->client_id, s->username, m->topic, m->topic_len)) {
        /* write permission on the final topic (mount point included) */
        b->stats.refused_acl++;
        msg_release(&m);
        ack_unrouted(c, p, 0x87);
        return 0;
    }
    route_acked(c, p, &m, 1, true);
    return 0;
}

int proto_ack(struct conn *c, uint8_t type, struct codec_ack *a)
{
    struct session *s = c->s;
    uint8_t notfound = c->version == MQTT_V5 ? 0x92 : 0;
    switch (type) {
    case CODEC_PUBACK:
        session_puback(s, a->packet_id); /* an unknown id needs no answer */
        return 0;
    case CODEC_PUBREC:
        if (session_pubrec(s, a->packet_id, a->reason) < 0)
            conn_send_ack(c, CODEC_PUBREL, a->packet_id, notfound);
        else if (a->reason < 0x80)
            conn_send_ack(c, CODEC_PUBREL, a->packet_id, 0);
        return 0;
    case CODEC_PUBREL:
        /* [MQTT-4.3.3-11] the packet id is released once PUBCOMP is sent */
        conn_send_ack(c, CODEC_PUBCOMP, a->packet_id,
                      session_qos2_remove(s, a->packet_id) ? 0 : notfound);
        return 0;
    case CODEC_PUBCOMP:
        session_pubcomp(s, a->packet_id);
        return 0;
    }
    return TIDE_EPROTOCOL;
}
