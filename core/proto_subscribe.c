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
#include "log.h"
#include "router.h"
#include "session.h"
#include "subtree.h"
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
        const struct acl *acl = auth_acl(b, c->lcfg);
        if (code == 0 && acl && !acl_can_subscribe(acl, s->client_id, s->username, real, rlen)) {
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
        uint8_t granted_opts = (uint8_t)((options & ~0x03) | qos);
        if (!v5)
            granted_opts = qos;
        bool existed = session_sub_add(s, f, fb.len, granted_opts, sub_id);
        subtree_add(b->subs, group, glen, real, rlen, s, granted_opts, sub_id, NULL);
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
    codec_encode_suback(sb, c->version, CODEC_SUBACK, sp->packet_id, NULL, codes, n);
    conn_send(c, sb->data, sb->len);
    for (size_t i = 0; i < nretained; i++)
        router_send_retained(b, s, retained[i].filter, retained[i].len, retained[i].options,
                             sub_id);
done:
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
