/* The unit tests' harness, header-only: check macros that count passes and failures, print
 * "FAIL file:line: message" on stderr for each failure, and a finish function that prints the
 * totals. Each test program includes it once and ends main with `return unit_finish();`. Its
 * state is per program (static) and single-threaded. */
#ifndef TIDE_TESTS_UNIT_H
#define TIDE_TESTS_UNIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed;
static long long unit_got, unit_want;      /* the operands of the last CHECK_EQ */
static const char *unit_sgot, *unit_swant; /* the operands of the last CHECK_STR */

/* Counts cond as one check; on failure prints the printf-style message after the location. The
 * message arguments are evaluated only on failure. Evaluates to cond as a bool. */
#define CHECK(cond, ...)                                                                           \
    (unit_true(cond) ? unit_pass() : unit_endl(unit_fail(__FILE__, __LINE__, __VA_ARGS__)))

/* Counts one failure and prints the printf-style message after the location. Evaluates to false. */
#define FAIL(...) unit_endl(unit_fail(__FILE__, __LINE__, __VA_ARGS__))

/* Counts got == want (both integers, compared as long long, each evaluated once) as one check;
 * on failure prints the message followed by both values. Evaluates to the outcome. */
#define CHECK_EQ(got, want, ...)                                                                   \
    (unit_eq((long long)(got), (long long)(want))                                                  \
         ? unit_pass()                                                                             \
         : unit_show_eq(unit_fail(__FILE__, __LINE__, __VA_ARGS__)))

/* Counts strcmp(got, want) == 0 as one check (either may be NULL: equal only to NULL); on failure
 * prints the message followed by both strings. Each operand is evaluated once and borrowed. */
#define CHECK_STR(got, want, ...)                                                                  \
    (unit_str_eq((got), (want)) ? unit_pass()                                                      \
                                : unit_show_str(unit_fail(__FILE__, __LINE__, __VA_ARGS__)))

/* Keeps a constant cond from folding CHECK into an unused value (-Wunused-value). */
static inline bool unit_true(bool cond)
{
    return cond;
}

static inline bool unit_pass(void)
{
    unit_passed++;
    return true;
}

/* Counts a failure and starts its line; the caller ends it. Returns false. */
static inline bool unit_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline bool unit_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    unit_failed++;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    return false;
}

static inline bool unit_endl(bool r)
{
    fputc('\n', stderr);
    return r;
}

static inline bool unit_eq(long long got, long long want)
{
    unit_got = got;
    unit_want = want;
    return got == want;
}

static inline bool unit_show_eq(bool r)
{
    fprintf(stderr, ": got %lld, want %lld\n", unit_got, unit_want);
    return r;
}

static inline bool unit_str_eq(const char *got, const char *want)
{
    unit_sgot = got;
    unit_swant = want;
    return got && want ? strcmp(got, want) == 0 : got == want;
}

static inline bool unit_show_str(bool r)
{
    fprintf(stderr, ": got '%s', want '%s'\n", unit_sgot ? unit_sgot : "(null)",
            unit_swant ? unit_swant : "(null)");
    return r;
}

/* Prints "N passed, M failed" on stdout and returns main's exit status: 0 when nothing failed,
 * else 1. */
static inline int unit_finish(void)
{
    printf("%d passed, %d failed\n", unit_passed, unit_failed);
    return unit_failed ? 1 : 0;
}

#endif
