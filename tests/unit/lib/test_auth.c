/*
 * Unit tests of the strategies (auth.h), over a counting wrapper around the memory store that can also
 * answer late (queued callbacks, like a networked store) or fail (backend down).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tessera/auth.h"
#include "tessera/encoding.h"
#include "tessera/error.h"

#define SEC INT64_C(1000)
#define HOUR (3600 * SEC)
#define DAY (24 * HOUR)

/* ---- the counting / async / failing store ------------------------------------------------------------- */

#include "counting_store.h"

/* ---- fixture ------------------------------------------------------------------------------------------- */

typedef struct fixture {
    tess_memstore_table_t *table; /* backing table */
    cstore_t cs;                  /* counting wrapper */
    tess_secrets_t *secrets;      /* "s3cret,old" */
    tess_secrets_t *other;        /* an attacker's secret */
    tess_cache_t *cache;          /* near-cache */
    tess_jwt_t *jwt;              /* verifier */
    tess_auth_t *auth;            /* under test */
    int64_t now;                  /* test clock base (real time: the memory store filters on it) */
} fixture_t;

static fixture_t *fixture_new(tess_strategy_t strategy)
{
    fixture_t *f = calloc(1, sizeof(*f));
    tess_auth_config_t cfg;
    tess_cache_opts_t copts;

    assert_int_equal(tess_memstore_table_new(&f->table), 0);
    assert_int_equal(tess_memstore_open(&f->cs.inner, f->table), 0);
    f->cs.base.ops = &cstore_ops;
    assert_int_equal(tess_secrets_parse(&f->secrets, TESS_STR_LIT("s3cret, old")), 0);
    assert_int_equal(tess_secrets_parse(&f->other, TESS_STR_LIT("not-the-secret")), 0);
    tess_cache_opts_default(&copts);
    copts.ttl_ms = 2 * HOUR; /* longer than the touch interval: a touch can happen on a cache hit */
    assert_int_equal(tess_cache_new(&f->cache, &copts), 0);
    assert_int_equal(tess_jwt_new(&f->jwt, f->secrets, NULL), 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.strategy = strategy;
    cfg.secrets = f->secrets;
    tess_session_policy_default(&cfg.policy);
    cfg.store = &f->cs.base;
    cfg.cache = f->cache;
    cfg.jwt = f->jwt;
    assert_int_equal(tess_auth_new(&f->auth, &cfg), 0);
    f->now = tess_now_ms();
    return f;
}

static void fixture_free(fixture_t *f)
{
    c_close(&f->cs.base);
    tess_auth_free(f->auth);
    tess_store_close(f->cs.inner);
    tess_memstore_table_free(f->table);
    tess_cache_free(f->cache);
    tess_jwt_free(f->jwt);
    tess_secrets_free(f->secrets);
    tess_secrets_free(f->other);
    free(f);
}

static void login(fixture_t *f, outcome_t *o, int64_t now)
{
    memset(o, 0, sizeof(*o));
    tess_auth_login(f->auth, TESS_STR_LIT("user-1"), TESS_STR_LIT("visitor"), now, on_auth, o);
    if (f->cs.async)
        fire(&f->cs);
    assert_int_equal(o->calls, 1);
    assert_int_equal(o->rc, 0);
    assert_true(o->cookie[0] != '\0');
}

/* Runs a check with Cookie header "<name>=<value>" (sync store) and returns its rc. */
static int check(fixture_t *f, const char *value, int64_t now, outcome_t *o)
{
    char header[8192];
    tess_str_t name = tess_auth_cookie_name(f->auth);
    snprintf(header, sizeof(header), "theme=dark; %.*s=%s; other=1", (int)name.len, name.ptr, value);
    tess_session_clear(&o->sess);
    memset(o, 0, sizeof(*o));
    tess_auth_check(f->auth, tess_str(header), now, on_auth, o);
    assert_int_equal(o->calls, 1);
    return o->rc;
}

typedef struct result_unused {
    int calls; /* invocations */
} result_unused_t;

static void on_unused(void *arg, int rc, const tess_session_t *sess)
{
    (void)rc;
    (void)sess;
    ((result_unused_t *)arg)->calls++;
}

static void clear_outcome(outcome_t *o)
{
    tess_session_clear(&o->sess);
}

/* ---- tests --------------------------------------------------------------------------------------------- */

static void test_config(void **state)
{
    tess_auth_config_t cfg;
    tess_auth_t *a = (tess_auth_t *)1;
    tess_strategy_t s;
    fixture_t *f = fixture_new(TESS_STRATEGY_DB);
    (void)state;

    assert_true(tess_str_eq(tess_auth_cookie_name(f->auth), TESS_STR_LIT("connect.sid")));
    cfg = *tess_auth_config(f->auth);
    assert_int_equal(cfg.policy.ttl_s, 30 * 86400);
    cfg.store = NULL;
    assert_int_equal(tess_auth_new(&a, &cfg), TESS_EINVAL);
    assert_null(a);
    cfg.strategy = TESS_STRATEGY_CACHED;
    cfg.store = &f->cs.base;
    cfg.cache = NULL;
    assert_int_equal(tess_auth_new(&a, &cfg), TESS_EINVAL);
    cfg.strategy = TESS_STRATEGY_JWT;
    cfg.jwt = NULL;
    assert_int_equal(tess_auth_new(&a, &cfg), TESS_EINVAL);
    cfg.jwt = f->jwt;
    cfg.cookie_name = TESS_STR_LIT("");
    assert_int_equal(tess_auth_new(&a, &cfg), 0);
    assert_true(tess_str_eq(tess_auth_cookie_name(a), TESS_STR_LIT("session-token")));
    tess_auth_free(a);
    cfg.cookie_name = TESS_STR_LIT("sid");
    assert_int_equal(tess_auth_new(&a, &cfg), 0);
    assert_true(tess_str_eq(tess_auth_cookie_name(a), TESS_STR_LIT("sid")));
    tess_auth_free(a);

    assert_int_equal(tess_strategy_parse(TESS_STR_LIT("cached"), &s), 0);
    assert_int_equal(s, TESS_STRATEGY_CACHED);
    assert_int_equal(tess_strategy_parse(TESS_STR_LIT("redis"), &s), 0);
    assert_int_equal(s, TESS_STRATEGY_REDIS);
    assert_int_equal(tess_strategy_parse(TESS_STR_LIT("jwt"), &s), 0);
    assert_int_equal(tess_strategy_parse(TESS_STR_LIT("db"), &s), 0);
    assert_int_equal(s, TESS_STRATEGY_DB);
    assert_int_equal(tess_strategy_parse(TESS_STR_LIT("dbx"), &s), TESS_EINVAL);
    assert_string_equal(tess_strategy_name(TESS_STRATEGY_JWT), "jwt");
    assert_string_equal(tess_strategy_name(TESS_STRATEGY_CACHED), "cached");
    fixture_free(f);
}

/* Forged, garbage, unsigned, oversized and wrong-secret cookies: DENIED with zero store (and cache) calls. */
static void early_rejects(tess_strategy_t strategy)
{
    fixture_t *f = fixture_new(strategy);
    outcome_t o = {0};
    tess_auth_stats_t st;
    tess_cache_stats_t cst;
    char sid[TESS_ID_LEN + 1], forged[TESS_SIGNED_COOKIE_MAX], tampered[TESS_SIGNED_COOKIE_MAX];
    char *huge = malloc(6000);
    size_t n = 0;
    int rejects = 0;

    assert_int_equal(tess_id_new(sid), 0);
    assert_int_equal(tess_cookie_sign(f->other, tess_str(sid), forged, sizeof(forged), &n), 0);
    assert_int_equal(tess_cookie_sign(f->secrets, tess_str(sid), tampered, sizeof(tampered), &n), 0);
    tampered[n - 1] = tampered[n - 1] == 'A' ? 'B' : 'A';
    memcpy(huge, "s%3A", 4);
    memset(huge + 4, 'a', 5000);
    huge[5004] = '\0';

    const char *bad[] = {forged, tampered, "garbage", sid, "s%3A", "s:", "s%3A.", "s%3Aabc.", "%", "s%3A%ZZ.x", huge};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(check(f, bad[i], f->now, &o), TESS_EDENIED);
        rejects++;
    }
    /* no cookie at all */
    memset(&o, 0, sizeof(o));
    tess_auth_check(f->auth, TESS_STR_LIT(""), f->now, on_auth, &o);
    assert_int_equal(o.rc, TESS_EDENIED);
    tess_auth_check(f->auth, TESS_STR_LIT("connect.sidx=1; session-tokenx=2"), f->now, on_auth, &o);
    assert_int_equal(o.rc, TESS_EDENIED);
    assert_int_equal(o.calls, 2);
    rejects += 2;

    assert_int_equal(total_calls(&f->cs), 0);
    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.checks, rejects);
    assert_int_equal(st.rejected_early, rejects);
    assert_int_equal(st.store_lookups, 0);
    tess_cache_get_stats(f->cache, &cst);
    assert_int_equal(cst.hits + cst.misses + cst.negative_hits, 0);
    clear_outcome(&o);
    free(huge);
    fixture_free(f);
}

