/*
 * The near-cache (L1): an in-process session cache shared by every event loop of a process.
 *
 * Sharded (one mutex per shard), bounded by entry count and by bytes (both hard: an insert evicts the least
 * recently used entries of its shard until it fits), TTL-limited (an entry never outlives min(ttl, the
 * session's own expiry)). Negative entries remember unknown ids for a short TTL.
 *
 * Lost-update guard: read tess_cache_gen() before the backend lookup and pass it to tess_cache_put(); the
 * put is dropped when an eviction or flush touched that shard meanwhile, so a slow lookup can never put
 * back an entry that a logout removed.
 *
 * Thread-safe: one tess_cache_t may be used by all threads.
 */
#ifndef TESSERA_CACHE_H
#define TESSERA_CACHE_H

#include "tessera/common.h"
#include "tessera/session.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tess_cache tess_cache_t;

typedef struct tess_cache_opts {
    size_t max_entries;      /* bound on entries, all shards together (default 100000) */
    size_t max_bytes;        /* bound on accounted bytes, all shards together (default 64 MiB) */
    int64_t ttl_ms;          /* positive entry lifetime (default 300 s) */
    int64_t negative_ttl_ms; /* negative entry lifetime (default 5 s; 0 disables negative caching) */
    unsigned shards;         /* power of two (default 16) */
} tess_cache_opts_t;

typedef struct tess_cache_stats {
    uint64_t hits;          /* positive hits */
    uint64_t negative_hits; /* hits on a remembered unknown id */
    uint64_t misses;        /* lookups that found nothing usable */
    uint64_t evictions;     /* entries removed to honour a bound */
    uint64_t invalidations; /* entries removed by tess_cache_evict*() */
    uint64_t flushes;       /* tess_cache_flush() calls */
    size_t entries;         /* current entries */
    size_t bytes;           /* current accounted bytes */
} tess_cache_stats_t;

enum { TESS_CACHE_MISS = 0, TESS_CACHE_HIT = 1, TESS_CACHE_NEGATIVE = 2 };

/* Fills the defaults above. */
TESS_API void tess_cache_opts_default(tess_cache_opts_t *o);
/* `opts` may be NULL for defaults. Returns 0, TESS_EINVAL, TESS_ENOMEM. Free with tess_cache_free(). */
TESS_API int tess_cache_new(tess_cache_t **out, const tess_cache_opts_t *opts);
TESS_API void tess_cache_free(tess_cache_t *c);

/*
 * Looks `key` up at `now_ms`. Returns TESS_CACHE_HIT with a deep copy in `*out` (clear it with
 * tess_session_clear()), TESS_CACHE_NEGATIVE, or TESS_CACHE_MISS. Always MISS while disabled.
 */
TESS_API int tess_cache_get(tess_cache_t *c, tess_str_t key, int64_t now_ms, tess_session_t *out);
/* The shard generation of `key`, to pass to tess_cache_put(). */
TESS_API uint64_t tess_cache_gen(tess_cache_t *c, tess_str_t key);
/*
 * Inserts or replaces `key` (a copy of `s`; NULL inserts a negative entry) unless the shard generation moved
 * since `gen` or the cache is disabled. Returns 0 (stored or deliberately dropped) or TESS_ENOMEM.
 */
TESS_API int tess_cache_put(tess_cache_t *c, tess_str_t key, const tess_session_t *s, int64_t now_ms, uint64_t gen);
/*
 * Opaque values: the application's own entries (e.g. a rendered response) under the same bounds, TTL
 * (opts.ttl_ms), generations and enabled flag as sessions. A cache may hold both kinds; a session lookup of a
 * value's key (or the reverse) is a miss.
 *
 * tess_cache_put_value() copies `len` bytes of `value` (same gen rule and returns as tess_cache_put()).
 * tess_cache_read_value() returns TESS_CACHE_HIT after calling `read(arg, bytes, len)` once with the stored
 * bytes, or TESS_CACHE_MISS without calling it. `read` runs under the shard's lock: copy the bytes out and
 * return; never call back into the cache from it. No allocation on a hit.
 */
typedef void (*tess_cache_read_cb)(void *arg, const void *value, size_t len);
TESS_API int tess_cache_put_value(tess_cache_t *c, tess_str_t key, const void *value, size_t len, int64_t now_ms,
                                  uint64_t gen);
TESS_API int tess_cache_read_value(tess_cache_t *c, tess_str_t key, int64_t now_ms, tess_cache_read_cb read, void *arg);
/* Removes `key` (positive or negative) and bumps its shard generation. */
TESS_API void tess_cache_evict(tess_cache_t *c, tess_str_t key);
/* Removes every entry of user `user_id` (a scan; for "log out everywhere"). */
TESS_API void tess_cache_evict_user(tess_cache_t *c, tess_str_t user_id);
/* Removes everything and bumps every generation. */
TESS_API void tess_cache_flush(tess_cache_t *c);
/* Turns lookups and inserts off (0) or on (1); turning off also flushes. */
TESS_API void tess_cache_set_enabled(tess_cache_t *c, int enabled);
TESS_API void tess_cache_get_stats(tess_cache_t *c, tess_cache_stats_t *out);

/*
 * Single-flight: N concurrent misses for one key (on any threads) cause one backend lookup.
 * tess_cache_flight_join() returns 1 when the caller leads: it looks the key up and must then call
 * tess_cache_flight_done() exactly once. It returns 0 when a lookup of that key is already under way: the
 * caller's `deliver(arg, rc, s)` will be called with the leader's result, from inside the leader's
 * tess_cache_flight_done() (so on the leader's thread: hop back to your own before using thread-bound state;
 * `s` is borrowed for the call). Works while the cache is disabled too.
 */
typedef void (*tess_flight_cb)(void *arg, int rc, const tess_session_t *s);
enum { TESS_FLIGHT_FOLLOW = 0, TESS_FLIGHT_LEAD = 1, TESS_FLIGHT_ALONE = 2 };
/* TESS_FLIGHT_ALONE (out of memory): look the key up without a flight and do not call flight_done. */
TESS_API int tess_cache_flight_join(tess_cache_t *c, tess_str_t key, tess_flight_cb deliver, void *arg);
TESS_API void tess_cache_flight_done(tess_cache_t *c, tess_str_t key, int rc, const tess_session_t *s);
/* Lookups saved by single-flight (followers served by a leader's lookup). */
TESS_API uint64_t tess_cache_flight_followers(tess_cache_t *c);

#ifdef __cplusplus
}
#endif
#endif
