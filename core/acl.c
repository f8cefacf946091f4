/* ACL files: parsing Mosquitto's format and tidemq's regex entries into a table, and the publish,
 * read and subscribe checks described in acl.h. Owns each table: sections, entries, compiled
 * regexes and the regex scratch space. Pure: reads only the file acl_load_file names; no logging.
 */
#include "acl.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "topic.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/file.h"
#include "util/hash.h"

enum { READ = 1, WRITE = 2 };

/* Regex match limits: enough for any sane topic regex, small enough that a pathological one costs
 * microseconds, not seconds, per check. */
#define MATCH_LIMIT 100000
#define DEPTH_LIMIT 1000
#define HEAP_LIMIT_KIB 1024
#define SCRATCH 256 /* substituted patterns and intersections up to this size stay on the stack */

struct rule {
    char *text; /* filter, pattern or regex source, NUL-terminated */
    size_t len;
    pcre2_code *re;     /* regex entries only: anchored at both ends */
    pcre2_code *re_pre; /* the same, anchored at the start only, for partial matching */
    int access;         /* READ | WRITE, or 0 for deny */
    bool dollar;        /* may match topics beginning with '$' */
    size_t nc, nu;      /* patterns: how many %c and %u substitutions */
};

struct rules {
    struct rule *v;
    size_t n, cap;
};

struct section {
    char *user; /* NULL for the anonymous section */
    struct rules deny, allow;
};

struct acl {
    struct section anon;
    struct section *users;
    size_t nusers, capusers;
    struct hmap by_user; /* user -> index + 1, cast to a pointer */
    struct rules pat_deny, pat_allow;
    size_t entries;
    pcre2_match_context *mctx;
    pcre2_match_data *md;
};

/* A string built for one check: on the stack when short. */
struct sbuf {
    char stack[SCRATCH];
    char *p;
    size_t len;
};

/* ---- matching one entry ------------------------------------------------------------------- */

