/*
 * Unit tests of the application database on SQLite (src/app/appdb_sqlite.c) on a temporary file: users,
 * pre-chats (create, get, the waiting queue, join, close), messages, ping, the schema version, and that
 * every operation calls back exactly once before it returns (SQLite completes synchronously).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "app/appdb.h"
#include "tessera/error.h"

#include "appdb_result.h"
#include "strfill.h"
#include "tmpdir.h"

#define T0 INT64_C(1700000000000)
#define PWHASH "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"

typedef struct fixture {
    tmpdir_t tmp;     /* holds the database file */
    char path[128];   /* <tmp>/app.db */
    sqlite3 *sq;      /* the connection */
    appdb_t *db;      /* the handle under test */
    int64_t visitor;  /* user "vic" */
    int64_t visitor2; /* user "val" */
    int64_t agent;    /* user "ada" */
    appdb_rec_t r;    /* the last operation's result */
} fixture_t;

/* An operation was started (returned 0) and called back exactly once before returning: its rc. */
static int finish(fixture_t *f, int started)
{
    assert_int_equal(started, 0);
    assert_int_equal(f->r.calls, 1);
    return f->r.rc;
}

static int user_by_name(fixture_t *f, const char *name)
{
    appdb_rec_clear(&f->r);
    return finish(f, f->db->ops->user_by_name(f->db, tess_str(name), appdb_rec_cb, &f->r));
}

static int create(fixture_t *f, int64_t visitor, const char *topic, int64_t now)
{
    appdb_rec_clear(&f->r);
    return finish(f, f->db->ops->prechat_create(f->db, visitor, tess_str(topic), 1000, now, appdb_rec_cb, &f->r));
}

static int create_capped(fixture_t *f, int64_t visitor, int64_t max_open, int64_t now)
{
    appdb_rec_clear(&f->r);
    return finish(f, f->db->ops->prechat_create(f->db, visitor, tess_str("t"), max_open, now, appdb_rec_cb, &f->r));
}

static int get(fixture_t *f, int64_t id)
{
    appdb_rec_clear(&f->r);
    return finish(f, f->db->ops->prechat_get(f->db, id, appdb_rec_cb, &f->r));
}

static int waiting(fixture_t *f, size_t limit)
{
    appdb_rec_clear(&f->r);
    return finish(f, f->db->ops->prechat_waiting(f->db, limit, appdb_rec_cb, &f->r));
}

static int join(fixture_t *f, int64_t id, int64_t now)
{
    appdb_rec_clear(&f->r);
    return finish(f, f->db->ops->prechat_join(f->db, id, f->agent, 1000, now, appdb_rec_cb, &f->r));
}

static int join_capped(fixture_t *f, int64_t id, int64_t max_active, int64_t now)
{
    appdb_rec_clear(&f->r);
    return finish(f, f->db->ops->prechat_join(f->db, id, f->agent, max_active, now, appdb_rec_cb, &f->r));
}

static int close_pc(fixture_t *f, int64_t id, int64_t now)
{
    appdb_rec_clear(&f->r);
    return finish(f, f->db->ops->prechat_close(f->db, id, now, appdb_rec_cb, &f->r));
}

static int msg_add(fixture_t *f, int64_t pc, int64_t sender, const char *role, tess_str_t body, int64_t now)
{
    appdb_rec_clear(&f->r);
    return finish(f, f->db->ops->message_add(f->db, pc, sender, tess_str(role), body, now, appdb_rec_cb, &f->r));
}

static int msg_list(fixture_t *f, int64_t pc, int64_t after, size_t limit)
{
    appdb_rec_clear(&f->r);
    return finish(f, f->db->ops->messages_list(f->db, pc, after, limit, appdb_rec_cb, &f->r));
}

/* Creates a waiting pre-chat of the first visitor; returns its id. */
static int64_t create_ok(fixture_t *f, const char *topic, int64_t now)
{
    assert_int_equal(create(f, f->visitor, topic, now), 0);
    assert_int_equal(f->r.n_pc, 1);
    return f->r.pc[0].id;
}

/* The queue position of pre-chat `id` as prechat_get reports it. */
static int64_t position(fixture_t *f, int64_t id)
{
    assert_int_equal(get(f, id), 0);
    assert_int_equal(f->r.n_pc, 1);
    return f->r.pc[0].queue_position;
}

/* Adds a message of the first visitor; returns its id. */
static int64_t msg_ok(fixture_t *f, int64_t pc, const char *body, int64_t now)
{
    assert_int_equal(msg_add(f, pc, f->visitor, "visitor", tess_str(body), now), 0);
    assert_int_equal(f->r.n_msg, 1);
    return f->r.msg[0].id;
}

