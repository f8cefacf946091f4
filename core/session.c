/* Sessions: everything that survives a reconnect — subscriptions, the outbound inflight window and
 * queue (flow control, DUP resends, offline queuing within bounds), inbound QoS 2 ids, wills with
 * their delay, session expiry, and the acks held back for publishers while this session's
 * subscriber is congested. Owns its deliveries' message references. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

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
#include "subtree.h"
#include "topic.h"
#include "util/alloc.h"
#include "util/err.h"

/* --- delivery rings --- */

static struct delivery *dq_at(struct dqueue *q, size_t i)
{
    return &q->v[(q->head + i) % q->cap];
}

static void dq_push(struct dqueue *q, const struct delivery *d)
{
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 8;
        struct delivery *v = xmalloc(cap * sizeof *v);
        for (size_t i = 0; i < q->len; i++)
            v[i] = *dq_at(q, i);
        free(q->v);
        q->v = v;
        q->cap = cap;
        q->head = 0;
    }
    q->v[(q->head + q->len) % q->cap] = *d;
    q->len++;
}

static struct delivery dq_pop(struct dqueue *q)
{
    struct delivery d = q->v[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return d;
}

/* Removes element i keeping order (windows are small). */
static struct delivery dq_remove(struct dqueue *q, size_t i)
{
    struct delivery d = *dq_at(q, i);
    for (size_t j = i; j + 1 < q->len; j++)
        *dq_at(q, j) = *dq_at(q, j + 1);
    q->len--;
    return d;
}

static void delivery_fini(struct delivery *d)
{
    msg_release(&d->m);
    if (d->sub_id_count > 1)
        free(d->sub_ids);
    free(d->share);
}

static const uint32_t *delivery_sub_ids(const struct delivery *d)
{
    return d->sub_id_count > 1 ? d->sub_ids : &d->sub_id;
}

static void dq_clear(struct dqueue *q)
{
    while (q->len) {
        struct delivery d = dq_pop(q);
        delivery_fini(&d);
    }
    free(q->v);
    memset(q, 0, sizeof *q);
}

/* --- lookup and lifetime --- */

struct session *session_find(struct broker *b, const char *client_id, size_t len)
{
    return hmap_get(&b->sessions, client_id, len);
}

struct session *session_new(struct broker *b, const char *client_id, size_t len)
{
    struct session *s = xcalloc(1, sizeof *s + len + 1);
    s->b = b;
    memcpy(s->client_id, client_id, len);
    s->client_id_len = (uint16_t)len;
    s->next_packet_id = 1;
    hmap_put(&b->sessions, s->client_id, len, s);
    return s;
}

/* The subscriber's current read permission on m (ACL file); checked at every delivery, so a
 * reload applies at once, to queued messages too. */
bool session_may_read(const struct session *s, const struct msg *m)
{
    const struct acl *acl = auth_acl(s->b, s->lcfg);
    return !acl || acl_can_read(acl, s->client_id, s->username, m->topic, m->topic_len);
}

static bool may_read(struct session *s, const struct msg *m)
{
    if (session_may_read(s, m))
        return true;
    s->b->stats.refused_acl++;
    return false;
}

/* A will through the rules' on_publish when one wants its topic: each message that comes out
 * needs the client's write permission (router_rules_publish), as a live PUBLISH would. */
static bool publish_will_rules(struct session *s)
{
    const struct hooks *h = s->b->hooks;
    if (!h || !h->wants(h->ctx, s->will->topic, s->will->topic_len))
        return false;
    struct msg *will = msg_restart_expiry(s->will, broker_now_ms());
    msg_release(&s->will);
    log_info("session", "publishing will through the rules client=%s topic=%s", s->client_id,
             will->topic);
    router_publish_as(s->b, will, s);
    msg_release(&will);
    return true;
}

static void publish_will(struct session *s)
{
    if (s->will_timer)
        evtimer_del(s->will_timer);
    if (!s->will || publish_will_rules(s))
        return;
    const struct acl *acl = auth_acl(s->b, s->lcfg);
    if (acl && !acl_can_publish(acl, s->client_id, s->username, s->will->topic,
                                s->will->topic_len)) {
        /* a will needs write permission on its topic when it is published */
        s->b->stats.refused_acl++;
        log_info("session", "will not published: no write permission client=%s topic=%s",
                 s->client_id, s->will->topic);
        msg_release(&s->will);
        return;
    }
    struct msg *will = msg_restart_expiry(s->will, broker_now_ms());
    msg_release(&s->will);
    log_info("session", "publishing will client=%s topic=%s", s->client_id, will->topic);
    router_publish(s->b, will, NULL);
    msg_release(&will);
}

static void release_waiters(struct session *s)
{
    s->congested = false;
    size_t n = s->waiter_count;
    struct held_ack **w = s->waiters;
    s->waiters = NULL;
    s->waiter_count = s->waiter_cap = 0;
    for (size_t i = 0; i < n; i++)
        held_ack_release(w[i]);
    free(w);
}

/* QoS 1 messages that came through a shared subscription go to another member when this session
 * ends before they were acknowledged (§4.8.2); QoS 2 stays bound to its member. */
static void reroute_shared(struct session *s, struct dqueue *q)
{
    for (size_t i = 0; i < q->len; i++) {
        struct delivery *d = dq_at(q, i);
        if (d->share && d->qos == 1)
            router_reroute_shared(s->b, d->m, d->share, strlen(d->share), s);
    }
}

void session_end(struct session *s)
{
    struct broker *b = s->b;
    session_sub_clear(s);
    hmap_del(&b->sessions, s->client_id, s->client_id_len);
    if (!b->shutting_down) {
        publish_will(s);
        reroute_shared(s, &s->inflight);
        reroute_shared(s, &s->queue);
    }
    release_waiters(s);
    session_clear_messages(s);
    session_free_attrs(b, &s->rule_attrs);
    if (s->expiry_timer)
        event_free(s->expiry_timer);
    if (s->will_timer)
        event_free(s->will_timer);
    msg_release(&s->will);
    free(s->qos2_in);
    free(s->subs);
    free(s->username);
    free(s);
}

void session_clear_messages(struct session *s)
{
    dq_clear(&s->inflight);
    dq_clear(&s->queue);
    s->queued_bytes = 0;
    s->qos2_in_count = 0;
}

static void on_expiry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    log_info("session", "session expired client=%s", s->client_id);
    session_end(s);
}

