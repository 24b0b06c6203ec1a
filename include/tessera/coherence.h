/*
 * Cache coherence through Redis server-assisted client tracking (RESP2 form):
 *
 *   subscriber connection:  CLIENT ID -> <id>; SUBSCRIBE __redis__:invalidate
 *   tracking connection:    CLIENT TRACKING on REDIRECT <id> BCAST PREFIX <p1> PREFIX <p2> ...
 *
 * Every change of a key under one of the prefixes, by any client of that Redis, then reaches the subscriber
 * as a message naming the keys (a nil message, e.g. after FLUSHDB, means "everything"). The listener calls
 * `on_key` for each key, or with an empty key for "everything", and `on_state` when it becomes usable (1) or
 * stops being usable (0): a cache that relies on it must flush and stop caching while it is down, and flush
 * again before caching when it comes back (writes in between were not reported).
 *
 * One listener per process is enough (it runs on one loop; the callbacks run on that loop's thread).
 */
#ifndef TESSERA_COHERENCE_H
#define TESSERA_COHERENCE_H

#include "tessera/common.h"
#include "tessera/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tess_inval tess_inval_t;

typedef void (*tess_inval_key_cb)(void *arg, tess_str_t key); /* key.len == 0: invalidate everything */
typedef void (*tess_inval_state_cb)(void *arg, int up);

typedef struct tess_inval_opts {
    const char *url;              /* Redis URL (tessera/redis.h forms); borrowed during open */
    const char *const *prefixes;  /* key prefixes to track */
    size_t nprefixes;             /* how many (1..16) */
    int64_t timeout_ms;           /* command timeout (default 1000) */
    const char *epoch_key;        /* when set: INCR'ed before reporting "up" (marks older cache copies stale) */
    tess_inval_key_cb on_key;     /* invalidated key */
    tess_inval_state_cb on_state; /* usable or not */
    void *arg;                    /* argument of both callbacks */
} tess_inval_opts_t;

/* Starts listening (asynchronously). Returns 0, TESS_EINVAL (reason in `err`), TESS_ENOMEM. */
TESS_API int tess_inval_open(tess_inval_t **out, tess_loop_t *loop, const tess_inval_opts_t *opts, char *err,
                             size_t errcap);
/* Stops; no callback runs afterwards. */
TESS_API void tess_inval_free(tess_inval_t *inv);
/* 1 when invalidations are being delivered. */
TESS_API int tess_inval_up(const tess_inval_t *inv);

#ifdef __cplusplus
}
#endif
#endif
