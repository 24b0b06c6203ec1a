/*
 * The PostgreSQL session store: connect-pg-simple's table, on one pipelined libpq connection per loop
 * (pg/pgconn.c). See tessera/postgres.h and docs/postgres.md.
 *
 *   session(sid varchar NOT NULL COLLATE "default" PRIMARY KEY, sess json NOT NULL, expire timestamp(6) NOT NULL)
 *   + "IDX_session_expire"(expire), + session_user_id_idx((sess->>'userId'))
 *
 * `expire` is the truth for expiry (the document's cookie.expires may lag behind a touch). It is a
 * timestamp without time zone, like connect-pg-simple's, read and written through the connection's
 * TimeZone (to_timestamp() / ::timestamptz), so tessera and a Node app agree as long as both use the
 * server's default TimeZone.
 */
#include <stdio.h>
#include <stdlib.h>

#include "store/nextauth_sql.h"
#include "store/postgres_batch.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/pgconn.h"
#include "tessera/postgres.h"

/* pg_advisory_xact_lock key of the session table's migration ('tess', 1). */
#define MIGRATE_LOCK "pg_advisory_xact_lock(1952805747, 1)"

enum { Q_GET, Q_SET, Q_TOUCH, Q_DESTROY, Q_DESTROY_USER, Q_PING, Q_PRUNE, Q_GET_MANY, Q__COUNT };

/* Lookups that arrive while one is in flight share the next statement, up to this many (a binary text[]). */
#define BATCH_MAX 64
#define TEXT_OID 25

static const tess_pgconn_stmt_t stmts[Q__COUNT] = {
    [Q_GET] = {"SELECT sess, (extract(epoch FROM expire::timestamptz) * 1000)::bigint FROM session"
               " WHERE sid = $1 AND expire > now()",
               1},
    [Q_SET] = {"INSERT INTO session (sid, sess, expire) VALUES ($1, $2::json, to_timestamp($3::bigint / 1000.0))"
               " ON CONFLICT (sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire",
               3},
    /* `expire > now()`: a destroyed or expired row is never brought back. */
    [Q_TOUCH] = {"UPDATE session SET expire = to_timestamp($2::bigint / 1000.0) WHERE sid = $1 AND expire > now()", 2},
    [Q_DESTROY] = {"DELETE FROM session WHERE sid = $1", 1},
    [Q_DESTROY_USER] = {"DELETE FROM session WHERE sess->>'userId' = $1", 1},
    [Q_PING] = {"SELECT 1", 0},
    /* SKIP LOCKED: concurrent pruners take disjoint batches, never wait on each other, never deadlock. */
    [Q_PRUNE] = {"DELETE FROM session WHERE sid IN (SELECT sid FROM session WHERE expire < now() ORDER BY expire"
                 " LIMIT $1::bigint FOR UPDATE SKIP LOCKED)",
                 1},
    /* The lookups that waited for the one in flight; the primary key's index answers each id. */
    [Q_GET_MANY] = {"SELECT sid, sess, (extract(epoch FROM expire::timestamptz) * 1000)::bigint FROM session"
                    " WHERE sid = ANY($1::text[]) AND expire > now()",
                    1},
};

static const char schema_sql[] =
    "BEGIN;"
    "SELECT " MIGRATE_LOCK ";"
    "CREATE TABLE IF NOT EXISTS session (sid varchar NOT NULL COLLATE \"default\", sess json NOT NULL,"
    " expire timestamp(6) NOT NULL, CONSTRAINT session_pkey PRIMARY KEY (sid));"
    "CREATE INDEX IF NOT EXISTS \"IDX_session_expire\" ON session (expire);"
    "CREATE INDEX IF NOT EXISTS session_user_id_idx ON session ((sess->>'userId'));"
    "COMMIT";

