/*
 * Unit tests of the identity rule (tess_session_identity_valid, session.h) and of every place a session's
 * identity is made: a stored document (tess_session_from_json, here behind the SQLite store, for the db and
 * cached strategies), a token's claims (the jwt strategy), a login (tess_session_init). A userId or role with
 * a CR/LF (a header line of its own in X-Session-User), another control character or a blank is refused, and
 * the refusal is reported in one line on stderr that carries none of the values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "tessera/auth.h"
#include "tessera/error.h"

/* What a tess_auth_cb saw. */
typedef struct outcome {
    int calls;           /* invocations */
    int rc;              /* last rc */
    tess_session_t sess; /* last session (copied) */
} outcome_t;

static void on_auth(void *arg, int rc, const tess_session_t *sess, tess_str_t cookie)
{
    outcome_t *o = arg;
    (void)cookie;
    o->calls++;
    o->rc = rc;
    tess_session_clear(&o->sess);
    if (sess != NULL)
        assert_int_equal(tess_session_copy(&o->sess, sess), 0);
}

#define EVIL "\r\nX-Evil: 1"

/* ---- the rule --------------------------------------------------------------------------------------- */

static void test_rule(void **state)
{
    static const char *const good_users[] = {
        "1",
        "-7",
        "u-123",
        "user@example.com",
        "auth0|5f1b2c",
        "google-oauth2|1234567890",
        "a\"b\\c;d,e",
        "\xc3\xbc-\xe2\x82\xac-\xf0\x9f\x98\x80", /* ü-€-😀 (a jsonwebtoken vector) */
        "\xc2\xa0",                               /* U+00A0: printable, no header reader trims it */
    };
    static const char *const bad_users[] = {
        "",
        "1" EVIL,
        "1\r",
        "1\n",
        "\r\n",
        "a\tb",
        "a b",
        " a",
        "a ",
        "a\x01",
        "a\x1f",
        "a\x7f",
        "a\xc2\x80",         /* U+0080: a C1 control */
        "a\xc2\x85",         /* U+0085 NEL */
        "a\xc2\x9f",         /* U+009F */
        "a\xc3\x28",         /* invalid UTF-8 */
        "a\xc0\xaf",         /* overlong '/' */
        "a\xe0\x80\x8a",     /* overlong LF */
        "a\xed\xa0\x80",     /* a surrogate */
        "a\xf4\x90\x80\x80", /* past U+10FFFF */
        "a\xe2\x82",         /* truncated */
        "\xff",
    };
    char max[TESS_USER_ID_MAX + 2];
    (void)state;

    for (size_t i = 0; i < sizeof(good_users) / sizeof(good_users[0]); ++i) {
        if (!tess_session_identity_valid(tess_str(good_users[i]), TESS_STR_LIT("visitor")))
            fail_msg("user id #%zu refused", i);
    }
    for (size_t i = 0; i < sizeof(bad_users) / sizeof(bad_users[0]); ++i) {
        if (tess_session_identity_valid(tess_str(bad_users[i]), TESS_STR_LIT("visitor")))
            fail_msg("user id #%zu accepted", i);
    }
    assert_false(tess_session_identity_valid(TESS_STR_LIT("a\0b"), TESS_STR_LIT("")));
    memset(max, 'u', sizeof(max));
    assert_true(tess_session_identity_valid(tess_strn(max, TESS_USER_ID_MAX), TESS_STR_LIT("")));
    assert_false(tess_session_identity_valid(tess_strn(max, TESS_USER_ID_MAX + 1), TESS_STR_LIT("")));

    /* role: may be empty; at most TESS_ROLE_MAX bytes; the same alphabet */
    assert_true(tess_session_identity_valid(TESS_STR_LIT("1"), TESS_STR_LIT("")));
    assert_true(tess_session_identity_valid(TESS_STR_LIT("1"), tess_strn(max, TESS_ROLE_MAX)));
    assert_false(tess_session_identity_valid(TESS_STR_LIT("1"), tess_strn(max, TESS_ROLE_MAX + 1)));
    assert_false(tess_session_identity_valid(TESS_STR_LIT("1"), TESS_STR_LIT("agent" EVIL)));
    assert_false(tess_session_identity_valid(TESS_STR_LIT("1"), TESS_STR_LIT(EVIL)));
    assert_false(tess_session_identity_valid(TESS_STR_LIT("1"), TESS_STR_LIT("agent ")));
}

