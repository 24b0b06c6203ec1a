/*
 * The SQLite store: connect-pg-simple's table shape on a borrowed `sqlite3 *` (or, opened by its driver from
 * "sqlite:PATH", on a connection of its own).
 *
 *   session(sid TEXT PRIMARY KEY, sess TEXT NOT NULL, expire INTEGER NOT NULL, user_id TEXT)
 *   + session_expire_idx(expire), session_user_idx(user_id)
 *
 * `expire` is in ms since the epoch and is the truth (the document's cookie.expires may lag behind a touch).
 * Every statement is prepared once at open. Operations run synchronously (the callback is called before the
 * call returns). The handle belongs to one thread, like its sqlite3 connection.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/nextauth_sql.h"
#include "tessera/error.h"
#include "tessera/store.h"

enum { ST_GET, ST_SET, ST_TOUCH, ST_DESTROY, ST_DESTROY_USER, ST_PING, ST_PRUNE, ST_COUNT };

static const char *const sql_text[ST_COUNT] = {
    [ST_GET] = "SELECT sess, expire FROM session WHERE sid = ?1 AND expire > ?2",
    [ST_SET] = "INSERT INTO session (sid, sess, expire, user_id) VALUES (?1, ?2, ?3, ?4) "
               "ON CONFLICT (sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire, "
               "user_id = excluded.user_id",
    [ST_TOUCH] = "UPDATE session SET expire = ?1 WHERE sid = ?2 AND expire > ?3",
    [ST_DESTROY] = "DELETE FROM session WHERE sid = ?1",
    [ST_DESTROY_USER] = "DELETE FROM session WHERE user_id = ?1",
    [ST_PING] = "SELECT 1",
    [ST_PRUNE] = "DELETE FROM session WHERE sid IN (SELECT sid FROM session WHERE expire <= ?1 LIMIT ?2)",
};

/*
 * The same operations over NextAuth's Prisma tables. `expires`: integer ms (Prisma's native connector), or
 * ISO 8601 text (its driver adapters); read as ms either way.
 */
#define NA_EXP(c)                                                                                                      \
    "(CASE typeof(" c ") WHEN 'integer' THEN " c " WHEN 'real' THEN CAST(" c " AS INTEGER)"                            \
    " ELSE CAST((julianday(" c ") - 2440587.5) * 86400000 AS INTEGER) END)"
#define NA_GET_HEAD "SELECT s.\"userId\", " NA_EXP("s.expires") ", "
#define NA_GET_TAIL                                                                                                    \
    " FROM \"Session\" s JOIN \"User\" u ON u.id = s.\"userId\" WHERE s.\"sessionToken\" = ?1 AND " NA_EXP(            \
        "s.expires") " > ?2"
static const char *const na_text[ST_COUNT] = {
    [ST_GET] = NULL, /* NA_GET_HEAD, the role expression, NA_GET_TAIL */
    [ST_SET] = "INSERT INTO \"Session\" (id, \"sessionToken\", \"userId\", expires) VALUES (?1, ?2, ?3, ?4)"
               " ON CONFLICT (\"sessionToken\") DO UPDATE SET expires = excluded.expires",
    [ST_TOUCH] = "UPDATE \"Session\" SET expires = ?1 WHERE \"sessionToken\" = ?2 AND " NA_EXP("expires") " > ?3",
    [ST_DESTROY] = "DELETE FROM \"Session\" WHERE \"sessionToken\" = ?1",
    [ST_DESTROY_USER] = "DELETE FROM \"Session\" WHERE \"userId\" = ?1",
    [ST_PING] = "SELECT 1",
    [ST_PRUNE] =
        "DELETE FROM \"Session\" WHERE id IN (SELECT id FROM \"Session\" WHERE " NA_EXP("expires") " <= ?1 LIMIT ?2)",
};

static const char schema_sql[] = "CREATE TABLE IF NOT EXISTS session (sid TEXT PRIMARY KEY NOT NULL, "
                                 "sess TEXT NOT NULL, expire INTEGER NOT NULL, user_id TEXT)";
static const char index_sql[] = "CREATE INDEX IF NOT EXISTS session_expire_idx ON session (expire);"
                                "CREATE INDEX IF NOT EXISTS session_user_idx ON session (user_id)";

typedef struct sqlitestore {
    tess_store_t base;            /* must be first */
    sqlite3 *db;                  /* the connection */
    int owns_db;                  /* opened by the driver: closed with the store */
    sqlite3_stmt *stmt[ST_COUNT]; /* prepared once, reset after each use */
    int nextauth;                 /* over NextAuth's tables */
    tess__nextauth_t na;          /* then: the role, maxAge */
} sqlitestore_t;

