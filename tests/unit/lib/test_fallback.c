/*
 * Unit tests of the migration fallback (tess_auth_config_t.fallback, auth.c): a request the primary strategy
 * refuses is asked of the fallback strategy; a session found there is copied forward into the primary's store
 * when both keep sessions in stores. Outages fail closed and are never handed to the fallback; forged cookies
 * never reach a store. Each strategy sits on its own memory store behind a counting wrapper that can also
 * answer late (like a networked store) or fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tessera/auth.h"
#include "tessera/error.h"

/* ---- the counting / async / failing store ------------------------------------------------------------- */

#include "counting_store.h"

static void reset_counts(cstore_t *c)
{
    memset(c->calls, 0, sizeof(c->calls));
}

/* ---- fixture ------------------------------------------------------------------------------------------- */

typedef struct fixture {
    tess_memstore_table_t *ptable; /* the primary's table */
    tess_memstore_table_t *ftable; /* the fallback's table */
    cstore_t prim;                 /* primary store (counting) */
    cstore_t fb;                   /* fallback store (counting) */
    tess_secrets_t *secrets;       /* shared by both strategies */
    tess_secrets_t *other;         /* an attacker's secret */
    tess_jwt_t *jwt;               /* the primary's verifier (jwt) */
    tess_auth_t *fallback;         /* db strategy on `fb` */
    tess_auth_t *auth;             /* primary, under test */
    int64_t now;                   /* real time: the memory store filters on it */
} fixture_t;

static void store_init(cstore_t *c, tess_memstore_table_t **table)
{
    assert_int_equal(tess_memstore_table_new(table), 0);
    assert_int_equal(tess_memstore_open(&c->inner, *table), 0);
    c->base.ops = &cstore_ops;
}

/* Primary `strategy` (db or jwt) with a db fallback on its own store. */
static fixture_t *fixture_new(tess_strategy_t strategy)
{
    fixture_t *f = calloc(1, sizeof(*f));
    tess_auth_config_t cfg;

    assert_non_null(f);
    store_init(&f->prim, &f->ptable);
    store_init(&f->fb, &f->ftable);
    assert_int_equal(tess_secrets_parse(&f->secrets, TESS_STR_LIT("migrate-secret, older")), 0);
    assert_int_equal(tess_secrets_parse(&f->other, TESS_STR_LIT("not-the-secret")), 0);
    assert_int_equal(tess_jwt_new(&f->jwt, f->secrets, NULL), 0);

    memset(&cfg, 0, sizeof(cfg));
    cfg.strategy = TESS_STRATEGY_DB;
    cfg.secrets = f->secrets;
    tess_session_policy_default(&cfg.policy);
    cfg.store = &f->fb.base;
    assert_int_equal(tess_auth_new(&f->fallback, &cfg), 0);

    cfg.strategy = strategy;
    cfg.store = strategy == TESS_STRATEGY_JWT ? NULL : &f->prim.base;
    cfg.jwt = f->jwt;
    cfg.fallback = f->fallback;
    assert_int_equal(tess_auth_new(&f->auth, &cfg), 0);
    f->now = tess_now_ms();
    return f;
}

static void fixture_free(fixture_t *f)
{
    c_close(&f->prim.base);
    c_close(&f->fb.base);
    tess_auth_free(f->auth);
    tess_auth_free(f->fallback);
    tess_store_close(f->prim.inner);
    tess_store_close(f->fb.inner);
    tess_memstore_table_free(f->ptable);
    tess_memstore_table_free(f->ftable);
    tess_jwt_free(f->jwt);
    tess_secrets_free(f->secrets);
    tess_secrets_free(f->other);
    free(f);
}

/* Logs user-1 in through `a` (its store answering at once); `o` gets the session and cookie value. */
static void login_with(tess_auth_t *a, int64_t now, outcome_t *o)
{
    memset(o, 0, sizeof(*o));
    tess_auth_login(a, TESS_STR_LIT("user-1"), TESS_STR_LIT("visitor"), now, on_auth, o);
    assert_int_equal(o->calls, 1);
    assert_int_equal(o->rc, 0);
    assert_true(o->cookie[0] != '\0');
}