static void test_early_reject_db(void **state)
{
    (void)state;
    early_rejects(TESS_STRATEGY_DB);
}

static void test_early_reject_cached(void **state)
{
    (void)state;
    early_rejects(TESS_STRATEGY_CACHED);
}

static void test_early_reject_jwt(void **state)
{
    (void)state;
    early_rejects(TESS_STRATEGY_JWT);
}

static void test_db_flow(void **state)
{
    fixture_t *f = fixture_new(TESS_STRATEGY_DB);
    outcome_t lo, o = {0};
    tess_auth_stats_t st;
    char sid[TESS_SID_MAX + 1];
    (void)state;

    login(f, &lo, f->now);
    assert_int_equal(f->cs.calls[OP_SET], 1);
    assert_string_equal(lo.sess.user_id, "user-1");
    assert_string_equal(lo.sess.role, "visitor");
    assert_int_equal(strncmp(lo.cookie, "s%3A", 4), 0);
    memcpy(sid, lo.sess.id, sizeof(sid));

    for (int i = 0; i < 3; i++) {
        assert_int_equal(check(f, lo.cookie, f->now + i, &o), 0);
        assert_string_equal(o.sess.id, sid);
        assert_string_equal(o.sess.user_id, "user-1");
    }
    assert_int_equal(f->cs.calls[OP_GET], 3); /* db: every check asks the store */
    /* the raw "s:<sid>.<sig>" form (not URL-encoded) is accepted too */
    {
        char raw[TESS_SIGNED_COOKIE_MAX];
        size_t n = 0;
        assert_int_equal(tess_url_decode(tess_str(lo.cookie), raw, sizeof(raw), &n), 0);
        assert_int_equal(check(f, raw, f->now, &o), 0);
    }

    /* past the idle expiry (the store, on the real clock, would still answer): DENIED */
    assert_int_equal(check(f, lo.cookie, f->now + 7 * DAY, &o), TESS_EDENIED);

    /* logout: store destroy; later checks DENIED */
    memset(&o, 0, sizeof(o));
    tess_auth_logout(f->auth, tess_str(sid), on_auth, &o);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, 0);
    assert_int_equal(f->cs.calls[OP_DESTROY], 1);
    assert_int_equal(check(f, lo.cookie, f->now, &o), TESS_EDENIED);
    /* logout of a malformed id */
    memset(&o, 0, sizeof(o));
    tess_auth_logout(f->auth, TESS_STR_LIT("not valid!"), on_auth, &o);
    assert_int_equal(o.rc, TESS_EINVAL);

    /* login refuses bad input */
    memset(&o, 0, sizeof(o));
    tess_auth_login(f->auth, TESS_STR_LIT(""), TESS_STR_LIT("visitor"), f->now, on_auth, &o);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, TESS_EINVAL);

    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.store_lookups, 6);
    assert_int_equal(st.rejected_early, 0);
    clear_outcome(&o);
    clear_outcome(&lo);
    fixture_free(f);
}

