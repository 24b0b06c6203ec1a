/*
 * Revocation of stateless tokens: a deny list (one token, by its jti, or by its digest when it has none:
 * tess_jwt_token_digest()) and per-user cut-offs (every token of the user issued in or before the cut-off's
 * second: "log out everywhere"). Two homes, one interface:
 *
 * With Redis, read through a near-cache:
 *   <prefix>deny:<id>   exists until the token can no longer be accepted (exp + leeway): that token is out
 *   <prefix>nbf:<uid>   a cut-off (ms since the epoch)
 * Answers are cached in `cache` (positive and negative alike); the cache must be kept coherent by an
 * invalidation listener tracking <prefix> (tessera/coherence.h), which evicts "d:<id>" and "n:<uid>".
 * Redis being down fails closed (TESS_EUNAVAIL).
 *
 * Without Redis, in the database (tess_revlist_t): a table `tess_revocation` in the SQLite file or the
 * PostgreSQL database, and an in-process mirror of it that every check reads (no I/O per check). Writes go
 * to the table first, then into this process's mirror; other processes' mirrors follow the table (SQLite:
 * PRAGMA data_version, polled every TESS_REVLIST_TAIL_MS; PostgreSQL: LISTEN tessera_revocation, the whole
 * table reloaded on every (re)connection). While a mirror is not known to be current (not loaded yet, the
 * LISTEN connection down, no successful poll or heartbeat for `stale_ms`), checks fail closed
 * (TESS_EUNAVAIL). Expired rows and mirror entries are pruned.
 *
 * A revoker belongs to one loop; the cache and the list are shared by every loop of the process.
 */
#ifndef TESSERA_REVOKE_H
#define TESSERA_REVOKE_H

#include "tessera/cache.h"
#include "tessera/common.h"
#include "tessera/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tess_revoker tess_revoker_t;
typedef struct tess_revlist tess_revlist_t;

typedef struct tess_revoker_opts {
    const char *url;         /* Redis URL; borrowed during open */
    struct tess_redis *conn; /* a loop's shared connection (tessera/redis.h; borrowed; `url` then unused) */
    const char *prefix;      /* key prefix (default "tessera:") */
    int64_t timeout_ms;      /* per-command timeout (default 1000) */
    tess_cache_t *cache;     /* answers cache (borrowed; may be NULL: every check asks Redis) */
    tess_revlist_t *list;    /* instead of Redis: the database's list (borrowed, outlives the revoker) */
} tess_revoker_opts_t;

/* rc: 0 not revoked / done; TESS_EREVOKED; TESS_EUNAVAIL or TESS_ETIMEOUT (Redis down). */
typedef void (*tess_revoker_cb)(void *arg, int rc);

TESS_API int tess_revoker_open(tess_revoker_t **out, tess_loop_t *loop, const tess_revoker_opts_t *opts, char *err,
                               size_t errcap);
TESS_API void tess_revoker_free(tess_revoker_t *r);

/*
 * Is the token (id: its jti or digest; user; issued at iat_s) revoked? Calls `cb` exactly once, possibly
 * before returning (with a list: always before returning, from memory).
 */
TESS_API void tess_revoker_check(tess_revoker_t *r, tess_str_t jti, tess_str_t uid, int64_t iat_s, int64_t now_ms,
                                 tess_revoker_cb cb, void *arg);
/*
 * Revokes one token (its jti or digest) until `until_ms`: the last moment it could still be accepted
 * (exp + the verifier's leeway), or later. Calls `cb` exactly once.
 */
TESS_API void tess_revoker_deny(tess_revoker_t *r, tess_str_t jti, int64_t until_ms, tess_revoker_cb cb, void *arg);
/* Revokes every token of `uid` issued in or before the second of `cut_ms`, remembered for `keep_ms`. */
TESS_API void tess_revoker_cut(tess_revoker_t *r, tess_str_t uid, int64_t cut_ms, int64_t keep_ms, tess_revoker_cb cb,
                               void *arg);

/* ---- the database's list ---------------------------------------------------------------------------- */

#define TESS_REVLIST_TAIL_MS 50 /* SQLite: PRAGMA data_version poll period; PostgreSQL: heartbeat / 5 */

typedef struct tess_revlist_opts {
    const char *database_url; /* "sqlite:PATH" or PostgreSQL (URI or key=value); borrowed during new */
    int64_t timeout_ms;       /* per PostgreSQL query (default 1000) */
    int64_t stale_ms;         /* fail closed once the mirror was last known current longer ago (default 1000) */
    size_t max_entries;       /* entries the mirror holds (default 1,000,000); past it, it fails closed */
    int64_t prune_ms;         /* how often the listener drops expired rows and entries (default 60000) */
    /*
     * Optional: rows another process added, once they are in the mirror (on the listener's loop), for holders
     * of long-lived requests that must re-check their token: kind TESS_REVLIST_DENY_ROW (id: the token's id)
     * or TESS_REVLIST_CUT_ROW (id: the user id); TESS_REVLIST_ANY_ROW (id empty) when anything may have
     * changed (a reload after a reconnection, an id stored by its digest).
     */
    void (*on_change)(void *arg, int kind, tess_str_t id);
    void *arg; /* its argument */
} tess_revlist_opts_t;

enum { TESS_REVLIST_DENY_ROW = 0, TESS_REVLIST_CUT_ROW = 1, TESS_REVLIST_ANY_ROW = 2 };

/*
 * Creates the table when absent (blocks: start-up and tools only) and, for SQLite, loads the mirror. Nothing
 * follows other processes until tess_revlist_listen(). Returns 0, TESS_EINVAL (not a database URL),
 * TESS_EIO / TESS_EUNAVAIL (reason in `err`, never a password), TESS_ENOMEM. Thread-safe once made.
 */
TESS_API int tess_revlist_new(tess_revlist_t **out, const tess_revlist_opts_t *opts, char *err, size_t errcap);
/*
 * Keeps the mirror current from `loop` (one listener per list; its callbacks run on that loop). Returns 0 or
 * a TESS_E* with a reason in `err`.
 */
TESS_API int tess_revlist_listen(tess_revlist_t *l, tess_loop_t *loop, char *err, size_t errcap);
/* Stops following (before the listener's loop goes away); the mirror is no longer current. */
TESS_API void tess_revlist_unlisten(tess_revlist_t *l);
/* Frees the list (NULL is a no-op), after every revoker using it is freed. */
TESS_API void tess_revlist_free(tess_revlist_t *l);
/* 1 when checks are answered (the mirror is known current now), 0 when they fail closed. Any thread. */
TESS_API int tess_revlist_current(tess_revlist_t *l);
/* Entries in the mirror (deny entries and cut-offs). Any thread. */
TESS_API size_t tess_revlist_size(tess_revlist_t *l);

/* Cache keys the listener evicts, for a Redis key under the prefix: "d:<jti>" / "n:<uid>". */
#define TESS_REVOKE_DENY_TAG "d:"
#define TESS_REVOKE_CUT_TAG "n:"

#ifdef __cplusplus
}
#endif
#endif
