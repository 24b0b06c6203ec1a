/*
 * appdb on PostgreSQL: the same schema, results and rules as appdb_sqlite.c, on one pipelined libpq
 * connection per loop (tessera/pgconn.h). Every operation is ONE statement, so it is atomic on its own and
 * needs no transaction spanning round trips:
 *   - create/get compute queue_position in the same statement (one snapshot);
 *   - join runs tessera_prechat_join (migration 5: locks the agent, then counts; see there), close is a
 *     conditional UPDATE; both report, in the same statement, whether the row exists
 *     (ENOTFOUND) or is in the wrong state (ECONFLICT);
 *   - message_add locks the pre-chat row (FOR UPDATE: concurrent adds to one pre-chat serialize, so message
 *     ids grow in commit order within a pre-chat), inserts only when it is not closed, and bumps
 *     message_count / last_message_id / updated_at in the same statement.
 * Times are bigint ms, like SQLite. The schema is versioned in tessera_schema and migrated at start-up
 * under an advisory lock, so several instances may start at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/pgconn.h"
#include "app/appdb.h"
#include "tessera/error.h"

#define APP_PG_CHANNEL "tessera_events" /* LISTEN/NOTIFY channel of the change events */

/* pg_advisory_xact_lock key of the app schema's migrations ('tess', 2). */
#define MIGRATE_LOCK "SELECT pg_advisory_xact_lock(1952805747, 2)"