static int64_t user_id(fixture_t *f, const char *name)
{
    assert_int_equal(user_by_name(f, name), 0);
    assert_true(f->r.have_user);
    assert_true(f->r.user.id > 0);
    return f->r.user.id;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char err[256] = "";

    assert_non_null(f);
    tmpdir_make(&f->tmp);
    tmpdir_path(&f->tmp, "app.db", f->path, sizeof(f->path));
    if (appdb_sqlite_connect(&f->sq, f->path, err, sizeof(err)) != 0)
        fail_msg("connect: %s", err);
    /* Users are added before the handle exists: user_add creates the schema itself (the CLI's order). */
    assert_int_equal(appdb_sqlite_user_add(f->sq, "vic", "visitor", PWHASH, T0, err, sizeof(err)), 0);
    assert_int_equal(appdb_sqlite_user_add(f->sq, "val", "visitor", PWHASH, T0, err, sizeof(err)), 0);
    assert_int_equal(appdb_sqlite_user_add(f->sq, "ada", "agent", PWHASH, T0, err, sizeof(err)), 0);
    if (appdb_sqlite_open(&f->db, f->sq, err, sizeof(err)) != 0)
        fail_msg("open: %s", err);
    assert_string_equal(f->db->ops->name, "sqlite");
    f->visitor = user_id(f, "vic");
    f->visitor2 = user_id(f, "val");
    f->agent = user_id(f, "ada");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    appdb_rec_clear(&f->r);
    f->db->ops->close(f->db);
    assert_int_equal(sqlite3_close(f->sq), SQLITE_OK); /* every statement was finalized */
    tmpdir_remove(&f->tmp);
    free(f);
    return 0;
}

static void test_users(void **state)
{
    fixture_t *f = *state;
    char name[APP_NAME_MAX + 1], err[256] = "";

    assert_int_equal(user_by_name(f, "ada"), 0);
    assert_true(f->r.have_user);
    assert_string_equal(f->r.user.name, "ada");
    assert_string_equal(f->r.user.role, "agent");
    assert_string_equal(f->r.user.pwhash, PWHASH);
    assert_true(f->visitor != f->agent && f->visitor != f->visitor2);

    assert_int_equal(user_by_name(f, "nobody"), TESS_ENOTFOUND);
    assert_false(f->r.have_user);
    assert_int_equal(user_by_name(f, "ADA"), TESS_ENOTFOUND); /* names are exact */

    assert_int_equal(appdb_sqlite_user_add(f->sq, "vic", "agent", PWHASH, T0, err, sizeof(err)), TESS_EEXISTS);
    assert_true(err[0] != '\0');
    assert_int_equal(user_by_name(f, "vic"), 0);
    assert_string_equal(f->r.user.role, "visitor"); /* the first one stays */

    strfill(name, 'n', APP_NAME_MAX);
    assert_int_equal(appdb_sqlite_user_add(f->sq, name, "visitor", PWHASH, T0, err, sizeof(err)), 0);
    assert_int_equal(user_by_name(f, name), 0);
    assert_string_equal(f->r.user.name, name);
}

/* By id (a token's user): id, name and role, no hash; a role change or a deletion is a change event. */
static void test_user_by_id_and_role_events(void **state)
{
    fixture_t *f = *state;
    sqlite3_stmt *st;
    char sql[160];

    appdb_rec_clear(&f->r);
    assert_int_equal(finish(f, f->db->ops->user_by_id(f->db, f->agent, appdb_rec_cb, &f->r)), 0);
    assert_true(f->r.have_user);
    assert_int_equal(f->r.user.id, f->agent);
    assert_string_equal(f->r.user.name, "ada");
    assert_string_equal(f->r.user.role, "agent");
    assert_string_equal(f->r.user.pwhash, "");
    appdb_rec_clear(&f->r);
    assert_int_equal(finish(f, f->db->ops->user_by_id(f->db, 999999, appdb_rec_cb, &f->r)), TESS_ENOTFOUND);
    assert_false(f->r.have_user);

    /* Written by anyone (here: plain SQL, as another app would), heard by every listener. */
    snprintf(sql, sizeof(sql), "UPDATE app_user SET role = 'visitor' WHERE id = %lld", (long long)f->agent);
    assert_int_equal(sqlite3_exec(f->sq, sql, NULL, NULL, NULL), SQLITE_OK);
    snprintf(sql, sizeof(sql), "UPDATE app_user SET role = 'visitor' WHERE id = %lld", (long long)f->visitor);
    assert_int_equal(sqlite3_exec(f->sq, sql, NULL, NULL, NULL), SQLITE_OK); /* unchanged: no event */
    assert_int_equal(sqlite3_prepare_v2(f->sq, "SELECT name FROM app_event ORDER BY seq", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(sql, sizeof(sql), "user:%lld", (long long)f->agent);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), sql);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    appdb_rec_clear(&f->r);
    assert_int_equal(finish(f, f->db->ops->user_by_id(f->db, f->agent, appdb_rec_cb, &f->r)), 0);
    assert_string_equal(f->r.user.role, "visitor");
}

