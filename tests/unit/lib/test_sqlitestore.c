/* Unit tests of the SQLite store (store.h): in-memory and file databases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "tessera/error.h"
#include "tessera/store.h"

#define HOUR INT64_C(3600000)

#include "store_result.h"

static void make_session(tess_session_t *s, const char *user, int64_t now)
{
    tess_session_policy_t p;
    tess_session_policy_default(&p);
    assert_int_equal(tess_session_init(s, &p, tess_str(user), TESS_STR_LIT("visitor"), now), 0);
}

static int set_rc(tess_store_t *st, const tess_session_t *s)
{
    result_t r = {0};
    assert_int_equal(tess_store_set(st, s, on_result, &r), 0);
    assert_int_equal(r.calls, 1);
    return r.rc;
}

static int get_rc(tess_store_t *st, const char *sid, result_t *r)
{
    tess_session_clear(&r->sess);
    memset(r, 0, sizeof(*r));
    assert_int_equal(tess_store_get(st, tess_str(sid), on_result, r), 0);
    assert_int_equal(r->calls, 1);
    return r->rc;
}

static int touch_rc(tess_store_t *st, const char *sid, int64_t exp)
{
    result_t r = {0};
    assert_int_equal(tess_store_touch(st, tess_str(sid), exp, on_result, &r), 0);
    assert_int_equal(r.calls, 1);
    return r.rc;
}

static int destroy_rc(tess_store_t *st, const char *sid)
{
    result_t r = {0};
    assert_int_equal(tess_store_destroy(st, tess_str(sid), on_result, &r), 0);
    assert_int_equal(r.calls, 1);
    return r.rc;
}

typedef struct fixture {
    sqlite3 *db;      /* in-memory database */
    tess_store_t *st; /* the store on it */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char err[256];
    assert_int_equal(sqlite3_open(":memory:", &f->db), SQLITE_OK);
    assert_int_equal(tess_sqlitestore_open(&f->st, f->db, err, sizeof(err)), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tess_store_close(f->st);
    assert_int_equal(sqlite3_close(f->db), SQLITE_OK); /* every statement was finalized */
    free(f);
    return 0;
}