/* 1 match, 0 no match, -1 the regex engine failed (limit hit, bad UTF-8). */
static int re_match(const struct acl *a, const struct rule *r, const char *t, size_t len)
{
    int rc = pcre2_match(r->re, (PCRE2_SPTR)t, len, 0, 0, a->md, a->mctx);
    if (rc >= 0)
        return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

/* Does entry r (already substituted into f[0..flen) for patterns) match topic t? Regex errors
 * count as a match for a deny entry and as none for an allowing one. */
static bool rule_matches(const struct acl *a, const struct rule *r, const char *f, size_t flen,
                         const char *t, size_t tlen)
{
    if (tlen > 0 && t[0] == '$' && !r->dollar)
        return false;
    if (r->re) {
        int m = re_match(a, r, t, tlen);
        return m < 0 ? r->access == 0 : m == 1;
    }
    return topic_matches(f, flen, t, tlen);
}

static bool dangerous(const char *s)
{
    return strpbrk(s, "+#/") != NULL;
}

enum subst { SUBST_OK, SUBST_SKIP, SUBST_REFUSED };

/* Substitutes %c and %u of pattern r into b (Mosquitto's left-to-right scan). SUBST_SKIP: a %u
 * pattern for a client without user name; SUBST_REFUSED: an id or user name that must not be
 * substituted. b->p is valid (and must be released with sbuf_done) only for SUBST_OK. */
static enum subst substitute(const struct rule *r, const char *id, const char *user, struct sbuf *b)
{
    if (r->nu && !user)
        return SUBST_SKIP;
    if ((r->nc && dangerous(id)) || (r->nu && dangerous(user)))
        return SUBST_REFUSED;
    size_t idlen = strlen(id), ulen = user ? strlen(user) : 0;
    size_t cap = r->len + 1 + r->nc * idlen + r->nu * ulen;
    b->p = cap <= sizeof(b->stack) ? b->stack : xmalloc(cap);
    size_t o = 0;
    for (size_t i = 0; i < r->len; i++) {
        if (r->text[i] == '%' && i + 1 < r->len && r->text[i + 1] == 'c') {
            memcpy(b->p + o, id, idlen);
            o += idlen;
            i++;
        } else if (r->text[i] == '%' && i + 1 < r->len && r->text[i + 1] == 'u' && user) {
            memcpy(b->p + o, user, ulen);
            o += ulen;
            i++;
        } else {
            b->p[o++] = r->text[i];
        }
    }
    b->p[o] = '\0';
    b->len = o;
    return SUBST_OK;
}

static void sbuf_done(struct sbuf *b)
{
    if (b->p != b->stack)
        free(b->p);
    b->p = NULL;
}

/* True if an entry of rs matches t and grants access (access 0: rs holds deny entries). */
static bool any_section_match(const struct acl *a, const struct rules *rs, int access,
                              const char *t, size_t tlen)
{
    for (size_t i = 0; i < rs->n; i++) {
        const struct rule *r = &rs->v[i];
        if ((access == 0 || (r->access & access)) && rule_matches(a, r, r->text, r->len, t, tlen))
            return true;
    }
    return false;
}

/* As any_section_match for patterns. A deny pattern that cannot be substituted matches (fail
 * closed); an allowing one does not. */
static bool any_pattern_match(const struct acl *a, const struct rules *rs, int access,
                              const char *id, const char *user, const char *t, size_t tlen)
{
    for (size_t i = 0; i < rs->n; i++) {
        const struct rule *r = &rs->v[i];
        if (access != 0 && !(r->access & access))
            continue;
        struct sbuf b;
        enum subst s = substitute(r, id, user, &b);
        if (s == SUBST_REFUSED && access == 0)
            return true;
        if (s != SUBST_OK)
            continue;
        bool m = rule_matches(a, r, b.p, b.len, t, tlen);
        sbuf_done(&b);
        if (m)
            return true;
    }
    return false;
}

static const struct section *section_of(const struct acl *a, const char *user)
{
    if (!user)
        return &a->anon;
    uintptr_t v = (uintptr_t)hmap_get(&a->by_user, user, strlen(user));
    return v ? &a->users[v - 1] : NULL;
}

/* Mosquitto's decision for one topic name and one access bit. */
static bool decide(const struct acl *a, const char *id, const char *user, const char *t,
                   size_t tlen, int access)
{
    const struct section *s = section_of(a, user);
    if (s && any_section_match(a, &s->deny, 0, t, tlen))
        return false;
    if (s && any_section_match(a, &s->allow, access, t, tlen))
        return true;
    if (any_pattern_match(a, &a->pat_deny, 0, id, user, t, tlen))
        return false;
    return any_pattern_match(a, &a->pat_allow, access, id, user, t, tlen);
}

static bool prefixed(const char *t, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(t, prefix, n) == 0;
}

bool acl_can_publish(const struct acl *a, const char *client_id, const char *username,
                     const char *topic, size_t len)
{
    /* as Mosquitto's acl__check_dollar: no client writes $SYS (bridges aside), nor $share */
    if (topic_validate_name(topic, len) != 0 || prefixed(topic, len, "$SYS") ||
        prefixed(topic, len, "$share"))
        return false;
    return decide(a, client_id, username, topic, len, WRITE);
}

bool acl_can_read(const struct acl *a, const char *client_id, const char *username,
                  const char *topic, size_t len)
{
    if (topic_validate_name(topic, len) != 0 || prefixed(topic, len, "$share"))
        return false;
    return decide(a, client_id, username, topic, len, READ);
}

/* ---- subscribe: filter against filter ----------------------------------------------------- */

/* One level of a filter: levels are split at '/', the position after the last level is len+1. */
struct lv {
    const char *s;
    size_t len, pos;
    const char *p; /* current level */
    size_t n;
};

static void lv_init(struct lv *l, const char *s, size_t len)
{
    l->s = s;
    l->len = len;
    l->pos = 0;
}

/* Loads the next level into l->p/l->n; false when the filter has no more levels. */
static bool lv_next(struct lv *l)
{
    if (l->pos > l->len)
        return false;
    const char *e = memchr(l->s + l->pos, '/', l->len - l->pos);
    size_t end = e ? (size_t)(e - l->s) : l->len;
    l->p = l->s + l->pos;
    l->n = end - l->pos;
    l->pos = end + 1;
    return true;
}

static bool is_hash(const struct lv *l)
{
    return l->n == 1 && l->p[0] == '#';
}

static bool is_plus(const struct lv *l)
{
    return l->n == 1 && l->p[0] == '+';
}

static void put(struct sbuf *o, const char *p, size_t n)
{
    memcpy(o->p + o->len, p, n);
    o->len += n;
}

/* Appends what remains of l (from the current level on) to o, with a '/' before it unless first. */
static void put_rest(struct sbuf *o, const struct lv *l, bool first)
{
    if (!first)
        put(o, "/", 1);
    put(o, l->p, l->len - (size_t)(l->p - l->s));
}

/* Intersection of two valid filters: the filter matching exactly the topics both match, written
 * to o (o->p must hold flen + elen + 1 bytes). False if no topic matches both. */
static bool intersect(const char *f, size_t flen, const char *e, size_t elen, struct sbuf *o)
{
    struct lv a, b;
    lv_init(&a, f, flen);
    lv_init(&b, e, elen);
    o->len = 0;
    for (bool first = true;; first = false) {
        bool ha = lv_next(&a), hb = lv_next(&b);
        if (!ha && !hb)
            break;
        if (!ha || !hb) { /* one ended: the other must end in "/#" ("a" vs "a/#" is "a") */
            struct lv *rest = ha ? &a : &b;
            if (!is_hash(rest) || lv_next(rest))
                return false;
            break;
        }
        /* [MQTT-4.7.2-1] a leading wildcard does not match a '$' level */
        if (first && (((is_hash(&a) || is_plus(&a)) && !is_hash(&b) && !is_plus(&b) && b.n &&
                       b.p[0] == '$') ||
                      ((is_hash(&b) || is_plus(&b)) && !is_hash(&a) && !is_plus(&a) && a.n &&
                       a.p[0] == '$')))
            return false;
        if (is_hash(&a)) {
            put_rest(o, &b, first);
            break;
        }
        if (is_hash(&b)) {
            put_rest(o, &a, first);
            break;
        }
        const struct lv *pick;
        if (is_plus(&a))
            pick = &b;
        else if (is_plus(&b) || (a.n == b.n && memcmp(a.p, b.p, a.n) == 0))
            pick = &a;
        else
            return false;
        if (!first)
            put(o, "/", 1);
        put(o, pick->p, pick->n);
    }
    o->p[o->len] = '\0';
    return true;
}

/* True if every topic matching filter i also matches filter d (both valid). */
static bool covers(const char *d, size_t dlen, const char *i, size_t ilen)
{
    if (ilen > 0 && i[0] == '$' && dlen > 0 && (d[0] == '+' || d[0] == '#'))
        return false;
    struct lv x, y;
    lv_init(&x, d, dlen);
    lv_init(&y, i, ilen);
    for (;;) {
        bool hx = lv_next(&x), hy = lv_next(&y);
        if (!hx && !hy)
            return true;
        if (hx && is_hash(&x))
            return true;
        if (!hx)
            return false;       /* i is longer (or ends in "#") */
        if (!hy || is_hash(&y)) /* d's level is not '#': it cannot match what i still has */
            return false;
        if (is_plus(&x))
            continue;
        if (is_plus(&y) || x.n != y.n || memcmp(x.p, y.p, x.n) != 0)
            return false;
    }
}

/* Does deny entry r (text f[0..flen) after substitution) cover every topic of filter i? */
static bool deny_covers(const struct acl *a, const struct rule *r, const char *f, size_t flen,
                        const char *i, size_t ilen)
{
    if (ilen > 0 && i[0] == '$' && !r->dollar)
        return false;
    if (r->re) /* a regex is tested only against a single topic */
        return !topic_has_wildcard(i, ilen) && re_match(a, r, i, ilen) != 0;
    return covers(f, flen, i, ilen);
}

/* Does any deny entry of the section (and, when patterns is set, any deny pattern) cover i? */
static bool denied_all(const struct acl *a, const struct section *s, bool patterns, const char *id,
                       const char *user, const char *i, size_t ilen)
{
    for (size_t k = 0; s && k < s->deny.n; k++) {
        const struct rule *r = &s->deny.v[k];
        if (deny_covers(a, r, r->text, r->len, i, ilen))
            return true;
    }
    for (size_t k = 0; patterns && k < a->pat_deny.n; k++) {
        const struct rule *r = &a->pat_deny.v[k];
        struct sbuf b;
        enum subst st = substitute(r, id, user, &b);
        if (st == SUBST_REFUSED)
            return true;
        if (st != SUBST_OK)
            continue;
        bool c = deny_covers(a, r, b.p, b.len, i, ilen);
        sbuf_done(&b);
        if (c)
            return true;
    }
    return false;
}

/* Could regex r match some topic of the wildcard filter f? Tests the literal levels before the
 * first wildcard as a partial match (PCRE2_PARTIAL_HARD: "this prefix may still extend into a
 * match"), and, for a final "#", the prefix without its '/' as a whole topic ("a/#" matches "a").
 * An engine error counts as a possible match (this only widens a grant that deliveries re-check).
 */
static bool re_may_match(const struct acl *a, const struct rule *r, const char *f, size_t flen)
{
    size_t pre = 0;
    for (size_t i = 0; i < flen; i++) {
        if ((f[i] == '+' || f[i] == '#') && (i == 0 || f[i - 1] == '/')) {
            pre = i;
            break;
        }
    }
    if (pre == 0) /* a leading wildcard: any non-'$' topic */
        return true;
    int rc = pcre2_match(r->re_pre, (PCRE2_SPTR)f, pre, 0, PCRE2_PARTIAL_HARD, a->md, a->mctx);
    if (rc != PCRE2_ERROR_NOMATCH)
        return true;
    return f[pre] == '#' && re_match(a, r, f, pre - 1) != 0;
}

/* Some topic matching filter f is readable through allowing entry r (text e[0..elen)): they
 * overlap and no deny entry that outranks r covers the overlap. */
static bool grants(const struct acl *a, const struct section *s, bool pattern, const struct rule *r,
                   const char *e, size_t elen, const char *id, const char *user, const char *f,
                   size_t flen)
{
    if (r->re) {
        if (!topic_has_wildcard(f, flen)) {
            if (!rule_matches(a, r, e, elen, f, flen))
                return false;
        } else {
            /* f's topics begin with '$' exactly when its first level does (a leading wildcard
             * never reaches them); r reaches '$' topics, and only those, when it is dollar */
            if ((f[0] == '$') != r->dollar)
                return false;
            if (!re_may_match(a, r, f, flen))
                return false;
        }
        return !denied_all(a, s, pattern, id, user, f, flen);
    }
    struct sbuf o;
    size_t cap = flen + elen + 2;
    o.p = cap <= sizeof(o.stack) ? o.stack : xmalloc(cap);
    bool ok = intersect(f, flen, e, elen, &o) && !(o.len > 0 && o.p[0] == '$' && !r->dollar) &&
              !denied_all(a, s, pattern, id, user, o.p, o.len);
    sbuf_done(&o);
    return ok;
}

bool acl_can_subscribe(const struct acl *a, const char *client_id, const char *username,
                       const char *filter, size_t len)
{
    if (topic_validate_filter(filter, len) != 0)
        return false;
    const struct section *s = section_of(a, username);
    for (size_t k = 0; s && k < s->allow.n; k++) {
        const struct rule *r = &s->allow.v[k];
        if ((r->access & READ) &&
            grants(a, s, false, r, r->text, r->len, client_id, username, filter, len))
            return true;
    }
    for (size_t k = 0; k < a->pat_allow.n; k++) {
        const struct rule *r = &a->pat_allow.v[k];
        struct sbuf b;
        if (!(r->access & READ) || substitute(r, client_id, username, &b) != SUBST_OK)
            continue;
        bool g = grants(a, s, true, r, b.p, b.len, client_id, username, filter, len);
        sbuf_done(&b);
        if (g)
            return true;
    }
    return false;
}

/* ---- loading ------------------------------------------------------------------------------ */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Splits the next word off *s (which starts at a non-blank) and skips the blanks after it. */
static void word(const char **s, const char *end, const char **w, size_t *wn)
{
    const char *p = *s;
    while (p < end && *p != ' ' && *p != '\t')
        p++;
    *w = *s;
    *wn = (size_t)(p - *s);
    while (p < end && is_blank(*p))
        p++;
    *s = p;
}

static bool word_is(const char *w, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(w, lit, n) == 0;
}

/* READ/WRITE bits of an access word, 0 for deny, -1 if it is not one. */
static int access_of(const char *w, size_t n)
{
    if (word_is(w, n, "read"))
        return READ;
    if (word_is(w, n, "write"))
        return WRITE;
    if (word_is(w, n, "readwrite"))
        return READ | WRITE;
    if (word_is(w, n, "deny"))
        return 0;
    return -1;
}

static struct rule *push(struct rules *rs)
{
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 8;
        rs->v = xrealloc(rs->v, rs->cap * sizeof(*rs->v));
    }
    struct rule *r = &rs->v[rs->n++];
    memset(r, 0, sizeof(*r));
    return r;
}