/* Migrations, applied in order; tessera_schema holds one row per applied version. */
static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE app_user ("
    " id bigserial PRIMARY KEY,"
    " name text NOT NULL UNIQUE,"
    " role text NOT NULL CHECK (role IN ('visitor','agent')),"
    " password_hash text NOT NULL,"
    " created_at bigint NOT NULL);"
    "CREATE TABLE prechat ("
    " id bigserial PRIMARY KEY,"
    " visitor_id bigint NOT NULL REFERENCES app_user(id),"
    " agent_id bigint REFERENCES app_user(id),"
    " topic text NOT NULL,"
    " status text NOT NULL CHECK (status IN ('waiting','active','closed')),"
    " created_at bigint NOT NULL,"
    " updated_at bigint NOT NULL,"
    " message_count bigint NOT NULL DEFAULT 0,"
    " last_message_id bigint NOT NULL DEFAULT 0);"
    "CREATE INDEX prechat_status_id ON prechat(status, id);"
    "CREATE TABLE message ("
    " id bigserial PRIMARY KEY,"
    " prechat_id bigint NOT NULL REFERENCES prechat(id),"
    " sender_id bigint NOT NULL REFERENCES app_user(id),"
    " sender_role text NOT NULL,"
    " body text NOT NULL,"
    " created_at bigint NOT NULL);"
    "CREATE INDEX message_prechat_id ON message(prechat_id, id);",
    /* 2: a visitor's open pre-chats are counted on each create (the open bound). */
    "CREATE INDEX prechat_visitor_open ON prechat(visitor_id) WHERE status <> 'closed';",
    /* 3: a user's role changing (or the user going) is a change event, whoever writes the table */
    "CREATE FUNCTION tessera_user_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " PERFORM pg_notify('" APP_PG_CHANNEL "', 'user:' || CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);"
    " RETURN NULL; END $$;"
    "CREATE TRIGGER app_user_role_event AFTER UPDATE OF role ON app_user FOR EACH ROW"
    " WHEN (OLD.role IS DISTINCT FROM NEW.role) EXECUTE FUNCTION tessera_user_event();"
    "CREATE TRIGGER app_user_delete_event AFTER DELETE ON app_user FOR EACH ROW"
    " EXECUTE FUNCTION tessera_user_event();",
    /* 4: users of another app (its ids are not ours), found by their id there */
    "ALTER TABLE app_user ADD COLUMN external_id text UNIQUE;",
    /*
     * 5: an agent's capacity. A join locks the agent's users row, and only then counts the agent's active
     * pre-chats: a plpgsql statement takes its snapshot when it starts (READ COMMITTED), so the count sees
     * every join of that agent committed before the lock was granted. One statement could not do this (its
     * snapshot predates the lock). Codes: 1 joined (the new row), 0 not waiting, 2 agent at capacity.
     */
    "CREATE INDEX prechat_agent_active ON prechat(agent_id) WHERE status = 'active';"
    "ALTER TABLE prechat ADD COLUMN joined_at bigint;"
    "ALTER TABLE prechat ADD COLUMN wait_offered boolean NOT NULL DEFAULT false;"
    "CREATE INDEX prechat_joined ON prechat(joined_at) WHERE joined_at IS NOT NULL;"
    "CREATE FUNCTION tessera_prechat_join(p_id bigint, p_agent bigint, p_now bigint, p_max bigint)"
    " RETURNS TABLE (o_code int, o_id bigint, o_visitor bigint, o_agent bigint, o_topic text, o_status text,"
    " o_created bigint, o_updated bigint, o_count bigint, o_last bigint) LANGUAGE plpgsql AS $$"
    " DECLARE n_active bigint; BEGIN"
    " PERFORM 1 FROM app_user u WHERE u.id = p_agent FOR UPDATE;"
    " SELECT count(*) INTO n_active FROM prechat a WHERE a.agent_id = p_agent AND a.status = 'active';"
    " RETURN QUERY WITH upd AS (UPDATE prechat p SET status = 'active', agent_id = p_agent, updated_at = p_now,"
    " joined_at = p_now"
    " WHERE p.id = p_id AND p.status = 'waiting' AND n_active < p_max RETURNING p.*)"
    " SELECT 1, upd.id, upd.visitor_id, coalesce(upd.agent_id, 0), upd.topic, upd.status, upd.created_at,"
    " upd.updated_at, upd.message_count, upd.last_message_id FROM upd"
    " UNION ALL SELECT CASE WHEN w.status = 'waiting' AND n_active >= p_max THEN 2 ELSE 0 END, w.id,"
    " w.visitor_id, coalesce(w.agent_id, 0), w.topic, w.status, w.created_at, w.updated_at, w.message_count,"
    " w.last_message_id FROM prechat w WHERE w.id = p_id AND NOT EXISTS (SELECT 1 FROM upd);"
    " END $$;",
    /* 6: the visitor of a waiting pre-chat left a message (POST .../leave), and the contact given with it */
    ("ALTER TABLE prechat ADD COLUMN left_message boolean NOT NULL DEFAULT false;"
     "ALTER TABLE prechat ADD COLUMN contact text;"),
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

#define PRECHAT_COLS                                                                                                   \
    "id, visitor_id, coalesce(agent_id, 0), topic, status, created_at, updated_at, message_count, last_message_id"
#define MESSAGE_COLS "id, prechat_id, sender_id, sender_role, body, created_at"

enum {
    Q_USER_BY_NAME,
    Q_USER_BY_ID,
    Q_USER_EXTERNAL,
    Q_PRECHAT_CREATE,
    Q_PRECHAT_GET,
    Q_WAITING,
    Q_LEAVE,
    Q_JOIN,
    Q_CLOSE,
    Q_MSG_ADD,
    Q_MSG_LIST,
    Q_SWEEP,
    Q_PING,
    Q_PUBLISH,
    Q__COUNT
};

static const tess_pgconn_stmt_t stmts[Q__COUNT] = {
    [Q_USER_BY_NAME] = {"SELECT id, name, role, password_hash FROM app_user WHERE name = $1", 1},
    [Q_USER_BY_ID] = {"SELECT id, name, role, '' FROM app_user WHERE id = $1::bigint", 1},
    /* The no-op update makes RETURNING answer for an existing row too. */
    [Q_USER_EXTERNAL] = {"INSERT INTO app_user (name, role, password_hash, created_at, external_id)"
                         " VALUES ('ext:' || $1, CASE $2 WHEN 'agent' THEN 'agent' ELSE 'visitor' END, '!',"
                         " $3::bigint, $1) ON CONFLICT (external_id) DO UPDATE SET external_id = excluded.external_id"
                         " RETURNING id, name, role, ''",
                         3},
    /*
     * The new row is not in the statement's snapshot of prechat: count the older waiting ones, plus one.
     * No row back: the visitor has $4 open already (EDENIED). Two creates of one visitor in flight at once
     * see the same snapshot, so the bound holds per request, not across concurrent transactions.
     */
    [Q_PRECHAT_CREATE] = {"WITH ins AS (INSERT INTO prechat (visitor_id, topic, status, created_at, updated_at)"
                          " SELECT $1::bigint, $2, 'waiting', $3::bigint, $3::bigint WHERE (SELECT count(*)"
                          " FROM prechat o WHERE o.visitor_id = $1::bigint AND o.status <> 'closed') < $4::bigint"
                          " RETURNING *)"
                          " SELECT " PRECHAT_COLS ", (SELECT count(*) FROM prechat w"
                          " WHERE w.status = 'waiting' AND w.id < ins.id) + 1 FROM ins",
                          4},
    /* Column 10: the median of the last 20 join waits (APP_WAIT_SAMPLES), NULL when none or not waiting. */
    [Q_PRECHAT_GET] =
        {"SELECT " PRECHAT_COLS ", CASE WHEN p.status = 'waiting' THEN (SELECT count(*) FROM prechat w"
         " WHERE w.status = 'waiting' AND w.id <= p.id) ELSE 0 END,"
         " CASE WHEN p.status = 'waiting' THEN (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY j.w))::bigint"
         " FROM (SELECT r.joined_at - r.created_at AS w FROM prechat r WHERE r.joined_at IS NOT NULL"
         " ORDER BY r.joined_at DESC LIMIT 20) j) END, p.left_message, coalesce(p.contact, '')"
         " FROM prechat p WHERE p.id = $1::bigint",
         1},
    [Q_WAITING] = {"SELECT " PRECHAT_COLS ", left_message, coalesce(contact, '') FROM prechat WHERE status = 'waiting'"
                   " ORDER BY id LIMIT $1::bigint",
                   1},
    /*
     * The row is locked first (its WHERE re-checked on the locked row, against a join or close meanwhile); the
     * message and the mark follow in the same statement. First column: 1 left, 0 exists in another state.
     */
    [Q_LEAVE] =
        {"WITH pc AS (SELECT id FROM prechat WHERE id = $1::bigint AND visitor_id = $2::bigint"
         " AND status = 'waiting' AND NOT left_message FOR UPDATE),"
         " ins AS (INSERT INTO message (prechat_id, sender_id, sender_role, body, created_at)"
         " SELECT pc.id, $2::bigint, 'visitor', $4, $5::bigint FROM pc RETURNING id, prechat_id),"
         " upd AS (UPDATE prechat p SET left_message = true, contact = $3, message_count = p.message_count + 1,"
         " last_message_id = ins.id, updated_at = $5::bigint FROM ins WHERE p.id = ins.prechat_id RETURNING p.id)"
         " SELECT 1 FROM upd UNION ALL SELECT 0 FROM prechat WHERE id = $1::bigint"
         " AND NOT EXISTS (SELECT 1 FROM pc)",
         5},
    /* First column: 1 = joined (the new row follows), 0 = not waiting, 2 = agent at capacity; no row = unknown. */
    [Q_JOIN] = {"SELECT * FROM tessera_prechat_join($1::bigint, $2::bigint, $3::bigint, $4::bigint)", 4},
    [Q_CLOSE] = {"WITH upd AS (UPDATE prechat SET status = 'closed', updated_at = $2::bigint"
                 " WHERE id = $1::bigint AND status <> 'closed' RETURNING " PRECHAT_COLS ")"
                 " SELECT true, * FROM upd UNION ALL SELECT false, " PRECHAT_COLS " FROM prechat"
                 " WHERE id = $1::bigint AND NOT EXISTS (SELECT 1 FROM upd)",
                 2},
    /* No row back: the pre-chat is closed (or gone) -> ECONFLICT, as on SQLite. */
    [Q_MSG_ADD] = {"WITH pc AS (SELECT id FROM prechat WHERE id = $1::bigint AND status <> 'closed' FOR UPDATE),"
                   " ins AS (INSERT INTO message (prechat_id, sender_id, sender_role, body, created_at)"
                   " SELECT pc.id, $2::bigint, $3, $4, $5::bigint FROM pc RETURNING " MESSAGE_COLS "),"
                   " bump AS (UPDATE prechat p SET message_count = p.message_count + 1,"
                   " last_message_id = GREATEST(p.last_message_id, ins.id), updated_at = $5::bigint"
                   " FROM ins WHERE p.id = ins.prechat_id RETURNING p.id)"
                   " SELECT ins.* FROM ins",
                   5},
    [Q_MSG_LIST] = {"SELECT " MESSAGE_COLS " FROM message WHERE prechat_id = $1::bigint AND id > $2::bigint"
                    " ORDER BY id LIMIT $3::bigint",
                    3},
    /*
     * The timeouts in one statement: idle active pre-chats are locked (SKIP LOCKED: another instance's sweep or
     * a message in flight has them; the WHERE is re-checked on the locked row), closed, and given the note as a
     * system message; waiting ones past the wait cut-off are marked once. A cut-off of 0 matches nothing.
     * Answers (id, new status) per changed row.
     */
    /*
     * Idle active ones closed with $3, never-joined waiting ones without a left message closed with $7
     * (before $6), the remaining long-waiting ones marked. The mark skips the rows closed here: two updates of
     * one row in one statement would leave only one of them.
     */
    [Q_SWEEP] = {"WITH idle AS (SELECT id, coalesce(agent_id, visitor_id) AS sender FROM prechat"
                 " WHERE status = 'active' AND updated_at < $1::bigint ORDER BY id LIMIT $4::bigint"
                 " FOR UPDATE SKIP LOCKED),"
                 " note AS (INSERT INTO message (prechat_id, sender_id, sender_role, body, created_at)"
                 " SELECT id, sender, 'system', $3, $5::bigint FROM idle RETURNING id, prechat_id),"
                 " cl AS (UPDATE prechat p SET status = 'closed', updated_at = $5::bigint,"
                 " message_count = p.message_count + 1, last_message_id = note.id FROM note"
                 " WHERE p.id = note.prechat_id RETURNING p.id, coalesce(p.agent_id, 0) AS agent),"
                 " wc AS (SELECT id, visitor_id AS sender FROM prechat WHERE status = 'waiting' AND NOT left_message"
                 " AND created_at < $6::bigint ORDER BY id LIMIT $4::bigint FOR UPDATE SKIP LOCKED),"
                 " wnote AS (INSERT INTO message (prechat_id, sender_id, sender_role, body, created_at)"
                 " SELECT id, sender, 'system', $7, $5::bigint FROM wc RETURNING id, prechat_id),"
                 " wcl AS (UPDATE prechat p SET status = 'closed', updated_at = $5::bigint,"
                 " message_count = p.message_count + 1, last_message_id = wnote.id FROM wnote"
                 " WHERE p.id = wnote.prechat_id RETURNING p.id),"
                 " w AS (SELECT id FROM prechat WHERE status = 'waiting' AND NOT wait_offered"
                 " AND created_at < $2::bigint AND id NOT IN (SELECT id FROM wc)"
                 " ORDER BY id LIMIT $4::bigint FOR UPDATE SKIP LOCKED),"
                 " off AS (UPDATE prechat p SET wait_offered = true FROM w WHERE p.id = w.id RETURNING p.id)"
                 " SELECT id, 'closed', agent FROM cl UNION ALL SELECT id, 'closed', 0 FROM wcl"
                 " UNION ALL SELECT id, 'waiting', 0 FROM off",
                 7},
    [Q_PING] = {"SELECT 1", 0},
    [Q_PUBLISH] = {"SELECT pg_notify('" APP_PG_CHANNEL "', $1)", 1},
};

typedef struct appdb_pg {
    appdb_t super;       /* base; first member */
    tess_pgconn_t *conn; /* the loop's connection */
} appdb_pg_t;

typedef struct pg_op {
    appdb_cb cb; /* caller's callback */
    void *arg;   /* its argument */
    int kind;    /* Q_* */
} pg_op_t;

static void copy_text(char *dst, size_t cap, const PGresult *res, int row, int col)
{
    size_t n = (size_t)PQgetlength(res, row, col);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, PQgetvalue(res, row, col), n);
    dst[n] = '\0';
}

