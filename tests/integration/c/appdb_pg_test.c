/*
 * appdb on PostgreSQL (src/server/appdb_pg.c) against a real PostgreSQL 15, checked against the SQLite
 * backend (the behavioural reference): every scenario runs on both, with the same expected results.
 * Run by tests/integration/test_pg_store.py. TESS_PG_URL: the test database (skipped without it).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "pg_admin.h"
#include "tessera/pollloop.h"
#include "app/appdb.h"
#include "tessera/error.h"

#define WAIT_MS 5000
#define T0 INT64_C(1700000000000)

static const char *pg_url;
static tess_poll_loop_t *L;

typedef struct backend {
    const char *name; /* "postgres" or "sqlite" */
    appdb_t *db;      /* the handle under test */
    sqlite3 *sq;      /* sqlite: the database */
} backend_t;

static backend_t pg_backend = {.name = "postgres"}, sq_backend = {.name = "sqlite"};

/* ---- helpers ---------------------------------------------------------------------------------------- */

/* A deep copy of one result. */
typedef struct res {
    int done;
    int rc;
    int have_user;
    appdb_user_t user;
    appdb_prechat_t pc[APP_LIST_MAX];
    size_t n_pc;
    appdb_message_t *msg; /* malloc'd copy */
    size_t n_msg;
} res_t;

static void res_clear(res_t *r)
{
    free(r->msg);
    memset(r, 0, sizeof(*r));
}

static void on_res(void *arg, const appdb_result_t *ar)
{
    res_t *r = arg;
    r->done++;
    r->rc = ar->rc;
    if (ar->user != NULL) {
        r->have_user = 1;
        r->user = *ar->user;
    }
    assert_true(ar->n_prechats <= APP_LIST_MAX);
    if (ar->n_prechats > 0)
        memcpy(r->pc, ar->prechats, ar->n_prechats * sizeof(*ar->prechats));
    r->n_pc = ar->n_prechats;
    if (ar->n_messages > 0) {
        r->msg = malloc(ar->n_messages * sizeof(*r->msg));
        assert_non_null(r->msg);
        memcpy(r->msg, ar->messages, ar->n_messages * sizeof(*r->msg));
    }
    r->n_msg = ar->n_messages;
}

static int is_done(void *arg)
{
    return ((res_t *)arg)->done > 0;
}

static int finish(int started, res_t *r)
{
    assert_int_equal(started, 0);
    assert_true(tess_poll_loop_run_until(L, is_done, r, WAIT_MS));
    assert_int_equal(r->done, 1);
    return r->rc;
}

#define DB(state) (((backend_t *)*(state))->db)
#define IS_PG(state) (((backend_t *)*(state)) == &pg_backend)

static int user_by_name(appdb_t *db, const char *name, res_t *r)
{
    res_clear(r);
    return finish(db->ops->user_by_name(db, tess_str(name), on_res, r), r);
}

static int user_by_id(appdb_t *db, int64_t id, res_t *r)
{
    res_clear(r);
    return finish(db->ops->user_by_id(db, id, on_res, r), r);
}

static int create(appdb_t *db, int64_t visitor, const char *topic, int64_t now, res_t *r)
{
    res_clear(r);
    return finish(db->ops->prechat_create(db, visitor, tess_str(topic), 1000, now, on_res, r), r);
}

static int create_capped(appdb_t *db, int64_t visitor, int64_t max_open, res_t *r)
{
    res_clear(r);
    return finish(db->ops->prechat_create(db, visitor, tess_str("t"), max_open, T0, on_res, r), r);
}

static int get(appdb_t *db, int64_t id, res_t *r)
{
    res_clear(r);
    return finish(db->ops->prechat_get(db, id, on_res, r), r);
}

static int waiting(appdb_t *db, size_t limit, res_t *r)
{
    res_clear(r);
    return finish(db->ops->prechat_waiting(db, limit, on_res, r), r);
}

static int join(appdb_t *db, int64_t id, int64_t agent, int64_t now, res_t *r)
{
    res_clear(r);
    return finish(db->ops->prechat_join(db, id, agent, 1000, now, on_res, r), r);
}

