/* Routing of published messages: topic-tree lookup, one copy per session at the highest granted
 * QoS with every matching subscription identifier [MQTT-3.3.5-1], one member per shared group
 * (connected members with free inflight slots first), retained store updates, and retained
 * messages on subscribe. Takes message references only through session_deliver/retain_set. */
#include "router.h"

#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "codec.h"
#include "config.h"
#include "conn.h"
#include "acl.h"
#include "auth.h"
#include "hooks.h"
#include "msg.h"
#include "retain.h"
#include "session.h"
#include "subtree.h"
#include "topic.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/err.h"

/* One receiving session of the message being routed. */
struct target {
    struct session *s;
    uint8_t qos;
    bool retain;
    bool acl_exempt; /* a rule granted one of the matching subscriptions */
    size_t id_count, id_cap;
    uint32_t ids_inline[2];
    uint32_t *ids; /* ids_inline, or heap when more are needed */
};

struct route {
    struct broker *b;
    struct msg *m;
    struct held_ack *ha;
    bool no_rules; /* no rule wants m's topic: deliveries skip on_deliver */
    struct target *t;
    size_t count, cap;
    struct target inline_t[8];
};

static void add_id(struct target *t, uint32_t id)
{
    if (!id)
        return;
    if (t->id_count == t->id_cap) {
        size_t cap = t->id_cap * 2;
        uint32_t *ids = xmalloc(cap * sizeof *ids);
        memcpy(ids, t->ids, t->id_count * sizeof *ids);
        if (t->ids != t->ids_inline)
            free(t->ids);
        t->ids = ids;
        t->id_cap = cap;
    }
    t->ids[t->id_count++] = id;
}

static uint8_t min_u8(uint8_t a, uint8_t b)
{
    return a < b ? a : b;
}

static void on_sub(void *arg, const struct subtree_sub *sub)
{
    struct route *r = arg;
    struct session *s = sub->owner;
    const struct msg *m = r->m;
    /* [MQTT-3.8.3-3] No Local: not back to the publishing client */
    if ((sub->options & CODEC_SUBOPT_NO_LOCAL) && m->origin[0] &&
        strcmp(s->client_id, m->origin) == 0)
        return;
    uint8_t qos = min_u8(CODEC_SUBOPT_QOS(sub->options), m->qos);
    /* [MQTT-3.3.1-12] [MQTT-3.3.1-13] live messages keep retain only with Retain As Published */
    bool retain = (sub->options & CODEC_SUBOPT_RAP) && m->retain;
    if (s->match_gen == r->b->match_gen) {
        struct target *t = &r->t[s->match_slot];
        if (qos > t->qos)
            t->qos = qos;
        t->retain |= retain;
        t->acl_exempt |= (sub->options & SESSION_SUBOPT_RULE_GRANTED) != 0;
        add_id(t, sub->sub_id);
        return;
    }
    if (r->count == r->cap) {
        size_t cap = r->cap * 2;
        struct target *t = xmalloc(cap * sizeof *t);
        memcpy(t, r->t, r->count * sizeof *t);
        for (size_t i = 0; i < r->count; i++)
            if (r->t[i].ids == r->t[i].ids_inline)
                t[i].ids = t[i].ids_inline;
        if (r->t != r->inline_t)
            free(r->t);
        r->t = t;
        r->cap = cap;
    }
    s->match_gen = r->b->match_gen;
    s->match_slot = r->count;
    struct target *t = &r->t[r->count++];
    t->s = s;
    t->qos = qos;
    t->retain = retain;
    t->acl_exempt = (sub->options & SESSION_SUBOPT_RULE_GRANTED) != 0;
    t->id_count = 0;
    t->id_cap = 2;
    t->ids = t->ids_inline;
    add_id(t, sub->sub_id);
}

static bool member_ready(const struct session *s, uint8_t qos)
{
    const struct conn *c = s->conn;
    if (!c || c->state != CONN_ACTIVE || conn_output_congested(c) || s->queue.len)
        return false;
    return qos == 0 || s->inflight.len < c->send_quota;
}

/* Picks the group member for one message: the next connected member with a free slot in round
 * robin order, else the next connected member, else the next member (its session queues it). */
static bool excluded(const struct session *s, struct session *const *skip, size_t nskip)
{
    for (size_t i = 0; i < nskip; i++)
        if (skip[i] == s)
            return true;
    return false;
}

static struct subtree_sub *pick_member(struct subtree_group *g, const struct msg *m,
                                       const struct session *exclude, struct session *const *skip,
                                       size_t nskip)
{
    uint8_t qos = m->qos;
    struct subtree_sub *connected = NULL, *any = NULL;
    for (size_t i = 0; i < g->count; i++) {
        size_t idx = (g->cursor + i) % g->count;
        struct subtree_sub *sub = &g->members[idx];
        struct session *s = sub->owner;
        if (s == exclude || excluded(s, skip, nskip) ||
            (!(sub->options & SESSION_SUBOPT_RULE_GRANTED) && !session_may_read(s, m)))
            continue; /* a member that may not read it must not swallow it for the group */
        if (member_ready(s, min_u8(CODEC_SUBOPT_QOS(sub->options), qos))) {
            g->cursor = (idx + 1) % g->count;
            return sub;
        }
        if (!connected && s->conn && s->conn->state == CONN_ACTIVE)
            connected = sub;
        if (!any)
            any = sub;
    }
    struct subtree_sub *pick = connected ? connected : any;
    if (pick)
        g->cursor = ((size_t)(pick - g->members) + 1) % g->count;
    return pick;
}