/* ---- the report (first: the one line a second is the whole process's) --------------------------------- */

/* Runs `fn` with stderr sent to a temporary file; returns what was written (malloc'd). */
static char *capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/tess-identity-XXXXXX", *text;
    int fd = mkstemp(path), saved = dup(2);
    long n;
    FILE *f;

    assert_true(fd >= 0 && saved >= 0);
    fflush(stderr);
    assert_int_equal(dup2(fd, 2), 2);
    fn();
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    f = fdopen(fd, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    text = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    unlink(path);
    return text;
}

static void parse_three_bad_documents(void)
{
    static const char *const docs[] = {
        "{\"userId\":\"1\\r\\nX-Evil: 1\",\"cookie\":{\"expires\":\"2099-01-01T00:00:00.000Z\"}}",
        "{\"userId\":\"1\",\"role\":\"agent\\r\\nX-Evil: 1\",\"cookie\":{\"expires\":\"2099-01-01T00:00:00.000Z\"}}",
        "{\"userId\":\"x y\",\"cookie\":{\"expires\":\"2099-01-01T00:00:00.000Z\"}}",
    };
    for (size_t i = 0; i < 3; ++i) {
        tess_session_t s;
        assert_int_equal(tess_session_from_json(&s, TESS_STR_LIT("the-secret-session-id"), tess_str(docs[i]), 0),
                         TESS_EBADFMT);
        assert_string_equal(s.user_id, ""); /* left zeroed */
    }
}

static void test_report_is_one_line_without_values(void **state)
{
    char *text = capture_stderr(parse_three_bad_documents);
    char *nl = strchr(text, '\n');
    (void)state;

    /* three refusals within a second: one line */
    assert_non_null(nl);
    assert_null(strchr(nl + 1, '\n'));
    assert_non_null(strstr(text, "tessera: session refused: a stored session"));
    assert_null(strstr(text, "X-Evil"));
    assert_null(strstr(text, "the-secret-session-id"));
    assert_null(strchr(text, '\r'));
    free(text);
}

/* ---- stored documents ----------------------------------------------------------------------------------- */

static void test_stored_documents(void **state)
{
    static const char *const refused[] = {
        "{\"userId\":\"1\\r\\nX-Evil: 1\",\"role\":\"visitor\"}",
        "{\"userId\":\"1\",\"role\":\"\\r\\nX-Evil: 1\"}",
        "{\"userId\":\"1\\n\",\"role\":\"visitor\"}",
        "{\"userId\":\"1\\u0085\",\"role\":\"visitor\"}",
        "{\"userId\":\" 1\",\"role\":\"visitor\"}",
        "{\"userId\":\"1\",\"role\":\"a b\"}",
        "{\"userId\":\"1\",\"role\":\"\\t\"}",
    };
    static const char *const kept[] = {
        "{\"userId\":42}",
        "{\"userId\":\"u-7\",\"role\":\"\"}",
        "{\"userId\":\"\\u00fc-\\u20ac\",\"role\":\"agent\"}",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); ++i) {
        tess_session_t s;
        if (tess_session_from_json(&s, TESS_STR_LIT("sid"), tess_str(refused[i]), tess_now_ms() + 60000) !=
            TESS_EBADFMT)
            fail_msg("document #%zu accepted: %s", i, refused[i]);
    }
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); ++i) {
        tess_session_t s;
        if (tess_session_from_json(&s, TESS_STR_LIT("sid"), tess_str(kept[i]), tess_now_ms() + 60000) != 0)
            fail_msg("document #%zu refused: %s", i, kept[i]);
        tess_session_clear(&s);
    }
}

