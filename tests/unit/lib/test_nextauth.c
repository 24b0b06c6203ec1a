/*
 * Unit tests of NextAuth database sessions on SQLite (tessera/nextauth.h): the Prisma adapter's tables as its
 * migration creates them, rows written the way the adapter writes them (expires as integer ms, Prisma's native
 * connector; or ISO 8601 text, its driver adapters), the token shape, the options, the table check.
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

#include "tessera/error.h"
#include "tessera/nextauth.h"

#include "store_result.h"
#include "tmpdir.h"

#define DAY INT64_C(86400000)
#define TOKEN_A "0f8fad5b-d9cb-469f-a165-70867728950e"
#define TOKEN_B "7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define TOKEN_HEX "d2f3b1c0a9e8f7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a493827161504"

/* The Prisma adapter's schema (prisma migrate, SQLite provider), as the app's own migration has it. */
static const char prisma_sqlite[] =
    "CREATE TABLE \"User\" (\"id\" TEXT NOT NULL PRIMARY KEY, \"name\" TEXT, \"email\" TEXT,"
    " \"emailVerified\" DATETIME, \"image\" TEXT, \"role\" TEXT);"
    "CREATE TABLE \"Session\" (\"id\" TEXT NOT NULL PRIMARY KEY, \"sessionToken\" TEXT NOT NULL,"
    " \"userId\" TEXT NOT NULL, \"expires\" DATETIME NOT NULL,"
    " CONSTRAINT \"Session_userId_fkey\" FOREIGN KEY (\"userId\") REFERENCES \"User\" (\"id\")"
    " ON DELETE CASCADE ON UPDATE CASCADE);"
    "CREATE UNIQUE INDEX \"Session_sessionToken_key\" ON \"Session\"(\"sessionToken\");"
    "CREATE UNIQUE INDEX \"User_email_key\" ON \"User\"(\"email\");";

typedef struct fixture {
    tmpdir_t tmp;
    char url[256];
    sqlite3 *db; /* the app's connection */
} fixture_t;

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char path[200];
    tmpdir_make(&f->tmp);
    tmpdir_path(&f->tmp, "app.db", path, sizeof(path));
    snprintf(f->url, sizeof(f->url), "sqlite:%s", path);
    assert_int_equal(sqlite3_open(path, &f->db), SQLITE_OK);
    exec(f->db, prisma_sqlite);
    exec(f->db, "INSERT INTO \"User\" (id, name, email, role) VALUES ('clx1user', 'Ann', 'ann@example.com', 'agent'),"
                " ('clx2user', 'Bob', 'bob@example.com', NULL)");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    sqlite3_close(f->db);
    tmpdir_remove(&f->tmp);
    free(f);
    return 0;
}

static void add_session(fixture_t *f, const char *token, const char *user, const char *expires_sql)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO \"Session\" (id, \"sessionToken\", \"userId\", expires) VALUES ('row-%s', '%s', '%s', %s)",
             token, token, user, expires_sql);
    exec(f->db, sql);
}

static tess_store_t *open_store(fixture_t *f, const char *role_column)
{
    tess_nextauth_opts_t o = {.role_column = role_column, .default_role = "visitor"};
    tess_store_params_t p = {.url = f->url};
    tess_store_t *st = NULL;
    char err[256] = "";
    if (tess_nextauth_migrate(&p, &o, err, sizeof(err)) != 0 || tess_nextauth_open(&st, &p, &o, err, sizeof(err)) != 0)
        fail_msg("open: %s", err);
    return st;
}

static int get(tess_store_t *st, const char *token, result_t *r)
{
    tess_session_clear(&r->sess);
    memset(r, 0, sizeof(*r));
    assert_int_equal(tess_store_get(st, tess_str(token), on_result, r), 0);
    assert_int_equal(r->calls, 1);
    return r->rc;
}

