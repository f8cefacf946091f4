/* SUBSCRIBE and UNSUBSCRIBE: filter and shared-subscription rules, per-client subscription limits,
 * granted QoS, the tree update, SUBACK/UNSUBACK, and retained messages by retain handling. */
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
#include "router.h"
#include "session.h"
#include "topic.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/err.h"

/* A granted subscription whose retained messages go out after the SUBACK. */
struct pending_retained {
    char *filter; /* owned copy */
    size_t len;
    uint8_t options;
};

/* Validates one filter; on success fills group/real filter. Returns 0, or the v5 reason code. */
static uint8_t check_filter(const char *f, size_t len, const char **group, size_t *glen,
                            const char **real, size_t *rlen)
{
    int shared = topic_parse_shared(f, len, group, glen, real, rlen);
    if (shared < 0)
        return 0x8F;
    if (shared == 0) {
        *group = NULL;
        *glen = 0;
        *real = f;
        *rlen = len;
    }
    if (topic_validate_filter(*real, *rlen) < 0)
        return 0x8F;
    return 0;
}

/* One filter's on_subscribe (RULES-API): fills *a and, for a rewrite, *actual with the filter to
 * put in the tree instead ("$share/G/F" or F; fields the rule left out keep the client's). */
static void subscribe_hook(struct conn *c, const char *group, size_t glen, const char *real,
                           size_t rlen, uint8_t options, struct hooks_sub_answer *a,
                           struct buf *actual)
{
    const struct hooks *h = c->b->hooks;
    char addr[46];
    struct hooks_client hc;
    session_hooks_client(c->s, &hc, addr);
    struct hooks_sub in = {real, rlen, group, glen, options};
    h->on_subscribe(h->ctx, &hc, &in, a);
    if (a->a.verdict == HOOKS_REFUSE || (!a->filter && !a->share))
        return;
    const char *g = a->share ? a->share : group;
    size_t gl = a->share ? strlen(a->share) : glen;
    buf_reset(actual);
    if (g) {
        buf_append(actual, "$share/", 7);
        buf_append(actual, g, gl);
        buf_append(actual, "/", 1);
    }
    if (a->filter)
        buf_append(actual, a->filter, strlen(a->filter));
    else
        buf_append(actual, real, rlen);
}

