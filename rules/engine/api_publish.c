/* tide.publish (queued, then run through the other rules' on_publish and routed through the
 * host), tide.every / tide.after / tide.cancel (host timers owned by the rule's VM), and
 * tide.sink(name):send. Runtime failures return nil, "reason"; misuse raises. */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"
#include "log.h"
#include "msg.h"
#include "topic.h"
#include "util/alloc.h"
#include "util/err.h"

#define SINK_MT "tide.sink"

/* tide.publish(topic, payload[, {qos=, retain=, properties=}]) -> true | nil, err */
static int l_publish(lua_State *L)
{
    struct rule *r = vm_rule(L);
    api_check(L, VM_CTX_RUN, "tide.publish");
    size_t tlen, plen;
    const char *topic = luaL_checklstring(L, 1, &tlen);
    const char *payload = luaL_checklstring(L, 2, &plen);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    if (topic_validate_name(topic, tlen) != 0 || !codec_utf8_valid((const uint8_t *)topic, tlen)) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalid_topic");
        return 2;
    }
    if (r->hop >= ENGINE_HOP_LIMIT) {
        if (!r->warned_hop) {
            r->warned_hop = true;
            static const char note[] = "tide.publish: hop limit reached, dropped";
            api_log_line(r, LOG_WARN, note, sizeof(note) - 1);
        }
        r->st.drops++;
        lua_pushnil(L);
        lua_pushliteral(L, "hop_limit");
        return 2;
    }
    if (r->published >= ENGINE_PUBLISH_MAX) {
        if (!r->warned_publish) {
            r->warned_publish = true;
            static const char note[] = "tide.publish: over 100 in one call, dropped";
            api_log_line(r, LOG_WARN, note, sizeof(note) - 1);
        }
        r->st.drops++;
        lua_pushnil(L);
        lua_pushliteral(L, "publish_limit");
        return 2;
    }
    if (lua_isnoneornil(L, 3)) {
        lua_settop(L, 2);
        lua_newtable(L);
    }
    lua_pushnil(L);
    while (lua_next(L, 3)) { /* qos, retain, properties only */
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        if (strcmp(k, "qos") && strcmp(k, "retain") && strcmp(k, "properties"))
            return luaL_error(L, "tide.publish: option '%s' is not allowed", k);
        lua_pop(L, 1);
    }
    /* the options are a partial message over this bare base, which owns nothing */
    struct msg base = {.refs = 1, .topic = topic, .topic_len = tlen,
                       .payload = (const uint8_t *)payload, .payload_len = plen, .origin = ""};
    struct engine *e = r->eng;
    uint64_t now = e->host.monotonic_ms ? e->host.monotonic_ms(e->host.ctx) : 0;
    struct msg *m = values_to_msg(L, 3, &base, "tide.publish", false, NULL, 0, now);
    r->published++;
    if (dispatch_enqueue(r, m, r->hop + 1) != 0) { /* the event's queue is full: m released */
        if (!r->warned_publish) {
            r->warned_publish = true;
            static const char note[] = "tide.publish: over 1000 queued in one event, dropped";
            api_log_line(r, LOG_WARN, note, sizeof(note) - 1);
        }
        r->st.drops++;
        lua_pushnil(L);
        lua_pushliteral(L, "publish_limit");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* --- timers --- */

/* A timer and the id tide.every/after returned. Ids count up per VM and are never reused: a
 * registry reference would be reused by the next timer as soon as it was freed, so an id kept
 * after its one-shot fired (a per-client timer table, say) would cancel someone else's timer.
 * Every rule_timer is allocated and freed here, so the list's pointers are slots. */
struct timer_slot {
    struct rule_timer t; /* first */
    double id;
};

static char timer_seq_key; /* registry key (its address): the VM's last timer id */

static void on_timer(void *arg)
{
    struct rule_timer *t = arg;
    struct rule *r = t->r;
    bool repeat = t->repeat;
    /* A firing one-shot is freed here, after its callback: marked fired, tide.cancel (from the
     * callback, or a hook the callback's tide.publish reaches) leaves it alone. A repeating timer
     * may be cancelled (freed) by its callback: t is not touched after dispatch_timer. */
    t->fired = !repeat;
    dispatch_timer(t);
    if (!repeat) {
        for (struct rule_timer **pp = &r->timers; *pp; pp = &(*pp)->next) {
            if (*pp == t) {
                *pp = t->next;
                break;
            }
        }
        if (r->eng->host.timer_cancel)
            r->eng->host.timer_cancel(r->eng->host.ctx, t->handle);
        /* outside a call the VM is uncapped: as in vm_open, only a failing malloc could raise */
        luaL_unref(r->L, LUA_REGISTRYINDEX, t->fn_ref);
        free(t);
    }
}

static int add_timer(lua_State *L, bool repeat, const char *fname)
{
    struct rule *r = vm_rule(L);
    api_check(L, VM_CTX_RUN, fname);
    double s = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!(s * 1000 >= ENGINE_TIMER_MIN_MS) || s > 86400.0 * 365)
        return luaL_argerror(L, 1, "at least 0.01 seconds");
    size_t live = 0;
    for (const struct rule_timer *t = r->timers; t; t = t->next)
        live++;
    if (live >= ENGINE_TIMERS_MAX) /* a timer made per message is a leak: stop it loudly */
        return luaL_error(L, "%s: a rule may hold at most %d timers", fname, ENGINE_TIMERS_MAX);
    struct engine *e = r->eng;
    if (!e->host.timer_add) {
        lua_pushnil(L);
        lua_pushliteral(L, "no_timers");
        return 2;
    }
    lua_pushlightuserdata(L, &timer_seq_key); /* may raise: before C owns anything */
    lua_pushlightuserdata(L, &timer_seq_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    double id = lua_tonumber(L, -1) + 1;
    lua_pop(L, 1);
    lua_pushnumber(L, id);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 2);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    struct timer_slot *slot = xcalloc(1, sizeof(*slot));
    slot->id = id;
    struct rule_timer *t = &slot->t;
    t->r = r;
    t->fn_ref = ref;
    t->repeat = repeat;
    t->handle = e->host.timer_add(e->host.ctx, (uint64_t)(s * 1000), repeat, on_timer, t);
    if (!t->handle) {
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        free(slot);
        lua_pushnil(L);
        lua_pushliteral(L, "no_timers");
        return 2;
    }
    t->next = r->timers;
    r->timers = t;
    lua_pushnumber(L, id);
    return 1;
}

