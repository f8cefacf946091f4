/* An immutable, reference-counted application message: topic, payload and the v5 properties that
 * are forwarded unchanged (pre-encoded once), in one allocation. Created with one reference owned by
 * its creator; only the loop thread touches refcounts. Pure: no I/O. */
#ifndef TIDE_MSG_H
#define TIDE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msg {
    uint32_t refs;
    uint8_t qos;
    bool retain;
    bool has_expiry;
    uint32_t expiry_interval;  /* seconds, as received (valid when has_expiry) */
    uint64_t expires_at_ms;    /* monotonic ms when it expires (valid when has_expiry) */
    const char *topic;         /* NUL-terminated, topic_len bytes */
    size_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
    const uint8_t *props;      /* encoded forwardable properties (codec_encode_forward_props) */
    size_t props_len;
    const char *origin;        /* publishing client id (NUL-terminated), "" for the broker's own */
    uint64_t *account;         /* bytes-in-use counter this message is charged to, or NULL */
    size_t size;               /* bytes charged */
    /* storage follows */
};

struct msg_init {
    const char *topic;
    size_t topic_len;
    const void *payload;
    size_t payload_len;
    const void *props;
    size_t props_len;
    const char *origin; /* may be NULL */
    uint8_t qos;
    bool retain;
    bool has_expiry;
    uint32_t expiry_interval;
    uint64_t now_ms; /* monotonic ms at creation, to compute expires_at_ms */
    uint64_t *account; /* if not NULL: the message's size is added now, subtracted when freed */
};

/* Returns a new message with one reference; copies every byte it is given. */
struct msg *msg_new(const struct msg_init *init);
/* Returns a new message (one reference) with m's content whose expiry interval, if any, starts
 * at now_ms: a will's lifetime counts from its publication (MQTT 5 §3.1.3.2.4). */
struct msg *msg_restart_expiry(const struct msg *m, uint64_t now_ms);
/* Returns m with one more reference. */
struct msg *msg_retain(struct msg *m);
/* Drops one reference (freeing at zero) and sets *mp to NULL. Underflow panics. */
void msg_release(struct msg **mp);

/* True if m has an expiry that has passed at now_ms. */
bool msg_expired(const struct msg *m, uint64_t now_ms);
/* Seconds left before expiry at now_ms (at least 0); only meaningful when m->has_expiry. */
uint32_t msg_remaining_expiry(const struct msg *m, uint64_t now_ms);

#endif
