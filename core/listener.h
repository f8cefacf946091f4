/* Listening sockets: one struct listener per configured listener (possibly several bound
 * addresses), accepting into conn_new. On EMFILE/ENFILE accepting pauses for a second instead of
 * spinning. Loop thread only. */
#ifndef TIDE_LISTENER_H
#define TIDE_LISTENER_H

#include <stddef.h>

#include <stdint.h>

struct broker;
struct config_listener;
struct conn;
struct evconnlistener;
struct event;
struct tls_server;
struct transport;
struct sockaddr;

struct listener {
    struct broker *b;
    const struct config_listener *cfg;
    struct evconnlistener **evl;
    size_t count;
    struct event *resume; /* re-enables accepting after an EMFILE pause */
    struct tls_server *tls; /* the TLS context of a listener with a certfile, else NULL */
};

/* Binds and starts accepting; logs "listening address=A port=P" per bound socket (the real port
 * when cfg->port is 0). Returns NULL after logging why it could not bind. */
struct listener *listener_open(struct broker *b, const struct config_listener *cfg);
void listener_free(struct listener *l);

/* Builds the transport stack (transport.h) for a socket accepted on the listener configured as
 * lcfg, from the client at addr (text, for the layers' log lines): *out = NULL for plain MQTT over
 * TCP, else its TLS and/or WebSocket layers. Returns 0, or -1 (logged) when a layer cannot be
 * created. */
int listener_transport_new(struct broker *b, const struct config_listener *lcfg, int fd,
                           const char *addr, struct transport **out);
/* SIGHUP: rebuilds l's TLS context from its files (keeping the old one if they fail). */
void listener_reload_tls(struct listener *l);

/* Takes ownership of fd, a client socket accepted on lcfg whose client address is addr (the TCP
 * peer, or the one its PROXY header gave): closes it at once when connect_rate_per_address
 * refuses that address (counted, logged once per episode), else hands it to conn_new. Borrows
 * addr. Returns the new connection, or NULL if it was refused. */
struct conn *listener_admit(struct broker *b, const struct config_listener *lcfg, int fd,
                            const struct sockaddr *addr, int addrlen);

/* Formats addr's host into host (INET6_ADDRSTRLEN bytes; "?" for another family) and its port
 * into *port; returns host. */
const char *listener_format_addr(const struct sockaddr *addr, char *host, uint16_t *port);

#endif