/* The same operations over NextAuth's Prisma tables (tessera/nextauth.h); the role expression is filled in. */
#define NA_NOW "(now() AT TIME ZONE 'UTC')"
#define NA_TS(p) "(to_timestamp(" p "::bigint / 1000.0) AT TIME ZONE 'UTC')"
#define NA_GET_COLS "s.\"userId\", (extract(epoch FROM s.expires AT TIME ZONE 'UTC') * 1000)::bigint, "
#define NA_GET_HEAD "SELECT " NA_GET_COLS
#define NA_GET_FROM " FROM \"Session\" s JOIN \"User\" u ON u.id = s.\"userId\" WHERE s.\"sessionToken\" "
#define NA_GET_TAIL NA_GET_FROM "= $1 AND s.expires > " NA_NOW
#define NA_GET_MANY_TAIL NA_GET_FROM "= ANY($1::text[]) AND s.expires > " NA_NOW
static const char *const na_text[Q__COUNT] = {
    [Q_GET] = NULL, /* NA_GET_HEAD, the role expression, NA_GET_TAIL */
    [Q_SET] = "INSERT INTO \"Session\" (id, \"sessionToken\", \"userId\", expires) VALUES ($1, $2, $3, " NA_TS(
        "$4") ") ON CONFLICT (\"sessionToken\") DO UPDATE SET expires = excluded.expires",
    [Q_TOUCH] = "UPDATE \"Session\" SET expires = " NA_TS("$2") " WHERE \"sessionToken\" = $1 AND expires > " NA_NOW,
    [Q_DESTROY] = "DELETE FROM \"Session\" WHERE \"sessionToken\" = $1",
    [Q_DESTROY_USER] = "DELETE FROM \"Session\" WHERE \"userId\" = $1",
    [Q_PING] = "SELECT 1",
    [Q_PRUNE] = "DELETE FROM \"Session\" WHERE id IN (SELECT id FROM \"Session\" WHERE expires < " NA_NOW
                " LIMIT $1::bigint FOR UPDATE SKIP LOCKED)",
    [Q_GET_MANY] = NULL, /* "SELECT s.\"sessionToken\", " then as Q_GET, over NA_GET_MANY_TAIL */
};
static const int na_nparams[Q__COUNT] = {[Q_GET] = 2,          [Q_SET] = 4,  [Q_TOUCH] = 2, [Q_DESTROY] = 1,
                                         [Q_DESTROY_USER] = 1, [Q_PING] = 0, [Q_PRUNE] = 1, [Q_GET_MANY] = 2};

typedef struct pgstore {
    tess_store_t base;                     /* must be first */
    tess_pgconn_t *conn;                   /* the loop's connection */
    const tess_pgconn_stmt_t *stmts;       /* connect-pg-simple's table, or na_stmts below */
    tess__nextauth_t na;                   /* NextAuth's tables: the role, maxAge */
    int nextauth;                          /* over NextAuth's tables */
    char get_sql[512];                     /* NextAuth: the lookup with its role expression */
    char get_many_sql[600];                /* NextAuth: the batched lookup, the token first */
    tess_pgconn_stmt_t na_stmts[Q__COUNT]; /* NextAuth: the statements (outlive the connection) */
    struct pg_op *batch;                   /* lookups waiting for the one in flight, in arrival order */
    struct pg_op **batch_tail;             /* where the next one goes */
    int batch_n;                           /* how many */
    int lookups_in_flight;                 /* lookup statements sent and not yet answered */
    int closing;                           /* pg_close under way: nothing more is sent */
    uint64_t batches;                      /* Q_GET_MANY statements sent (tess__pgstore_batches) */
} pgstore_t;

/* One operation in flight. */
typedef struct pg_op {
    struct pg_op *next;     /* get: the next lookup of the same batch */
    pgstore_t *s;           /* its store */
    tess_store_cb cb;       /* caller's callback */
    void *arg;              /* its argument */
    int kind;               /* Q_* */
    size_t sid_len;         /* get: bytes in sid */
    char sid[TESS_SID_MAX]; /* get: the id (for tess_session_from_json) */
} pg_op_t;

