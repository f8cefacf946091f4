/* Immutable refcounted messages in one allocation. */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

struct msg *msg_new(const struct msg_init *in)
{
    const char *origin = in->origin ? in->origin : "";
    size_t olen = strlen(origin);
    size_t size = sizeof(struct msg) + in->topic_len + 1 + olen + 1 + in->props_len + in->payload_len;
    struct msg *m = xmalloc(size);
    char *p = (char *)(m + 1);

    m->refs = 1;
    m->account = in->account;
    m->size = size;
    if (m->account)
        *m->account += size;
    m->qos = in->qos;
    m->retain = in->retain;
    m->has_expiry = in->has_expiry;
    m->expiry_interval = in->has_expiry ? in->expiry_interval : 0;
    m->expires_at_ms = in->has_expiry ? in->now_ms + (uint64_t)in->expiry_interval * 1000 : 0;

    memcpy(p, in->topic, in->topic_len);
    p[in->topic_len] = '\0';
    m->topic = p;
    m->topic_len = in->topic_len;
    p += in->topic_len + 1;

    memcpy(p, origin, olen + 1);
    m->origin = p;
    p += olen + 1;

    if (in->props_len)
        memcpy(p, in->props, in->props_len);
    m->props = (const uint8_t *)p;
    m->props_len = in->props_len;
    p += in->props_len;

    if (in->payload_len)
        memcpy(p, in->payload, in->payload_len);
    m->payload = (const uint8_t *)p;
    m->payload_len = in->payload_len;
    return m;
}

struct msg *msg_restart_expiry(const struct msg *m, uint64_t now_ms)
{
    struct msg_init in = {
        .topic = m->topic,
        .topic_len = m->topic_len,
        .payload = m->payload,
        .payload_len = m->payload_len,
        .props = m->props,
        .props_len = m->props_len,
        .origin = m->origin,
        .qos = m->qos,
        .retain = m->retain,
        .has_expiry = m->has_expiry,
        .expiry_interval = m->expiry_interval,
        .now_ms = now_ms,
        .account = m->account,
    };
    return msg_new(&in);
}

struct msg *msg_retain(struct msg *m)
{
    m->refs++;
    return m;
}

void msg_release(struct msg **mp)
{
    struct msg *m = *mp;
    if (!m)
        return;
    *mp = NULL;
    if (m->refs == 0)
        panic("msg refcount underflow (topic %s)", m->topic);
    if (--m->refs == 0) {
        if (m->account)
            *m->account -= m->size;
        free(m);
    }
}

bool msg_expired(const struct msg *m, uint64_t now_ms)
{
    return m->has_expiry && now_ms >= m->expires_at_ms;
}

uint32_t msg_remaining_expiry(const struct msg *m, uint64_t now_ms)
{
    if (!m->has_expiry || now_ms >= m->expires_at_ms)
        return 0;
    /* round up so a message with 0.4 s left is not forwarded as already expired */
    return (uint32_t)((m->expires_at_ms - now_ms + 999) / 1000);
}
