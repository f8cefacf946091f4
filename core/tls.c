/* TLS listeners: building (and on SIGHUP rebuilding) a listener's SSL_CTX from its settings, and
 * the TLS transport layer: non-blocking SSL on the connection's socket, the handshake folded into
 * the first reads, records written straight from the output evbuffer, the client certificate's
 * identity for use_identity_as_username and rules. */
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "hooks.h"
#include "log.h"
#include "transport.h"
#include "util/alloc.h"

/* The largest TLS record's plaintext: one SSL_write per record. */
#define TLS_RECORD_MAX 16384

struct tls_server {
    const struct config_listener *cfg;
    SSL_CTX *ctx;
};

struct tls_layer {
    struct transport t; /* first: the transport head */
    SSL *ssl;
    char *subject, *issuer, *identity; /* filled by peer_info on first use */
    struct hooks_tls peer;
    char addr[INET6_ADDRSTRLEN]; /* the client's (PROXY-given if so), for log lines */
    bool peer_ready;
    bool handshake_done;
    bool failed;   /* a fatal TLS error: no close_notify */
    bool shut;     /* close_notify sent (or given up) */
    bool deferred; /* a read ended after returning bytes: its result comes next time */
    int8_t deferred_res;
    const char *deferred_why;
};

/* ---- the server context ---- */

/* The reason of OpenSSL's first queued error (a static string; the first is the specific one:
 * "bad base64 decode" before "PEM lib"), for messages. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown OpenSSL error";
}

/* An encrypted key would make OpenSSL prompt on the terminal: refuse it instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return 0;
}

/* Checks that path can be opened for reading, for a plain "cannot read" message (OpenSSL's own
 * text for a missing file names only a system library). */
static bool readable(const char *what, const char *path, char *why, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, len, "%s %s: cannot read: %s", what, path, strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

static int min_version(const char *tls_version)
{
    if (tls_version && !strcmp(tls_version, "tlsv1.3"))
        return TLS1_3_VERSION;
    if (tls_version && !strcmp(tls_version, "tlsv1.1"))
        return TLS1_1_VERSION;
    return TLS1_2_VERSION; /* unset: TLS 1.2 and 1.3, as Mosquitto 2.0 */
}

static bool load_crl(SSL_CTX *ctx, const char *crlfile, char *why, size_t len)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (!lookup || X509_load_crl_file(lookup, crlfile, X509_FILETYPE_PEM) <= 0) {
        snprintf(why, len, "crlfile %s: %s", crlfile, ssl_reason());
        return false;
    }
    /* the client certificate's issuer must have a CRL in it ("unable to get certificate CRL"
     * otherwise), as in Mosquitto */
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    return true;
}

static void warn_if_expired(SSL_CTX *ctx, const struct config_listener *l)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (cert && X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
        log_warn("tls",
                 "listener %u: the certificate in certfile %s has expired: clients will "
                 "refuse it",
                 (unsigned)l->port, l->certfile);
}

