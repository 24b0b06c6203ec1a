/*
 * The session table's writes, reported by the database (dbwatch.h).
 */
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "cache/dbwatch.h"
#include "store/nextauth_sql.h"
#include "tessera/error.h"
#include "tessera/pgconn.h"
#include "tessera/store.h"

#define CHANNEL "tessera_session"
/* pg_advisory_xact_lock key of this migration ('tess', 4). */
#define PG_MIGRATE_LOCK "SELECT pg_advisory_xact_lock(1952805747, 4)"
#define PRUNE_EVERY_MS 10000

/*
 * An update that only moves `expire` later is a touch: nobody's copy becomes wrong (a copy with the older
 * expiry is looked up again a little early), so it is not reported. Everything else is.
 */
static const char pg_schema[] =
    "BEGIN;" PG_MIGRATE_LOCK ";"
    "CREATE OR REPLACE FUNCTION tessera_session_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " IF TG_OP = 'TRUNCATE' THEN PERFORM pg_notify('" CHANNEL "', 't'); RETURN NULL; END IF;"
    " IF TG_OP = 'DELETE' THEN PERFORM pg_notify('" CHANNEL "', 'd ' || OLD.sid); RETURN NULL; END IF;"
    " IF TG_OP = 'UPDATE' AND OLD.sid IS DISTINCT FROM NEW.sid THEN"
    "  PERFORM pg_notify('" CHANNEL "', 'd ' || OLD.sid); END IF;"
    " PERFORM pg_notify('" CHANNEL "', CASE TG_OP WHEN 'INSERT' THEN 'i ' ELSE 'u ' END || NEW.sid);"
    " RETURN NULL; END $$;"
    "DROP TRIGGER IF EXISTS tessera_session_notify ON session;"
    "CREATE TRIGGER tessera_session_notify AFTER INSERT OR DELETE ON session FOR EACH ROW"
    " EXECUTE FUNCTION tessera_session_notify();"
    "DROP TRIGGER IF EXISTS tessera_session_notify_update ON session;"
    "CREATE TRIGGER tessera_session_notify_update AFTER UPDATE ON session FOR EACH ROW"
    " WHEN (OLD.sess::text IS DISTINCT FROM NEW.sess::text OR OLD.sid IS DISTINCT FROM NEW.sid"
    " OR NEW.expire < OLD.expire) EXECUTE FUNCTION tessera_session_notify();"
    "DROP TRIGGER IF EXISTS tessera_session_notify_truncate ON session;"
    "CREATE TRIGGER tessera_session_notify_truncate AFTER TRUNCATE ON session FOR EACH STATEMENT"
    " EXECUTE FUNCTION tessera_session_notify();"
    "COMMIT";

#define SQLITE_NOW_MS "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
static const char sqlite_schema[] =
    "CREATE TABLE IF NOT EXISTS tess_session_event (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL,"
    " sid TEXT NOT NULL, at_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS tess_session_event_at ON tess_session_event (at_ms);"
    "CREATE TRIGGER IF NOT EXISTS tess_session_event_ins AFTER INSERT ON session BEGIN"
    " INSERT INTO tess_session_event (op, sid, at_ms) VALUES ('i', NEW.sid, " SQLITE_NOW_MS "); END;"
    "CREATE TRIGGER IF NOT EXISTS tess_session_event_upd AFTER UPDATE ON session"
    " WHEN OLD.sess IS NOT NEW.sess OR OLD.sid IS NOT NEW.sid OR NEW.expire < OLD.expire"
    " OR OLD.user_id IS NOT NEW.user_id BEGIN"
    " INSERT INTO tess_session_event (op, sid, at_ms) SELECT 'd', OLD.sid, " SQLITE_NOW_MS
    " WHERE OLD.sid IS NOT NEW.sid;"
    " INSERT INTO tess_session_event (op, sid, at_ms) VALUES ('u', NEW.sid, " SQLITE_NOW_MS "); END;"
    "CREATE TRIGGER IF NOT EXISTS tess_session_event_del AFTER DELETE ON session BEGIN"
    " INSERT INTO tess_session_event (op, sid, at_ms) VALUES ('d', OLD.sid, " SQLITE_NOW_MS "); END;";

