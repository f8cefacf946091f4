/* The WebSocket opening handshake, server side (RFC 6455 4.2): a bounded HTTP/1.1 request parser
 * that checks only what the upgrade needs, Sec-WebSocket-Accept from the key, and the answers.
 * Pure: no I/O, no allocation, no logging. Bare LF line ends are accepted as picohttpparser
 * does; obsolete header folding is not. */
#include "ws_handshake.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/crypto.h"
#include "util/err.h"

/* RFC 6455 1.3: appended to the client's key before hashing. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* The key is base64 of 16 random bytes (RFC 6455 4.1). */
#define WS_KEY_BYTES 16

struct text {
    const char *p;
    size_t len;
};

static bool text_is(struct text t, const char *s)
{
    return t.len == strlen(s) && memcmp(t.p, s, t.len) == 0;
}

static bool text_is_nocase(struct text t, const char *s)
{
    return t.len == strlen(s) && strncasecmp(t.p, s, t.len) == 0;
}

static bool is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

static struct text trim(struct text t)
{
    while (t.len && is_ows(t.p[0])) {
        t.p++;
        t.len--;
    }
    while (t.len && is_ows(t.p[t.len - 1]))
        t.len--;
    return t;
}

/* RFC 7230 tchar */
static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Takes the next element of a comma-separated list (RFC 7230 7: empty elements are skipped)
 * from *rest into *item; false when there is none left. */
static bool list_next(struct text *rest, struct text *item)
{
    while (rest->len) {
        const char *comma = memchr(rest->p, ',', rest->len);
        size_t n = comma ? (size_t)(comma - rest->p) : rest->len;
        *item = trim((struct text){rest->p, n});
        rest->p += comma ? n + 1 : n;
        rest->len -= comma ? n + 1 : n;
        if (item->len)
            return true;
    }
    return false;
}

static bool list_has_nocase(struct text list, const char *token)
{
    struct text item;
    while (list_next(&list, &item))
        if (text_is_nocase(item, token))
            return true;
    return false;
}

/* What the request said, as far as the upgrade is concerned. */
struct request {
    bool bad_line; /* a header line that is not "name: value" */
    bool host, upgrade, connection;
    int version_seen; /* Sec-WebSocket-Version lines: 0 none, 1 all "13", -1 another value */
    int keys;         /* Sec-WebSocket-Key lines */
    struct text key;
    const char *subprotocol;
};

static void header(struct request *r, struct text name, struct text value)
{
    if (text_is_nocase(name, "host")) {
        r->host = true;
    } else if (text_is_nocase(name, "upgrade")) {
        r->upgrade |= list_has_nocase(value, "websocket");
    } else if (text_is_nocase(name, "connection")) {
        r->connection |= list_has_nocase(value, "upgrade");
    } else if (text_is_nocase(name, "sec-websocket-version")) {
        r->version_seen = (r->version_seen >= 0 && text_is(value, "13")) ? 1 : -1;
    } else if (text_is_nocase(name, "sec-websocket-key")) {
        r->keys++;
        r->key = value;
    } else if (text_is_nocase(name, "sec-websocket-protocol") && !r->subprotocol) {
        /* the client's order is its preference: the first one we speak wins */
        struct text item;
        while (!r->subprotocol && list_next(&value, &item)) {
            if (text_is(item, "mqtt"))
                r->subprotocol = "mqtt";
            else if (text_is(item, "mqttv3.1"))
                r->subprotocol = "mqttv3.1";
        }
    }
}

/* Splits "name: value" (no whitespace before the colon, RFC 7230 3.2.4). */
static bool split_header(struct text line, struct text *name, struct text *value)
{
    const char *colon = memchr(line.p, ':', line.len);
    if (!colon || colon == line.p)
        return false;
    *name = (struct text){line.p, (size_t)(colon - line.p)};
    for (size_t i = 0; i < name->len; i++)
        if (!is_tchar((unsigned char)name->p[i]))
            return false;
    *value = trim((struct text){colon + 1, line.len - name->len - 1});
    return true;
}

/* "GET /path HTTP/1.1": sets *get and *http11; false if it is not a request line at all. */
static bool request_line(struct text line, bool *get, bool *http11)
{
    const char *sp1 = memchr(line.p, ' ', line.len);
    if (!sp1 || sp1 == line.p)
        return false;
    struct text method = {line.p, (size_t)(sp1 - line.p)};
    const char *rest = sp1 + 1;
    size_t rest_len = line.len - method.len - 1;
    const char *sp2 = memchr(rest, ' ', rest_len);
    if (!sp2 || sp2 == rest)
        return false;
    struct text version = {sp2 + 1, rest_len - (size_t)(sp2 - rest) - 1};
    for (size_t i = 0; i < method.len; i++)
        if (!is_tchar((unsigned char)method.p[i]))
            return false;
    if (version.len != 8 || memcmp(version.p, "HTTP/", 5) != 0 || version.p[6] != '.' ||
        version.p[5] < '0' || version.p[5] > '9' || version.p[7] < '0' || version.p[7] > '9')
        return false;
    *get = text_is(method, "GET");
    /* RFC 6455 4.1: HTTP/1.1 or higher */
    *http11 = version.p[5] > '1' || (version.p[5] == '1' && version.p[7] >= '1');
    return true;
}

static int refuse(struct ws_handshake *h, int status, const char *reason, int rc)
{
    h->status = status;
    h->reason = reason;
    return rc;
}

/* Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) (RFC 6455 4.2.2 item 5.4). */
static int accept_key(struct text key, struct ws_handshake *h)
{
    unsigned char raw[WS_KEY_BYTES + 2], digest[CRYPTO_SHA1_LEN];
    size_t n;
    if (key.len != CRYPTO_BASE64_LEN(WS_KEY_BYTES) ||
        crypto_base64_decode(key.p, key.len, raw, sizeof raw, &n) != 0 || n != WS_KEY_BYTES)
        return refuse(h, 400, "bad Sec-WebSocket-Key", 0);
    if (crypto_sha1(key.p, key.len, WS_GUID, strlen(WS_GUID), digest) != 0)
        return refuse(h, 500, "cannot hash the key", TIDE_EIO);
    crypto_base64_encode(digest, sizeof digest, h->accept, sizeof h->accept);
    return 0;
}

/* Finds the end of the headers: returns the length through the empty line, 0 if it has not come
 * yet, or TIDE_EMALFORMED at a byte no HTTP request contains (a control byte, a lone CR). */
static int find_end(const uint8_t *p, size_t len, size_t *end)
{
    size_t line_start = 0;
    *end = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = p[i];
        if ((ch < 0x20 && ch != '\t' && ch != '\r' && ch != '\n') || ch == 0x7f)
            return TIDE_EMALFORMED;
        if (ch == '\r' && i + 1 < len && p[i + 1] != '\n')
            return TIDE_EMALFORMED;
        if (ch != '\n')
            continue;
        size_t line_len = i - line_start - (i > line_start && p[i - 1] == '\r');
        if (line_len == 0) {
            if (line_start == 0)
                return TIDE_EMALFORMED; /* no request line */
            *end = i + 1;
            return 0;
        }
        line_start = i + 1;
    }
    return 0;
}

int ws_handshake_parse(const uint8_t *p, size_t len, struct ws_handshake *h)
{
    memset(h, 0, sizeof *h);
    size_t end;
    if (len > WS_HANDSHAKE_MAX)
        len = WS_HANDSHAKE_MAX;
    if (find_end(p, len, &end) < 0)
        return refuse(h, 400, "not an HTTP request", TIDE_EMALFORMED);
    if (!end)
        return len < WS_HANDSHAKE_MAX ? TIDE_EPARTIAL
                                      : refuse(h, 431, "request headers too large", TIDE_ETOOBIG);

    struct request r = {0};
    bool get = false, http11 = false, first = true;
    const char *s = (const char *)p;
    for (size_t pos = 0; pos < end;) {
        const char *nl = memchr(s + pos, '\n', end - pos);
        struct text line = {s + pos, (size_t)(nl - (s + pos))};
        pos += line.len + 1;
        if (line.len && line.p[line.len - 1] == '\r')
            line.len--;
        if (!line.len)
            break;
        if (first) {
            first = false;
            if (!request_line(line, &get, &http11))
                return refuse(h, 400, "malformed request line", (int)end);
            continue;
        }
        struct text name, value;
        if (is_ows(line.p[0]) || !split_header(line, &name, &value))
            r.bad_line = true; /* obs-fold or garbage */
        else
            header(&r, name, value);
    }
    if (r.bad_line)
        return refuse(h, 400, "malformed header line", (int)end);
    if (!get)
        return refuse(h, 405, "only GET can upgrade to a WebSocket", (int)end);
    if (!http11)
        return refuse(h, 400, "HTTP/1.1 or later required", (int)end);
    if (!r.host)
        return refuse(h, 400, "missing Host", (int)end);
    if (!r.upgrade || !r.connection)
        return refuse(h, 426, "this port speaks MQTT over WebSocket only: upgrade required",
                      (int)end);
    if (r.version_seen != 1)
        return refuse(h, 426, "Sec-WebSocket-Version 13 required", (int)end);
    if (r.keys != 1)
        return refuse(h, 400,
                      r.keys ? "more than one Sec-WebSocket-Key" : "missing Sec-WebSocket-Key",
                      (int)end);
    if (!r.subprotocol)
        return refuse(h, 400, "Sec-WebSocket-Protocol must offer mqtt", (int)end);
    int rc = accept_key(r.key, h);
    if (rc < 0 || h->status)
        return rc < 0 ? rc : (int)end;
    h->status = 101;
    h->reason = "upgrade";
    h->subprotocol = r.subprotocol;
    return (int)end;
}

static const char *status_text(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 400:
        return "Bad Request";
    case 405:
        return "Method Not Allowed";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    default:
        return "Internal Server Error";
    }
}

size_t ws_handshake_response(const struct ws_handshake *h, char *out, size_t cap)
{
    int n;
    if (h->status == 101) {
        n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: %s\r\n"
                     "\r\n",
                     h->accept, h->subprotocol);
    } else {
        /* 426 names what to upgrade to (RFC 7231 6.5.15) and the version we speak (RFC 6455
         * 4.4); 405 names the method we allow (RFC 7231 6.5.5) */
        const char *extra = h->status == 426   ? "Upgrade: websocket\r\n"
                                                 "Sec-WebSocket-Version: 13\r\n"
                            : h->status == 405 ? "Allow: GET\r\n"
                                               : "";
        const char *reason = h->reason ? h->reason : "";
        n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\n"
                     "%s"
                     "Connection: close\r\n"
                     "Content-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n"
                     "\r\n"
                     "%s\n",
                     h->status, status_text(h->status), extra, strlen(reason) + 1, reason);
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