/* Builds a context for l, or returns NULL with why filled ("<setting> <value>: <reason>"). */
static SSL_CTX *build_ctx(const struct config_listener *l, char *why, size_t len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(why, len, "cannot create a TLS context: %s", ssl_reason());
        return NULL;
    }
    int min = min_version(l->tls_version);
    if (!SSL_CTX_set_min_proto_version(ctx, min) ||
        (min < TLS1_2_VERSION && SSL_CTX_get_security_level(ctx) > 0)) {
        /* config_finish refuses this first; kept for a context built another way */
        snprintf(why, len, "tls_version %s: OpenSSL's security level %d does not allow it",
                 l->tls_version, SSL_CTX_get_security_level(ctx));
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* partial writes: one record per SSL_write; moving buffer: a retry after WANT_WRITE passes
     * the same bytes from wherever the output evbuffer keeps them now; release buffers: an idle
     * connection holds no 16 KiB record buffers */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* no server-side session cache (it would grow with connections); stateless tickets still
     * resume sessions */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (l->ciphers && !SSL_CTX_set_cipher_list(ctx, l->ciphers)) {
        snprintf(why, len, "ciphers %s: %s", l->ciphers, ssl_reason());
        goto fail;
    }
    if (l->ciphers_tls13 && !SSL_CTX_set_ciphersuites(ctx, l->ciphers_tls13)) {
        snprintf(why, len, "ciphers_tls1.3 %s: %s", l->ciphers_tls13, ssl_reason());
        goto fail;
    }
    if (!readable("certfile", l->certfile, why, len) || !readable("keyfile", l->keyfile, why, len))
        goto fail;
    if (SSL_CTX_use_certificate_chain_file(ctx, l->certfile) != 1) {
        snprintf(why, len, "certfile %s: %s", l->certfile, ssl_reason());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, l->keyfile, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(why, len, "keyfile %s does not match certfile %s", l->keyfile, l->certfile);
        else
            snprintf(why, len, "keyfile %s: %s", l->keyfile, ssl_reason());
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(why, len, "keyfile %s does not match certfile %s", l->keyfile, l->certfile);
        goto fail;
    }
    if (l->cafile && !readable("cafile", l->cafile, why, len))
        goto fail;
    if ((l->cafile || l->capath) && SSL_CTX_load_verify_locations(ctx, l->cafile, l->capath) != 1) {
        snprintf(why, len, "%s %s: %s", l->cafile ? "cafile" : "capath",
                 l->cafile ? l->cafile : l->capath, ssl_reason());
        goto fail;
    }
    if (l->cafile) {
        /* tells clients which CAs we accept, so they pick the right certificate */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(l->cafile);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    if (l->crlfile &&
        (!readable("crlfile", l->crlfile, why, len) || !load_crl(ctx, l->crlfile, why, len)))
        goto fail;
    if (l->require_certificate) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        /* a resumed session is not verified again: with tickets a client could come back for
         * hours on a certificate that has since expired, or been revoked by a reloaded CRL.
         * With the session cache off this means every mTLS connection is a full handshake. */
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    static const unsigned char sid_ctx[] = "tidemq";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

struct tls_server *tls_server_new(const struct config_listener *l)
{
    char why[512];
    SSL_CTX *ctx = build_ctx(l, why, sizeof why);
    if (!ctx) {
        log_error("tls", "%s:%d: listener %u: %s", l->file ? l->file : "-", l->line,
                  (unsigned)l->port, why);
        return NULL;
    }
    warn_if_expired(ctx, l);
    struct tls_server *ts = xcalloc(1, sizeof *ts);
    ts->cfg = l;
    ts->ctx = ctx;
    log_info("tls", "listener %u: TLS certfile=%s min_version=%s client_certificates=%s",
             (unsigned)l->port, l->certfile, l->tls_version ? l->tls_version : "tlsv1.2",
             l->require_certificate ? "required" : "not requested");
    return ts;
}

int tls_server_reload(struct tls_server *ts)
{
    const struct config_listener *l = ts->cfg;
    char why[512];
    SSL_CTX *ctx = build_ctx(l, why, sizeof why);
    if (!ctx) {
        log_error("tls", "listener %u: certificates not reloaded, still serving the old ones: %s",
                  (unsigned)l->port, why);
        return -1;
    }
    warn_if_expired(ctx, l);
    SSL_CTX_free(ts->ctx); /* connections accepted with it hold their own reference */
    ts->ctx = ctx;
    log_notice("tls", "listener %u: certificates reloaded certfile=%s", (unsigned)l->port,
               l->certfile);
    return 0;
}

void tls_server_free(struct tls_server *ts)
{
    if (!ts)
        return;
    SSL_CTX_free(ts->ctx);
    free(ts);
}

/* ---- the transport layer ---- */

static const struct transport_ops tls_ops;

/* Logs once, when the handshake has just finished. */
static void note_handshake(struct tls_layer *tl)
{
    if (tl->handshake_done || !SSL_is_init_finished(tl->ssl))
        return;
    tl->handshake_done = true;
    if (!(log_mask & LOG_DEBUG))
        return;
    const struct hooks_tls *p = tls_peer(&tl->t);
    log_debug("tls", "handshake done addr=%s protocol=%s cipher=%s client_cert=%s verified=%d",
              tl->addr, SSL_get_version(tl->ssl), SSL_get_cipher_name(tl->ssl),
              p && *p->subject ? p->subject : "-", p ? p->verified : 0);
}

/* Maps a failed SSL_read/SSL_write (result r) to a transport result; logs fatal TLS errors. */
static ssize_t ssl_failure(struct tls_layer *tl, int r, const char **why)
{
    int e = SSL_get_error(tl->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return TRANSPORT_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TRANSPORT_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return 0; /* close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF) */
    case SSL_ERROR_SYSCALL:
        tl->failed = true;
        ERR_clear_error();
        *why = "socket error";
        return TRANSPORT_ERROR;
    default:
        break;
    }
    tl->failed = true;
    long verify = SSL_get_verify_result(tl->ssl);
    const char *reason = ssl_reason();
    if (!tl->handshake_done) {
        /* a refused client certificate shows here: say which check refused it */
        log_notice("tls", "TLS handshake failed addr=%s reason=%s%s%s", tl->addr, reason,
                   verify != X509_V_OK ? " certificate=" : "",
                   verify != X509_V_OK ? X509_verify_cert_error_string(verify) : "");
        *why = "TLS handshake failed";
    } else {
        log_info("tls", "TLS error addr=%s reason=%s", tl->addr, reason);
        *why = "TLS error";
    }
    ERR_clear_error();
    return TRANSPORT_ERROR;
}

static ssize_t tls_read(struct transport *t, void *buf, size_t len, const char **why)
{
    struct tls_layer *tl = (struct tls_layer *)t;
    size_t got = 0;
    if (tl->deferred) {
        tl->deferred = false;
        *why = tl->deferred_why;
        return tl->deferred_res;
    }
    /* SSL_read returns one record at a time: fill buf so that "fewer than len" means "nothing
     * more now" (transport.h's buffering contract) */
    while (got < len) {
        size_t ask = len - got < INT_MAX ? len - got : INT_MAX;
        ERR_clear_error();
        int r = SSL_read(tl->ssl, (char *)buf + got, (int)ask);
        note_handshake(tl);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        ssize_t res = ssl_failure(tl, r, why);
        if (got && (res == 0 || res == TRANSPORT_ERROR)) {
            /* the bytes first; the end or the error on the next call */
            tl->deferred = true;
            tl->deferred_res = (int8_t)res;
            tl->deferred_why = *why;
        }
        return got ? (ssize_t)got : res;
    }
    return (ssize_t)got;
}

static ssize_t tls_write(struct transport *t, struct evbuffer *out, const char **why)
{
    struct tls_layer *tl = (struct tls_layer *)t;
    size_t len = evbuffer_get_length(out);
    if (len == 0)
        return TRANSPORT_WANT_WRITE; /* not called so: TLS keeps nothing of its own */
    size_t n = len < TLS_RECORD_MAX ? len : TLS_RECORD_MAX;
    /* a record's plaintext contiguous: a copy only when it spans chains (small packets, or a
     * packet head and its shared payload); a retry after WANT_WRITE gets at least these bytes */
    unsigned char *p = evbuffer_pullup(out, (ev_ssize_t)n);
    if (!p) {
        *why = "out of memory";
        return TRANSPORT_ERROR;
    }
    ERR_clear_error();
    int r = SSL_write(tl->ssl, p, (int)n);
    note_handshake(tl);
    if (r > 0) {
        evbuffer_drain(out, (size_t)r);
        return r;
    }
    ssize_t res = ssl_failure(tl, r, why);
    if (res == 0) {
        *why = "closed by peer";
        return TRANSPORT_ERROR;
    }
    return res;
}

static void tls_shutdown(struct transport *t)
{
    struct tls_layer *tl = (struct tls_layer *)t;
    if (tl->shut)
        return;
    tl->shut = true;
    if (tl->failed || !SSL_is_init_finished(tl->ssl))
        return;
    /* one non-blocking attempt: close_notify goes out unless the send queue is full */
    ERR_clear_error();
    SSL_shutdown(tl->ssl);
    ERR_clear_error();
}

static void tls_free(struct transport *t)
{
    struct tls_layer *tl = (struct tls_layer *)t;
    SSL_free(tl->ssl); /* the socket BIO does not close the fd: the conn does */
    free(tl->subject);
    free(tl->issuer);
    free(tl->identity);
    free(tl);
}

/* The end or an error that followed the bytes the last read returned. */
static bool tls_has_input(const struct transport *t)
{
    return ((const struct tls_layer *)t)->deferred;
}

static const struct transport_ops tls_ops = {
    .name = "tls",
    .has_input = tls_has_input,
    .read = tls_read,
    .write = tls_write,
    .pending_out = NULL,
    .shutdown = tls_shutdown,
    .free = tls_free,
};

struct transport *tls_transport_new(struct tls_server *ts, int fd, const char *addr)
{
    SSL *ssl = SSL_new(ts->ctx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        log_warn("tls", "cannot create a TLS connection: %s", ssl_reason());
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    struct tls_layer *tl = xcalloc(1, sizeof *tl);
    tl->t.ops = &tls_ops;
    tl->t.fd = fd;
    tl->ssl = ssl;
    snprintf(tl->addr, sizeof tl->addr, "%s", addr);
    return &tl->t;
}

/* ---- the client's certificate ---- */

/* One-line RFC 2253 text of name (malloc'd). */
static char *name_text(X509_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (bio && X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        char *p;
        long n = BIO_get_mem_data(bio, &p);
        out = xmalloc((size_t)n + 1);
        memcpy(out, p, (size_t)n);
        out[n] = '\0';
    }
    BIO_free(bio);
    return out ? out : xstrdup("");
}

/* The first CN of name as UTF-8 (malloc'd), or NULL (none, or one with a NUL inside). */
static char *common_name(X509_NAME *name)
{
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i < 0)
        return NULL;
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
    char *out = NULL;
    if (n > 0 && memchr(utf8, '\0', (size_t)n) == NULL) {
        out = xmalloc((size_t)n + 1);
        memcpy(out, utf8, (size_t)n);
        out[n] = '\0';
    }
    OPENSSL_free(utf8);
    return out;
}

static void peer_info(struct tls_layer *tl)
{
    /* Formatting names can queue OpenSSL errors (an odd-length BMPString...); this runs between
     * SSL_read/SSL_write and SSL_get_error (note_handshake), whose answer they would change: the
     * mark puts the error queue back as it was. */
    ERR_set_mark();
    tl->peer_ready = true;
    X509 *cert = SSL_get0_peer_certificate(tl->ssl);
    /* without SSL_VERIFY_PEER no certificate was asked for, and a verify result of "ok" would
     * mean nothing */
    tl->peer.verified = cert && (SSL_get_verify_mode(tl->ssl) & SSL_VERIFY_PEER) &&
                        SSL_get_verify_result(tl->ssl) == X509_V_OK;
    tl->subject = cert ? name_text(X509_get_subject_name(cert)) : xstrdup("");
    tl->issuer = cert ? name_text(X509_get_issuer_name(cert)) : xstrdup("");
    if (tl->peer.verified)
        tl->identity = common_name(X509_get_subject_name(cert));
    tl->peer.subject = tl->subject;
    tl->peer.issuer = tl->issuer;
    ERR_pop_to_mark();
}

static struct tls_layer *finished_layer(struct transport *t)
{
    struct tls_layer *tl = (struct tls_layer *)transport_find(t, &tls_ops);
    if (!tl || !SSL_is_init_finished(tl->ssl))
        return NULL;
    if (!tl->peer_ready)
        peer_info(tl);
    return tl;
}

const struct hooks_tls *tls_peer(struct transport *t)
{
    struct tls_layer *tl = finished_layer(t);
    return tl ? &tl->peer : NULL;
}

const char *tls_peer_identity(struct transport *t)
{
    struct tls_layer *tl = finished_layer(t);
    return tl ? tl->identity : NULL;
}