static void on_will_delay(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    publish_will(arg);
}

static void arm(struct event **ev, struct session *s, event_callback_fn fn, uint32_t seconds)
{
    if (!*ev)
        *ev = evtimer_new(s->b->base, fn, s);
    struct timeval tv = {(time_t)seconds, 0};
    evtimer_add(*ev, &tv);
}

/* --- sending --- */

static uint16_t next_packet_id(struct session *s)
{
    for (;;) {
        uint16_t id = s->next_packet_id++;
        if (s->next_packet_id == 0)
            s->next_packet_id = 1;
        bool used = false;
        for (size_t i = 0; i < s->inflight.len && !used; i++)
            used = dq_at(&s->inflight, i)->packet_id == id;
        if (!used)
            return id;
    }
}

/* Sends d (already popped) now. QoS 0 is released; QoS 1/2 joins the inflight window unless the
 * client's Maximum Packet Size skipped it. */
/* on_deliver for d as it goes out, once: its result is frozen into d. */
static bool run_deliver_hook(struct session *s, struct delivery *d)
{
    const struct hooks *h = s->b->hooks;
    if (!h || (d->flags & (DELIVERY_HOOKED | DELIVERY_NO_RULES)))
        return true;
    d->flags |= DELIVERY_HOOKED;
    if (!(d->flags & DELIVERY_RULES_WANT) && !hooks_wants_deliver(h, d->m->topic, d->m->topic_len))
        return true;
    return session_deliver_hook(s, &d->m, &d->qos, d->share, d->share ? strlen(d->share) : 0);
}

