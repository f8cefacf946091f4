/* Lua 5.1 patterns (reference manual §5.4.1: classes, sets, '*' '+' '-' '?', captures, position
 * captures, %b, %f, back references, anchors), written from the manual's definition, with a step
 * budget so that a backtracking pattern can be stopped like a loop. Pure: no Lua, no allocation,
 * no I/O; subject and pattern are (pointer, length) and may hold any byte. */
#ifndef TIDE_RULES_PATTERN_H
#define TIDE_RULES_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PATTERN_MAXCAPTURES 32
#define PATTERN_CAP_UNFINISHED (-1)
#define PATTERN_CAP_POSITION (-2)

struct pattern_capture {
    const char *init;
    ptrdiff_t len; /* or PATTERN_CAP_UNFINISHED / PATTERN_CAP_POSITION */
};

/* Called every PATTERN_CHECK_EVERY steps; returning non-zero aborts the match. It may also not
 * return at all (longjmp): the matcher owns nothing. */
#define PATTERN_CHECK_EVERY 1024
typedef int (*pattern_check_fn)(void *ud);

struct pattern_state {
    const char *src, *src_end;
    const char *pat, *pat_end;
    int level; /* captures opened so far */
    struct pattern_capture capture[PATTERN_MAXCAPTURES];
    unsigned depth;
    uint64_t steps;
    pattern_check_fn check; /* may be NULL */
    void *ud;
    const char *error; /* static text once a malformed pattern is found */
    bool aborted;      /* check() said stop */
};

/* Prepares ps for subject s[0..slen) and pattern p[0..plen) (borrowed for ps's lifetime). */
void pattern_init(struct pattern_state *ps, const char *s, size_t slen, const char *p,
                  size_t plen, pattern_check_fn check, void *ud);

/* Tries to match pattern item list starting at p (inside ps->pat) against the subject at s.
 * Returns the end of the match, or NULL for no match, an error (ps->error) or an abort
 * (ps->aborted). Resets the captures first. */
const char *pattern_match_at(struct pattern_state *ps, const char *s, const char *p);

/* Searches from byte offset init (0-based, <= slen), honouring a leading caret anchor. Returns 1 and
 * sets start and end (byte offsets, end exclusive) with ps->capture filled; 0 for no match; -1 on
 * error or abort (see ps->error / ps->aborted). */
int pattern_find(struct pattern_state *ps, size_t init, size_t *start, size_t *end);

/* True if p[0..plen) has no pattern specials (a plain search suffices). */
bool pattern_is_plain(const char *p, size_t plen);

#endif