int proto_subscribe(struct conn *c, struct codec_subscribe *sp)
{
    struct broker *b = c->b;
    const struct config *cfg = b->cfg;
    struct session *s = c->s;
    bool v5 = c->version == MQTT_V5;
    uint32_t sub_id = CODEC_HAS(&sp->props, CODEC_PROP_SUBSCRIPTION_ID) ? sp->props.sub_id : 0;
    bool props_ok = proto_user_props_ok(b, &sp->props);

    uint8_t *codes = xmalloc(sp->count);
    struct pending_retained *retained = xmalloc(sp->count * sizeof *retained);
    size_t n = 0, nretained = 0;
    struct codec_bytes fb;
    uint8_t options;
    size_t cursor = 0;
    int rc = 0;
    char refusal_text[sizeof ((struct hooks_answer *)0)->reason_string] = "";
    struct buf actual;
    buf_init(&actual);
    while (codec_next_filter(sp, true, &cursor, &fb, &options)) {
        const char *f = (const char *)fb.p, *group, *real;
        size_t glen, rlen;
        uint8_t code = props_ok ? check_filter(f, fb.len, &group, &glen, &real, &rlen) : 0x97;
        if (code == 0 && c->lcfg->mount_point) {
            /* the listener's mount point prefixes every filter of its clients */
            topic_mount(c->lcfg->mount_point, f, fb.len, &b->mount);
            f = (const char *)b->mount.data;
            fb.len = b->mount.len;
            code = check_filter(f, fb.len, &group, &glen, &real, &rlen);
        }
        struct hooks_sub_answer ha = {.a.verdict = HOOKS_PASS, .max_qos = -1};
        bool rewritten = false;
        if (code == 0 && b->hooks) {
            subscribe_hook(c, group, glen, real, rlen, options, &ha, &actual);
            if (ha.a.verdict == HOOKS_REFUSE) {
                code = ha.a.reason >= 0x80 ? ha.a.reason : 0x80;
                if (ha.a.reason_string[0])
                    memcpy(refusal_text, ha.a.reason_string, sizeof refusal_text);
            } else if (ha.filter || ha.share) {
                /* the rewrite goes in the tree; the session remembers it under f */
                rewritten = true;
                if (check_filter((const char *)actual.data, actual.len, &group, &glen, &real,
                                 &rlen))
                    code = 0x8F;
            }
            free(ha.filter);
            free(ha.share);
        }
        bool rule_granted = ha.a.verdict == HOOKS_ACCEPT;
        const struct acl *acl = auth_acl(b, c->lcfg);
        if (code == 0 && !rule_granted && acl &&
            !acl_can_subscribe(acl, s->client_id, s->username, real, rlen)) {
            /* no topic this filter could match is readable [MQTT-3.9.3-?] (SUBACK 0x87) */
            b->stats.refused_acl++;
            code = 0x87;
        }
        if (code == 0 && group && (options & CODEC_SUBOPT_NO_LOCAL)) {
            rc = TIDE_EPROTOCOL; /* [MQTT-3.8.3-4] No Local on a shared subscription */
            goto done;
        }
        if (code == 0 && cfg->max_subscriptions_per_client &&
            s->sub_count >= cfg->max_subscriptions_per_client) {
            bool exists = false;
            for (size_t i = 0; i < s->sub_count && !exists; i++)
                exists = strlen(s->subs[i].filter) == fb.len &&
                         memcmp(s->subs[i].filter, f, fb.len) == 0;
            if (!exists) {
                b->stats.refused_subscriptions++;
                code = 0x97;
            }
        }
        if (code) {
            codes[n++] = v5 ? code : 0x80;
            continue;
        }
        uint8_t qos = CODEC_SUBOPT_QOS(options);
        if (qos > c->lcfg->max_qos)
            qos = c->lcfg->max_qos;
        if (ha.max_qos >= 0 && qos > ha.max_qos)
            qos = (uint8_t)ha.max_qos; /* a rule's number grants at most that QoS */
        uint8_t granted_opts = (uint8_t)((options & ~0x03) | qos);
        if (!v5)
            granted_opts = qos;
        if (rule_granted)
            granted_opts |= SESSION_SUBOPT_RULE_GRANTED; /* exempt from the read ACL */
        bool existed = session_sub_add(s, f, fb.len, granted_opts, sub_id,
                                       rewritten ? (const char *)actual.data : NULL,
                                       rewritten ? actual.len : 0); /* and the tree entry */
        codes[n++] = qos;
        if (cfg->log_types & CONFIG_LOG_SUBSCRIBE)
            log_info("sub", "subscribe client=%s filter=%.*s qos=%u", s->client_id,
                     (int)fb.len, f, qos);
        /* [MQTT-3.3.1-10] retain handling 0: always, 1: only for a new subscription, 2: never;
         * never for a shared subscription [MQTT-3.8.4-?] (§4.8.2) */
        uint8_t rh = CODEC_SUBOPT_RH(granted_opts);
        if (!group && (rh == 0 || (rh == 1 && !existed)))
            retained[nretained++] =
                (struct pending_retained){xstrndup(real, rlen), rlen, granted_opts};
    }
    struct buf *sb = &b->scratch;
    buf_reset(sb);
    struct codec_props pr = {0};
    if (v5 && refusal_text[0] && c->request_problem_info) {
        pr.present |= CODEC_BIT(CODEC_PROP_REASON_STRING);
        pr.reason_string = (struct codec_bytes){(const uint8_t *)refusal_text,
                                                strlen(refusal_text)};
    }
    codec_encode_suback(sb, c->version, CODEC_SUBACK, sp->packet_id, pr.present ? &pr : NULL,
                        codes, n);
    conn_send(c, sb->data, sb->len);
    for (size_t i = 0; i < nretained; i++)
        router_send_retained(b, s, retained[i].filter, retained[i].len, retained[i].options,
                             sub_id);
done:
    buf_fini(&actual);
    for (size_t i = 0; i < nretained; i++)
        free(retained[i].filter);
    free(codes);
    free(retained);
    return rc;
}

int proto_unsubscribe(struct conn *c, struct codec_subscribe *sp)
{
    struct broker *b = c->b;
    struct session *s = c->s;
    uint8_t *codes = xmalloc(sp->count);
    size_t n = 0, cursor = 0;
    struct codec_bytes fb;
    uint8_t options;
    while (codec_next_filter(sp, false, &cursor, &fb, &options)) {
        const char *group, *real;
        size_t glen, rlen;
        if (check_filter((const char *)fb.p, fb.len, &group, &glen, &real, &rlen)) {
            codes[n++] = 0x8F;
            continue;
        }
        const char *f = (const char *)fb.p;
        size_t flen = fb.len;
        if (c->lcfg->mount_point) {
            topic_mount(c->lcfg->mount_point, f, flen, &b->mount);
            f = (const char *)b->mount.data;
            flen = b->mount.len;
        }
        /* 0x11: No subscription existed */
        codes[n++] = session_sub_remove(s, f, flen) ? 0x00 : 0x11;
        if (b->cfg->log_types & CONFIG_LOG_UNSUBSCRIBE)
            log_info("sub", "unsubscribe client=%s filter=%.*s", s->client_id, (int)fb.len,
                     (const char *)fb.p);
    }
    struct buf *sb = &b->scratch;
    buf_reset(sb);
    codec_encode_suback(sb, c->version, CODEC_UNSUBACK, sp->packet_id, NULL, codes, n);
    conn_send(c, sb->data, sb->len);
    free(codes);
    return 0;
}
