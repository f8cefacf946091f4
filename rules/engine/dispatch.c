/* Hook dispatch (RULES-API "Hooks"): runs each event through the bundle's rules in file order —
 * first non-nil answer decides connect and subscribe; on_publish results (drop, refuse, replace,
 * fan out) feed the later rules; on_deliver changes a copy; errors take the rule's on_error path.
 * Messages a rule makes are new struct msgs. A C-side trie of match filters keeps a message no
 * rule matches out of Lua. Also runs the tide.publish queue and timer callbacks, and keeps the
 * per-rule counters and the CPU-share circuit breaker. */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "hooks.h"
#include "log.h"
#include "msg.h"
#include "subtree.h"
#include "topic.h"
#include "util/alloc.h"
#include "util/err.h"

#define BREAKER_COOLDOWN_MS 5000

enum outcome { OUT_PASS, OUT_ACCEPT, OUT_DROP, OUT_REFUSE, OUT_MSGS, OUT_QOS, OUT_REWRITE };

/* One hook call: its inputs, and what the Lua side answered. C memory it holds (out, filter,
 * share) is released by call_fini whatever happened. */
struct call {
    struct rule *r;
    int hook;
    const struct hooks_client *client;
    const struct hooks_connect *conn;
    const struct hooks_sub *sub;
    const char *reason_in; /* on_disconnect */
    struct msg *m;
    const char *filter_in; /* on_deliver: the subscriber's filter */
    size_t filter_in_len;
    struct attrs **attrs;
    /* results */
    int outcome;
    uint8_t reason;
    bool unknown_reason;
    char text[128];
    struct msg **out;
    size_t nout;
    int max_qos;
    char *filter, *share;
};

static void call_fini(struct call *c)
{
    for (size_t i = 0; i < c->nout; i++)
        msg_release(&c->out[i]);
    free(c->out);
    free(c->filter);
    free(c->share);
    c->out = NULL;
    c->nout = 0;
    c->filter = c->share = NULL;
}

static uint64_t now_ms(struct engine *e)
{
    return e->host.monotonic_ms ? e->host.monotonic_ms(e->host.ctx) : vm_wall_ns() / 1000000u;
}

static void read_text(lua_State *L, int idx, struct call *c)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (n >= sizeof(c->text))
            n = sizeof(c->text) - 1;
        memcpy(c->text, s, n);
        c->text[n] = '\0';
    }
}

/* false[, reason[, text]] at 1..3 */
static void read_refusal(lua_State *L, struct call *c, char kind)
{
    c->outcome = OUT_REFUSE;
    c->reason = values_reason(L, 2, kind, &c->unknown_reason);
    read_text(L, 3, c);
}

static void add_out(struct call *c, struct msg *m)
{
    c->out = xrealloc(c->out, (c->nout + 1) * sizeof(*c->out));
    c->out[c->nout++] = m;
}

static void publish_results(lua_State *L, struct call *c)
{
    int ty = lua_type(L, 1);
    if (ty == LUA_TNIL || (ty == LUA_TBOOLEAN && lua_toboolean(L, 1))) {
        c->outcome = OUT_PASS;
    } else if (ty == LUA_TBOOLEAN) {
        if (lua_isnoneornil(L, 2))
            c->outcome = OUT_DROP;
        else
            read_refusal(L, c, 'P');
    } else if (ty == LUA_TTABLE) {
        size_t n = lua_objlen(L, 1);
        lua_pushnil(L);
        if (n == 0 && !lua_next(L, 1)) {
            c->outcome = OUT_DROP; /* {}: an empty fan-out */
            return;
        }
        lua_settop(L, 3);
        c->outcome = OUT_MSGS;
        uint64_t t = now_ms(c->r->eng); /* a new message's expiry starts now */
        if (n == 0) {
            add_out(c, values_to_msg(L, 1, c->m, "on_publish", false, NULL, 0, t));
            return;
        }
        if (n > ENGINE_FANOUT_MAX)
            luaL_error(L, "on_publish: a fan-out of %d messages (at most %d)", (int)n,
                       ENGINE_FANOUT_MAX);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, 1, (int)i);
            char what[48];
            snprintf(what, sizeof(what), "on_publish[%d]", (int)i);
            add_out(c, values_to_msg(L, -1, c->m, what, false, NULL, 0, t));
            lua_settop(L, 3);
        }
    } else {
        luaL_error(L, "on_publish: returned a %s (expected nil, a boolean or a table)",
                   luaL_typename(L, 1));
    }
}

