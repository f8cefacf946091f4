/* The rule engine's public face: load a rules directory as one bundle of sandboxed LuaJIT VMs and
 * run its hooks. The broker (through engine_hooks) and `tidemq rules` are its only callers; it
 * reaches the outside only through the struct host it is given. Loop thread only. */
#ifndef TIDE_RULES_ENGINE_H
#define TIDE_RULES_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct engine;
struct host;
struct hooks;
struct hooks_client;
struct hooks_connect;
struct hooks_answer;
struct hooks_sub;
struct hooks_sub_answer;
struct hooks_publish_answer;
struct msg;

/* The global defaults of RULES-API "The sandbox" (config.h's rule_* directives). */
struct engine_limits {
    uint32_t timeout_ms;   /* per hook call, CPU time; default 5 */
    uint64_t memory_limit; /* per rule VM, bytes; default 32 MiB */
    uint32_t cpu_share;    /* percent of a second before the circuit breaker trips; default 20 */
    uint64_t max_payload;  /* larger messages skip the rules and are refused; default 1 MiB */
    uint64_t store_limit;  /* tide.store bytes; default 64 MiB */
};

/* The real wall clock in the shape of host.now (seconds since the epoch, fractional): what every
 * host but a test's fake clock installs. */
double engine_wall_clock(void *ctx);

/* Fills l with the documented defaults. */
void engine_limits_default(struct engine_limits *l);

/* Receives one load error, "file:line: message" or "file: field 'x': message". */
typedef void (*engine_error_fn)(void *arg, const char *text);

/* Returns a new engine with no rules. Borrows host (and host->ctx) for the engine's lifetime. */
struct engine *engine_new(const struct engine_limits *lim, const struct host *host);
/* Calls on_unload of nothing (shutdown), stops every timer, closes every VM and frees the store. */
void engine_free(struct engine *e);

/* Loads every rule file of dir as one bundle (RULES-API "Loading" and "Reload"). Files whose
 * bytes the running bundle already holds keep their rule untouched (VM, state, timers, counters);
 * the others compile in fresh VMs. With run_init, each new rule's init(state) runs under its
 * budget, state being what the version it replaces returned from on_unload (nil otherwise). If
 * every file loads (and every init succeeds) the bundle replaces the current one, deleted rules'
 * on_unload runs, and 0 is returned; a directory whose contents did not change returns 0 and does
 * nothing. Otherwise the current bundle stays exactly as it was, err(arg, text) is called once
 * per failure and TIDE_EINVAL (or TIDE_EIO for an unreadable or unsafe directory) is returned.
 * err may be NULL. */
int engine_load(struct engine *e, const char *dir, bool run_init, engine_error_fn err, void *arg);

/* The current bundle's hash: hex SHA-256 of its files' names and contents ("" with no rules). */
const char *engine_bundle_hash(const struct engine *e);

/* Number of rules in the current bundle. */
size_t engine_rule_count(const struct engine *e);

/* Per-rule counters (RULES-API "Observability"). */
struct engine_rule_stats {
    const char *name;       /* valid until the next engine_load */
    uint64_t calls, errors, timeouts, drops, refusals;
    double mean_us, max_us;
    const char *last_error; /* "" for none; valid until the next call into the engine */
};

/* Fills *out for rule i (0 <= i < engine_rule_count) and returns 0, or TIDE_ENOTFOUND. */
int engine_rule_stats(const struct engine *e, size_t i, struct engine_rule_stats *out);

/* Fills the hooks vtable the broker calls (core/hooks.h); ctx is e. */
void engine_hooks(struct engine *e, struct hooks *out);

/* The hook entry points engine_hooks installs, callable directly (cmd_rules.c, tests). Contracts
 * as in core/hooks.h. engine_on_deliver additionally takes the filter the subscriber used (NULL
 * if unknown: then a rule may not change the topic). */
bool engine_wants(void *ctx, const char *t, size_t len);
bool engine_wants_publish(void *ctx, const char *t, size_t len);
bool engine_wants_deliver(void *ctx, const char *t, size_t len);
void engine_on_connect(void *ctx, const struct hooks_connect *in, struct hooks_answer *out,
                       void **attrs_out);
void engine_on_subscribe(void *ctx, const struct hooks_client *c, const struct hooks_sub *in,
                         struct hooks_sub_answer *out);
/* out->out is a malloc'd array the caller frees with free() after releasing each message. */
void engine_on_publish(void *ctx, struct msg *m, const struct hooks_client *from, unsigned hop,
                       struct hooks_publish_answer *out);
struct msg *engine_on_deliver_filter(void *ctx, struct msg *m, const struct hooks_client *to,
                                     const char *filter, size_t filter_len);
struct msg *engine_on_deliver(void *ctx, struct msg *m, const struct hooks_client *to);
void engine_on_disconnect(void *ctx, const struct hooks_client *c, const char *reason);
void engine_client_free(void *ctx, void *attrs);

#endif
