/*
 * Strategies behind one "authenticate this request" call.
 *
 *   db      signed cookie -> the store (SQLite, PostgreSQL)
 *   redis   signed cookie -> the Redis store
 *   jwt     HS256 token in the cookie, or with a JWE format NextAuth's / Auth.js's encrypted one; nothing stored
 *   cached  signed cookie -> near-cache -> the store
 *
 * Principles kept here: the signature is verified before any cache or store is asked (a forged cookie
 * costs microseconds and never reaches a backend); polling never writes (touch is throttled by the
 * session policy); a backend outage fails closed (TESS_EUNAVAIL, never a session).
 *
 * A tess_auth_t belongs to one thread (event loop): it holds that thread's store handle and JWT verifier.
 * Every call below is made on that thread, except tess_auth_get_stats(), the one call safe from any thread.
 */
#ifndef TESSERA_AUTH_H
#define TESSERA_AUTH_H

#include "tessera/cache.h"
#include "tessera/common.h"
#include "tessera/cookie.h"
#include "tessera/jwe.h"
#include "tessera/jwt.h"
#include "tessera/revoke.h"
#include "tessera/session.h"
#include "tessera/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tess_strategy {
    TESS_STRATEGY_DB = 0,
    TESS_STRATEGY_REDIS,
    TESS_STRATEGY_JWT,
    TESS_STRATEGY_CACHED,
} tess_strategy_t;

/*
 * "db", "redis", "jwt", "cached" -> strategy. Returns 0 or TESS_EINVAL. tess_strategy_name() returns the
 * name, or "unknown" for a value that names no strategy. Both read a constant table: safe from any thread.
 */
TESS_API int tess_strategy_parse(tess_str_t name, tess_strategy_t *out);
TESS_API const char *tess_strategy_name(tess_strategy_t s);

typedef struct tess_auth_config {
    tess_strategy_t strategy;      /* which strategy */
    const tess_secrets_t *secrets; /* borrowed; signs cookies and JWTs */
    tess_session_policy_t policy;  /* lifetimes */
    tess_str_t cookie_name;        /* borrowed; empty: "connect.sid" (or "session-token" for jwt) */
    tess_store_t *store;           /* borrowed; source of truth for db/redis/cached */
    tess_cache_t *cache;           /* borrowed; near-cache for cached (may be shared by threads) */
    tess_jwt_t *jwt;               /* borrowed; this thread's verifier for jwt */
    tess_session_format_t format;  /* db/cached: express (signed connect.sid) or nextauth / authjs (the raw
                                      session token of NextAuth's "Session" table: shape-checked, unsigned) */
    tess_jwe_t *jwe;               /* borrowed; with it jwt reads and writes this JWE format instead of HS256, in
                                      the JWE's cookie (chunked as NextAuth chunks it; cookie_name empty or equal) */
    tess_revoker_t *revoker;       /* borrowed; this thread's revocation checker (any strategy), or NULL */
    tess_loop_t *loop;             /* borrowed; this thread's loop: with `post`, cached lookups single-flight */
    struct tess_auth *fallback;    /* borrowed; migration: asked when this strategy finds no session */
} tess_auth_config_t;

typedef struct tess_auth tess_auth_t;

/* A snapshot of a tess_auth_t's counters (see tess_auth_get_stats()). */
typedef struct tess_auth_stats {
    uint64_t checks;          /* tess_auth_check() calls */
    uint64_t rejected_early;  /* refused before any cache or store: no cookie, bad format, bad signature */
    uint64_t store_lookups;   /* lookups that went to the store */
    uint64_t touches;         /* throttled touches sent to the store */
    uint64_t fallback_checks; /* requests refused here and asked of the fallback strategy */
    uint64_t copied_forward;  /* sessions found in the fallback and copied into this store */
} tess_auth_stats_t;

/* Returns 0, TESS_EINVAL (a component the strategy needs is missing), TESS_ENOMEM. */
TESS_API int tess_auth_new(tess_auth_t **out, const tess_auth_config_t *cfg);
/*
 * Releases `auth` (NULL is fine). Safe with operations still in flight: their callbacks still run once (for
 * example with TESS_EUNAVAIL when the store is closed afterwards) and the memory goes with the last one. The
 * store and the cache are borrowed: the cache must outlive the store's pending callbacks.
 */