/* NextAuth's "Session" (keyed by "sessionToken") and, with a role column, its "User" (role changes: "U <id>"). */
static const char pg_nextauth_schema[] =
    "BEGIN;SELECT pg_advisory_xact_lock(1952805747, 5);"
    "CREATE OR REPLACE FUNCTION tessera_nextauth_session_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " IF TG_OP = 'TRUNCATE' THEN PERFORM pg_notify('" CHANNEL "', 't'); RETURN NULL; END IF;"
    " IF TG_OP = 'DELETE' THEN PERFORM pg_notify('" CHANNEL "', 'd ' || OLD.\"sessionToken\"); RETURN NULL; END IF;"
    " IF TG_OP = 'UPDATE' AND OLD.\"sessionToken\" IS DISTINCT FROM NEW.\"sessionToken\" THEN"
    "  PERFORM pg_notify('" CHANNEL "', 'd ' || OLD.\"sessionToken\"); END IF;"
    " PERFORM pg_notify('" CHANNEL "', CASE TG_OP WHEN 'INSERT' THEN 'i ' ELSE 'u ' END || NEW.\"sessionToken\");"
    " RETURN NULL; END $$;"
    "DROP TRIGGER IF EXISTS tessera_session_notify ON \"Session\";"
    "CREATE TRIGGER tessera_session_notify AFTER INSERT OR DELETE ON \"Session\" FOR EACH ROW"
    " EXECUTE FUNCTION tessera_nextauth_session_notify();"
    "DROP TRIGGER IF EXISTS tessera_session_notify_update ON \"Session\";"
    "CREATE TRIGGER tessera_session_notify_update AFTER UPDATE ON \"Session\" FOR EACH ROW"
    " WHEN (OLD.\"sessionToken\" IS DISTINCT FROM NEW.\"sessionToken\" OR OLD.\"userId\" IS DISTINCT FROM"
    " NEW.\"userId\" OR NEW.expires < OLD.expires) EXECUTE FUNCTION tessera_nextauth_session_notify();"
    "DROP TRIGGER IF EXISTS tessera_session_notify_truncate ON \"Session\";"
    "CREATE TRIGGER tessera_session_notify_truncate AFTER TRUNCATE ON \"Session\" FOR EACH STATEMENT"
    " EXECUTE FUNCTION tessera_nextauth_session_notify();"
    "CREATE OR REPLACE FUNCTION tessera_nextauth_user_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " PERFORM pg_notify('" CHANNEL "', 'U ' || NEW.id); RETURN NULL; END $$;"
    "DROP TRIGGER IF EXISTS tessera_user_role_notify ON \"User\";";
/* With a role column ("%s" three times: the column), then COMMIT. */
#define PG_NEXTAUTH_ROLE                                                                                               \
    "CREATE TRIGGER tessera_user_role_notify AFTER UPDATE OF \"%s\" ON \"User\" FOR EACH ROW"                          \
    " WHEN (OLD.\"%s\" IS DISTINCT FROM NEW.\"%s\") EXECUTE FUNCTION tessera_nextauth_user_notify();"

