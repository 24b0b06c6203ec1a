/*
 * Unit tests of what the strategy table answers (auth.h): names, what each strategy needs, the two queries
 * callers use instead of comparing strategies (tess_auth_keeps_sessions, tess_auth_can_revoke_everywhere),
 * and tess_auth_get_stats() read from another thread while the owning thread counts.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tessera/auth.h"
#include "tessera/encoding.h"
#include "tessera/error.h"

static const tess_strategy_t all[] = {TESS_STRATEGY_DB, TESS_STRATEGY_REDIS, TESS_STRATEGY_JWT, TESS_STRATEGY_CACHED};

typedef struct fixture {
    tess_memstore_table_t *table; /* backing table */
    tess_store_t *store;          /* memory store */
    tess_secrets_t *secrets;      /* signs cookies and tokens */
    tess_cache_t *cache;          /* near-cache */
    tess_jwt_t *jwt;              /* verifier */
    /*
     * Stands in for a revoker: tess_auth_new() and the queries only look at whether one is configured, and
     * these tests never check, log out or log out everywhere through it (so it is never dereferenced).
     */
    char not_a_revoker;
} fixture_t;

static fixture_t *fixture_new(void)
{
    fixture_t *f = calloc(1, sizeof(*f));
    tess_cache_opts_t copts;

    assert_non_null(f);
    assert_int_equal(tess_memstore_table_new(&f->table), 0);
    assert_int_equal(tess_memstore_open(&f->store, f->table), 0);
    assert_int_equal(tess_secrets_parse(&f->secrets, TESS_STR_LIT("table-secret")), 0);
    tess_cache_opts_default(&copts);
    assert_int_equal(tess_cache_new(&f->cache, &copts), 0);
    assert_int_equal(tess_jwt_new(&f->jwt, f->secrets, NULL), 0);
    return f;
}

static void fixture_free(fixture_t *f)
{
    tess_store_close(f->store);
    tess_memstore_table_free(f->table);
    tess_cache_free(f->cache);
    tess_jwt_free(f->jwt);
    tess_secrets_free(f->secrets);
    free(f);
}

/* A configuration of `strategy` with every component wired in (the revoker only when `revoker`). */
static tess_auth_config_t config(fixture_t *f, tess_strategy_t strategy, int revoker)
{
    tess_auth_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.strategy = strategy;
    cfg.secrets = f->secrets;
    tess_session_policy_default(&cfg.policy);
    cfg.store = f->store;
    cfg.cache = f->cache;
    cfg.jwt = f->jwt;
    cfg.revoker = revoker ? (tess_revoker_t *)(void *)&f->not_a_revoker : NULL;
    return cfg;
}

static void test_names_round_trip(void **state)
{
    tess_strategy_t s;
    (void)state;

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        const char *name = tess_strategy_name(all[i]);
        assert_string_not_equal(name, "unknown");
        assert_int_equal(tess_strategy_parse(tess_str(name), &s), 0);
        assert_int_equal(s, all[i]);
    }
    assert_string_equal(tess_strategy_name(TESS_STRATEGY_DB), "db");
    assert_string_equal(tess_strategy_name(TESS_STRATEGY_REDIS), "redis");
    assert_string_equal(tess_strategy_name((tess_strategy_t)42), "unknown");
    assert_int_equal(tess_strategy_parse(TESS_STR_LIT(""), &s), TESS_EINVAL);
    assert_int_equal(tess_strategy_parse(TESS_STR_LIT("JWT"), &s), TESS_EINVAL);
    assert_int_equal(tess_strategy_parse(TESS_STR_LIT("cache"), &s), TESS_EINVAL);
}

/* Each strategy refuses a configuration without what it needs, and only that. */
static void test_what_each_needs(void **state)
{
    fixture_t *f = fixture_new();
    tess_auth_config_t cfg;
    tess_auth_t *a = NULL;
    (void)state;

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        int stored = all[i] != TESS_STRATEGY_JWT;
        cfg = config(f, all[i], 0);
        cfg.secrets = NULL;
        assert_int_equal(tess_auth_new(&a, &cfg), TESS_EINVAL);
        assert_null(a);
        cfg = config(f, all[i], 0);
        cfg.store = NULL;
        assert_int_equal(tess_auth_new(&a, &cfg), stored ? TESS_EINVAL : 0);
        tess_auth_free(a);
        cfg = config(f, all[i], 0);
        cfg.jwt = NULL;
        assert_int_equal(tess_auth_new(&a, &cfg), stored ? 0 : TESS_EINVAL);
        tess_auth_free(a);
        cfg = config(f, all[i], 0);
        cfg.cache = NULL;
        assert_int_equal(tess_auth_new(&a, &cfg), all[i] == TESS_STRATEGY_CACHED ? TESS_EINVAL : 0);
        tess_auth_free(a);
        cfg = config(f, all[i], 0);
        cfg.policy.touch_interval_s = -1;
        assert_int_equal(tess_auth_new(&a, &cfg), TESS_EINVAL);
        /* Only the cached strategy keeps the near-cache it was given. */
        cfg = config(f, all[i], 0);
        assert_int_equal(tess_auth_new(&a, &cfg), 0);
        if (all[i] == TESS_STRATEGY_CACHED)
            assert_ptr_equal(tess_auth_config(a)->cache, f->cache);
        else
            assert_null(tess_auth_config(a)->cache);
        tess_auth_free(a);
    }
    cfg = config(f, (tess_strategy_t)42, 0);
    assert_int_equal(tess_auth_new(&a, &cfg), TESS_EINVAL);
    assert_null(a);
    fixture_free(f);
}