/* A NextAuth lookup's row ("userId", expires ms, role from column `col` on) as a session. */
static int na_session(const pgstore_t *s, tess_session_t *out, tess_str_t sid, const PGresult *res, int row, int col)
{
    return tess__nextauth_session(&s->na, out, sid,
                                  tess_strn(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col)),
                                  strtoll(PQgetvalue(res, row, col + 1), NULL, 10),
                                  PQgetisnull(res, row, col + 2) ? tess_strn(NULL, 0)
                                                                 : tess_strn(PQgetvalue(res, row, col + 2),
                                                                             (size_t)PQgetlength(res, row, col + 2)));
}

static const tess_store_ops_t pgstore_ops;

/* A lookup's parameters: `id` (a token, or the batch's text[]), and over NextAuth's tables the role for a row
   without one. Returns how many. */
static int lookup_params(const pgstore_t *s, tess_pgconn_param_t p[2], const char *id, size_t len)
{
    tess_pgconn_param_str(&p[0], id, len);
    if (!s->nextauth)
        return 1;
    tess_pgconn_param_str(&p[1], s->na.default_role, strlen(s->na.default_role));
    return 2;
}

static char *put_be32(char *w, uint32_t v)
{
    w[0] = (char)(v >> 24);
    w[1] = (char)(v >> 16);
    w[2] = (char)(v >> 8);
    w[3] = (char)v;
    return w + 4;
}

static int valid_sid(tess_str_t sid)
{
    return sid.len > 0 && sid.len <= TESS_SID_MAX;
}

static int64_t col_i64(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* A connect-pg-simple row's session: `sess` in column `col`, the expiry (ms) in the next one. */
static int row_session(tess_session_t *out, tess_str_t sid, const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return TESS_ENOTFOUND;
    return tess_session_from_json(out, sid, tess_strn(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col)),
                                  col_i64(res, row, col + 1));
}

static void on_done(void *arg, int rc, const PGresult *res)
{
    pg_op_t *op = arg;
    pg_op_t o = *op;
    tess_session_t sess;
    int have = 0;

    free(op);
    if (rc == 0) {
        switch (o.kind) {
        case Q_GET:
            if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
                rc = TESS_ENOTFOUND;
            } else if (o.s->nextauth) {
                rc = na_session(o.s, &sess, tess_strn(o.sid, o.sid_len), res, 0, 0);
                have = rc == 0;
            } else {
                rc = row_session(&sess, tess_strn(o.sid, o.sid_len), res, 0, 0);
                have = rc == 0;
            }
            break;
        case Q_TOUCH:
            if (strcmp(PQcmdTuples((PGresult *)res), "0") == 0)
                rc = TESS_ENOTFOUND;
            break;
        default:
            break;
        }
    }
    if (rc != 0 && rc != TESS_ENOTFOUND)
        tess_store_count(&o.s->base.stats.errors);
    o.cb(o.arg, rc, have ? &sess : NULL); /* the store may be closed from here on */
    if (have)
        tess_session_clear(&sess);
}

/* One operation for the caller, or NULL when out of memory. */
static pg_op_t *op_new(pgstore_t *s, int kind, tess_str_t sid, tess_store_cb cb, void *arg)
{
    pg_op_t *op = malloc(sizeof(*op));
    if (op == NULL)
        return NULL;
    op->next = NULL;
    op->s = s;
    op->cb = cb;
    op->arg = arg;
    op->kind = kind;
    op->sid_len = sid.len;
    if (sid.len > 0)
        memcpy(op->sid, sid.ptr, sid.len);
    return op;
}

static void batch_send(pgstore_t *s);

