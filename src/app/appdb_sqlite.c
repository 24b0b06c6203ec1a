/*
 * appdb on SQLite. Every call completes before it returns (SQLite answers in microseconds on a local
 * file); writes that touch two tables run in one IMMEDIATE transaction.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/appdb.h"
#include "tessera/error.h"
#include "tessera/store.h"

#define SCHEMA_VERSION 7

static const char schema_v1[] = "CREATE TABLE IF NOT EXISTS app_user ("
                                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                " name TEXT NOT NULL UNIQUE,"
                                " role TEXT NOT NULL CHECK (role IN ('visitor','agent')),"
                                " password_hash TEXT NOT NULL,"
                                " created_at INTEGER NOT NULL);"
                                "CREATE TABLE IF NOT EXISTS prechat ("
                                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                " visitor_id INTEGER NOT NULL REFERENCES app_user(id),"
                                " agent_id INTEGER REFERENCES app_user(id),"
                                " topic TEXT NOT NULL,"
                                " status TEXT NOT NULL CHECK (status IN ('waiting','active','closed')),"
                                " created_at INTEGER NOT NULL,"
                                " updated_at INTEGER NOT NULL,"
                                " message_count INTEGER NOT NULL DEFAULT 0,"
                                " last_message_id INTEGER NOT NULL DEFAULT 0);"
                                "CREATE INDEX IF NOT EXISTS prechat_status_id ON prechat(status, id);"
                                "CREATE TABLE IF NOT EXISTS message ("
                                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                " prechat_id INTEGER NOT NULL REFERENCES prechat(id),"
                                " sender_id INTEGER NOT NULL REFERENCES app_user(id),"
                                " sender_role TEXT NOT NULL,"
                                " body TEXT NOT NULL,"
                                " created_at INTEGER NOT NULL);"
                                "CREATE INDEX IF NOT EXISTS message_prechat_id ON message(prechat_id, id);";

/* v2: change events between processes sharing the file (appdb_sqlite_listen). */
static const char schema_v2[] = "CREATE TABLE IF NOT EXISTS app_event ("
                                " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                                " name TEXT NOT NULL,"
                                " at INTEGER NOT NULL);"
                                "CREATE INDEX IF NOT EXISTS app_event_at ON app_event(at);";

/* v3: a visitor's open pre-chats are counted on each create (the open bound). */
static const char schema_v3[] = "CREATE INDEX IF NOT EXISTS prechat_visitor_open ON prechat(visitor_id)"
                                " WHERE status <> 'closed';";

/* v4: a user's role changing (or the user going) is a change event, whoever writes the table. */
static const char schema_v4[] = "CREATE TRIGGER IF NOT EXISTS app_user_role_event AFTER UPDATE OF role ON app_user"
                                " WHEN NEW.role IS NOT OLD.role BEGIN"
                                " INSERT INTO app_event(name, at) VALUES ('user:' || NEW.id,"
                                " CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;"
                                "CREATE TRIGGER IF NOT EXISTS app_user_delete_event AFTER DELETE ON app_user BEGIN"
                                " INSERT INTO app_event(name, at) VALUES ('user:' || OLD.id,"
                                " CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)); END;";

/* v5: users of another app (its ids are not ours), found by their id there. */
static const char schema_v5[] = "CREATE UNIQUE INDEX IF NOT EXISTS app_user_external ON app_user(external_id);";

/*
 * v6: an agent's active pre-chats are counted on each join (the agent's capacity); joined_at, and the recent
 * joins by it (the visitors' wait estimate).
 */
static const char schema_v6[] = "CREATE INDEX IF NOT EXISTS prechat_agent_active ON prechat(agent_id)"
                                " WHERE status = 'active';"
                                "CREATE INDEX IF NOT EXISTS prechat_joined ON prechat(joined_at)"
                                " WHERE joined_at IS NOT NULL;";

/* A v6 column of prechat, unless a racing process added it already. */
static int add_prechat_column(sqlite3 *db, const char *name, const char *alter, char **msg)
{
    sqlite3_stmt *st = NULL;
    int have = sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('prechat') WHERE name = ?1", -1, &st, NULL) ==
                   SQLITE_OK &&
               sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return have ? SQLITE_OK : sqlite3_exec(db, alter, NULL, NULL, msg);
}

/* v6's columns: when the pre-chat was joined; whether its visitor was offered to leave a message. */
static int add_v6_columns(sqlite3 *db, char **msg)
{
    int rc = add_prechat_column(db, "joined_at", "ALTER TABLE prechat ADD COLUMN joined_at INTEGER", msg);
    return rc != SQLITE_OK
               ? rc
               : add_prechat_column(db, "wait_offered",
                                    "ALTER TABLE prechat ADD COLUMN wait_offered INTEGER NOT NULL DEFAULT 0", msg);
}

/* v7: the visitor of a waiting pre-chat left a message (POST .../leave), and the contact given with it. */
static int add_v7_columns(sqlite3 *db, char **msg)
{
    int rc = add_prechat_column(db, "left_message",
                                "ALTER TABLE prechat ADD COLUMN left_message INTEGER NOT NULL DEFAULT 0", msg);
    return rc != SQLITE_OK ? rc : add_prechat_column(db, "contact", "ALTER TABLE prechat ADD COLUMN contact TEXT", msg);
}

/* v5's column, unless a racing process added it already. */
static int add_external_id(sqlite3 *db, char **msg)
{
    sqlite3_stmt *st = NULL;
    int have = sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('app_user') WHERE name = 'external_id'", -1, &st,
                                  NULL) == SQLITE_OK &&
               sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return have ? SQLITE_OK : sqlite3_exec(db, "ALTER TABLE app_user ADD COLUMN external_id TEXT", NULL, NULL, msg);
}