/* Another app's user: one row per external id, made on first sight, the same row afterwards. */
static void test_user_external(void **state)
{
    fixture_t *f = *state;
    int64_t id;

    appdb_rec_clear(&f->r);
    assert_int_equal(finish(f, f->db->ops->user_external(f->db, TESS_STR_LIT("clx9user"), TESS_STR_LIT("agent"), T0,
                                                         appdb_rec_cb, &f->r)),
                     0);
    assert_true(f->r.have_user);
    id = f->r.user.id;
    assert_true(id > 0 && id != f->agent && id != f->visitor);
    assert_string_equal(f->r.user.name, "ext:clx9user");
    assert_string_equal(f->r.user.role, "agent");
    appdb_rec_clear(&f->r);
    /* again (another role asked: the row is kept as it is) */
    assert_int_equal(finish(f, f->db->ops->user_external(f->db, TESS_STR_LIT("clx9user"), TESS_STR_LIT("visitor"), T0,
                                                         appdb_rec_cb, &f->r)),
                     0);
    assert_int_equal(f->r.user.id, id);
    assert_string_equal(f->r.user.role, "agent");
    appdb_rec_clear(&f->r);
    /* any other role becomes visitor; the row's id is a users-table id like any other */
    assert_int_equal(
        finish(f, f->db->ops->user_external(f->db, TESS_STR_LIT("42"), TESS_STR_LIT("admin"), T0, appdb_rec_cb, &f->r)),
        0);
    assert_string_equal(f->r.user.role, "visitor");
    appdb_rec_clear(&f->r);
    assert_int_equal(finish(f, f->db->ops->user_by_id(f->db, id, appdb_rec_cb, &f->r)), 0);
    assert_string_equal(f->r.user.name, "ext:clx9user");
    /* its password hash verifies nothing: by name it is found, with the hash "!" */
    appdb_rec_clear(&f->r);
    assert_int_equal(finish(f, f->db->ops->user_by_name(f->db, TESS_STR_LIT("ext:clx9user"), appdb_rec_cb, &f->r)), 0);
    assert_string_equal(f->r.user.pwhash, "!");
    appdb_rec_clear(&f->r);
}

/* A role outside visitor/agent is not "a user with that name exists": the same answer as PostgreSQL (EIO). */
static void test_user_bad_role(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";

    assert_int_equal(appdb_sqlite_user_add(f->sq, "root", "admin", PWHASH, T0, err, sizeof(err)), TESS_EIO);
    assert_null(strstr(err, "exists"));
    assert_true(err[0] != '\0');
    assert_int_equal(user_by_name(f, "root"), TESS_ENOTFOUND);
}

static void test_prechat_create_get(void **state)
{
    fixture_t *f = *state;
    int64_t id;

    assert_int_equal(create(f, f->visitor, "billing question", T0), 0);
    assert_int_equal(f->r.n_pc, 1);
    id = f->r.pc[0].id;
    assert_true(id > 0);
    assert_int_equal(f->r.pc[0].visitor_id, f->visitor);
    assert_int_equal(f->r.pc[0].agent_id, 0);
    assert_string_equal(f->r.pc[0].topic, "billing question");
    assert_string_equal(f->r.pc[0].status, "waiting");
    assert_int_equal(f->r.pc[0].created_ms, T0);
    assert_int_equal(f->r.pc[0].updated_ms, T0);
    assert_int_equal(f->r.pc[0].message_count, 0);
    assert_int_equal(f->r.pc[0].last_message_id, 0);
    assert_int_equal(f->r.pc[0].queue_position, 1);

    assert_int_equal(get(f, id), 0);
    assert_int_equal(f->r.n_pc, 1);
    assert_int_equal(f->r.pc[0].id, id);
    assert_string_equal(f->r.pc[0].topic, "billing question");
    assert_int_equal(f->r.pc[0].queue_position, 1);

    assert_int_equal(get(f, id + 1000), TESS_ENOTFOUND);
    assert_int_equal(f->r.n_pc, 0);
    assert_int_equal(get(f, 0), TESS_ENOTFOUND);
}