static void test_cached_flow(void **state)
{
    fixture_t *f = fixture_new(TESS_STRATEGY_CACHED);
    outcome_t lo, o = {0};
    tess_cache_stats_t cst;
    (void)state;

    login(f, &lo, f->now);
    assert_int_equal(check(f, lo.cookie, f->now, &o), 0);
    assert_int_equal(f->cs.calls[OP_GET], 1); /* miss -> store */
    for (int i = 1; i <= 100; i++)
        assert_int_equal(check(f, lo.cookie, f->now + i, &o), 0);
    assert_string_equal(o.sess.user_id, "user-1");
    assert_int_equal(f->cs.calls[OP_GET], 1); /* hits: no store call */
    tess_cache_get_stats(f->cache, &cst);
    assert_int_equal(cst.hits, 100);

    /* logout evicts: the next check goes to the store, finds nothing, and remembers that */
    memset(&o, 0, sizeof(o));
    tess_auth_logout(f->auth, tess_str(lo.sess.id), on_auth, &o);
    assert_int_equal(o.rc, 0);
    assert_int_equal(check(f, lo.cookie, f->now, &o), TESS_EDENIED);
    assert_int_equal(f->cs.calls[OP_GET], 2);
    assert_int_equal(check(f, lo.cookie, f->now, &o), TESS_EDENIED);
    assert_int_equal(f->cs.calls[OP_GET], 2); /* negative hit */
    tess_cache_get_stats(f->cache, &cst);
    assert_int_equal(cst.negative_hits, 1);
    assert_true(cst.invalidations >= 1);
    clear_outcome(&o);
    clear_outcome(&lo);
    fixture_free(f);
}

