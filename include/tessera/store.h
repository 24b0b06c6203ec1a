/*
 * The session store interface: one const ops table per store, each store in its own file.
 *
 * Every operation is asynchronous in shape: it takes a completion callback. A store that can answer at
 * once (memory, SQLite) calls the callback before returning; a networked store (Redis, PostgreSQL) calls it
 * later from its event loop. Either way:
 *   - the operation returns 0 when it was started; the callback is then called exactly once;
 *   - it returns a negative TESS_E* when it could not be started; the callback is then never called.
 * The session passed to a callback is borrowed for the duration of the call (copy it to keep it).
 * Callback rc: 0, TESS_ENOTFOUND (get/touch/destroy of an unknown or expired id), TESS_EUNAVAIL or
 * TESS_ETIMEOUT (backend down: callers fail closed), other negatives.
 *
 * Thread-safety: a store handle belongs to one thread (event loop) unless its constructor says otherwise.
 */
#ifndef TESSERA_STORE_H
#define TESSERA_STORE_H

#include <stdatomic.h>

#include "tessera/common.h"
#include "tessera/loop.h"
#include "tessera/session.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tess_store tess_store_t;

typedef void (*tess_store_cb)(void *arg, int rc, const tess_session_t *sess);

typedef struct tess_store_ops {
    const char *name; /* "memory", "sqlite", "redis", "postgres" */
    /* Looks a session up; NOTFOUND when absent or expired. */
    int (*get)(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg);
    /* Creates or replaces a session (whole document); the callback gets NULL. */
    int (*set)(tess_store_t *store, const tess_session_t *sess, tess_store_cb cb, void *arg);
    /* Moves the expiry of an existing session only; NOTFOUND when it is gone (never resurrects). */
    int (*touch)(tess_store_t *store, tess_str_t sid, int64_t expires_ms, tess_store_cb cb, void *arg);
    /* Removes one session; 0 even when it was absent. */
    int (*destroy)(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg);
    /* Removes every session of a user ("log out everywhere"). */
    int (*destroy_user)(tess_store_t *store, tess_str_t user_id, tess_store_cb cb, void *arg);
    /* Answers 0 when the backend is reachable (for /readyz). */
    int (*ping)(tess_store_t *store, tess_store_cb cb, void *arg);
    /* Releases the handle; pending callbacks are called with TESS_EUNAVAIL first. */
    void (*close)(tess_store_t *store);
    /*
     * Deletes up to `batch` sessions expired at `now_ms`; the callback's rc is the count deleted (>= 0; 0 when
     * the backend does not tell) or a negative TESS_E*. NULL when the backend expires sessions by itself
     * (Redis TTLs): tess_store_prune() then completes with 0.
     */
    int (*prune)(tess_store_t *store, int64_t now_ms, int batch, tess_store_cb cb, void *arg);
} tess_store_ops_t;

/*
 * Call counters; every store keeps them (tests count backend calls with them). Bumped by the handle's own
 * thread with tess_store_count() (relaxed atomics), read from any thread with tess_store_get_stats().
 */
typedef struct tess_store_counters {
    _Atomic uint64_t gets;   /* get calls that reached the backend */
    _Atomic uint64_t writes; /* set + touch + destroy + destroy_user */
    _Atomic uint64_t errors; /* callbacks completed with an error other than NOTFOUND */
} tess_store_counters_t;

/* A snapshot of the counters. */
typedef struct tess_store_stats {
    uint64_t gets, writes, errors; /* as in tess_store_counters_t */
} tess_store_stats_t;

/* Base of every store; a store's own struct embeds it as its first member. */
struct tess_store {
    const tess_store_ops_t *ops; /* the store's table */
    tess_store_counters_t stats; /* counters, updated by the store */
};

