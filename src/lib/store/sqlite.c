/*
 * The SQLite store: connect-pg-simple's table shape on a borrowed `sqlite3 *`.
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

static const char schema_sql[] = "CREATE TABLE IF NOT EXISTS session (sid TEXT PRIMARY KEY NOT NULL, "
                                 "sess TEXT NOT NULL, expire INTEGER NOT NULL, user_id TEXT)";
static const char index_sql[] = "CREATE INDEX IF NOT EXISTS session_expire_idx ON session (expire);"
                                "CREATE INDEX IF NOT EXISTS session_user_idx ON session (user_id)";

typedef struct sqlitestore {
    tess_store_t base;            /* must be first */
    sqlite3 *db;                  /* borrowed connection */
    sqlite3_stmt *stmt[ST_COUNT]; /* prepared once, reset after each use */
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
        s->base.stats.errors++;
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
    s->base.stats.gets++;
    rc = map_rc(sqlite3_bind_text(st, 1, sid.ptr, (int)sid.len, SQLITE_STATIC));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 2, tess_now_ms()));
    if (rc == 0) {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
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
    s->base.stats.writes++;
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
    s->base.stats.writes++;
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
    s->base.stats.writes++;
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
    s->base.stats.writes++;
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
    free(s); /* the connection is the caller's */
}

static const tess_store_ops_t sqlitestore_ops = {
    .name = "sqlite",
    .get = sql_get,
    .set = sql_set,
    .touch = sql_touch,
    .destroy = sql_destroy,
    .destroy_user = sql_destroy_user,
    .ping = sql_ping,
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

int tess_sqlitestore_prune(tess_store_t *store, int64_t now_ms, int batch)
{
    sqlitestore_t *s = (sqlitestore_t *)store;
    sqlite3_stmt *st;
    int rc;

    if (store == NULL || store->ops != &sqlitestore_ops || batch <= 0)
        return TESS_EINVAL;
    st = s->stmt[ST_PRUNE];
    if ((rc = map_rc(sqlite3_bind_int64(st, 1, now_ms))) == 0 && (rc = map_rc(sqlite3_bind_int(st, 2, batch))) == 0)
        rc = run_write(st);
    else
        sqlite3_clear_bindings(st);
    return rc != 0 ? rc : sqlite3_changes(s->db);
}
