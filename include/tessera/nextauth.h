/*
 * NextAuth / Auth.js database sessions: the Prisma adapter's tables, as the app's own migrations made them.
 *
 *   "User"    (id text PRIMARY KEY, name, email, ...; optionally a role column the configuration names)
 *   "Session" (id text PRIMARY KEY, "sessionToken" text UNIQUE, "userId" text REFERENCES "User", expires)
 *
 * PostgreSQL: `expires` is timestamp(3) without time zone holding UTC (what Prisma writes). SQLite: Prisma's
 * native connector stores DateTime as integer milliseconds, its driver adapters as ISO 8601 text: both are
 * read, integers are written.
 *
 * The cookie holds the session token itself, unsigned: it is checked for shape (tess_nextauth_token_ok)
 * before any lookup, and an unknown one is cached negatively like any other. A session's id is its token;
 * its user the row's "userId"; its role the configured "User" column, or the default role when there is no
 * such column or it is NULL. Sessions slide as NextAuth's do: a touch sets expires = now + maxAge, at most once
 * per updateAge (the session policy's touch interval), and there is no absolute lifetime.
 *
 * The tables are the app's: tessera checks that they are there (tess_nextauth_migrate) and creates nothing
 * but its triggers (cache coherence, docs/cache-coherence.md).
 */
#ifndef TESSERA_NEXTAUTH_H
#define TESSERA_NEXTAUTH_H

#include "tessera/common.h"
#include "tessera/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TESS_NEXTAUTH_MAX_AGE_MS (30LL * 86400 * 1000) /* NextAuth's session.maxAge default: 30 days */
#define TESS_NEXTAUTH_COLUMN_MAX 63                    /* longest role column name */

typedef struct tess_nextauth_opts {
    const char *role_column;  /* the "User" column holding the role; NULL or "": none (borrowed during open) */
    const char *default_role; /* the role when there is none (NULL or "": "visitor"; borrowed during open) */
    int64_t max_age_ms;       /* session.maxAge: how far a touch moves expires (0: 30 days) */
} tess_nextauth_opts_t;

/*
 * 1 when `token` has the shape of a NextAuth session token: a UUID (8-4-4-4-12 hex digits, what NextAuth
 * 4.24 and Auth.js make with randomUUID) or 64 hex digits (older NextAuth's randomBytes(32)).
 */
TESS_API int tess_nextauth_token_ok(tess_str_t token);

/*
 * Checks `opts`: a role column must be a plain identifier (letters, digits, '_', not starting with a digit,
 * at most TESS_NEXTAUTH_COLUMN_MAX bytes); the default role must be a valid identity role. Returns 0 or
 * TESS_EINVAL with a one-line reason in `err`.
 */
TESS_API int tess_nextauth_check_opts(const tess_nextauth_opts_t *opts, char *err, size_t errcap);

/*
 * Checks (blocking: start-up) that the database `p->url` names (sqlite:PATH or PostgreSQL) holds the two
 * tables with the columns read, and the role column when one is configured. Returns 0, or TESS_EINVAL /
 * TESS_EUNAVAIL / TESS_EIO with a one-line reason in `err` (e.g. "table \"Session\" not found: run the app's
 * Prisma migrations first").
 */
TESS_API int tess_nextauth_migrate(const tess_store_params_t *p, const tess_nextauth_opts_t *opts, char *err,
                                   size_t errcap);

/*
 * Opens a store over the tables (PostgreSQL: on `p->loop`, asynchronously, like tess_pgstore_open; SQLite:
 * its own connection, synchronous calls). set() inserts a "Session" row for an existing "User" (a fresh
 * random id; the token is the session's id) or moves an existing token's expiry. Returns 0, TESS_EINVAL
 * (reason in `err`), TESS_EIO, TESS_ENOMEM.
 */
TESS_API int tess_nextauth_open(tess_store_t **out, const tess_store_params_t *p, const tess_nextauth_opts_t *opts,
                                char *err, size_t errcap);

#ifdef __cplusplus
}
#endif
#endif
