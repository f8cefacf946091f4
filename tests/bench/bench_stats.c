/* Latency histogram for tidemq-bench: log-linear buckets over nanoseconds (HDR-style), fixed size,
 * so recording a sample is a few instructions and never allocates. */
#include "bench.h"

#include <string.h>

void hist_init(struct bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

/* Values below HIST_SUB map to themselves; above, each power of two splits into HIST_SUB
 * equal sub-buckets. */
static unsigned bucket_of(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= HIST_SUB_BITS */
    unsigned shift = e - HIST_SUB_BITS;
    unsigned mant = (unsigned)(v >> shift) - HIST_SUB;
    return (shift + 1) * HIST_SUB + mant;
}

static uint64_t bucket_mid(unsigned i)
{
    if (i < HIST_SUB)
        return i;
    unsigned shift = i / HIST_SUB - 1;
    uint64_t low = (uint64_t)(i % HIST_SUB + HIST_SUB) << shift;
    return low + ((UINT64_C(1) << shift) >> 1);
}

void hist_add(struct bench_hist *h, uint64_t v)
{
    h->count[bucket_of(v)]++;
    h->total++;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

uint64_t hist_quantile(const struct bench_hist *h, double q)
{
    if (!h->total)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->total);
    if (rank >= h->total)
        rank = h->total - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen > rank) {
            uint64_t v = bucket_mid(i);
            return v < h->min ? h->min : v > h->max ? h->max : v;
        }
    }
    return h->max;
}