static void decide_results(lua_State *L, struct call *c, char kind)
{
    int ty = lua_type(L, 1);
    if (ty == LUA_TNIL)
        c->outcome = OUT_PASS;
    else if (ty == LUA_TBOOLEAN && lua_toboolean(L, 1))
        c->outcome = OUT_ACCEPT;
    else if (ty == LUA_TBOOLEAN)
        read_refusal(L, c, kind);
    else if (kind == 'S' && ty == LUA_TNUMBER) {
        double q = lua_tonumber(L, 1);
        if (!(q == 0 || q == 1 || q == 2))
            luaL_error(L, "on_subscribe: a QoS must be 0, 1 or 2");
        c->outcome = OUT_QOS;
        c->max_qos = (int)q;
    } else if (kind == 'S' && ty == LUA_TTABLE) {
        c->outcome = OUT_REWRITE;
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
            if (strcmp(k, "filter") && strcmp(k, "qos") && strcmp(k, "share"))
                luaL_error(L, "on_subscribe: field '%s' is not allowed here", k);
            lua_pop(L, 1);
        }
        lua_getfield(L, 1, "qos");
        if (!lua_isnil(L, -1)) {
            double q = lua_tonumber(L, -1);
            if (lua_type(L, -1) != LUA_TNUMBER || !(q == 0 || q == 1 || q == 2))
                luaL_error(L, "on_subscribe: field 'qos' must be 0, 1 or 2");
            c->max_qos = (int)q;
        }
        size_t fl = 0, sl = 0;
        lua_getfield(L, 1, "filter");
        const char *f = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &fl) : NULL;
        if (!lua_isnil(L, -1) && (!f || topic_validate_filter(f, fl) != 0 ||
                                  strncmp(f, "$share/", 7) == 0 || memchr(f, '\0', fl)))
            luaL_error(L, "on_subscribe: field 'filter' must be a valid filter");
        lua_getfield(L, 1, "share");
        const char *g = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &sl) : NULL;
        if (!lua_isnil(L, -1) && (!g || !sl || strpbrk(g, "+#/") || memchr(g, '\0', sl)))
            luaL_error(L, "on_subscribe: field 'share' must be a group name");
        /* nothing raises from here: C takes the copies */
        c->filter = f ? xstrndup(f, fl) : NULL;
        c->share = g ? xstrndup(g, sl) : NULL;
    } else {
        luaL_error(L, "%s: returned a %s", kind == 'C' ? "on_connect" : "on_subscribe",
                   luaL_typename(L, 1));
    }
}

/* The protected body of every hook call: push the hook and its arguments, call, read results. */
static int call_fn(lua_State *L, void *ud)
{
    struct call *c = ud;
    struct rule *r = c->r;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->hook_ref[c->hook]);
    int nargs = 2;
    switch (c->hook) {
    case RH_CONNECT:
        values_push_conn(L, c->conn); /* stack: fn conn */
        lua_pushvalue(L, -1);
        lua_insert(L, 1); /* stack: conn fn conn -- keep conn to read attrs back */
        nargs = 1;
        break;
    case RH_SUBSCRIBE:
        values_push_sub(L, c->sub);
        values_push_client(L, c->client);
        break;
    case RH_PUBLISH:
    case RH_DELIVER: /* the hot path: the builder makes msg and client, and calls the hook */
        nargs = builder_push_call(L, r, c->hook, c->m, c->hook == RH_PUBLISH ? c->client : NULL,
                                  c->client);
        break;
    case RH_DISCONNECT:
        values_push_client(L, c->client);
        lua_pushstring(L, c->reason_in);
        break;
    }
    int base = lua_gettop(L) - nargs - 1;
    lua_call(L, nargs, 3);
    if (c->hook == RH_CONNECT) {
        lua_getfield(L, 1, "attrs");
        values_read_attrs(L, -1, c->attrs);
        lua_pop(L, 1);
        lua_remove(L, 1);
    }
    (void)base;
    switch (c->hook) {
    case RH_CONNECT: decide_results(L, c, 'C'); break;
    case RH_SUBSCRIBE: decide_results(L, c, 'S'); break;
    case RH_PUBLISH: publish_results(L, c); break;
    case RH_DELIVER: {
        int ty = lua_type(L, 1);
        if (ty == LUA_TNIL || (ty == LUA_TBOOLEAN && lua_toboolean(L, 1)))
            c->outcome = OUT_PASS;
        else if (ty == LUA_TBOOLEAN)
            c->outcome = OUT_DROP;
        else if (ty == LUA_TTABLE) {
            c->outcome = OUT_MSGS;
            add_out(c, values_to_msg(L, 1, c->m, "on_deliver", true, c->filter_in,
                                     c->filter_in_len, now_ms(r->eng)));
        } else
            luaL_error(L, "on_deliver: returned a %s", luaL_typename(L, 1));
        break;
    }
    default: c->outcome = OUT_PASS; break;
    }
    return 0;
}

