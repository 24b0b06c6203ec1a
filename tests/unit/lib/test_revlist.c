/*
 * Unit tests of token revocation in the database (tessera/revoke.h, tess_revlist_t) on SQLite, through the jwt
 * strategy: the note's token (no jti) denied by its digest, the per-user cut-off by iat, deny entries kept
 * through the leeway, two mirrors of one file (two processes) agreeing within a poll, failing closed while a
 * mirror is not current or full; and the JWT claim names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "tessera/auth.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/pollloop.h"
#include "tessera/revoke.h"
#include "tmpdir.h"

#define SEC INT64_C(1000)
#define LEEWAY_S 30

typedef struct side {
    tess_revlist_t *list; /* one process's mirror */
    tess_revoker_t *rev;  /* its loop's revoker */
    tess_jwt_t *jwt;      /* its verifier */
    tess_auth_t *auth;    /* the jwt strategy */
} side_t;

typedef struct fixture {
    tmpdir_t tmp;
    char url[128];
    tess_poll_loop_t *loop;
    tess_secrets_t *secrets;
    side_t a, b; /* two "processes" on one file */
} fixture_t;

typedef struct outcome {
    int calls;
    int rc;
    tess_session_t s;
} outcome_t;

static void on_auth(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    outcome_t *o = arg;
    (void)cookie;
    o->calls++;
    o->rc = rc;
    if (s != NULL)
        o->s = *s;
}

static int answered(void *arg)
{
    return ((outcome_t *)arg)->calls > 0;
}

static void side_open_pruning(fixture_t *f, side_t *s, int listen, int64_t stale_ms, size_t max_entries,
                              int64_t prune_ms)
{
    tess_revlist_opts_t lo = {
        .database_url = f->url, .stale_ms = stale_ms, .max_entries = max_entries, .prune_ms = prune_ms};
    tess_revoker_opts_t ro = {0};
    tess_jwt_opts_t jo = {.leeway_s = LEEWAY_S};
    tess_auth_config_t ac = {0};
    char err[256] = "";

    if (tess_revlist_new(&s->list, &lo, err, sizeof(err)) != 0)
        fail_msg("revlist: %s", err);
    if (listen && tess_revlist_listen(s->list, tess_poll_loop_base(f->loop), err, sizeof(err)) != 0)
        fail_msg("listen: %s", err);
    ro.list = s->list;
    if (tess_revoker_open(&s->rev, tess_poll_loop_base(f->loop), &ro, err, sizeof(err)) != 0)
        fail_msg("revoker: %s", err);
    assert_int_equal(tess_jwt_new(&s->jwt, f->secrets, &jo), 0);
    ac.strategy = TESS_STRATEGY_JWT;
    ac.secrets = f->secrets;
    ac.jwt = s->jwt;
    ac.revoker = s->rev;
    assert_int_equal(tess_auth_new(&s->auth, &ac), 0);
    assert_true(tess_auth_can_revoke_everywhere(s->auth));
}

static void side_open(fixture_t *f, side_t *s, int listen, int64_t stale_ms, size_t max_entries)
{
    side_open_pruning(f, s, listen, stale_ms, max_entries, 0);
}

