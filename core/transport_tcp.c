/* The transport dispatch (see transport.h): a NULL transport is the plain socket, read with
 * read(2) and written with evbuffer_write (writev); anything else goes to its layer's ops. */
#include "transport.h"

#include <errno.h>
#include <unistd.h>

#include <event2/buffer.h>

static ssize_t socket_result(ssize_t n, int want, const char **why)
{
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return want;
    *why = "socket error";
    return TRANSPORT_ERROR;
}

ssize_t transport_read(struct transport *t, int fd, void *buf, size_t len, const char **why)
{
    if (t)
        return t->ops->read(t, buf, len, why);
    return socket_result(read(fd, buf, len), TRANSPORT_WANT_READ, why);
}

ssize_t transport_write(struct transport *t, int fd, struct evbuffer *out, const char **why)
{
    if (t)
        return t->ops->write(t, out, why);
    int n = evbuffer_write(out, fd);
    if (n == 0) {
        /* nothing taken from a non-empty buffer: the peer is gone */
        *why = "socket error";
        return TRANSPORT_ERROR;
    }
    return socket_result(n, TRANSPORT_WANT_WRITE, why);
}

size_t transport_pending_out(const struct transport *t)
{
    size_t n = 0;
    for (; t; t = t->lower)
        n += t->ops->pending_out ? t->ops->pending_out(t) : 0;
    return n;
}

bool transport_has_input(const struct transport *t)
{
    for (; t; t = t->lower) {
        if (t->ops->has_input && t->ops->has_input(t))
            return true;
    }
    return false;
}

void transport_shutdown(struct transport *t)
{
    for (; t; t = t->lower) {
        if (t->ops->shutdown)
            t->ops->shutdown(t);
    }
}

void transport_idle(struct transport *t)
{
    for (; t; t = t->lower) {
        if (t->ops->idle)
            t->ops->idle(t);
    }
}

void transport_free(struct transport *t)
{
    while (t) {
        struct transport *lower = t->lower;
        t->ops->free(t);
        t = lower;
    }
}

struct transport *transport_find(struct transport *t, const struct transport_ops *ops)
{
    for (; t; t = t->lower) {
        if (t->ops == ops)
            return t;
    }
    return NULL;
}
