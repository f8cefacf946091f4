/* The per-connection transport: how conn.c moves bytes between a socket and MQTT. A transport
 * turns the socket's byte stream into the MQTT byte stream and back: TLS decrypts and encrypts,
 * WebSocket framing unwraps and wraps frames. Transports stack: each one reads and writes through
 * the one below it (`lower`), and the bottom of every stack is the plain socket, which is not an
 * object at all: a NULL transport means plain TCP. So a plain connection costs one NULL pointer,
 * and "wss" is WebSocket framing on top of TLS on top of the socket:
 *
 *     conn.c  --transport_read/write-->  [ws]  --lower-->  [tls]  --lower-->  NULL (the fd)
 *
 * conn.c calls only the transport_* functions below, never read(2)/evbuffer_write directly; they
 * dispatch to the ops, or do plain socket I/O when the transport is NULL. A transport calls the
 * same functions on its `lower` (NULL for the socket) to reach the layer below, so every layer is
 * written against one interface and any layer can sit on top of any other.
 *
 * Readiness. Everything is non-blocking. A read or write that cannot progress says which socket
 * event it waits for: TRANSPORT_WANT_READ or TRANSPORT_WANT_WRITE. A *read* may need the socket
 * to become writable (a TLS handshake reply, or a TLS 1.3 key update, did not fit into the send
 * queue), and a *write* may need it readable (the handshake is not finished); conn.c remembers
 * which (conn.read_wants_write / write_wants_read) and retries the operation on that event.
 * Handshakes need no call of their own: a transport completes its handshake inside read and write
 * and reports WANT_* until it is done, so the connect timeout (conn_check_timeouts: state
 * CONN_NEW) bounds a handshake that stalls, exactly as it bounds a client that never sends
 * CONNECT.
 *
 * Buffering contract (conn.c relies on it): a read returns fewer bytes than asked only when
 * nothing more is available right now, or when the layer holds back something for the next read
 * and says so in has_input. A transport may hold decoded bytes that the socket will never
 * announce again (a TLS record only partly returned, a WebSocket frame already read), or the end
 * of the stream or an error that came right after the bytes it returned (TLS: close_notify
 * behind a DISCONNECT); it must hand them out before it reports WANT_READ. conn.c reads again
 * at once while has_input says so, and after yielding for fairness (a few full reads) it
 * re-activates the read event of any connection with a transport, because only a plain socket is
 * sure to be reported readable again.
 *
 * Ownership: a transport is created when the connection is accepted (listener_transport_new),
 * owned by struct conn (conn.tr), and freed with it by transport_free, which frees the whole
 * stack below it too. The fd belongs to the conn, never to a transport: transports never close it.
 * Errors come back with a static string (`why`) for conn_close's log line; a transport may log the
 * detail itself (e.g. the certificate verification error) before returning TRANSPORT_ERROR.
 * Loop thread only. */
#ifndef TIDE_TRANSPORT_H
#define TIDE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct evbuffer;
struct transport;

/* Results below zero from transport_read / transport_write. (0 from a read is the peer's orderly
 * end of stream: EOF, TLS close_notify, WebSocket close frame.) */
enum {
    TRANSPORT_WANT_READ = -1,  /* retry when the socket is readable */
    TRANSPORT_WANT_WRITE = -2, /* retry when the socket is writable */
    TRANSPORT_ERROR = -3,      /* the connection is unusable; *why says why */
};

/* What a layer implements. Every function gets the layer itself; it reaches the layer below with
 * transport_read(t->lower, t->fd, ...) and transport_write(t->lower, t->fd, ...). */
struct transport_ops {
    const char *name; /* "tls", "ws": for logs */
    /* Fills buf with up to len bytes of the stream above this layer. Returns the count (> 0), 0 at
     * the orderly end of the stream, or TRANSPORT_WANT_READ / _WANT_WRITE / _ERROR (*why set).
     * Fewer than len only when nothing more is available now (see "Buffering contract"). */
    ssize_t (*read)(struct transport *t, void *buf, size_t len, const char **why);
    /* Sends bytes from the front of out, draining from out exactly what it took (the rest stays
     * for a later call; payloads in out may be shared references: never modify them). Returns a
     * count > 0 when it made progress (bytes taken from out or sent from its own pending bytes),
     * or TRANSPORT_WANT_READ / _WANT_WRITE / _ERROR (*why set). conn.c calls it while
     * conn_output_pending() is non-zero, so out may be empty when this layer (or one below it)
     * still holds encoded bytes: a layer that encodes into a buffer of its own (WebSocket frames)
     * must send those first, and reports them in pending_out. TLS takes bytes from out only once
     * a whole record is accepted by the socket (OpenSSL keeps a partly sent record itself and the
     * retry passes the same bytes again), so it has no pending_out. */
    ssize_t (*write)(struct transport *t, struct evbuffer *out, const char **why);
    /* Encoded bytes held inside this layer, not yet handed to the layer below. conn.c counts them
     * as unsent output (the connection is not flushed until they are gone). NULL: never any. */
    size_t (*pending_out)(const struct transport *t);
    /* Best effort, non-blocking, once: tells the peer this side is done (TLS close_notify, a
     * WebSocket close frame), just before conn.c half-closes the socket. May be NULL. */
    void (*shutdown)(struct transport *t);
    /* Frees this layer only (transport_free walks the stack). */
    void (*free)(struct transport *t);
    /* Releases memory an idle connection does not need (buffers the layer can rebuild when bytes
     * come again); conn.c's tick calls it for a connection with no output pending. Must not lose
     * state: a layer in the middle of something keeps what it needs. May be NULL. */
    void (*idle)(struct transport *t);
    /* True when this layer holds input (bytes, the end of the stream, an error) for the next read
     * that the socket will not announce: conn.c reads again rather than wait for the socket (see
     * "Buffering contract"). May be NULL: never. */
    bool (*has_input)(const struct transport *t);
};

/* The head every layer's own struct begins with (a layer casts struct transport * to its type). */
struct transport {
    const struct transport_ops *ops;
    struct transport *lower; /* the layer below; NULL: the socket itself */
    int fd;                  /* the socket (borrowed from the conn) */
};

/* The I/O functions conn.c and the layers call. t NULL means the plain socket fd: read(2), writev
 * via evbuffer_write; EAGAIN becomes TRANSPORT_WANT_READ/_WANT_WRITE, EINTR is treated as
 * EAGAIN (the event fires again), any other error becomes TRANSPORT_ERROR ("socket error"). */
ssize_t transport_read(struct transport *t, int fd, void *buf, size_t len, const char **why);
ssize_t transport_write(struct transport *t, int fd, struct evbuffer *out, const char **why);
/* Encoded output held by the layers of t (0 for plain TCP). */
size_t transport_pending_out(const struct transport *t);
/* Says goodbye through every layer, top first (see ops.shutdown). t may be NULL. */
void transport_shutdown(struct transport *t);
/* Frees t and every layer below it. t may be NULL. */
void transport_free(struct transport *t);
/* Lets every layer of t release what an idle connection does not need (see ops.idle). t may be
 * NULL. */
void transport_idle(struct transport *t);
/* True when a layer of t holds input for the next read (see ops.has_input); false for NULL. */
bool transport_has_input(const struct transport *t);
/* The layer of t's stack implemented by ops (e.g. the TLS layer under WebSocket), or NULL. */
struct transport *transport_find(struct transport *t, const struct transport_ops *ops);

#endif
