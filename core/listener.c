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
#include "log.h"
#include "util/alloc.h"

#define ACCEPT_PAUSE_MS 1000

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *addr,
                      int addrlen, void *arg)
{
    (void)evl;
    struct listener *l = arg;
    conn_new(l->b, l->cfg, fd, addr, addrlen);
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
    char host[64] = "?";
    unsigned port = 0;
    if (getsockname(evconnlistener_get_fd(evl), (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
            port = ntohs(s6->sin6_port);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
            port = ntohs(s4->sin_port);
        }
    }
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
    free(l);
}
