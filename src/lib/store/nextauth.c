/*
 * NextAuth's database sessions (tessera/nextauth.h): what the PostgreSQL and SQLite stores share when they run
 * over the Prisma adapter's tables, and the entry points that pick one by URL.
 */
#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "identity.h"
#include "store/nextauth_sql.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/pgconn.h"

#define DEFAULT_ROLE "visitor"

static int all_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)p[i]))
            return 0;
    }
    return 1;
}

int tess_nextauth_token_ok(tess_str_t t)
{
    static const size_t groups[] = {8, 4, 4, 4, 12};
    const char *p = t.ptr;

    if (t.len == 64)
        return all_hex(t.ptr, 64);
    if (t.len != 36)
        return 0;
    for (size_t g = 0; g < 5; g++) {
        if (!all_hex(p, groups[g]))
            return 0;
        p += groups[g];
        if (g < 4 && *p++ != '-')
            return 0;
    }
    return 1;
}

static int identifier_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > TESS_NEXTAUTH_COLUMN_MAX || isdigit((unsigned char)s[0]))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return 0;
    }
    return 1;
}

int tess_nextauth_check_opts(const tess_nextauth_opts_t *o, char *err, size_t errcap)
{
    const char *role = o->default_role != NULL && o->default_role[0] != '\0' ? o->default_role : DEFAULT_ROLE;

    if (o->role_column != NULL && o->role_column[0] != '\0' && !identifier_ok(o->role_column)) {
        snprintf(err, errcap, "bad NextAuth role column: letters, digits and '_', at most %d bytes",
                 TESS_NEXTAUTH_COLUMN_MAX);
        return TESS_EINVAL;
    }
    if (strlen(role) > TESS_ROLE_MAX || !tess_session_identity_valid(TESS_STR_LIT("x"), tess_str(role))) {
        snprintf(err, errcap, "bad default role: printable, no blanks, at most %d bytes", TESS_ROLE_MAX);
        return TESS_EINVAL;
    }
    if (o->max_age_ms < 0) {
        snprintf(err, errcap, "bad NextAuth maxAge: a positive number of seconds");
        return TESS_EINVAL;
    }
    return 0;
}

int tess__nextauth_init(tess__nextauth_t *na, const tess_nextauth_opts_t *o, char *err, size_t errcap)
{
    int rc;
    memset(na, 0, sizeof(*na));
    if ((rc = tess_nextauth_check_opts(o, err, errcap)) != 0)
        return rc;
    if (o->role_column != NULL)
        snprintf(na->role_column, sizeof(na->role_column), "%s", o->role_column);
    snprintf(na->default_role, sizeof(na->default_role), "%s",
             o->default_role != NULL && o->default_role[0] != '\0' ? o->default_role : DEFAULT_ROLE);
    na->max_age_ms = o->max_age_ms > 0 ? o->max_age_ms : TESS_NEXTAUTH_MAX_AGE_MS;
    return 0;
}

int tess__nextauth_session(const tess__nextauth_t *na, tess_session_t *out, tess_str_t sid, tess_str_t user_id,
                           int64_t expires_ms, tess_str_t role)
{
    memset(out, 0, sizeof(*out));
    if (role.len == 0)
        role = tess_str(na->default_role);
    if (sid.len > TESS_SID_MAX || user_id.len == 0 || user_id.len > TESS_USER_ID_MAX || role.len > TESS_ROLE_MAX)
        return TESS_EBADFMT;
    if (!tess_session_identity_valid(user_id, role)) {
        tess__identity_refused("a NextAuth session");
        return TESS_EBADFMT;
    }
    memcpy(out->id, sid.ptr, sid.len);
    memcpy(out->user_id, user_id.ptr, user_id.len);
    memcpy(out->role, role.ptr, role.len);
    out->expires_ms = expires_ms;
    out->max_age_ms = na->max_age_ms; /* a touch moves expires to now + maxAge, as NextAuth's does */
    return 0;
}

int tess__nextauth_row_id(char out[TESS__NEXTAUTH_ROW_ID_LEN + 1])
{
    uint8_t raw[TESS__NEXTAUTH_ROW_ID_LEN / 2];
    int rc;
    if ((rc = tess_random_bytes(raw, sizeof(raw))) != 0)
        return rc;
    tess_hex_encode(raw, sizeof(raw), out);
    return 0;
}