static const char sqlite_nextauth_schema[] =
    "CREATE TABLE IF NOT EXISTS tess_session_event (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL,"
    " sid TEXT NOT NULL, at_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS tess_session_event_at ON tess_session_event (at_ms);"
    "CREATE TRIGGER IF NOT EXISTS tess_nextauth_event_ins AFTER INSERT ON \"Session\" BEGIN"
    " INSERT INTO tess_session_event (op, sid, at_ms) VALUES ('i', NEW.\"sessionToken\", " SQLITE_NOW_MS "); END;"
    "CREATE TRIGGER IF NOT EXISTS tess_nextauth_event_upd AFTER UPDATE ON \"Session\""
    " WHEN OLD.\"sessionToken\" IS NOT NEW.\"sessionToken\" OR OLD.\"userId\" IS NOT NEW.\"userId\""
    " OR NEW.expires < OLD.expires BEGIN"
    " INSERT INTO tess_session_event (op, sid, at_ms) SELECT 'd', OLD.\"sessionToken\", " SQLITE_NOW_MS
    " WHERE OLD.\"sessionToken\" IS NOT NEW.\"sessionToken\";"
    " INSERT INTO tess_session_event (op, sid, at_ms) VALUES ('u', NEW.\"sessionToken\", " SQLITE_NOW_MS "); END;"
    "CREATE TRIGGER IF NOT EXISTS tess_nextauth_event_del AFTER DELETE ON \"Session\" BEGIN"
    " INSERT INTO tess_session_event (op, sid, at_ms) VALUES ('d', OLD.\"sessionToken\", " SQLITE_NOW_MS "); END;"
    "DROP TRIGGER IF EXISTS tess_nextauth_user_role;";
#define SQLITE_NEXTAUTH_ROLE                                                                                           \
    "CREATE TRIGGER tess_nextauth_user_role AFTER UPDATE OF \"%s\" ON \"User\" WHEN OLD.\"%s\" IS NOT NEW.\"%s\""      \
    " BEGIN INSERT INTO tess_session_event (op, sid, at_ms) VALUES ('U', NEW.id, " SQLITE_NOW_MS "); END;"

struct tess_dbwatch {
    tess_dbwatch_opts_t o; /* callbacks (database_url: our copy) */
    char *url;             /* the database URL (PostgreSQL: may hold a password; wiped on free) */
    tess_loop_t *loop;     /* the watcher's loop */
    tess_timer_t *timer;   /* SQLite: the poll; PostgreSQL: the heartbeat */
    _Atomic int up;        /* changes are being reported */
    /* PostgreSQL */
    tess_pgconn_t *conn; /* the LISTEN connection */
    int listening;       /* LISTEN answered on this connection */
    int beat_pending;    /* a heartbeat is in flight */
    /* SQLite */
    sqlite3 *db;                  /* the watcher's own connection */
    sqlite3_stmt *version, *tail; /* PRAGMA data_version; rows after a seq */
    sqlite3_stmt *prune;          /* old rows out */
    int64_t data_version;         /* last seen */
    int64_t seq;                  /* last row read */
    int64_t failing_since;        /* monotonic ms of the first failed poll in a row, 0 when polls succeed */
    int64_t next_prune_ms;        /* monotonic */
};

static const char *sqlite_path(const char *url)
{
    return url != NULL ? tess__sqlite_url_path(url) : NULL;
}

static int is_pg(const char *url)
{
    const tess_store_driver_t *d = url != NULL ? tess_store_driver_for_url(url) : NULL;
    return d != NULL && strcmp(d->name, "postgres") == 0;
}

int tess_dbwatch_supported(const char *url)
{
    return sqlite_path(url) != NULL || is_pg(url);
}

static void set_state(tess_dbwatch_t *w, int up)
{
    if (atomic_exchange_explicit(&w->up, up, memory_order_acq_rel) != up && w->o.on_state != NULL)
        w->o.on_state(w->o.arg, up);
}

static void report(tess_dbwatch_t *w, char op, const char *sid, size_t len)
{
    tess_dbwatch_kind_t kind;
    switch (op) {
    case 'i':
        kind = TESS_DBWATCH_INSERTED;
        break;
    case 'u':
        kind = TESS_DBWATCH_CHANGED;
        break;
    case 'd':
        kind = TESS_DBWATCH_GONE;
        break;
    case 'U':
        kind = TESS_DBWATCH_USER;
        break;
    case 't':
        kind = TESS_DBWATCH_ALL;
        len = 0;
        break;
    default:
        return;
    }
    if ((kind == TESS_DBWATCH_ALL ||
         (len > 0 && len <= (kind == TESS_DBWATCH_USER ? TESS_USER_ID_MAX : TESS_SID_MAX))) &&
        w->o.on_change != NULL)
        w->o.on_change(w->o.arg, kind, tess_strn(sid, len));
}