/* With rules, on_deliver runs when the member is picked (not when a queued copy goes out), so a
 * member whose rules say `false` passes the message to the next one (RULES-API) within this one
 * pick, and a group whose every member refuses ends the message's way there. */
static void deliver_to_group(struct route *r, struct subtree_group *g,
                             const struct session *exclude)
{
    bool hooked = !r->no_rules; /* route's caller looked the topic up once for every copy */
    struct session **skip = NULL;
    size_t nskip = 0;
    struct buf share;
    buf_init(&share);
    /* the delivery remembers its group, to go to another member if s's session ends (§4.8.2) */
    buf_append(&share, "$share/", 7);
    buf_append(&share, g->name, strlen(g->name));
    buf_append(&share, "/", 1);
    buf_append(&share, g->filter, strlen(g->filter));
    for (;;) {
        struct subtree_sub *sub = pick_member(g, r->m, exclude, skip, nskip);
        if (!sub)
            break;
        struct session *s = sub->owner;
        uint32_t sub_id = sub->sub_id;
        uint8_t options = sub->options;
        uint8_t qos = min_u8(CODEC_SUBOPT_QOS(options), r->m->qos);
        bool retain = (options & CODEC_SUBOPT_RAP) && r->m->retain;
        uint8_t dflags = (options & SESSION_SUBOPT_RULE_GRANTED) ? DELIVERY_ACL_EXEMPT : 0;
        struct msg *m = r->m;
        if (hooked) {
            m = msg_retain(r->m);
            if (!session_deliver_hook(s, &m, &qos, (const char *)share.data, share.len)) {
                skip = xrealloc(skip, (nskip + 1) * sizeof *skip);
                skip[nskip++] = s;
                continue;
            }
            dflags |= DELIVERY_HOOKED;
        } else {
            dflags |= DELIVERY_NO_RULES;
        }
        if (session_deliver(s, m, qos, retain, &sub_id, sub_id ? 1 : 0,
                            (const char *)share.data, share.len, dflags) &&
            r->ha)
            session_hold_ack(s, r->ha);
        if (hooked)
            msg_release(&m);
        break;
    }
    free(skip);
    buf_fini(&share);
}

static void on_group(void *arg, struct subtree_group *g)
{
    deliver_to_group(arg, g, NULL);
}

static void mark_present(void *arg, struct msg *m)
{
    (void)m;
    *(bool *)arg = true;
}

static void count_one(void *arg, struct msg *m)
{
    (void)m;
    (*(size_t *)arg)++;
}

/* Retained messages of clients (and rules): the broker's own $SYS figures do not use the quota. */
static size_t client_retained_count(const struct broker *b)
{
    size_t sys = 0;
    retain_match(b->retained, "$SYS/#", 6, count_one, &sys);
    return retain_count(b->retained) - sys;
}

int router_retain(struct broker *b, struct msg *m)
{
    const struct config *cfg = b->cfg;
    if (m->payload_len == 0) {
        retain_clear(b->retained, m->topic, m->topic_len);
        return 0;
    }
    bool own_sys = m->origin[0] == '\0' && m->topic_len >= 5 && memcmp(m->topic, "$SYS/", 5) == 0;
    if (own_sys) {
        retain_set(b->retained, m);
        return 0;
    }
    if ((cfg->max_retained_messages && retain_count(b->retained) >= cfg->max_retained_messages &&
         client_retained_count(b) >= cfg->max_retained_messages) ||
        (cfg->max_retained_bytes &&
         retain_bytes(b->retained) + m->payload_len > cfg->max_retained_bytes)) {
        /* replacing a stored topic is allowed at the count limit (the name has no wildcard, so
         * matching it as a filter finds exactly that topic) */
        bool present = false;
        retain_match(b->retained, m->topic, m->topic_len, mark_present, &present);
        if (!present || (cfg->max_retained_bytes && retain_bytes(b->retained) + m->payload_len >
                                                        cfg->max_retained_bytes)) {
            b->stats.refused_retained++;
            return TIDE_EQUOTA;
        }
    }
    retain_set(b->retained, m);
    return 0;
}