static int64_t col_i64(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Reads PRECHAT_COLS starting at column `c`. */
static void read_prechat(const PGresult *res, int row, int c, appdb_prechat_t *p)
{
    memset(p, 0, sizeof(*p));
    p->id = col_i64(res, row, c);
    p->visitor_id = col_i64(res, row, c + 1);
    p->agent_id = col_i64(res, row, c + 2);
    copy_text(p->topic, sizeof(p->topic), res, row, c + 3);
    copy_text(p->status, sizeof(p->status), res, row, c + 4);
    p->created_ms = col_i64(res, row, c + 5);
    p->updated_ms = col_i64(res, row, c + 6);
    p->message_count = col_i64(res, row, c + 7);
    p->last_message_id = col_i64(res, row, c + 8);
    p->wait_estimate_ms = -1;
}

static void read_message(const PGresult *res, int row, appdb_message_t *m)
{
    memset(m, 0, sizeof(*m));
    m->id = col_i64(res, row, 0);
    m->prechat_id = col_i64(res, row, 1);
    m->sender_id = col_i64(res, row, 2);
    copy_text(m->sender_role, sizeof(m->sender_role), res, row, 3);
    copy_text(m->body, sizeof(m->body), res, row, 4);
    m->created_ms = col_i64(res, row, 5);
}

static void on_done(void *arg, int rc, const PGresult *pgres)
{
    pg_op_t op = *(pg_op_t *)arg;
    appdb_result_t res = {.rc = rc};
    appdb_user_t user;
    appdb_prechat_t one;
    appdb_message_t msg;
    void *rows = NULL;
    int n = rc == 0 ? PQntuples(pgres) : 0;

    free(arg);
    if (rc != 0)
        goto out;
    switch (op.kind) {
    case Q_USER_BY_NAME:
    case Q_USER_BY_ID:
    case Q_USER_EXTERNAL:
        if (n == 0) {
            res.rc = TESS_ENOTFOUND;
            break;
        }
        memset(&user, 0, sizeof(user));
        user.id = col_i64(pgres, 0, 0);
        copy_text(user.name, sizeof(user.name), pgres, 0, 1);
        copy_text(user.role, sizeof(user.role), pgres, 0, 2);
        copy_text(user.pwhash, sizeof(user.pwhash), pgres, 0, 3);
        res.user = &user;
        break;
    case Q_PRECHAT_CREATE:
    case Q_PRECHAT_GET:
        if (n == 0) {
            res.rc = op.kind == Q_PRECHAT_CREATE ? TESS_EDENIED : TESS_ENOTFOUND;
            break;
        }
        read_prechat(pgres, 0, 0, &one);
        one.queue_position = col_i64(pgres, 0, 9);
        if (op.kind == Q_PRECHAT_GET && !PQgetisnull(pgres, 0, 10))
            one.wait_estimate_ms = col_i64(pgres, 0, 10);
        if (op.kind == Q_PRECHAT_GET) {
            one.left_message = PQgetvalue(pgres, 0, 11)[0] == 't';
            copy_text(one.contact, sizeof(one.contact), pgres, 0, 12);
        }
        res.prechats = &one;
        res.n_prechats = 1;
        break;
    case Q_JOIN:
    case Q_CLOSE:
        if (n == 0) {
            res.rc = TESS_ENOTFOUND;
        } else if (op.kind == Q_JOIN && PQgetvalue(pgres, 0, 0)[0] == '2') {
            res.rc = TESS_EDENIED;
        } else if (PQgetvalue(pgres, 0, 0)[0] != 't' && PQgetvalue(pgres, 0, 0)[0] != '1') {
            res.rc = TESS_ECONFLICT;
        } else {
            read_prechat(pgres, 0, 1, &one); /* active or closed: no queue position */
            res.prechats = &one;
            res.n_prechats = 1;
        }
        break;
    case Q_WAITING:
        if ((rows = calloc(n > 0 ? (size_t)n : 1, sizeof(appdb_prechat_t))) == NULL) {
            res.rc = TESS_ENOMEM;
            break;
        }
        res.prechats = rows;
        for (int i = 0; i < n; ++i) {
            read_prechat(pgres, i, 0, &res.prechats[i]);
            res.prechats[i].queue_position = i + 1; /* ordered by id: the queue itself */
            res.prechats[i].left_message = PQgetvalue(pgres, i, 9)[0] == 't';
            copy_text(res.prechats[i].contact, sizeof(res.prechats[i].contact), pgres, i, 10);
        }
        res.n_prechats = (size_t)n;
        break;
    case Q_MSG_ADD:
        if (n == 0) {
            res.rc = TESS_ECONFLICT; /* closed (or gone: the caller checked it exists) */
            break;
        }
        read_message(pgres, 0, &msg);
        res.messages = &msg;
        res.n_messages = 1;
        break;
    case Q_LEAVE:
        if (n == 0)
            res.rc = TESS_ENOTFOUND;
        else if (PQgetvalue(pgres, 0, 0)[0] != '1')
            res.rc = TESS_ECONFLICT;
        break;
    case Q_SWEEP:
        if ((rows = calloc(n > 0 ? (size_t)n : 1, sizeof(appdb_prechat_t))) == NULL) {
            res.rc = TESS_ENOMEM;
            break;
        }
        res.prechats = rows;
        for (int i = 0; i < n; ++i) {
            res.prechats[i].id = col_i64(pgres, i, 0);
            copy_text(res.prechats[i].status, sizeof(res.prechats[i].status), pgres, i, 1);
            res.prechats[i].agent_id = col_i64(pgres, i, 2);
            res.prechats[i].wait_estimate_ms = -1;
        }
        res.n_prechats = (size_t)n;
        break;
    case Q_MSG_LIST:
        if ((rows = calloc(n > 0 ? (size_t)n : 1, sizeof(appdb_message_t))) == NULL) {
            res.rc = TESS_ENOMEM;
            break;
        }
        res.messages = rows;
        for (int i = 0; i < n; ++i)
            read_message(pgres, i, &res.messages[i]);
        res.n_messages = (size_t)n;
        break;
    default:
        break;
    }
out:
    op.cb(op.arg, &res);
    free(rows);
}

static int start(appdb_t *db, int kind, const tess_pgconn_param_t *params, int nparams, appdb_cb cb, void *arg)
{
    appdb_pg_t *s = (appdb_pg_t *)db;
    pg_op_t *op;
    int rc;

    if (cb == NULL)
        return TESS_EINVAL;
    if ((op = malloc(sizeof(*op))) == NULL)
        return TESS_ENOMEM;
    op->cb = cb;
    op->arg = arg;
    op->kind = kind;
    if ((rc = tess_pgconn_query(s->conn, kind, params, nparams, on_done, op)) != 0)
        free(op);
    return rc;
}

static int op_user_by_name(appdb_t *db, tess_str_t name, appdb_cb cb, void *arg)
{
    tess_pgconn_param_t p[1];
    tess_pgconn_param_str(&p[0], name.ptr, name.len);
    return start(db, Q_USER_BY_NAME, p, 1, cb, arg);
}

static int op_user_by_id(appdb_t *db, int64_t id, appdb_cb cb, void *arg)
{
    tess_pgconn_param_t p[1];
    tess_pgconn_param_i64(&p[0], id);
    return start(db, Q_USER_BY_ID, p, 1, cb, arg);
}

static int op_user_external(appdb_t *db, tess_str_t external_id, tess_str_t role, int64_t now_ms, appdb_cb cb,
                            void *arg)
{
    tess_pgconn_param_t p[3];
    tess_pgconn_param_str(&p[0], external_id.ptr, external_id.len);
    tess_pgconn_param_str(&p[1], role.ptr, role.len);
    tess_pgconn_param_i64(&p[2], now_ms);
    return start(db, Q_USER_EXTERNAL, p, 3, cb, arg);
}

static int op_prechat_create(appdb_t *db, int64_t visitor_id, tess_str_t topic, int64_t max_open, int64_t now_ms,
                             appdb_cb cb, void *arg)
{
    tess_pgconn_param_t p[4];
    tess_pgconn_param_i64(&p[0], visitor_id);
    tess_pgconn_param_str(&p[1], topic.ptr, topic.len);
    tess_pgconn_param_i64(&p[2], now_ms);
    tess_pgconn_param_i64(&p[3], max_open);
    return start(db, Q_PRECHAT_CREATE, p, 4, cb, arg);
}

static int op_prechat_get(appdb_t *db, int64_t id, appdb_cb cb, void *arg)
{
    tess_pgconn_param_t p[1];
    tess_pgconn_param_i64(&p[0], id);
    return start(db, Q_PRECHAT_GET, p, 1, cb, arg);
}

static int op_prechat_waiting(appdb_t *db, size_t limit, appdb_cb cb, void *arg)
{
    tess_pgconn_param_t p[1];
    tess_pgconn_param_i64(&p[0], (int64_t)(limit > APP_LIST_MAX ? APP_LIST_MAX : limit));
    return start(db, Q_WAITING, p, 1, cb, arg);
}

static int op_prechat_join(appdb_t *db, int64_t id, int64_t agent_id, int64_t max_active, int64_t now_ms, appdb_cb cb,
                           void *arg)
{
    tess_pgconn_param_t p[4];
    tess_pgconn_param_i64(&p[0], id);
    tess_pgconn_param_i64(&p[1], agent_id);
    tess_pgconn_param_i64(&p[2], now_ms);
    tess_pgconn_param_i64(&p[3], max_active);
    return start(db, Q_JOIN, p, 4, cb, arg);
}

static int op_prechat_sweep(appdb_t *db, const appdb_sweep_t *sw, int64_t now_ms, appdb_cb cb, void *arg)
{
    tess_pgconn_param_t p[7];
    if (sw->idle_note.len > APP_BODY_MAX || sw->wait_note.len > APP_BODY_MAX)
        return TESS_ETOOBIG;
    tess_pgconn_param_i64(&p[0], sw->idle_before_ms);
    tess_pgconn_param_i64(&p[1], sw->wait_before_ms);
    tess_pgconn_param_str(&p[2], sw->idle_note.ptr, sw->idle_note.len);
    tess_pgconn_param_i64(&p[3], (int64_t)(sw->limit > APP_LIST_MAX ? APP_LIST_MAX : sw->limit));
    tess_pgconn_param_i64(&p[4], now_ms);
    tess_pgconn_param_i64(&p[5], sw->close_before_ms);
    tess_pgconn_param_str(&p[6], sw->wait_note.ptr, sw->wait_note.len);
    return start(db, Q_SWEEP, p, 7, cb, arg);
}

static int op_prechat_leave(appdb_t *db, int64_t id, int64_t visitor_id, tess_str_t contact, tess_str_t body,
                            int64_t now_ms, appdb_cb cb, void *arg)
{
    tess_pgconn_param_t p[5];
    if (body.len > APP_BODY_MAX || contact.len > APP_CONTACT_MAX)
        return TESS_ETOOBIG;
    tess_pgconn_param_i64(&p[0], id);
    tess_pgconn_param_i64(&p[1], visitor_id);
    tess_pgconn_param_str(&p[2], contact.ptr, contact.len);
    tess_pgconn_param_str(&p[3], body.ptr, body.len);
    tess_pgconn_param_i64(&p[4], now_ms);
    return start(db, Q_LEAVE, p, 5, cb, arg);
}

static int op_prechat_close(appdb_t *db, int64_t id, int64_t now_ms, appdb_cb cb, void *arg)
{
    tess_pgconn_param_t p[2];
    tess_pgconn_param_i64(&p[0], id);
    tess_pgconn_param_i64(&p[1], now_ms);
    return start(db, Q_CLOSE, p, 2, cb, arg);
}

static int op_message_add(appdb_t *db, int64_t prechat_id, int64_t sender_id, tess_str_t role, tess_str_t body,
                          int64_t now_ms, appdb_cb cb, void *arg)
{
    tess_pgconn_param_t p[5];

    if (body.len > APP_BODY_MAX || role.len > TESS_ROLE_MAX)
        return TESS_ETOOBIG;
    tess_pgconn_param_i64(&p[0], prechat_id);
    tess_pgconn_param_i64(&p[1], sender_id);
    tess_pgconn_param_str(&p[2], role.ptr, role.len);
    tess_pgconn_param_str(&p[3], body.ptr, body.len);
    tess_pgconn_param_i64(&p[4], now_ms);
    return start(db, Q_MSG_ADD, p, 5, cb, arg);
}

static int op_messages_list(appdb_t *db, int64_t prechat_id, int64_t after, size_t limit, appdb_cb cb, void *arg)
{
    tess_pgconn_param_t p[3];
    tess_pgconn_param_i64(&p[0], prechat_id);
    tess_pgconn_param_i64(&p[1], after);
    tess_pgconn_param_i64(&p[2], (int64_t)(limit > APP_LIST_MAX ? APP_LIST_MAX : limit));
    return start(db, Q_MSG_LIST, p, 3, cb, arg);
}

static int op_ping(appdb_t *db, appdb_cb cb, void *arg)
{
    return start(db, Q_PING, NULL, 0, cb, arg);
}

static int op_publish(appdb_t *db, tess_str_t name, appdb_cb cb, void *arg)
{
    tess_pgconn_param_t p[1];
    if (name.len == 0 || name.len > APP_EVENT_MAX)
        return TESS_EINVAL;
    tess_pgconn_param_str(&p[0], name.ptr, name.len);
    return start(db, Q_PUBLISH, p, 1, cb, arg);
}

static void op_close(appdb_t *db)
{
    appdb_pg_t *s = (appdb_pg_t *)db;
    tess_pgconn_close(s->conn); /* pending callbacks run now, with TESS_EUNAVAIL */
    free(s);
}

static const appdb_ops_t pg_ops = {
    .name = "postgres",
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

/* Brings the schema to SCHEMA_VERSION in one transaction under the advisory lock. */
static int migrate(PGconn *pg, char *errbuf, size_t errcap)
{
    PGresult *res = NULL;
    int rc, version;

    if ((rc = tess_pgconn_exec_sync(pg, "BEGIN", errbuf, errcap)) != 0 ||
        (rc = tess_pgconn_exec_sync(pg, MIGRATE_LOCK, errbuf, errcap)) != 0 ||
        (rc = tess_pgconn_exec_sync(pg, "SET LOCAL client_min_messages = warning", errbuf, errcap)) != 0 ||
        (rc = tess_pgconn_exec_sync(pg, "CREATE TABLE IF NOT EXISTS tessera_schema (version int NOT NULL)", errbuf,
                                    errcap)) != 0)
        goto out;
    res = PQexec(pg, "SELECT coalesce(max(version), 0) FROM tessera_schema");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        tess_pgconn_error_line(errbuf, errcap, "reading schema version", PQerrorMessage(pg));
        rc = PQstatus(pg) == CONNECTION_OK ? TESS_EIO : TESS_EUNAVAIL;
        goto out;
    }
    version = atoi(PQgetvalue(res, 0, 0));
    if (version > SCHEMA_VERSION) {
        snprintf(errbuf, errcap, "database schema version %d is newer than this tessera (%d)", version, SCHEMA_VERSION);
        rc = TESS_EIO;
        goto out;
    }
    for (int v = version + 1; v <= SCHEMA_VERSION; ++v) {
        char ins[80];
        snprintf(ins, sizeof(ins), "INSERT INTO tessera_schema (version) VALUES (%d)", v);
        if ((rc = tess_pgconn_exec_sync(pg, migrations[v - 1], errbuf, errcap)) != 0 ||
            (rc = tess_pgconn_exec_sync(pg, ins, errbuf, errcap)) != 0)
            goto out;
    }
    rc = tess_pgconn_exec_sync(pg, "COMMIT", errbuf, errcap);
out:
    PQclear(res);
    if (rc != 0) {
        PQclear(PQexec(pg, "ROLLBACK"));
        if (rc != TESS_EUNAVAIL)
            rc = TESS_EIO;
    }
    return rc;
}

int appdb_pg_migrate(const char *conninfo, char *errbuf, size_t errcap)
{
    PGconn *pg;
    int rc;

    if (conninfo == NULL)
        return TESS_EINVAL;
    if ((pg = tess_pgconn_connect_sync(conninfo, errbuf, errcap)) == NULL)
        return TESS_EUNAVAIL;
    rc = migrate(pg, errbuf, errcap);
    PQfinish(pg);
    return rc;
}

int appdb_pg_open(appdb_t **out, struct tess_loop *loop, const char *conninfo, int64_t timeout_ms, char *errbuf,
                  size_t errcap)
{
    tess_pgconn_opts_t po = {0};
    appdb_pg_t *s;
    int rc;

    *out = NULL;
    if (loop == NULL || conninfo == NULL)
        return TESS_EINVAL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return TESS_ENOMEM;
    s->super.ops = &pg_ops;
    po.conninfo = conninfo;
    po.timeout_ms = timeout_ms;
    po.stmts = stmts;
    po.n_stmts = Q__COUNT;
    po.name = "appdb";
    if ((rc = tess_pgconn_open(&s->conn, loop, &po, errbuf, errcap)) != 0) {
        free(s);
        return rc;
    }
    *out = &s->super;
    return 0;
}

int appdb_pg_user_add(const char *conninfo, const char *name, const char *role, const char *pwhash, int64_t now_ms,
                      char *errbuf, size_t errcap)
{
    const char *values[4];
    char created[24];
    PGconn *pg = NULL;
    PGresult *res = NULL;
    int rc;

    if (conninfo == NULL || name == NULL || role == NULL || pwhash == NULL)
        return TESS_EINVAL;
    if ((pg = tess_pgconn_connect_sync(conninfo, errbuf, errcap)) == NULL)
        return TESS_EUNAVAIL;
    if ((rc = migrate(pg, errbuf, errcap)) != 0)
        goto out;
    snprintf(created, sizeof(created), "%lld", (long long)now_ms);
    values[0] = name;
    values[1] = role;
    values[2] = pwhash;
    values[3] = created;
    res = PQexecParams(pg, "INSERT INTO app_user (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)", 4,
                       NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state != NULL && strcmp(state, "23505") == 0) {
            rc = TESS_EEXISTS;
            snprintf(errbuf, errcap, "a user with that name exists");
        } else {
            rc = PQstatus(pg) == CONNECTION_OK ? TESS_EIO : TESS_EUNAVAIL;
            tess_pgconn_error_line(errbuf, errcap, NULL, PQerrorMessage(pg));
        }
    }
out:
    PQclear(res);
    PQfinish(pg);
    return rc;
}

