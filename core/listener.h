/* Listening sockets: one struct listener per configured listener (possibly several bound
 * addresses), accepting into conn_new. On EMFILE/ENFILE accepting pauses for a second instead of
 * spinning. Loop thread only. */
#ifndef TIDE_LISTENER_H
#define TIDE_LISTENER_H

#include <stddef.h>

struct broker;
struct config_listener;
struct evconnlistener;
struct event;

struct listener {
    struct broker *b;
    const struct config_listener *cfg;
    struct evconnlistener **evl;
    size_t count;
    struct event *resume; /* re-enables accepting after an EMFILE pause */
};

/* Binds and starts accepting; logs "listening address=A port=P" per bound socket (the real port
 * when cfg->port is 0). Returns NULL after logging why it could not bind. */
struct listener *listener_open(struct broker *b, const struct config_listener *cfg);
void listener_free(struct listener *l);

#endif