static void side_close(side_t *s)
{
    tess_auth_free(s->auth);
    tess_revoker_free(s->rev);
    tess_jwt_free(s->jwt);
    tess_revlist_free(s->list);
    memset(s, 0, sizeof(*s));
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char path[96];

    assert_non_null(f);
    tmpdir_make(&f->tmp);
    snprintf(f->url, sizeof(f->url), "sqlite:%s", tmpdir_path(&f->tmp, "rev.db", path, sizeof(path)));
    assert_non_null(f->loop = tess_poll_loop_new());
    assert_int_equal(tess_secrets_parse(&f->secrets, TESS_STR_LIT("revlist-test-secret")), 0);
    side_open(f, &f->a, 1, 0, 0);
    side_open(f, &f->b, 1, 0, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    side_close(&f->a);
    side_close(&f->b);
    tess_poll_loop_free(f->loop);
    tess_secrets_free(f->secrets);
    tmpdir_remove(&f->tmp);
    free(f);
    return 0;
}

/* The note's token: {userId, iat, exp}, no jti, no role. */
static void note_token(fixture_t *f, const char *uid, int64_t iat_s, int64_t exp_s, char *out, size_t cap)
{
    tess_jwt_claims_t c;
    size_t n;
    memset(&c, 0, sizeof(c));
    snprintf(c.user_id, sizeof(c.user_id), "%s", uid);
    c.iat = iat_s;
    c.exp = exp_s;
    assert_int_equal(tess_jwt_sign(f->a.jwt, &c, out, cap, &n), 0);
}

/* tess_auth_check of `token` in cookie session-token at `now_ms` (answered at once: from memory). */
static int check_at(side_t *s, const char *token, int64_t now_ms, outcome_t *o)
{
    char header[TESS_TOKEN_MAX + 32];
    memset(o, 0, sizeof(*o));
    snprintf(header, sizeof(header), "session-token=%s", token);
    tess_auth_check(s->auth, tess_str(header), now_ms, on_auth, o);
    assert_int_equal(o->calls, 1);
    return o->rc;
}

static int logout(fixture_t *f, side_t *s, const tess_session_t *sess)
{
    outcome_t o = {0};
    tess_auth_logout_session(s->auth, sess, on_auth, &o);
    tess_poll_loop_run_until(f->loop, answered, &o, 5000);
    assert_int_equal(o.calls, 1);
    return o.rc;
}

static int everywhere(fixture_t *f, side_t *s, const char *uid, int64_t now_ms)
{
    outcome_t o = {0};
    tess_auth_logout_everywhere(s->auth, tess_str(uid), now_ms, on_auth, &o);
    tess_poll_loop_run_until(f->loop, answered, &o, 5000);
    assert_int_equal(o.calls, 1);
    return o.rc;
}

typedef struct wait_denied {
    side_t *s;
    const char *token;
    int64_t now_ms;
} wait_denied_t;

static int is_denied(void *arg)
{
    wait_denied_t *w = arg;
    outcome_t o;
    return check_at(w->s, w->token, w->now_ms, &o) == TESS_EDENIED;
}

/* Runs the loop until `s` refuses `token` (1) or 1 s passes (0). */
static int denied_within_1s(fixture_t *f, side_t *s, const char *token, int64_t now_ms)
{
    wait_denied_t w = {s, token, now_ms};
    return tess_poll_loop_run_until(f->loop, is_denied, &w, 1000);
}

/* A token without a jti is its own session, named by the digest of the whole token; logout denies exactly it. */
static void test_digest_deny(void **state)
{
    fixture_t *f = *state;
    int64_t now = tess_now_ms(), now_s = now / 1000;
    char t1[1024], t2[1024], want[TESS_JWT_TOKEN_ID_MAX + 1];
    uint8_t md[32];
    unsigned int mdn;
    outcome_t o;

    note_token(f, "42", now_s, now_s + 3600, t1, sizeof(t1));
    note_token(f, "42", now_s - 1, now_s + 3600, t2, sizeof(t2)); /* same user, another token */
    assert_int_equal(check_at(&f->a, t1, now, &o), 0);
    assert_int_equal(EVP_Digest(t1, strlen(t1), md, &mdn, EVP_sha256(), NULL), 1);
    memcpy(want, "sha256:", 7);
    want[7 + tess_base64url_encode(md, sizeof(md), want + 7)] = '\0';
    assert_string_equal(o.s.id, want);
    assert_int_equal(tess_jwt_token_digest(f->a.jwt, tess_str(t1), want, 8), TESS_ENOSPACE);

    assert_int_equal(logout(f, &f->a, &o.s), 0);
    assert_int_equal(check_at(&f->a, t1, now, &o), TESS_EDENIED); /* this process: at once */
    assert_true(denied_within_1s(f, &f->b, t1, now));             /* the other process: within a poll */
    assert_int_equal(check_at(&f->a, t2, now, &o), 0);
    assert_int_equal(check_at(&f->b, t2, now, &o), 0);
}

/* The deny entry outlives acceptance: verify accepts until exp + leeway, so the entry must last that long. */
static void test_deny_through_leeway(void **state)
{
    fixture_t *f = *state;
    int64_t now = tess_now_ms(), now_s = now / 1000, exp_s = now_s + 5;
    char t[1024], twin[1024];
    outcome_t o;

    note_token(f, "7", now_s, exp_s, t, sizeof(t));
    note_token(f, "7", now_s - 1, exp_s, twin, sizeof(twin));
    assert_int_equal(check_at(&f->a, t, now, &o), 0);
    assert_int_equal(logout(f, &f->a, &o.s), 0);
    assert_true(denied_within_1s(f, &f->b, t, now));
    /* the last accepted moment of the twin: exp + leeway - 1 ms */
    int64_t last = (exp_s + LEEWAY_S) * SEC - 1;
    assert_int_equal(check_at(&f->a, twin, last, &o), 0);
    assert_int_equal(check_at(&f->a, t, last, &o), TESS_EDENIED);
    assert_int_equal(check_at(&f->b, t, last, &o), TESS_EDENIED);
    assert_int_equal(check_at(&f->a, twin, last + 1, &o), TESS_EDENIED); /* and then verify refuses both */
}

/* Log out everywhere: every token issued in or before the cut-off's second, by iat; a later one is fine. */
static void test_cutoff_by_iat(void **state)
{
    fixture_t *f = *state;
    int64_t now = tess_now_ms(), now_s = now / 1000;
    char same_second[1024], older[1024], later[1024], other_user[1024];
    outcome_t o;

    note_token(f, "9", now_s, now_s + 3600, same_second, sizeof(same_second));
    note_token(f, "9", now_s - 86400, now_s + 3600, older, sizeof(older));
    note_token(f, "9", now_s + 1, now_s + 3600, later, sizeof(later));
    note_token(f, "10", now_s - 10, now_s + 3600, other_user, sizeof(other_user));
    assert_int_equal(everywhere(f, &f->b, "9", now), 0);
    assert_int_equal(check_at(&f->b, same_second, now, &o), TESS_EDENIED);
    assert_int_equal(check_at(&f->b, older, now, &o), TESS_EDENIED);
    assert_true(denied_within_1s(f, &f->a, older, now));
    assert_int_equal(check_at(&f->a, same_second, now, &o), TESS_EDENIED);
    assert_int_equal(check_at(&f->a, later, now + SEC, &o), 0);
    assert_int_equal(check_at(&f->b, later, now + SEC, &o), 0);
    assert_int_equal(check_at(&f->a, other_user, now, &o), 0);
    /* A later cut-off moves it forward; an earlier one (arriving late) does not move it back. */
    assert_int_equal(everywhere(f, &f->a, "9", now + SEC), 0);
    assert_int_equal(check_at(&f->a, later, now + SEC, &o), TESS_EDENIED);
    assert_int_equal(everywhere(f, &f->a, "9", now - 86400 * SEC), 0);
    assert_int_equal(check_at(&f->a, later, now + SEC, &o), TESS_EDENIED);
}

typedef struct rv_answer {
    int calls;
    int rc;
} rv_answer_t;

static void on_rv(void *arg, int rc)
{
    rv_answer_t *a = arg;
    a->calls++;
    a->rc = rc;
}

static int rv_check(side_t *s, const char *jti, const char *uid, int64_t iat_s, int64_t now)
{
    rv_answer_t a = {0};
    tess_revoker_check(s->rev, tess_str(jti), tess_str(uid), iat_s, now, on_rv, &a);
    assert_int_equal(a.calls, 1); /* from memory: before returning */
    return a.rc;
}

/* A jti or user id of any bytes (blanks, UTF-8, our own digest form) is stored by digest and still found. */
static void test_odd_ids(void **state)
{
    fixture_t *f = *state;
    int64_t now = tess_now_ms();
    rv_answer_t a = {0};
    const char *jti = "a jti with blanks, \xc3\xa9 and 'quotes'", *uid = "user \xe2\x82\xac 1";

    tess_revoker_deny(f->a.rev, tess_str(jti), now + 60 * SEC, on_rv, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.rc, 0);
    tess_revoker_deny(f->a.rev, tess_str("k:lookalike"), now + 60 * SEC, on_rv, &a);
    assert_int_equal(a.rc, 0);
    tess_revoker_cut(f->a.rev, tess_str(uid), now, 60 * SEC, on_rv, &a);
    assert_int_equal(a.rc, 0);
    assert_int_equal(rv_check(&f->a, jti, "u", 0, now), TESS_EREVOKED);
    assert_int_equal(rv_check(&f->a, "k:lookalike", "u", 0, now), TESS_EREVOKED);
    assert_int_equal(rv_check(&f->a, "a jti with blanks", "u", 0, now), 0);
    assert_int_equal(rv_check(&f->a, "j", uid, now / 1000, now), TESS_EREVOKED);
    assert_int_equal(rv_check(&f->a, "j", uid, now / 1000 + 1, now), 0);
    tess_poll_loop_run_until(f->loop, NULL, NULL, 3 * TESS_REVLIST_TAIL_MS);
    assert_int_equal(rv_check(&f->b, jti, "u", 0, now), TESS_EREVOKED);
    assert_int_equal(rv_check(&f->b, "j", uid, now / 1000, now), TESS_EREVOKED);
    /* an entry past its time is not honoured (verify refuses such tokens anyway) */
    assert_int_equal(rv_check(&f->b, jti, "u", 0, now + 61 * SEC), 0);
    /* ids that cannot be looked up are refused, as with Redis */
    assert_int_equal(rv_check(&f->a, "", "u", 0, now), TESS_EREVOKED);
}

/* A second process starting later loads what is already there. */
static void test_load_at_start(void **state)
{
    fixture_t *f = *state;
    int64_t now = tess_now_ms(), now_s = now / 1000;
    char t[1024];
    side_t c = {0};
    outcome_t o;

    note_token(f, "11", now_s, now_s + 3600, t, sizeof(t));
    assert_int_equal(check_at(&f->a, t, now, &o), 0);
    assert_int_equal(logout(f, &f->a, &o.s), 0);
    side_open(f, &c, 0, 0, 0);
    assert_int_equal(check_at(&c, t, now, &o), TESS_EDENIED);
    side_close(&c);
}

/* Not following the table (no listener, or it stopped) for longer than stale_ms: checks fail closed. */
static void test_fails_closed_when_stale(void **state)
{
    fixture_t *f = *state;
    int64_t now = tess_now_ms(), now_s = now / 1000;
    char t[1024];
    side_t c = {0};
    outcome_t o;

    note_token(f, "12", now_s, now_s + 3600, t, sizeof(t));
    side_open(f, &c, 0, 100, 0); /* loaded, but nobody polls */
    assert_true(tess_revlist_current(c.list));
    assert_int_equal(check_at(&c, t, now, &o), 0);
    tess_poll_loop_run_until(f->loop, NULL, NULL, 250);
    assert_false(tess_revlist_current(c.list));
    assert_int_equal(check_at(&c, t, now, &o), TESS_EUNAVAIL);
    side_close(&c);
    /* the listening ones stay current; one that stops listening is not */
    assert_true(tess_revlist_current(f->a.list));
    tess_revlist_unlisten(f->a.list);
    assert_false(tess_revlist_current(f->a.list));
    assert_int_equal(check_at(&f->a, t, now, &o), TESS_EUNAVAIL);
}

/* A mirror that cannot hold another revocation fails closed rather than forget it. */
static void test_bounded(void **state)
{
    fixture_t *f = *state;
    int64_t now = tess_now_ms(), now_s = now / 1000;
    char t[1024];
    side_t c = {0};
    outcome_t o;

    note_token(f, "13", now_s, now_s + 3600, t, sizeof(t));
    side_open(f, &c, 1, 0, 2);
    assert_int_equal(everywhere(f, &c, "u1", now), 0);
    assert_int_equal(everywhere(f, &c, "u2", now), 0);
    assert_int_equal(tess_revlist_size(c.list), 2);
    assert_int_equal(check_at(&c, t, now, &o), 0);
    assert_int_equal(everywhere(f, &c, "u3", now), 0);
    assert_false(tess_revlist_current(c.list));
    assert_int_equal(check_at(&c, t, now, &o), TESS_EUNAVAIL);
    side_close(&c);
}

static int rows_in(fixture_t *f)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int n;
    assert_int_equal(sqlite3_open(f->url + 7, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM tess_revocation", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

typedef struct prune_wait {
    fixture_t *f;
    side_t *s;
} prune_wait_t;

static int pruned(void *arg)
{
    prune_wait_t *w = arg;
    return tess_revlist_size(w->s->list) == 1 && rows_in(w->f) == 1;
}

/* Expired rows leave the table and the mirrors; live ones stay. */
static void test_pruned(void **state)
{
    fixture_t *f = *state;
    int64_t now = tess_now_ms();
    rv_answer_t a = {0};
    side_t c = {0};
    prune_wait_t w = {f, &c};

    side_open_pruning(f, &c, 1, 0, 0, 100);
    tess_revoker_deny(c.rev, TESS_STR_LIT("short"), now + 300, on_rv, &a);
    assert_int_equal(a.rc, 0);
    tess_revoker_deny(c.rev, TESS_STR_LIT("long"), now + 3600 * SEC, on_rv, &a);
    assert_int_equal(a.rc, 0);
    assert_int_equal(tess_revlist_size(c.list), 2);
    assert_int_equal(rows_in(f), 2);
    assert_true(tess_poll_loop_run_until(f->loop, pruned, &w, 3000));
    assert_int_equal(rv_check(&c, "long", "u", 0, tess_now_ms()), TESS_EREVOKED);
    assert_int_equal(rv_check(&c, "short", "u", 0, now), 0); /* forgotten: its time has passed */
    side_close(&c);
}

/* Claim names: configurable user and role claims, used to sign and to verify; bad names refused. */
static void test_claim_names(void **state)
{
    fixture_t *f = *state;
    tess_jwt_opts_t jo = {.leeway_s = 0, .user_claim = "sub", .role_claim = "https://x/role"};
    tess_jwt_claims_t c, out;
    tess_jwt_t *j = NULL;
    char tok[1024], json[256];
    size_t n, jn = 0;

    assert_int_equal(tess_jwt_new(&j, f->secrets, &jo), 0);
    memset(&c, 0, sizeof(c));
    strcpy(c.user_id, "5");
    strcpy(c.role, "agent");
    c.iat = 1000;
    c.exp = 2000;
    assert_int_equal(tess_jwt_sign(j, &c, tok, sizeof(tok), &n), 0);
    const char *p1 = strchr(tok, '.') + 1, *p2 = strchr(p1, '.');
    assert_int_equal(tess_base64url_decode(tess_strn(p1, (size_t)(p2 - p1)), (uint8_t *)json, sizeof(json) - 1, &jn),
                     0);
    json[jn] = '\0';
    assert_string_equal(json, "{\"sub\":\"5\",\"https://x/role\":\"agent\",\"iat\":1000,\"exp\":2000}");
    assert_int_equal(tess_jwt_verify(j, tess_strn(tok, n), 1500, &out), 0);
    assert_string_equal(out.user_id, "5");
    assert_string_equal(out.role, "agent");
    /* the default verifier looks for userId: this token names no user for it */
    assert_int_equal(tess_jwt_verify(f->a.jwt, tess_strn(tok, n), 1500, &out), TESS_EBADFMT);
    tess_jwt_free(j);

    const char *bad[] = {"exp", "iat", "jti", "nbf", "a\"b", "a\\b", "sp ace", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tess_jwt_opts_t b = {.user_claim = bad[i][0] ? bad[i] : "x", .role_claim = bad[i][0] ? "role" : "x"};
        assert_int_equal(tess_jwt_new(&j, f->secrets, &b), TESS_EINVAL);
        assert_null(j);
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_digest_deny),   T(test_deny_through_leeway),     T(test_cutoff_by_iat), T(test_odd_ids),
        T(test_load_at_start), T(test_fails_closed_when_stale), T(test_bounded),       T(test_pruned),
        T(test_claim_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