/* Starts one statement for the caller. */
static int start(pgstore_t *s, int kind, const tess_pgconn_param_t *params, int nparams, tess_str_t sid,
                 tess_store_cb cb, void *arg)
{
    pg_op_t *op;
    int rc;

    if (cb == NULL)
        return TESS_EINVAL;
    if (s->batch_n > 0)
        batch_send(s); /* what was asked first goes first: statements keep the callers' order */
    if ((op = op_new(s, kind, sid, cb, arg)) == NULL)
        return TESS_ENOMEM;
    if (tess_pgconn_connected(s->conn)) { /* counts what reaches the backend */
        if (kind == Q_GET)
            tess_store_count(&s->base.stats.gets);
        else if (kind == Q_SET || kind == Q_TOUCH || kind == Q_DESTROY || kind == Q_DESTROY_USER)
            tess_store_count(&s->base.stats.writes);
    }
    if ((rc = tess_pgconn_query(s->conn, kind, params, nparams, on_done, op)) != 0)
        free(op);
    return rc;
}

/* ---- lookups, batched while one is in flight ---------------------------------------------------------- */

/* A batch's answers, completed: the errors counted first, then each caller (who may close the store). */
static void batch_finish(pgstore_t *s, pg_op_t *ops, int *rcs, tess_session_t *sess)
{
    int i = 0;
    for (pg_op_t *op = ops; op != NULL; op = op->next, ++i)
        if (rcs[i] != 0 && rcs[i] != TESS_ENOTFOUND)
            tess_store_count(&s->base.stats.errors);
    i = 0;
    for (pg_op_t *op = ops, *next; op != NULL; op = next, ++i) {
        tess_store_cb cb = op->cb;
        void *arg = op->arg;
        next = op->next;
        free(op);
        cb(arg, rcs[i], rcs[i] == 0 ? &sess[i] : NULL);
        if (rcs[i] == 0)
            tess_session_clear(&sess[i]);
    }
}

/* Every lookup of `ops` answered with `rc` (no session). */
static void batch_fail(pgstore_t *s, pg_op_t *ops, int rc)
{
    int rcs[BATCH_MAX];
    for (int i = 0; i < BATCH_MAX; ++i)
        rcs[i] = rc;
    batch_finish(s, ops, rcs, NULL);
}

/* A lookup statement came back: the lookups that waited for it go out now, before any caller runs. */
static void lookup_answered(pgstore_t *s)
{
    if (--s->lookups_in_flight == 0 && s->batch_n > 0 && !s->closing)
        batch_send(s);
}

static void on_batch_done(void *arg, int rc, const PGresult *res)
{
    pg_op_t *ops = arg;
    pgstore_t *s = ops->s;
    int rcs[BATCH_MAX], i = 0, rows = rc == 0 ? PQntuples(res) : 0;
    tess_session_t sess[BATCH_MAX];

    /* Everything is read out of `res` before any caller runs. */
    for (pg_op_t *op = ops; op != NULL; op = op->next, ++i) {
        int row = -1;
        for (int r = 0; r < rows && row < 0; ++r)
            if ((size_t)PQgetlength(res, r, 0) == op->sid_len &&
                memcmp(PQgetvalue(res, r, 0), op->sid, op->sid_len) == 0)
                row = r;
        if (rc != 0)
            rcs[i] = rc;
        else if (row < 0)
            rcs[i] = TESS_ENOTFOUND;
        else if (s->nextauth)
            rcs[i] = na_session(s, &sess[i], tess_strn(op->sid, op->sid_len), res, row, 1);
        else
            rcs[i] = row_session(&sess[i], tess_strn(op->sid, op->sid_len), res, row, 1);
    }
    lookup_answered(s);
    batch_finish(s, ops, rcs, sess);
}

/* A lone lookup's answer: as any statement's (on_done), the next batch sent first. */
static void on_lookup_done(void *arg, int rc, const PGresult *res)
{
    lookup_answered(((pg_op_t *)arg)->s);
    on_done(arg, rc, res);
}

