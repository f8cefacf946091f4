/* Allocation wrappers for small, fixed-size allocations: they never return NULL — on failure they
 * log to stderr and abort (decided in the first core note: a broker that cannot allocate a few
 * bytes cannot continue honestly). Peer-controlled sizes are checked against limits before any of
 * these are called. */
#ifndef TIDE_UTIL_ALLOC_H
#define TIDE_UTIL_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Copies n bytes of s into a new NUL-terminated string. */
char *xstrndup(const char *s, size_t n);
/* Copies n bytes into a new allocation (n may be 0: returns a valid 1-byte allocation). */
void *xmemdup(const void *p, size_t n);

/* Logs "panic: ..." to stderr and aborts. For states the broker cannot continue from. */
void panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif
