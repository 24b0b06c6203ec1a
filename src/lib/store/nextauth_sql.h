/*
 * Inside libtessera (internal): the PostgreSQL and SQLite stores over NextAuth's Prisma tables
 * (tessera/nextauth.h). postgres.c and sqlite.c run the same operations over either table shape; nextauth.c
 * holds what the two share and the public entry points.
 */
#ifndef TESS_STORE_NEXTAUTH_SQL_H
#define TESS_STORE_NEXTAUTH_SQL_H

#include "tessera/nextauth.h"
#include "tessera/postgres.h"
#include "tessera/session.h"

/* The checked options, copied. */
typedef struct tess__nextauth {
    char role_column[TESS_NEXTAUTH_COLUMN_MAX + 1]; /* "" for none */
    char default_role[TESS_ROLE_MAX + 1];           /* never empty */
    int64_t max_age_ms;                             /* > 0 */
} tess__nextauth_t;

/* Fills `na` from `opts` (checked: tess_nextauth_check_opts). Returns 0 or TESS_EINVAL (reason in `err`). */
int tess__nextauth_init(tess__nextauth_t *na, const tess_nextauth_opts_t *opts, char *err, size_t errcap);

/*
 * A looked-up row as a session: id `sid` (the token), user `user_id`, expiry `expires_ms`, role `role` (empty:
 * the default). Sliding by maxAge, no absolute lifetime. Returns 0, or TESS_EBADFMT for an identity that may not
 * be passed on (tess_session_identity_valid: reported once on stderr) or a field too long.
 */
int tess__nextauth_session(const tess__nextauth_t *na, tess_session_t *out, tess_str_t sid, tess_str_t user_id,
                           int64_t expires_ms, tess_str_t role);

/* A fresh "Session".id: 32 lowercase hex digits (128 random bits; the row's key, never a secret). */
#define TESS__NEXTAUTH_ROW_ID_LEN 32
int tess__nextauth_row_id(char out[TESS__NEXTAUTH_ROW_ID_LEN + 1]);

/* sqlite.c: the path of "sqlite:PATH" (also sqlite://PATH, sqlite:///abs), or NULL for another URL. */
const char *tess__sqlite_url_path(const char *url);

/* postgres.c / sqlite.c: the stores over NextAuth's tables. */
int tess__pg_nextauth_open(tess_store_t **out, tess_loop_t *loop, const tess_pg_opts_t *opts,
                           const tess__nextauth_t *na, char *err, size_t errcap);
int tess__sqlite_nextauth_open(tess_store_t **out, const char *path, const tess__nextauth_t *na, char *err,
                               size_t errcap);

#endif