/* SQLite result code -> TESS_E*: contention is "unavailable" (retry later), the rest is I/O. */
static int map_rc(int src)
{
    switch (src & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return TESS_EUNAVAIL;
    case SQLITE_NOMEM:
        return TESS_ENOMEM;
    case SQLITE_TOOBIG:
        return TESS_ETOOBIG;
    default:
        return TESS_EIO;
    }
}

static void finish(sqlitestore_t *s, int rc, const tess_session_t *sess, tess_store_cb cb, void *arg)
{
    if (rc != 0 && rc != TESS_ENOTFOUND)
        tess_store_count(&s->base.stats.errors);
    if (cb != NULL)
        cb(arg, rc, sess);
}

static int valid_sid(tess_str_t sid)
{
    return sid.len > 0 && sid.len <= TESS_SID_MAX;
}

/* Steps a write statement to completion; returns the mapped rc. Resets and unbinds it either way. */
static int run_write(sqlite3_stmt *st)
{
    int rc = map_rc(sqlite3_step(st));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sql_get(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg)
{
    sqlitestore_t *s = (sqlitestore_t *)store;
    sqlite3_stmt *st = s->stmt[ST_GET];
    tess_session_t sess;
    int rc, have = 0;

    if (!valid_sid(sid))
        return TESS_EINVAL;
    tess_store_count(&s->base.stats.gets);
    rc = map_rc(sqlite3_bind_text(st, 1, sid.ptr, (int)sid.len, SQLITE_STATIC));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 2, tess_now_ms()));
    if (rc == 0 && s->nextauth)
        rc = map_rc(sqlite3_bind_text(st, 3, s->na.default_role, -1, SQLITE_STATIC));
    if (rc == 0) {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW && s->nextauth) {
            const char *uid = (const char *)sqlite3_column_text(st, 0),
                       *role = (const char *)sqlite3_column_text(st, 2);
            rc = uid == NULL
                     ? TESS_EBADFMT
                     : tess__nextauth_session(&s->na, &sess, sid, tess_strn(uid, (size_t)sqlite3_column_bytes(st, 0)),
                                              sqlite3_column_int64(st, 1),
                                              tess_strn(role, role != NULL ? (size_t)sqlite3_column_bytes(st, 2) : 0));
            have = rc == 0;
        } else if (step == SQLITE_ROW) {
            const char *doc = (const char *)sqlite3_column_text(st, 0);
            int len = sqlite3_column_bytes(st, 0);
            rc = doc == NULL
                     ? TESS_EIO
                     : tess_session_from_json(&sess, sid, tess_strn(doc, (size_t)len), sqlite3_column_int64(st, 1));
            have = rc == 0;
        } else {
            rc = step == SQLITE_DONE ? TESS_ENOTFOUND : map_rc(step);
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    finish(s, rc, have ? &sess : NULL, cb, arg);
    if (have)
        tess_session_clear(&sess);
    return 0;
}

static int sql_set(tess_store_t *store, const tess_session_t *sess, tess_store_cb cb, void *arg)
{
    sqlitestore_t *s = (sqlitestore_t *)store;
    sqlite3_stmt *st = s->stmt[ST_SET];
    char *doc = NULL;
    size_t len = 0;
    int rc;

    if (!valid_sid(tess_str(sess->id)) || sess->user_id[0] == '\0')
        return TESS_EINVAL;
    tess_store_count(&s->base.stats.writes);
    if (s->nextauth) {
        char id[TESS__NEXTAUTH_ROW_ID_LEN + 1];
        if ((rc = tess__nextauth_row_id(id)) == 0 &&
            ((rc = map_rc(sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT))) != 0 ||
             (rc = map_rc(sqlite3_bind_text(st, 2, sess->id, -1, SQLITE_STATIC))) != 0 ||
             (rc = map_rc(sqlite3_bind_text(st, 3, sess->user_id, -1, SQLITE_STATIC))) != 0 ||
             (rc = map_rc(sqlite3_bind_int64(st, 4, sess->expires_ms))) != 0))
            sqlite3_clear_bindings(st);
        else if (rc == 0)
            rc = run_write(st);
        goto out;
    }
    if ((rc = tess_session_to_json(sess, &doc, &len)) != 0)
        goto out;
    if ((rc = map_rc(sqlite3_bind_text(st, 1, sess->id, -1, SQLITE_STATIC))) != 0 ||
        (rc = map_rc(sqlite3_bind_text(st, 2, doc, (int)len, SQLITE_STATIC))) != 0 ||
        (rc = map_rc(sqlite3_bind_int64(st, 3, sess->expires_ms))) != 0 ||
        (rc = map_rc(sqlite3_bind_text(st, 4, sess->user_id, -1, SQLITE_STATIC))) != 0) {
        sqlite3_clear_bindings(st);
        goto out;
    }
    rc = run_write(st);
out:
    free(doc);
    finish(s, rc, NULL, cb, arg);
    return 0;
}