static int join_capped(appdb_t *db, int64_t id, int64_t agent, int64_t max_active, int64_t now, res_t *r)
{
    res_clear(r);
    return finish(db->ops->prechat_join(db, id, agent, max_active, now, on_res, r), r);
}

static int close_pc(appdb_t *db, int64_t id, int64_t now, res_t *r)
{
    res_clear(r);
    return finish(db->ops->prechat_close(db, id, now, on_res, r), r);
}

static int msg_add(appdb_t *db, int64_t pc, int64_t sender, const char *role, const char *body, int64_t now, res_t *r)
{
    res_clear(r);
    return finish(db->ops->message_add(db, pc, sender, tess_str(role), tess_str(body), now, on_res, r), r);
}

static int msg_list(appdb_t *db, int64_t pc, int64_t after, size_t limit, res_t *r)
{
    res_clear(r);
    return finish(db->ops->messages_list(db, pc, after, limit, on_res, r), r);
}

static int user_add(void **state, const char *name, const char *role)
{
    backend_t *b = *state;
    char err[256] = "";
    if (b == &pg_backend)
        return appdb_pg_user_add(pg_url, name, role, "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA", T0, err,
                                 sizeof(err));
    return appdb_sqlite_user_add(b->sq, name, role, "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA", T0, err,
                                 sizeof(err));
}

static int pg_ready(void *arg)
{
    res_t r = {0};
    appdb_t *db = arg;
    assert_int_equal(db->ops->ping(db, on_res, &r), 0);
    tess_poll_loop_run_until(L, is_done, &r, WAIT_MS);
    if (r.rc != 0)
        tess_poll_loop_run_until(L, NULL, NULL, 20);
    return r.rc == 0;
}

/* ---- fixtures --------------------------------------------------------------------------------------- */

static int pg_group_setup(void **state)
{
    char err[512];

    if (appdb_pg_migrate(pg_url, err, sizeof(err)) != 0) {
        fprintf(stderr, "appdb_pg_migrate: %s\n", err);
        return -1;
    }
    admin = PQconnectdb(pg_url);
    if (PQstatus(admin) != CONNECTION_OK)
        return -1;
    PQclear(PQexec(admin, "SET client_min_messages = warning"));
    if (appdb_pg_open(&pg_backend.db, tess_poll_loop_base(L), pg_url, 2000, err, sizeof(err)) != 0) {
        fprintf(stderr, "appdb_pg_open: %s\n", err);
        return -1;
    }
    if (!tess_poll_loop_run_until(L, pg_ready, pg_backend.db, WAIT_MS))
        return -1;
    *state = &pg_backend;
    return 0;
}

static int pg_group_teardown(void **state)
{
    (void)state;
    pg_backend.db->ops->close(pg_backend.db);
    PQfinish(admin);
    return 0;
}

static int pg_setup(void **state)
{
    (void)state;
    sql("TRUNCATE message, prechat, app_user RESTART IDENTITY CASCADE");
    return 0;
}

static int sq_setup(void **state)
{
    char err[256];
    if (appdb_sqlite_connect(&sq_backend.sq, ":memory:", err, sizeof(err)) != 0 ||
        appdb_sqlite_open(&sq_backend.db, sq_backend.sq, err, sizeof(err)) != 0) {
        fprintf(stderr, "sqlite: %s\n", err);
        return -1;
    }
    *state = &sq_backend;
    return 0;
}

static int sq_teardown(void **state)
{
    (void)state;
    sq_backend.db->ops->close(sq_backend.db);
    sqlite3_close(sq_backend.sq);
    return 0;
}

/* ---- scenarios (both backends) ---------------------------------------------------------------------- */