static void touch_throttled(tess_strategy_t strategy)
{
    fixture_t *f = fixture_new(strategy);
    outcome_t lo, o = {0};
    tess_auth_stats_t st;
    int64_t t1;

    login(f, &lo, f->now);
    /* 1000 checks spread over the first touch interval: not one write */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(check(f, lo.cookie, f->now + (HOUR - 1) * i / 999, &o), 0);
    assert_int_equal(f->cs.calls[OP_TOUCH], 0);
    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.touches, 0);

    /* one check after the interval: exactly one touch, and the session handed out carries the new expiry */
    t1 = f->now + HOUR;
    assert_int_equal(check(f, lo.cookie, t1, &o), 0);
    assert_int_equal(f->cs.calls[OP_TOUCH], 1);
    assert_int_equal(o.sess.expires_ms, t1 + 7 * DAY);
    /* ... and the next ones see the moved expiry (cache or store) and do not touch again */
    for (int i = 1; i <= 100; i++) {
        assert_int_equal(check(f, lo.cookie, t1 + i * SEC, &o), 0);
        assert_int_equal(o.sess.expires_ms, t1 + 7 * DAY);
    }
    assert_int_equal(f->cs.calls[OP_TOUCH], 1);
    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.touches, 1);
    /* the store has it too */
    assert_int_equal(check(f, lo.cookie, t1 + 2 * HOUR, &o), 0);
    assert_int_equal(f->cs.calls[OP_TOUCH], 2);
    clear_outcome(&o);
    clear_outcome(&lo);
    fixture_free(f);
}

static void test_touch_throttled_db(void **state)
{
    (void)state;
    touch_throttled(TESS_STRATEGY_DB);
}

static void test_touch_throttled_cached(void **state)
{
    (void)state;
    touch_throttled(TESS_STRATEGY_CACHED);
}