/* The rule_cpu_share circuit breaker, shared by hook calls and timers: true (and the call
 * counted as an error) while it is open; otherwise opens the current one-second window. */
static bool breaker_open(struct rule *r, uint64_t t)
{
    if (r->breaker_until_ms > t) {
        r->st.calls++;
        r->st.errors++;
        engine_rule_error(r, "circuit breaker open: over rule_cpu_share");
        return true;
    }
    if (t - r->cpu_window_ms >= 1000) {
        r->cpu_window_ms = t;
        r->cpu_window_ns = 0;
    }
    return false;
}

/* Charges a call's ns to the window; trips the breaker past rule_cpu_share. */
static void breaker_charge(struct rule *r, uint64_t t, uint64_t ns)
{
    struct engine *e = r->eng;
    r->cpu_window_ns += ns;
    if (e->lim.cpu_share && r->cpu_window_ns > (uint64_t)e->lim.cpu_share * 10000000u) {
        r->breaker_until_ms = t + BREAKER_COOLDOWN_MS;
        r->cpu_window_ns = 0;
        if (e->host.log)
            e->host.log(e->host.ctx, LOG_WARN, r->name,
                        "circuit breaker: over rule_cpu_share, calls take on_error for 5 s");
    }
}

/* Runs one hook of r; returns the vm status (the breaker counts as an error). */
static int run(struct call *c, unsigned hop)
{
    struct rule *r = c->r;
    struct engine *e = r->eng;
    uint64_t t = now_ms(e);
    if (breaker_open(r, t))
        return VM_ERROR;
    r->hop = hop;
    uint64_t before = r->st.ns_total;
    e->depth++;
    int st = vm_call(r, VM_CTX_HOOK, 0, true, call_fn, c);
    e->depth--;
    breaker_charge(r, t, r->st.ns_total - before);
    if (st != VM_OK && e->host.log) {
        char line[400];
        snprintf(line, sizeof(line), "%s aborted: %s", c->hook == RH_PUBLISH ? "on_publish"
                 : c->hook == RH_DELIVER ? "on_deliver" : c->hook == RH_CONNECT ? "on_connect"
                 : c->hook == RH_SUBSCRIBE ? "on_subscribe" : "on_disconnect", r->st.last_error);
        e->host.log(e->host.ctx, LOG_WARN, r->name, line);
    }
    if (st == VM_OK && c->unknown_reason && !r->warned_reason) {
        r->warned_reason = true;
        if (e->host.log)
            e->host.log(e->host.ctx, LOG_WARN, r->name,
                        "unknown or unsuitable reason name: sent as unspecified_error");
    }
    return st;
}

static struct bundle *bundle(void *ctx)
{
    return ((struct engine *)ctx)->cur;
}

/* --- the match trie --- */
struct mask {
    uint64_t w[ENGINE_MASK_WORDS];
};

static void on_match(void *ctx, const struct subtree_sub *s)
{
    struct mask *mk = ctx;
    const struct rule *r = s->owner;
    mk->w[r->index / 64] |= UINT64_C(1) << (r->index % 64);
}

static void match(struct bundle *b, const char *t, size_t len, struct mask *mk)
{
    if (b && len && len == b->memo_len && memcmp(t, b->memo_topic, len) == 0) {
        memcpy(mk->w, b->memo_mask, sizeof(mk->w));
        return;
    }
    memset(mk, 0, sizeof(*mk));
    if (b && b->match)
        subtree_match(b->match, t, len, on_match, NULL, mk);
    if (b && len && len <= sizeof(b->memo_topic)) {
        memcpy(b->memo_topic, t, len);
        b->memo_len = len;
        memcpy(b->memo_mask, mk->w, sizeof(mk->w));
    }
}