static void test_users(void **state)
{
    res_t r = {0};

    assert_int_equal(user_add(state, "alice", "visitor"), 0);
    assert_int_equal(user_add(state, "bob", "agent"), 0);
    assert_int_equal(user_add(state, "alice", "agent"), TESS_EEXISTS);
    assert_int_equal(user_by_name(DB(state), "alice", &r), 0);
    assert_true(r.have_user);
    assert_int_equal(r.user.id, 1);
    assert_string_equal(r.user.name, "alice");
    assert_string_equal(r.user.role, "visitor");
    assert_string_equal(r.user.pwhash, "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA");
    assert_int_equal(user_by_name(DB(state), "bob", &r), 0);
    assert_int_equal(r.user.id, 2);
    assert_string_equal(r.user.role, "agent");
    assert_int_equal(user_by_name(DB(state), "carol", &r), TESS_ENOTFOUND);
    assert_false(r.have_user);
    /* by id (a token's user): id, name, role, no hash */
    assert_int_equal(user_by_id(DB(state), 2, &r), 0);
    assert_true(r.have_user);
    assert_string_equal(r.user.name, "bob");
    assert_string_equal(r.user.role, "agent");
    assert_string_equal(r.user.pwhash, "");
    assert_int_equal(user_by_id(DB(state), 99, &r), TESS_ENOTFOUND);
    assert_false(r.have_user);
    /* another app's user: a row made on first sight, the same row afterwards */
    res_clear(&r);
    assert_int_equal(finish(DB(state)->ops->user_external(DB(state), TESS_STR_LIT("clx9user"), TESS_STR_LIT("agent"),
                                                          T0, on_res, &r),
                            &r),
                     0);
    int64_t ext = r.user.id;
    assert_true(ext > 2);
    assert_string_equal(r.user.name, "ext:clx9user");
    assert_string_equal(r.user.role, "agent");
    res_clear(&r);
    assert_int_equal(finish(DB(state)->ops->user_external(DB(state), TESS_STR_LIT("clx9user"), TESS_STR_LIT("admin"),
                                                          T0, on_res, &r),
                            &r),
                     0);
    assert_int_equal(r.user.id, ext);
    res_clear(&r);
    assert_int_equal(
        finish(DB(state)->ops->user_external(DB(state), TESS_STR_LIT("other"), TESS_STR_LIT("admin"), T0, on_res, &r),
               &r),
        0);
    assert_string_equal(r.user.role, "visitor");
    res_clear(&r);
}

static void test_queue_positions(void **state)
{
    res_t r = {0};

    assert_int_equal(user_add(state, "v", "visitor"), 0);
    for (int i = 1; i <= 3; ++i) {
        char topic[32];
        snprintf(topic, sizeof(topic), "topic %d", i);
        assert_int_equal(create(DB(state), 1, topic, T0 + i, &r), 0);
        assert_int_equal(r.n_pc, 1);
        assert_int_equal(r.pc[0].id, i);
        assert_int_equal(r.pc[0].visitor_id, 1);
        assert_int_equal(r.pc[0].agent_id, 0);
        assert_string_equal(r.pc[0].topic, topic);
        assert_string_equal(r.pc[0].status, "waiting");
        assert_int_equal(r.pc[0].created_ms, T0 + i);
        assert_int_equal(r.pc[0].updated_ms, T0 + i);
        assert_int_equal(r.pc[0].message_count, 0);
        assert_int_equal(r.pc[0].last_message_id, 0);
        assert_int_equal(r.pc[0].queue_position, i);
    }
    assert_int_equal(get(DB(state), 2, &r), 0);
    assert_int_equal(r.pc[0].queue_position, 2);
    assert_int_equal(get(DB(state), 99, &r), TESS_ENOTFOUND);
    assert_int_equal(r.n_pc, 0);
    assert_int_equal(waiting(DB(state), 10, &r), 0);
    assert_int_equal(r.n_pc, 3);
    for (int i = 0; i < 3; ++i) {
        assert_int_equal(r.pc[i].id, i + 1);
        assert_int_equal(r.pc[i].queue_position, i + 1);
    }
    assert_int_equal(waiting(DB(state), 2, &r), 0);
    assert_int_equal(r.n_pc, 2);
    assert_int_equal(waiting(DB(state), 0, &r), 0);
    assert_int_equal(r.n_pc, 0);
    /* the visitor must exist (a foreign key, as on SQLite) */
    assert_int_equal(create(DB(state), 42, "nobody", T0, &r), TESS_EEXISTS);
    res_clear(&r);
}