TESS_API void tess_auth_free(tess_auth_t *auth);
TESS_API const tess_auth_config_t *tess_auth_config(const tess_auth_t *auth);
/*
 * Copies the counters into `*out`. The one call safe from any thread (a /metrics handler reads every loop's
 * tess_auth_t while those loops count): each counter is read atomically, on its own, so a snapshot taken
 * during a check may show `checks` already counted and `store_lookups` not yet. `auth` must not be freed
 * meanwhile.
 */
TESS_API void tess_auth_get_stats(const tess_auth_t *auth, tess_auth_stats_t *out);

/*
 * 1 when `auth` keeps its sessions in a store (db, redis, cached): a session is a record apart from its
 * cookie, looked up by id, destroyed by logout, copied into during a migration. 0 when the cookie is the
 * session (jwt: nothing is stored, logout needs a revoker). Fixed at tess_auth_new(); owning thread, like
 * the rest.
 */
TESS_API int tess_auth_keeps_sessions(const tess_auth_t *auth);

/*
 * 1 when tess_auth_logout_everywhere() really ends every session and every token of the user: a strategy
 * that keeps sessions always can (store destroy_user); a token strategy only with a revoker (the per-user
 * cut-off). With a fallback (migration), 1 only when the fallback can too, since its sessions are ended by
 * the same call. 0: some of the user's tokens stay valid until they expire (answer "cannot", e.g. 409,
 * rather than pretend). Fixed at tess_auth_new(); owning thread, like the rest.
 */
TESS_API int tess_auth_can_revoke_everywhere(const tess_auth_t *auth);

/*
 * Completion of check/login/logout. rc: 0; TESS_EDENIED (no cookie, bad signature, unknown, expired or
 * revoked session: answer 401); TESS_EUNAVAIL / TESS_ETIMEOUT (backend down: answer 503); others.
 * `sess` is borrowed for the call. `cookie` (login only) is the encoded cookie value to send.
 */
typedef void (*tess_auth_cb)(void *arg, int rc, const tess_session_t *sess, tess_str_t cookie);

/*
 * Authenticates a request from its Cookie header (may be empty). Always calls `cb` exactly once, possibly
 * before returning. When the session is due a touch, the touch is sent to the store (fire and forget) and
 * the cached copy updated.
 *
 * Migration: with a `fallback`, a request this strategy refuses (no session; not an outage) is asked of the
 * fallback too, so sessions of the strategy being moved away from keep working until they expire. A session
 * found there is copied forward into this strategy's store when both keep sessions in stores (same id, same
 * cookie: the next request is answered here).
 */
TESS_API void tess_auth_check(tess_auth_t *auth, tess_str_t cookie_header, int64_t now_ms, tess_auth_cb cb, void *arg);

/* Creates a session (a fresh 256-bit id; for jwt a signed token with a fresh jti). Calls `cb` once. */
TESS_API void tess_auth_login(tess_auth_t *auth, tess_str_t user_id, tess_str_t role, int64_t now_ms, tess_auth_cb cb,
                              void *arg);

/* Ends session `sid` (store destroy + cache eviction; for jwt nothing is stored). Calls `cb` once. */
TESS_API void tess_auth_logout(tess_auth_t *auth, tess_str_t sid, tess_auth_cb cb, void *arg);

/*
 * Ends session `s` as tess_auth_check() returned it: like tess_auth_logout(), and for jwt, when a revoker is
 * configured, puts the token's jti on the deny list until its expiry (without a revoker nothing is stored:
 * the token stays valid until it expires, only the browser forgets it). Calls `cb` once.
 */
TESS_API void tess_auth_logout_session(tess_auth_t *auth, const tess_session_t *s, tess_auth_cb cb, void *arg);

/*
 * Logs user `user_id` out everywhere: every stored session of the user (store destroy_user, near-cache
 * eviction) and, with a revoker, every token issued up to now (per-user cut-off). Calls `cb` once.
 */
TESS_API void tess_auth_logout_everywhere(tess_auth_t *auth, tess_str_t user_id, int64_t now_ms, tess_auth_cb cb,
                                          void *arg);

/* The cookie name in use. */
TESS_API tess_str_t tess_auth_cookie_name(const tess_auth_t *auth);
/*
 * 1 when the cookie may arrive split into `<name>.0`, `<name>.1`, ... (a JWE format, as NextAuth's SessionStore
 * writes large tokens): a logout clears those chunks too, a login the stale ones.
 */
TESS_API int tess_auth_cookie_chunked(const tess_auth_t *auth);

#ifdef __cplusplus
}
#endif
#endif