static struct section *user_section(struct acl *a, const char *name, size_t n)
{
    uintptr_t v = (uintptr_t)hmap_get(&a->by_user, name, n);
    if (v)
        return &a->users[v - 1];
    if (a->nusers == a->capusers) {
        a->capusers = a->capusers ? a->capusers * 2 : 8;
        a->users = xrealloc(a->users, a->capusers * sizeof(*a->users));
        /* the index stores positions, not pointers, so growing the array is safe */
    }
    struct section *s = &a->users[a->nusers++];
    memset(s, 0, sizeof(*s));
    s->user = xstrndup(name, n);
    hmap_put(&a->by_user, s->user, n, (void *)(uintptr_t)a->nusers);
    return s;
}

/* Scans a pattern the way substitute() will, counting its %c and %u. */
static void scan_pattern(struct rule *r)
{
    for (size_t i = 0; i + 1 < r->len; i++) {
        if (r->text[i] != '%')
            continue;
        if (r->text[i + 1] == 'c')
            r->nc++;
        else if (r->text[i + 1] == 'u')
            r->nu++;
        else
            continue;
        i++;
    }
}

static int compile_regex(struct rule *r, char *why, size_t whylen)
{
    int ec;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_ANCHORED | PCRE2_UTF | PCRE2_NEVER_BACKSLASH_C | PCRE2_DOLLAR_ENDONLY;
    r->re = pcre2_compile((PCRE2_SPTR)r->text, r->len, opts | PCRE2_ENDANCHORED, &ec, &off, NULL);
    /* PCRE2 refuses partial matching with PCRE2_ENDANCHORED, so the subscribe check's "could a
     * topic starting with this prefix match?" uses a second, start-anchored compilation */
    if (r->re)
        r->re_pre = pcre2_compile((PCRE2_SPTR)r->text, r->len, opts, &ec, &off, NULL);
    if (!r->re || !r->re_pre) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        snprintf(why, whylen, "invalid regex at offset %zu: %s", (size_t)off, (char *)msg);
        return TIDE_EINVAL;
    }
    /* JIT is an optimisation: without it (no JIT support, no executable memory) the interpreter
     * runs under the same limits */
    (void)pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE);
    (void)pcre2_jit_compile(r->re_pre, PCRE2_JIT_PARTIAL_HARD);
    r->dollar = (r->len >= 2 && r->text[0] == '\\' && r->text[1] == '$') ||
                (r->len >= 3 && r->text[0] == '^' && r->text[1] == '\\' && r->text[2] == '$');
    return 0;
}