int appdb_pg_user_list(const char *conninfo, appdb_user_t **out, size_t *n_out, char *errbuf, size_t errcap)
{
    PGconn *pg = NULL;
    PGresult *res = NULL;
    appdb_user_t *users = NULL;
    int rc, i, rows = 0;

    *out = NULL;
    *n_out = 0;
    if ((pg = tess_pgconn_connect_sync(conninfo, errbuf, errcap)) == NULL)
        return TESS_EUNAVAIL;
    if ((rc = migrate(pg, errbuf, errcap)) != 0)
        goto out;
    res = PQexec(pg, "SELECT id, name, role FROM app_user ORDER BY id");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = PQstatus(pg) == CONNECTION_OK ? TESS_EIO : TESS_EUNAVAIL;
        tess_pgconn_error_line(errbuf, errcap, NULL, PQerrorMessage(pg));
        goto out;
    }
    rows = PQntuples(res);
    if (rows > 0 && (users = calloc((size_t)rows, sizeof(*users))) == NULL) {
        rc = TESS_ENOMEM;
        snprintf(errbuf, errcap, "out of memory");
        goto out;
    }
    for (i = 0; i < rows; i++) {
        users[i].id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        snprintf(users[i].name, sizeof(users[i].name), "%s", PQgetvalue(res, i, 1));
        snprintf(users[i].role, sizeof(users[i].role), "%s", PQgetvalue(res, i, 2));
    }
    *out = users;
    *n_out = (size_t)rows;
