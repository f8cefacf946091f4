/* CONNECT and DISCONNECT: protocol and client-id rules, keepalive negotiation, anonymous access,
 * session creation, resumption and takeover, wills, and the CONNACK with its v5 properties. */
#include "proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "auth.h"
#include "broker.h"
#include "codec.h"
#include "config.h"
#include "conn.h"
#include "hooks.h"
#include "log.h"
#include "msg.h"
#include "session.h"
#include "topic.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/err.h"

void proto_connect_refuse(struct conn *c, uint8_t version, int err)
{
    struct buf *sb = &c->b->scratch;
    buf_reset(sb);
    if (version == MQTT_V5) {
        codec_encode_connack(sb, MQTT_V5, false, proto_reason(err), NULL);
        conn_send(c, sb->data, sb->len);
    } else if (version && (err == TIDE_EVERSION || err == TIDE_ECLIENTID || err == TIDE_EDENIED ||
                           err == TIDE_EBADAUTH || err == TIDE_EKEEPALIVE || err == TIDE_EBUSY ||
                           err == TIDE_EQUOTA)) {
        /* 3.1.1 has return codes only for these; a malformed CONNECT just closes [MQTT-3.2.2-6] */
        codec_encode_connack(sb, version, false, proto_connack_rc(err), NULL);
        conn_send(c, sb->data, sb->len);
    }
    char a[46];
    log_notice("conn", "refused connection addr=%s port=%u reason=%s", conn_addr(c, a), c->port,
               tide_strerror(err));
    conn_close(c, 0, tide_strerror(err));
}

/* The 3.1.1 CONNACK return code for a rule's MQTT 5 reason (RULES-API fine points). */
static uint8_t connack_rc_of_reason(uint8_t reason)
{
    switch (reason) {
    case 0x84: return 1; /* unsupported_protocol_version */
    case 0x85: return 2; /* client_identifier_not_valid */
    case 0x88:           /* server_unavailable */
    case 0x89: return 3; /* server_busy */
    case 0x86: return 4; /* bad_username_or_password */
    }
    return 5;
}

/* Answers a CONNECT a rule refused: v5 CONNACK with the rule's reason (and its text as the
 * Reason String), 3.1/3.1.1 with the mapped return code; then closes. */
static void refuse_by_rule(struct conn *c, uint8_t version, const struct hooks_answer *a)
{
    struct buf *sb = &c->b->scratch;
    buf_reset(sb);
    uint8_t reason = a->reason >= 0x80 ? a->reason : 0x87;
    if (version == MQTT_V5) {
        struct codec_props pr = {0};
        if (a->reason_string[0]) {
            pr.present |= CODEC_BIT(CODEC_PROP_REASON_STRING);
            pr.reason_string = (struct codec_bytes){(const uint8_t *)a->reason_string,
                                                    strlen(a->reason_string)};
        }
        codec_encode_connack(sb, MQTT_V5, false, reason, &pr);
    } else {
        codec_encode_connack(sb, version, false, connack_rc_of_reason(reason), NULL);
    }
    conn_send(c, sb->data, sb->len);
    char addr[46];
    log_notice("conn", "refused connection addr=%s port=%u reason=rule:0x%02x", conn_addr(c, addr),
               c->port, reason);
    conn_close(c, 0, "refused by a rule");
}

/* The rules' on_connect (RULES-API): the first rule with an opinion decides; attrs they write are
 * kept on c until the session takes them. Returns the verdict (HOOKS_PASS: the password file and
 * allow_anonymous decide). */
static enum hooks_verdict connect_hook(struct conn *c, const struct codec_connect *p,
                                       const char *id, size_t id_len, struct hooks_answer *a)
{
    const struct hooks *h = c->b->hooks;
    char addr[46];
    char *cid = xstrndup(id, id_len);
    char *user = p->has_username ? xstrndup((const char *)p->username.p, p->username.len) : NULL;
    struct hooks_connect in = {
        .client = {.client_id = cid, .username = user, .protocol = p->version,
                   .address = conn_addr(c, addr), .port = c->port, .listener = c->lcfg->port},
        .password = p->has_password ? p->password.p : NULL,
        .password_len = p->has_password ? p->password.len : 0,
        .clean_start = p->clean_start,
        .keepalive = p->keepalive,
        .tls = conn_tls_peer(c), /* NULL unless the client came over TLS */
        .props = &p->props,
    };
    void *attrs = NULL;
    h->on_connect(h->ctx, &in, a, &attrs);
    session_free_attrs(c->b, &c->rule_attrs);
    c->rule_attrs = attrs;
    free(cid);
    free(user);
    return a->verdict;
}

