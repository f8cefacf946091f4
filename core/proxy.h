/* Listeners with `proxy_protocol true`: a socket accepted from a trusted balancer (proxy_trusted)
 * waits here, without a struct conn, until its PROXY v1/v2 header has arrived; the header is
 * consumed exactly (peeked to find its end, then only its bytes read) so a TLS or WebSocket
 * handshake behind it reaches the transport untouched; then the socket goes on to
 * listener_admit with the client's real address. An untrusted peer, a malformed or oversized
 * header, or one that has not arrived within connect_timeout closes that socket alone, with one
 * log line naming the peer (at most 20 such lines a second) and a count in limits/refused_proxy.
 * Loop thread only. */
#ifndef TIDE_PROXY_H
#define TIDE_PROXY_H

#include <stdbool.h>

struct broker;
struct config;
struct config_listener;
struct sockaddr;

/* True if addr (the TCP peer) is inside one of cfg's proxy_trusted networks; an IPv4-mapped IPv6
 * address is matched as IPv4. Borrows both. */
bool proxy_is_trusted(const struct config *cfg, const struct sockaddr *addr);

/* Takes ownership of fd, just accepted on lcfg (a proxy_protocol listener) from peer (borrowed;
 * copied). Either closes it at once (untrusted peer) or waits for its header; never calls
 * back into the caller's frame. */
void proxy_accept(struct broker *b, const struct config_listener *lcfg, int fd,
                  const struct sockaddr *peer, int peerlen);

/* Closes every socket still waiting for its header (shutdown). */
void proxy_drop_all(struct broker *b);
/* Teardown: proxy_drop_all, then frees b->proxy and sets it to NULL. */
void proxy_free(struct broker *b);

#endif