static int sql_touch(tess_store_t *store, tess_str_t sid, int64_t expires_ms, tess_store_cb cb, void *arg)
{
    sqlitestore_t *s = (sqlitestore_t *)store;
    sqlite3_stmt *st = s->stmt[ST_TOUCH];
    int rc;

    if (!valid_sid(sid))
        return TESS_EINVAL;
    tess_store_count(&s->base.stats.writes);
    /* `expire > now`: a destroyed or expired row is never brought back. */
    if ((rc = map_rc(sqlite3_bind_int64(st, 1, expires_ms))) == 0 &&
        (rc = map_rc(sqlite3_bind_text(st, 2, sid.ptr, (int)sid.len, SQLITE_STATIC))) == 0 &&
        (rc = map_rc(sqlite3_bind_int64(st, 3, tess_now_ms()))) == 0) {
        rc = map_rc(sqlite3_step(st));
        if (rc == 0 && sqlite3_changes(s->db) == 0)
            rc = TESS_ENOTFOUND;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    finish(s, rc, NULL, cb, arg);
    return 0;
}

static int sql_destroy(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg)
{
    sqlitestore_t *s = (sqlitestore_t *)store;
    sqlite3_stmt *st = s->stmt[ST_DESTROY];
    int rc;

    if (!valid_sid(sid))
        return TESS_EINVAL;
    tess_store_count(&s->base.stats.writes);
    rc = map_rc(sqlite3_bind_text(st, 1, sid.ptr, (int)sid.len, SQLITE_STATIC));
    rc = rc == 0 ? run_write(st) : rc;
    sqlite3_clear_bindings(st);
    finish(s, rc, NULL, cb, arg);
    return 0;
}

static int sql_destroy_user(tess_store_t *store, tess_str_t user_id, tess_store_cb cb, void *arg)
{
    sqlitestore_t *s = (sqlitestore_t *)store;
    sqlite3_stmt *st = s->stmt[ST_DESTROY_USER];
    int rc;

    if (user_id.len == 0 || user_id.len > TESS_USER_ID_MAX)
        return TESS_EINVAL;
    tess_store_count(&s->base.stats.writes);
    rc = map_rc(sqlite3_bind_text(st, 1, user_id.ptr, (int)user_id.len, SQLITE_STATIC));
    rc = rc == 0 ? run_write(st) : rc;
    sqlite3_clear_bindings(st);
    finish(s, rc, NULL, cb, arg);
    return 0;
}

static int sql_ping(tess_store_t *store, tess_store_cb cb, void *arg)
{
    sqlitestore_t *s = (sqlitestore_t *)store;
    int rc = map_rc(sqlite3_step(s->stmt[ST_PING]));
    sqlite3_reset(s->stmt[ST_PING]);
    finish(s, rc, NULL, cb, arg);
    return 0;
}

static void sql_close(tess_store_t *store)
{
    sqlitestore_t *s = (sqlitestore_t *)store;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    if (s->owns_db)
        sqlite3_close(s->db);
    free(s); /* a borrowed connection is the caller's */
}

static int sql_prune(tess_store_t *store, int64_t now_ms, int batch, tess_store_cb cb, void *arg)
{
    sqlitestore_t *s = (sqlitestore_t *)store;
    sqlite3_stmt *st = s->stmt[ST_PRUNE];
    int rc;

    if (batch <= 0)
        return TESS_EINVAL;
    if ((rc = map_rc(sqlite3_bind_int64(st, 1, now_ms))) == 0 && (rc = map_rc(sqlite3_bind_int(st, 2, batch))) == 0)
        rc = run_write(st);
    else
        sqlite3_clear_bindings(st);
    finish(s, rc != 0 ? rc : sqlite3_changes(s->db), NULL, cb, arg);
    return 0;
}

static const tess_store_ops_t sqlitestore_ops = {
    .name = "sqlite",
    .get = sql_get,
    .set = sql_set,
    .touch = sql_touch,
    .destroy = sql_destroy,
    .destroy_user = sql_destroy_user,
    .ping = sql_ping,
    .prune = sql_prune,
    .close = sql_close,
};

/* 1 when table `session` has a user_id column (a table made by connect-pg-simple's schema lacks it). */
static int has_user_id(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('session') WHERE name = 'user_id'", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        found = 1;
    sqlite3_finalize(st);
    return found;
}

int tess_sqlitestore_open(tess_store_t **out, struct sqlite3 *db, char *errbuf, size_t errcap)
{
    sqlitestore_t *s = NULL;
    int rc = TESS_EIO, src;

    *out = NULL;
    if (errbuf != NULL && errcap > 0)
        errbuf[0] = '\0';
    if (db == NULL)
        return TESS_EINVAL;
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        rc = TESS_ENOMEM;
        goto out;
    }
    s->base.ops = &sqlitestore_ops;
    s->db = db;
    if ((src = sqlite3_exec(db, schema_sql, NULL, NULL, NULL)) != SQLITE_OK)
        goto fail;
    if (!has_user_id(db) &&
        (src = sqlite3_exec(db, "ALTER TABLE session ADD COLUMN user_id TEXT", NULL, NULL, NULL)) != SQLITE_OK)
        goto fail;
    if ((src = sqlite3_exec(db, index_sql, NULL, NULL, NULL)) != SQLITE_OK)
        goto fail;
    for (int i = 0; i < ST_COUNT; i++) {
        if ((src = sqlite3_prepare_v3(db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL)) != SQLITE_OK)
            goto fail;
    }
    *out = &s->base;
    s = NULL;
    rc = 0;
    goto out;
fail:
    rc = map_rc(src) == TESS_ENOMEM ? TESS_ENOMEM : TESS_EIO;
    if (errbuf != NULL && errcap > 0)
        snprintf(errbuf, errcap, "sqlite: %s", sqlite3_errmsg(db));
out:
    if (s != NULL)
        sql_close(&s->base);
    return rc;
}

