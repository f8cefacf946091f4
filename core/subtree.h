/* The subscription tree: every subscription of every session, organised by topic level, with
 * per-level hashed children and separate '+' and '#' edges, so matching a name visits only the
 * nodes that can match (no scan of all subscriptions). Shared subscriptions ($share/G/F) hang off
 * the node of F as groups. Pure data structure: no I/O, no logging; `owner` is opaque (the broker
 * passes its struct session *). Owns copies of the filter strings it needs. */
#ifndef TIDE_SUBTREE_H
#define TIDE_SUBTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct subtree;

/* One subscription as the tree stores it. Valid until the next add/remove on the tree. */
struct subtree_sub {
    void *owner;
    uint8_t options;  /* MQTT 5 subscription options byte (QoS, no local, RAP, retain handling) */
    uint32_t sub_id;  /* subscription identifier, 0 for none */
};

/* A shared-subscription group at one filter. The broker picks one member per message; `cursor`
 * is free for its round robin (the tree never changes it except to keep it < count). The group
 * and its members array are valid until the next add/remove on the tree (an emptied group is
 * freed). */
struct subtree_group {
    const char *name;  /* NUL-terminated group name */
    const char *filter; /* NUL-terminated filter (without the $share/G/ prefix) */
    struct subtree_sub *members;
    size_t count;
    size_t cursor;
};

typedef void (*subtree_sub_fn)(void *ctx, const struct subtree_sub *sub);
typedef void (*subtree_group_fn)(void *ctx, struct subtree_group *group);

struct subtree *subtree_new(void);
/* Frees the tree and everything it owns (owners are not touched). */
void subtree_free(struct subtree *t);

/* Adds owner's subscription to filter f (already validated; for a shared subscription `group` is the
 * group name and f the filter after it, else group is NULL). If owner already has a subscription to
 * the same (group, filter) it is replaced and *replaced (if not NULL) set to true. Returns 0. */
int subtree_add(struct subtree *t, const char *group, size_t group_len, const char *f, size_t flen,
                void *owner, uint8_t options, uint32_t sub_id, bool *replaced);

/* Removes owner's subscription to (group, filter); TIDE_ENOTFOUND if there is none. Empty nodes are
 * pruned. O(1) in the number of other subscribers of that node (plus the filter's depth). */
int subtree_remove(struct subtree *t, const char *group, size_t group_len, const char *f,
                   size_t flen, void *owner);

/* Calls sub_fn for every non-shared subscription whose filter matches name t, and group_fn once for
 * every shared group whose filter matches. Order is unspecified. An owner with several matching
 * filters is visited once per filter. The callbacks must not modify the tree. */
void subtree_match(const struct subtree *t, const char *name, size_t len, subtree_sub_fn sub_fn,
                   subtree_group_fn group_fn, void *ctx);

/* Number of subscriptions (shared members included). */
size_t subtree_count(const struct subtree *t);

#endif