/* ---- through the strategies ------------------------------------------------------------------------------ */

typedef struct fixture {
    sqlite3 *db;             /* in-memory database of the store */
    tess_store_t *store;     /* the SQLite store on it */
    tess_secrets_t *secrets; /* signs cookies and tokens */
    tess_cache_t *cache;     /* near-cache (cached) */
    tess_jwt_t *jwt;         /* signer and verifier (jwt) */
    tess_auth_t *auth;       /* under test */
} fixture_t;

static fixture_t *fixture_new(tess_strategy_t strategy)
{
    fixture_t *f = calloc(1, sizeof(*f));
    tess_auth_config_t cfg;
    tess_cache_opts_t copts;
    char err[256];

    assert_int_equal(sqlite3_open(":memory:", &f->db), SQLITE_OK);
    assert_int_equal(tess_sqlitestore_open(&f->store, f->db, err, sizeof(err)), 0);
    assert_int_equal(tess_secrets_parse(&f->secrets, TESS_STR_LIT("s3cret")), 0);
    tess_cache_opts_default(&copts);
    assert_int_equal(tess_cache_new(&f->cache, &copts), 0);
    assert_int_equal(tess_jwt_new(&f->jwt, f->secrets, NULL), 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.strategy = strategy;
    cfg.secrets = f->secrets;
    tess_session_policy_default(&cfg.policy);
    cfg.store = f->store;
    cfg.cache = f->cache;
    cfg.jwt = f->jwt;
    assert_int_equal(tess_auth_new(&f->auth, &cfg), 0);
    return f;
}

static void fixture_free(fixture_t *f)
{
    tess_auth_free(f->auth);
    tess_store_close(f->store);
    assert_int_equal(sqlite3_close(f->db), SQLITE_OK);
    tess_cache_free(f->cache);
    tess_jwt_free(f->jwt);
    tess_secrets_free(f->secrets);
    free(f);
}

/* Writes `doc` as session `sid` straight into the table (as another application would), expiring in an hour. */
static void forge_row(fixture_t *f, const char *sid, const char *doc)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->db, "INSERT INTO session (sid, sess, expire, user_id) VALUES (?, ?, ?, ?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, sid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, doc, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, tess_now_ms() + 3600 * 1000);
    sqlite3_bind_text(st, 4, "1", -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

/* tess_auth_check of `<cookie name>=<value>`: its rc (the callback ran exactly once). */
static int check(fixture_t *f, const char *value, outcome_t *o)
{
    char header[8192];
    tess_str_t name = tess_auth_cookie_name(f->auth);
    snprintf(header, sizeof(header), "%.*s=%s", (int)name.len, name.ptr, value);
    tess_session_clear(&o->sess);
    memset(o, 0, sizeof(*o));
    tess_auth_check(f->auth, tess_str(header), tess_now_ms(), on_auth, o);
    assert_int_equal(o->calls, 1);
    return o->rc;
}

static void stored_sessions(tess_strategy_t strategy)
{
    static const struct {
        const char *sid, *doc;
        int ok;
    } rows[] = {
        {"good-session", "{\"userId\":\"7\",\"role\":\"visitor\"}", 1},
        {"evil-user", "{\"userId\":\"7\\r\\nX-Evil: 1\",\"role\":\"visitor\"}", 0},
        {"evil-role", "{\"userId\":\"7\",\"role\":\"\\r\\nX-Evil: 1\"}", 0},
        {"blank-user", "{\"userId\":\"7 \",\"role\":\"visitor\"}", 0},
    };
    fixture_t *f = fixture_new(strategy);
    outcome_t o = {0};

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); ++i) {
        char cookie[TESS_SIGNED_COOKIE_MAX];
        size_t n;
        forge_row(f, rows[i].sid, rows[i].doc);
        assert_int_equal(tess_cookie_sign(f->secrets, tess_str(rows[i].sid), cookie, sizeof(cookie), &n), 0);
        for (int round = 0; round < 2; ++round) { /* the second from the near-cache, for cached */
            int rc = check(f, cookie, &o);
            if (rows[i].ok) {
                assert_int_equal(rc, 0);
                assert_string_equal(o.sess.user_id, "7");
            } else {
                if (rc != TESS_EDENIED)
                    fail_msg("%s (round %d): rc %d, want DENIED", rows[i].sid, round, rc);
                assert_string_equal(o.sess.user_id, "");
            }
        }
    }
    tess_session_clear(&o.sess);
    fixture_free(f);
}