/* The open bound: a visitor with max_open pre-chats not closed is refused (EDENIED, no row), until one closes;
 * another visitor is not affected. */
static void test_prechat_open_bound(void **state)
{
    fixture_t *f = *state;
    int64_t first;

    assert_int_equal(create_capped(f, f->visitor, 2, T0), 0);
    first = f->r.pc[0].id;
    assert_int_equal(create_capped(f, f->visitor, 2, T0), 0);
    assert_int_equal(create_capped(f, f->visitor, 2, T0), TESS_EDENIED);
    assert_int_equal(f->r.n_pc, 0);
    assert_int_equal(create_capped(f, f->visitor2, 2, T0), 0);
    assert_int_equal(close_pc(f, first, T0 + 1), 0);
    assert_int_equal(create_capped(f, f->visitor, 2, T0 + 2), 0);
    assert_int_equal(create_capped(f, f->visitor, 2, T0 + 2), TESS_EDENIED);
}

static void test_waiting_queue(void **state)
{
    fixture_t *f = *state;
    int64_t ids[5];

    assert_int_equal(waiting(f, 10), 0);
    assert_int_equal(f->r.n_pc, 0);
    for (int i = 0; i < 5; ++i) {
        char topic[16];
        snprintf(topic, sizeof(topic), "topic %d", i);
        ids[i] = create_ok(f, topic, T0 + i);
        assert_int_equal(f->r.pc[0].queue_position, i + 1);
    }
    assert_int_equal(waiting(f, 10), 0); /* oldest first, positions 1..n */
    assert_int_equal(f->r.n_pc, 5);
    for (int i = 0; i < 5; ++i) {
        assert_int_equal(f->r.pc[i].id, ids[i]);
        assert_int_equal(f->r.pc[i].queue_position, i + 1);
        assert_string_equal(f->r.pc[i].status, "waiting");
        assert_int_equal(f->r.pc[i].created_ms, T0 + i);
    }
    assert_int_equal(waiting(f, 2), 0); /* the limit keeps the head of the queue */
    assert_int_equal(f->r.n_pc, 2);
    assert_int_equal(f->r.pc[0].id, ids[0]);
    assert_int_equal(f->r.pc[1].id, ids[1]);
    assert_int_equal(waiting(f, 0), 0);
    assert_int_equal(f->r.n_pc, 0);
}

static void test_waiting_limit_bound(void **state)
{
    fixture_t *f = *state;

    for (int i = 0; i < APP_LIST_MAX + 3; ++i)
        create_ok(f, "queue", T0 + i);
    assert_int_equal(waiting(f, APP_LIST_MAX + 50), 0);
    assert_int_equal(f->r.n_pc, APP_LIST_MAX);
    assert_int_equal(f->r.pc[APP_LIST_MAX - 1].queue_position, APP_LIST_MAX);
    assert_int_equal(position(f, f->r.pc[APP_LIST_MAX - 1].id + 3), APP_LIST_MAX + 3);
}

static void test_join(void **state)
{
    fixture_t *f = *state;
    int64_t a = create_ok(f, "a", T0), b = create_ok(f, "b", T0 + 1), c = create_ok(f, "c", T0 + 2);

    assert_int_equal(position(f, c), 3);
    assert_int_equal(join(f, a, T0 + 10), 0);
    assert_int_equal(f->r.n_pc, 1);
    assert_int_equal(f->r.pc[0].id, a);
    assert_string_equal(f->r.pc[0].status, "active");
    assert_int_equal(f->r.pc[0].agent_id, f->agent);
    assert_int_equal(f->r.pc[0].updated_ms, T0 + 10);
    assert_int_equal(f->r.pc[0].created_ms, T0);
    assert_int_equal(f->r.pc[0].queue_position, 0);
    /* the ones behind it move up */
    assert_int_equal(position(f, b), 1);
    assert_int_equal(position(f, c), 2);
    assert_int_equal(waiting(f, 10), 0);
    assert_int_equal(f->r.n_pc, 2);
    assert_int_equal(f->r.pc[0].id, b);

    assert_int_equal(join(f, a, T0 + 20), TESS_ECONFLICT); /* not waiting any more */
    assert_int_equal(f->r.n_pc, 0);
    assert_int_equal(get(f, a), 0);
    assert_int_equal(f->r.pc[0].updated_ms, T0 + 10); /* untouched by the refused join */
    assert_int_equal(join(f, c + 1000, T0 + 20), TESS_ENOTFOUND);
}