/* Checks "theme=dark; <name>=<value>" on the primary (stores answering at once); returns the rc. */
static int check_named(fixture_t *f, const char *name, const char *value, outcome_t *o)
{
    char header[TESS_TOKEN_MAX + 128];
    snprintf(header, sizeof(header), "theme=dark; %s=%s; other=1", name, value);
    tess_session_clear(&o->sess);
    memset(o, 0, sizeof(*o));
    tess_auth_check(f->auth, tess_str(header), f->now, on_auth, o);
    assert_int_equal(o->calls, 1);
    return o->rc;
}

static int check(fixture_t *f, const char *value, outcome_t *o)
{
    return check_named(f, "connect.sid", value, o);
}

static void on_store_seen(void *arg, int rc, const tess_session_t *s)
{
    outcome_t *o = arg;
    on_auth(o, rc, s, TESS_STR_LIT(""));
}

/* rc of a direct get on a memory store (bypassing the counters). */
static int inner_get(tess_store_t *inner, const char *sid, outcome_t *o)
{
    memset(o, 0, sizeof(*o));
    assert_int_equal(tess_store_get(inner, tess_str(sid), on_store_seen, o), 0);
    assert_int_equal(o->calls, 1);
    return o->rc;
}

/* ---- tests --------------------------------------------------------------------------------------------- */

static void test_only_in_fallback_is_copied_forward(void **state)
{
    fixture_t *f = fixture_new(TESS_STRATEGY_DB);
    outcome_t old, o = {0}, seen;
    tess_auth_stats_t st;
    (void)state;

    login_with(f->fallback, f->now, &old); /* a session of the strategy being moved away from */
    assert_int_equal(inner_get(f->prim.inner, old.sess.id, &seen), TESS_ENOTFOUND);
    reset_counts(&f->prim);
    reset_counts(&f->fb);

    assert_int_equal(check(f, old.cookie, &o), 0);
    assert_string_equal(o.sess.id, old.sess.id);
    assert_string_equal(o.sess.user_id, "user-1");
    assert_string_equal(o.sess.role, "visitor");
    assert_int_equal(f->prim.calls[OP_GET], 1); /* primary asked first */
    assert_int_equal(f->fb.calls[OP_GET], 1);   /* then the fallback */
    assert_int_equal(f->prim.calls[OP_SET], 1); /* copied forward */
    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.fallback_checks, 1);
    assert_int_equal(st.copied_forward, 1);

    /* The primary store now has it: same id, same owner, same expiry. */
    assert_int_equal(inner_get(f->prim.inner, old.sess.id, &seen), 0);
    assert_string_equal(seen.sess.user_id, "user-1");
    assert_string_equal(seen.sess.role, "visitor");
    assert_true(seen.sess.absolute_expires_ms == old.sess.absolute_expires_ms);
    tess_session_clear(&seen.sess);

    /* The next checks are answered by the primary: the fallback is not asked again. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(check(f, old.cookie, &o), 0);
        assert_string_equal(o.sess.id, old.sess.id);
    }
    assert_int_equal(f->prim.calls[OP_GET], 4);
    assert_int_equal(total_calls(&f->fb), 1);
    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.fallback_checks, 1);
    assert_int_equal(st.copied_forward, 1);

    /* A session made by the primary itself never involves the fallback. */
    {
        outcome_t fresh;
        login_with(f->auth, f->now, &fresh);
        assert_int_equal(check(f, fresh.cookie, &o), 0);
        assert_string_equal(o.sess.id, fresh.sess.id);
        assert_int_equal(total_calls(&f->fb), 1);
        tess_session_clear(&fresh.sess);
    }
    tess_session_clear(&o.sess);
    tess_session_clear(&old.sess);
    fixture_free(f);
}

static void test_in_neither_is_denied(void **state)
{
    fixture_t *f = fixture_new(TESS_STRATEGY_DB);
    char cookie[TESS_TOKEN_MAX];
    size_t len = 0;
    outcome_t o;
    tess_auth_stats_t st;
    (void)state;

    memset(&o, 0, sizeof(o));
    assert_int_equal(tess_cookie_sign(f->secrets, TESS_STR_LIT("nobody-has-this-session-id-000000000000000"), cookie,
                                      sizeof(cookie), &len),
                     0);
    assert_int_equal(check(f, cookie, &o), TESS_EDENIED);
    assert_string_equal(o.sess.user_id, "");
    assert_int_equal(f->prim.calls[OP_GET], 1);
    assert_int_equal(f->fb.calls[OP_GET], 1);
    assert_int_equal(f->prim.calls[OP_SET], 0);
    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.fallback_checks, 1);
    assert_int_equal(st.copied_forward, 0);
    fixture_free(f);
}

