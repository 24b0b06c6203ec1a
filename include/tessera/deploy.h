/*
 * A deployment: the configured strategy with every store, cache and Redis connection it needs, opened from
 * URLs and options, so that an application (tessera serve, the tessera command) names no store and no
 * strategy-specific part itself.
 *
 *   strategy   session store (per loop)                        process-wide
 *   db         the database URL's store (SQLite, PostgreSQL)   -
 *   redis      the Redis store (<session>SID)                  -
 *   jwt        none (HS256 or JWE tokens; a revoker with Redis) -
 *   cached     the database store, with Redis an L2 copy       the near-cache
 *
 * Without Redis, a deployment with a database URL that reads JWTs (strategy or fallback jwt, or
 * `token_revocation`) keeps token revocation in the database (tessera/revoke.h, tess_revlist_t): a table next to the
 * others and an in-process mirror that checks read without I/O, followed by tess_deploy_listen()'s loop; /readyz (ping)
 * answers unavailable while the mirror is not known to be current.
 *
 * With a Redis URL every strategy also gets: one Redis connection per loop shared by everything on that loop,
 * token revocation (deny list, per-user cut-off) read through a revocation cache, and one coherence listener
 * per process (tessera/coherence.h) that keeps every cache coherent across instances: it evicts near-cache,
 * revocation and application entries as keys change, and turns the caches off (flushed) while it is down.
 *
 * Threads: a tess_deploy_t is shared by every loop (its own state is locked or immutable); a
 * tess_deploy_loop_t belongs to one loop's thread. tess_deploy_stats() may be called from any thread.
 */
#ifndef TESSERA_DEPLOY_H
#define TESSERA_DEPLOY_H

#include "tessera/auth.h"
#include "tessera/cache.h"
#include "tessera/keyspace.h"
#include "tessera/loop.h"
#include "tessera/nextauth.h"
#include "tessera/redis.h"
#include "tessera/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tess_deploy tess_deploy_t;
typedef struct tess_deploy_loop tess_deploy_loop_t;

typedef struct tess_deploy_opts {
    tess_strategy_t strategy;      /* where sessions live */
    tess_session_format_t format;  /* what they look like: express; nextauth / authjs: jwt (JWE tokens), or db /
                                      cached over NextAuth's Prisma tables (tessera/nextauth.h) */
    tess_nextauth_opts_t nextauth; /* db / cached with nextauth / authjs: the role column, default role, maxAge */
    int has_fallback;              /* migration: `fallback` is set */
    tess_strategy_t fallback;      /* the strategy being moved away from (its sessions keep working) */
    const char *database_url;      /* db/cached store: "sqlite:PATH", postgres://... (borrowed during new) */
    const char *redis_url;         /* NULL or "" for none; may hold a password (borrowed during new) */
    tess_keyspace_t keys;          /* Redis key prefixes (NULLs: defaults; borrowed during new) */
    const tess_secrets_t *secrets; /* borrowed, must outlive the deployment */
    tess_session_policy_t policy;  /* lifetimes */
    const char *cookie_name;       /* NULL or "": the strategy's default (borrowed during new) */
    tess_cache_opts_t cache;       /* near-cache bounds (cached); zeros: defaults */
    int64_t l2_ttl_ms;             /* L2 copy lifetime (cached with Redis; 0: 300 s) */
    int64_t timeout_ms;            /* per Redis / PostgreSQL call (0: 1000) */
    int64_t jwt_leeway_s;          /* JWT exp/nbf tolerance */
    const char *jwt_user_claim;    /* JWT user id claim name (NULL: "userId"; borrowed during new) */
    const char *jwt_role_claim;    /* JWT role claim name (NULL: "role"; borrowed during new) */
    int token_revocation;          /* without Redis: keep token revocation in the database for any strategy */
    /*
     * cached: do not install (tess_deploy_migrate) nor follow (tess_deploy_listen) the session table's
     * triggers. By default another writer's change of a session row (an app's logout deleting it) reaches
     * every instance's near-cache within a second; without them only Redis-carried changes do, and a foreign
     * write is seen when the cached copy expires.
     */
    int no_session_triggers;
    /*
     * Application hooks, called on the listener's loop: a key under <tessera>app: changed on some instance
     * (`name` after the "app:"; empty: everything may have changed), and the listener went down (0: stop
     * caching, flush) or came back (1: flush, cache again). NULL for none.
     */
    void (*on_app_key)(void *arg, tess_str_t name);
    void (*on_coherence)(void *arg, int up);
    /*
     * A session key changed on some instance (logout, revocation, a foreign write), after the deployment's
     * own caches were evicted: `kind` TESS_KEYKIND_SESSION (id: the session id), TESS_KEYKIND_DENY (the
     * token's jti) or TESS_KEYKIND_CUTOFF (the user id); without Redis, revocations another process wrote
     * into the database, once this process's mirror holds them (TESS_KEYKIND_EPOCH, empty id: any token may
     * be revoked). For holders of long-lived requests that must end with their session. NULL for none.
     * ("Everything" from Redis comes as on_app_key with an empty name.)
     */
    void (*on_session_key)(void *arg, tess_key_kind_t kind, tess_str_t id);
    void *app_arg; /* their argument */
} tess_deploy_opts_t;

