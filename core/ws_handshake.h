/* The server side of the WebSocket opening handshake (RFC 6455 section 4) for MQTT over
 * WebSockets: parses the client's HTTP/1.1 upgrade request and writes the 101 answer or an HTTP
 * error. Pure: no I/O, no allocation, no logging; reads only the bytes it is given. Any request
 * path is accepted (as Mosquitto does); the subprotocol must be "mqtt" (MQTT 5.0 section 6,
 * [MQTT-6.0.0-3]) or "mqttv3.1" (what MQTT 3.1 clients such as MQTT.js offer). */
#ifndef TIDE_WS_HANDSHAKE_H
#define TIDE_WS_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

/* The largest upgrade request accepted (request line + headers); longer ones get 431. */
#define WS_HANDSHAKE_MAX 8192
/* A buffer this big holds any response ws_handshake_response writes. */
#define WS_RESPONSE_MAX 512

struct ws_handshake {
    int status;              /* 101 when the upgrade is accepted, else the HTTP error status */
    const char *reason;      /* static text: why it was refused (log line and response body) */
    const char *subprotocol; /* static "mqtt" or "mqttv3.1" when status is 101 */
    char accept[32];         /* Sec-WebSocket-Accept, NUL-terminated, when status is 101 */
};

/* Parses an upgrade request at the start of p[0..len). Returns:
 *  - n > 0: a whole request of n bytes was read (what follows it is already WebSocket frames); h
 *    says whether it is accepted (status 101) or refused (400, 405, 426);
 *  - TIDE_EPARTIAL: the request has not ended yet and may still be acceptable: call again with
 *    more bytes (the caller keeps at most WS_HANDSHAKE_MAX bytes);
 *  - TIDE_EMALFORMED (status 400): the bytes so far cannot begin an HTTP request (a control byte,
 *    e.g. a raw MQTT packet sent to a WebSocket port) — refused without waiting for the end;
 *  - TIDE_ETOOBIG (status 431): WS_HANDSHAKE_MAX bytes and still no end of the headers;
 *  - TIDE_EIO: libcrypto failed to hash the key (status 500).
 * Borrows p; h->reason and h->subprotocol are static strings. */
int ws_handshake_parse(const uint8_t *p, size_t len, struct ws_handshake *h);

/* Writes the HTTP response for h (the 101 Switching Protocols answer, or the error with a short
 * text body and "Connection: close") into out, which holds cap bytes (WS_RESPONSE_MAX is always
 * enough). Returns its length, or 0 if it does not fit. */
size_t ws_handshake_response(const struct ws_handshake *h, char *out, size_t cap);

#endif