static void test_join_close_conflicts(void **state)
{
    res_t r = {0};

    assert_int_equal(user_add(state, "v", "visitor"), 0);
    assert_int_equal(user_add(state, "a", "agent"), 0);
    for (int i = 1; i <= 3; ++i)
        assert_int_equal(create(DB(state), 1, "t", T0 + i, &r), 0);

    assert_int_equal(join(DB(state), 1, 2, T0 + 10, &r), 0);
    assert_int_equal(r.n_pc, 1);
    assert_int_equal(r.pc[0].id, 1);
    assert_string_equal(r.pc[0].status, "active");
    assert_int_equal(r.pc[0].agent_id, 2);
    assert_int_equal(r.pc[0].updated_ms, T0 + 10);
    assert_int_equal(r.pc[0].created_ms, T0 + 1);
    assert_int_equal(r.pc[0].queue_position, 0);
    assert_int_equal(get(DB(state), 2, &r), 0);
    assert_int_equal(r.pc[0].queue_position, 1); /* moved up */
    assert_int_equal(join(DB(state), 1, 2, T0 + 11, &r), TESS_ECONFLICT);
    assert_int_equal(r.n_pc, 0);
    assert_int_equal(join(DB(state), 99, 2, T0 + 11, &r), TESS_ENOTFOUND);

    assert_int_equal(close_pc(DB(state), 2, T0 + 20, &r), 0);
    assert_string_equal(r.pc[0].status, "closed");
    assert_int_equal(r.pc[0].updated_ms, T0 + 20);
    assert_int_equal(r.pc[0].queue_position, 0);
    assert_int_equal(join(DB(state), 2, 2, T0 + 21, &r), TESS_ECONFLICT);
    assert_int_equal(close_pc(DB(state), 2, T0 + 21, &r), TESS_ECONFLICT);
    assert_int_equal(close_pc(DB(state), 99, T0 + 21, &r), TESS_ENOTFOUND);
    assert_int_equal(close_pc(DB(state), 1, T0 + 22, &r), 0); /* active -> closed */
    assert_int_equal(get(DB(state), 1, &r), 0);
    assert_string_equal(r.pc[0].status, "closed");
    assert_int_equal(r.pc[0].agent_id, 2);
    assert_int_equal(waiting(DB(state), 10, &r), 0);
    assert_int_equal(r.n_pc, 1);
    assert_int_equal(r.pc[0].id, 3);
    assert_int_equal(r.pc[0].queue_position, 1);
    res_clear(&r);
}

/* The agent's capacity: at most max_active active pre-chats; refused while the pre-chat stays waiting. */
static void test_join_capacity(void **state)
{
    res_t r = {0};

    assert_int_equal(user_add(state, "v", "visitor"), 0);
    assert_int_equal(user_add(state, "a", "agent"), 0);
    for (int i = 1; i <= 3; ++i)
        assert_int_equal(create(DB(state), 1, "t", T0 + i, &r), 0);
    assert_int_equal(join_capped(DB(state), 1, 2, 2, T0 + 10, &r), 0);
    assert_int_equal(join_capped(DB(state), 2, 2, 2, T0 + 11, &r), 0);
    assert_int_equal(join_capped(DB(state), 3, 2, 2, T0 + 12, &r), TESS_EDENIED);
    assert_int_equal(r.n_pc, 0);
    assert_int_equal(get(DB(state), 3, &r), 0);
    assert_string_equal(r.pc[0].status, "waiting");
    assert_int_equal(join_capped(DB(state), 1, 2, 2, T0 + 13, &r), TESS_ECONFLICT); /* not waiting beats full */
    assert_int_equal(join_capped(DB(state), 99, 2, 2, T0 + 13, &r), TESS_ENOTFOUND);
    assert_int_equal(close_pc(DB(state), 1, T0 + 14, &r), 0);
    assert_int_equal(join_capped(DB(state), 3, 2, 2, T0 + 15, &r), 0);
    assert_string_equal(r.pc[0].status, "active");
    assert_int_equal(r.pc[0].agent_id, 2);
    res_clear(&r);
}