/* ---- the tables are there ----------------------------------------------------------------------------------- */

static const char *const needed[][2] = {
    {"Session", "id"}, {"Session", "sessionToken"}, {"Session", "userId"}, {"Session", "expires"}, {"User", "id"},
};

static int sqlite_check(const char *path, const tess__nextauth_t *na, char *err, size_t errcap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = 0;

    if ((rc = tess_sqlite_connect(&db, path, err, errcap)) != 0)
        return rc;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errcap, "NextAuth tables: %s", sqlite3_errmsg(db));
        rc = TESS_EIO;
        goto out;
    }
    for (size_t i = 0; i <= sizeof(needed) / sizeof(needed[0]) && rc == 0; i++) {
        const char *table = i < sizeof(needed) / sizeof(needed[0]) ? needed[i][0] : "User";
        const char *col = i < sizeof(needed) / sizeof(needed[0]) ? needed[i][1] : na->role_column;
        if (col[0] == '\0')
            break;
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, col, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW) {
            snprintf(err, errcap, "column \"%s\".\"%s\" not found: run the app's Prisma migrations first", table, col);
            rc = TESS_EINVAL;
        }
        sqlite3_reset(st);
    }
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

static int pg_check(const char *url, const tess__nextauth_t *na, char *err, size_t errcap)
{
    PGconn *pg = tess_pgconn_connect_sync(url, err, errcap);
    int rc = 0;

    if (pg == NULL)
        return TESS_EUNAVAIL;
    for (size_t i = 0; i <= sizeof(needed) / sizeof(needed[0]) && rc == 0; i++) {
        const char *table = i < sizeof(needed) / sizeof(needed[0]) ? needed[i][0] : "User";
        const char *col = i < sizeof(needed) / sizeof(needed[0]) ? needed[i][1] : na->role_column;
        const char *params[2] = {table, col};
        PGresult *res;
        if (col[0] == '\0')
            break;
        res = PQexecParams(pg,
                           "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                           " AND table_name = $1 AND column_name = $2",
                           2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            tess_pgconn_error_line(err, errcap, "NextAuth tables", PQerrorMessage(pg));
            rc = TESS_EIO;
        } else if (PQntuples(res) == 0) {
            snprintf(err, errcap, "column \"%s\".\"%s\" not found: run the app's Prisma migrations first", table, col);
            rc = TESS_EINVAL;
        }
        PQclear(res);
    }
    PQfinish(pg);
    return rc;
}

/* Checks the options and names the database: 'S' SQLite (`*path` set), 'P' PostgreSQL, 0 (reason in `err`). */
static int database_of(const tess_store_params_t *p, const tess_nextauth_opts_t *opts, tess__nextauth_t *na,
                       const char **path, char *err, size_t errcap)
{
    const tess_store_driver_t *d = tess_store_driver_for_url(p->url);

    if (tess__nextauth_init(na, opts, err, errcap) != 0)
        return 0;
    if ((*path = tess__sqlite_url_path(p->url)) != NULL)
        return 'S';
    if (d != NULL && strcmp(d->name, "postgres") == 0)
        return 'P';
    snprintf(err, errcap, "NextAuth database sessions need sqlite:PATH or postgres://...");
    return 0;
}

int tess_nextauth_migrate(const tess_store_params_t *p, const tess_nextauth_opts_t *opts, char *err, size_t errcap)
{
    tess__nextauth_t na;
    const char *path;

    switch (database_of(p, opts, &na, &path, err, errcap)) {
    case 'S':
        return sqlite_check(path, &na, err, errcap);
    case 'P':
        return pg_check(p->url, &na, err, errcap);
    default:
        return TESS_EINVAL;
    }
}

int tess_nextauth_open(tess_store_t **out, const tess_store_params_t *p, const tess_nextauth_opts_t *opts, char *err,
                       size_t errcap)
{
    tess_pg_opts_t po = {p->url, p->timeout_ms};
    tess__nextauth_t na;
    const char *path;

    *out = NULL;
    switch (database_of(p, opts, &na, &path, err, errcap)) {
    case 'S':
        return tess__sqlite_nextauth_open(out, path, &na, err, errcap);
    case 'P':
        return tess__pg_nextauth_open(out, p->loop, &po, &na, err, errcap);
    default:
        return TESS_EINVAL;
    }
}