/* An identifier for a client that sent none (v5 Assigned Client Identifier [MQTT-3.1.3-7]). */
static void assign_client_id(char *out, size_t size)
{
    uint8_t r[12];
    if (RAND_bytes(r, sizeof r) != 1)
        panic("RAND_bytes failed");
    size_t n = (size_t)snprintf(out, size, "auto-");
    for (size_t i = 0; i < sizeof r && n + 2 < size; i++)
        n += (size_t)snprintf(out + n, size - n, "%02x", r[i]);
}

static int check_will(const struct conn *c, const struct codec_connect *p)
{
    const struct config *cfg = c->b->cfg;
    if (!p->will_flag)
        return 0;
    const char *t = (const char *)p->will_topic.p;
    if (topic_validate_name(t, p->will_topic.len) < 0)
        return TIDE_ETOPIC;
    if (p->will_qos > c->lcfg->max_qos) {
        c->b->stats.refused_qos++;
        return TIDE_EQOS; /* [MQTT-3.2.2-12] */
    }
    if (p->will_retain && !cfg->retain_available)
        return TIDE_ERETAIN; /* [MQTT-3.2.2-13] */
    if (!proto_user_props_ok(c->b, &p->will_props))
        return TIDE_EQUOTA;
    return 0;
}

static struct msg *make_will(struct conn *c, const struct codec_connect *p, const char *origin)
{
    struct broker *b = c->b;
    const char *topic = (const char *)p->will_topic.p;
    size_t topic_len = p->will_topic.len;
    if (c->lcfg->mount_point) {
        topic_mount(c->lcfg->mount_point, topic, topic_len, &b->mount);
        topic = (const char *)b->mount.data;
        topic_len = b->mount.len;
    }
    struct buf props;
    buf_init(&props);
    codec_encode_forward_props(&props, &p->will_props);
    struct msg_init in = {
        .topic = topic,
        .topic_len = topic_len,
        .payload = p->will_payload.p,
        .payload_len = p->will_payload.len,
        .props = props.data,
        .props_len = props.len,
        .origin = origin,
        .qos = p->will_qos,
        .retain = p->will_retain,
        .has_expiry = CODEC_HAS(&p->will_props, CODEC_PROP_MESSAGE_EXPIRY),
        .expiry_interval = p->will_props.message_expiry,
        .now_ms = broker_now_ms(),
        .account = &b->msg_bytes,
    };
    struct msg *m = msg_new(&in);
    buf_fini(&props);
    return m;
}

/* use_identity_as_username (Mosquitto's rule): the common name of the client certificate, verified
 * against cafile/capath during the TLS handshake, replaces any username the client sent, and the
 * password file is not consulted. A client without such a certificate is not authorized. */
static int take_tls_identity(struct conn *c, struct codec_connect *p)
{
    const char *cn = conn_tls_identity(c);
    if (!cn)
        return TIDE_EDENIED;
    p->username = (struct codec_bytes){(const uint8_t *)cn, strlen(cn)}; /* c's transport owns it */
    p->has_username = true;
    return 0;
}

/* Who may connect: a username must match the password file when one applies (checked off the
 * loop thread unless the table's cache answers: TIDE_EPARTIAL then, with c in state AUTH);
 * without a username, or with one and no password file, allow_anonymous decides. */
