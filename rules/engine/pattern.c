/* A Lua 5.1 pattern matcher written from the reference manual's definition (§5.4.1), not from
 * lstrlib.c: a recursive backtracking matcher over (pointer, length) strings that counts its
 * steps and asks a budget callback every PATTERN_CHECK_EVERY of them, and bounds its own
 * recursion. Pure: no allocation, no I/O. */
#include "pattern.h"

#include <ctype.h>
#include <string.h>

#define PATTERN_MAXDEPTH 200
#define ESC '%'
#define SPECIALS "^$*+?.([%-"

void pattern_init(struct pattern_state *ps, const char *s, size_t slen, const char *p,
                  size_t plen, pattern_check_fn check, void *ud)
{
    memset(ps, 0, sizeof(*ps));
    ps->src = s;
    ps->src_end = s + slen;
    ps->pat = p;
    ps->pat_end = p + plen;
    ps->check = check;
    ps->ud = ud;
}

bool pattern_is_plain(const char *p, size_t plen)
{
    for (size_t i = 0; i < plen; i++)
        if (p[i] && strchr(SPECIALS, p[i]))
            return false;
    return true;
}

static bool fail(struct pattern_state *ps, const char *msg)
{
    if (!ps->error)
        ps->error = msg;
    return false;
}

/* One step of work; false once the budget callback said stop. */
static bool step(struct pattern_state *ps)
{
    if (++ps->steps % PATTERN_CHECK_EVERY == 0 && ps->check && ps->check(ps->ud))
        ps->aborted = true;
    return !ps->aborted;
}

/* %a %c %d %g %l %p %s %u %w %x %z, upper case for the complement; any other character stands for
 * itself. */
static bool class_has(unsigned char c, unsigned char cl)
{
    bool r;
    switch (tolower(cl)) {
    case 'a': r = isalpha(c); break;
    case 'c': r = iscntrl(c); break;
    case 'd': r = isdigit(c); break;
    case 'g': r = isgraph(c); break; /* as LuaJIT 2.1 has it */
    case 'l': r = islower(c); break;
    case 'p': r = ispunct(c); break;
    case 's': r = isspace(c); break;
    case 'u': r = isupper(c); break;
    case 'w': r = isalnum(c); break;
    case 'x': r = isxdigit(c); break;
    case 'z': r = c == 0; break;
    default: return cl == c;
    }
    return isupper(cl) ? !r : r;
}

/* The end of the single-character class at p (just past it), or NULL with ps->error set. */
static const char *item_end(struct pattern_state *ps, const char *p)
{
    const char *end = ps->pat_end;
    char c = *p++;
    if (c == ESC) {
        if (p >= end)
            return fail(ps, "malformed pattern (ends with '%')"), NULL;
        return p + 1;
    }
    if (c != '[')
        return p;
    if (p < end && *p == '^')
        p++;
    /* the set's first character is taken literally, even ']' */
    for (;;) {
        if (p >= end)
            return fail(ps, "malformed pattern (missing ']')"), NULL;
        c = *p++;
        if (c == ESC) {
            if (p >= end)
                return fail(ps, "malformed pattern (missing ']')"), NULL;
            p++;
        }
        if (p >= end)
            return fail(ps, "malformed pattern (missing ']')"), NULL;
        if (*p == ']')
            return p + 1;
    }
}

/* Whether c is in the set [ ... ] spanning p (at '[') to last (at the closing ']'). */
static bool set_has(unsigned char c, const char *p, const char *last)
{
    bool neg = false;
    p++;
    if (*p == '^') {
        neg = true;
        p++;
    }
    while (p < last) {
        if (*p == ESC) { /* item_end saw to it that a character follows */
            p++;
            if (class_has(c, (unsigned char)*p))
                return !neg;
            p++;
        } else if (p + 2 < last && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return !neg;
            p += 3;
        } else {
            if ((unsigned char)*p == c)
                return !neg;
            p++;
        }
    }
    return neg;
}

