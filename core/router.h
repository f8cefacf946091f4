/* Routing: a published message to every matching subscription (one copy per session at the
 * highest granted QoS with all matching subscription identifiers [MQTT-3.3.5-1]), a pick of one
 * member per shared group, the retained store, and retained messages on subscribe. */
#ifndef TIDE_ROUTER_H
#define TIDE_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct held_ack;
struct msg;
struct session;

/* Routes m (borrowed; every keeper takes its own reference). If ha is not NULL (the ack owed to a
 * QoS 1/2 publisher), each congested subscriber adds a blocker to it. Updates the retained store
 * when m->retain. */
void router_publish(struct broker *b, struct msg *m, struct held_ack *ha);
/* The same, for a caller that just found that no rule wants m's topic (skips that lookup). */
void router_publish_no_rules(struct broker *b, struct msg *m, struct held_ack *ha);

/* Sends the retained messages matching filter to s after a subscription (granted `options`). */
void router_send_retained(struct broker *b, struct session *s, const char *filter, size_t len,
                          uint8_t options, uint32_t sub_id);

/* Re-routes m, which was going to `from` through the shared subscription `share`
 * ("$share/GROUP/FILTER"), to another member of that group, if any (MQTT 5 §4.8.2). */
void router_reroute_shared(struct broker *b, struct msg *m, const char *share, size_t share_len,
                           struct session *from);

struct hooks_publish_answer;
/* Runs m (borrowed), published by s's client, through the rules' on_publish (call it only when
 * b->hooks wants m's topic) and keeps in out->out the messages s may write on their final topic
 * (its listener's ACL file; refusals counted). out->a.verdict: HOOKS_PASS with out->out[0..
 * out_count) to route (the caller releases each and frees the array), HOOKS_DROP, or HOOKS_REFUSE
 * with a reason (0x87 when the ACL file refused every message that came out). */
void router_rules_publish(struct broker *b, struct msg *m, struct session *s,
                          struct hooks_publish_answer *out);
/* Publishes m (borrowed) on behalf of s's client (a will) through the rules, then routes what
 * they let out. */
void router_publish_as(struct broker *b, struct msg *m, struct session *s);

/* Stores (or clears) the retained message of m's topic under the retained-store limits.
 * Returns 0 or TIDE_EQUOTA. */
int router_retain(struct broker *b, struct msg *m);

#endif