enum {
    Q_USER_BY_NAME,
    Q_USER_BY_ID,
    Q_USER_EXTERNAL,
    Q_PRECHAT_INSERT,
    Q_PRECHAT_GET,
    Q_QUEUE_POS,
    Q_JOIN_WAITS,
    Q_WAITING,
    Q_LEAVE,
    Q_JOIN,
    Q_CLOSE,
    Q_MSG_INSERT,
    Q_MSG_BUMP,
    Q_MSG_LIST,
    Q_SWEEP_IDLE,
    Q_SWEEP_NOTE,
    Q_SWEEP_WAIT,
    Q_SWEEP_WAIT_CLOSE,
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_PING,
    Q_PUBLISH,
    Q__COUNT
};

static const char *const queries[Q__COUNT] = {
    [Q_USER_BY_NAME] = "SELECT id, name, role, password_hash FROM app_user WHERE name = ?1",
    [Q_USER_BY_ID] = "SELECT id, name, role, '' FROM app_user WHERE id = ?1",
    /* The no-op update makes RETURNING answer for an existing row too. */
    [Q_USER_EXTERNAL] = "INSERT INTO app_user (name, role, password_hash, created_at, external_id)"
                        " VALUES ('ext:' || ?1, CASE ?2 WHEN 'agent' THEN 'agent' ELSE 'visitor' END, '!', ?3, ?1)"
                        " ON CONFLICT (external_id) DO UPDATE SET external_id = excluded.external_id"
                        " RETURNING id, name, role, ''",
    /* One statement under SQLite's write lock: the count and the insert cannot interleave with another. */
    [Q_PRECHAT_INSERT] = "INSERT INTO prechat(visitor_id, topic, status, created_at, updated_at)"
                         " SELECT ?1, ?2, 'waiting', ?3, ?3 WHERE (SELECT count(*) FROM prechat"
                         " WHERE visitor_id = ?1 AND status <> 'closed') < ?4",
    [Q_PRECHAT_GET] = "SELECT id, visitor_id, coalesce(agent_id, 0), topic, status, created_at, updated_at,"
                      " message_count, last_message_id, left_message, coalesce(contact, '') FROM prechat WHERE id = ?1",
    [Q_QUEUE_POS] = "SELECT count(*) FROM prechat WHERE status = 'waiting' AND id <= ?1",
    [Q_JOIN_WAITS] = "SELECT joined_at - created_at FROM prechat WHERE joined_at IS NOT NULL"
                     " ORDER BY joined_at DESC LIMIT ?1",
    [Q_WAITING] = "SELECT id, visitor_id, coalesce(agent_id, 0), topic, status, created_at, updated_at,"
                  " message_count, last_message_id, left_message, coalesce(contact, '') FROM prechat"
                  " WHERE status = 'waiting' ORDER BY id LIMIT ?1",
    [Q_LEAVE] = "UPDATE prechat SET left_message = 1, contact = ?3, updated_at = ?4"
                " WHERE id = ?1 AND visitor_id = ?2 AND status = 'waiting' AND left_message = 0",
    /* One statement under SQLite's write lock: the agent's count and the change cannot interleave. */
    [Q_JOIN] = "UPDATE prechat SET status = 'active', agent_id = ?2, updated_at = ?3, joined_at = ?3"
               " WHERE id = ?1 AND status = 'waiting' AND (SELECT count(*) FROM prechat a"
               " WHERE a.agent_id = ?2 AND a.status = 'active') < ?4",
    [Q_CLOSE] = "UPDATE prechat SET status = 'closed', updated_at = ?2 WHERE id = ?1 AND status <> 'closed'",
    [Q_MSG_INSERT] = "INSERT INTO message(prechat_id, sender_id, sender_role, body, created_at)"
                     " SELECT ?1, ?2, ?3, ?4, ?5 FROM prechat WHERE id = ?1 AND status <> 'closed'",
    [Q_MSG_BUMP] = "UPDATE prechat SET message_count = message_count + 1, last_message_id = ?2, updated_at = ?3"
                   " WHERE id = ?1",
    [Q_MSG_LIST] = "SELECT id, prechat_id, sender_id, sender_role, body, created_at FROM message"
                   " WHERE prechat_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    [Q_SWEEP_IDLE] = "UPDATE prechat SET status = 'closed', updated_at = ?2 WHERE id IN (SELECT id FROM prechat"
                     " WHERE status = 'active' AND updated_at < ?1 ORDER BY id LIMIT ?3) RETURNING id, agent_id",
    [Q_SWEEP_NOTE] = "INSERT INTO message(prechat_id, sender_id, sender_role, body, created_at)"
                     " SELECT id, coalesce(agent_id, visitor_id), 'system', ?2, ?3 FROM prechat WHERE id = ?1",
    [Q_SWEEP_WAIT] = "UPDATE prechat SET wait_offered = 1 WHERE id IN (SELECT id FROM prechat"
                     " WHERE status = 'waiting' AND wait_offered = 0 AND created_at < ?1 ORDER BY id LIMIT ?2)"
                     " RETURNING id",
    /* Never joined, and no left message (that one waits for the agents however long it takes). */
    [Q_SWEEP_WAIT_CLOSE] = "UPDATE prechat SET status = 'closed', updated_at = ?2 WHERE id IN (SELECT id FROM prechat"
                           " WHERE status = 'waiting' AND left_message = 0 AND created_at < ?1 ORDER BY id LIMIT ?3)"
                           " RETURNING id, 0",
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_PING] = "SELECT 1",
    [Q_PUBLISH] = "INSERT INTO app_event(name, at) VALUES (?1, ?2)",
};

typedef struct appdb_sqlite {
    appdb_t super;             /* base; first member */
    sqlite3 *db;               /* borrowed connection */
    sqlite3_stmt *q[Q__COUNT]; /* prepared once */
} appdb_sqlite_t;