static int authenticate(struct conn *c, const struct codec_connect *p)
{
    struct broker *b = c->b;
    bool anonymous_ok = config_allow_anonymous(b->cfg, c->lcfg);
    if (c->password_ok || c->lcfg->use_identity_as_username)
        return 0; /* checked already, or the verified certificate (take_tls_identity) vouches */
    struct passwd *pw = auth_passwd(b, c->lcfg);
    if (!p->has_username)
        return anonymous_ok ? 0 : TIDE_EDENIED;
    if (!pw)
        return anonymous_ok ? 0 : TIDE_EDENIED; /* nothing could vouch for this user */
    int rc = auth_check_password(b, c, pw, (const char *)p->username.p, p->username.len,
                                 (const char *)p->password.p,
                                 p->has_password ? p->password.len : 0);
    if (rc == TIDE_EPARTIAL)
        c->state = CONN_AUTH;
    return rc == TIDE_EPARTIAL ? rc : rc < 0 ? TIDE_EBADAUTH : 0;
}

void proto_password_checked(struct conn *c, bool ok)
{
    struct codec_packet pkt;
    uint8_t first;
    uint32_t remaining;
    size_t hlen;
    uint8_t *raw = c->pending_connect;
    c->pending_connect = NULL;
    /* the bytes decoded once already: they decode again the same way */
    if (codec_parse_fixed_header(raw, c->pending_connect_len, &first, &remaining, &hlen) != 0 ||
        codec_decode(0, first, raw + hlen, remaining, &pkt) != 0)
        panic("a stored CONNECT no longer decodes");
    c->state = CONN_NEW;
    if (!ok) {
        proto_connect_refuse(c, pkt.u.connect.version, TIDE_EBADAUTH);
    } else {
        c->password_ok = true;
        proto_connect(c, &pkt.u.connect);
    }
    free(raw);
    conn_resume(c);
}

static uint32_t session_expiry_of(const struct config *cfg, const struct codec_connect *p)
{
    uint32_t e;
    if (p->version == MQTT_V5)
        e = CODEC_HAS(&p->props, CODEC_PROP_SESSION_EXPIRY) ? p->props.session_expiry : 0;
    else
        e = p->clean_start ? 0 : UINT32_MAX;
    if (e && cfg->persistent_client_expiration_s && e > cfg->persistent_client_expiration_s)
        e = (uint32_t)cfg->persistent_client_expiration_s;
    return e;
}

static bool same_user(const struct session *s, const struct codec_connect *p)
{
    if (!s->username || !p->has_username)
        return !s->username && !p->has_username;
    return strlen(s->username) == p->username.len &&
           memcmp(s->username, p->username.p, p->username.len) == 0;
}

/* Finds or creates the session for id, taking over a connected one. Sets *present. */
static int bind_session(struct conn *c, const struct codec_connect *p, const char *id, size_t len,
                        struct session **out, bool *present)
{
    struct broker *b = c->b;
    struct session *s = session_find(b, id, len);
    if (s && s->conn) {
        /* [MQTT-3.1.4-3] the existing connection is closed (v5: DISCONNECT 0x8E); it ended
         * without a DISCONNECT, so its will follows the usual rules */
        struct conn *old = s->conn;
        old->will_on_close = true;
        conn_close(old, 0x8E, "session taken over");
        s = session_find(b, id, len); /* a session with expiry 0 has ended */
    }
    if (s && (p->clean_start || !same_user(s, p))) {
        /* clean start, or a different user must not inherit another's session */
        session_end(s);
        s = NULL;
    }
    *present = s != NULL;
    if (!s) {
        if (b->cfg->max_sessions && b->sessions.count >= b->cfg->max_sessions) {
            b->stats.refused_sessions++;
            return TIDE_EQUOTA;
        }
        s = session_new(b, id, len);
    }
    *out = s;
    return 0;
}