static void send_now(struct session *s, struct delivery *d)
{
    struct conn *c = s->conn;
    if (!run_deliver_hook(s, d)) {
        delivery_fini(d);
        return;
    }
    if (d->qos == 0) {
        conn_send_publish(c, d->m, 0, d->retain, false, 0, delivery_sub_ids(d), d->sub_id_count);
        delivery_fini(d);
        return;
    }
    d->packet_id = next_packet_id(s);
    d->state = DELIVERY_WAIT_ACK;
    if (!conn_send_publish(c, d->m, d->qos, d->retain, false, d->packet_id, delivery_sub_ids(d),
                           d->sub_id_count)) {
        delivery_fini(d);
        return;
    }
    dq_push(&s->inflight, d);
}

static bool queue_full(const struct session *s)
{
    const struct config *cfg = s->b->cfg;
    return (cfg->max_queued_messages && s->queue.len >= cfg->max_queued_messages) ||
           (cfg->max_queued_bytes && s->queued_bytes >= cfg->max_queued_bytes);
}

void session_pump(struct session *s)
{
    struct conn *c = s->conn;
    if (!c || conn_is_closing(c) || c->state != CONN_ACTIVE)
        return;
    uint64_t now = broker_now_ms();
    while (s->queue.len && !conn_output_congested(c)) {
        struct delivery *front = dq_at(&s->queue, 0);
        if (front->qos > 0 && s->inflight.len >= c->send_quota)
            break;
        struct delivery d = dq_pop(&s->queue);
        s->queued_bytes -= d.m->payload_len;
        if (msg_expired(d.m, now)) {
            s->b->stats.dropped_expired++;
            delivery_fini(&d);
            continue;
        }
        if (!(d.flags & DELIVERY_ACL_EXEMPT) && !may_read(s, d.m)) {
            /* the permission now, not when it was queued */
            delivery_fini(&d);
            continue;
        }
        send_now(s, &d);
    }
    if (s->congested && !queue_full(s))
        release_waiters(s);
}

bool session_deliver(struct session *s, struct msg *m, uint8_t qos, bool retain,
                     const uint32_t *sub_ids, size_t sub_id_count, const char *share,
                     size_t share_len, uint8_t dflags)
{
    struct broker *b = s->b;
    struct conn *c = s->conn;
    bool online = c && c->state == CONN_ACTIVE;
    bool from_qos0 = m->qos == 0;

    if (!online && qos == 0)
        return false; /* QoS 0 is not queued for offline clients */
    if (!(dflags & DELIVERY_ACL_EXEMPT) && !may_read(s, m))
        return false;
    bool send_now_ok = online && s->queue.len == 0 && !conn_output_congested(c) &&
                       (qos == 0 || s->inflight.len < c->send_quota);
    if (send_now_ok && qos == 0) {
        const struct hooks *h = b->hooks;
        if (h && !(dflags & (DELIVERY_HOOKED | DELIVERY_NO_RULES)) &&
            ((dflags & DELIVERY_RULES_WANT) || hooks_wants_deliver(h, m->topic, m->topic_len))) {
            struct msg *x = msg_retain(m);
            if (session_deliver_hook(s, &x, &qos, share, share_len))
                conn_send_publish(c, x, 0, retain, false, 0, sub_ids, sub_id_count);
            msg_release(&x);
            return false;
        }
        conn_send_publish(c, m, 0, retain, false, 0, sub_ids, sub_id_count);
        return false;
    }
    if (!send_now_ok && (from_qos0 || !online) && queue_full(s)) {
        /* QoS 0 past the bound, or an offline session over its bounds: dropped and counted.
         * A QoS 1/2 message for a connected subscriber is never dropped: it waits and the
         * publisher's ack is held instead (DESIGN.md). */
        if (online)
            b->stats.dropped_qos0_congested++;
        else
            b->stats.dropped_queue_full++;
        return false;
    }

    struct delivery d = {.m = msg_retain(m), .qos = qos, .retain = retain,
                         .state = DELIVERY_QUEUED, .flags = dflags,
                         .sub_id_count = (uint16_t)sub_id_count};
    if (sub_id_count == 1)
        d.sub_id = sub_ids[0];
    else if (sub_id_count > 1)
        d.sub_ids = xmemdup(sub_ids, sub_id_count * sizeof *sub_ids);
    if (share)
        d.share = xstrndup(share, share_len);
    if (send_now_ok) {
        send_now(s, &d);
        return false;
    }
    /* when it goes out, the rules of that moment decide */
    d.flags &= (uint8_t)~(DELIVERY_NO_RULES | DELIVERY_RULES_WANT);
    dq_push(&s->queue, &d);
    s->queued_bytes += m->payload_len;
    if (online && queue_full(s)) {
        s->congested = true;
        return true;
    }
    return false;
}

