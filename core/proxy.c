/* Sockets waiting for their PROXY header (see proxy.h): trust check, exact reading of the header
 * off a non-blocking socket under a deadline, hand-off to listener_admit. */
#include "proxy.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "broker.h"
#include "config.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "proxy_header.h"
#include "util/alloc.h"
#include "util/err.h"

/* Refusal log lines per second at most: each names its peer, but a flood of refused connections
 * must not become a flood of log lines (the excess is summed up in one line, written with the
 * next refusal after that second; limits/refused_proxy counts every one). */
#define LOG_PER_SECOND 20

/* The broker's PROXY state. */
struct proxy {
    struct proxy_pending *pending; /* sockets waiting for their header */
    uint64_t log_window_ms;        /* start of the current second of refusal lines */
    uint32_t logged, unlogged;     /* refusal lines written and held back in it */
};

/* One accepted socket whose header has not arrived yet. Its header bytes are read into buf as
 * they come (only bytes known to belong to the header), so a header sent in pieces neither
 * wakes the loop again for bytes already seen nor needs the whole header in one segment. */
struct proxy_pending {
    struct broker *b;
    const struct config_listener *lcfg;
    struct proxy_pending *next, *prev; /* struct proxy's list */
    struct event *ev;                  /* read readiness, with the time left as its timeout */
    uint64_t deadline_ms;
    int fd;
    socklen_t peer_len;
    struct sockaddr_storage peer; /* the balancer (the TCP peer) */
    size_t have;                  /* header bytes read into buf */
    uint8_t buf[PROXY_HEADER_MAX];
};

static bool in_net(const struct config_proxy_net *n, int family, const uint8_t *addr)
{
    if (n->family != family)
        return false;
    unsigned full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(n->addr, addr, full) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xFF00u >> rest);
    return (n->addr[full] & mask) == (addr[full] & mask);
}

bool proxy_is_trusted(const struct config *cfg, const struct sockaddr *addr)
{
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    int family = addr->sa_family;
    const uint8_t *a;
    if (family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr;
    } else if (family == AF_INET6) {
        a = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
        if (memcmp(a, v4_mapped, sizeof v4_mapped) == 0) {
            family = AF_INET;
            a += 12;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < cfg->proxy_trusted_count; i++) {
        if (in_net(&cfg->proxy_trusted[i], family, a))
            return true;
    }
    return false;
}

static void unlink_pending(struct proxy_pending *p)
{
    struct broker *b = p->b;
    if (p->prev)
        p->prev->next = p->next;
    else
        b->proxy->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    event_free(p->ev);
}

static struct proxy *state(struct broker *b)
{
    if (!b->proxy)
        b->proxy = xcalloc(1, sizeof *b->proxy);
    return b->proxy;
}

/* Counts and logs a refused socket, once, naming the peer (within LOG_PER_SECOND). */
static void log_refusal(struct broker *b, const struct config_listener *lcfg,
                        const struct sockaddr *peer, const char *why)
{
    struct proxy *px = state(b);
    uint64_t now = broker_now_ms();
    b->stats.refused_proxy++;
    if (now - px->log_window_ms >= 1000) {
        if (px->unlogged)
            log_notice("proxy", "refused %u more connections without logging each", px->unlogged);
        px->log_window_ms = now;
        px->logged = px->unlogged = 0;
    }
    if (px->logged >= LOG_PER_SECOND) {
        px->unlogged++;
        return;
    }
    px->logged++;
    char host[INET6_ADDRSTRLEN];
    uint16_t port;
    listener_format_addr(peer, host, &port);
    log_notice("proxy", "refused connection addr=%s port=%u listener=%u reason=%s", host, port,
               lcfg->port, why);
}

static void refuse(struct proxy_pending *p, const char *why)
{
    log_refusal(p->b, p->lcfg, (const struct sockaddr *)&p->peer, why);
    unlink_pending(p);
    evutil_closesocket(p->fd);
    free(p);
}

/* The peer went away or failed before its header: nothing to refuse, quietly closed. */
static void drop(struct proxy_pending *p, const char *why)
{
    char host[INET6_ADDRSTRLEN];
    uint16_t port;
    listener_format_addr((const struct sockaddr *)&p->peer, host, &port);
    log_info("proxy", "connection closed addr=%s port=%u reason=%s", host, port, why);
    unlink_pending(p);
    evutil_closesocket(p->fd);
    free(p);
}

/* The header is complete and valid: the socket leaves this module for listener_admit. */
static void admit(struct proxy_pending *p, const struct proxy_header *h)
{
    struct sockaddr_storage real;
    socklen_t real_len;
    char via[INET6_ADDRSTRLEN], host[INET6_ADDRSTRLEN];
    uint16_t via_port, port;

    memset(&real, 0, sizeof real);
    if (h->local) {
        /* LOCAL / UNKNOWN: the balancer itself (health checks) */
        memcpy(&real, &p->peer, p->peer_len);
        real_len = p->peer_len;
    } else if (h->family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&real;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, h->addr, 4);
        s4->sin_port = htons(h->port);
        real_len = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&real;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, h->addr, 16);
        s6->sin6_port = htons(h->port);
        real_len = sizeof *s6;
    }
    listener_format_addr((const struct sockaddr *)&p->peer, via, &via_port);
    listener_format_addr((const struct sockaddr *)&real, host, &port);
    if (h->local)
        log_info("proxy",
                 "PROXY v%u header: the balancer's own connection (LOCAL or UNKNOWN) "
                 "addr=%s port=%u",
                 h->version, host, port);
    else
        log_info("proxy", "PROXY v%u header: client addr=%s port=%u via=%s", h->version, host, port,
                 via);

    struct broker *b = p->b;
    const struct config_listener *lcfg = p->lcfg;
    int fd = p->fd;
    uint64_t accepted_ms = p->deadline_ms - b->cfg->connect_timeout_ms;
    unlink_pending(p);
    free(p);
    struct conn *c = listener_admit(b, lcfg, fd, (const struct sockaddr *)&real, (int)real_len);
    if (c)
        c->last_rx_ms = accepted_ms; /* one connect_timeout from accept, header included */
}