/* tide.every(seconds, fn) -> id */
static int l_every(lua_State *L)
{
    return add_timer(L, true, "tide.every");
}

/* tide.after(seconds, fn) -> id */
static int l_after(lua_State *L)
{
    return add_timer(L, false, "tide.after");
}

/* tide.cancel(id) -> true | false */
static int l_cancel(lua_State *L)
{
    struct rule *r = vm_rule(L);
    double id = luaL_checknumber(L, 1);
    for (struct rule_timer **pp = &r->timers; *pp; pp = &(*pp)->next) {
        struct rule_timer *t = *pp;
        if (((struct timer_slot *)t)->id == id && !t->fired) {
            *pp = t->next;
            if (r->eng->host.timer_cancel)
                r->eng->host.timer_cancel(r->eng->host.ctx, t->handle);
            luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
            free(t);
            lua_pushboolean(L, 1);
            return 1;
        }
    }
    lua_pushboolean(L, 0);
    return 1;
}

void api_timers_stop(struct rule *r)
{
    while (r->timers) {
        struct rule_timer *t = r->timers;
        r->timers = t->next;
        if (r->eng && r->eng->host.timer_cancel)
            r->eng->host.timer_cancel(r->eng->host.ctx, t->handle);
        free(t);
    }
}

/* --- sinks --- */
/* sink:send(data[, opts]) -> true | nil, "no_such_sink" | nil, "queue_full" */
static int l_sink_send(lua_State *L)
{
    struct rule *r = vm_rule(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "name");
    const char *name = luaL_checkstring(L, -1);
    int t = lua_type(L, 2);
    if (t == LUA_TTABLE) {
        api_json_encode_value(L, 2); /* stack: ... json|nil err */
        if (lua_isnil(L, -2))
            return 2;
        lua_pop(L, 1);
        lua_replace(L, 2);
    } else if (t != LUA_TSTRING) {
        return luaL_argerror(L, 2, "a string or a table");
    }
    const char *opts = NULL;
    if (lua_type(L, 3) == LUA_TTABLE) {
        api_json_encode_value(L, 3);
        if (lua_isnil(L, -2))
            return 2;
        lua_pop(L, 1);
        opts = lua_tostring(L, -1);
    }
    size_t len;
    const char *data = lua_tolstring(L, 2, &len);
    struct engine *e = r->eng;
    int rc = e->host.sink_send ? e->host.sink_send(e->host.ctx, name, data, len, opts)
                               : TIDE_ENOTFOUND;
    if (rc == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, rc == TIDE_EQUOTA ? "queue_full" : "no_such_sink");
    return 2;
}

/* tide.sink(name) -> a sink object with :send */
static int l_sink(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "name");
    if (luaL_newmetatable(L, SINK_MT)) {
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, l_sink_send);
        lua_setfield(L, -2, "send");
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
    return 1;
}

static const luaL_Reg api_publish[] = {
    {"publish", l_publish},
    {"every", l_every},
    {"after", l_after},
    {"cancel", l_cancel},
    {"sink", l_sink},
    {NULL, NULL},
};

void api_publish_open(lua_State *L)
{
    luaL_setfuncs(L, api_publish, 0); /* straight on the tide table */
}