static void test_forged_cookie_reaches_no_store(void **state)
{
    fixture_t *f = fixture_new(TESS_STRATEGY_DB);
    outcome_t old, o;
    char forged[TESS_TOKEN_MAX];
    size_t len = 0;
    tess_auth_stats_t pst, fst;
    (void)state;

    login_with(f->fallback, f->now, &old);
    reset_counts(&f->prim);
    reset_counts(&f->fb);
    memset(&o, 0, sizeof(o));

    /* An existing id signed with someone else's secret. */
    assert_int_equal(tess_cookie_sign(f->other, tess_str(old.sess.id), forged, sizeof(forged), &len), 0);
    assert_int_equal(check(f, forged, &o), TESS_EDENIED);
    /* The right signature on a tampered value, an unsigned id, garbage, no cookie at all. */
    {
        char tampered[TESS_TOKEN_MAX];
        snprintf(tampered, sizeof(tampered), "%s", old.cookie);
        tampered[strlen(tampered) - 1] ^= 1;
        assert_int_equal(check(f, tampered, &o), TESS_EDENIED);
    }
    assert_int_equal(check(f, old.sess.id, &o), TESS_EDENIED);
    assert_int_equal(check(f, "s%3A%2E%2E%2E", &o), TESS_EDENIED);
    memset(&o, 0, sizeof(o));
    tess_auth_check(f->auth, TESS_STR_LIT(""), f->now, on_auth, &o);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, TESS_EDENIED);

    assert_int_equal(total_calls(&f->prim), 0);
    assert_int_equal(total_calls(&f->fb), 0);
    tess_auth_get_stats(f->auth, &pst);
    tess_auth_get_stats(f->fallback, &fst);
    assert_int_equal(pst.store_lookups, 0);
    assert_int_equal(fst.store_lookups, 0);
    assert_int_equal(pst.rejected_early, 5);
    assert_int_equal(pst.copied_forward, 0);
    tess_session_clear(&o.sess);
    tess_session_clear(&old.sess);
    fixture_free(f);
}

/* A primary outage is an outage (503), not "no session": the fallback is not asked, nothing is copied. */
static void test_primary_outage_fails_closed(void **state)
{
    fixture_t *f = fixture_new(TESS_STRATEGY_DB);
    outcome_t old, o;
    tess_auth_stats_t st;
    const int rcs[] = {TESS_EUNAVAIL, TESS_ETIMEOUT};
    (void)state;

    login_with(f->fallback, f->now, &old);
    reset_counts(&f->fb);
    memset(&o, 0, sizeof(o));
    for (size_t i = 0; i < sizeof(rcs) / sizeof(rcs[0]); i++) {
        /* answered with an error */
        f->prim.fail_cb = rcs[i];
        assert_int_equal(check(f, old.cookie, &o), rcs[i]);
        assert_string_equal(o.sess.user_id, "");
        f->prim.fail_cb = 0;
        /* refused to start */
        f->prim.fail_start = rcs[i];
        assert_int_equal(check(f, old.cookie, &o), rcs[i]);
        f->prim.fail_start = 0;
    }
    /* answered with an error, later */
    f->prim.async = 1;
    f->prim.fail_cb = TESS_EUNAVAIL;
    memset(&o, 0, sizeof(o));
    {
        char header[TESS_TOKEN_MAX + 32];
        snprintf(header, sizeof(header), "connect.sid=%s", old.cookie);
        tess_auth_check(f->auth, tess_str(header), f->now, on_auth, &o);
    }
    assert_int_equal(o.calls, 0);
    assert_int_equal(fire(&f->prim), 1);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, TESS_EUNAVAIL);

    assert_int_equal(total_calls(&f->fb), 0);
    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.fallback_checks, 0);
    assert_int_equal(st.copied_forward, 0);
    tess_session_clear(&old.sess);
    fixture_free(f);
}