static void test_token_shapes(void **state)
{
    (void)state;
    assert_true(tess_nextauth_token_ok(TESS_STR_LIT(TOKEN_A)));
    assert_true(tess_nextauth_token_ok(TESS_STR_LIT("0F8FAD5B-D9CB-469F-A165-70867728950E")));
    assert_true(tess_nextauth_token_ok(TESS_STR_LIT(TOKEN_HEX)));
    assert_false(tess_nextauth_token_ok(TESS_STR_LIT("")));
    assert_false(tess_nextauth_token_ok(TESS_STR_LIT("0f8fad5b-d9cb-469f-a165-70867728950")));   /* 35 */
    assert_false(tess_nextauth_token_ok(TESS_STR_LIT("0f8fad5bd-9cb-469f-a165-70867728950e")));  /* dash moved */
    assert_false(tess_nextauth_token_ok(TESS_STR_LIT("0f8fad5b-d9cb-469f-a165-70867728950g")));  /* not hex */
    assert_false(tess_nextauth_token_ok(TESS_STR_LIT("0f8fad5b-d9cb-469f-a165-70867728950e0"))); /* 37 */
    assert_false(tess_nextauth_token_ok(TESS_STR_LIT(TOKEN_HEX "0")));
    assert_false(tess_nextauth_token_ok(tess_strn("0f8fad5b-d9cb-469f-a165-7086772895\0e", 36)));
    assert_false(tess_nextauth_token_ok(TESS_STR_LIT("s%3Aabc.def")));
}