/* An agent holds at most max_active active pre-chats; closing one frees its slot. */
static void test_join_capacity(void **state)
{
    fixture_t *f = *state;
    int64_t a = create_ok(f, "a", T0), b = create_ok(f, "b", T0 + 1), c = create_ok(f, "c", T0 + 2);

    assert_int_equal(join_capped(f, a, 2, T0 + 10), 0);
    assert_int_equal(join_capped(f, b, 2, T0 + 11), 0);
    assert_int_equal(join_capped(f, c, 2, T0 + 12), TESS_EDENIED); /* still waiting: the agent is full */
    assert_int_equal(get(f, c), 0);
    assert_string_equal(f->r.pc[0].status, "waiting");
    assert_int_equal(join_capped(f, a, 2, T0 + 13), TESS_ECONFLICT); /* not waiting beats full */
    assert_int_equal(join_capped(f, c + 1000, 2, T0 + 13), TESS_ENOTFOUND);
    assert_int_equal(close_pc(f, a, T0 + 14), 0);
    assert_int_equal(join_capped(f, c, 2, T0 + 15), 0);
    assert_string_equal(f->r.pc[0].status, "active");
}

static int sweep(fixture_t *f, int64_t idle_before, int64_t wait_before, size_t limit, int64_t now)
{
    appdb_rec_clear(&f->r);
    appdb_sweep_t sw = {.idle_before_ms = idle_before,
                        .wait_before_ms = wait_before,
                        .idle_note = tess_str("idle"),
                        .wait_note = tess_str("no agent"),
                        .limit = limit};
    return finish(f, f->db->ops->prechat_sweep(f->db, &sw, now, appdb_rec_cb, &f->r));
}

/* The timeouts: idle active ones closed with a note (once), long-waiting ones marked (once), bounded per step. */
static void test_sweep(void **state)
{
    fixture_t *f = *state;
    int64_t a = create_ok(f, "a", T0), b = create_ok(f, "b", T0 + 1), c = create_ok(f, "c", T0 + 2),
            d = create_ok(f, "d", T0 + 3);

    assert_int_equal(join(f, a, T0 + 10), 0);
    assert_int_equal(join(f, b, T0 + 20), 0);
    assert_int_equal(sweep(f, 0, 0, 10, T0 + 100), 0); /* both off */
    assert_int_equal(f->r.n_pc, 0);
    assert_int_equal(sweep(f, T0 + 15, 0, 10, T0 + 100), 0); /* a idle since T0+10, b not */
    assert_int_equal(f->r.n_pc, 1);
    assert_int_equal(f->r.pc[0].id, a);
    assert_string_equal(f->r.pc[0].status, "closed");
    assert_int_equal(get(f, a), 0);
    assert_string_equal(f->r.pc[0].status, "closed");
    assert_int_equal(f->r.pc[0].message_count, 1);
    assert_int_equal(sweep(f, T0 + 15, 0, 10, T0 + 101), 0); /* once */
    assert_int_equal(f->r.n_pc, 0);
    assert_int_equal(sweep(f, 0, T0 + 3, 1, T0 + 102), 0); /* c and d waited long enough; c only is older */
    assert_int_equal(f->r.n_pc, 1);
    assert_int_equal(f->r.pc[0].id, c);
    assert_string_equal(f->r.pc[0].status, "waiting");
    assert_int_equal(sweep(f, 0, T0 + 4, 1, T0 + 103), 0); /* bounded: the next step takes d */
    assert_int_equal(f->r.n_pc, 1);
    assert_int_equal(f->r.pc[0].id, d);
    assert_int_equal(sweep(f, 0, T0 + 4, 10, T0 + 104), 0);
    assert_int_equal(f->r.n_pc, 0);
}