static void test_jwt(void **state)
{
    fixture_t *f = fixture_new(TESS_STRATEGY_JWT);
    outcome_t lo, o = {0};
    tess_auth_stats_t st;
    (void)state;

    login(f, &lo, f->now);
    assert_int_equal(strlen(lo.sess.id), TESS_ID_LEN);
    assert_int_equal(lo.sess.expires_ms, (f->now / 1000 + 30 * 86400) * 1000);
    assert_int_equal(check(f, lo.cookie, f->now + HOUR, &o), 0);
    assert_string_equal(o.sess.id, lo.sess.id); /* id = jti */
    assert_string_equal(o.sess.user_id, "user-1");
    assert_string_equal(o.sess.role, "visitor");
    /* expired token */
    assert_int_equal(check(f, lo.cookie, f->now + 31 * DAY, &o), TESS_EDENIED);
    /* tampered token */
    lo.cookie[strlen(lo.cookie) - 2] ^= 1;
    assert_int_equal(check(f, lo.cookie, f->now, &o), TESS_EDENIED);
    /* logout: nothing stored */
    memset(&o, 0, sizeof(o));
    tess_auth_logout(f->auth, tess_str(lo.sess.id), on_auth, &o);
    assert_int_equal(o.rc, 0);

    assert_int_equal(total_calls(&f->cs), 0);
    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.store_lookups, 0);
    assert_int_equal(st.touches, 0);
    clear_outcome(&o);
    clear_outcome(&lo);
    fixture_free(f);
}

static void test_async_store(void **state)
{
    fixture_t *f = fixture_new(TESS_STRATEGY_CACHED);
    outcome_t lo, o[3];
    char header[TESS_TOKEN_MAX + 64];
    (void)state;

    f->cs.async = 1;
    login(f, &lo, f->now); /* fires the queued set */
    snprintf(header, sizeof(header), "connect.sid=%s", lo.cookie);

    /* three checks in flight at once: none answered before the store answers */
    memset(o, 0, sizeof(o));
    for (int i = 0; i < 3; i++)
        tess_auth_check(f->auth, tess_str(header), f->now, on_auth, &o[i]);
    for (int i = 0; i < 3; i++)
        assert_int_equal(o[i].calls, 0);
    assert_int_equal(fire(&f->cs), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].rc, 0);
        assert_string_equal(o[i].sess.id, lo.sess.id);
    }
    /* now cached: answered at once */
    tess_auth_check(f->auth, tess_str(header), f->now, on_auth, &o[0]);
    assert_int_equal(o[0].calls, 2);
    assert_int_equal(f->cs.calls[OP_GET], 3);

    /* a lookup in flight while the user logs out must not put the session back into the cache */
    tess_cache_flush(f->cache);
    memset(o, 0, sizeof(o));
    tess_auth_check(f->auth, tess_str(header), f->now, on_auth, &o[0]); /* queued get (finds the row) */
    assert_int_equal(o[0].calls, 0);
    tess_auth_logout(f->auth, tess_str(lo.sess.id), on_auth, &o[1]); /* evicts now; queued destroy */
    f->cs.async = 0;
    /* the get is answered first (with the still-stored row), then the destroy */
    assert_int_equal(fire(&f->cs), 2);
    assert_int_equal(o[0].rc, 0);
    assert_int_equal(o[1].rc, 0);
    assert_int_equal(check(f, lo.cookie, f->now, &o[2]), TESS_EDENIED); /* not a stale cache hit */
    assert_int_equal(f->cs.calls[OP_GET], 5);

    /* closing the store answers what is pending with EUNAVAIL (never a session) */
    clear_outcome(&lo);
    login(f, &lo, f->now);
    snprintf(header, sizeof(header), "connect.sid=%s", lo.cookie);
    f->cs.async = 1;
    memset(o, 0, sizeof(o));
    tess_auth_check(f->auth, tess_str(header), f->now, on_auth, &o[0]);
    tess_auth_check(f->auth, tess_str(header), f->now, on_auth, &o[1]);
    assert_int_equal(o[0].calls, 0);
    /* the server may release its tess_auth_t before closing the store: completions still work */
    tess_auth_free(f->auth);
    f->auth = NULL;
    c_close(&f->cs.base);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].rc, TESS_EUNAVAIL);
        assert_int_equal(o[i].sess.id[0], 0);
    }
    for (int i = 0; i < 3; i++)
        clear_outcome(&o[i]);
    clear_outcome(&lo);
    fixture_free(f);
}