static bool has(const struct mask *mk, unsigned i)
{
    return (mk->w[i / 64] >> (i % 64)) & 1;
}

static bool mask_any(const struct mask *mk)
{
    for (int i = 0; i < ENGINE_MASK_WORDS; i++)
        if (mk->w[i])
            return true;
    return false;
}

bool engine_wants(void *ctx, const char *t, size_t len)
{
    struct mask mk;
    match(bundle(ctx), t, len, &mk);
    return mask_any(&mk);
}

/* True if a rule with hook h (RH_PUBLISH or RH_DELIVER) matches t. */
static bool wants_hook(struct bundle *b, const char *t, size_t len, int h)
{
    if (!b)
        return false;
    if (!b->hook_masks) {
        for (size_t i = 0; i < b->count; i++) {
            const struct rule *r = b->rules[i];
            uint64_t bit = UINT64_C(1) << (r->index % 64);
            if (r->hook_ref[RH_PUBLISH] != LUA_NOREF)
                b->publish_rules[r->index / 64] |= bit;
            if (r->hook_ref[RH_DELIVER] != LUA_NOREF)
                b->deliver_rules[r->index / 64] |= bit;
        }
        b->hook_masks = true;
    }
    const uint64_t *rules = h == RH_PUBLISH ? b->publish_rules : b->deliver_rules;
    struct mask mk;
    match(b, t, len, &mk);
    for (int i = 0; i < ENGINE_MASK_WORDS; i++)
        if (mk.w[i] & rules[i])
            return true;
    return false;
}

bool engine_wants_publish(void *ctx, const char *t, size_t len)
{
    return wants_hook(bundle(ctx), t, len, RH_PUBLISH);
}

bool engine_wants_deliver(void *ctx, const char *t, size_t len)
{
    return wants_hook(bundle(ctx), t, len, RH_DELIVER);
}

static void finish(struct engine *e)
{
    if (e->depth == 0)
        dispatch_drain(e);
}

/* --- on_connect / on_subscribe / on_disconnect --- */
void engine_on_connect(void *ctx, const struct hooks_connect *in, struct hooks_answer *out,
                       void **attrs_out)
{
    struct engine *e = ctx;
    struct bundle *b = e->cur;
    struct attrs *attrs = NULL;
    struct hooks_connect conn = *in;
    memset(out, 0, sizeof(*out));
    out->verdict = HOOKS_PASS;
    for (size_t i = 0; b && i < b->count; i++) {
        struct rule *r = b->rules[i];
        if (r->hook_ref[RH_CONNECT] == LUA_NOREF)
            continue;
        struct call c = {.r = r, .hook = RH_CONNECT, .conn = &conn, .attrs = &attrs};
        conn.client.attrs = attrs;
        r->scrub = in->password;
        r->scrub_len = in->password_len;
        int st = run(&c, 0);
        r->scrub = NULL;
        r->scrub_len = 0;
        call_fini(&c);
        if (st != VM_OK) {
            if (r->on_error_pass)
                continue;
            r->st.refusals++;
            out->verdict = HOOKS_REFUSE;
            out->reason = 0x80;
            break;
        }
        if (c.outcome == OUT_PASS)
            continue;
        out->verdict = c.outcome == OUT_ACCEPT ? HOOKS_ACCEPT : HOOKS_REFUSE;
        if (c.outcome == OUT_REFUSE) {
            r->st.refusals++;
            out->reason = c.reason;
            snprintf(out->reason_string, sizeof(out->reason_string), "%s", c.text);
        }
        break;
    }
    *attrs_out = attrs;
    finish(e);
}