static void route(struct broker *b, struct msg *m, struct held_ack *ha, bool no_rules)
{
    if (msg_expired(m, broker_now_ms())) {
        b->stats.dropped_expired++; /* [MQTT-3.3.2-5] never delivered once expired */
        return;
    }
    if (m->retain)
        router_retain(b, m);
    struct route r = {.b = b, .m = m, .ha = ha, .cap = 8, .no_rules = no_rules};
    r.t = r.inline_t;
    if (++b->match_gen == 0)
        b->match_gen = 1;
    subtree_match(b->subs, m->topic, m->topic_len, on_sub, on_group, &r);
    for (size_t i = 0; i < r.count; i++) {
        struct target *t = &r.t[i];
        uint8_t dflags = (t->acl_exempt ? DELIVERY_ACL_EXEMPT : 0) |
                         (r.no_rules ? DELIVERY_NO_RULES : DELIVERY_RULES_WANT);
        if (session_deliver(t->s, m, t->qos, t->retain, t->ids, t->id_count, NULL, 0, dflags) &&
            ha)
            session_hold_ack(t->s, ha);
        if (t->ids != t->ids_inline)
            free(t->ids);
    }
    if (r.t != r.inline_t)
        free(r.t);
}

void router_publish(struct broker *b, struct msg *m, struct held_ack *ha)
{
    const struct hooks *h = b->hooks;
    route(b, m, ha, !hooks_wants_deliver(h, m->topic, m->topic_len));
}

void router_publish_no_rules(struct broker *b, struct msg *m, struct held_ack *ha)
{
    route(b, m, ha, true);
}

struct retained_ctx {
    struct session *s;
    uint8_t options;
    uint32_t sub_id;
    uint64_t now;
};

static void on_retained(void *arg, struct msg *m)
{
    struct retained_ctx *x = arg;
    if (msg_expired(m, x->now))
        return;
    uint8_t qos = min_u8(CODEC_SUBOPT_QOS(x->options), m->qos);
    /* [MQTT-3.3.1-9] retained messages sent on subscribe carry the retain flag */
    session_deliver(x->s, m, qos, true, &x->sub_id, x->sub_id ? 1 : 0, NULL, 0,
                    (x->options & SESSION_SUBOPT_RULE_GRANTED) ? DELIVERY_ACL_EXEMPT : 0);
}

void router_send_retained(struct broker *b, struct session *s, const char *filter, size_t len,
                          uint8_t options, uint32_t sub_id)
{
    struct retained_ctx x = {s, options, sub_id, broker_now_ms()};
    retain_match(b->retained, filter, len, on_retained, &x);
}

struct reroute {
    struct route r;
    const char *group, *filter;
    size_t group_len, filter_len;
    struct session *from;
};

static void on_reroute_group(void *arg, struct subtree_group *g)
{
    struct reroute *x = arg;
    if (strlen(g->name) == x->group_len && memcmp(g->name, x->group, x->group_len) == 0 &&
        strlen(g->filter) == x->filter_len && memcmp(g->filter, x->filter, x->filter_len) == 0)
        deliver_to_group(&x->r, g, x->from);
}

static void ignore_sub(void *arg, const struct subtree_sub *sub)
{
    (void)arg;
    (void)sub;
}

void router_reroute_shared(struct broker *b, struct msg *m, const char *share, size_t share_len,
                           struct session *from)
{
    const struct hooks *h = b->hooks;
    struct reroute x = {.r = {.b = b, .m = m,
                              .no_rules = !hooks_wants_deliver(h, m->topic, m->topic_len)},
                        .from = from};
    if (topic_parse_shared(share, share_len, &x.group, &x.group_len, &x.filter,
                           &x.filter_len) != 1)
        return;
    subtree_match(b->subs, m->topic, m->topic_len, ignore_sub, on_reroute_group, &x);
}

/* --- the rules' on_publish --- */

void router_rules_publish(struct broker *b, struct msg *m, struct session *s,
                          struct hooks_publish_answer *out)
{
    const struct hooks *h = b->hooks;
    char addr[46];
    struct hooks_client hc;
    session_hooks_client(s, &hc, addr);
    h->on_publish(h->ctx, m, &hc, 0, out);
    if (out->a.verdict != HOOKS_PASS)
        return;
    /* what leaves the rules needs the publisher's write permission on its final topic, so a
     * rewrite never carries a client's message where the client may not publish (RULES-API) */
    const struct acl *acl = auth_acl(b, s->lcfg);
    size_t kept = 0, refused = 0;
    for (size_t i = 0; i < out->out_count; i++) {
        struct msg *x = out->out[i];
        if (acl && !acl_can_publish(acl, s->client_id, s->username, x->topic, x->topic_len)) {
            b->stats.refused_acl++;
            refused++;
            msg_release(&out->out[i]);
            continue;
        }
        out->out[kept++] = x;
    }
    out->out_count = kept;
    if (!kept) {
        out->a.verdict = refused ? HOOKS_REFUSE : HOOKS_DROP;
        out->a.reason = refused ? 0x87 : 0;
    }
}

void router_publish_as(struct broker *b, struct msg *m, struct session *s)
{
    struct hooks_publish_answer a;
    router_rules_publish(b, m, s, &a);
    for (size_t i = 0; i < a.out_count; i++) {
        router_publish(b, a.out[i], NULL);
        msg_release(&a.out[i]);
    }
    hooks_publish_answer_fini(&a);
}
