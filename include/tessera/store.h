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

#include "tessera/common.h"
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
} tess_store_ops_t;

/* Call counters; every store keeps them (tests count backend calls with them). */
typedef struct tess_store_stats {
    uint64_t gets;   /* get calls that reached the backend */
    uint64_t writes; /* set + touch + destroy + destroy_user */
    uint64_t errors; /* callbacks completed with an error other than NOTFOUND */
} tess_store_stats_t;

/* Base of every store; a store's own struct embeds it as its first member. */
struct tess_store {
    const tess_store_ops_t *ops; /* the store's table */
    tess_store_stats_t stats;    /* counters, updated by the store */
};

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
static inline void tess_store_close(tess_store_t *s)
{
    if (s != NULL)
        s->ops->close(s);
}

/*
 * In-process memory store. One table may be shared by many handles on many threads (it locks):
 * tess_memstore_table_new() makes the table, tess_memstore_open() a handle on it. Expired entries are
 * removed lazily on access and by tess_memstore_table_prune(). Mainly for tests and single-process use.
 */
typedef struct tess_memstore_table tess_memstore_table_t;
int tess_memstore_table_new(tess_memstore_table_t **out);
void tess_memstore_table_free(tess_memstore_table_t *t); /* after every handle is closed */
size_t tess_memstore_table_prune(tess_memstore_table_t *t, int64_t now_ms);
int tess_memstore_open(tess_store_t **out, tess_memstore_table_t *t);

/*
 * SQLite store on an open database handle (`sqlite3 *`, borrowed; one handle per thread, WAL mode).
 * Table: connect-pg-simple's shape, `session(sid TEXT PRIMARY KEY, sess TEXT NOT NULL, expire INTEGER NOT
 * NULL /ms/, user_id TEXT)`, plus indexes on expire and user_id; created if absent.
 * Returns 0, TESS_EIO (with `errbuf` filled when non-NULL), TESS_ENOMEM.
 */
struct sqlite3;
int tess_sqlitestore_open(tess_store_t **out, struct sqlite3 *db, char *errbuf, size_t errcap);
/* Deletes up to `batch` expired rows; returns the count or a negative TESS_E*. */
int tess_sqlitestore_prune(tess_store_t *store, int64_t now_ms, int batch);

#ifdef __cplusplus
}
#endif
#endif