void engine_on_subscribe(void *ctx, const struct hooks_client *cl, const struct hooks_sub *in,
                         struct hooks_sub_answer *out)
{
    struct engine *e = ctx;
    struct bundle *b = e->cur;
    memset(out, 0, sizeof(*out));
    out->a.verdict = HOOKS_PASS;
    out->max_qos = -1;
    for (size_t i = 0; b && i < b->count; i++) {
        struct rule *r = b->rules[i];
        if (r->hook_ref[RH_SUBSCRIBE] == LUA_NOREF)
            continue;
        struct call c = {.r = r, .hook = RH_SUBSCRIBE, .client = cl, .sub = in, .max_qos = -1};
        int st = run(&c, 0);
        if (st != VM_OK) {
            call_fini(&c);
            if (r->on_error_pass)
                continue;
            r->st.refusals++;
            out->a.verdict = HOOKS_REFUSE;
            out->a.reason = 0x80;
            break;
        }
        if (c.outcome == OUT_PASS) {
            call_fini(&c);
            continue;
        }
        if (c.outcome == OUT_ACCEPT) {
            out->a.verdict = HOOKS_ACCEPT;
        } else if (c.outcome == OUT_REFUSE) {
            r->st.refusals++;
            out->a.verdict = HOOKS_REFUSE;
            out->a.reason = c.reason;
            snprintf(out->a.reason_string, sizeof(out->a.reason_string), "%s", c.text);
        } else {
            /* a number or a rewrite: decided here, the ACL file still checks the result */
            out->max_qos = c.max_qos;
            out->filter = c.filter;
            out->share = c.share;
            c.filter = c.share = NULL;
        }
        call_fini(&c);
        break;
    }
    finish(e);
}

void engine_on_disconnect(void *ctx, const struct hooks_client *cl, const char *reason)
{
    struct engine *e = ctx;
    struct bundle *b = e->cur;
    for (size_t i = 0; b && i < b->count; i++) {
        struct rule *r = b->rules[i];
        if (r->hook_ref[RH_DISCONNECT] == LUA_NOREF)
            continue;
        struct call c = {.r = r, .hook = RH_DISCONNECT, .client = cl, .reason_in = reason};
        run(&c, 0);
        call_fini(&c);
    }
    finish(e);
}

void engine_client_free(void *ctx, void *attrs)
{
    (void)ctx;
    values_free_attrs(attrs);
}

/* --- on_publish --- */
struct item {
    struct msg *m;
    struct mask mk;
};

#define ITEMS_INLINE 2

/* The messages between two rules of the pipeline. Almost always one: kept inline, no malloc. */
struct items {
    struct item *v; /* `in` or a malloc'd array */
    size_t n, cap;
    struct item in[ITEMS_INLINE];
};

static void items_init(struct items *it)
{
    it->v = it->in;
    it->n = 0;
    it->cap = ITEMS_INLINE;
}

/* Adds m with its match mask: mk when the caller has it (an unchanged message), else the trie's. */
static void items_add_mask(struct items *it, struct bundle *b, struct msg *m,
                           const struct mask *mk)
{
    if (it->n == it->cap) {
        it->cap *= 2;
        if (it->v == it->in) {
            it->v = xmalloc(it->cap * sizeof(*it->v));
            memcpy(it->v, it->in, sizeof(it->in));
        } else {
            it->v = xrealloc(it->v, it->cap * sizeof(*it->v));
        }
    }
    it->v[it->n].m = m;
    if (mk)
        it->v[it->n].mk = *mk;
    else
        match(b, m->topic, m->topic_len, &it->v[it->n].mk);
    it->n++;
}

static void items_add(struct items *it, struct bundle *b, struct msg *m)
{
    items_add_mask(it, b, m, NULL);
}

static void items_free(struct items *it)
{
    for (size_t i = 0; i < it->n; i++)
        msg_release(&it->v[i].m);
    if (it->v != it->in)
        free(it->v);
    items_init(it);
}

/* cur := next; next := empty (the arrays move, not the messages). */
static void items_move(struct items *cur, struct items *next)
{
    items_free(cur);
    if (next->v == next->in) {
        memcpy(cur->in, next->in, sizeof(next->in));
        cur->v = cur->in;
    } else {
        cur->v = next->v;
    }
    cur->n = next->n;
    cur->cap = next->cap;
    items_init(next);
}

/* Refuses m (rule_max_payload) if any rule's filter matches it: true if refused. */
static bool over_max_payload(struct engine *e, const struct msg *m, const struct mask *mk,
                             struct hooks_publish_answer *out)
{
    if (m->payload_len <= e->lim.max_payload || !mask_any(mk))
        return false;
    out->a.verdict = HOOKS_REFUSE;
    out->a.reason = 0x97; /* quota_exceeded: 0x95 is no PUBACK code (INTERFACES #4) */
    snprintf(out->a.reason_string, sizeof(out->a.reason_string),
             "payload exceeds rule_max_payload");
    return true;
}

/* The on_publish pipeline over every rule but `skip` (a rule index, or -1). The messages between
 * two rules stay in `cur`; a rule that changes none of them (the usual case: one message passed
 * on) moves nothing, and `next` is only built from the first change on. */