static int map_err(int src)
{
    switch (src & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return TESS_EUNAVAIL;
    case SQLITE_NOMEM:
        return TESS_ENOMEM;
    case SQLITE_CONSTRAINT:
        return TESS_EEXISTS;
    default:
        return TESS_EIO;
    }
}

static sqlite3_stmt *stmt(appdb_sqlite_t *s, int which)
{
    sqlite3_stmt *st = s->q[which];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

/* Runs a statement that returns no rows. Returns 0 or a TESS_E*. */
static int exec_stmt(sqlite3_stmt *st)
{
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE || src == SQLITE_ROW ? 0 : map_err(src);
}

static void copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (t == NULL)
        n = 0;
    if (n >= cap)
        n = cap - 1;
    if (n > 0)
        memcpy(dst, t, n);
    dst[n] = '\0';
}

static void read_prechat(sqlite3_stmt *st, appdb_prechat_t *p)
{
    memset(p, 0, sizeof(*p));
    p->id = sqlite3_column_int64(st, 0);
    p->visitor_id = sqlite3_column_int64(st, 1);
    p->agent_id = sqlite3_column_int64(st, 2);
    copy_text(p->topic, sizeof(p->topic), st, 3);
    copy_text(p->status, sizeof(p->status), st, 4);
    p->created_ms = sqlite3_column_int64(st, 5);
    p->updated_ms = sqlite3_column_int64(st, 6);
    p->message_count = sqlite3_column_int64(st, 7);
    p->last_message_id = sqlite3_column_int64(st, 8);
    p->wait_estimate_ms = -1;
    if (sqlite3_column_count(st) > 10) { /* get and the waiting list: the left message's mark */
        p->left_message = sqlite3_column_int(st, 9) != 0;
        copy_text(p->contact, sizeof(p->contact), st, 10);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The median of the last APP_WAIT_SAMPLES join waits into *out (-1 when none). Returns 0 or a TESS_E*. */
static int load_wait_estimate(appdb_sqlite_t *s, int64_t *out)
{
    sqlite3_stmt *st = stmt(s, Q_JOIN_WAITS);
    int64_t w[APP_WAIT_SAMPLES];
    size_t n = 0;
    int src, rc = 0;

    *out = -1;
    sqlite3_bind_int64(st, 1, APP_WAIT_SAMPLES);
    while (n < APP_WAIT_SAMPLES && (src = sqlite3_step(st)) == SQLITE_ROW)
        w[n++] = sqlite3_column_int64(st, 0);
    if (n < APP_WAIT_SAMPLES && src != SQLITE_DONE)
        rc = map_err(src);
    sqlite3_reset(st);
    if (rc != 0 || n == 0)
        return rc;
    qsort(w, n, sizeof(w[0]), cmp_i64);
    *out = n % 2 ? w[n / 2] : (w[n / 2 - 1] + w[n / 2]) / 2;
    return 0;
}

/* Loads one pre-chat with its queue position. Returns 0, TESS_ENOTFOUND or a TESS_E*. */
/* Grows a row array geometrically (8, 16, ... up to `max`). Returns 0 or TESS_ENOMEM. */
static int grow_rows(void **rows, size_t *cap, size_t size, size_t max)
{
    size_t want = *cap == 0 ? 8 : *cap * 2;
    void *p;
    if (want > max)
        want = max;
    if ((p = realloc(*rows, want * size)) == NULL)
        return TESS_ENOMEM;
    *rows = p;
    *cap = want;
    return 0;
}

static int load_prechat(appdb_sqlite_t *s, int64_t id, appdb_prechat_t *p)
{
    sqlite3_stmt *st = stmt(s, Q_PRECHAT_GET);
    int src, rc = 0;

    sqlite3_bind_int64(st, 1, id);
    src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        rc = TESS_ENOTFOUND;
    } else if (src != SQLITE_ROW) {
        rc = map_err(src);
    } else {
        read_prechat(st, p);
    }
    sqlite3_reset(st);
    if (rc != 0 || strcmp(p->status, "waiting") != 0)
        return rc;
    st = stmt(s, Q_QUEUE_POS);
    sqlite3_bind_int64(st, 1, id);
    if ((src = sqlite3_step(st)) != SQLITE_ROW)
        rc = map_err(src);
    else
        p->queue_position = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc != 0 ? rc : load_wait_estimate(s, &p->wait_estimate_ms);
}

static int complete_prechat(appdb_sqlite_t *s, int rc, int64_t id, appdb_cb cb, void *arg)
{
    appdb_prechat_t p;
    appdb_result_t res = {.rc = rc};

    if (rc == 0 && (rc = load_prechat(s, id, &p)) == 0) {
        res.prechats = &p;
        res.n_prechats = 1;
    }
    res.rc = rc;
    cb(arg, &res);
    return 0;
}

/* One user row of `st` (bound) to the callback. */
static int complete_user(sqlite3_stmt *st, appdb_cb cb, void *arg)
{
    appdb_user_t u;
    appdb_result_t res = {0};
    int src;

    memset(&u, 0, sizeof(u));
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        u.id = sqlite3_column_int64(st, 0);
        copy_text(u.name, sizeof(u.name), st, 1);
        copy_text(u.role, sizeof(u.role), st, 2);
        copy_text(u.pwhash, sizeof(u.pwhash), st, 3);
        res.user = &u;
    } else {
        res.rc = src == SQLITE_DONE ? TESS_ENOTFOUND : map_err(src);
    }
    sqlite3_reset(st);
    cb(arg, &res);
    return 0;
}

static int op_user_by_name(appdb_t *db, tess_str_t name, appdb_cb cb, void *arg)
{
    sqlite3_stmt *st = stmt((appdb_sqlite_t *)db, Q_USER_BY_NAME);
    sqlite3_bind_text(st, 1, name.ptr, (int)name.len, SQLITE_STATIC);
    return complete_user(st, cb, arg);
}