/* Parses one line (without '\n') into a. Returns 0 or TIDE_EINVAL with the reason in why. */
static int parse_line(struct acl *a, struct section **cur, const char *line, size_t n, char *why,
                      size_t whylen)
{
    const char *s = line, *end = line + n;
    while (s < end && is_blank(*s))
        s++;
    while (end > s && is_blank(end[-1]))
        end--;
    if (s == end || *s == '#')
        return 0;
    if (memchr(s, '\0', (size_t)(end - s))) {
        snprintf(why, whylen, "NUL byte in line");
        return TIDE_EINVAL;
    }
    const char *kw, *w;
    size_t kwn, wn;
    word(&s, end, &kw, &kwn);
    if (word_is(kw, kwn, "user")) {
        if (s == end) {
            snprintf(why, whylen, "missing user name after 'user'");
            return TIDE_EINVAL;
        }
        *cur = user_section(a, s, (size_t)(end - s));
        return 0;
    }
    bool pattern = word_is(kw, kwn, "pattern");
    if (!pattern && !word_is(kw, kwn, "topic")) {
        snprintf(why, whylen, "expected 'topic', 'pattern' or 'user', not '%.*s'",
                 kwn > 40 ? 40 : (int)kwn, kw);
        return TIDE_EINVAL;
    }
    if (s == end) {
        snprintf(why, whylen, "missing topic after '%.*s'", (int)kwn, kw);
        return TIDE_EINVAL;
    }
    word(&s, end, &w, &wn);
    bool regex = false;
    int access = READ | WRITE;
    if (s < end && word_is(w, wn, "regex")) {
        if (pattern) {
            snprintf(why, whylen, "regex entries are allowed on 'topic' lines only");
            return TIDE_EINVAL;
        }
        regex = true;
        word(&s, end, &w, &wn);
        access = access_of(w, wn);
        if (access < 0 || s == end) {
            snprintf(why, whylen, "expected 'topic regex read|write|readwrite|deny REGEX'");
            return TIDE_EINVAL;
        }
    } else if (s < end) {
        access = access_of(w, wn);
        if (access < 0) {
            snprintf(why, whylen, "unknown access '%.*s' (expected read, write, readwrite or deny)",
                     wn > 40 ? 40 : (int)wn, w);
            return TIDE_EINVAL;
        }
    } else {
        s = w; /* a lone word is the topic, readwrite */
    }
    size_t tlen = (size_t)(end - s);
    if (regex && tlen > ACL_REGEX_MAX) {
        snprintf(why, whylen, "regex longer than %d bytes", ACL_REGEX_MAX);
        return TIDE_EINVAL;
    }
    if (!regex && topic_validate_filter(s, tlen) != 0) {
        snprintf(why, whylen, "invalid topic filter '%.*s'", tlen > 80 ? 80 : (int)tlen, s);
        return TIDE_EINVAL;
    }
    struct section *sec = *cur;
    struct rules *rs =
        pattern ? (access ? &a->pat_allow : &a->pat_deny) : (access ? &sec->allow : &sec->deny);
    struct rule *r = push(rs);
    r->text = xstrndup(s, tlen);
    r->len = tlen;
    r->access = access;
    r->dollar = tlen > 0 && s[0] == '$';
    if (pattern)
        scan_pattern(r);
    a->entries++;
    if (regex && compile_regex(r, why, whylen) != 0)
        return TIDE_EINVAL; /* r stays in the table and is freed with it */
    return 0;
}

