/* connect_rate_per_address: a token bucket per client address (IPv4 address, IPv6 /64, an
 * IPv4-mapped IPv6 address counting as its IPv4 address), so a storm of connections from one
 * address cannot crowd out everyone else's fresh logins. The table is bounded: buckets that have
 * refilled are removed by connect_rate_sweep (they mean the same as no bucket), and when the table
 * is full of live buckets a new address is admitted untracked rather than locked out (a flood of
 * distinct addresses then costs no memory). No I/O, no logging, no libevent: the caller passes the
 * clock and runs the sweep. Loop thread only. */
#ifndef TIDE_CONNECT_RATE_H
#define TIDE_CONNECT_RATE_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

/* Addresses tracked at most (about 100 bytes each, table included). */
#define CONNECT_RATE_MAX_ADDRESSES 65536
/* How often the owner should call connect_rate_sweep. */
#define CONNECT_RATE_SWEEP_MS 2000

enum connect_rate_verdict {
    CONNECT_RATE_ALLOW,           /* a token was taken */
    CONNECT_RATE_UNTRACKED,       /* allowed: the table is full of live buckets */
    CONNECT_RATE_UNTRACKED_FIRST, /* the same, the first time since the last sweep (log it) */
    CONNECT_RATE_REFUSE,          /* over the rate */
    CONNECT_RATE_REFUSE_FIRST,    /* over the rate, the first refusal since this address was last
                                   * allowed (the one worth a log line) */
};

struct connect_rate;

/* A limiter allowing per_second connections a second per address (> 0), in bursts of up to
 * burst (> 0; a new or rested address may connect burst times at once), tracking at most
 * max_addresses addresses. Never NULL (allocation failure aborts). */
struct connect_rate *connect_rate_new(uint32_t per_second, uint32_t burst, size_t max_addresses);
void connect_rate_free(struct connect_rate *r);

/* Decides on a connection from addr (AF_INET or AF_INET6; other families are always allowed) at
 * now_ms (monotonic milliseconds): takes a token when there is one. Borrows addr. */
enum connect_rate_verdict connect_rate_check(struct connect_rate *r, const struct sockaddr *addr,
                                             uint64_t now_ms);

/* Removes the buckets that have refilled by now_ms; returns how many. */
size_t connect_rate_sweep(struct connect_rate *r, uint64_t now_ms);

/* Addresses currently tracked. */
size_t connect_rate_count(const struct connect_rate *r);

#endif
