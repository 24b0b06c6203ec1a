/*
 * The Redis session store: connect-redis's format, driven by hiredis's async API on an application event
 * loop (tessera/loop.h). One connection per loop pipelines all of that loop's requests.
 *
 *   <prefix><sid>       the session JSON (connect-redis shape), SET ... PX <ttl>; touch = PEXPIRE (never
 *                       creates a key); expiry read back with PTTL in the same round trip as GET
 *   <prefix>user:<uid>  a set of the user's session ids ("log out everywhere" is one call); its TTL covers the
 *                       longest absolute expiry of its members; destroy removes the id from it
 *
 * Failure behaviour: every command has a timeout; a lost connection is re-established with backoff capped
 * at 500 ms; while down, operations complete at once with TESS_EUNAVAIL (callers fail closed).
 */
#ifndef TESSERA_REDIS_H
#define TESSERA_REDIS_H

#include "tessera/loop.h"
#include "tessera/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One Redis connection of one loop, to be shared by everything on that loop that talks to Redis (the store,
 * the L2 cache, the revocation lists), so that all of the loop's requests pipeline on it. Connects
 * asynchronously and reconnects by itself (backoff capped at 500 ms); every command has `timeout_ms`
 * (default 1000). Closing it completes its pending commands with TESS_EUNAVAIL, so close it before its users
 * (their callbacks still run); the users never touch it afterwards. Not thread-safe: one per loop.
 */
typedef struct tess_redis tess_redis_t;
TESS_API int tess_redis_open(tess_redis_t **out, tess_loop_t *loop, const char *url, int64_t timeout_ms, char *err,
                             size_t errcap);
TESS_API void tess_redis_close(tess_redis_t *conn);
TESS_API int tess_redis_connected(const tess_redis_t *conn);

/*
 * One command on `conn` (argv[i] of lens[i] bytes, or NUL-terminated when `lens` is NULL), pipelined with the
 * loop's others. `cb(arg, rc, reply)` runs once: rc 0 with hiredis's reply (an error reply included; valid
 * during the call only), or TESS_EUNAVAIL / TESS_ETIMEDOUT with NULL (down, not yet connected, no answer in
 * time). For tools (`tessera check`); the stores have their own calls. Returns 0.
 */
struct redisReply;
typedef void (*tess_redis_reply_cb)(void *arg, int rc, struct redisReply *reply);
TESS_API int tess_redis_command(tess_redis_t *conn, tess_redis_reply_cb cb, void *arg, int argc, const char **argv,
                                const size_t *lens);

/*
 * A blocking hiredis connection to `url` with its AUTH and SELECT done, every command bounded by `timeout_ms`
 * (the command line's `session list`; servers use tess_redis_open). Returns it (redisFree), or NULL with a
 * reason (never the password) in `err`.
 */
struct redisContext;
TESS_API struct redisContext *tess_redis_connect_sync(const char *url, int64_t timeout_ms, char *err, size_t errcap);

typedef struct tess_redis_opts {
    const char *url;    /* redis://[user:password@]host:port[/db] or unix:///path[?db=N]; borrowed */
    tess_redis_t *conn; /* a loop's shared connection (borrowed; `url` and `timeout_ms` then unused) */
    const char *prefix; /* key prefix (default "session:") */
    int64_t timeout_ms; /* per-command timeout (default 1000 when 0) */
} tess_redis_opts_t;

/* Checks a Redis URL. Returns 0 or TESS_EINVAL with a reason (never the password) in `err`. */
TESS_API int tess_redis_url_check(const char *url, char *err, size_t errcap);

/*
 * Opens a store handle on `loop` (borrowed; the handle belongs to that loop's thread), connecting
 * asynchronously. Returns 0, TESS_EINVAL (reason in `err`), TESS_ENOMEM.
 */
TESS_API int tess_redisstore_open(tess_store_t **out, tess_loop_t *loop, const tess_redis_opts_t *opts, char *err,
                                  size_t errcap);

/* 1 when the handle's connection is up. */
TESS_API int tess_redisstore_connected(tess_store_t *store);

/*
 * A store that puts a Redis cache-aside (L2) in front of `inner` (the source of truth, e.g. the SQLite or
 * PostgreSQL store), as the cached strategy uses it:
 *
 *   get      GET <prefix><sid> (+ GET <epoch key>, same round trip); a hit stamped with the current epoch is
 *            the answer; otherwise `inner` answers and a hit there is written back with SET ... PX <ttl> NX
 *            (never over a newer copy or a tombstone) and added to <prefix>user:<uid>
 *   set      `inner` only (a new id has no copy)
 *   touch    `inner`, then the copy is dropped (its expiry is stale) unless it is a tombstone
 *   destroy  a tombstone "!" replaces the copy (PX <ttl>: a racing reader cannot put the session back),
 *            then `inner`
 *   destroy_user  tombstones for every id in the user's set, then `inner`
 *
 * Values are "<epoch>:<session JSON>". The epoch key is bumped (INCR) by every invalidation listener that
 * (re)connects; copies stamped with an older epoch are misses. Redis being down only costs speed: reads
 * go to `inner`, and writes to the cache are best effort (the listener flush + epoch bump on recovery keep
 * every instance from trusting copies written before the outage).
 */
typedef struct tess_l2_opts {
    const char *url;    /* Redis URL; borrowed during open */
    tess_redis_t *conn; /* a loop's shared connection (borrowed; `url` and `timeout_ms` then unused) */
    /* key prefix (default "tessera:l2:"; never the redis store's: tessera/keyspace.h) */
    const char *prefix;
    const char *epoch_key; /* epoch key (default "tessera:epoch") */
    int64_t ttl_ms;        /* copy lifetime (default 300 s) */
    int64_t timeout_ms;    /* per-command timeout (default 1000) */
} tess_l2_opts_t;

/*
 * Opens the composite store on `loop`. Takes ownership of `inner` (closed with the composite, also on
 * failure). Returns 0, TESS_EINVAL (reason in `err`), TESS_ENOMEM.
 */
TESS_API int tess_cachedstore_open(tess_store_t **out, tess_store_t *inner, tess_loop_t *loop,
                                   const tess_l2_opts_t *opts, char *err, size_t errcap);
/* Counters of the L2 layer (tests and /metrics); safe from any thread while the store is open. */
typedef struct tess_l2_stats {
    uint64_t hits;   /* answered from Redis */
    uint64_t misses; /* went to the inner store */
    uint64_t errors; /* Redis calls that failed (outage, timeout) */
} tess_l2_stats_t;
TESS_API void tess_cachedstore_stats(tess_store_t *store, tess_l2_stats_t *out);

/*
 * Someone else wrote row `sid` of the inner store (a NOTIFY from the database): the L2 copy is dropped so
 * the next lookup reads the row. TESS_L2_CHANGED keeps a tombstone (a logout racing the write stays a
 * logout); TESS_L2_INSERTED removes a tombstone too (the row exists now); TESS_L2_GONE writes one (the row
 * is gone: a lookup that read it before the delete cannot write its copy back). Calls `cb(arg, rc, NULL)`
 * once Redis has answered (rc 0 or the Redis error). Returns 0, TESS_EINVAL, TESS_ENOMEM (no callback).
 */
typedef enum tess_l2_forget { TESS_L2_CHANGED = 0, TESS_L2_INSERTED, TESS_L2_GONE } tess_l2_forget_t;
TESS_API int tess_cachedstore_forget(tess_store_t *store, tess_str_t sid, tess_l2_forget_t how, tess_store_cb cb,
                                     void *arg);

#ifdef __cplusplus
}
#endif
#endif