/*
 * Checks the combination (a strategy needing Redis without a URL, a fallback equal to the strategy, bad
 * prefixes: TESS_EINVAL with a one-line reason in `err`, never a password) and creates the process-wide
 * parts. Nothing connects yet. Returns 0, TESS_EINVAL, TESS_ENOMEM. Free with tess_deploy_free() after every
 * loop part is closed.
 */
TESS_API int tess_deploy_new(tess_deploy_t **out, const tess_deploy_opts_t *opts, char *err, size_t errcap);
TESS_API void tess_deploy_free(tess_deploy_t *d);

/*
 * Creates or upgrades the schema of every store the strategy and the fallback use (PostgreSQL's session
 * table, under the drivers' own locking). Blocks: start-up and tools only. Returns 0 or a TESS_E* with a
 * reason in `err`.
 */
TESS_API int tess_deploy_migrate(tess_deploy_t *d, char *err, size_t errcap);

/*
 * Starts the coherence listeners on `loop` (one per process: with Redis its listener, without it the revocation
 * table's follower when there is one; for cached also the session table's watcher). Until every one reports
 * "up", nothing is cached. Returns 0, or a TESS_E* with a
 * reason in `err`.
 */
TESS_API int tess_deploy_listen(tess_deploy_t *d, tess_loop_t *loop, char *err, size_t errcap);
/* Stops the coherence listener (before its loop goes away); tess_deploy_free() does it too. */
TESS_API void tess_deploy_unlisten(tess_deploy_t *d);
/*
 * 1 when the deployment keeps caches coherent across instances (a listener is or will be running): through
 * Redis, and for cached through the session table's triggers (unless no_session_triggers): on PostgreSQL a
 * LISTEN connection, on SQLite a poll of the event table the triggers fill.
 */
TESS_API int tess_deploy_coherent(const tess_deploy_t *d);

/*
 * Opens the per-loop part on `loop` (borrowed; the part belongs to that loop's thread): the loop's Redis
 * connection, the session store(s), the JWT verifier, the revoker and the strategy (with its fallback).
 * Networked backends connect asynchronously (operations fail with TESS_EUNAVAIL until they answer).
 * Returns 0, or a TESS_E* with a reason in `err`.
 */
TESS_API int tess_deploy_loop_open(tess_deploy_loop_t **out, tess_deploy_t *d, tess_loop_t *loop, char *err,
                                   size_t errcap);
/*
 * Closes the per-loop part (NULL is a no-op). The Redis connection goes first: its pending commands complete
 * with an error while their stores and strategy still exist. Pending callbacks run before it returns.
 */
TESS_API void tess_deploy_loop_close(tess_deploy_loop_t *l);

/* The loop's strategy, and the one being migrated away from (NULL without a fallback). */
TESS_API tess_auth_t *tess_deploy_loop_auth(const tess_deploy_loop_t *l);
TESS_API tess_auth_t *tess_deploy_loop_fallback(const tess_deploy_loop_t *l);

/*
 * Readiness: completes with 0 when the session store answers (immediately when the strategy keeps none).
 * Same start/callback contract as the store operations (tessera/store.h).
 */
