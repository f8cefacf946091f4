/* PROXY protocol v1/v2 header framing and decoding (see proxy_header.h). */
#include "proxy_header.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "util/err.h"

static const uint8_t v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_prefix[] = "PROXY ";
#define V1_PREFIX_LEN (sizeof v1_prefix - 1)
#define V2_FIXED 16

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static int fail(const char **why, const char *reason, int code)
{
    *why = reason;
    return code;
}

static int v1_length(const uint8_t *p, size_t n, const char **why)
{
    if (memcmp(p, v1_prefix, min_size(n, V1_PREFIX_LEN)) != 0)
        return fail(why, "not a PROXY header", TIDE_EMALFORMED);
    size_t scan = min_size(n, PROXY_V1_MAX);
    for (size_t i = 0; i < scan; i++) {
        if (p[i] == '\n') {
            if (i == 0 || p[i - 1] != '\r')
                return fail(why, "v1 line not ended by CRLF", TIDE_EMALFORMED);
            return (int)(i + 1);
        }
    }
    if (n >= PROXY_V1_MAX)
        return fail(why, "v1 header longer than 107 bytes", TIDE_ETOOBIG);
    return TIDE_EPARTIAL;
}

static int v2_length(const uint8_t *p, size_t n, const char **why)
{
    if (memcmp(p, v2_signature, min_size(n, sizeof v2_signature)) != 0)
        return fail(why, "not a PROXY header", TIDE_EMALFORMED);
    if (n < V2_FIXED)
        return TIDE_EPARTIAL;
    if (p[12] >> 4 != 2)
        return fail(why, "v2 header of an unknown version", TIDE_EMALFORMED);
    size_t total = V2_FIXED + ((size_t)p[14] << 8 | p[15]);
    if (total > PROXY_HEADER_MAX)
        return fail(why, "v2 header longer than the bound", TIDE_ETOOBIG);
    return (int)total;
}

int proxy_header_length(const uint8_t *p, size_t n, const char **why)
{
    if (n == 0)
        return TIDE_EPARTIAL;
    if (p[0] == v1_prefix[0])
        return v1_length(p, n, why);
    if (p[0] == v2_signature[0])
        return v2_length(p, n, why);
    return fail(why, "not a PROXY header", TIDE_EMALFORMED);
}

/* Splits the next space-terminated token off *s (which ends at end) into tok (NUL-terminated,
 * at most cap - 1 bytes). Fields are separated by exactly one space, as the spec writes them. */
static bool next_token(const char **s, const char *end, char *tok, size_t cap)
{
    const char *sp = memchr(*s, ' ', (size_t)(end - *s));
    const char *stop = sp ? sp : end;
    size_t len = (size_t)(stop - *s);
    if (len == 0 || len >= cap)
        return false;
    memcpy(tok, *s, len);
    tok[len] = '\0';
    *s = sp ? sp + 1 : end;
    return true;
}

/* A port: 1 to 5 decimal digits, 0..65535. */
static bool parse_port(const char *s, uint16_t *out)
{
    size_t len = strlen(s);
    if (len == 0 || len > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static int v1_decode(const uint8_t *p, size_t n, struct proxy_header *out, const char **why)
{
    const char *s = (const char *)p + V1_PREFIX_LEN;
    const char *end = (const char *)p + n - 2; /* before the CRLF */
    char proto[8], src[48], dst[48], sport[8], dport[8];
    uint8_t scratch[16];
    uint16_t ignored;

    out->version = 1;
    if (!next_token(&s, end, proto, sizeof proto))
        return fail(why, "v1 header without a protocol", TIDE_EMALFORMED);
    if (strcmp(proto, "UNKNOWN") == 0) {
        out->local = true; /* the rest of the line may be anything: the spec says to ignore it */
        return 0;
    }
    int af = strcmp(proto, "TCP4") == 0 ? AF_INET : strcmp(proto, "TCP6") == 0 ? AF_INET6 : 0;
    if (!af)
        return fail(why, "v1 protocol is not TCP4, TCP6 or UNKNOWN", TIDE_EMALFORMED);
    if (!next_token(&s, end, src, sizeof src) || !next_token(&s, end, dst, sizeof dst) ||
        !next_token(&s, end, sport, sizeof sport) || !next_token(&s, end, dport, sizeof dport) ||
        s != end)
        return fail(why, "v1 header does not have four address fields", TIDE_EMALFORMED);
    if (inet_pton(af, src, out->addr) != 1 || inet_pton(af, dst, scratch) != 1)
        return fail(why, "v1 address does not match its protocol", TIDE_EMALFORMED);
    if (!parse_port(sport, &out->port) || !parse_port(dport, &ignored))
        return fail(why, "v1 port is not a number from 0 to 65535", TIDE_EMALFORMED);
    out->family = (uint8_t)af;
    return 0;
}

static int v2_decode(const uint8_t *p, size_t n, struct proxy_header *out, const char **why)
{
    size_t len = n - V2_FIXED;
    unsigned command = p[12] & 0x0F, family = p[13] >> 4, transport = p[13] & 0x0F;

    out->version = 2;
    if (command > 1)
        return fail(why, "v2 command is neither LOCAL nor PROXY", TIDE_EMALFORMED);
    if (family > 3 || transport > 2)
        return fail(why, "v2 address family or transport unknown", TIDE_EMALFORMED);
    /* LOCAL: the balancer speaking for itself; UNSPEC, UNIX and DGRAM carry nothing usable for
     * a TCP client: the spec has the receiver keep the connection's own addresses */
    if (command == 0 || transport != 1 || (family != 1 && family != 2)) {
        out->local = true;
        return 0;
    }
    const uint8_t *a = p + V2_FIXED;
    size_t alen = family == 1 ? 4 : 16;
    if (len < 2 * alen + 4) /* source, destination, two ports */
        return fail(why, "v2 header too short for its addresses", TIDE_EMALFORMED);
    memcpy(out->addr, a, alen);
    out->port = (uint16_t)(a[2 * alen] << 8 | a[2 * alen + 1]);
    out->family = family == 1 ? AF_INET : AF_INET6;
    /* TLVs after the addresses are skipped: nothing in them changes who the client is */
    return 0;
}

int proxy_header_decode(const uint8_t *p, size_t n, struct proxy_header *out, const char **why)
{
    memset(out, 0, sizeof *out);
    if (n >= V2_FIXED && memcmp(p, v2_signature, sizeof v2_signature) == 0)
        return v2_decode(p, n, out, why);
    if (n >= V1_PREFIX_LEN + 2 && memcmp(p, v1_prefix, V1_PREFIX_LEN) == 0 && p[n - 2] == '\r' &&
        p[n - 1] == '\n')
        return v1_decode(p, n, out, why);
    return fail(why, "not a PROXY header", TIDE_EMALFORMED);
}
