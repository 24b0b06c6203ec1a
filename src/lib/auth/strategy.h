/*
 * Inside tess_auth_t (internal): the strategy table and the one operation shared by its files.
 *
 *   auth.c      the tess_auth_t object, the table, the operation's lifetime, dispatch
 *   cookie.c    signed cookie -> near-cache -> store: the db, redis and cached rows
 *   token.c     HS256 or JWE token in the cookie, nothing stored: the jwt row
 *   migrate.c   SESSION_FALLBACK: the check that asks the old strategy, copy-forward, the chained logouts
 *
 * A new strategy is one file filling one const tess__strategy_t, one entry in auth.c's table and one value
 * of tess_strategy_t. Nothing outside a row asks which strategy it is: the rows' flags say what they need.
 *
 * Lifetime: every asynchronous path carries one tess__op_t, which holds a reference on its tess_auth_t.
 * tess_auth_free() with operations in flight only marks it released; the last tess__op_free() frees it.
 * Completions after the release still call the user's callback but skip the cache, touch and copy-forward
 * side effects (the store is usually closing then). The cache, borrowed, must outlive every pending store
 * callback.
 */
#ifndef TESS_AUTH_STRATEGY_H
#define TESS_AUTH_STRATEGY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/auth.h"

typedef struct tess__op tess__op_t;

/* One strategy: a const row of auth.c's table. */
typedef struct tess__strategy {
    const char *name;       /* "db", "redis", "jwt", "cached": tess_strategy_parse() / tess_strategy_name() */
    tess_strategy_t id;     /* the public value naming this row */
    tess_str_t cookie_name; /* the cookie when the configuration names none */
    int keeps_sessions;     /* sessions live in cfg.store (required): found by id, copied into, destroyed */
    int uses_cache;         /* cfg.cache is required and consulted; the other rows drop it */
    int reads_jwe;          /* cfg.jwe, when set, is the token format (cookie chunked); the other rows drop it */
    /* What else the configuration must hold (0 or TESS_EINVAL); NULL: nothing beyond the flags above. */
    int (*validate)(const tess_auth_config_t *cfg);
    /*
     * Authenticates the value of this strategy's cookie (found, not empty; checks already counted). Calls
     * `cb` exactly once, possibly before returning; a refusal before any cache or store counts rejected_early.
     */
    void (*check)(tess_auth_t *auth, tess_str_t value, int64_t now_ms, tess_auth_cb cb, void *arg);
    /*
     * Issues `op->sess` (initialised by tess_auth_login()): answers `op` with the session and its cookie
     * value, or an error, through tess__op_done(). `op->buf` holds TESS_SIGNED_COOKIE_MAX bytes.
     */
    void (*login)(tess__op_t *op);
    /*
     * Ends session `sid`; `s` is the session as check returned it (tess_auth_logout_session), or NULL when
     * only the id is known (tess_auth_logout). Calls `cb` exactly once, possibly before returning.
     */
    void (*logout)(tess_auth_t *auth, tess_str_t sid, const tess_session_t *s, tess_auth_cb cb, void *arg);
    /*
     * Ends everything of user `op->key` this strategy keeps, then hands `op` to tess__op_cut_off() (the
     * revoker's per-user cut-off) or answers it with the error that stopped it.
     */
    void (*everywhere)(tess__op_t *op);
} tess__strategy_t;

extern const tess__strategy_t tess__strategy_db;     /* cookie.c */
extern const tess__strategy_t tess__strategy_redis;  /* cookie.c */
extern const tess__strategy_t tess__strategy_cached; /* cookie.c */
extern const tess__strategy_t tess__strategy_jwt;    /* token.c */

/* Counters: written by the owning thread, read by tess_auth_get_stats() from any thread (relaxed). */
typedef struct tess__auth_counters {
    _Atomic uint64_t checks;          /* tess_auth_stats_t.checks */
    _Atomic uint64_t rejected_early;  /* tess_auth_stats_t.rejected_early */
    _Atomic uint64_t store_lookups;   /* tess_auth_stats_t.store_lookups */
    _Atomic uint64_t touches;         /* tess_auth_stats_t.touches */
    _Atomic uint64_t fallback_checks; /* tess_auth_stats_t.fallback_checks */
    _Atomic uint64_t copied_forward;  /* tess_auth_stats_t.copied_forward */
} tess__auth_counters_t;

