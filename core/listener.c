/* Listening sockets and accept, with an EMFILE pause. */
#include "listener.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "broker.h"
#include "config.h"
#include "conn.h"
#include "connect_rate.h"
#include "log.h"
#include "proxy.h"
#include "tls.h"
#include "transport.h"
#include "util/alloc.h"
#include "ws.h"

#define ACCEPT_PAUSE_MS 1000

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *addr,
                      int addrlen, void *arg)
{
    (void)evl;
    struct listener *l = arg;
    if (l->cfg->proxy_protocol)
        proxy_accept(l->b, l->cfg, fd, addr, addrlen); /* admitted once its header is read */
    else
        listener_admit(l->b, l->cfg, fd, addr, addrlen);
}

const char *listener_format_addr(const struct sockaddr *addr, char *host, uint16_t *port)
{
    strcpy(host, "?");
    *port = 0;
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, INET6_ADDRSTRLEN);
        *port = ntohs(s6->sin6_port);
    } else if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &s4->sin_addr, host, INET6_ADDRSTRLEN);
        *port = ntohs(s4->sin_port);
    }
    return host;
}

struct conn *listener_admit(struct broker *b, const struct config_listener *lcfg, int fd,
                            const struct sockaddr *addr, int addrlen)
{
    if (b->connect_rate) {
        /* before reading anything: a storm from one address costs an accept and a close */
        enum connect_rate_verdict v = connect_rate_check(b->connect_rate, addr, broker_now_ms());
        char host[INET6_ADDRSTRLEN];
        uint16_t port;
        if (v == CONNECT_RATE_REFUSE_FIRST)
            log_notice("listener",
                       "refused connection addr=%s listener=%u reason=over "
                       "connect_rate_per_address (further refusals of this address are not logged "
                       "until one of its connections is allowed)",
                       listener_format_addr(addr, host, &port), lcfg->port);
        if (v == CONNECT_RATE_UNTRACKED_FIRST)
            log_warn("listener",
                     "connect_rate_per_address: %d addresses tracked, the most there "
                     "can be; new addresses are not limited until some are forgotten",
                     CONNECT_RATE_MAX_ADDRESSES);
        if (v == CONNECT_RATE_REFUSE || v == CONNECT_RATE_REFUSE_FIRST) {
            b->stats.refused_connect_rate++;
            evutil_closesocket(fd);
            return NULL;
        }
    }
    return conn_new(b, lcfg, fd, addr, addrlen);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct listener *l = arg;
    for (size_t i = 0; i < l->count; i++)
        evconnlistener_enable(l->evl[i]);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
    (void)evl;
    struct listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        /* out of descriptors: stop accepting for a while rather than spin on the error */
        l->b->stats.accept_paused++;
        log_warn("listener", "accept failed (%s): pausing accepts for %d ms port=%u",
                 strerror(err), ACCEPT_PAUSE_MS, l->cfg->port);
        for (size_t i = 0; i < l->count; i++)
            evconnlistener_disable(l->evl[i]);
        struct timeval tv = {ACCEPT_PAUSE_MS / 1000, (ACCEPT_PAUSE_MS % 1000) * 1000};
        evtimer_add(l->resume, &tv);
    } else {
        log_warn("listener", "accept failed: %s", strerror(err));
    }
}

static void log_bound(struct evconnlistener *evl)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (getsockname(evconnlistener_get_fd(evl), (struct sockaddr *)&ss, &len) == 0)
        listener_format_addr((struct sockaddr *)&ss, host, &port);
    log_notice("listener", "listening address=%s port=%u", host, port);
}

struct listener *listener_open(struct broker *b, const struct config_listener *cfg)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->port);
    int gai = getaddrinfo(cfg->address, port, &hints, &res);
    if (gai) {
        log_error("listener", "%s:%d: cannot resolve listener address %s: %s",
                  cfg->file ? cfg->file : "-", cfg->line, cfg->address ? cfg->address : "*",
                  gai_strerror(gai));
        return NULL;
    }
    struct listener *l = xcalloc(1, sizeof *l);
    l->b = b;
    l->cfg = cfg;
    l->resume = evtimer_new(b->base, on_resume, l);
    if (cfg->certfile && !(l->tls = tls_server_new(cfg))) {
        freeaddrinfo(res);
        listener_free(l);
        return NULL;
    }
    size_t n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        n++;
    l->evl = xcalloc(n, sizeof *l->evl);
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
        if (ai->ai_family == AF_INET6)
            flags |= LEV_OPT_BIND_IPV6ONLY;
        struct evconnlistener *evl = evconnlistener_new_bind(
            b->base, on_accept, l, flags, 1024, ai->ai_addr, (int)ai->ai_addrlen);
        if (!evl) {
            log_error("listener", "%s:%d: cannot listen on %s port %u: %s",
                      cfg->file ? cfg->file : "-", cfg->line, cfg->address ? cfg->address : "*",
                      cfg->port, strerror(errno));
            freeaddrinfo(res);
            listener_free(l);
            return NULL;
        }
        evconnlistener_set_error_cb(evl, on_accept_error);
        l->evl[l->count++] = evl;
        log_bound(evl);
        if (cfg->port == 0)
            break; /* an OS-chosen port differs per address family: keep one */
    }
    freeaddrinfo(res);
    if (cfg->proxy_protocol && !b->cfg->proxy_trusted_count)
        log_warn("listener",
                 "%s:%d: proxy_protocol true but no proxy_trusted networks: every "
                 "connection to this listener will be refused",
                 cfg->file ? cfg->file : "-", cfg->line);
    return l;
}

void listener_free(struct listener *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        evconnlistener_free(l->evl[i]);
    free(l->evl);
    event_free(l->resume);
    tls_server_free(l->tls);
    free(l);
}

int listener_transport_new(struct broker *b, const struct config_listener *lcfg, int fd,
                           const char *addr, struct transport **out)
{
    /* bottom up: the socket (NULL), then TLS, then WebSocket framing */
    struct transport *t = NULL;
    *out = NULL;
    if (lcfg->certfile) {
        struct listener *l = NULL;
        for (size_t i = 0; i < b->listener_count && !l; i++)
            l = b->listeners[i]->cfg == lcfg ? b->listeners[i] : NULL;
        if (!l || !l->tls)
            return -1; /* its listener is gone (shutting down): never serve it in clear */
        if (!(t = tls_transport_new(l->tls, fd, addr)))
            return -1;
    }
    if (lcfg->protocol == CONFIG_PROTO_WEBSOCKETS)
        t = ws_transport_new(t, fd); /* ws:// over the socket, wss:// over TLS */
    *out = t; /* plain TCP: NULL, no transport object at all */
    return 0;
}

void listener_reload_tls(struct listener *l)
{
    if (l->tls)
        tls_server_reload(l->tls);
}