void session_hold_ack(struct session *s, struct held_ack *ha)
{
    if (s->waiter_count == s->waiter_cap) {
        s->waiter_cap = s->waiter_cap ? s->waiter_cap * 2 : 8;
        s->waiters = xrealloc(s->waiters, s->waiter_cap * sizeof *s->waiters);
    }
    ha->blockers++;
    s->waiters[s->waiter_count++] = ha;
}

void held_ack_release(struct held_ack *ha)
{
    if (--ha->blockers)
        return;
    struct conn *c = ha->publisher;
    if (c) {
        for (size_t i = 0; i < c->held_count; i++) {
            if (c->held[i] == ha) {
                c->held[i] = c->held[--c->held_count];
                break;
            }
        }
        if (ha->type == CODEC_PUBACK)
            c->held_qos1--;
        if (!conn_is_closing(c))
            conn_send_ack(c, ha->type, ha->packet_id, 0);
    }
    free(ha);
}

/* --- attach / detach --- */

void session_attach(struct session *s, struct conn *c, bool resumed)
{
    s->conn = c;
    s->lcfg = c->lcfg;
    c->s = s;
    if (s->expiry_timer)
        evtimer_del(s->expiry_timer);
    if (s->will_timer)
        evtimer_del(s->will_timer);
    if (!resumed)
        return;
    /* [MQTT-4.4.0-1] resend unacknowledged PUBLISH (DUP set) and PUBREL on a resumed session */
    for (size_t i = 0; i < s->inflight.len; i++) {
        struct delivery *d = dq_at(&s->inflight, i);
        if (d->state == DELIVERY_WAIT_COMP)
            conn_send_ack(c, CODEC_PUBREL, d->packet_id, 0);
        else
            conn_send_publish(c, d->m, d->qos, d->retain, true, d->packet_id, delivery_sub_ids(d),
                              d->sub_id_count);
    }
}

void session_detach(struct session *s, bool publish_will_now)
{
    struct broker *b = s->b;
    s->conn = NULL;
    release_waiters(s);
    /* QoS 0 waiting in the queue is not kept for an offline client */
    for (size_t i = 0; i < s->queue.len;) {
        struct delivery *d = dq_at(&s->queue, i);
        if (d->qos == 0) {
            s->queued_bytes -= d->m->payload_len;
            struct delivery x = dq_remove(&s->queue, i);
            delivery_fini(&x);
        } else {
            i++;
        }
    }
    if (!publish_will_now || b->shutting_down) {
        /* [MQTT-3.1.2-10] a normal DISCONNECT discards the will; shutdown publishes it itself */
        if (!b->shutting_down)
            msg_release(&s->will);
    } else if (s->will) {
        if (s->will_delay == 0 || s->expiry_interval == 0)
            publish_will(s);
        else
            arm(&s->will_timer, s, on_will_delay,
                s->will_delay < s->expiry_interval ? s->will_delay : s->expiry_interval);
    }
    if (b->shutting_down)
        return;
    if (s->expiry_interval == 0)
        session_end(s);
    else if (s->expiry_interval != UINT32_MAX)
        arm(&s->expiry_timer, s, on_expiry, s->expiry_interval);
}