static void rules_free(struct rules *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->v[i].text);
        pcre2_code_free(rs->v[i].re);
        pcre2_code_free(rs->v[i].re_pre);
    }
    free(rs->v);
}

void acl_free(struct acl *a)
{
    if (!a)
        return;
    rules_free(&a->anon.deny);
    rules_free(&a->anon.allow);
    for (size_t i = 0; i < a->nusers; i++) {
        free(a->users[i].user);
        rules_free(&a->users[i].deny);
        rules_free(&a->users[i].allow);
    }
    free(a->users);
    hmap_fini(&a->by_user);
    rules_free(&a->pat_deny);
    rules_free(&a->pat_allow);
    pcre2_match_data_free(a->md);
    pcre2_match_context_free(a->mctx);
    free(a);
}

size_t acl_entry_count(const struct acl *a)
{
    return a->entries;
}

int acl_load_buffer(struct acl **out, const char *name, const char *data, size_t len, char *err,
                    size_t errlen)
{
    if (len > ACL_FILE_MAX) {
        err_printf(err, errlen, "%s: file larger than %u bytes", name, ACL_FILE_MAX);
        return TIDE_ETOOBIG;
    }
    struct acl *a = xcalloc(1, sizeof(*a));
    hmap_init(&a->by_user);
    a->mctx = pcre2_match_context_create(NULL);
    a->md = pcre2_match_data_create(1, NULL);
    if (!a->mctx || !a->md)
        panic("acl: out of memory for the regex match context");
    pcre2_set_match_limit(a->mctx, MATCH_LIMIT);
    pcre2_set_depth_limit(a->mctx, DEPTH_LIMIT);
    pcre2_set_heap_limit(a->mctx, HEAP_LIMIT_KIB);
    struct section *cur = &a->anon;
    size_t lineno = 0, pos = 0;
    char why[256];
    while (pos < len) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        if (parse_line(a, &cur, line, n, why, sizeof(why)) != 0) {
            err_printf(err, errlen, "%s:%zu: %s", name, lineno, why);
            acl_free(a);
            return TIDE_EINVAL;
        }
    }
    *out = a;
    return 0;
}

int acl_load_file(struct acl **out, const char *path, char *err, size_t errlen)
{
    char *data;
    size_t len;
    int rc = file_read_all(path, ACL_FILE_MAX, &data, &len, err, errlen);
    if (rc < 0)
        return rc;
    rc = acl_load_buffer(out, path, data, len, err, errlen);
    free(data);
    return rc;
}