struct tess_auth {
    tess_auth_config_t cfg;           /* effective configuration (defaults filled in) */
    const tess__strategy_t *strategy; /* the row of cfg.strategy */
    tess__auth_counters_t stats;      /* counters (see above) */
    size_t inflight;                  /* operations not freed yet (this thread only) */
    int released;                     /* tess_auth_free() was called; freed when inflight drops to 0 */
    char *chunks;                     /* with cfg.jwe: a chunked cookie joined (tess_jwe_max_token_len bytes) */
};

/* An in-flight operation: check, login, logout, logout everywhere, touch, fallback check, chained logout. */
struct tess__op {
    tess_auth_t *auth;          /* owner: one reference, dropped by tess__op_free() */
    tess_auth_cb cb;            /* the caller's callback; NULL when nobody waits (a touch) */
    void *arg;                  /* its argument */
    int64_t now_ms;             /* the request's clock */
    uint64_t gen;               /* cookie check: cache generation read before the store lookup */
    int leader;                 /* cookie check: leads a single-flight, so it must report to the followers */
    int rc;                     /* single-flight follower: the leader's result; chained logout: the primary's */
    int everywhere;             /* chained logout: the whole user rather than one session */
    tess_session_t sess;        /* login's new session; a follower's, a token's or a copied-forward session */
    size_t key_len;             /* bytes in key */
    char key[TESS_SID_MAX + 1]; /* the session id looked up, touched or destroyed; or the user id */
    size_t len;                 /* bytes used in buf */
    char buf[];                 /* `extra` bytes: login's cookie value, a fallback check's Cookie header */
};

/* No cookie to hand out: what every answer but a login's carries. */
extern const tess_str_t tess__no_cookie;

/* Adds one to an internal counter (relaxed: a counter orders nothing). */
static inline void tess__count(_Atomic uint64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/*
 * A zeroed operation of `auth` with `extra` bytes in buf, answering `cb(arg)`; takes a reference on `auth`.
 * Returns NULL when out of memory (nothing taken).
 */
tess__op_t *tess__op_new(tess_auth_t *auth, size_t extra, tess_auth_cb cb, void *arg, int64_t now_ms);
/* Frees `op` (and what op->sess owns) and drops its reference, freeing a released tess_auth_t with the last. */
void tess__op_free(tess__op_t *op);
/* Calls op->cb(op->arg, rc, s, cookie) (`s` may point into `op`), then tess__op_free(op). */
void tess__op_done(tess__op_t *op, int rc, const tess_session_t *s, tess_str_t cookie);
/* A tess_revoker_cb: tess__op_done(op, rc) with no session. */
void tess__op_done_rc(void *op, int rc);
/* The token leeway (JWE's, else HS256's, else 0): how long past exp a revocation must be kept. */
int64_t tess__auth_leeway_s(const tess_auth_t *auth);
/* Copies `key` into op->key (the caller has checked that it fits). */
void tess__op_key(tess__op_t *op, tess_str_t key);
/*
 * The last step of logging user `op->key` out everywhere: with a revoker, a per-user cut-off for every token
 * issued up to op->now_ms, kept as long as any such token can live; then answers `op` (0 without a revoker).
 */
void tess__op_cut_off(tess__op_t *op);

/* The check, logout and logout everywhere of `auth`'s own strategy, its fallback not asked (migrate.c). */
void tess__auth_check_alone(tess_auth_t *auth, tess_str_t cookie_header, int64_t now_ms, tess_auth_cb cb, void *arg);
void tess__auth_logout_alone(tess_auth_t *auth, const tess_session_t *s, tess_auth_cb cb, void *arg);
void tess__auth_everywhere_alone(tess_auth_t *auth, tess_str_t user_id, int64_t now_ms, tess_auth_cb cb, void *arg);

/* migrate.c: tess_auth_check() of an `auth` with a fallback. */
void tess__migrate_check(tess_auth_t *auth, tess_str_t cookie_header, int64_t now_ms, tess_auth_cb cb, void *arg);
/*
 * migrate.c: logs session `s` out (user_id ignored), or with `s` NULL user `user_id` everywhere, in `auth`
 * and then in its fallback: the session may live in either. Calls `cb` once with the first error other than
 * "not there".
 */
void tess__migrate_logout(tess_auth_t *auth, const tess_session_t *s, tess_str_t user_id, int64_t now_ms,
                          tess_auth_cb cb, void *arg);

#endif