/* Waits for more bytes until the deadline; false (and p refused) once it has passed. */
static bool rearm(struct proxy_pending *p)
{
    uint64_t now = broker_now_ms();
    if (now >= p->deadline_ms) {
        refuse(p, "PROXY header did not arrive within connect_timeout");
        return false;
    }
    uint64_t left = p->deadline_ms - now;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    event_add(p->ev, &tv);
    return true;
}

static void on_header_readable(evutil_socket_t fd, short what, void *arg)
{
    struct proxy_pending *p = arg;
    if (!(what & EV_READ)) {
        rearm(p); /* a timeout: refuses when the deadline has passed (the coarse clock may lag) */
        return;
    }
    /* Peek first: bytes behind the header (a TLS ClientHello, an MQTT CONNECT) must stay in the
     * socket for whoever reads it next. */
    ssize_t r = recv(fd, p->buf + p->have, sizeof p->buf - p->have, MSG_PEEK);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            rearm(p);
        else
            drop(p, strerror(errno));
        return;
    }
    if (r == 0) {
        drop(p, "closed before its PROXY header");
        return;
    }
    const char *why = NULL;
    size_t avail = p->have + (size_t)r;
    int len = proxy_header_length(p->buf, avail, &why);
    if (len < 0 && len != TIDE_EPARTIAL) {
        refuse(p, why);
        return;
    }
    /* Consume what is known to be header: all of it when its end is in sight, else everything
     * peeked (proxy_header_length's contract: a partial header's bytes are all header). */
    size_t end = len > 0 ? (size_t)len : avail;
    if (end < p->have) {
        refuse(p, "PROXY header shorter than the bytes already read");
        return;
    }
    ssize_t got = end > p->have ? recv(fd, p->buf + p->have, end - p->have, 0) : 0;
    if (got < 0) {
        drop(p, strerror(errno));
        return;
    }
    p->have += (size_t)got;
    if (len < 0 || p->have < (size_t)len) {
        rearm(p);
        return;
    }
    struct proxy_header h;
    if (proxy_header_decode(p->buf, p->have, &h, &why) != 0) {
        refuse(p, why);
        return;
    }
    admit(p, &h);
}

void proxy_accept(struct broker *b, const struct config_listener *lcfg, int fd,
                  const struct sockaddr *peer, int peerlen)
{
    if (!proxy_is_trusted(b->cfg, peer)) {
        /* whoever can reach a proxy listener directly could claim any address: only the
         * configured balancers may speak PROXY */
        log_refusal(b, lcfg, peer, "source not in proxy_trusted");
        evutil_closesocket(fd);
        return;
    }
    struct proxy_pending *p = xcalloc(1, sizeof *p);
    p->b = b;
    p->lcfg = lcfg;
    p->fd = fd;
    p->peer_len = peerlen > 0 && (size_t)peerlen <= sizeof p->peer ? (socklen_t)peerlen : 0;
    memcpy(&p->peer, peer, p->peer_len);
    p->deadline_ms = broker_now_ms() + b->cfg->connect_timeout_ms;
    p->ev = event_new(b->base, fd, EV_READ, on_header_readable, p);
    struct proxy *px = state(b);
    p->next = px->pending;
    if (px->pending)
        px->pending->prev = p;
    px->pending = p;
    evutil_make_socket_nonblocking(fd);
    rearm(p);
}

void proxy_drop_all(struct broker *b)
{
    while (b->proxy && b->proxy->pending) {
        struct proxy_pending *p = b->proxy->pending;
        unlink_pending(p);
        evutil_closesocket(p->fd);
        free(p);
    }
}

void proxy_free(struct broker *b)
{
    proxy_drop_all(b);
    free(b->proxy);
    b->proxy = NULL;
}