out:
    PQclear(res);
    PQfinish(pg);
    return rc;
}

int appdb_pg_schema(const char *conninfo, int *have, int *want, char *errbuf, size_t errcap)
{
    PGconn *pg = NULL;
    PGresult *res = NULL;
    int rc = 0;

    *want = SCHEMA_VERSION;
    *have = 0;
    if ((pg = tess_pgconn_connect_sync(conninfo, errbuf, errcap)) == NULL)
        return TESS_EUNAVAIL;
    res = PQexec(pg, "SELECT coalesce(max(version), 0) FROM tessera_schema");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        *have = atoi(PQgetvalue(res, 0, 0));
    } else {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state == NULL || strcmp(state, "42P01") != 0) { /* no tessera_schema: no schema yet */
            rc = TESS_EIO;
            tess_pgconn_error_line(errbuf, errcap, "reading schema version", PQerrorMessage(pg));
        }
    }
    PQclear(res);
    PQfinish(pg);
    return rc;
}

/* One statement on a user by name, which must change exactly one row. */
static int user_write(const char *conninfo, const char *sql, const char *name, const char *hash, char *errbuf,
                      size_t errcap)
{
    const char *values[2] = {name, hash};
    PGconn *pg = NULL;
    PGresult *res = NULL;
    int rc;

    if ((pg = tess_pgconn_connect_sync(conninfo, errbuf, errcap)) == NULL)
        return TESS_EUNAVAIL;
    if ((rc = migrate(pg, errbuf, errcap)) != 0)
        goto out;
    res = PQexecParams(pg, sql, hash != NULL ? 2 : 1, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state != NULL && strcmp(state, "23503") == 0) {
            rc = TESS_ECONFLICT;
            snprintf(errbuf, errcap, "the user has pre-chats or messages");
        } else {
            rc = PQstatus(pg) == CONNECTION_OK ? TESS_EIO : TESS_EUNAVAIL;
            tess_pgconn_error_line(errbuf, errcap, NULL, PQerrorMessage(pg));
        }
    } else if (strcmp(PQcmdTuples(res), "1") != 0) {
        rc = TESS_ENOTFOUND;
        snprintf(errbuf, errcap, "no user named %s", name);
    }