static void send_connack(struct conn *c, const struct codec_connect *p, bool present,
                         const char *assigned, uint16_t server_keepalive, uint32_t capped_expiry)
{
    const struct config *cfg = c->b->cfg;
    struct codec_props pr = {0};
    if (c->version == MQTT_V5) {
        if (assigned) {
            pr.present |= CODEC_BIT(CODEC_PROP_ASSIGNED_CLIENT_ID);
            pr.assigned_client_id = (struct codec_bytes){(const uint8_t *)assigned,
                                                         strlen(assigned)};
        }
        if (server_keepalive != p->keepalive) {
            pr.present |= CODEC_BIT(CODEC_PROP_SERVER_KEEPALIVE);
            pr.server_keepalive = server_keepalive;
        }
        if (capped_expiry != UINT32_MAX) {
            pr.present |= CODEC_BIT(CODEC_PROP_SESSION_EXPIRY);
            pr.session_expiry = capped_expiry;
        }
        if (c->receive_max != 65535) {
            pr.present |= CODEC_BIT(CODEC_PROP_RECEIVE_MAX);
            pr.receive_max = c->receive_max;
        }
        if (c->lcfg->max_qos < 2) {
            pr.present |= CODEC_BIT(CODEC_PROP_MAX_QOS);
            pr.max_qos = c->lcfg->max_qos;
        }
        if (!cfg->retain_available) {
            pr.present |= CODEC_BIT(CODEC_PROP_RETAIN_AVAILABLE);
            pr.retain_available = 0;
        }
        if (cfg->max_packet_size) {
            pr.present |= CODEC_BIT(CODEC_PROP_MAX_PACKET_SIZE);
            pr.max_packet_size = cfg->max_packet_size;
        }
        pr.present |= CODEC_BIT(CODEC_PROP_TOPIC_ALIAS_MAX);
        pr.topic_alias_max = c->alias_in_max;
    }
    struct buf *sb = &c->b->scratch;
    buf_reset(sb);
    codec_encode_connack(sb, c->version, present, 0, &pr);
    conn_send(c, sb->data, sb->len);
}