/* --- acks from the client --- */

static long find_inflight(struct session *s, uint16_t packet_id, uint8_t state)
{
    for (size_t i = 0; i < s->inflight.len; i++) {
        struct delivery *d = dq_at(&s->inflight, i);
        if (d->packet_id == packet_id && d->state == state)
            return (long)i;
    }
    return -1;
}

static void complete(struct session *s, long i)
{
    struct delivery d = dq_remove(&s->inflight, (size_t)i);
    delivery_fini(&d);
    if (s->conn)
        s->conn->last_progress_ms = broker_now_ms();
    session_pump(s);
}

int session_puback(struct session *s, uint16_t packet_id)
{
    long i = find_inflight(s, packet_id, DELIVERY_WAIT_ACK);
    if (i < 0 || dq_at(&s->inflight, (size_t)i)->qos != 1)
        return TIDE_ENOTFOUND;
    complete(s, i);
    return 0;
}

int session_pubrec(struct session *s, uint16_t packet_id, uint8_t reason)
{
    long i = find_inflight(s, packet_id, DELIVERY_WAIT_ACK);
    if (i < 0 || dq_at(&s->inflight, (size_t)i)->qos != 2)
        return find_inflight(s, packet_id, DELIVERY_WAIT_COMP) >= 0 ? 0 : TIDE_ENOTFOUND;
    if (reason >= 0x80) {
        complete(s, i); /* the client refused it: the exchange ends here */
        return 0;
    }
    dq_at(&s->inflight, (size_t)i)->state = DELIVERY_WAIT_COMP;
    return 0;
}

int session_pubcomp(struct session *s, uint16_t packet_id)
{
    long i = find_inflight(s, packet_id, DELIVERY_WAIT_COMP);
    if (i < 0)
        return TIDE_ENOTFOUND;
    complete(s, i);
    return 0;
}

/* --- subscriptions --- */

static long find_sub(const struct session *s, const char *filter, size_t len)
{
    for (size_t i = 0; i < s->sub_count; i++) {
        if (strlen(s->subs[i].filter) == len && memcmp(s->subs[i].filter, filter, len) == 0)
            return (long)i;
    }
    return -1;
}

/* What the tree holds for sub. */
static const char *sub_tree_filter(const struct session_sub *sub)
{
    return sub->actual ? sub->actual : sub->filter;
}

/* Splits a tree filter into its shared group (NULL for none) and the filter after it. */
static void tree_key(const char *filter, size_t len, const char **group, size_t *glen,
                     const char **f, size_t *flen)
{
    if (topic_parse_shared(filter, len, group, glen, f, flen) != 1)
        *group = NULL, *glen = 0, *f = filter, *flen = len;
}

/* The tree keeps one entry per (session, filter), but a rule's rewrites can map several of the
 * client's subscriptions onto one filter (A and B both to X, or A onto an X the client also holds
 * directly). So the entry for tf is derived from every subscription of s that maps to it, and
 * removed only when none is left. A message on tf goes to s once, as router.c treats overlapping
 * filters: the highest QoS, Retain As Published if any mapping asks, No Local only if all ask.
 * The ACL exemption is tracked per mapping: a delivery is exempt when a rule-granted mapping would
 * deliver it on its own (so one whose No Local would withhold the client's own messages does not
 * exempt those), which is exactly what that mapping alone would get; once the granted mappings
 * are gone the exemption goes with them. The entry holds one subscription identifier: the first
 * non-zero one of the mappings (a known limit; MQTT would send all of them). Costs a scan of s's
 * subscriptions per SUBSCRIBE/UNSUBSCRIBE, nothing per delivery. */