int tess__sqlite_nextauth_open(tess_store_t **out, const char *path, const tess__nextauth_t *na, char *err,
                               size_t errcap)
{
    char role[TESS_NEXTAUTH_COLUMN_MAX + 48] = "?3", get[1024];
    sqlitestore_t *s;
    int rc;

    *out = NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return TESS_ENOMEM;
    s->base.ops = &sqlitestore_ops;
    s->nextauth = 1;
    s->na = *na;
    s->owns_db = 1;
    if ((rc = tess_sqlite_connect(&s->db, path, err, errcap)) != 0) {
        free(s);
        return rc;
    }
    if (na->role_column[0] != '\0')
        snprintf(role, sizeof(role), "coalesce(CAST(u.\"%s\" AS TEXT), ?3)", na->role_column);
    snprintf(get, sizeof(get), "%s%s%s", NA_GET_HEAD, role, NA_GET_TAIL);
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, i == ST_GET ? get : na_text[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i],
                               NULL) != SQLITE_OK) {
            snprintf(err, errcap, "NextAuth tables: %s", sqlite3_errmsg(s->db));
            sql_close(&s->base);
            return TESS_EIO;
        }
    }
    *out = &s->base;
    return 0;
}

int tess_sqlite_connect(sqlite3 **out, const char *path, char *errbuf, size_t errcap)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    int rc = 0;

    *out = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(errbuf, errcap, "cannot open database %s: %s", path,
                 db != NULL ? sqlite3_errmsg(db) : "out of memory");
        rc = TESS_EIO;
        goto out;
    }
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
                     " PRAGMA temp_store = MEMORY;"
                     /* Reads of the database file from the OS page cache without a pread() per page: a lookup of
                        a random session misses the 2 MB page cache once the table outgrows it (1.1 us of 10 per
                        lookup on 100,000 sessions). The mapping is shared by every connection to the file. */
                     " PRAGMA mmap_size = 268435456",
                     NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(errbuf, errcap, "cannot set up database %s: %s", path, msg != NULL ? msg : sqlite3_errmsg(db));
        rc = TESS_EIO;
        goto out;
    }
    *out = db;
    db = NULL;
out:
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc;
}

/* ---- driver --------------------------------------------------------------------------------------------- */

/* "sqlite:PATH", "sqlite://PATH" or "sqlite:///abs/path": the path, or NULL. */
const char *tess__sqlite_url_path(const char *url)
{
    if (url == NULL || strncmp(url, "sqlite:", 7) != 0)
        return NULL;
    url += 7;
    if (strncmp(url, "//", 2) == 0)
        url += 2;
    return *url != '\0' ? url : NULL;
}

static int drv_accepts(const char *url)
{
    return tess__sqlite_url_path(url) != NULL;
}

static int drv_open(tess_store_t **out, const tess_store_params_t *p, char *err, size_t errcap)
{
    sqlite3 *db = NULL;
    const char *path = tess__sqlite_url_path(p->url);
    int rc;

    *out = NULL;
    if (path == NULL) {
        snprintf(err, errcap, "bad database URL: expected sqlite:PATH");
        return TESS_EINVAL;
    }
    if ((rc = tess_sqlite_connect(&db, path, err, errcap)) != 0)
        return rc;
    if ((rc = tess_sqlitestore_open(out, db, err, errcap)) != 0) {
        sqlite3_close(db);
        return rc;
    }
    ((sqlitestore_t *)*out)->owns_db = 1;
    return 0;
}

/* The schema is created by open (CREATE ... IF NOT EXISTS on the handle's own connection). */
const tess_store_driver_t tess__sqlite_driver = {
    .name = "sqlite",
    .accepts = drv_accepts,
    .migrate = NULL,
    .open = drv_open,
};
