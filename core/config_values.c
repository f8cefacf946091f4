/* The value syntax of config directives: integers, sizes, booleans, tidemq's durations,
 * Mosquitto's persistent_client_expiration, and networks for proxy_trusted. Pure: no I/O, no
 * allocation; the caller (config.c) words the error. */
#include "config_internal.h"

#include "config.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

/* Reads leading decimal digits into *v (overflow -> false); *end gets the first non-digit. */
static bool digits(const char *s, uint64_t *v, const char **end)
{
    uint64_t n = 0;
    const char *p = s;

    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
        p++;
    }
    if (p == s)
        return false;
    *v = n;
    *end = p;
    return true;
}

bool config_parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    uint64_t v;
    const char *end;

    if (!digits(s, &v, &end) || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool config_parse_size(const char *s, uint64_t hi, uint64_t *out)
{
    uint64_t v, mul = 1;
    const char *end;

    if (!digits(s, &v, &end))
        return false;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mul = 1024;
        break;
    case 'm':
    case 'M':
        mul = 1024 * 1024;
        break;
    case 'g':
    case 'G':
        mul = 1024 * 1024 * 1024;
        break;
    default:
        return false;
    }
    if (*end && end[1])
        return false;
    if (v > hi / mul)
        return false;
    *out = v * mul;
    return true;
}

bool config_parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "1")) {
        *out = true;
        return true;
    }
    if (!strcmp(s, "false") || !strcmp(s, "0")) {
        *out = false;
        return true;
    }
    return false;
}

int config_parse_duration_ms(const char *s, uint64_t hi_ms, uint64_t *out_ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {
        {"ms", 1},      {"s", 1000},     {"min", 60000},
        {"h", 3600000}, {"d", 86400000}, {"w", 7 * 86400000ULL},
    };
    uint64_t v;
    const char *end;

    if (!digits(s, &v, &end))
        return CONFIG_DUR_BAD;
    if (!strcmp(end, "m"))
        return CONFIG_DUR_MINUTE_M;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit))
            continue;
        if (v > hi_ms / units[i].ms)
            return CONFIG_DUR_BAD;
        *out_ms = v * units[i].ms;
        return 0;
    }
    return CONFIG_DUR_BAD;
}

bool config_parse_expiration(const char *s, uint64_t *out_s)
{
    uint64_t v, mul;
    const char *end;

    if (!digits(s, &v, &end) || v == 0 || !*end || end[1])
        return false;
    switch (*end) {
    case 'h':
        mul = 3600;
        break;
    case 'd':
        mul = 86400;
        break;
    case 'w':
        mul = 86400 * 7;
        break;
    case 'm': /* Mosquitto: a month of 30 days */
        mul = 86400 * 30;
        break;
    case 'y':
        mul = 86400 * 365;
        break;
    default:
        return false;
    }
    /* Mosquitto stores it in a time_t after an int multiply; keep within 100 years */
    if (v > (100ULL * 365 * 86400) / mul)
        return false;
    *out_s = v * mul;
    return true;
}

bool config_parse_net(const char *s, struct config_proxy_net *out)
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
    uint64_t prefix, max;

    if (hlen == 0 || hlen >= sizeof(host))
        return false;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return false;
    }
    prefix = max;
    if (slash && !config_parse_uint(slash + 1, 0, max, &prefix))
        return false;
    out->prefix = (uint8_t)prefix;
    for (unsigned bit = (unsigned)prefix; bit < max; bit++) {
        if (out->addr[bit / 8] & (0x80u >> (bit % 8)))
            return false;
    }
    return true;
}
