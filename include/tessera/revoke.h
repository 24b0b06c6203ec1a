/*
 * Revocation of stateless tokens, kept in Redis and read through a near-cache:
 *
 *   <prefix>deny:<jti>  exists until the token's own expiry: that one token is logged out
 *   <prefix>nbf:<uid>   a cut-off (ms since the epoch): the user's tokens issued in or before that second are
 *                       logged out ("log out everywhere")
 *
 * Answers are cached in `cache` (positive and negative alike); the cache must be kept coherent by an
 * invalidation listener tracking <prefix> (tessera/coherence.h), which evicts "d:<jti>" and "n:<uid>".
 * A revoker belongs to one loop; the cache may be shared. Redis being down fails closed (TESS_EUNAVAIL).
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

typedef struct tess_revoker_opts {
    const char *url;         /* Redis URL; borrowed during open */
    struct tess_redis *conn; /* a loop's shared connection (tessera/redis.h; borrowed; `url` then unused) */
    const char *prefix;      /* key prefix (default "tessera:") */
    int64_t timeout_ms;      /* per-command timeout (default 1000) */
    tess_cache_t *cache;     /* answers cache (borrowed; may be NULL: every check asks Redis) */
} tess_revoker_opts_t;

/* rc: 0 not revoked / done; TESS_EREVOKED; TESS_EUNAVAIL or TESS_ETIMEOUT (Redis down). */
typedef void (*tess_revoker_cb)(void *arg, int rc);

TESS_API int tess_revoker_open(tess_revoker_t **out, tess_loop_t *loop, const tess_revoker_opts_t *opts, char *err,
                               size_t errcap);
TESS_API void tess_revoker_free(tess_revoker_t *r);

/* Is the token (jti, user, issued at iat_s) revoked? Calls `cb` exactly once, possibly before returning. */
TESS_API void tess_revoker_check(tess_revoker_t *r, tess_str_t jti, tess_str_t uid, int64_t iat_s, int64_t now_ms,
                                 tess_revoker_cb cb, void *arg);
/* Revokes one token until `exp_ms`. Calls `cb` exactly once. */
TESS_API void tess_revoker_deny(tess_revoker_t *r, tess_str_t jti, int64_t exp_ms, tess_revoker_cb cb, void *arg);
/* Revokes every token of `uid` issued in or before the second of `cut_ms`, remembered for `keep_ms`. */
TESS_API void tess_revoker_cut(tess_revoker_t *r, tess_str_t uid, int64_t cut_ms, int64_t keep_ms, tess_revoker_cb cb,
                               void *arg);

/* Cache keys the listener evicts, for a Redis key under the prefix: "d:<jti>" / "n:<uid>". */
#define TESS_REVOKE_DENY_TAG "d:"
#define TESS_REVOKE_CUT_TAG "n:"

#ifdef __cplusplus
}
#endif
#endif