out:
    PQclear(res);
    PQfinish(pg);
    return rc;
}

int appdb_pg_user_passwd(const char *conninfo, const char *name, const char *pwhash, char *errbuf, size_t errcap)
{
    return user_write(conninfo, "UPDATE app_user SET password_hash = $2 WHERE name = $1 AND external_id IS NULL", name,
                      pwhash, errbuf, errcap);
}

int appdb_pg_user_del(const char *conninfo, const char *name, char *errbuf, size_t errcap)
{
    return user_write(conninfo, "DELETE FROM app_user WHERE name = $1", name, NULL, errbuf, errcap);
}

/* ---- change events: the listener --------------------------------------------------------------------------- */

typedef struct pg_listener {
    appdb_listener_t super; /* first member */
    tess_pgconn_t *conn;    /* a connection of its own */
    appdb_listen_opts_t o;  /* callbacks */
} pg_listener_t;

static const tess_pgconn_stmt_t listen_stmts[] = {{"LISTEN " APP_PG_CHANNEL, 0}};

static void on_listening(void *arg, int rc, const PGresult *res)
{
    pg_listener_t *l = arg;
    (void)res;
    /* Only now can no event be missed; a failed LISTEN is retried with the next connection. */
    if (rc == 0 && l->o.on_state != NULL)
        l->o.on_state(l->o.arg, 1);
}