/* The open bound: a visitor with max_open pre-chats not closed is refused (EDENIED, no row) until one closes. */
static void test_open_bound(void **state)
{
    res_t r = {0};

    assert_int_equal(user_add(state, "v", "visitor"), 0);
    assert_int_equal(user_add(state, "w", "visitor"), 0);
    assert_int_equal(create_capped(DB(state), 1, 2, &r), 0);
    assert_int_equal(create_capped(DB(state), 1, 2, &r), 0);
    assert_int_equal(create_capped(DB(state), 1, 2, &r), TESS_EDENIED);
    assert_int_equal(r.n_pc, 0);
    assert_int_equal(create_capped(DB(state), 2, 2, &r), 0); /* another visitor */
    assert_int_equal(close_pc(DB(state), 1, T0 + 1, &r), 0);
    assert_int_equal(create_capped(DB(state), 1, 2, &r), 0);
    assert_int_equal(r.pc[0].queue_position, 3); /* behind 2 (v) and 3 (w) */
    assert_int_equal(create_capped(DB(state), 1, 2, &r), TESS_EDENIED);
    res_clear(&r);
}

static void test_messages(void **state)
{
    res_t r = {0};
    int64_t ids[5];
    char big[APP_BODY_MAX + 2];

    assert_int_equal(user_add(state, "v", "visitor"), 0);
    assert_int_equal(user_add(state, "a", "agent"), 0);
    assert_int_equal(create(DB(state), 1, "t", T0, &r), 0);
    assert_int_equal(create(DB(state), 1, "other", T0, &r), 0);
    assert_int_equal(msg_add(DB(state), 2, 1, "visitor", "elsewhere", T0, &r), 0); /* id 1, other pre-chat */
    for (int i = 0; i < 5; ++i) {
        char body[32];
        snprintf(body, sizeof(body), "message %d", i);
        assert_int_equal(msg_add(DB(state), 1, i % 2 ? 2 : 1, i % 2 ? "agent" : "visitor", body, T0 + 100 + i, &r), 0);
        assert_int_equal(r.n_msg, 1);
        ids[i] = r.msg[0].id;
        assert_int_equal(ids[i], i + 2);
        assert_int_equal(r.msg[0].prechat_id, 1);
        assert_int_equal(r.msg[0].sender_id, i % 2 ? 2 : 1);
        assert_string_equal(r.msg[0].sender_role, i % 2 ? "agent" : "visitor");
        assert_string_equal(r.msg[0].body, body);
        assert_int_equal(r.msg[0].created_ms, T0 + 100 + i);
    }
    assert_int_equal(get(DB(state), 1, &r), 0);
    assert_int_equal(r.pc[0].message_count, 5);
    assert_int_equal(r.pc[0].last_message_id, ids[4]);
    assert_int_equal(r.pc[0].updated_ms, T0 + 104);
    assert_string_equal(r.pc[0].status, "waiting"); /* messages do not change the status */

    assert_int_equal(msg_list(DB(state), 1, 0, 3, &r), 0);
    assert_int_equal(r.n_msg, 3);
    for (int i = 0; i < 3; ++i)
        assert_int_equal(r.msg[i].id, ids[i]);
    assert_string_equal(r.msg[2].body, "message 2");
    assert_int_equal(msg_list(DB(state), 1, ids[2], 50, &r), 0);
    assert_int_equal(r.n_msg, 2);
    assert_int_equal(r.msg[0].id, ids[3]);
    assert_int_equal(msg_list(DB(state), 1, ids[4], 50, &r), 0);
    assert_int_equal(r.n_msg, 0);
    assert_int_equal(msg_list(DB(state), 1, 0, 0, &r), 0);
    assert_int_equal(r.n_msg, 0);
    assert_int_equal(msg_list(DB(state), 1, 0, 1000, &r), 0); /* capped, not refused */
    assert_int_equal(r.n_msg, 5);

    /* closed: refused, counters unchanged */
    assert_int_equal(close_pc(DB(state), 1, T0 + 200, &r), 0);
    assert_int_equal(msg_add(DB(state), 1, 1, "visitor", "too late", T0 + 201, &r), TESS_ECONFLICT);
    assert_int_equal(r.n_msg, 0);
    assert_int_equal(get(DB(state), 1, &r), 0);
    assert_int_equal(r.pc[0].message_count, 5);
    assert_int_equal(r.pc[0].last_message_id, ids[4]);
    assert_int_equal(r.pc[0].updated_ms, T0 + 200);
    assert_int_equal(msg_add(DB(state), 99, 1, "visitor", "nowhere", T0, &r), TESS_ECONFLICT);
    assert_int_equal(msg_list(DB(state), 1, 0, 50, &r), 0);
    assert_int_equal(r.n_msg, 5);

    /* oversized: not started */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(
        DB(state)->ops->message_add(DB(state), 2, 1, TESS_STR_LIT("visitor"), tess_str(big), T0, on_res, &r),
        TESS_ETOOBIG);
    res_clear(&r);
}