/* The waiting lookups go out: one as Q_GET, more as one Q_GET_MANY over a binary text[] of their ids. */
static void batch_send(pgstore_t *s)
{
    pg_op_t *ops = s->batch;
    int n = s->batch_n, rc;
    tess_pgconn_param_t p[2];
    char *buf = NULL, *w;
    size_t len = 20;

    s->batch = NULL;
    s->batch_tail = &s->batch;
    s->batch_n = 0;
    if (ops == NULL)
        return;
    if (tess_pgconn_connected(s->conn))
        for (pg_op_t *op = ops; op != NULL; op = op->next)
            tess_store_count(&s->base.stats.gets);
    if (n == 1) {
        int np = lookup_params(s, p, ops->sid, ops->sid_len);
        s->lookups_in_flight++; /* before: the answer may come at once (disconnected) */
        if ((rc = tess_pgconn_query(s->conn, Q_GET, p, np, on_lookup_done, ops)) != 0) {
            s->lookups_in_flight--;
            batch_fail(s, ops, rc);
        }
        return;
    }
    for (pg_op_t *op = ops; op != NULL; op = op->next)
        len += 4 + op->sid_len;
    if ((buf = malloc(len)) == NULL) {
        batch_fail(s, ops, TESS_ENOMEM);
        return;
    }
    /* PostgreSQL's binary array: ndim, has-nulls, element type, then (length, lower bound), then each
       element as a length and its bytes; all integers big-endian. */
    w = buf;
    w = put_be32(w, 1);
    w = put_be32(w, 0);
    w = put_be32(w, TEXT_OID);
    w = put_be32(w, (uint32_t)n);
    w = put_be32(w, 1);
    for (pg_op_t *op = ops; op != NULL; op = op->next) {
        w = put_be32(w, (uint32_t)op->sid_len);
        memcpy(w, op->sid, op->sid_len);
        w += op->sid_len;
    }
    int np = lookup_params(s, p, buf, len);
    s->batches++;
    s->lookups_in_flight++;
    rc = tess_pgconn_query(s->conn, Q_GET_MANY, p, np, on_batch_done, ops); /* libpq copied the bytes */
    free(buf);
    if (rc != 0) {
        s->lookups_in_flight--;
        batch_fail(s, ops, rc);
    }
}

static int pg_get(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg)
{
    pgstore_t *s = (pgstore_t *)store;
    tess_pgconn_param_t p[2];
    pg_op_t *op;

    if (!valid_sid(sid))
        return TESS_EINVAL;
    /* One statement per lookup while disconnected (the lookup fails at once, as every call does then). */
    if (s->closing || !tess_pgconn_connected(s->conn))
        return start(s, Q_GET, p, lookup_params(s, p, sid.ptr, sid.len), sid, cb, arg);
    if (cb == NULL)
        return TESS_EINVAL;
    if ((op = op_new(s, Q_GET, sid, cb, arg)) == NULL)
        return TESS_ENOMEM;
    *s->batch_tail = op;
    s->batch_tail = &op->next;
    /* Nothing in flight: it goes now, alone. Else it waits for the answer in flight (lookup_answered), with
       those that arrive meanwhile: the batches grow with the load, and an idle store adds no delay. */
    if (++s->batch_n == BATCH_MAX || s->lookups_in_flight == 0)
        batch_send(s);
    return 0;
}

uint64_t tess__pgstore_batches(tess_store_t *store)
{
    return store != NULL && store->ops == &pgstore_ops ? ((pgstore_t *)store)->batches : 0;
}

/* NextAuth: a "Session" row for the session (its token is the id) of an existing "User". */
static int na_set(pgstore_t *s, const tess_session_t *sess, tess_store_cb cb, void *arg)
{
    tess_pgconn_param_t p[4];
    char id[TESS__NEXTAUTH_ROW_ID_LEN + 1];
    int rc;

    if ((rc = tess__nextauth_row_id(id)) != 0)
        return rc;
    tess_pgconn_param_str(&p[0], id, strlen(id));
    tess_pgconn_param_str(&p[1], sess->id, strlen(sess->id));
    tess_pgconn_param_str(&p[2], sess->user_id, strlen(sess->user_id));
    tess_pgconn_param_i64(&p[3], sess->expires_ms);
    return start(s, Q_SET, p, 4, tess_strn(NULL, 0), cb, arg);
}