/* The waiting close: never-joined ones without a left message closed with the note, before any mark. */
static void test_sweep_wait_close(void **state)
{
    fixture_t *f = *state;
    int64_t a = create_ok(f, "a", T0), b = create_ok(f, "b", T0 + 1), c = create_ok(f, "c", T0 + 2),
            d = create_ok(f, "d", T0 + 50);
    appdb_sweep_t sw = {.close_before_ms = T0 + 10,
                        .wait_before_ms = T0 + 60,
                        .wait_note = tess_str("no agent"),
                        .idle_note = tess_str("idle"),
                        .limit = 10};

    assert_int_equal(join(f, b, T0 + 5), 0);
    appdb_rec_clear(&f->r);
    assert_int_equal(finish(f, f->db->ops->prechat_leave(f->db, c, f->visitor, tess_str("me@example.org"),
                                                         tess_str("call me"), T0 + 6, appdb_rec_cb, &f->r)),
                     0);
    appdb_rec_clear(&f->r);
    assert_int_equal(finish(f, f->db->ops->prechat_sweep(f->db, &sw, T0 + 100, appdb_rec_cb, &f->r)), 0);
    assert_int_equal(f->r.n_pc, 3); /* a closed; c (left a message) and d only marked; b active */
    assert_int_equal(f->r.pc[0].id, a);
    assert_string_equal(f->r.pc[0].status, "closed");
    assert_int_equal(f->r.pc[0].agent_id, 0);
    assert_int_equal(f->r.pc[1].id, c);
    assert_string_equal(f->r.pc[1].status, "waiting");
    assert_int_equal(f->r.pc[2].id, d);
    assert_int_equal(get(f, a), 0);
    assert_string_equal(f->r.pc[0].status, "closed");
    assert_int_equal(f->r.pc[0].message_count, 1);
    assert_int_equal(get(f, b), 0);
    assert_string_equal(f->r.pc[0].status, "active");
    assert_int_equal(get(f, c), 0);
    assert_string_equal(f->r.pc[0].status, "waiting");
    appdb_rec_clear(&f->r);
    assert_int_equal(finish(f, f->db->ops->prechat_sweep(f->db, &sw, T0 + 101, appdb_rec_cb, &f->r)), 0);
    assert_int_equal(f->r.n_pc, 0); /* once */
}

static void test_close(void **state)
{
    fixture_t *f = *state;
    int64_t a = create_ok(f, "a", T0), b = create_ok(f, "b", T0 + 1), c = create_ok(f, "c", T0 + 2);

    assert_int_equal(close_pc(f, b, T0 + 10), 0); /* waiting -> closed */
    assert_string_equal(f->r.pc[0].status, "closed");
    assert_int_equal(f->r.pc[0].updated_ms, T0 + 10);
    assert_int_equal(f->r.pc[0].queue_position, 0);
    assert_int_equal(position(f, c), 2);

    assert_int_equal(join(f, a, T0 + 20), 0); /* active -> closed */
    assert_int_equal(close_pc(f, a, T0 + 30), 0);
    assert_string_equal(f->r.pc[0].status, "closed");
    assert_int_equal(f->r.pc[0].agent_id, f->agent);
    assert_int_equal(position(f, c), 1);

    assert_int_equal(close_pc(f, a, T0 + 40), TESS_ECONFLICT); /* already closed */
    assert_int_equal(f->r.n_pc, 0);
    assert_int_equal(get(f, a), 0);
    assert_int_equal(f->r.pc[0].updated_ms, T0 + 30);
    assert_int_equal(join(f, b, T0 + 40), TESS_ECONFLICT); /* a closed one cannot be joined */
    assert_int_equal(close_pc(f, c + 1000, T0 + 40), TESS_ENOTFOUND);
}

static void test_message_add(void **state)
{
    fixture_t *f = *state;
    int64_t pc = create_ok(f, "a", T0), other = create_ok(f, "b", T0), m1, m2;

    assert_int_equal(msg_add(f, pc, f->visitor, "visitor", tess_str("hello"), T0 + 5), 0);
    assert_int_equal(f->r.n_msg, 1);
    m1 = f->r.msg[0].id;
    assert_true(m1 > 0);
    assert_int_equal(f->r.msg[0].prechat_id, pc);
    assert_int_equal(f->r.msg[0].sender_id, f->visitor);
    assert_string_equal(f->r.msg[0].sender_role, "visitor");
    assert_string_equal(f->r.msg[0].body, "hello");
    assert_int_equal(f->r.msg[0].created_ms, T0 + 5);
    assert_int_equal(get(f, pc), 0);
    assert_int_equal(f->r.pc[0].message_count, 1);
    assert_int_equal(f->r.pc[0].last_message_id, m1);
    assert_int_equal(f->r.pc[0].updated_ms, T0 + 5);
    assert_string_equal(f->r.pc[0].status, "waiting"); /* a message does not change the state */

    assert_int_equal(join(f, pc, T0 + 6), 0);
    assert_int_equal(msg_add(f, pc, f->agent, "agent", tess_str("hi, how can I help?"), T0 + 7), 0);
    m2 = f->r.msg[0].id;
    assert_true(m2 > m1);
    assert_int_equal(get(f, pc), 0);
    assert_int_equal(f->r.pc[0].message_count, 2);
    assert_int_equal(f->r.pc[0].last_message_id, m2);
    assert_int_equal(f->r.pc[0].updated_ms, T0 + 7);
    assert_int_equal(get(f, other), 0); /* the other pre-chat is untouched */
    assert_int_equal(f->r.pc[0].message_count, 0);
    assert_int_equal(f->r.pc[0].updated_ms, T0);

    assert_int_equal(close_pc(f, pc, T0 + 8), 0);
    assert_int_equal(msg_add(f, pc, f->visitor, "visitor", tess_str("late"), T0 + 9), TESS_ECONFLICT);
    assert_int_equal(f->r.n_msg, 0);
    assert_int_equal(get(f, pc), 0); /* the refused message moved nothing (rolled back) */
    assert_int_equal(f->r.pc[0].message_count, 2);
    assert_int_equal(f->r.pc[0].last_message_id, m2);
    assert_int_equal(f->r.pc[0].updated_ms, T0 + 8);
    assert_int_equal(msg_list(f, pc, 0, 10), 0);
    assert_int_equal(f->r.n_msg, 2);
    assert_int_equal(msg_ok(f, other, "still open", T0 + 10), m2 + 1); /* the transaction was not left open */
}