static void tree_sync(struct session *s, const char *tf, size_t tflen)
{
    bool any = false, all_nl = true, granted = false, granted_no_nl = false;
    uint8_t qos = 0, opts = 0;
    uint32_t sub_id = 0;
    for (size_t i = 0; i < s->sub_count; i++) {
        const struct session_sub *sub = &s->subs[i];
        const char *x = sub_tree_filter(sub);
        if (strlen(x) != tflen || memcmp(x, tf, tflen) != 0)
            continue;
        uint8_t o = sub->options;
        if (!any)
            opts = (uint8_t)(CODEC_SUBOPT_RH(o) << 4); /* only SUBSCRIBE reads it */
        any = true;
        if (CODEC_SUBOPT_QOS(o) > qos)
            qos = CODEC_SUBOPT_QOS(o);
        opts |= o & CODEC_SUBOPT_RAP;
        bool nl = (o & CODEC_SUBOPT_NO_LOCAL) != 0;
        all_nl &= nl;
        if (o & SESSION_SUBOPT_RULE_GRANTED) {
            granted = true;
            granted_no_nl |= !nl;
        }
        if (!sub_id)
            sub_id = sub->sub_id;
    }
    const char *group, *f;
    size_t glen, flen;
    tree_key(tf, tflen, &group, &glen, &f, &flen);
    if (!any) {
        subtree_remove(s->b->subs, group, glen, f, flen, s);
        return;
    }
    opts |= qos;
    if (all_nl)
        opts |= CODEC_SUBOPT_NO_LOCAL;
    if (all_nl ? granted : granted_no_nl)
        opts |= SESSION_SUBOPT_RULE_GRANTED;
    subtree_add(s->b->subs, group, glen, f, flen, s, opts, sub_id, NULL);
}

bool session_sub_add(struct session *s, const char *filter, size_t len, uint8_t options,
                     uint32_t sub_id, const char *actual, size_t actual_len)
{
    if (actual && actual_len == len && memcmp(actual, filter, len) == 0)
        actual = NULL;
    long i = find_sub(s, filter, len);
    bool existed = i >= 0;
    char *was = NULL; /* where a replaced subscription was in the tree */
    if (existed) {
        struct session_sub *sub = &s->subs[i];
        was = sub->actual ? sub->actual : xstrdup(sub->filter);
        sub->actual = actual ? xstrndup(actual, actual_len) : NULL;
        sub->options = options;
        sub->sub_id = sub_id;
    } else {
        if (s->sub_count == s->sub_cap) {
            s->sub_cap = s->sub_cap ? s->sub_cap * 2 : 4;
            s->subs = xrealloc(s->subs, s->sub_cap * sizeof *s->subs);
        }
        i = (long)s->sub_count;
        s->subs[s->sub_count++] = (struct session_sub){
            xstrndup(filter, len), actual ? xstrndup(actual, actual_len) : NULL, options, sub_id};
    }
    const char *now = sub_tree_filter(&s->subs[i]);
    size_t now_len = strlen(now);
    tree_sync(s, now, now_len);
    if (was && (strlen(was) != now_len || memcmp(was, now, now_len) != 0))
        tree_sync(s, was, strlen(was)); /* a rewrite moved it: what is left of the old entry */
    free(was);
    return existed;
}

bool session_sub_remove(struct session *s, const char *filter, size_t len)
{
    long i = find_sub(s, filter, len);
    if (i < 0)
        return false;
    struct session_sub gone = s->subs[i];
    s->subs[i] = s->subs[--s->sub_count];
    const char *tf = sub_tree_filter(&gone);
    tree_sync(s, tf, strlen(tf)); /* kept while another subscription maps to it */
    free(gone.filter);
    free(gone.actual);
    return true;
}

void session_sub_clear(struct session *s)
{
    for (size_t i = 0; i < s->sub_count; i++) {
        const char *tf = sub_tree_filter(&s->subs[i]), *group, *f;
        size_t glen, flen;
        tree_key(tf, strlen(tf), &group, &glen, &f, &flen);
        /* several may share one entry: the first removes it, the others find none */
        subtree_remove(s->b->subs, group, glen, f, flen, s);
        free(s->subs[i].filter);
        free(s->subs[i].actual);
    }
    s->sub_count = 0;
}