static int64_t scalar(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_set_get_touch(void **state)
{
    fixture_t *f = *state;
    tess_session_t s;
    result_t r = {0};
    int64_t now = tess_now_ms();

    assert_string_equal(f->st->ops->name, "sqlite");
    make_session(&s, "alice", now);
    s.extra_json = strdup("{\"cart\":[1,2]}");
    assert_int_equal(set_rc(f->st, &s), 0);
    assert_int_equal(get_rc(f->st, s.id, &r), 0);
    assert_string_equal(r.sess.id, s.id);
    assert_string_equal(r.sess.user_id, "alice");
    assert_string_equal(r.sess.role, "visitor");
    assert_int_equal(r.sess.created_ms, s.created_ms);
    assert_int_equal(r.sess.absolute_expires_ms, s.absolute_expires_ms);
    assert_int_equal(r.sess.expires_ms, s.expires_ms);
    assert_string_equal(r.sess.extra_json, "{\"cart\":[1,2]}");
    assert_int_equal(get_rc(f->st, "unknown", &r), TESS_ENOTFOUND);

    /* the row is in connect-pg-simple's shape, with user_id alongside */
    assert_int_equal(scalar(f->db, "SELECT count(*) FROM session WHERE user_id = 'alice' AND json_valid(sess)"), 1);

    /* touch moves only the expire column; the column is the truth on the next get */
    assert_int_equal(touch_rc(f->st, s.id, now + 2 * HOUR), 0);
    assert_int_equal(get_rc(f->st, s.id, &r), 0);
    assert_int_equal(r.sess.expires_ms, now + 2 * HOUR);
    assert_int_equal(touch_rc(f->st, "unknown", now + HOUR), TESS_ENOTFOUND);

    /* replace */
    memcpy(s.role, "agent", 6);
    assert_int_equal(set_rc(f->st, &s), 0);
    assert_int_equal(get_rc(f->st, s.id, &r), 0);
    assert_string_equal(r.sess.role, "agent");
    assert_int_equal(scalar(f->db, "SELECT count(*) FROM session"), 1);

    assert_int_equal(f->st->stats.gets, 4);
    assert_int_equal(f->st->stats.writes, 4);
    assert_int_equal(f->st->stats.errors, 0);
    tess_session_clear(&r.sess);
    tess_session_clear(&s);
}

static void test_no_resurrection(void **state)
{
    fixture_t *f = *state;
    tess_session_t s;
    result_t r = {0};
    int64_t now = tess_now_ms();

    make_session(&s, "alice", now);
    assert_int_equal(set_rc(f->st, &s), 0);
    assert_int_equal(destroy_rc(f->st, s.id), 0);
    assert_int_equal(touch_rc(f->st, s.id, now + HOUR), TESS_ENOTFOUND);
    assert_int_equal(get_rc(f->st, s.id, &r), TESS_ENOTFOUND);
    assert_int_equal(scalar(f->db, "SELECT count(*) FROM session"), 0);
    assert_int_equal(destroy_rc(f->st, s.id), 0); /* absent: still 0 */

    /* an expired row is invisible and cannot be touched back to life */
    s.expires_ms = now - 1;
    assert_int_equal(set_rc(f->st, &s), 0);
    assert_int_equal(get_rc(f->st, s.id, &r), TESS_ENOTFOUND);
    assert_int_equal(touch_rc(f->st, s.id, now + HOUR), TESS_ENOTFOUND);
    assert_int_equal(get_rc(f->st, s.id, &r), TESS_ENOTFOUND);
    assert_int_equal(scalar(f->db, "SELECT max(expire) FROM session"), now - 1);
    tess_session_clear(&s);
}

static void test_destroy_user(void **state)
{
    fixture_t *f = *state;
    tess_session_t a[3], b;
    result_t r = {0};
    int64_t now = tess_now_ms();

    for (int i = 0; i < 3; i++) {
        make_session(&a[i], "alice", now);
        assert_int_equal(set_rc(f->st, &a[i]), 0);
    }
    make_session(&b, "bob", now);
    assert_int_equal(set_rc(f->st, &b), 0);
    assert_int_equal(tess_store_destroy_user(f->st, TESS_STR_LIT("alice"), on_result, &r), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(get_rc(f->st, a[i].id, &r), TESS_ENOTFOUND);
    assert_int_equal(get_rc(f->st, b.id, &r), 0);
    tess_session_clear(&r.sess);
    /* the delete uses the user_id index */
    assert_int_equal(scalar(f->db, "SELECT count(*) FROM pragma_index_list('session') WHERE name IN "
                                   "('session_user_idx', 'session_expire_idx')"),
                     2);
}

/* Prune through the ops table: SQLite answers before the call returns, with the count deleted. */
static int prune_count(tess_store_t *st, int64_t now, int batch)
{
    result_t r = {0};
    int rc = tess_store_prune(st, now, batch, on_result, &r);
    if (rc != 0)
        return rc;
    assert_int_equal(r.calls, 1);
    return r.rc;
}

static void test_prune_batches(void **state)
{
    fixture_t *f = *state;
    tess_session_t s;
    int64_t now = tess_now_ms();

    for (int i = 0; i < 30; i++) {
        make_session(&s, "alice", now);
        if (i >= 5)
            s.expires_ms = now - 1000 + i; /* 25 expired */
        assert_int_equal(set_rc(f->st, &s), 0);
    }
    assert_int_equal(prune_count(f->st, now, 10), 10);
    assert_int_equal(prune_count(f->st, now, 10), 10);
    assert_int_equal(prune_count(f->st, now, 10), 5);
    assert_int_equal(prune_count(f->st, now, 10), 0);
    assert_int_equal(scalar(f->db, "SELECT count(*) FROM session"), 5);
    assert_int_equal(prune_count(f->st, now, 0), TESS_EINVAL);
}

static void test_foreign_documents(void **state)
{
    fixture_t *f = *state;
    result_t r = {0};
    char sql[512];
    int64_t now = tess_now_ms();

    /* a row written by express-session + connect-pg-simple (no createdAt, numeric userId, stale cookie.expires) */
    snprintf(sql, sizeof(sql),
             "INSERT INTO session (sid, sess, expire) VALUES ('expressSid0123456789abcdefghijkl', "
             "'{\"cookie\":{\"originalMaxAge\":86400000,\"expires\":\"2001-01-01T00:00:00.000Z\",\"httpOnly\":true,"
             "\"path\":\"/\"},\"userId\":42}', %lld)",
             (long long)(now + HOUR));
    assert_int_equal(sqlite3_exec(f->db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(get_rc(f->st, "expressSid0123456789abcdefghijkl", &r), 0);
    assert_string_equal(r.sess.user_id, "42");
    assert_int_equal(r.sess.expires_ms, now + HOUR);

    /* a corrupt document is an error, not a session */
    snprintf(sql, sizeof(sql), "INSERT INTO session (sid, sess, expire) VALUES ('bad', '{\"userId\":', %lld)",
             (long long)(now + HOUR));
    assert_int_equal(sqlite3_exec(f->db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(get_rc(f->st, "bad", &r), TESS_EBADFMT);
    assert_null(r.sess.extra_json);
    assert_int_equal(f->st->stats.errors, 1);

    assert_int_equal(tess_store_ping(f->st, on_result, &r), 0);
    assert_int_equal(r.rc, 0);
    tess_session_clear(&r.sess);
}

static void test_file_db(void **state)
{
    char dir[] = "/tmp/tess-sqlite-XXXXXX", path[128], err[256];
    sqlite3 *db, *db2;
    tess_store_t *st, *st2;
    tess_session_t s, t;
    result_t r = {0};
    int64_t now = tess_now_ms();
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/sessions.db", dir);

    /* a table created by connect-pg-simple's schema (no user_id) is upgraded in place */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE session (sid TEXT PRIMARY KEY NOT NULL, sess TEXT NOT NULL, expire INTEGER NOT "
                     "NULL)",
                     NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(tess_sqlitestore_open(&st, db, err, sizeof(err)), 0);
    make_session(&s, "alice", now);
    assert_int_equal(set_rc(st, &s), 0);
    tess_store_close(st);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    /* reopen: the schema is kept (CREATE IF NOT EXISTS), the session persisted */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(tess_sqlitestore_open(&st, db, err, sizeof(err)), 0);
    assert_int_equal(get_rc(st, s.id, &r), 0);
    assert_string_equal(r.sess.user_id, "alice");

    /* a second connection sees it; while the first holds the write lock, writes are "unavailable" */
    assert_int_equal(sqlite3_open(path, &db2), SQLITE_OK);
    assert_int_equal(tess_sqlitestore_open(&st2, db2, err, sizeof(err)), 0);
    assert_int_equal(get_rc(st2, s.id, &r), 0);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    make_session(&t, "bob", now);
    assert_int_equal(set_rc(st2, &t), TESS_EUNAVAIL);
    assert_int_equal(touch_rc(st2, s.id, now + HOUR), TESS_EUNAVAIL);
    assert_int_equal(get_rc(st2, s.id, &r), 0); /* WAL: readers carry on */
    assert_int_equal(st2->stats.errors, 2);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(set_rc(st2, &t), 0);
    assert_int_equal(get_rc(st, t.id, &r), 0);

    tess_session_clear(&r.sess);
    tess_store_close(st2);
    tess_store_close(st);
    assert_int_equal(sqlite3_close(db2), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    tess_session_clear(&s);
    tess_session_clear(&t);
    snprintf(path, sizeof(path), "rm -rf '%s'", dir);
    assert_int_equal(system(path), 0);
}

static void test_open_errors(void **state)
{
    sqlite3 *db;
    tess_store_t *st = (tess_store_t *)1;
    char err[256] = "x";
    (void)state;

    /* a foreign table named "session" that is not ours */
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE session (id INTEGER)", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(tess_sqlitestore_open(&st, db, err, sizeof(err)), TESS_EIO);
    assert_null(st);
    assert_non_null(strstr(err, "expire"));
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    /* a read-only database cannot get the table */
    {
        char dir[] = "/tmp/tess-sqlite-XXXXXX", path[128];
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/ro.db", dir);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "CREATE TABLE other (x)", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(tess_sqlitestore_open(&st, db, err, sizeof(err)), TESS_EIO);
        assert_non_null(strstr(err, "readonly"));
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
        unlink(path);
        rmdir(dir);
    }
    assert_int_equal(tess_sqlitestore_open(&st, NULL, err, sizeof(err)), TESS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_get_touch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_resurrection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_documents, setup, teardown),
        cmocka_unit_test(test_file_db),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