static void test_messages_list(void **state)
{
    fixture_t *f = *state;
    int64_t pc = create_ok(f, "a", T0), other = create_ok(f, "b", T0), ids[5];

    assert_int_equal(msg_list(f, pc, 0, 10), 0);
    assert_int_equal(f->r.n_msg, 0);
    for (int i = 0; i < 5; ++i) {
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        ids[i] = msg_ok(f, pc, body, T0 + i);
        msg_ok(f, other, "elsewhere", T0 + i); /* interleaved: never listed with pc */
    }
    assert_int_equal(msg_list(f, pc, 0, 10), 0);
    assert_int_equal(f->r.n_msg, 5);
    for (int i = 0; i < 5; ++i) {
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        assert_int_equal(f->r.msg[i].id, ids[i]);
        assert_int_equal(f->r.msg[i].prechat_id, pc);
        assert_string_equal(f->r.msg[i].body, body);
        assert_int_equal(f->r.msg[i].created_ms, T0 + i);
    }
    assert_int_equal(msg_list(f, pc, ids[1], 10), 0); /* after: strictly newer */
    assert_int_equal(f->r.n_msg, 3);
    assert_int_equal(f->r.msg[0].id, ids[2]);
    assert_int_equal(msg_list(f, pc, ids[1], 2), 0); /* limit: the oldest of those */
    assert_int_equal(f->r.n_msg, 2);
    assert_int_equal(f->r.msg[0].id, ids[2]);
    assert_int_equal(f->r.msg[1].id, ids[3]);
    assert_int_equal(msg_list(f, pc, ids[4], 10), 0);
    assert_int_equal(f->r.n_msg, 0);
    assert_int_equal(msg_list(f, pc, 0, 0), 0);
    assert_int_equal(f->r.n_msg, 0);
    assert_int_equal(msg_list(f, pc + 1000, 0, 10), 0); /* no such pre-chat: no messages */
    assert_int_equal(f->r.n_msg, 0);
}

static void test_messages_list_limit_bound(void **state)
{
    fixture_t *f = *state;
    int64_t pc = create_ok(f, "a", T0), first = 0;

    for (int i = 0; i < APP_LIST_MAX + 5; ++i) {
        int64_t id = msg_ok(f, pc, "x", T0 + i);
        if (i == 0)
            first = id;
    }
    assert_int_equal(msg_list(f, pc, 0, APP_LIST_MAX + 100), 0);
    assert_int_equal(f->r.n_msg, APP_LIST_MAX);
    assert_int_equal(f->r.msg[0].id, first);
    for (size_t i = 1; i < f->r.n_msg; ++i)
        assert_true(f->r.msg[i].id > f->r.msg[i - 1].id);
    assert_int_equal(get(f, pc), 0);
    assert_int_equal(f->r.pc[0].message_count, APP_LIST_MAX + 5);
}