static inline void tess_store_count(_Atomic uint64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* Safe from any thread while the handle is open. */
static inline void tess_store_get_stats(const tess_store_t *s, tess_store_stats_t *out)
{
    out->gets = atomic_load_explicit(&s->stats.gets, memory_order_relaxed);
    out->writes = atomic_load_explicit(&s->stats.writes, memory_order_relaxed);
    out->errors = atomic_load_explicit(&s->stats.errors, memory_order_relaxed);
}

/* Thin dispatchers. */
static inline int tess_store_get(tess_store_t *s, tess_str_t sid, tess_store_cb cb, void *arg)
{
    return s->ops->get(s, sid, cb, arg);
}
static inline int tess_store_set(tess_store_t *s, const tess_session_t *sess, tess_store_cb cb, void *arg)
{
    return s->ops->set(s, sess, cb, arg);
}
static inline int tess_store_touch(tess_store_t *s, tess_str_t sid, int64_t exp_ms, tess_store_cb cb, void *arg)
{
    return s->ops->touch(s, sid, exp_ms, cb, arg);
}
static inline int tess_store_destroy(tess_store_t *s, tess_str_t sid, tess_store_cb cb, void *arg)
{
    return s->ops->destroy(s, sid, cb, arg);
}
static inline int tess_store_destroy_user(tess_store_t *s, tess_str_t uid, tess_store_cb cb, void *arg)
{
    return s->ops->destroy_user(s, uid, cb, arg);
}
static inline int tess_store_ping(tess_store_t *s, tess_store_cb cb, void *arg)
{
    return s->ops->ping(s, cb, arg);
}
static inline int tess_store_prune(tess_store_t *s, int64_t now_ms, int batch, tess_store_cb cb, void *arg)
{
    if (s->ops->prune == NULL) {
        cb(arg, 0, NULL);
        return 0;
    }
    return s->ops->prune(s, now_ms, batch, cb, arg);
}
static inline void tess_store_close(tess_store_t *s)
{
    if (s != NULL)
        s->ops->close(s);
}

/*
 * Latency by fixed buckets (the Prometheus histogram's, upper bounds in nanoseconds: 50us, 100us, 250us,
 * 500us, 1ms, 2.5ms, 5ms, 10ms, 25ms, 50ms, 100ms, 250ms, 1s; one more slot counts what is above).
 */
#define TESS_LATENCY_BUCKETS 13
#define TESS_LATENCY_BOUNDS_NS                                                                                         \
    {                                                                                                                  \
        50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000, 100000000, 250000000,  \
            1000000000                                                                                                 \
    }

/* A snapshot: observations by bucket (not cumulative) and their total. */
typedef struct tess_latency {
    uint64_t n[TESS_LATENCY_BUCKETS + 1];
    uint64_t sum_ns;
} tess_latency_t;

/*
 * A timing view of `inner` (which it does not own: close it after `inner`, from the same thread): get, set,
 * touch and destroy go to `inner`, each timed from the call to its callback on CLOCK_MONOTONIC into the
 * view's histogram (relaxed atomics: read from any thread with tess_timedstore_latency). The other calls pass
 * through untimed. Returns 0 or TESS_ENOMEM.
 */
TESS_API int tess_timedstore_open(tess_store_t **out, tess_store_t *inner);
/* Adds the view's histogram to `out`. Safe from any thread while the view is open. */
TESS_API void tess_timedstore_latency(const tess_store_t *timed, tess_latency_t *out);

/*
 * Drivers: a store's whole lifecycle, so that an application opens a store from a URL and knows none by name.
 *
 *   sqlite    "sqlite:PATH"                      tessera's session table in a SQLite file (WAL)
 *   postgres  "postgres://...", "postgresql://...", or a libpq key=value string   connect-pg-simple's table
 *   redis     "redis://...", "unix:///path"       connect-redis's format (tessera/redis.h)
 */
typedef struct tess_store_params {
    const char *url;          /* as above; borrowed during the call */
    tess_loop_t *loop;        /* the loop the handle belongs to (postgres, redis) */
    struct tess_redis *redis; /* redis: the loop's shared connection (borrowed), or NULL to open one from url */
    const char *prefix;       /* redis: key prefix (default "session:") */
    int64_t timeout_ms;       /* per backend call (default 1000 when 0) */
} tess_store_params_t;

typedef struct tess_store_driver {
    const char *name; /* "sqlite", "postgres", "redis" */
    /* 1 when `url` is this driver's. */
    int (*accepts)(const char *url);
    /*
     * Creates or upgrades the backend's schema, synchronously (start-up and tools only: it blocks). NULL when
     * there is nothing to create. Returns 0 or a TESS_E* with a reason in `err`.
     */
    int (*migrate)(const tess_store_params_t *p, char *err, size_t errcap);
    /* Opens a handle (owning what it opened). Returns 0 or a TESS_E* with a reason in `err`. */
    int (*open)(tess_store_t **out, const tess_store_params_t *p, char *err, size_t errcap);
} tess_store_driver_t;

/* The driver for `url`, or NULL when none accepts it. */
TESS_API const tess_store_driver_t *tess_store_driver_for_url(const char *url);
/* Migrates (when the driver has a schema) and nothing else. TESS_EINVAL for an unknown URL. */
TESS_API int tess_store_migrate_url(const tess_store_params_t *p, char *err, size_t errcap);
/* Opens the store `p->url` names. TESS_EINVAL (with a reason) for an unknown URL. */
TESS_API int tess_store_open_url(tess_store_t **out, const tess_store_params_t *p, char *err, size_t errcap);

/*
 * In-process memory store. One table may be shared by many handles on many threads (it locks):
 * tess_memstore_table_new() makes the table, tess_memstore_open() a handle on it. Expired entries are
 * removed lazily on access and by tess_memstore_table_prune(). Mainly for tests and single-process use.
 */
typedef struct tess_memstore_table tess_memstore_table_t;
TESS_API int tess_memstore_table_new(tess_memstore_table_t **out);
TESS_API void tess_memstore_table_free(tess_memstore_table_t *t); /* after every handle is closed */
TESS_API size_t tess_memstore_table_prune(tess_memstore_table_t *t, int64_t now_ms);
TESS_API int tess_memstore_open(tess_store_t **out, tess_memstore_table_t *t);

/*
 * SQLite store on an open database handle (`sqlite3 *`, borrowed; one handle per thread, WAL mode).
 * Table: connect-pg-simple's shape, `session(sid TEXT PRIMARY KEY, sess TEXT NOT NULL, expire INTEGER NOT
 * NULL /ms/, user_id TEXT)`, plus indexes on expire and user_id; created if absent.
 * Returns 0, TESS_EIO (with `errbuf` filled when non-NULL), TESS_ENOMEM.
 */
struct sqlite3;
TESS_API int tess_sqlitestore_open(tess_store_t **out, struct sqlite3 *db, char *errbuf, size_t errcap);
/*
 * Opens (creating) a SQLite database file as tessera uses it: WAL, synchronous=NORMAL (a committed
 * transaction survives kill -9 of the process), a 5 s busy timeout, foreign keys. One handle per thread.
 * Returns 0 or TESS_EIO (errbuf filled). Close with sqlite3_close().
 */
TESS_API int tess_sqlite_connect(struct sqlite3 **out, const char *path, char *errbuf, size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