static void pipeline(struct engine *e, struct msg *m, const struct hooks_client *from, unsigned hop,
                     int skip, struct hooks_publish_answer *out)
{
    struct bundle *b = e->cur;
    struct items cur, next;
    bool aborted = false;

    items_init(&cur);
    items_init(&next);
    out->a.verdict = HOOKS_PASS;
    out->a.reason = 0;
    out->a.reason_string[0] = '\0';
    out->out = NULL;
    out->out_count = 0;
    items_add(&cur, b, msg_retain(m));
    if (over_max_payload(e, m, &cur.v[0].mk, out)) {
        items_free(&cur);
        return;
    }
    for (size_t i = 0; b && i < b->count && cur.n; i++) {
        struct rule *r = b->rules[i];
        if (r->hook_ref[RH_PUBLISH] == LUA_NOREF || (int)i == skip)
            continue;
        bool changed = false; /* next holds cur[0..k) and what replaced cur[k] */
        for (size_t k = 0; k < cur.n; k++) {
            struct item *x = &cur.v[k];
            if (!has(&x->mk, r->index)) { /* not this rule's: on as it is */
                if (changed) {
                    items_add_mask(&next, b, x->m, &x->mk);
                    x->m = NULL;
                }
                continue;
            }
            struct call c = {.r = r, .hook = RH_PUBLISH, .client = from, .m = x->m};
            int st = run(&c, hop);
            size_t before = changed ? next.n : k; /* messages ahead of this one's outputs */
            if (st == VM_OK && c.outcome == OUT_MSGS && before + c.nout > ENGINE_FANOUT_MAX) {
                st = VM_ERROR;
                r->st.errors++;
                engine_rule_error(r, "on_publish: the pipeline would carry more than %d messages",
                                  ENGINE_FANOUT_MAX);
            }
            if (st == VM_OK ? c.outcome == OUT_PASS
                            : r->on_error_pass) { /* passed on unchanged: the same rules match */
                if (changed) {
                    items_add_mask(&next, b, x->m, &x->mk);
                    x->m = NULL;
                }
                call_fini(&c);
                continue;
            }
            if (!changed) { /* the first change: what came before moves to next as it is */
                for (size_t j = 0; j < k; j++) {
                    items_add_mask(&next, b, cur.v[j].m, &cur.v[j].mk);
                    cur.v[j].m = NULL;
                }
                changed = true;
            }
            if (st != VM_OK) {
                aborted = true;
                r->st.drops++;
            } else if (c.outcome == OUT_DROP) {
                r->st.drops++;
            } else if (c.outcome == OUT_REFUSE) {
                r->st.refusals++;
                out->a.verdict = HOOKS_REFUSE;
                out->a.reason = c.reason;
                snprintf(out->a.reason_string, sizeof(out->a.reason_string), "%s", c.text);
                call_fini(&c);
                items_free(&cur);
                items_free(&next);
                return;
            } else if (c.outcome == OUT_MSGS) {
                for (size_t j = 0; j < c.nout; j++) {
                    items_add(&next, b, c.out[j]);
                    c.out[j] = NULL;
                }
                c.nout = 0;
            }
            call_fini(&c);
        }
        if (changed)
            items_move(&cur, &next);
    }
    if (cur.n == 0) {
        out->a.verdict = aborted ? HOOKS_REFUSE : HOOKS_DROP;
        out->a.reason = aborted ? 0x80 : 0;
    } else {
        out->out = cur.n == 1 ? &out->one : xmalloc(cur.n * sizeof(*out->out));
        for (size_t k = 0; k < cur.n; k++) {
            out->out[k] = cur.v[k].m;
            cur.v[k].m = NULL;
        }
        out->out_count = cur.n;
    }
    items_free(&cur);
}

void engine_on_publish(void *ctx, struct msg *m, const struct hooks_client *from, unsigned hop,
                       struct hooks_publish_answer *out)
{
    struct engine *e = ctx;
    pipeline(e, m, from, hop, -1, out);
    finish(e);
}