static int op_user_by_id(appdb_t *db, int64_t id, appdb_cb cb, void *arg)
{
    sqlite3_stmt *st = stmt((appdb_sqlite_t *)db, Q_USER_BY_ID);
    sqlite3_bind_int64(st, 1, id);
    return complete_user(st, cb, arg);
}

static int op_user_external(appdb_t *db, tess_str_t external_id, tess_str_t role, int64_t now_ms, appdb_cb cb,
                            void *arg)
{
    sqlite3_stmt *st = stmt((appdb_sqlite_t *)db, Q_USER_EXTERNAL);
    sqlite3_bind_text(st, 1, external_id.ptr, (int)external_id.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, role.ptr, (int)role.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    return complete_user(st, cb, arg);
}

static int op_prechat_create(appdb_t *db, int64_t visitor_id, tess_str_t topic, int64_t max_open, int64_t now_ms,
                             appdb_cb cb, void *arg)
{
    appdb_sqlite_t *s = (appdb_sqlite_t *)db;
    sqlite3_stmt *st = stmt(s, Q_PRECHAT_INSERT);
    int rc;

    sqlite3_bind_int64(st, 1, visitor_id);
    sqlite3_bind_text(st, 2, topic.ptr, (int)topic.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms);
    sqlite3_bind_int64(st, 4, max_open);
    if ((rc = exec_stmt(st)) == 0 && sqlite3_changes(s->db) == 0)
        rc = TESS_EDENIED;
    return complete_prechat(s, rc, rc == 0 ? sqlite3_last_insert_rowid(s->db) : 0, cb, arg);
}

static int op_prechat_get(appdb_t *db, int64_t id, appdb_cb cb, void *arg)
{
    return complete_prechat((appdb_sqlite_t *)db, 0, id, cb, arg);
}

static int op_prechat_waiting(appdb_t *db, size_t limit, appdb_cb cb, void *arg)
{
    appdb_sqlite_t *s = (appdb_sqlite_t *)db;
    appdb_prechat_t *rows = NULL;
    appdb_result_t res = {0};
    sqlite3_stmt *st;
    size_t n = 0;
    int src;

    if (limit > APP_LIST_MAX)
        limit = APP_LIST_MAX;
    if ((rows = calloc(limit > 0 ? limit : 1, sizeof(*rows))) == NULL)
        return TESS_ENOMEM;
    st = stmt(s, Q_WAITING);
    sqlite3_bind_int64(st, 1, (int64_t)limit);
    while (n < limit && (src = sqlite3_step(st)) == SQLITE_ROW) {
        read_prechat(st, &rows[n]);
        rows[n].queue_position = (int64_t)n + 1; /* ordered by id: the queue itself */
        ++n;
    }
    if (n < limit && src != SQLITE_DONE)
        res.rc = map_err(src);
    sqlite3_reset(st);
    res.prechats = rows;
    res.n_prechats = n;
    cb(arg, &res);
    free(rows);
    return 0;
}

static int op_prechat_join(appdb_t *db, int64_t id, int64_t agent_id, int64_t max_active, int64_t now_ms, appdb_cb cb,
                           void *arg)
{
    appdb_sqlite_t *s = (appdb_sqlite_t *)db;
    sqlite3_stmt *st = stmt(s, Q_JOIN);
    int rc;

    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, agent_id);
    sqlite3_bind_int64(st, 3, now_ms);
    sqlite3_bind_int64(st, 4, max_active);
    if ((rc = exec_stmt(st)) == 0 && sqlite3_changes(s->db) == 0) {
        appdb_prechat_t p;
        if ((rc = load_prechat(s, id, &p)) == 0)
            rc = strcmp(p.status, "waiting") == 0 ? TESS_EDENIED : TESS_ECONFLICT; /* still waiting: capacity */
        else if (rc != TESS_ENOTFOUND)
            rc = TESS_ECONFLICT;
    }
    return complete_prechat(s, rc, id, cb, arg);
}

static int op_prechat_leave(appdb_t *db, int64_t id, int64_t visitor_id, tess_str_t contact, tess_str_t body,
                            int64_t now_ms, appdb_cb cb, void *arg)
{
    appdb_sqlite_t *s = (appdb_sqlite_t *)db;
    appdb_result_t res = {0};
    appdb_prechat_t p;
    sqlite3_stmt *st;
    int rc;

    if (body.len > APP_BODY_MAX || contact.len > APP_CONTACT_MAX)
        return TESS_ETOOBIG;
    if ((rc = exec_stmt(stmt(s, Q_BEGIN))) != 0)
        goto out;
    st = stmt(s, Q_LEAVE);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, visitor_id);
    sqlite3_bind_text(st, 3, contact.ptr, (int)contact.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_ms);
    if ((rc = exec_stmt(st)) != 0)
        goto rollback;
    if (sqlite3_changes(s->db) == 0) {
        rc = load_prechat(s, id, &p) == TESS_ENOTFOUND ? TESS_ENOTFOUND : TESS_ECONFLICT;
        goto rollback;
    }
    st = stmt(s, Q_MSG_INSERT);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, visitor_id);
    sqlite3_bind_text(st, 3, "visitor", 7, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, body.ptr, (int)body.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ms);
    if ((rc = exec_stmt(st)) != 0)
        goto rollback;
    st = stmt(s, Q_MSG_BUMP);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, sqlite3_last_insert_rowid(s->db));
    sqlite3_bind_int64(st, 3, now_ms);
    if ((rc = exec_stmt(st)) != 0 || (rc = exec_stmt(stmt(s, Q_COMMIT))) != 0)
        goto rollback;
    goto out;
rollback:
    exec_stmt(stmt(s, Q_ROLLBACK));