/* The fallback's outage fails closed too (503, never a session, nothing copied). */
static void test_fallback_outage_fails_closed(void **state)
{
    fixture_t *f = fixture_new(TESS_STRATEGY_DB);
    outcome_t old, o;
    tess_auth_stats_t st;
    (void)state;

    login_with(f->fallback, f->now, &old);
    memset(&o, 0, sizeof(o));
    f->fb.fail_cb = TESS_EUNAVAIL;
    assert_int_equal(check(f, old.cookie, &o), TESS_EUNAVAIL);
    f->fb.fail_cb = 0;
    f->fb.fail_start = TESS_ETIMEOUT;
    assert_int_equal(check(f, old.cookie, &o), TESS_ETIMEOUT);
    f->fb.fail_start = 0;
    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.fallback_checks, 2);
    assert_int_equal(st.copied_forward, 0);
    assert_int_equal(f->prim.calls[OP_SET], 0);
    /* Back up: found and copied. */
    assert_int_equal(check(f, old.cookie, &o), 0);
    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.copied_forward, 1);
    tess_session_clear(&o.sess);
    tess_session_clear(&old.sess);
    fixture_free(f);
}

/* Both stores answering later: the Cookie header is the caller's only for the call, so it must be copied. */
static void test_async_stores_header_copied(void **state)
{
    fixture_t *f = fixture_new(TESS_STRATEGY_DB);
    outcome_t old, o;
    tess_auth_stats_t st;
    char *header = malloc(TESS_TOKEN_MAX + 32);
    (void)state;

    assert_non_null(header);
    login_with(f->fallback, f->now, &old);
    f->prim.async = f->fb.async = 1;
    memset(&o, 0, sizeof(o));
    snprintf(header, TESS_TOKEN_MAX + 32, "connect.sid=%s", old.cookie);
    tess_auth_check(f->auth, tess_str(header), f->now, on_auth, &o);
    memset(header, 'x', TESS_TOKEN_MAX + 31); /* the caller reuses its buffer */
    free(header);
    assert_int_equal(o.calls, 0);
    assert_int_equal(fire(&f->prim), 1); /* primary: not found -> the fallback is asked */
    assert_int_equal(o.calls, 0);
    assert_int_equal(fire(&f->fb), 1); /* fallback: found -> copied forward */
    assert_int_equal(f->prim.calls[OP_SET], 1);
    assert_int_equal(o.calls, 0);        /* answered only once the copy is stored: the next request finds it */
    assert_int_equal(fire(&f->prim), 1); /* the copy's write */
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, 0);
    assert_string_equal(o.sess.id, old.sess.id);
    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.copied_forward, 1);

    f->prim.async = f->fb.async = 0;
    assert_int_equal(check(f, old.cookie, &o), 0);
    assert_int_equal(f->fb.calls[OP_GET], 1);
    tess_session_clear(&o.sess);
    tess_session_clear(&old.sess);
    fixture_free(f);
}

/* tess_auth_free() with a fallback check in flight: the callback still runs once, nothing leaks (ASan). */
static void test_release_with_fallback_in_flight(void **state)
{
    fixture_t *f = fixture_new(TESS_STRATEGY_DB);
    outcome_t old, o;
    char header[TESS_TOKEN_MAX + 32];
    (void)state;

    login_with(f->fallback, f->now, &old);
    f->prim.async = f->fb.async = 1;
    memset(&o, 0, sizeof(o));
    snprintf(header, sizeof(header), "connect.sid=%s", old.cookie);
    tess_auth_check(f->auth, tess_str(header), f->now, on_auth, &o);
    tess_auth_free(f->auth);
    f->auth = NULL;
    fire(&f->prim);
    fire(&f->fb);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, 0);
    assert_int_equal(f->prim.calls[OP_SET], 0); /* released: no copy forward */
    tess_session_clear(&o.sess);
    tess_session_clear(&old.sess);
    fixture_free(f);
}

