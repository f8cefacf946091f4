/* The rule engine's only door to the outside world: routing a message a rule published, logging,
 * timers, clocks and sinks. The broker implements it (cmd_serve.c); `tidemq rules test` implements
 * it offline (cmd_rules.c). Every function runs on the loop thread and must not block. The engine
 * never frees what the host owns, nor the host what the engine owns. */
#ifndef TIDE_RULES_HOST_H
#define TIDE_RULES_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg;

/* Called by the host when a timer fires; arg is what timer_add was given. */
typedef void (*host_timer_fn)(void *arg);

struct host {
    void *ctx;
    /* Routes m, a message that left the rule pipeline on behalf of the broker itself (from
     * tide.publish, after the other rules' on_publish). m is borrowed: take a reference to keep
     * it. `rule` names the rule that published it. */
    void (*route)(void *ctx, struct msg *m, const char *rule);
    /* One log line from a rule (already formatted, scrubbed and rate-limited). level is a
     * log.h enum log_level value. */
    void (*log)(void *ctx, int level, const char *rule, const char *text);
    /* Arms a timer that calls fn(arg) after ms milliseconds (and then every ms if repeat).
     * Returns an opaque handle, or NULL if no timer can be created. */
    void *(*timer_add)(void *ctx, uint64_t ms, bool repeat, host_timer_fn fn, void *arg);
    /* Stops and frees a timer from timer_add; fn is not called afterwards. Safe from inside fn. */
    void (*timer_cancel)(void *ctx, void *handle);
    /* Wall clock, seconds since the epoch (fractional). */
    double (*now)(void *ctx);
    /* Monotonic milliseconds (the same clock as msg.h's now_ms). */
    uint64_t (*monotonic_ms)(void *ctx);
    /* Enqueues data[0..len) for sink `name`; borrowed, copy it. Returns 0, TIDE_ENOTFOUND (no such
     * sink) or TIDE_EQUOTA (queue full). opts_json is the options as JSON text or NULL. */
    int (*sink_send)(void *ctx, const char *name, const void *data, size_t len,
                     const char *opts_json);
};

#endif