/* --- inbound QoS 2 --- */

bool session_qos2_has(const struct session *s, uint16_t packet_id)
{
    for (size_t i = 0; i < s->qos2_in_count; i++)
        if (s->qos2_in[i] == packet_id)
            return true;
    return false;
}

void session_qos2_add(struct session *s, uint16_t packet_id)
{
    if (s->qos2_in_count == s->qos2_in_cap) {
        s->qos2_in_cap = s->qos2_in_cap ? s->qos2_in_cap * 2 : 8;
        s->qos2_in = xrealloc(s->qos2_in, s->qos2_in_cap * sizeof *s->qos2_in);
    }
    s->qos2_in[s->qos2_in_count++] = packet_id;
}

bool session_qos2_remove(struct session *s, uint16_t packet_id)
{
    for (size_t i = 0; i < s->qos2_in_count; i++) {
        if (s->qos2_in[i] == packet_id) {
            s->qos2_in[i] = s->qos2_in[--s->qos2_in_count];
            return true;
        }
    }
    return false;
}

/* --- the rules' view --- */

void session_hooks_client(const struct session *s, struct hooks_client *out, char *addr)
{
    const struct conn *c = s->conn;
    addr[0] = '\0';
    *out = (struct hooks_client){
        .client_id = s->client_id,
        .username = s->username,
        .protocol = s->version,
        .address = c ? conn_addr(c, addr) : addr,
        .port = c ? c->port : 0,
        .listener = s->lcfg ? s->lcfg->port : 0,
        .attrs = s->rule_attrs,
    };
}

void session_free_attrs(struct broker *b, void **attrs)
{
    if (*attrs && b->hooks_engine)
        b->hooks_engine->client_free(b->hooks_engine->ctx, *attrs);
    *attrs = NULL;
}

/* The filter, as the client subscribed with it (without $share/G/), of the subscription of s that
 * routes topic t: the one recorded for share when given, else the first non-shared one matching.
 * A rewritten subscription answers with the client's filter: a rule that strips a prefix on the
 * way out must land inside what the client asked for (RULES-API on_deliver). */
static bool deliver_filter(const struct session *s, const char *t, size_t tlen, const char *share,
                           size_t share_len, const char **f, size_t *flen)
{
    for (size_t i = 0; i < s->sub_count; i++) {
        const struct session_sub *sub = &s->subs[i];
        const char *tf = sub_tree_filter(sub), *group, *real;
        size_t tlen_f = strlen(tf), glen, rlen;
        int shared = topic_parse_shared(tf, tlen_f, &group, &glen, &real, &rlen);
        if (share ? (tlen_f != share_len || memcmp(tf, share, share_len) != 0)
                  : (shared != 0 || !topic_matches(tf, tlen_f, t, tlen)))
            continue;
        *f = sub->filter;
        *flen = strlen(sub->filter);
        if (topic_parse_shared(*f, *flen, &group, &glen, &real, &rlen) == 1) {
            *f = real;
            *flen = rlen;
        }
        return true;
    }
    return false;
}

bool session_deliver_hook(struct session *s, struct msg **m, uint8_t *qos, const char *share,
                          size_t share_len)
{
    const struct hooks *h = s->b->hooks;
    const char *f = NULL;
    size_t flen = 0;
    if (!deliver_filter(s, (*m)->topic, (*m)->topic_len, share, share_len, &f, &flen) && share) {
        const char *group, *real; /* no record (a reroute): the group's own filter */
        size_t glen, rlen;
        if (topic_parse_shared(share, share_len, &group, &glen, &real, &rlen) == 1)
            f = real, flen = rlen;
    }
    char addr[46];
    struct hooks_client hc;
    session_hooks_client(s, &hc, addr);
    struct msg *out = h->on_deliver(h->ctx, *m, &hc, f, flen);
    msg_release(m);
    if (!out)
        return false;
    if (out->qos < *qos)
        *qos = out->qos; /* may lower, never raise */
    *m = out;
    return true;
}