static void on_listen_state(void *arg, int up)
{
    pg_listener_t *l = arg;
    if (up)
        tess_pgconn_query(l->conn, 0, NULL, 0, on_listening, l);
    else if (l->o.on_state != NULL)
        l->o.on_state(l->o.arg, 0);
}

static void on_listen_notify(void *arg, const char *channel, const char *payload)
{
    pg_listener_t *l = arg;
    if (strcmp(channel, APP_PG_CHANNEL) == 0)
        l->o.on_event(l->o.arg, tess_str(payload));
}

static void pg_listener_free(appdb_listener_t *base)
{
    pg_listener_t *l = (pg_listener_t *)base;
    l->o.on_state = NULL; /* closing completes the LISTEN query, if pending: report nothing */
    tess_pgconn_close(l->conn);
    free(l);
}

int appdb_pg_listen(appdb_listener_t **out, struct tess_loop *loop, const char *conninfo, int64_t timeout_ms,
                    const appdb_listen_opts_t *opts, char *errbuf, size_t errcap)
{
    tess_pgconn_opts_t po = {0};
    pg_listener_t *l;
    int rc;

    *out = NULL;
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return TESS_ENOMEM;
    l->super.free = pg_listener_free;
    l->o = *opts;
    po.conninfo = conninfo;
    po.timeout_ms = timeout_ms;
    po.stmts = listen_stmts;
    po.n_stmts = 1;
    po.name = "events";
    po.on_state = on_listen_state;
    po.on_notify = on_listen_notify;
    po.event_arg = l;
    if ((rc = tess_pgconn_open(&l->conn, loop, &po, errbuf, errcap)) != 0) {
        free(l);
        return rc;
    }
    *out = &l->super;
    return 0;
}
