/* MQTT over WebSockets (RFC 6455; MQTT 5.0 section 6) as a transport layer (transport.h) stacked
 * on plain TCP (ws://) or on TLS (wss://). It answers the HTTP upgrade (ws_handshake.h), then
 * turns the client's binary frames into the MQTT byte stream and the broker's output into binary
 * frames. wslay does the frame decoding (masking, fragmentation, control frames interleaved with
 * fragments, ping -> pong, the close handshake, RSV and UTF-8 checks). Loop thread only. */
#ifndef TIDE_WS_H
#define TIDE_WS_H

struct transport;

/* A WebSocket layer over lower (NULL: the socket fd itself), which it takes ownership of (freed
 * with it by transport_free). The handshake happens inside the first reads: until it is done,
 * reads return TRANSPORT_WANT_READ and the connect timeout bounds a client that stalls. A refused
 * upgrade is answered with an HTTP error status (400, 405, 426, 431) and the read reports
 * TRANSPORT_ERROR with the reason; conn.c then flushes the answer and closes. Never returns NULL
 * (allocation failure aborts, as xmalloc does). */
struct transport *ws_transport_new(struct transport *lower, int fd);

#endif
