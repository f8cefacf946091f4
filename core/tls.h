/* TLS for listeners with a certfile: one server context (OpenSSL SSL_CTX) per TLS listener, built
 * from the listener's certfile/keyfile/cafile/capath/crlfile/tls_version/ciphers settings and
 * rebuilt on SIGHUP; and the TLS transport layer (transport.h) each accepted connection of such a
 * listener reads and writes through (non-blocking SSL directly on the socket). The only file
 * that includes OpenSSL's ssl headers. Loop thread only. */
#ifndef TIDE_TLS_H
#define TIDE_TLS_H

struct config_listener;
struct hooks_tls;
struct tls_server;
struct transport;

/* Builds the server context for l (borrowed: must outlive the result). Returns NULL after logging
 * "file:line: listener PORT: <which file or setting>: <why>". */
struct tls_server *tls_server_new(const struct config_listener *l);
/* Rebuilds the context from the same files (new certificates, CRL, CA). On failure logs which
 * file and why, keeps serving with the old context and returns -1; else 0. Connections already
 * open keep the context they were accepted with. */
int tls_server_reload(struct tls_server *ts);
/* Frees ts. Connections accepted from it may live on: each holds its own reference to the
 * OpenSSL context. ts may be NULL. */
void tls_server_free(struct tls_server *ts);

/* A TLS layer for the accepted socket fd (borrowed; the conn closes it), in the server role, for
 * the client at addr (copied, for log lines); the handshake happens inside the first reads. NULL
 * if OpenSSL cannot allocate it. Freed by transport_free. */
struct transport *tls_transport_new(struct tls_server *ts, int fd, const char *addr);

/* The TLS layer's view of the client (see conn_tls_peer) for the stack t, or NULL when t has no
 * TLS layer or its handshake is not finished. Computed on first use, owned by the layer. */
const struct hooks_tls *tls_peer(struct transport *t);
/* The common name (CN) of the client certificate when it was verified against the listener's
 * cafile/capath (and crlfile), else NULL: a certificate that was not verified never names a
 * user. Owned by the layer. */
const char *tls_peer_identity(struct transport *t);

#endif