/* --- on_deliver --- */
struct msg *engine_on_deliver_filter(void *ctx, struct msg *m, const struct hooks_client *to,
                                     const char *filter, size_t filter_len)
{
    struct engine *e = ctx;
    struct bundle *b = e->cur;
    struct msg *cur = msg_retain(m);
    struct mask mk;
    bool matched = false; /* mk is cur's: matched again only when a rule changed the message */
    for (size_t i = 0; b && i < b->count && cur; i++) {
        struct rule *r = b->rules[i];
        if (r->hook_ref[RH_DELIVER] == LUA_NOREF)
            continue;
        if (!matched)
            match(b, cur->topic, cur->topic_len, &mk);
        matched = true;
        if (!has(&mk, r->index))
            continue;
        struct call c = {.r = r, .hook = RH_DELIVER, .client = to, .m = cur,
                         .filter_in = filter, .filter_in_len = filter_len};
        int st = run(&c, 0);
        if (st != VM_OK) {
            if (!r->on_error_pass) {
                r->st.drops++;
                msg_release(&cur);
            }
        } else if (c.outcome == OUT_DROP) {
            r->st.drops++;
            msg_release(&cur);
        } else if (c.outcome == OUT_MSGS) {
            msg_release(&cur);
            cur = c.out[0];
            c.out[0] = NULL;
            c.nout = 0;
            matched = false;
        }
        call_fini(&c);
    }
    finish(e);
    return cur;
}

struct msg *engine_on_deliver(void *ctx, struct msg *m, const struct hooks_client *to)
{
    return engine_on_deliver_filter(ctx, m, to, NULL, 0);
}

/* --- tide.publish queue and timers --- */
int dispatch_enqueue(struct rule *r, struct msg *m, unsigned hop)
{
    struct engine *e = r->eng;
    if (e->npending >= ENGINE_PENDING_MAX) {
        msg_release(&m);
        return TIDE_EQUOTA;
    }
    if (e->npending == e->cap_pending) {
        e->cap_pending = e->cap_pending ? e->cap_pending * 2 : 16;
        e->pending = xrealloc(e->pending, e->cap_pending * sizeof(*e->pending));
    }
    e->pending[e->npending++] = (struct pending_pub){m, hop, r->index, xstrdup(r->name)};
    return 0;
}

void dispatch_discard(struct engine *e)
{
    for (size_t i = 0; i < e->npending; i++) {
        msg_release(&e->pending[i].m);
        free(e->pending[i].rule_name);
    }
    e->npending = 0;
}

void dispatch_drain(struct engine *e)
{
    e->depth++;
    for (size_t i = 0; i < e->npending; i++) {
        struct pending_pub p = e->pending[i]; /* the array may move while this one runs */
        struct hooks_publish_answer a;
        pipeline(e, p.m, NULL, p.hop, (int)p.sender, &a);
        for (size_t k = 0; k < a.out_count; k++) {
            if (e->host.route)
                e->host.route(e->host.ctx, a.out[k], p.rule_name);
            msg_release(&a.out[k]);
        }
        hooks_publish_answer_fini(&a);
        msg_release(&p.m);
        free(p.rule_name);
    }
    e->npending = 0;
    e->depth--;
}

static int timer_fn(lua_State *L, void *ud)
{
    struct rule_timer *t = ud;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref); /* a one-shot's ref is freed by on_timer */
    lua_call(L, 0, 0);
    return 0;
}

void dispatch_timer(struct rule_timer *t)
{
    struct rule *r = t->r;
    struct engine *e = r->eng;
    uint64_t now = now_ms(e);
    if (breaker_open(r, now))
        return; /* a timer counts towards rule_cpu_share like a hook */
    r->hop = 0;
    uint64_t before = r->st.ns_total;
    e->depth++;
    int st = vm_call(r, VM_CTX_TIMER, 0, true, timer_fn, t);
    e->depth--;
    breaker_charge(r, now, r->st.ns_total - before);
    if (st != VM_OK && e->host.log) {
        char line[320];
        snprintf(line, sizeof(line), "timer aborted: %s", r->st.last_error);
        e->host.log(e->host.ctx, LOG_WARN, r->name, line);
    }
    finish(e);
}

void engine_hooks(struct engine *e, struct hooks *out)
{
    memset(out, 0, sizeof(*out));
    out->ctx = e;
    out->wants = engine_wants;
    out->wants_publish = engine_wants_publish;
    out->wants_deliver = engine_wants_deliver;
    out->on_connect = engine_on_connect;
    out->on_subscribe = engine_on_subscribe;
    out->on_publish = engine_on_publish;
    out->on_deliver = engine_on_deliver_filter;
    out->on_disconnect = engine_on_disconnect;
    out->client_free = engine_client_free;
}