out:
    res.rc = rc;
    cb(arg, &res);
    return 0;
}

static int op_prechat_close(appdb_t *db, int64_t id, int64_t now_ms, appdb_cb cb, void *arg)
{
    appdb_sqlite_t *s = (appdb_sqlite_t *)db;
    sqlite3_stmt *st = stmt(s, Q_CLOSE);
    int rc;

    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now_ms);
    if ((rc = exec_stmt(st)) == 0 && sqlite3_changes(s->db) == 0) {
        appdb_prechat_t p;
        rc = load_prechat(s, id, &p) == TESS_ENOTFOUND ? TESS_ENOTFOUND : TESS_ECONFLICT;
    }
    return complete_prechat(s, rc, id, cb, arg);
}

static int op_message_add(appdb_t *db, int64_t prechat_id, int64_t sender_id, tess_str_t role, tess_str_t body,
                          int64_t now_ms, appdb_cb cb, void *arg)
{
    appdb_sqlite_t *s = (appdb_sqlite_t *)db;
    appdb_message_t m;
    appdb_result_t res = {0};
    sqlite3_stmt *st;
    int rc;

    if (body.len > APP_BODY_MAX || role.len > TESS_ROLE_MAX)
        return TESS_ETOOBIG;
    if ((rc = exec_stmt(stmt(s, Q_BEGIN))) != 0)
        goto out;
    st = stmt(s, Q_MSG_INSERT);
    sqlite3_bind_int64(st, 1, prechat_id);
    sqlite3_bind_int64(st, 2, sender_id);
    sqlite3_bind_text(st, 3, role.ptr, (int)role.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, body.ptr, (int)body.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ms);
    if ((rc = exec_stmt(st)) != 0)
        goto rollback;
    if (sqlite3_changes(s->db) == 0) {
        rc = TESS_ECONFLICT; /* closed (or gone: the caller checked it exists) */
        goto rollback;
    }
    memset(&m, 0, sizeof(m));
    m.id = sqlite3_last_insert_rowid(s->db);
    m.prechat_id = prechat_id;
    m.sender_id = sender_id;
    memcpy(m.sender_role, role.ptr, role.len);
    memcpy(m.body, body.ptr, body.len);
    m.created_ms = now_ms;
    st = stmt(s, Q_MSG_BUMP);
    sqlite3_bind_int64(st, 1, prechat_id);
    sqlite3_bind_int64(st, 2, m.id);
    sqlite3_bind_int64(st, 3, now_ms);
    if ((rc = exec_stmt(st)) != 0)
        goto rollback;
    if ((rc = exec_stmt(stmt(s, Q_COMMIT))) != 0)
        goto rollback;
    res.messages = &m;
    res.n_messages = 1;
    goto out;
rollback:
    exec_stmt(stmt(s, Q_ROLLBACK));
out:
    res.rc = rc;
    cb(arg, &res);
    return 0;
}

static int op_messages_list(appdb_t *db, int64_t prechat_id, int64_t after, size_t limit, appdb_cb cb, void *arg)
{
    appdb_sqlite_t *s = (appdb_sqlite_t *)db;
    appdb_message_t *rows = NULL;
    appdb_result_t res = {0};
    sqlite3_stmt *st;
    size_t n = 0, cap = 0;
    int src = SQLITE_DONE;

    if (limit > APP_LIST_MAX)
        limit = APP_LIST_MAX;
    st = stmt(s, Q_MSG_LIST);
    sqlite3_bind_int64(st, 1, prechat_id);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, (int64_t)limit);
    while (n < limit && (src = sqlite3_step(st)) == SQLITE_ROW) {
        /* Rows are 4 KiB each (the body bound): grow with the answer, a poll usually gets none. */
        if (n == cap && grow_rows((void **)&rows, &cap, sizeof(*rows), limit) != 0) {
            res.rc = TESS_ENOMEM;
            break;
        }
        appdb_message_t *m = &rows[n++];
        m->id = sqlite3_column_int64(st, 0);
        m->prechat_id = sqlite3_column_int64(st, 1);
        m->sender_id = sqlite3_column_int64(st, 2);
        copy_text(m->sender_role, sizeof(m->sender_role), st, 3);
        copy_text(m->body, sizeof(m->body), st, 4);
        m->created_ms = sqlite3_column_int64(st, 5);
    }
    if (res.rc == 0 && n < limit && src != SQLITE_DONE)
        res.rc = map_err(src);
    sqlite3_reset(st);
    res.messages = rows;
    res.n_messages = n;
    cb(arg, &res);
    free(rows);
    return 0;
}

/* Collects the ids a RETURNING id statement answers into rows[*n..cap), marked `status`. */
static int sweep_collect(sqlite3_stmt *st, appdb_prechat_t *rows, size_t *n, size_t cap, const char *status)
{
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n >= cap)
            continue; /* the statement's LIMIT keeps within cap; never drop a step half done */
        memset(&rows[*n], 0, sizeof(rows[*n]));
        rows[*n].id = sqlite3_column_int64(st, 0);
        if (sqlite3_column_count(st) > 1)
            rows[*n].agent_id = sqlite3_column_int64(st, 1); /* a closed one: 0 when it never left the queue */
        snprintf(rows[*n].status, sizeof(rows[*n].status), "%s", status);
        rows[*n].wait_estimate_ms = -1;
        ++*n;
    }
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : map_err(src);
}

