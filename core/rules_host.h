/* The broker's side of the rule engine (rules/engine/host.h): a message a rule publishes is routed
 * as the broker's own (on the next turn of the loop, never inside the event that made it), rule
 * log lines go to the broker log, timers are libevent timers, and there are no sinks yet. Also the
 * engine's lifecycle: created with the config's rule_* limits, the rules directory loaded before
 * any listener opens, reloaded on a change in the directory (rules_watch) or SIGHUP, and the
 * per-rule counters in $SYS (INTERFACES.md #2). Part of the executable, not of tidemq_core: it is
 * the one place where the broker meets the engine's headers. Loop thread only. */
#ifndef TIDE_CORE_RULES_HOST_H
#define TIDE_CORE_RULES_HOST_H

struct broker;
struct config;
struct event_base;
struct rules_host;

/* Creates the engine and loads the rules directory (cfg's rules_dir, or "rules"; a default one
 * that does not exist means no rules). Returns NULL after logging each `file:line: message` when
 * the bundle does not load: the broker must not start. */
struct rules_host *rules_host_new(const struct config *cfg, struct event_base *base);
/* Connects the rules to b once it exists: installs b->hooks, routes what init published, starts
 * watching the directory and publishing the $SYS figures. */
void rules_host_attach(struct rules_host *h, struct broker *b);
/* Reloads the directory (why: for the log). A bundle that fails keeps the running one. */
void rules_host_reload(struct rules_host *h, const char *why);
/* After broker_free (sessions free their attrs through the engine until then). */
void rules_host_free(struct rules_host *h);

#endif
