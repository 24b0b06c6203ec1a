/*
 * Latency histograms with fixed buckets, one per loop: the loop records (relaxed atomics, no lock, no
 * allocation), /metrics sums every loop's on read and writes the Prometheus histogram family.
 */
#ifndef TESSERA_SERVER_HIST_H
#define TESSERA_SERVER_HIST_H

#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "tessera/store.h"

#define HIST_BUCKETS TESS_LATENCY_BUCKETS /* the library's, so the store and auth families match */

/* Upper bounds in nanoseconds, and as the le labels (seconds). */
static const uint64_t hist_bounds_ns[HIST_BUCKETS] = TESS_LATENCY_BOUNDS_NS;
static const char *const hist_bounds_le[HIST_BUCKETS] = {
    "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "1",
};

typedef struct hist {
    atomic_uint_fast64_t n[HIST_BUCKETS + 1]; /* observations by bucket (not cumulative); the last: above 1s */
    atomic_uint_fast64_t sum_ns;              /* their total */
} hist_t;

/* A sum of every loop's histogram (hist_add), plain integers. */
typedef tess_latency_t hist_snap_t;

/* CLOCK_MONOTONIC in nanoseconds (vDSO: no system call). */
static inline uint64_t hist_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Records one observation of `ns` nanoseconds; only the loop that owns `h` calls it. */
static inline void hist_record(hist_t *h, uint64_t ns)
{
    int i = 0;
    while (i < HIST_BUCKETS && ns > hist_bounds_ns[i])
        ++i;
    atomic_fetch_add_explicit(&h->n[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

/* Adds `h` (any loop's) to `s`. */
static inline void hist_add(hist_snap_t *s, hist_t *h)
{
    for (int i = 0; i <= HIST_BUCKETS; ++i)
        s->n[i] += atomic_load_explicit(&h->n[i], memory_order_relaxed);
    s->sum_ns += atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
}

/* Appends the samples of `s` under family `name` with one label `label`="`value`"; returns the new length. */
static inline size_t hist_text(char *buf, size_t len, size_t cap, const char *name, const char *label,
                               const char *value, const hist_snap_t *s)
{
    uint64_t cum = 0;
    for (int i = 0; i <= HIST_BUCKETS; ++i) {
        cum += s->n[i];
        if (len < cap)
            len += (size_t)snprintf(buf + len, cap - len, "%s_bucket{%s=\"%s\",le=\"%s\"} %" PRIu64 "\n", name, label,
                                    value, i < HIST_BUCKETS ? hist_bounds_le[i] : "+Inf", cum);
    }
    if (len < cap)
        len += (size_t)snprintf(buf + len, cap - len, "%s_sum{%s=\"%s\"} %" PRIu64 ".%09" PRIu64 "\n", name, label,
                                value, s->sum_ns / 1000000000u, s->sum_ns % 1000000000u);
    if (len < cap)
        len += (size_t)snprintf(buf + len, cap - len, "%s_count{%s=\"%s\"} %" PRIu64 "\n", name, label, value, cum);
    return len;
}

#endif