/* Each closed one in rows[from..to) gets its system note, counted like any message. */
static int sweep_notes(appdb_sqlite_t *s, const appdb_prechat_t *rows, size_t from, size_t to, tess_str_t note,
                       int64_t now_ms)
{
    sqlite3_stmt *st;
    int rc;
    for (size_t i = from; i < to; ++i) {
        st = stmt(s, Q_SWEEP_NOTE);
        sqlite3_bind_int64(st, 1, rows[i].id);
        sqlite3_bind_text(st, 2, note.ptr, (int)note.len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, now_ms);
        if ((rc = exec_stmt(st)) != 0)
            return rc;
        st = stmt(s, Q_MSG_BUMP);
        sqlite3_bind_int64(st, 1, rows[i].id);
        sqlite3_bind_int64(st, 2, sqlite3_last_insert_rowid(s->db));
        sqlite3_bind_int64(st, 3, now_ms);
        if ((rc = exec_stmt(st)) != 0)
            return rc;
    }
    return 0;
}

static int op_prechat_sweep(appdb_t *db, const appdb_sweep_t *sw, int64_t now_ms, appdb_cb cb, void *arg)
{
    appdb_sqlite_t *s = (appdb_sqlite_t *)db;
    appdb_result_t res = {0};
    appdb_prechat_t *rows = NULL;
    size_t n = 0, n_idle, limit = sw->limit;
    sqlite3_stmt *st;
    int rc;

    if (sw->idle_note.len > APP_BODY_MAX || sw->wait_note.len > APP_BODY_MAX)
        return TESS_ETOOBIG;
    if (limit > APP_LIST_MAX)
        limit = APP_LIST_MAX;
    if ((rows = calloc(3 * limit + 1, sizeof(*rows))) == NULL)
        return TESS_ENOMEM;
    if ((rc = exec_stmt(stmt(s, Q_BEGIN))) != 0)
        goto out;
    if (sw->idle_before_ms > 0) {
        st = stmt(s, Q_SWEEP_IDLE);
        sqlite3_bind_int64(st, 1, sw->idle_before_ms);
        sqlite3_bind_int64(st, 2, now_ms);
        sqlite3_bind_int64(st, 3, (int64_t)limit);
        if ((rc = sweep_collect(st, rows, &n, limit, "closed")) != 0)
            goto rollback;
    }
    if ((rc = sweep_notes(s, rows, 0, n, sw->idle_note, now_ms)) != 0)
        goto rollback;
    n_idle = n;
    if (sw->close_before_ms > 0) { /* before the offer: one closed now is not offered too */
        st = stmt(s, Q_SWEEP_WAIT_CLOSE);
        sqlite3_bind_int64(st, 1, sw->close_before_ms);
        sqlite3_bind_int64(st, 2, now_ms);
        sqlite3_bind_int64(st, 3, (int64_t)limit);
        if ((rc = sweep_collect(st, rows, &n, n_idle + limit, "closed")) != 0)
            goto rollback;
    }
    if ((rc = sweep_notes(s, rows, n_idle, n, sw->wait_note, now_ms)) != 0)
        goto rollback;
    if (sw->wait_before_ms > 0) {
        st = stmt(s, Q_SWEEP_WAIT);
        sqlite3_bind_int64(st, 1, sw->wait_before_ms);
        sqlite3_bind_int64(st, 2, (int64_t)limit);
        if ((rc = sweep_collect(st, rows, &n, n + limit, "waiting")) != 0)
            goto rollback;
    }
    if ((rc = exec_stmt(stmt(s, Q_COMMIT))) != 0)
        goto rollback;
    res.prechats = rows;
    res.n_prechats = n;
    goto out;
rollback:
    exec_stmt(stmt(s, Q_ROLLBACK));
out:
    res.rc = rc;
    if (rc != 0)
        res.n_prechats = 0;
    cb(arg, &res);
    free(rows);
    return 0;
}

static int op_ping(appdb_t *db, appdb_cb cb, void *arg)
{
    appdb_sqlite_t *s = (appdb_sqlite_t *)db;
    appdb_result_t res = {0};
    res.rc = exec_stmt(stmt(s, Q_PING));
    cb(arg, &res);
    return 0;
}

static int op_publish(appdb_t *db, tess_str_t name, appdb_cb cb, void *arg)
{
    appdb_sqlite_t *s = (appdb_sqlite_t *)db;
    sqlite3_stmt *st = stmt(s, Q_PUBLISH);
    appdb_result_t res = {0};
    if (name.len == 0 || name.len > APP_EVENT_MAX)
        return TESS_EINVAL;
    sqlite3_bind_text(st, 1, name.ptr, (int)name.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, tess_now_ms());
    res.rc = exec_stmt(st);
    cb(arg, &res);
    return 0;
}

static void op_close(appdb_t *db)
{
    appdb_sqlite_t *s = (appdb_sqlite_t *)db;
    for (int i = 0; i < Q__COUNT; ++i)
        sqlite3_finalize(s->q[i]);
    free(s);
}

static const appdb_ops_t sqlite_ops = {
    .name = "sqlite",
    .user_by_name = op_user_by_name,
    .user_by_id = op_user_by_id,
    .user_external = op_user_external,
    .prechat_create = op_prechat_create,
    .prechat_get = op_prechat_get,
    .prechat_waiting = op_prechat_waiting,
    .prechat_join = op_prechat_join,
    .prechat_sweep = op_prechat_sweep,
    .prechat_leave = op_prechat_leave,
    .prechat_close = op_prechat_close,
    .message_add = op_message_add,
    .messages_list = op_messages_list,
    .ping = op_ping,
    .close = op_close,
    .publish = op_publish,
};