/* ---- migration ---------------------------------------------------------------------------------------------- */

/* The SQL installing the triggers, into `buf`: tessera's table, or NextAuth's (and its role column). */
static const char *schema_of(int pg, const char *nextauth_role_column, char *buf, size_t cap)
{
    const char *col = nextauth_role_column;
    if (col == NULL)
        return pg ? pg_schema : sqlite_schema;
    if (col[0] == '\0')
        snprintf(buf, cap, "%s%s", pg ? pg_nextauth_schema : sqlite_nextauth_schema, pg ? "COMMIT" : "");
    else if (pg)
        snprintf(buf, cap, "%s" PG_NEXTAUTH_ROLE "COMMIT", pg_nextauth_schema, col, col, col);
    else
        snprintf(buf, cap, "%s" SQLITE_NEXTAUTH_ROLE, sqlite_nextauth_schema, col, col, col);
    return buf;
}

int tess_dbwatch_migrate(const char *url, int64_t timeout_ms, const char *nextauth_role_column, char *err,
                         size_t errcap)
{
    const char *path = sqlite_path(url);
    char *msg = NULL, sql[sizeof(pg_nextauth_schema) + sizeof(PG_NEXTAUTH_ROLE) + 3 * 64 + 16];
    int rc = 0;

    if (path != NULL) {
        /* The store's own open creates its table; the triggers need it (NextAuth's tables are the app's). */
        tess_store_params_t p = {.url = url, .timeout_ms = timeout_ms};
        tess_store_t *store = NULL;
        sqlite3 *db = NULL;
        if (nextauth_role_column == NULL) {
            if ((rc = tess_store_open_url(&store, &p, err, errcap)) != 0)
                return rc;
            tess_store_close(store);
        }
        if ((rc = tess_sqlite_connect(&db, path, err, errcap)) != 0)
            return rc;
        if (sqlite3_exec(db, schema_of(0, nextauth_role_column, sql, sizeof(sql)), NULL, NULL, &msg) != SQLITE_OK) {
            snprintf(err, errcap, "session triggers: %s", msg != NULL ? msg : sqlite3_errmsg(db));
            rc = TESS_EIO;
        }
        sqlite3_free(msg);
        sqlite3_close(db);
        return rc;
    }
    if (is_pg(url)) {
        PGconn *pg = tess_pgconn_connect_sync(url, err, errcap);
        if (pg == NULL)
            return TESS_EUNAVAIL;
        rc = tess_pgconn_exec_sync(pg, schema_of(1, nextauth_role_column, sql, sizeof(sql)), err, errcap);
        PQfinish(pg);
        return rc;
    }
    snprintf(err, errcap, "session triggers need sqlite:PATH or postgres://...");
    return TESS_EINVAL;
}

/* ---- SQLite ------------------------------------------------------------------------------------------------- */