static void test_bounds(void **state)
{
    fixture_t *f = *state;
    static char topic[APP_TOPIC_MAX + 1], body[APP_BODY_MAX + 2];
    char role[TESS_ROLE_MAX + 2];
    int64_t pc;

    strfill(topic, 't', APP_TOPIC_MAX);
    pc = create_ok(f, topic, T0);
    assert_int_equal(get(f, pc), 0);
    assert_int_equal(strlen(f->r.pc[0].topic), APP_TOPIC_MAX);
    assert_string_equal(f->r.pc[0].topic, topic);

    strfill(body, 'b', APP_BODY_MAX + 1);
    assert_int_equal(msg_add(f, pc, f->visitor, "visitor", tess_strn(body, APP_BODY_MAX), T0 + 1), 0);
    assert_int_equal(strlen(f->r.msg[0].body), APP_BODY_MAX);
    assert_int_equal(msg_list(f, pc, 0, 1), 0);
    assert_int_equal(strlen(f->r.msg[0].body), APP_BODY_MAX);
    assert_memory_equal(f->r.msg[0].body, body, APP_BODY_MAX);

    /* One byte over: refused at the call, no callback. */
    appdb_rec_clear(&f->r);
    assert_int_equal(f->db->ops->message_add(f->db, pc, f->visitor, tess_str("visitor"), tess_str(body), T0 + 2,
                                             appdb_rec_cb, &f->r),
                     TESS_ETOOBIG);
    strfill(role, 'r', TESS_ROLE_MAX + 1);
    assert_int_equal(
        f->db->ops->message_add(f->db, pc, f->visitor, tess_str(role), tess_str("x"), T0 + 2, appdb_rec_cb, &f->r),
        TESS_ETOOBIG);
    assert_int_equal(f->r.calls, 0);
    assert_int_equal(get(f, pc), 0);
    assert_int_equal(f->r.pc[0].message_count, 1);
}

static void test_ping(void **state)
{
    fixture_t *f = *state;
    appdb_rec_clear(&f->r);
    assert_int_equal(finish(f, f->db->ops->ping(f->db, appdb_rec_cb, &f->r)), 0);
}

/* Closing and opening again keeps everything; a database from a newer tessera is refused. */
static void test_reopen_and_schema_version(void **state)
{
    fixture_t *f = *state;
    appdb_t *again = NULL;
    char err[256] = "";
    int64_t pc = create_ok(f, "kept", T0);

    msg_ok(f, pc, "kept too", T0 + 1);
    f->db->ops->close(f->db);
    f->db = NULL;
    assert_int_equal(sqlite3_close(f->sq), SQLITE_OK);
    if (appdb_sqlite_connect(&f->sq, f->path, err, sizeof(err)) != 0)
        fail_msg("connect: %s", err);
    if (appdb_sqlite_open(&f->db, f->sq, err, sizeof(err)) != 0)
        fail_msg("open: %s", err);
    assert_int_equal(get(f, pc), 0);
    assert_string_equal(f->r.pc[0].topic, "kept");
    assert_int_equal(f->r.pc[0].message_count, 1);
    assert_int_equal(user_id(f, "vic"), f->visitor);

    assert_int_equal(sqlite3_exec(f->sq, "PRAGMA user_version = 8", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(appdb_sqlite_open(&again, f->sq, err, sizeof(err)), TESS_EIO);
    assert_null(again);
    assert_non_null(strstr(err, "newer"));
    assert_int_equal(appdb_sqlite_user_add(f->sq, "new", "visitor", PWHASH, T0, err, sizeof(err)), TESS_EIO);
    assert_int_equal(sqlite3_exec(f->sq, "PRAGMA user_version = 7", NULL, NULL, NULL), SQLITE_OK);

    /* A version-1 database (before change events) is upgraded in place, its data kept. */
    assert_int_equal(sqlite3_exec(f->sq,
                                  "DROP TRIGGER app_user_role_event; DROP TRIGGER app_user_delete_event;"
                                  " DROP TABLE app_event; PRAGMA user_version = 1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    if (appdb_sqlite_open(&again, f->sq, err, sizeof(err)) != 0)
        fail_msg("upgrade: %s", err);
    again->ops->close(again);
    assert_int_equal(sqlite3_exec(f->sq, "SELECT count(*) FROM app_event", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(get(f, pc), 0);
    assert_string_equal(f->r.pc[0].topic, "kept");
}

static void test_connect_error(void **state)
{
    fixture_t *f = *state;
    sqlite3 *sq = (sqlite3 *)1;
    char path[160], err[256] = "";

    tmpdir_path(&f->tmp, "no/such/dir/app.db", path, sizeof(path));
    assert_int_equal(appdb_sqlite_connect(&sq, path, err, sizeof(err)), TESS_EIO);
    assert_null(sq);
    assert_non_null(strstr(err, path));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_users),
        T(test_user_bad_role),
        T(test_user_by_id_and_role_events),
        T(test_user_external),
        T(test_prechat_create_get),
        T(test_prechat_open_bound),
        T(test_waiting_queue),
        T(test_waiting_limit_bound),
        T(test_join),
        T(test_join_capacity),
        T(test_sweep),
        T(test_sweep_wait_close),
        T(test_close),
        T(test_message_add),
        T(test_messages_list),
        T(test_messages_list_limit_bound),
        T(test_bounds),
        T(test_ping),
        T(test_reopen_and_schema_version),
        T(test_connect_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