static int pg_set(tess_store_t *store, const tess_session_t *sess, tess_store_cb cb, void *arg)
{
    tess_pgconn_param_t p[3];
    char *doc = NULL;
    size_t len = 0;
    int rc;

    if (sess == NULL || !valid_sid(tess_str(sess->id)) || sess->user_id[0] == '\0')
        return TESS_EINVAL;
    if (((pgstore_t *)store)->nextauth)
        return na_set((pgstore_t *)store, sess, cb, arg);
    if ((rc = tess_session_to_json(sess, &doc, &len)) != 0)
        return rc;
    tess_pgconn_param_str(&p[0], sess->id, strlen(sess->id));
    tess_pgconn_param_str(&p[1], doc, len);
    tess_pgconn_param_i64(&p[2], sess->expires_ms);
    rc = start((pgstore_t *)store, Q_SET, p, 3, tess_strn(NULL, 0), cb, arg); /* libpq copied the bytes */
    free(doc);
    return rc;
}

static int pg_touch(tess_store_t *store, tess_str_t sid, int64_t expires_ms, tess_store_cb cb, void *arg)
{
    tess_pgconn_param_t p[2];

    if (!valid_sid(sid))
        return TESS_EINVAL;
    tess_pgconn_param_str(&p[0], sid.ptr, sid.len);
    tess_pgconn_param_i64(&p[1], expires_ms);
    return start((pgstore_t *)store, Q_TOUCH, p, 2, tess_strn(NULL, 0), cb, arg);
}

static int pg_destroy(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg)
{
    tess_pgconn_param_t p[1];

    if (!valid_sid(sid))
        return TESS_EINVAL;
    tess_pgconn_param_str(&p[0], sid.ptr, sid.len);
    return start((pgstore_t *)store, Q_DESTROY, p, 1, tess_strn(NULL, 0), cb, arg);
}

static int pg_destroy_user(tess_store_t *store, tess_str_t user_id, tess_store_cb cb, void *arg)
{
    tess_pgconn_param_t p[1];

    if (user_id.len == 0 || user_id.len > TESS_USER_ID_MAX)
        return TESS_EINVAL;
    tess_pgconn_param_str(&p[0], user_id.ptr, user_id.len);
    return start((pgstore_t *)store, Q_DESTROY_USER, p, 1, tess_strn(NULL, 0), cb, arg);
}

static int pg_ping(tess_store_t *store, tess_store_cb cb, void *arg)
{
    return start((pgstore_t *)store, Q_PING, NULL, 0, tess_strn(NULL, 0), cb, arg);
}

static void pg_close(tess_store_t *store)
{
    pgstore_t *s = (pgstore_t *)store;
    pg_op_t *ops = s->batch;

    s->closing = 1;
    s->batch = NULL;
    s->batch_n = 0;
    if (ops != NULL)
        batch_fail(s, ops, TESS_EUNAVAIL); /* lookups not sent yet: pending too */
    tess_pgconn_close(s->conn);            /* pending callbacks run now, with TESS_EUNAVAIL */
    free(s);
}

static int pg_prune(tess_store_t *store, int64_t now_ms, int batch, tess_store_cb cb, void *arg)
{
    tess_pgconn_param_t p[1];

    (void)now_ms; /* the server's clock decides: expire < now() */
    if (batch <= 0)
        return TESS_EINVAL;
    tess_pgconn_param_i64(&p[0], batch);
    return start((pgstore_t *)store, Q_PRUNE, p, 1, tess_strn(NULL, 0), cb, arg);
}

static const tess_store_ops_t pgstore_ops = {
    .name = "postgres",
    .get = pg_get,
    .set = pg_set,
    .touch = pg_touch,
    .destroy = pg_destroy,
    .destroy_user = pg_destroy_user,
    .ping = pg_ping,
    .prune = pg_prune,
    .close = pg_close,
};