/* ---- PostgreSQL only -------------------------------------------------------------------------------- */

typedef struct burst {
    int done, ok, conflict, other;
} burst_t;

typedef struct burst_req {
    burst_t *b;
    int64_t id; /* message id when ok */
} burst_req_t;

static void on_burst(void *arg, const appdb_result_t *ar)
{
    burst_req_t *q = arg;
    q->b->done++;
    if (ar->rc == 0) {
        q->b->ok++;
        q->id = ar->messages[0].id;
    } else if (ar->rc == TESS_ECONFLICT) {
        q->b->conflict++;
    } else {
        q->b->other++;
    }
}

static int burst_done(void *arg)
{
    burst_t *b = arg;
    return b->done >= 400;
}

/* Two connections adding to one pre-chat at once, with a close in the middle: counters stay exact. */
static void test_concurrent_messages(void **state)
{
    enum { N = 400 };
    static burst_req_t req[N];
    burst_t b = {0};
    appdb_t *other = NULL;
    res_t r = {0}, closed = {0};
    char err[256];
    int64_t max_id = 0;

    if (!IS_PG(state))
        skip();
    assert_int_equal(user_add(state, "v", "visitor"), 0);
    assert_int_equal(create(DB(state), 1, "busy", T0, &r), 0);
    assert_int_equal(appdb_pg_open(&other, tess_poll_loop_base(L), pg_url, 5000, err, sizeof(err)), 0);
    assert_true(tess_poll_loop_run_until(L, pg_ready, other, WAIT_MS));
    for (int i = 0; i < N; ++i) {
        appdb_t *db = i % 2 ? other : DB(state);
        req[i].b = &b;
        req[i].id = 0;
        assert_int_equal(
            db->ops->message_add(db, 1, 1, TESS_STR_LIT("visitor"), TESS_STR_LIT("hi"), T0 + i, on_burst, &req[i]), 0);
        if (i == N / 2)
            assert_int_equal(DB(state)->ops->prechat_close(DB(state), 1, T0 + N, on_res, &closed), 0);
    }
    assert_true(tess_poll_loop_run_until(L, burst_done, &b, 20000));
    assert_true(tess_poll_loop_run_until(L, is_done, &closed, WAIT_MS));
    assert_int_equal(closed.rc, 0);
    assert_int_equal(b.other, 0);
    assert_int_equal(b.ok + b.conflict, N);
    /* the first connection's adds queued before its close all went in, the ones after it all failed */
    assert_true(b.ok >= N / 4 + 1);
    assert_true(b.conflict >= N / 4 - 1);
    printf("# concurrent adds on two connections with a close in the middle: %d in, %d refused\n", b.ok, b.conflict);
    for (int i = 0; i < N; ++i)
        if (req[i].id > max_id)
            max_id = req[i].id;
    assert_int_equal(get(DB(state), 1, &r), 0);
    assert_int_equal(r.pc[0].message_count, b.ok);
    assert_int_equal(r.pc[0].last_message_id, max_id);
    assert_int_equal(sql_int("SELECT count(*) FROM message WHERE prechat_id = 1"), b.ok);
    assert_int_equal(sql_int("SELECT max(id) FROM message WHERE prechat_id = 1"), max_id);
    other->ops->close(other);
    res_clear(&r);
    res_clear(&closed);
}

static void test_unavailable(void **state)
{
    appdb_t *db = NULL;
    res_t r = {0};
    char err[256];

    if (!IS_PG(state))
        skip();
    assert_int_equal(appdb_pg_open(&db, tess_poll_loop_base(L), "postgres://127.0.0.1:1/none", 200, err, sizeof(err)),
                     0);
    assert_int_equal(db->ops->ping(db, on_res, &r), 0);
    assert_int_equal(r.done, 1); /* at once */
    assert_int_equal(r.rc, TESS_EUNAVAIL);
    res_clear(&r);
    assert_int_equal(db->ops->prechat_get(db, 1, on_res, &r), 0);
    assert_int_equal(r.rc, TESS_EUNAVAIL);
    db->ops->close(db);
    assert_int_equal(appdb_pg_user_add("postgres://127.0.0.1:1/none", "x", "visitor", "h", T0, err, sizeof(err)),
                     TESS_EUNAVAIL);
    assert_int_equal(appdb_pg_migrate("postgres://127.0.0.1:1/none", err, sizeof(err)), TESS_EUNAVAIL);
    assert_true(strlen(err) > 0);
    res_clear(&r);
}