/* Whether the subject byte at s matches the class p..ep (ep just past it). */
static bool single(const struct pattern_state *ps, const char *s, const char *p, const char *ep)
{
    if (s >= ps->src_end)
        return false;
    unsigned char c = (unsigned char)*s;
    switch (*p) {
    case '.': return true;
    case ESC: return class_has(c, (unsigned char)p[1]);
    case '[': return set_has(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *do_match(struct pattern_state *ps, const char *s, const char *p);

/* item* (greedy): take as many as possible, then give back one at a time. */
static const char *greedy(struct pattern_state *ps, const char *s, const char *p, const char *ep)
{
    ptrdiff_t n = 0;
    while (single(ps, s + n, p, ep)) {
        n++;
        if (!step(ps))
            return NULL;
    }
    for (; n >= 0; n--) {
        const char *r = do_match(ps, s + n, ep + 1);
        if (r || ps->error || ps->aborted || !step(ps))
            return r;
    }
    return NULL;
}

/* item- (lazy): try the rest first, then take one more. */
static const char *lazy(struct pattern_state *ps, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = do_match(ps, s, ep + 1);
        if (r || ps->error || ps->aborted || !step(ps))
            return r;
        if (!single(ps, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *open_capture(struct pattern_state *ps, const char *s, const char *p,
                                ptrdiff_t what)
{
    if (ps->level >= PATTERN_MAXCAPTURES)
        return fail(ps, "too many captures"), NULL;
    ps->capture[ps->level].init = s;
    ps->capture[ps->level].len = what;
    ps->level++;
    const char *r = do_match(ps, s, p);
    if (!r)
        ps->level--;
    return r;
}

static const char *close_capture(struct pattern_state *ps, const char *s, const char *p)
{
    int l = ps->level - 1;
    while (l >= 0 && ps->capture[l].len != PATTERN_CAP_UNFINISHED)
        l--;
    if (l < 0)
        return fail(ps, "invalid pattern capture"), NULL;
    ps->capture[l].len = s - ps->capture[l].init;
    const char *r = do_match(ps, s, p);
    if (!r)
        ps->capture[l].len = PATTERN_CAP_UNFINISHED;
    return r;
}

/* %bxy at p: a balanced run from x to the matching y. */
static const char *balance(struct pattern_state *ps, const char *s, const char *p)
{
    if (ps->pat_end - p < 4)
        return fail(ps, "malformed pattern (missing arguments to '%b')"), NULL;
    if (s >= ps->src_end || *s != p[2])
        return NULL;
    int depth = 1;
    while (++s < ps->src_end) {
        if (!step(ps))
            return NULL;
        if (*s == p[3]) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == p[2]) {
            depth++;
        }
    }
    return NULL;
}

static const char *do_match(struct pattern_state *ps, const char *s, const char *p)
{
    const char *r = NULL;
    if (++ps->depth > PATTERN_MAXDEPTH) {
        fail(ps, "pattern too complex");
        goto out;
    }
    for (;;) {
        if (!step(ps))
            goto out;
        if (p == ps->pat_end) {
            r = s;
            goto out;
        }
        if (*p == '(') {
            if (p + 1 < ps->pat_end && p[1] == ')')
                r = open_capture(ps, s, p + 2, PATTERN_CAP_POSITION);
            else
                r = open_capture(ps, s, p + 1, PATTERN_CAP_UNFINISHED);
            goto out;
        }
        if (*p == ')') {
            r = close_capture(ps, s, p + 1);
            goto out;
        }
        if (*p == '$' && p + 1 == ps->pat_end) {
            r = s == ps->src_end ? s : NULL;
            goto out;
        }
        if (*p == ESC && p + 1 < ps->pat_end) {
            char k = p[1];
            if (k == 'b') {
                s = balance(ps, s, p);
                if (!s)
                    goto out;
                p += 4;
                continue;
            }
            if (k == 'f') {
                p += 2;
                if (p >= ps->pat_end || *p != '[') {
                    fail(ps, "missing '[' after '%f' in pattern");
                    goto out;
                }
                const char *ep = item_end(ps, p);
                if (!ep)
                    goto out;
                unsigned char prev = s == ps->src ? 0 : (unsigned char)s[-1];
                unsigned char cur = s < ps->src_end ? (unsigned char)*s : 0;
                if (set_has(prev, p, ep - 1) || !set_has(cur, p, ep - 1))
                    goto out;
                p = ep;
                continue;
            }
            if (isdigit((unsigned char)k)) {
                int l = k - '1';
                if (l < 0 || l >= ps->level || ps->capture[l].len == PATTERN_CAP_UNFINISHED) {
                    fail(ps, "invalid capture index");
                    goto out;
                }
                ptrdiff_t len = ps->capture[l].len;
                if (len == PATTERN_CAP_POSITION)
                    len = 0;
                if (ps->src_end - s < len || memcmp(ps->capture[l].init, s, (size_t)len) != 0)
                    goto out;
                s += len;
                p += 2;
                continue;
            }
        }
        const char *ep = item_end(ps, p);
        if (!ep)
            goto out;
        bool m = single(ps, s, p, ep);
        if (ep < ps->pat_end) {
            if (*ep == '?') {
                if (m) {
                    r = do_match(ps, s + 1, ep + 1);
                    if (r || ps->error || ps->aborted)
                        goto out;
                }
                p = ep + 1;
                continue;
            }
            if (*ep == '*') {
                r = greedy(ps, s, p, ep);
                goto out;
            }
            if (*ep == '+') {
                r = m ? greedy(ps, s + 1, p, ep) : NULL;
                goto out;
            }
            if (*ep == '-') {
                r = lazy(ps, s, p, ep);
                goto out;
            }
        }
        if (!m)
            goto out;
        s++;
        p = ep;
    }
out:
    ps->depth--;
    return (ps->error || ps->aborted) ? NULL : r;
}

const char *pattern_match_at(struct pattern_state *ps, const char *s, const char *p)
{
    ps->level = 0;
    ps->depth = 0;
    return do_match(ps, s, p);
}

int pattern_find(struct pattern_state *ps, size_t init, size_t *start, size_t *end)
{
    const char *p = ps->pat;
    bool anchor = p < ps->pat_end && *p == '^';
    if (anchor)
        p++;
    const char *s = ps->src + init;
    do {
        const char *e = pattern_match_at(ps, s, p);
        if (ps->error || ps->aborted)
            return -1;
        if (e) {
            *start = (size_t)(s - ps->src);
            *end = (size_t)(e - ps->src);
            return 1;
        }
    } while (s++ < ps->src_end && !anchor);
    return 0;
}