int tess_pgstore_migrate(const char *conninfo, char *err, size_t errcap)
{
    char dummy[1];
    PGconn *pg;
    int rc;

    if (err == NULL || errcap == 0) {
        err = dummy;
        errcap = sizeof(dummy);
    }
    err[0] = '\0';
    if (conninfo == NULL)
        return TESS_EINVAL;
    if ((pg = tess_pgconn_connect_sync(conninfo, err, errcap)) == NULL)
        return TESS_EUNAVAIL;
    rc = tess_pgconn_exec_sync(pg, schema_sql, err, errcap);
    if (rc != 0 && rc != TESS_EUNAVAIL)
        rc = TESS_EIO;
    PQfinish(pg);
    return rc;
}

/* Opens over connect-pg-simple's table (`na` NULL) or NextAuth's. */
static int open_store(tess_store_t **out, tess_loop_t *loop, const tess_pg_opts_t *opts, const tess__nextauth_t *na,
                      char *err, size_t errcap)
{
    tess_pgconn_opts_t po = {0};
    pgstore_t *s;
    int rc;

    *out = NULL;
    if (loop == NULL || opts == NULL || opts->conninfo == NULL)
        return TESS_EINVAL;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return TESS_ENOMEM;
    s->base.ops = &pgstore_ops;
    s->stmts = stmts;
    s->batch_tail = &s->batch;
    if (na != NULL) {
        char role[TESS_NEXTAUTH_COLUMN_MAX + 32] = "$2::text";
        if (na->role_column[0] != '\0')
            snprintf(role, sizeof(role), "coalesce(u.\"%s\"::text, $2::text)", na->role_column);
        s->na = *na;
        s->nextauth = 1;
        snprintf(s->get_sql, sizeof(s->get_sql), "%s%s%s", NA_GET_HEAD, role, NA_GET_TAIL);
        snprintf(s->get_many_sql, sizeof(s->get_many_sql), "SELECT s.\"sessionToken\", %s%s%s", NA_GET_COLS, role,
                 NA_GET_MANY_TAIL);
        for (int i = 0; i < Q__COUNT; i++) {
            s->na_stmts[i].sql = i == Q_GET ? s->get_sql : i == Q_GET_MANY ? s->get_many_sql : na_text[i];
            s->na_stmts[i].nparams = na_nparams[i];
        }
        s->stmts = s->na_stmts;
    }
    po.conninfo = opts->conninfo;
    po.timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 1000;
    po.stmts = s->stmts;
    po.n_stmts = Q__COUNT;
    po.name = na != NULL ? "nextauth store" : "pgstore";
    if ((rc = tess_pgconn_open(&s->conn, loop, &po, err, errcap)) != 0) {
        free(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}

int tess_pgstore_open(tess_store_t **out, tess_loop_t *loop, const tess_pg_opts_t *opts, char *err, size_t errcap)
{
    return open_store(out, loop, opts, NULL, err, errcap);
}

int tess__pg_nextauth_open(tess_store_t **out, tess_loop_t *loop, const tess_pg_opts_t *opts,
                           const tess__nextauth_t *na, char *err, size_t errcap)
{
    return open_store(out, loop, opts, na, err, errcap);
}

int tess_pgstore_connected(tess_store_t *store)
{
    return store != NULL && store->ops == &pgstore_ops && tess_pgconn_connected(((pgstore_t *)store)->conn);
}

/* ---- driver --------------------------------------------------------------------------------------------- */

static int drv_accepts(const char *url)
{
    return url != NULL && (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0 ||
                           (strncmp(url, "sqlite:", 7) != 0 && strchr(url, '=') != NULL));
}

static int drv_migrate(const tess_store_params_t *p, char *err, size_t errcap)
{
    return tess_pgstore_migrate(p->url, err, errcap);
}

static int drv_open(tess_store_t **out, const tess_store_params_t *p, char *err, size_t errcap)
{
    tess_pg_opts_t po = {p->url, p->timeout_ms};
    return tess_pgstore_open(out, p->loop, &po, err, errcap);
}

const tess_store_driver_t tess__postgres_driver = {
    .name = "postgres",
    .accepts = drv_accepts,
    .migrate = drv_migrate,
    .open = drv_open,
};