TESS_API int tess_deploy_loop_ping(tess_deploy_loop_t *l, tess_store_cb cb, void *arg);

/*
 * Readiness of every backend this loop's part uses, each checked at once and without blocking (a check is
 * bounded by the call timeout, opts.timeout_ms): the session store(s) on the database URL (their ping), Redis
 * (PING on the loop's connection) and the coherence listener (its state, no I/O).
 */
typedef enum tess_ready_state {
    TESS_READY_UNUSED = 0, /* the deployment does not use this backend */
    TESS_READY_OK,         /* it answered */
    TESS_READY_DOWN,       /* it did not (the check's TESS_E* is in the matching _rc field) */
} tess_ready_state_t;

typedef struct tess_deploy_ready {
    tess_ready_state_t database;  /* the session store(s) on the database URL (strategy and fallback) */
    tess_ready_state_t redis;     /* the loop's Redis connection */
    tess_ready_state_t coherence; /* the coherence listeners (Redis; cached: the session table watcher) */
    int database_rc, redis_rc;    /* 0, or the failed check's TESS_E* */
    /*
     * 1 when requests fail while Redis is down: it holds sessions (strategy or fallback 'redis') or token
     * revocation (a 'jwt' strategy or fallback). 0 when Redis only caches (db, cached): without it requests are
     * answered from the database, slower (caches off), still correct.
     */
    int redis_required;
} tess_deploy_ready_t;

typedef void (*tess_deploy_ready_cb)(void *arg, const tess_deploy_ready_t *ready); /* `ready` borrowed */

/*
 * Starts the checks. Returns 0 and calls `cb` exactly once, possibly before returning (SQLite answers inline;
 * a Redis connection that is down fails at once); or TESS_ENOMEM without calling it. Loop thread only.
 */
TESS_API int tess_deploy_loop_ready(tess_deploy_loop_t *l, tess_deploy_ready_cb cb, void *arg);

/* Deletes up to `batch` expired sessions from the loop's store (rc: count or TESS_E*). Store contract. */
TESS_API int tess_deploy_loop_prune(tess_deploy_loop_t *l, int64_t now_ms, int batch, tess_store_cb cb, void *arg);

/*
 * Tells every instance that application key `name` changed: INCR <tessera>app:<name> on the loop's Redis
 * connection, which every listener (this process's too) reports through on_app_key. Fire and forget; does
 * nothing without Redis. `name`: 1..64 bytes.
 */
TESS_API void tess_deploy_loop_publish(tess_deploy_loop_t *l, tess_str_t name);

/* Process-wide counters of one networked backend (every connection of the process, Redis or PostgreSQL). */
typedef struct tess_backend_stats {
    uint64_t errors;     /* calls that failed (connection down or lost, no reply) and failed connects */
    uint64_t timeouts;   /* commands or connects past their deadline */
    uint64_t reconnects; /* reconnect attempts after a failure */
} tess_backend_stats_t;

typedef struct tess_deploy_stats {
    tess_auth_stats_t auth;        /* every loop's strategy, summed */
    tess_store_stats_t store;      /* every loop's session store, summed */
    const char *store_kind;        /* "sqlite", "postgres" or "redis"; NULL without a session store */
    tess_latency_t store_latency;  /* every loop's store round trips (get, set, touch, destroy), summed */
    int has_cache;                 /* a near-cache exists (cached) */
    tess_cache_stats_t cache;      /* its counters */
    uint64_t flight_followers;     /* its single-flight savings */
    int has_revocation;            /* a revocation cache exists (Redis) */
    tess_cache_stats_t revocation; /* its counters */
    int has_l2;                    /* L2 copies exist (cached with Redis) */
    tess_l2_stats_t l2;            /* every loop's L2 counters, summed */
    int coherence;                 /* -1 no listener, 0 down, 1 up */
    tess_backend_stats_t redis;    /* process-wide */
    tess_backend_stats_t postgres; /* process-wide */
} tess_deploy_stats_t;

/* Sums the counters of every open loop part. Safe from any thread. */
TESS_API void tess_deploy_stats(tess_deploy_t *d, tess_deploy_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