static int migrate(sqlite3 *db, char *errbuf, size_t errcap)
{
    sqlite3_stmt *st = NULL;
    int version = 0, rc = 0;
    char *msg = NULL;

    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        rc = TESS_EIO;
        snprintf(errbuf, errcap, "reading schema version: %s", sqlite3_errmsg(db));
        goto out;
    }
    version = sqlite3_column_int(st, 0);
    if (version > SCHEMA_VERSION) {
        rc = TESS_EIO;
        snprintf(errbuf, errcap, "database schema version %d is newer than this tessera (%d)", version, SCHEMA_VERSION);
        goto out;
    }
    if (version < SCHEMA_VERSION) {
        /* One transaction for every step still missing; IF NOT EXISTS makes a racing process harmless. */
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK ||
            (version < 1 && sqlite3_exec(db, schema_v1, NULL, NULL, &msg) != SQLITE_OK) ||
            (version < 2 && sqlite3_exec(db, schema_v2, NULL, NULL, &msg) != SQLITE_OK) ||
            (version < 3 && sqlite3_exec(db, schema_v3, NULL, NULL, &msg) != SQLITE_OK) ||
            (version < 4 && sqlite3_exec(db, schema_v4, NULL, NULL, &msg) != SQLITE_OK) ||
            (version < 5 &&
             (add_external_id(db, &msg) != SQLITE_OK || sqlite3_exec(db, schema_v5, NULL, NULL, &msg) != SQLITE_OK)) ||
            (version < 6 &&
             (add_v6_columns(db, &msg) != SQLITE_OK || sqlite3_exec(db, schema_v6, NULL, NULL, &msg) != SQLITE_OK)) ||
            (version < 7 && add_v7_columns(db, &msg) != SQLITE_OK) ||
            sqlite3_exec(db, "PRAGMA user_version = 7; COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
            rc = TESS_EIO;
            snprintf(errbuf, errcap, "creating schema: %s", msg != NULL ? msg : sqlite3_errmsg(db));
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            goto out;
        }
    }
out:
    sqlite3_free(msg);
    sqlite3_finalize(st);
    return rc;
}

int appdb_sqlite_open(appdb_t **out, sqlite3 *db, char *errbuf, size_t errcap)
{
    appdb_sqlite_t *s = NULL;
    int rc;

    *out = NULL;
    if ((rc = migrate(db, errbuf, errcap)) != 0)
        goto out;
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        rc = TESS_ENOMEM;
        goto out;
    }
    s->super.ops = &sqlite_ops;
    s->db = db;
    for (int i = 0; i < Q__COUNT; ++i) {
        if (sqlite3_prepare_v3(db, queries[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i], NULL) != SQLITE_OK) {
            snprintf(errbuf, errcap, "preparing statement: %s", sqlite3_errmsg(db));
            rc = TESS_EIO;
            goto out;
        }
    }
    *out = &s->super;
    s = NULL;
out:
    if (s != NULL)
        op_close(&s->super);
    return rc;
}

int appdb_sqlite_connect(sqlite3 **out, const char *path, char *errbuf, size_t errcap)
{
    return tess_sqlite_connect(out, path, errbuf, errcap);
}

int appdb_sqlite_user_add(sqlite3 *db, const char *name, const char *role, const char *pwhash, int64_t now_ms,
                          char *errbuf, size_t errcap)
{
    sqlite3_stmt *st = NULL;
    int rc, src;

    if ((rc = migrate(db, errbuf, errcap)) != 0)
        return rc;
    if (sqlite3_prepare_v2(db, "INSERT INTO app_user(name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(errbuf, errcap, "%s", sqlite3_errmsg(db));
        return TESS_EIO;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, pwhash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_ms);
    src = sqlite3_step(st);
    if (src != SQLITE_DONE) {
        /* Only the name's UNIQUE is "exists"; the role's CHECK is EIO, as on PostgreSQL. */
        rc = sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE ? TESS_EEXISTS : TESS_EIO;
        snprintf(errbuf, errcap, "%s", rc == TESS_EEXISTS ? "a user with that name exists" : sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return rc;
}

int appdb_sqlite_user_list(sqlite3 *db, appdb_user_t **out, size_t *n_out, char *errbuf, size_t errcap)
{
    sqlite3_stmt *st = NULL;
    appdb_user_t *users = NULL, *grown;
    size_t n = 0, cap = 0;
    int rc, src;

    *out = NULL;
    *n_out = 0;
    if ((rc = migrate(db, errbuf, errcap)) != 0)
        return rc;
    if (sqlite3_prepare_v2(db, "SELECT id, name, role FROM app_user ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
        snprintf(errbuf, errcap, "%s", sqlite3_errmsg(db));
        return TESS_EIO;
    }
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            if ((grown = realloc(users, cap * sizeof(*users))) == NULL) {
                rc = TESS_ENOMEM;
                snprintf(errbuf, errcap, "out of memory");
                goto out;
            }
            users = grown;
        }
        memset(&users[n], 0, sizeof(users[n]));
        users[n].id = sqlite3_column_int64(st, 0);
        snprintf(users[n].name, sizeof(users[n].name), "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(users[n].role, sizeof(users[n].role), "%s", (const char *)sqlite3_column_text(st, 2));
        n++;
    }
    if (src != SQLITE_DONE) {
        rc = TESS_EIO;
        snprintf(errbuf, errcap, "%s", sqlite3_errmsg(db));
    }
out:
    sqlite3_finalize(st);
    if (rc != 0) {
        free(users);
        return rc;
    }
    *out = users;
    *n_out = n;
    return 0;
}

int appdb_sqlite_schema(sqlite3 *db, int *have, int *want)
{
    sqlite3_stmt *st = NULL;
    int rc = TESS_EIO;

    *want = SCHEMA_VERSION;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        *have = sqlite3_column_int(st, 0);
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

/* One statement on a user by name, which must change exactly one row. */
static int user_write(sqlite3 *db, const char *sql, const char *name, const char *hash, char *errbuf, size_t errcap)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = migrate(db, errbuf, errcap)) != 0)
        return rc;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(errbuf, errcap, "%s", sqlite3_errmsg(db));
        return TESS_EIO;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (hash != NULL)
        sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = (sqlite3_extended_errcode(db) & 0xff) == SQLITE_CONSTRAINT ? TESS_ECONFLICT : TESS_EIO;
        snprintf(errbuf, errcap, "%s",
                 rc == TESS_ECONFLICT ? "the user has pre-chats or messages" : sqlite3_errmsg(db));
    } else if (sqlite3_changes(db) != 1) {
        rc = TESS_ENOTFOUND;
        snprintf(errbuf, errcap, "no user named %s", name);
    }
    sqlite3_finalize(st);
    return rc;
}