/* A touch answered late with NOTFOUND (the session was destroyed meanwhile) drops the refreshed cached copy. */
static void test_async_touch_of_gone_session(void **state)
{
    fixture_t *f = fixture_new(TESS_STRATEGY_CACHED);
    outcome_t lo, o = {0};
    result_unused_t unused = {0};
    (void)state;

    login(f, &lo, f->now);
    assert_int_equal(check(f, lo.cookie, f->now, &o), 0); /* cached */
    f->cs.async = 1;
    assert_int_equal(check(f, lo.cookie, f->now + HOUR, &o), 0); /* hit; touch queued, cached copy refreshed */
    assert_int_equal(f->cs.calls[OP_TOUCH], 1);
    assert_int_equal(o.sess.expires_ms, f->now + HOUR + 7 * DAY);
    /* destroyed behind tessera's back (another process), then the touch is answered */
    assert_int_equal(tess_store_destroy(f->cs.inner, tess_str(lo.sess.id), on_unused, &unused), 0);
    f->cs.async = 0;
    assert_int_equal(fire(&f->cs), 1);
    assert_int_equal(check(f, lo.cookie, f->now + HOUR, &o), TESS_EDENIED);
    assert_int_equal(f->cs.calls[OP_GET], 2);
    clear_outcome(&o);
    clear_outcome(&lo);
    fixture_free(f);
}

static void unavailable(tess_strategy_t strategy)
{
    fixture_t *f = fixture_new(strategy);
    outcome_t lo, o = {0};

    login(f, &lo, f->now);
    /* the store refuses to start */
    f->cs.fail_start = TESS_EUNAVAIL;
    assert_int_equal(check(f, lo.cookie, f->now, &o), TESS_EUNAVAIL);
    assert_null(o.sess.extra_json);
    assert_int_equal(o.sess.id[0], 0);
    /* the store starts, then fails */
    f->cs.fail_start = 0;
    f->cs.fail_cb = TESS_EUNAVAIL;
    assert_int_equal(check(f, lo.cookie, f->now, &o), TESS_EUNAVAIL);
    f->cs.fail_cb = TESS_ETIMEOUT;
    assert_int_equal(check(f, lo.cookie, f->now, &o), TESS_ETIMEOUT);
    /* an outage is not remembered as "unknown": back up, the session is there */
    f->cs.fail_cb = 0;
    assert_int_equal(check(f, lo.cookie, f->now, &o), 0);
    /* login and logout report the outage too */
    f->cs.fail_cb = TESS_EUNAVAIL;
    memset(&o, 0, sizeof(o));
    tess_auth_login(f->auth, TESS_STR_LIT("u2"), TESS_STR_LIT("agent"), f->now, on_auth, &o);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, TESS_EUNAVAIL);
    assert_int_equal(o.cookie[0], 0);
    f->cs.fail_cb = 0;
    f->cs.fail_start = TESS_EUNAVAIL;
    memset(&o, 0, sizeof(o));
    tess_auth_logout(f->auth, tess_str(lo.sess.id), on_auth, &o);
    assert_int_equal(o.rc, TESS_EUNAVAIL);
    clear_outcome(&o);
    clear_outcome(&lo);
    fixture_free(f);
}

static void test_unavailable_db(void **state)
{
    (void)state;
    unavailable(TESS_STRATEGY_DB);
}

static void test_unavailable_cached(void **state)
{
    (void)state;
    unavailable(TESS_STRATEGY_CACHED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_early_reject_db),
        cmocka_unit_test(test_early_reject_cached),
        cmocka_unit_test(test_early_reject_jwt),
        cmocka_unit_test(test_db_flow),
        cmocka_unit_test(test_cached_flow),
        cmocka_unit_test(test_touch_throttled_db),
        cmocka_unit_test(test_touch_throttled_cached),
        cmocka_unit_test(test_jwt),
        cmocka_unit_test(test_async_store),
        cmocka_unit_test(test_async_touch_of_gone_session),
        cmocka_unit_test(test_unavailable_db),
        cmocka_unit_test(test_unavailable_cached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
