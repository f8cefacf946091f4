/* The retained-message store: at most one message per topic name, found by topic filter through a
 * tree of topic levels (a subscribe with a wildcard visits only matching branches). Holds one
 * reference to each stored message. Pure: no I/O, no logging, no clock. */
#ifndef TIDE_RETAIN_H
#define TIDE_RETAIN_H

#include <stddef.h>
#include <stdint.h>

struct msg;
struct retain_store;

struct retain_store *retain_new(void);
/* Frees the store and releases every message it holds. */
void retain_free(struct retain_store *s);

/* Stores m (taking a new reference with msg_retain) as the retained message of its topic, replacing
 * (and releasing) any previous one. A message with an empty payload clears the topic instead
 * [MQTT-3.3.1-6] and is not stored. */
void retain_set(struct retain_store *s, struct msg *m);

/* Removes the message of topic t, if any. */
void retain_clear(struct retain_store *s, const char *t, size_t len);

typedef void (*retain_fn)(void *ctx, struct msg *m);
/* Calls fn for each stored message whose topic matches filter f (same rules as topic_matches:
 * no '$' topic under a leading wildcard). fn borrows m; it must not change the store. Allocates
 * nothing; recursion depth is at most the depth of the stored topics. */
void retain_match(const struct retain_store *s, const char *f, size_t flen, retain_fn fn, void *ctx);

size_t retain_count(const struct retain_store *s);
/* Sum of payload bytes of the stored messages. */
uint64_t retain_bytes(const struct retain_store *s);

#endif
