/* Topic names and filters: validation (MQTT §4.7), "$share/G/F" parsing (§4.8.2) and matching of
 * one filter against one name. Owns nothing. Pure: no allocation, no I/O, no logging; strings are
 * (pointer, length) and never read past len. */
#include "topic.h"

#include "util/buf.h"

#include <string.h>

#include "util/err.h"

#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN (sizeof(SHARE_PREFIX) - 1)
#define TOPIC_MAX_LEN 65535u

/* End of the level that starts at i: the index of the next '/' or len. */
static size_t level_end(const char *s, size_t i, size_t len)
{
    const char *p = memchr(s + i, '/', len - i);
    return p ? (size_t)(p - s) : len;
}

int topic_validate_name(const char *t, size_t len)
{
    /* [MQTT-4.7.3-1] at least one character; [MQTT-4.7.3-3] at most 65535 bytes */
    if (len == 0 || len > TOPIC_MAX_LEN)
        return TIDE_ETOPIC;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        /* [MQTT-3.3.2-2] [MQTT-4.7.1-1] no wildcards in a name; [MQTT-4.7.3-2] no U+0000 */
        if (c == '+' || c == '#' || c == '\0')
            return TIDE_ETOPIC;
    }
    return 0;
}

int topic_validate_filter(const char *f, size_t len)
{
    if (len == 0 || len > TOPIC_MAX_LEN) /* [MQTT-4.7.3-1] [MQTT-4.7.3-3] */
        return TIDE_ETOPIC;
    /* a shared filter reaching here was not split by topic_parse_shared (or is nested) */
    if (len >= SHARE_PREFIX_LEN && memcmp(f, SHARE_PREFIX, SHARE_PREFIX_LEN) == 0)
        return TIDE_ETOPIC;
    size_t i = 0;
    for (;;) {
        size_t e = level_end(f, i, len);
        for (size_t k = i; k < e; k++) {
            char c = f[k];
            if (c == '\0') /* [MQTT-4.7.3-2] */
                return TIDE_ETOPIC;
            /* [MQTT-4.7.1-3] '+' occupies a whole level */
            if (c == '+' && e - i != 1)
                return TIDE_ETOPIC;
            /* [MQTT-4.7.1-2] '#' is a whole level and the last one */
            if (c == '#' && (e - i != 1 || e != len))
                return TIDE_ETOPIC;
        }
        if (e == len)
            return 0;
        i = e + 1;
    }
}

int topic_parse_shared(const char *f, size_t len, const char **group, size_t *group_len,
                       const char **filter, size_t *filter_len)
{
    if (len < SHARE_PREFIX_LEN || memcmp(f, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
        return 0;
    const char *g = f + SHARE_PREFIX_LEN;
    size_t rest = len - SHARE_PREFIX_LEN;
    const char *slash = memchr(g, '/', rest);
    if (!slash)
        return TIDE_ETOPIC; /* no filter after the group */
    size_t glen = (size_t)(slash - g);
    if (glen == 0) /* [MQTT-4.8.2-1] ShareName at least one character */
        return TIDE_ETOPIC;
    for (size_t i = 0; i < glen; i++) {
        /* [MQTT-4.8.2-2] ShareName has no '/', '+' or '#' ('/' ends it by construction) */
        if (g[i] == '+' || g[i] == '#' || g[i] == '\0')
            return TIDE_ETOPIC;
    }
    const char *flt = slash + 1;
    size_t flen = rest - glen - 1;
    if (topic_validate_filter(flt, flen) != 0)
        return TIDE_ETOPIC;
    *group = g;
    *group_len = glen;
    *filter = flt;
    *filter_len = flen;
    return 1;
}

bool topic_matches(const char *f, size_t flen, const char *t, size_t tlen)
{
    /* [MQTT-4.7.2-1] a leading wildcard never matches a name starting with '$' */
    if (tlen > 0 && t[0] == '$' && flen > 0 && (f[0] == '+' || f[0] == '#'))
        return false;
    size_t i = 0, j = 0;
    for (;;) {
        size_t fe = level_end(f, i, flen);
        size_t te = level_end(t, j, tlen);
        size_t fl = fe - i;
        if (fl == 1 && f[i] == '#')
            return true;
        if (!(fl == 1 && f[i] == '+') && (fl != te - j || memcmp(f + i, t + j, fl) != 0))
            return false;
        bool fmore = fe < flen, tmore = te < tlen;
        if (!fmore && !tmore)
            return true;
        if (!tmore) /* "a/#" matches "a": only a final "/#" may remain */
            return fe + 2 == flen && f[fe + 1] == '#';
        if (!fmore)
            return false;
        i = fe + 1;
        j = te + 1;
    }
}

bool topic_has_wildcard(const char *f, size_t len)
{
    return memchr(f, '+', len) != NULL || memchr(f, '#', len) != NULL;
}

size_t topic_levels(const char *t, size_t len)
{
    size_t n = 1;
    const char *p = t, *end = t + len;
    while ((p = memchr(p, '/', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

void topic_mount(const char *prefix, const char *t, size_t len, struct buf *out)
{
    const char *group, *f;
    size_t glen, flen;
    buf_reset(out);
    if (topic_parse_shared(t, len, &group, &glen, &f, &flen) == 1) {
        buf_append(out, t, (size_t)(f - t)); /* "$share/G/" */
        buf_append(out, prefix, strlen(prefix));
        buf_append(out, f, flen);
        return;
    }
    buf_append(out, prefix, strlen(prefix));
    buf_append(out, t, len);
}

size_t topic_mounted_prefix(const char *prefix, const char *t, size_t len)
{
    size_t n = strlen(prefix);
    return n <= len && memcmp(prefix, t, n) == 0 ? n : 0;
}
