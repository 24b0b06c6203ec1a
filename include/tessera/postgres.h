/*
 * The PostgreSQL session store: connect-pg-simple's table, driven by libpq in non-blocking pipeline mode
 * on an application event loop (tessera/loop.h). One connection per loop.
 *
 * Table (created if absent, compatible with connect-pg-simple):
 *   session(sid varchar PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL)
 *   + index on expire, + index on (sess->>'userId') for "log out everywhere".
 *
 * Failure behaviour: every query has a timeout; a lost connection is re-established with backoff (capped so
 * that a returning server is used again within 1 s); while disconnected, operations complete at once with
 * TESS_EUNAVAIL (callers fail closed).
 */
#ifndef TESSERA_POSTGRES_H
#define TESSERA_POSTGRES_H

#include "tessera/loop.h"
#include "tessera/store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tess_pg_opts {
    const char *conninfo; /* libpq URI (postgres://...) or key=value string; borrowed during open */
    int64_t timeout_ms;   /* per-query timeout (default 1000 when 0) */
} tess_pg_opts_t;

/*
 * Creates the session table and indexes when absent (synchronously, for start-up only). Returns 0 or
 * TESS_EUNAVAIL / TESS_EIO with a reason in `err`.
 */
TESS_API int tess_pgstore_migrate(const char *conninfo, char *err, size_t errcap);

/*
 * Opens a store handle on `loop` (borrowed; the handle belongs to that loop's thread). Connects
 * asynchronously: the handle is usable at once (operations fail with TESS_EUNAVAIL until connected).
 * Returns 0, TESS_EINVAL (bad conninfo, reason in `err`), TESS_ENOMEM.
 */
TESS_API int tess_pgstore_open(tess_store_t **out, tess_loop_t *loop, const tess_pg_opts_t *opts, char *err,
                               size_t errcap);

/* 1 when the handle's connection is up (for /readyz and tests). */
TESS_API int tess_pgstore_connected(tess_store_t *store);

#ifdef __cplusplus
}
#endif
#endif