typedef struct mig_arg {
    char url[512];
    int rc;
    char err[256];
} mig_arg_t;

static void *mig_thread(void *p)
{
    mig_arg_t *a = p;
    a->rc = appdb_pg_migrate(a->url, a->err, sizeof(a->err));
    return NULL;
}

/* Several instances starting at once on an empty database: one migrates, the others wait and see it done. */
static void test_concurrent_migrate(void **state)
{
    enum { N = 4 };
    pthread_t th[N];
    mig_arg_t args[N];
    PGconn *fresh;
    PGresult *res;

    if (!IS_PG(state))
        skip();
    sql("DROP DATABASE IF EXISTS tess_migrate_test");
    sql("CREATE DATABASE tess_migrate_test");
    for (int i = 0; i < N; ++i) {
        snprintf(args[i].url, sizeof(args[i].url), "%s", pg_url);
        /* same server, other database: swap the path of the URL */
        char *slash = strrchr(args[i].url, '/');
        assert_non_null(slash);
        snprintf(slash, sizeof(args[i].url) - (size_t)(slash - args[i].url), "/tess_migrate_test");
        assert_int_equal(pthread_create(&th[i], NULL, mig_thread, &args[i]), 0);
    }
    for (int i = 0; i < N; ++i) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        if (args[i].rc != 0)
            fail_msg("migrate %d: %s", i, args[i].err);
    }
    fresh = PQconnectdb(args[0].url);
    assert_int_equal(PQstatus(fresh), CONNECTION_OK);
    res = PQexec(fresh, "SELECT count(*), max(version) FROM tessera_schema");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "6"); /* each version applied once */
    assert_string_equal(PQgetvalue(res, 0, 1), "6");
    PQclear(res);
    PQfinish(fresh);
    sql("DROP DATABASE tess_migrate_test");
}

int main(void)
{
    const struct CMUnitTest pg_tests[] = {
        cmocka_unit_test_setup(test_users, pg_setup),
        cmocka_unit_test_setup(test_queue_positions, pg_setup),
        cmocka_unit_test_setup(test_join_close_conflicts, pg_setup),
        cmocka_unit_test_setup(test_join_capacity, pg_setup),
        cmocka_unit_test_setup(test_open_bound, pg_setup),
        cmocka_unit_test_setup(test_messages, pg_setup),
        cmocka_unit_test_setup(test_concurrent_messages, pg_setup),
        cmocka_unit_test(test_unavailable),
        cmocka_unit_test(test_concurrent_migrate),
    };
    const struct CMUnitTest sqlite_tests[] = {
        cmocka_unit_test_setup_teardown(test_users, sq_setup, sq_teardown),
        cmocka_unit_test_setup_teardown(test_queue_positions, sq_setup, sq_teardown),
        cmocka_unit_test_setup_teardown(test_join_close_conflicts, sq_setup, sq_teardown),
        cmocka_unit_test_setup_teardown(test_join_capacity, sq_setup, sq_teardown),
        cmocka_unit_test_setup_teardown(test_open_bound, sq_setup, sq_teardown),
        cmocka_unit_test_setup_teardown(test_messages, sq_setup, sq_teardown),
    };
    int failed = 0;

    if ((pg_url = getenv("TESS_PG_URL")) == NULL || pg_url[0] == '\0') {
        printf("# TESS_PG_URL not set: skipping (tests/integration/test_pg_store.py runs this)\n");
        return 0;
    }
    L = tess_poll_loop_new();
    failed += cmocka_run_group_tests_name("appdb_sqlite (reference)", sqlite_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("appdb_pg", pg_tests, pg_group_setup, pg_group_teardown);
    tess_poll_loop_free(L);
    return failed != 0;
}
