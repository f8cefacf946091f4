/* The interface the rule engine implements and the broker calls: connect, subscribe, publish,
 * deliver and disconnect events (see shared RULES-API.md). core/ knows nothing of Lua; it calls
 * out only through a struct hooks, whose functions run on the loop thread and never block.
 * Every pointer handed to a hook is borrowed for the duration of the call unless stated. */
#ifndef TIDE_HOOKS_H
#define TIDE_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

struct msg;

/* A connected client as the hooks see it. */
struct hooks_client {
    const char *client_id;
    const char *username; /* NULL: none */
    uint8_t protocol;     /* 3 (3.1), 4 (3.1.1), 5 */
    const char *address;
    uint16_t port;        /* the client's source port */
    uint16_t listener;    /* the listener's port */
    void *attrs;          /* the engine's per-client state from on_connect, or NULL */
};

struct hooks_tls {
    const char *subject, *issuer;
    bool verified;
};

struct hooks_connect {
    struct hooks_client client;
    const uint8_t *password; /* NULL: none; scrubbed from rule errors and logs by the engine */
    size_t password_len;
    bool clean_start;
    uint16_t keepalive;
    const struct hooks_tls *tls; /* NULL for plain TCP */
    /* MQTT 5 CONNECT properties, pre-decoded: the engine reads them through codec_props */
    const struct codec_props *props;
};

enum hooks_verdict {
    HOOKS_PASS,   /* no opinion: the next rule, then the broker's files, decide */
    HOOKS_ACCEPT, /* accepted (connect/subscribe: the ACL/password files are not consulted) */
    HOOKS_REFUSE, /* refused with `reason` (MQTT 5 reason code) */
    HOOKS_DROP,   /* publish/deliver: silently dropped (the publisher's handshake completes) */
};

struct hooks_answer {
    enum hooks_verdict verdict;
    uint8_t reason;            /* MQTT 5 reason code when refused */
    char reason_string[128];   /* optional human text ("" for none) */
};

struct hooks_sub {
    const char *filter;  /* without a $share/GROUP/ prefix */
    size_t filter_len;
    const char *share;   /* group name or NULL */
    size_t share_len;
    uint8_t options;     /* MQTT 5 subscription options byte */
};

/* What on_subscribe may change: the filter and group (rewrite) and the granted QoS. A number or
 * a rewrite comes back with verdict HOOKS_PASS and these fields set: the ACL file still checks
 * the result; HOOKS_ACCEPT grants it without the ACL file. */
struct hooks_sub_answer {
    struct hooks_answer a;
    int max_qos;         /* -1: unchanged, else grant at most this */
    char *filter;        /* rewritten filter (malloc'd; the broker frees), or NULL */
    char *share;         /* rewritten group (malloc'd), or NULL */
};

/* The outcome of on_publish: the messages to route instead of the original. A drop because a
 * rule was aborted (on_error "drop") comes back as HOOKS_REFUSE with reason 0x80. */
struct hooks_publish_answer {
    struct hooks_answer a;  /* PASS: route `out` (which may be just the original, re-referenced) */
    struct msg **out;       /* the caller owns one reference to each message, and the array:
                             * &one when there is one message (the usual case), else malloc'd;
                             * hooks_publish_answer_fini frees it either way */
    size_t out_count;
    struct msg *one;
};

struct hooks {
    void *ctx;
    /* True if any rule's match filters could see topic t (C-side trie: no match, no Lua). */
    bool (*wants)(void *ctx, const char *t, size_t len);
    /* The same, counting only rules with an on_publish / an on_deliver hook: a message no
     * on_deliver rule sees needs no per-subscriber hook work at all. */
    bool (*wants_publish)(void *ctx, const char *t, size_t len);
    bool (*wants_deliver)(void *ctx, const char *t, size_t len);
    void (*on_connect)(void *ctx, const struct hooks_connect *in, struct hooks_answer *out,
                       void **attrs_out);
    void (*on_subscribe)(void *ctx, const struct hooks_client *c, const struct hooks_sub *in,
                         struct hooks_sub_answer *out);
    /* m is borrowed; `from` is NULL for the broker's own messages (tide.publish, $SYS, wills?).
     * hop counts tide.publish nesting (a client's message is hop 0). */
    void (*on_publish)(void *ctx, struct msg *m, const struct hooks_client *from, unsigned hop,
                       struct hooks_publish_answer *out);
    /* Returns the message to deliver (m itself with a new reference, or a changed copy), or NULL
     * to withhold it from this subscriber. `filter` is the subscription it matched (without a
     * $share/GROUP/ prefix): a changed topic must still match it (RULES-API). */
    struct msg *(*on_deliver)(void *ctx, struct msg *m, const struct hooks_client *to,
                              const char *filter, size_t filter_len);
    void (*on_disconnect)(void *ctx, const struct hooks_client *c, const char *reason);
    /* Frees what on_connect stored in *attrs_out. */
    void (*client_free)(void *ctx, void *attrs);
};

/* Frees a's array of messages (not the messages: their references are the caller's). */
static inline void hooks_publish_answer_fini(struct hooks_publish_answer *a)
{
    if (a->out != &a->one)
        free(a->out);
    a->out = NULL;
    a->out_count = 0;
}

/* True if a rule's on_deliver could see topic t (h may be NULL; wants when the engine has no
 * wants_deliver). */
static inline bool hooks_wants_deliver(const struct hooks *h, const char *t, size_t len)
{
    return h && (h->wants_deliver ? h->wants_deliver : h->wants)(h->ctx, t, len);
}

#endif