static void test_keeps_sessions_and_can_revoke(void **state)
{
    fixture_t *f = fixture_new();
    (void)state;

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        for (int revoker = 0; revoker <= 1; revoker++) {
            tess_auth_config_t cfg = config(f, all[i], revoker);
            int stored = all[i] != TESS_STRATEGY_JWT;
            tess_auth_t *a;
            assert_int_equal(tess_auth_new(&a, &cfg), 0);
            assert_int_equal(tess_auth_keeps_sessions(a), stored);
            /* stores always can; tokens only with a revoker */
            assert_int_equal(tess_auth_can_revoke_everywhere(a), stored || revoker);
            tess_auth_free(a);
        }
    }
    fixture_free(f);
}

/* A migration logs out in both strategies: both must be able to, for the answer to be 1. */
static void test_can_revoke_with_fallback(void **state)
{
    static const struct {
        tess_strategy_t primary, fallback; /* the strategy moved to, the one moved away from */
        int revoker;                       /* both have a revoker */
        int can;                           /* expected */
    } cases[] = {
        {TESS_STRATEGY_DB, TESS_STRATEGY_JWT, 0, 0}, /* tokens nobody can revoke outlive a logout everywhere */
        {TESS_STRATEGY_DB, TESS_STRATEGY_JWT, 1, 1},
        {TESS_STRATEGY_JWT, TESS_STRATEGY_DB, 0, 0}, /* the new tokens decide */
        {TESS_STRATEGY_JWT, TESS_STRATEGY_DB, 1, 1},
        {TESS_STRATEGY_CACHED, TESS_STRATEGY_REDIS, 0, 1}, /* stores always can */
    };
    fixture_t *f = fixture_new();
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tess_auth_config_t cfg = config(f, cases[i].fallback, cases[i].revoker);
        tess_auth_t *fb, *a;
        assert_int_equal(tess_auth_new(&fb, &cfg), 0);
        cfg = config(f, cases[i].primary, cases[i].revoker);
        cfg.fallback = fb;
        assert_int_equal(tess_auth_new(&a, &cfg), 0);
        assert_int_equal(tess_auth_keeps_sessions(a), cases[i].primary != TESS_STRATEGY_JWT);
        assert_int_equal(tess_auth_can_revoke_everywhere(a), cases[i].can);
        tess_auth_free(a);
        tess_auth_free(fb);
    }
    fixture_free(f);
}

/* ---- stats from another thread ------------------------------------------------------------------------- */

#define ROUNDS 20000

typedef struct reader {
    const tess_auth_t *auth; /* read, never written, by this thread */
    _Atomic int stop;        /* set by the owning thread when it is done counting */
    tess_auth_stats_t last;  /* the last snapshot */
    long snapshots;          /* snapshots taken */
    int went_back;           /* a counter was seen to decrease */
} reader_t;

static void *read_stats(void *arg)
{
    reader_t *r = arg;
    tess_auth_stats_t st;
    while (!atomic_load(&r->stop) || r->snapshots == 0) {
        tess_auth_get_stats(r->auth, &st);
        if (st.checks < r->last.checks || st.rejected_early < r->last.rejected_early ||
            st.store_lookups < r->last.store_lookups)
            r->went_back = 1;
        r->last = st;
        r->snapshots++;
    }
    return NULL;
}

typedef struct answer {
    int calls; /* callbacks */
    int rc;    /* last rc */
} answer_t;

static void on_answer(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    answer_t *a = arg;
    (void)s;
    (void)cookie;
    a->calls++;
    a->rc = rc;
}

static void test_stats_from_another_thread(void **state)
{
    fixture_t *f = fixture_new();
    tess_auth_config_t cfg = config(f, TESS_STRATEGY_DB, 0);
    tess_auth_stats_t st;
    char sid[TESS_ID_LEN + 1], cookie[TESS_SIGNED_COOKIE_MAX], header[TESS_SIGNED_COOKIE_MAX + 32];
    size_t n = 0;
    reader_t r;
    pthread_t th;
    answer_t ans = {0};
    tess_auth_t *a;
    (void)state;

    assert_int_equal(tess_auth_new(&a, &cfg), 0);
    /* A validly signed cookie of a session nobody has: every check is a store lookup answering 401. */
    assert_int_equal(tess_id_new(sid), 0);
    assert_int_equal(tess_cookie_sign(f->secrets, tess_str(sid), cookie, sizeof(cookie), &n), 0);
    snprintf(header, sizeof(header), "connect.sid=%s", cookie);

    memset(&r, 0, sizeof(r));
    r.auth = a;
    atomic_init(&r.stop, 0);
    assert_int_equal(pthread_create(&th, NULL, read_stats, &r), 0);
    for (int i = 0; i < ROUNDS; i++) {
        /* one early reject, one store lookup */
        tess_auth_check(a, TESS_STR_LIT("connect.sid=garbage"), tess_now_ms(), on_answer, &ans);
        tess_auth_check(a, tess_str(header), tess_now_ms(), on_answer, &ans);
    }
    atomic_store(&r.stop, 1);
    assert_int_equal(pthread_join(th, NULL), 0);

    assert_int_equal(ans.calls, 2 * ROUNDS);
    assert_int_equal(ans.rc, TESS_EDENIED);
    tess_auth_get_stats(a, &st);
    assert_int_equal(st.checks, 2 * ROUNDS);
    assert_int_equal(st.rejected_early, ROUNDS);
    assert_int_equal(st.store_lookups, ROUNDS);
    assert_true(r.snapshots > 0);
    assert_false(r.went_back);
    assert_true(r.last.checks <= st.checks);
    assert_true(r.last.store_lookups <= st.store_lookups);
    tess_auth_free(a);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_what_each_needs),
        cmocka_unit_test(test_keeps_sessions_and_can_revoke),
        cmocka_unit_test(test_can_revoke_with_fallback),
        cmocka_unit_test(test_stats_from_another_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