static void test_stored_db(void **state)
{
    (void)state;
    stored_sessions(TESS_STRATEGY_DB);
}

static void test_stored_cached(void **state)
{
    (void)state;
    stored_sessions(TESS_STRATEGY_CACHED);
}

static void test_token_claims(void **state)
{
    static const struct {
        const char *user, *role;
        int ok;
    } cases[] = {
        {"7", "visitor", 1},      {"\xc3\xbc-\xe2\x82\xac", "", 1},
        {"7" EVIL, "visitor", 0}, {"7", EVIL, 0},
        {"7", "agent\n", 0},      {"7\x7f", "", 0},
        {"a b", "", 0},
    };
    fixture_t *f = fixture_new(TESS_STRATEGY_JWT);
    outcome_t o = {0};
    tess_auth_stats_t before, after;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        /* the codec signs any UTF-8: only the strategy decides what may become a session */
        tess_jwt_claims_t c;
        char tok[1024];
        size_t n;
        memset(&c, 0, sizeof(c));
        snprintf(c.user_id, sizeof(c.user_id), "%s", cases[i].user);
        snprintf(c.role, sizeof(c.role), "%s", cases[i].role);
        c.iat = tess_now_ms() / 1000;
        c.exp = c.iat + 3600;
        assert_int_equal(tess_jwt_sign(f->jwt, &c, tok, sizeof(tok), &n), 0);
        tess_auth_get_stats(f->auth, &before);
        if (cases[i].ok) {
            assert_int_equal(check(f, tok, &o), 0);
            assert_string_equal(o.sess.user_id, cases[i].user);
        } else {
            if (check(f, tok, &o) != TESS_EDENIED)
                fail_msg("token #%zu accepted", i);
            tess_auth_get_stats(f->auth, &after);
            assert_int_equal(after.rejected_early, before.rejected_early + 1);
        }
    }
    tess_session_clear(&o.sess);
    fixture_free(f);
}

static void test_login_refuses_bad_identity(void **state)
{
    static const char *const users[] = {"1" EVIL, "1\n", "a b", ""};
    fixture_t *f = fixture_new(TESS_STRATEGY_DB);
    outcome_t o = {0};
    tess_session_t s;
    tess_session_policy_t p;
    (void)state;

    tess_session_policy_default(&p);
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); ++i) {
        assert_int_equal(tess_session_init(&s, &p, tess_str(users[i]), TESS_STR_LIT("visitor"), 1), TESS_EINVAL);
        memset(&o, 0, sizeof(o));
        tess_auth_login(f->auth, tess_str(users[i]), TESS_STR_LIT("visitor"), tess_now_ms(), on_auth, &o);
        assert_int_equal(o.calls, 1);
        assert_int_equal(o.rc, TESS_EINVAL);
    }
    assert_int_equal(tess_session_init(&s, &p, TESS_STR_LIT("1"), TESS_STR_LIT("agent" EVIL), 1), TESS_EINVAL);
    assert_int_equal(tess_session_init(&s, &p, TESS_STR_LIT("1"), TESS_STR_LIT(""), 1), TESS_EINVAL);
    assert_int_equal(tess_session_init(&s, &p, TESS_STR_LIT("1"), TESS_STR_LIT("agent"), 1), 0);
    tess_session_clear(&s);
    tess_session_clear(&o.sess);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_is_one_line_without_values),
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_stored_documents),
        cmocka_unit_test(test_stored_db),
        cmocka_unit_test(test_stored_cached),
        cmocka_unit_test(test_token_claims),
        cmocka_unit_test(test_login_refuses_bad_identity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
