/*
 * Fixed-size tables of per-key counters shared by every loop of the process: failed logins per user name and
 * per client address, message rates per user (limits.h uses them).
 *
 * Memory is bounded whatever clients send: a table holds at most its `entries` (rounded up to a power of two)
 * in buckets of RL_WAYS entries; a key new to a full bucket evicts the entry worth least (idle first, then the
 * smallest count or debt, the oldest first), so a flood of fresh keys pushes out other fresh keys before a
 * name that is being guessed at. Keys are 64-bit keyed hashes (SipHash-2-4, libsodium crypto_shorthash, with
 * a key drawn when the table is made): names and addresses are never stored, and without the key nobody can
 * aim keys at one bucket.
 *
 * Thread-safety: any thread. Each bucket has its own lock, held for a few comparisons; two loops contend only
 * when they touch the same bucket at the same moment.
 */
#ifndef TESSERA_SERVER_RATELIMIT_H
#define TESSERA_SERVER_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RL_WAYS 8 /* entries per bucket */

typedef struct rl_table rl_table_t;

/* A failure counter: `max` attempts per `window_ms`; reaching `max` locks the key for `lockout_ms`. */
typedef struct rl_fail_policy {
    int64_t max;        /* attempts counted in one window */
    int64_t window_ms;  /* the window */
    int64_t lockout_ms; /* how long a key stays locked */
} rl_fail_policy_t;

/* A table of at least `entries` entries (16..2^24). Returns 0, TESS_ENOMEM or TESS_EIO (libsodium). */
int rl_new(rl_table_t **out, size_t entries);
/* NULL is a no-op. */
void rl_free(rl_table_t *t);
/* The table's keyed hash of `n` bytes (never 0). */
uint64_t rl_key(const rl_table_t *t, const void *p, size_t n);

/*
 * Counts one attempt of `key`, before its outcome is known (so that concurrent attempts are counted too).
 * Returns 0 (counted; the attempt that reaches `max` locks the key), or the milliseconds until the key is
 * unlocked (refused, not counted).
 */
int64_t rl_fail_take(rl_table_t *t, uint64_t key, const rl_fail_policy_t *p, int64_t now_ms);
/* Takes one counted attempt back (it was never tried: the client went away, a backend failed). */
void rl_fail_give(rl_table_t *t, uint64_t key, const rl_fail_policy_t *p);
/* Forgets `key` (a success). */
void rl_fail_clear(rl_table_t *t, uint64_t key);

/*
 * A rate of one event per `interval_ms` with bursts of `burst` (GCRA, a token bucket kept as one timestamp).
 * Returns 0 (allowed, counted) or the milliseconds until the next event is allowed (refused, not counted).
 */
int64_t rl_rate_take(rl_table_t *t, uint64_t key, int64_t interval_ms, int64_t burst, int64_t now_ms);

/* Entries evicted to make room (a sign the table is too small, or flooded). Relaxed. */
uint64_t rl_evictions(const rl_table_t *t);

#endif