int appdb_sqlite_user_passwd(sqlite3 *db, const char *name, const char *pwhash, char *errbuf, size_t errcap)
{
    return user_write(db, "UPDATE app_user SET password_hash = ?2 WHERE name = ?1 AND external_id IS NULL", name,
                      pwhash, errbuf, errcap);
}

int appdb_sqlite_user_del(sqlite3 *db, const char *name, char *errbuf, size_t errcap)
{
    int rc;

    /* The pre-chats and messages refer to the user: it stays while they do (PostgreSQL enforces it too). */
    if (sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(errbuf, errcap, "%s", sqlite3_errmsg(db));
        return TESS_EIO;
    }
    rc = user_write(db, "DELETE FROM app_user WHERE name = ?1", name, NULL, errbuf, errcap);
    return rc;
}

/* ---- change events: the listener --------------------------------------------------------------------------- */

#define EVENT_KEEP_MS 60000 /* event rows older than this are pruned */

typedef struct sqlite_listener {
    appdb_listener_t super; /* first member */
    tess_loop_t *loop;      /* its loop */
    sqlite3 *db;            /* a connection of its own */
    sqlite3_stmt *version;  /* PRAGMA data_version */
    sqlite3_stmt *tail;     /* events after a seq */
    sqlite3_stmt *prune;    /* old events */
    tess_timer_t *timer;    /* every APP_TAIL_MS */
    int64_t data_version;   /* last seen */
    int64_t seq;            /* last event delivered */
    int64_t next_prune_ms;  /* mono ms */
    appdb_listen_opts_t o;  /* callbacks */
} sqlite_listener_t;

static void tail(sqlite_listener_t *l)
{
    int src;
    sqlite3_reset(l->tail);
    sqlite3_bind_int64(l->tail, 1, l->seq);
    while ((src = sqlite3_step(l->tail)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(l->tail, 1);
        l->seq = sqlite3_column_int64(l->tail, 0);
        if (name != NULL)
            l->o.on_event(l->o.arg, tess_strn(name, (size_t)sqlite3_column_bytes(l->tail, 1)));
    }
    sqlite3_reset(l->tail);
}

static void on_tail_timer(void *arg)
{
    sqlite_listener_t *l = arg;
    int64_t v = l->data_version;

    sqlite3_reset(l->version);
    if (sqlite3_step(l->version) == SQLITE_ROW)
        v = sqlite3_column_int64(l->version, 0);
    sqlite3_reset(l->version);
    if (v != l->data_version) { /* another connection committed: read what it published */
        l->data_version = v;
        tail(l);
    }
    if (tess_mono_ms() >= l->next_prune_ms) {
        l->next_prune_ms = tess_mono_ms() + EVENT_KEEP_MS;
        sqlite3_reset(l->prune);
        sqlite3_bind_int64(l->prune, 1, tess_now_ms() - EVENT_KEEP_MS);
        sqlite3_step(l->prune); /* best effort: busy means another process prunes */
        sqlite3_reset(l->prune);
    }
    l->loop->ops->timer_start(l->timer, APP_TAIL_MS);
}

static void sqlite_listener_free(appdb_listener_t *base)
{
    sqlite_listener_t *l = (sqlite_listener_t *)base;
    if (l->timer != NULL)
        l->loop->ops->timer_free(l->timer);
    sqlite3_finalize(l->version);
    sqlite3_finalize(l->tail);
    sqlite3_finalize(l->prune);
    sqlite3_close(l->db);
    free(l);
}

int appdb_sqlite_listen(appdb_listener_t **out, tess_loop_t *loop, const char *path, const appdb_listen_opts_t *opts,
                        char *errbuf, size_t errcap)
{
    sqlite_listener_t *l;
    sqlite3_stmt *st = NULL;
    int rc = TESS_EIO;

    *out = NULL;
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return TESS_ENOMEM;
    l->super.free = sqlite_listener_free;
    l->loop = loop;
    l->o = *opts;
    if ((rc = tess_sqlite_connect(&l->db, path, errbuf, errcap)) != 0 || (rc = migrate(l->db, errbuf, errcap)) != 0)
        goto fail;
    rc = TESS_EIO;
    if (sqlite3_prepare_v2(l->db, "PRAGMA data_version", -1, &l->version, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(l->db, "SELECT seq, name FROM app_event WHERE seq > ?1 ORDER BY seq", -1, &l->tail, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(l->db, "DELETE FROM app_event WHERE at < ?1", -1, &l->prune, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(l->db, "SELECT coalesce(max(seq), 0) FROM app_event", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        snprintf(errbuf, errcap, "event listener: %s", sqlite3_errmsg(l->db));
        goto fail;
    }
    l->seq = sqlite3_column_int64(st, 0); /* only what is published from now on */
    if (sqlite3_step(l->version) == SQLITE_ROW)
        l->data_version = sqlite3_column_int64(l->version, 0);
    sqlite3_reset(l->version);
    if ((l->timer = loop->ops->timer_new(loop, on_tail_timer, l)) == NULL) {
        rc = TESS_ENOMEM;
        goto fail;
    }
    loop->ops->timer_start(l->timer, APP_TAIL_MS);
    sqlite3_finalize(st);
    if (l->o.on_state != NULL)
        l->o.on_state(l->o.arg, 1); /* a local file: events always flow */
    *out = &l->super;
    return 0;
fail:
    sqlite3_finalize(st);
    sqlite_listener_free(&l->super);
    return rc;
}