/* One poll: the version, and when it moved, every row after the last one read. Returns 0 or -1. */
static int sqlite_poll(tess_dbwatch_t *w)
{
    int64_t v, first = 0;
    int src;

    if (sqlite3_step(w->version) != SQLITE_ROW) {
        sqlite3_reset(w->version);
        return -1;
    }
    v = sqlite3_column_int64(w->version, 0);
    sqlite3_reset(w->version);
    if (v == w->data_version)
        return 0;
    sqlite3_bind_int64(w->tail, 1, w->seq);
    while ((src = sqlite3_step(w->tail)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(w->tail, 0);
        const char *op = (const char *)sqlite3_column_text(w->tail, 1);
        const char *sid = (const char *)sqlite3_column_text(w->tail, 2);
        if (first == 0 && (first = seq) != w->seq + 1 && w->seq > 0)
            report(w, 't', NULL, 0); /* rows pruned before they were read: anything may have changed */
        w->seq = seq;
        if (op != NULL && sid != NULL)
            report(w, op[0], sid, (size_t)sqlite3_column_bytes(w->tail, 2));
    }
    sqlite3_reset(w->tail);
    if (src != SQLITE_DONE)
        return -1;
    w->data_version = v;
    return 0;
}

static void on_sqlite_tick(void *arg)
{
    tess_dbwatch_t *w = arg;
    int64_t t0 = tess_mono_ms();

    if (sqlite_poll(w) == 0) {
        w->failing_since = 0;
        set_state(w, 1);
    } else if (w->failing_since == 0) {
        w->failing_since = t0;
    } else if (t0 - w->failing_since >= 1000) {
        set_state(w, 0); /* a second without reading the table: copies can no longer be trusted */
    }
    if (t0 >= w->next_prune_ms) {
        w->next_prune_ms = t0 + PRUNE_EVERY_MS;
        sqlite3_bind_int64(w->prune, 1, tess_now_ms() - TESS_DBWATCH_KEEP_MS);
        sqlite3_step(w->prune); /* best effort: busy means another connection is writing */
        sqlite3_reset(w->prune);
    }
    w->loop->ops->timer_start(w->timer, TESS_DBWATCH_TAIL_MS);
}

static int sqlite_open(tess_dbwatch_t *w, const char *path, char *err, size_t errcap)
{
    sqlite3_stmt *last = NULL;
    int rc;

    if ((rc = tess_sqlite_connect(&w->db, path, err, errcap)) != 0)
        return rc;
    sqlite3_busy_timeout(w->db, 0); /* on an event loop: a busy table is tried again at the next poll */
    if (sqlite3_prepare_v2(w->db, "PRAGMA data_version", -1, &w->version, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(w->db, "SELECT seq, op, sid FROM tess_session_event WHERE seq > ?1 ORDER BY seq", -1,
                           &w->tail, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(w->db, "DELETE FROM tess_session_event WHERE at_ms < ?1", -1, &w->prune, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(w->db, "SELECT coalesce(max(seq), 0) FROM tess_session_event", -1, &last, NULL) !=
            SQLITE_OK) {
        snprintf(err, errcap, "session events: %s", sqlite3_errmsg(w->db));
        sqlite3_finalize(last);
        return TESS_EIO;
    }
    /* The version before the last seq: a commit in between is read again at the first poll (harmless). */
    if (sqlite3_step(w->version) != SQLITE_ROW || sqlite3_step(last) != SQLITE_ROW) {
        snprintf(err, errcap, "session events: %s", sqlite3_errmsg(w->db));
        sqlite3_finalize(last);
        return TESS_EIO;
    }
    w->data_version = sqlite3_column_int64(w->version, 0);
    w->seq = sqlite3_column_int64(last, 0);
    sqlite3_reset(w->version);
    sqlite3_finalize(last);
    return 0;
}

/* ---- PostgreSQL --------------------------------------------------------------------------------------------- */

enum { PQ_LISTEN, PQ_BEAT };
static const tess_pgconn_stmt_t pg_stmts[] = {
    [PQ_LISTEN] = {"LISTEN " CHANNEL, 0},
    [PQ_BEAT] = {"SELECT 1 AS tessera_session_heartbeat", 0},
};

static void on_pg_listening(void *arg, int rc, const PGresult *res)
{
    tess_dbwatch_t *w = arg;
    (void)res;
    if (rc != 0)
        return; /* the connection goes down and is retried */
    w->listening = 1;
    set_state(w, 1); /* from here on no NOTIFY is missed */
}

static void on_pg_state(void *arg, int up)
{
    tess_dbwatch_t *w = arg;
    w->listening = 0;
    w->beat_pending = 0;
    set_state(w, 0);
    if (up)
        tess_pgconn_query(w->conn, PQ_LISTEN, NULL, 0, on_pg_listening, w);
}

/* "i SID", "u SID", "d SID", "t" */
static void on_pg_notify(void *arg, const char *channel, const char *payload)
{
    tess_dbwatch_t *w = arg;
    if (strcmp(channel, CHANNEL) != 0 || payload[0] == '\0')
        return;
    if (payload[0] == 't')
        report(w, 't', NULL, 0);
    else if (payload[1] == ' ')
        report(w, payload[0], payload + 2, strlen(payload + 2));
}

static void on_pg_beat(void *arg, int rc, const PGresult *res)
{
    tess_dbwatch_t *w = arg;
    (void)rc;
    (void)res;
    w->beat_pending = 0; /* a beat past its deadline tears the connection down: on_pg_state(0) */
}

static void on_pg_tick(void *arg)
{
    tess_dbwatch_t *w = arg;
    if (w->listening && !w->beat_pending && tess_pgconn_connected(w->conn)) {
        w->beat_pending = 1;
        tess_pgconn_query(w->conn, PQ_BEAT, NULL, 0, on_pg_beat, w);
    }
    w->loop->ops->timer_start(w->timer, TESS_DBWATCH_BEAT_MS);
}

/* ---- the watcher -------------------------------------------------------------------------------------------- */

int tess_dbwatch_open(tess_dbwatch_t **out, tess_loop_t *loop, const tess_dbwatch_opts_t *opts, char *err,
                      size_t errcap)
{
    const char *path = sqlite_path(opts->database_url);
    tess_dbwatch_t *w;
    int rc;

    *out = NULL;
    if (path == NULL && !is_pg(opts->database_url)) {
        snprintf(err, errcap, "session triggers need sqlite:PATH or postgres://...");
        return TESS_EINVAL;
    }
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return TESS_ENOMEM;
    w->o = *opts;
    w->loop = loop;
    if ((w->url = strdup(opts->database_url)) == NULL) {
        rc = TESS_ENOMEM;
        goto fail;
    }
    w->o.database_url = w->url;
    if ((w->timer = loop->ops->timer_new(loop, path != NULL ? on_sqlite_tick : on_pg_tick, w)) == NULL) {
        rc = TESS_ENOMEM;
        goto fail;
    }
    if (path != NULL) {
        if ((rc = sqlite_open(w, path, err, errcap)) != 0)
            goto fail;
        w->next_prune_ms = tess_mono_ms() + PRUNE_EVERY_MS;
        loop->ops->timer_start(w->timer, 0); /* the first poll reports up */
    } else {
        tess_pgconn_opts_t po = {
            .conninfo = w->url,
            .timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 1000,
            .stmts = pg_stmts,
            .n_stmts = sizeof(pg_stmts) / sizeof(pg_stmts[0]),
            .name = "session watcher",
            .on_state = on_pg_state,
            .on_notify = on_pg_notify,
            .event_arg = w,
        };
        if ((rc = tess_pgconn_open(&w->conn, loop, &po, err, errcap)) != 0)
            goto fail;
        loop->ops->timer_start(w->timer, TESS_DBWATCH_BEAT_MS);
    }
    *out = w;
    return 0;
fail:
    tess_dbwatch_free(w);
    return rc;
}

void tess_dbwatch_free(tess_dbwatch_t *w)
{
    if (w == NULL)
        return;
    w->o.on_state = NULL; /* closing may complete the LISTEN: report nothing */
    w->o.on_change = NULL;
    if (w->conn != NULL) {
        tess_pgconn_t *c = w->conn;
        w->conn = NULL;
        tess_pgconn_close(c);
    }
    if (w->timer != NULL)
        w->loop->ops->timer_free(w->timer);
    sqlite3_finalize(w->version);
    sqlite3_finalize(w->tail);
    sqlite3_finalize(w->prune);
    sqlite3_close(w->db);
    if (w->url != NULL)
        explicit_bzero(w->url, strlen(w->url));
    free(w->url);
    free(w);
}

int tess_dbwatch_up(const tess_dbwatch_t *w)
{
    return w != NULL && atomic_load_explicit(&w->up, memory_order_acquire);
}