/* jwt primary, db fallback: the old express-style cookie (connect.sid) is accepted; jwt keeps nothing. */
static void test_jwt_primary_db_fallback(void **state)
{
    fixture_t *f = fixture_new(TESS_STRATEGY_JWT);
    outcome_t old, fresh, o;
    tess_auth_stats_t st;
    char forged[TESS_TOKEN_MAX];
    size_t len = 0;
    (void)state;
    memset(&o, 0, sizeof(o)); /* check_named clears the previous outcome's session */

    assert_true(tess_str_eq(tess_auth_cookie_name(f->auth), TESS_STR_LIT("session-token")));
    assert_true(tess_str_eq(tess_auth_cookie_name(f->fallback), TESS_STR_LIT("connect.sid")));
    login_with(f->fallback, f->now, &old);
    assert_true(strncmp(old.cookie, "s%3A", 4) == 0); /* express-session's signed shape */
    reset_counts(&f->fb);

    assert_int_equal(check_named(f, "connect.sid", old.cookie, &o), 0);
    assert_string_equal(o.sess.id, old.sess.id);
    assert_string_equal(o.sess.user_id, "user-1");
    assert_int_equal(f->fb.calls[OP_GET], 1);
    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.fallback_checks, 1);
    assert_int_equal(st.copied_forward, 0); /* jwt keeps nothing: nothing to copy into */
    assert_int_equal(total_calls(&f->prim), 0);

    /* Still answered by the fallback next time (nothing was copied). */
    assert_int_equal(check_named(f, "connect.sid", old.cookie, &o), 0);
    assert_int_equal(f->fb.calls[OP_GET], 2);

    /* The old cookie under the new name is not a token; a token under the old name is not a signed cookie. */
    assert_int_equal(check_named(f, "session-token", old.cookie, &o), TESS_EDENIED);
    login_with(f->auth, f->now, &fresh);
    assert_int_equal(check_named(f, "connect.sid", fresh.cookie, &o), TESS_EDENIED);
    assert_int_equal(f->fb.calls[OP_GET], 2); /* neither reached a store */

    /* A fresh token is answered by the primary alone. */
    tess_auth_get_stats(f->auth, &st);
    {
        uint64_t before = st.fallback_checks;
        assert_int_equal(check_named(f, "session-token", fresh.cookie, &o), 0);
        assert_string_equal(o.sess.user_id, "user-1");
        tess_auth_get_stats(f->auth, &st);
        assert_int_equal(st.fallback_checks, before);
    }
    /* A forged express cookie is refused before any store. */
    assert_int_equal(tess_cookie_sign(f->other, tess_str(old.sess.id), forged, sizeof(forged), &len), 0);
    assert_int_equal(check_named(f, "connect.sid", forged, &o), TESS_EDENIED);
    assert_int_equal(f->fb.calls[OP_GET], 2);
    assert_int_equal(total_calls(&f->prim), 0);

    tess_session_clear(&o.sess);
    tess_session_clear(&fresh.sess);
    tess_session_clear(&old.sess);
    fixture_free(f);
}

/*
 * Logging out a session that came from the fallback must end it: the next check with the same cookie is 401.
 * (tess_auth_logout_session ends it in the primary and then in the fallback: otherwise a db primary would find
 * it in the fallback again and copy it forward, and a jwt primary would destroy nothing.)
 */
static void logout_of_fallback_session(tess_strategy_t strategy)
{
    fixture_t *f = fixture_new(strategy);
    outcome_t old, o, bye;

    login_with(f->fallback, f->now, &old);
    memset(&o, 0, sizeof(o));
    assert_int_equal(check(f, old.cookie, &o), 0);
    memset(&bye, 0, sizeof(bye));
    tess_auth_logout_session(f->auth, &o.sess, on_auth, &bye);
    assert_int_equal(bye.calls, 1);
    assert_int_equal(bye.rc, 0);
    assert_int_equal(check(f, old.cookie, &o), TESS_EDENIED);
    assert_int_equal(inner_get(f->fb.inner, old.sess.id, &o), TESS_ENOTFOUND);
    tess_session_clear(&o.sess);
    tess_session_clear(&old.sess);
    fixture_free(f);
}

static void test_logout_of_fallback_session_db(void **state)
{
    (void)state;
    logout_of_fallback_session(TESS_STRATEGY_DB);
}

static void test_logout_of_fallback_session_jwt(void **state)
{
    (void)state;
    logout_of_fallback_session(TESS_STRATEGY_JWT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_only_in_fallback_is_copied_forward),
        cmocka_unit_test(test_in_neither_is_denied),
        cmocka_unit_test(test_forged_cookie_reaches_no_store),
        cmocka_unit_test(test_primary_outage_fails_closed),
        cmocka_unit_test(test_fallback_outage_fails_closed),
        cmocka_unit_test(test_async_stores_header_copied),
        cmocka_unit_test(test_release_with_fallback_in_flight),
        cmocka_unit_test(test_jwt_primary_db_fallback),
        cmocka_unit_test(test_logout_of_fallback_session_db),
        cmocka_unit_test(test_logout_of_fallback_session_jwt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