int proto_connect(struct conn *c, struct codec_connect *p)
{
    struct broker *b = c->b;
    const struct config *cfg = b->cfg;
    char assigned[64];
    const char *id = (const char *)p->client_id.p;
    size_t id_len = p->client_id.len;
    bool assigned_id = false;
    int rc;

    c->version = p->version;
    if (id_len == 0) {
        /* [MQTT-3.1.3-8] 3.1.1 needs clean session for an empty id; 3.1 never allows it */
        if (p->version == MQTT_V31 || (p->version == MQTT_V311 && !p->clean_start) ||
            !cfg->allow_zero_length_clientid) {
            rc = TIDE_ECLIENTID;
            goto refuse;
        }
        assign_client_id(assigned, sizeof assigned);
        id = assigned;
        id_len = strlen(assigned);
        assigned_id = true;
    }
    uint16_t keepalive = p->keepalive;
    if (cfg->max_keepalive < 65535 && (keepalive == 0 || keepalive > cfg->max_keepalive)) {
        if (p->version != MQTT_V5) {
            b->stats.refused_keepalive++;
            rc = TIDE_EKEEPALIVE;
            goto refuse;
        }
        keepalive = cfg->max_keepalive; /* [MQTT-3.2.2-21] Server Keep Alive */
    }
    if (p->version == MQTT_V5 && CODEC_HAS(&p->props, CODEC_PROP_AUTH_METHOD)) {
        rc = TIDE_EAUTHMETHOD; /* no enhanced authentication methods yet */
        goto refuse;
    }
    if (!proto_user_props_ok(b, &p->props)) {
        rc = TIDE_EQUOTA;
        goto refuse;
    }
    if ((rc = check_will(c, p)) < 0)
        goto refuse;
    if (c->lcfg->use_identity_as_username && (rc = take_tls_identity(c, p)) < 0)
        goto refuse;
    /* the rules decide first; after a password checked off the loop they have spoken already */
    bool rule_accepted = false;
    if (b->hooks && !c->password_ok) {
        struct hooks_answer a;
        enum hooks_verdict v = connect_hook(c, p, id, id_len, &a);
        if (v == HOOKS_REFUSE || v == HOOKS_DROP) {
            refuse_by_rule(c, p->version, &a);
            return 0;
        }
        rule_accepted = v == HOOKS_ACCEPT; /* `true` skips the password file */
    }
    if (!rule_accepted && (rc = authenticate(c, p)) != 0) {
        if (rc == TIDE_EPARTIAL)
            return 0; /* the password is being checked: proto_password_checked continues */
        goto refuse;
    }

    struct session *s;
    bool present;
    if ((rc = bind_session(c, p, id, id_len, &s, &present)) < 0)
        goto refuse;

    uint32_t expiry = session_expiry_of(cfg, p);
    uint32_t asked = p->version == MQTT_V5 && CODEC_HAS(&p->props, CODEC_PROP_SESSION_EXPIRY)
                         ? p->props.session_expiry
                         : 0;
    s->version = p->version;
    s->expiry_interval = expiry;
    session_free_attrs(b, &s->rule_attrs); /* attrs belong to the latest connection */
    s->rule_attrs = c->rule_attrs;
    c->rule_attrs = NULL;
    free(s->username);
    s->username = p->has_username ? xstrndup((const char *)p->username.p, p->username.len) : NULL;
    msg_release(&s->will); /* [MQTT-3.1.3-9] a new connection cancels a delayed will */
    if (p->will_flag) {
        s->will = make_will(c, p, s->client_id);
        s->will_delay = CODEC_HAS(&p->will_props, CODEC_PROP_WILL_DELAY)
                            ? p->will_props.will_delay
                            : 0;
    }

    c->keepalive = keepalive;
    c->max_packet_in = cfg->max_packet_size ? cfg->max_packet_size : CODEC_MAX_REMAINING + 5;
    uint16_t inflight = cfg->max_inflight_messages && cfg->max_inflight_messages < 65535
                            ? (uint16_t)cfg->max_inflight_messages
                            : 65535;
    c->receive_max = inflight;
    c->send_quota = inflight;
    if (p->version == MQTT_V5) {
        if (CODEC_HAS(&p->props, CODEC_PROP_RECEIVE_MAX) && p->props.receive_max < inflight)
            c->send_quota = p->props.receive_max;
        if (CODEC_HAS(&p->props, CODEC_PROP_MAX_PACKET_SIZE))
            c->max_packet_out = p->props.max_packet_size;
        if (CODEC_HAS(&p->props, CODEC_PROP_TOPIC_ALIAS_MAX))
            c->alias_out_max = p->props.topic_alias_max;
        c->alias_in_max = c->lcfg->max_topic_alias;
        c->request_problem_info = !CODEC_HAS(&p->props, CODEC_PROP_REQUEST_PROBLEM_INFO) ||
                                  p->props.request_problem_info;
    }
    c->state = CONN_ACTIVE;
    b->connected_count++;
    b->stats.connects_total++;
    if (b->connected_count > b->stats.clients_maximum)
        b->stats.clients_maximum = b->connected_count;

    send_connack(c, p, present, assigned_id ? s->client_id : NULL, keepalive,
                 p->version == MQTT_V5 && asked != expiry ? expiry : UINT32_MAX);
    conn_start_keepalive(c);
    char a[46];
    if (cfg->connection_messages)
        log_notice("conn", "client connected client=%s addr=%s port=%u protocol=%u "
                   "clean=%d keepalive=%u user=%s", s->client_id, conn_addr(c, a), c->port, c->version,
                   p->clean_start, keepalive, s->username ? s->username : "-");
    session_attach(s, c, present);
    session_pump(s);
    return 0;

refuse:
    proto_connect_refuse(c, p->version, rc);
    return 0;
}

int proto_disconnect(struct conn *c, struct codec_disconnect *d)
{
    struct session *s = c->s;
    if (c->version == MQTT_V5 && CODEC_HAS(&d->props, CODEC_PROP_SESSION_EXPIRY)) {
        /* [MQTT-3.14.2-2] a session that was to end at close cannot be extended now */
        if (s->expiry_interval == 0 && d->props.session_expiry != 0)
            return TIDE_EPROTOCOL;
        s->expiry_interval = d->props.session_expiry;
    }
    /* 0x04 Disconnect with Will Message; anything else discards the will [MQTT-3.14.4-3] */
    c->will_on_close = c->version == MQTT_V5 && d->reason == 0x04;
    conn_close(c, 0, d->reason == 0x04 ? "disconnect with will" : "client disconnected");
    return 0;
}