static void test_options_refused(void **state)
{
    char err[256];
    tess_nextauth_opts_t bad[] = {
        {.role_column = "role; DROP TABLE x"}, {.role_column = "1role"},   {.role_column = "ro\"le"},
        {.default_role = "two words"},         {.default_role = "a\r\nb"}, {.max_age_ms = -1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(tess_nextauth_check_opts(&bad[i], err, sizeof(err)), TESS_EINVAL);
        assert_true(err[0] != '\0' && strchr(err, '\n') == NULL);
    }
    tess_nextauth_opts_t ok = {.role_column = "appRole_2", .default_role = "agent"};
    assert_int_equal(tess_nextauth_check_opts(&ok, err, sizeof(err)), 0);
}

static void test_missing_tables_refused_with_a_reason(void **state)
{
    fixture_t *f = *state;
    tess_nextauth_opts_t o = {.role_column = "appRole"};
    tess_store_params_t p = {.url = f->url};
    char err[256] = "";
    /* a role column the table lacks */
    assert_int_equal(tess_nextauth_migrate(&p, &o, err, sizeof(err)), TESS_EINVAL);
    assert_non_null(strstr(err, "\"User\".\"appRole\""));
    exec(f->db, "DROP TABLE \"Session\"");
    o.role_column = NULL;
    assert_int_equal(tess_nextauth_migrate(&p, &o, err, sizeof(err)), TESS_EINVAL);
    assert_non_null(strstr(err, "\"Session\""));
    assert_non_null(strstr(err, "Prisma migrations"));
}

static void test_adapter_rows_are_sessions(void **state)
{
    fixture_t *f = *state;
    int64_t now = tess_now_ms();
    char sql[64];
    result_t r = {0};
    tess_store_t *st;

    snprintf(sql, sizeof(sql), "%lld", (long long)(now + 5 * DAY));
    add_session(f, TOKEN_A, "clx1user", sql);                                                    /* integer ms */
    add_session(f, TOKEN_B, "clx2user", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+2 days')");     /* ISO text */
    add_session(f, TOKEN_HEX, "clx2user", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 minute')"); /* expired */
    st = open_store(f, "role");

    assert_int_equal(get(st, TOKEN_A, &r), 0);
    assert_string_equal(r.sess.id, TOKEN_A);
    assert_string_equal(r.sess.user_id, "clx1user");
    assert_string_equal(r.sess.role, "agent"); /* the role column */
    assert_true(r.sess.expires_ms == now + 5 * DAY);
    assert_int_equal(r.sess.max_age_ms, TESS_NEXTAUTH_MAX_AGE_MS);
    assert_int_equal(r.sess.absolute_expires_ms, 0);

    assert_int_equal(get(st, TOKEN_B, &r), 0);
    assert_string_equal(r.sess.role, "visitor"); /* NULL in the column: the default */
    assert_true(r.sess.expires_ms > now + 2 * DAY - 60000 && r.sess.expires_ms < now + 2 * DAY + 60000);

    assert_int_equal(get(st, TOKEN_HEX, &r), TESS_ENOTFOUND);                              /* expired */
    assert_int_equal(get(st, "6fa459ea-ee8a-3ca4-894e-db77e160355e", &r), TESS_ENOTFOUND); /* unknown */
    tess_session_clear(&r.sess);
    tess_store_close(st);

    /* Without a role column every session gets the default role. */
    st = open_store(f, NULL);
    assert_int_equal(get(st, TOKEN_A, &r), 0);
    assert_string_equal(r.sess.role, "visitor");
    tess_session_clear(&r.sess);
    tess_store_close(st);
}

static void test_touch_destroy_and_user(void **state)
{
    fixture_t *f = *state;
    int64_t now = tess_now_ms(), later = now + 30 * DAY;
    result_t r = {0};
    tess_store_t *st;
    sqlite3_stmt *q;

    add_session(f, TOKEN_A, "clx1user", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 day')");
    add_session(f, TOKEN_B, "clx1user", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 day')");
    add_session(f, TOKEN_HEX, "clx2user", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 day')");
    st = open_store(f, "role");

    assert_int_equal(tess_store_touch(st, TESS_STR_LIT(TOKEN_A), later, on_result, &r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(get(st, TOKEN_A, &r), 0);
    assert_true(r.sess.expires_ms == later);
    /* written as integer ms, which the app (Prisma's native connector) reads back */
    assert_int_equal(sqlite3_prepare_v2(f->db,
                                        "SELECT typeof(expires), expires FROM \"Session\" WHERE id = 'row-" TOKEN_A "'",
                                        -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "integer");
    assert_true(sqlite3_column_int64(q, 1) == later);
    sqlite3_finalize(q);

    assert_int_equal(tess_store_touch(st, TESS_STR_LIT("6fa459ea-ee8a-3ca4-894e-db77e160355e"), later, on_result, &r),
                     0);
    assert_int_equal(r.rc, TESS_ENOTFOUND);

    assert_int_equal(tess_store_destroy(st, TESS_STR_LIT(TOKEN_A), on_result, &r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(get(st, TOKEN_A, &r), TESS_ENOTFOUND);
    assert_int_equal(get(st, TOKEN_B, &r), 0);

    assert_int_equal(tess_store_destroy_user(st, TESS_STR_LIT("clx1user"), on_result, &r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(get(st, TOKEN_B, &r), TESS_ENOTFOUND);
    assert_int_equal(get(st, TOKEN_HEX, &r), 0); /* another user's */
    tess_session_clear(&r.sess);
    tess_store_close(st);
}

static void test_set_inserts_a_row_for_an_existing_user(void **state)
{
    fixture_t *f = *state;
    tess_session_t s;
    result_t r = {0};
    tess_store_t *st = open_store(f, "role");

    memset(&s, 0, sizeof(s));
    strcpy(s.id, TOKEN_HEX);
    strcpy(s.user_id, "clx1user");
    strcpy(s.role, "agent");
    s.expires_ms = tess_now_ms() + DAY;
    assert_int_equal(tess_store_set(st, &s, on_result, &r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(get(st, TOKEN_HEX, &r), 0);
    assert_string_equal(r.sess.user_id, "clx1user");
    /* a user the app does not know: the foreign key refuses it */
    strcpy(s.id, TOKEN_B);
    strcpy(s.user_id, "nobody");
    assert_int_equal(tess_store_set(st, &s, on_result, &r), 0);
    assert_int_not_equal(r.rc, 0);
    tess_session_clear(&r.sess);
    tess_store_close(st);
}

static void test_bad_identity_in_a_row_is_no_session(void **state)
{
    fixture_t *f = *state;
    result_t r = {0};
    tess_store_t *st;
    exec(f->db, "INSERT INTO \"User\" (id, role) VALUES ('evil', 'agent\r\nX-Session-User: root')");
    add_session(f, TOKEN_A, "evil", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 day')");
    st = open_store(f, "role");
    assert_int_equal(get(st, TOKEN_A, &r), TESS_EBADFMT);
    tess_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_shapes),
        cmocka_unit_test(test_options_refused),
        cmocka_unit_test_setup_teardown(test_missing_tables_refused_with_a_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adapter_rows_are_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_touch_destroy_and_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_inserts_a_row_for_an_existing_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_identity_in_a_row_is_no_session, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
