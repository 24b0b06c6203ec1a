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

typedef struct tess_redis_opts {
    const char *url;    /* redis://[user:password@]host:port[/db] or unix:///path[?db=N]; borrowed */
    const char *prefix; /* key prefix (default "session:") */
    int64_t timeout_ms; /* per-command timeout (default 1000 when 0) */
} tess_redis_opts_t;

/* Checks a Redis URL. Returns 0 or TESS_EINVAL with a reason (never the password) in `err`. */
int tess_redis_url_check(const char *url, char *err, size_t errcap);

/*
 * Opens a store handle on `loop` (borrowed; the handle belongs to that loop's thread), connecting
 * asynchronously. Returns 0, TESS_EINVAL (reason in `err`), TESS_ENOMEM.
 */
int tess_redisstore_open(tess_store_t **out, tess_loop_t *loop, const tess_redis_opts_t *opts, char *err,
                         size_t errcap);

/* 1 when the handle's connection is up. */
int tess_redisstore_connected(tess_store_t *store);

#ifdef __cplusplus
}
#endif
#endif
