/*
 * Unit tests of token revocation (tessera/revoke.h) against a real redis-server (tests/support/redis_server.h)
 * on the poll loop: the deny list, the per-user cut-off, the answers cache, and failing closed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "redis_server.h"
#include "tessera/cache.h"
#include "tessera/error.h"
#include "tessera/pollloop.h"
#include "tessera/revoke.h"

#define TIMEOUT_MS 300 /* per-command timeout in these tests */
#define MINUTE INT64_C(60000)

static tess_cache_t *C;      /* the answers cache (NULL in the tests of the bare lists) */
static tess_revoker_t *R;    /* with the cache */
static tess_revoker_t *BARE; /* without a cache: every check asks Redis */

typedef struct answer {
    int calls; /* callback invocations */
    int rc;    /* last rc */
} answer_t;

static void on_answer(void *arg, int rc)
{
    answer_t *a = arg;
    a->calls++;
    a->rc = rc;
}

static int answered(void *arg)
{
    return ((answer_t *)arg)->calls > 0;
}

static int wait_answer(answer_t *a)
{
    rs_run_until(L, answered, a, RS_WAIT_MS, "revoker callback");
    assert_int_equal(a->calls, 1);
    return a->rc;
}

static int check_rc(tess_revoker_t *r, const char *jti, const char *uid, int64_t iat_s)
{
    answer_t a = {0};
    tess_revoker_check(r, tess_str(jti), tess_str(uid), iat_s, tess_now_ms(), on_answer, &a);
    return wait_answer(&a);
}

static int deny_rc(tess_revoker_t *r, const char *jti, int64_t exp_ms)
{
    answer_t a = {0};
    tess_revoker_deny(r, tess_str(jti), exp_ms, on_answer, &a);
    return wait_answer(&a);
}

static int cut_rc(tess_revoker_t *r, const char *uid, int64_t cut_ms, int64_t keep_ms)
{
    answer_t a = {0};
    tess_revoker_cut(r, tess_str(uid), cut_ms, keep_ms, on_answer, &a);
    return wait_answer(&a);
}

static void evict(const char *key)
{
    tess_cache_evict(C, tess_str(key));
}

/* ---- fixture ------------------------------------------------------------------------------------------- */

static int setup(void **state)
{
    char err[256] = "";
    (void)state;
    rs_fresh(&RS);
    assert_int_equal(tess_cache_new(&C, NULL), 0);
    tess_revoker_opts_t o = {.url = RS.url, .timeout_ms = TIMEOUT_MS, .cache = C};
    assert_int_equal(tess_revoker_open(&R, tess_poll_loop_base(L), &o, err, sizeof(err)), 0);
    o.cache = NULL;
    assert_int_equal(tess_revoker_open(&BARE, tess_poll_loop_base(L), &o, err, sizeof(err)), 0);
    rs_cmd(&RS, "CONFIG RESETSTAT");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tess_revoker_free(R);
    tess_revoker_free(BARE);
    R = BARE = NULL;
    tess_cache_free(C);
    C = NULL;
    rs_loop_clean();
    return 0;
}

/* ---- tests --------------------------------------------------------------------------------------------- */

static void test_deny(void **state)
{
    int64_t now_s = tess_now_ms() / 1000;
    (void)state;

    assert_int_equal(check_rc(BARE, "jti-1", "alice", now_s), 0);
    assert_int_equal(deny_rc(BARE, "jti-1", tess_now_ms() + MINUTE), 0);
    long long pttl = rs_cmd_int(&RS, "PTTL tessera:deny:jti-1");
    assert_true(pttl > MINUTE - 2000 && pttl <= MINUTE); /* kept until the token's own expiry */
    assert_int_equal(check_rc(BARE, "jti-1", "alice", now_s), TESS_EREVOKED);
    assert_int_equal(check_rc(BARE, "jti-1", "bob", now_s + 100), TESS_EREVOKED); /* the token, whoever */
    assert_int_equal(check_rc(BARE, "jti-2", "alice", now_s), 0);                 /* only that token */

    /* a token already expired is still denied for a while (a clock a little behind) */
    assert_int_equal(deny_rc(BARE, "jti-3", tess_now_ms() - MINUTE), 0);
    pttl = rs_cmd_int(&RS, "PTTL tessera:deny:jti-3");
    assert_true(pttl > 0 && pttl <= 1000);
    assert_int_equal(check_rc(BARE, "jti-3", "alice", now_s), TESS_EREVOKED);
}

static void test_cut(void **state)
{
    int64_t t = tess_now_ms() / 1000; /* the cut-off's second */
    (void)state;

    assert_int_equal(cut_rc(BARE, "alice", t * 1000 + 500, MINUTE), 0);
    long long pttl = rs_cmd_int(&RS, "PTTL tessera:nbf:alice");
    assert_true(pttl > MINUTE - 2000 && pttl <= MINUTE);
    assert_int_equal(check_rc(BARE, "a-old", "alice", t - 3600), TESS_EREVOKED);
    assert_int_equal(check_rc(BARE, "a-before", "alice", t - 1), TESS_EREVOKED);
    assert_int_equal(check_rc(BARE, "a-same", "alice", t), TESS_EREVOKED); /* iat has second resolution */
    assert_int_equal(check_rc(BARE, "a-after", "alice", t + 1), 0);
    assert_int_equal(check_rc(BARE, "b-old", "bob", t - 3600), 0); /* another user */

    /* a later cut-off replaces the earlier one */
    assert_int_equal(cut_rc(BARE, "alice", (t + 10) * 1000, MINUTE), 0);
    assert_int_equal(check_rc(BARE, "a-after", "alice", t + 1), TESS_EREVOKED);
    assert_int_equal(check_rc(BARE, "a-later", "alice", t + 11), 0);
}

/* Answers are cached (positive and negative); evicting "d:<jti>" / "n:<uid>" sends the next check to Redis. */
static void test_answer_cache(void **state)
{
    int64_t t = tess_now_ms() / 1000;
    (void)state;

    assert_int_equal(check_rc(R, "j1", "alice", t), 0);
    assert_int_equal(rs_calls(&RS, "exists"), 1);
    assert_int_equal(rs_calls(&RS, "get"), 1);
    assert_int_equal(check_rc(R, "j1", "alice", t), 0);
    assert_int_equal(rs_calls(&RS, "exists"), 1); /* from the cache */
    assert_int_equal(rs_calls(&RS, "get"), 1);

    /* another instance denies j1: this one answers from its cache until the listener evicts "d:j1" */
    rs_cmd(&RS, "SET tessera:deny:j1 1 PX 60000");
    assert_int_equal(check_rc(R, "j1", "alice", t), 0);
    assert_int_equal(rs_calls(&RS, "exists"), 1);
    evict(TESS_REVOKE_DENY_TAG "j1");
    assert_int_equal(check_rc(R, "j1", "alice", t), TESS_EREVOKED);
    assert_int_equal(rs_calls(&RS, "exists"), 2);
    assert_int_equal(check_rc(R, "j1", "alice", t), TESS_EREVOKED); /* the positive answer is cached too */
    assert_int_equal(rs_calls(&RS, "exists"), 2);

    /* the cut-off's answer ("none") is cached per user: a new token of alice asks only about its jti */
    assert_int_equal(check_rc(R, "j2", "alice", t), 0);
    assert_int_equal(rs_calls(&RS, "exists"), 3);
    assert_int_equal(check_rc(R, "j2", "alice", t), 0);
    assert_int_equal(rs_calls(&RS, "exists"), 3);
    rs_cmd(&RS, "SET tessera:nbf:alice %lld PX 60000", (long long)(t + 5) * 1000);
    assert_int_equal(check_rc(R, "j2", "alice", t), 0); /* stale until evicted */
    long long gets = rs_calls(&RS, "get");
    evict(TESS_REVOKE_CUT_TAG "alice");
    assert_int_equal(check_rc(R, "j2", "alice", t), TESS_EREVOKED);
    assert_int_equal(rs_calls(&RS, "get"), gets + 1);
    assert_int_equal(check_rc(R, "j2", "alice", t + 6), 0); /* cached cut-off, later token */
    assert_int_equal(rs_calls(&RS, "get"), gets + 1);

    tess_cache_stats_t st;
    tess_cache_get_stats(C, &st);
    assert_true(st.hits + st.negative_hits > 0);
    assert_int_equal(st.invalidations, 2);
}

static void test_bad_ids(void **state)
{
    char big[200];
    answer_t a = {0};
    (void)state;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    /* a token that cannot be looked up is not honoured, at once and without Redis */
    tess_revoker_check(R, TESS_STR_LIT(""), TESS_STR_LIT("alice"), 1, tess_now_ms(), on_answer, &a);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.rc, TESS_EREVOKED);
    tess_revoker_check(R, tess_str(big), TESS_STR_LIT("alice"), 1, tess_now_ms(), on_answer, &a);
    assert_int_equal(a.rc, TESS_EREVOKED);
    tess_revoker_check(R, TESS_STR_LIT("j"), TESS_STR_LIT(""), 1, tess_now_ms(), on_answer, &a);
    assert_int_equal(a.rc, TESS_EREVOKED);
    tess_revoker_deny(R, TESS_STR_LIT(""), tess_now_ms() + MINUTE, on_answer, &a);
    assert_int_equal(a.rc, TESS_EINVAL);
    tess_revoker_cut(R, tess_str(big), tess_now_ms(), MINUTE, on_answer, &a);
    assert_int_equal(a.rc, TESS_EINVAL);
    assert_int_equal(a.calls, 5);
    assert_int_equal(rs_calls(&RS, "exists") + rs_calls(&RS, "set"), 0);
}

/* Redis down: checks and writes fail closed, nothing is cached from an outage, and it recovers. */
static void test_fail_closed(void **state)
{
    int64_t t = tess_now_ms() / 1000, t0;
    tess_cache_stats_t st;
    (void)state;

    assert_int_equal(deny_rc(R, "gone", tess_now_ms() + MINUTE), 0);
    rs_kill(&RS);
    t0 = tess_mono_ms();
    assert_int_equal(check_rc(R, "j-new", "alice", t), TESS_EUNAVAIL);
    assert_int_equal(check_rc(BARE, "j-new", "alice", t), TESS_EUNAVAIL);
    assert_int_equal(deny_rc(R, "j-new", tess_now_ms() + MINUTE), TESS_EUNAVAIL);
    assert_int_equal(cut_rc(R, "alice", tess_now_ms(), MINUTE), TESS_EUNAVAIL);
    assert_true(tess_mono_ms() - t0 < TIMEOUT_MS);
    tess_cache_get_stats(C, &st);
    assert_int_equal(st.entries, 0); /* no answer remembered from an outage */

    rs_start(&RS); /* empty again: the deny entry is gone with the old server */
    int64_t deadline = tess_mono_ms() + RS_WAIT_MS;
    while (check_rc(R, "j-new", "alice", t) != 0) {
        assert_true(tess_mono_ms() < deadline);
        tess_poll_loop_run_once(L, 20); /* the reconnect timer */
    }
    assert_int_equal(check_rc(R, "gone", "alice", t), 0);
}

/* A paused Redis: checks time out (TESS_ETIMEOUT) within the timeout, then recover. */
static void test_paused(void **state)
{
    int64_t t = tess_now_ms() / 1000, t0, took;
    (void)state;

    assert_int_equal(deny_rc(BARE, "j-denied", tess_now_ms() + MINUTE), 0);
    rs_pause(&RS);
    t0 = tess_mono_ms();
    assert_int_equal(check_rc(BARE, "j-denied", "alice", t), TESS_ETIMEOUT);
    took = tess_mono_ms() - t0;
    assert_true(took >= TIMEOUT_MS - 10 && took < TIMEOUT_MS + 500);
    rs_resume(&RS);
    int64_t deadline = tess_mono_ms() + RS_WAIT_MS;
    int rc;
    while ((rc = check_rc(BARE, "j-denied", "alice", t)) != TESS_EREVOKED) {
        assert_true(rc == TESS_EUNAVAIL || rc == TESS_ETIMEOUT); /* never "not revoked" */
        assert_true(tess_mono_ms() < deadline);
        tess_poll_loop_run_once(L, 20);
    }
}

static void test_open_refusals(void **state)
{
    tess_revoker_t *r = (tess_revoker_t *)&r;
    char err[256] = "", prefix[80];
    (void)state;

    tess_revoker_opts_t bad = {.url = "redis://:1"};
    assert_int_equal(tess_revoker_open(&r, tess_poll_loop_base(L), &bad, err, sizeof(err)), TESS_EINVAL);
    assert_null(r);
    assert_true(strlen(err) > 0);
    memset(prefix, 'p', sizeof(prefix) - 1);
    prefix[sizeof(prefix) - 1] = '\0';
    tess_revoker_opts_t longp = {.url = RS.url, .prefix = prefix};
    assert_int_equal(tess_revoker_open(&r, tess_poll_loop_base(L), &longp, err, sizeof(err)), TESS_EINVAL);
    assert_null(r);

    /* a custom prefix is used for both lists */
    tess_revoker_opts_t own = {.url = RS.url, .prefix = "rv:"};
    assert_int_equal(tess_revoker_open(&r, tess_poll_loop_base(L), &own, err, sizeof(err)), 0);
    assert_int_equal(deny_rc(r, "j", tess_now_ms() + MINUTE), 0);
    assert_int_equal(cut_rc(r, "u", tess_now_ms(), MINUTE), 0);
    assert_int_equal(rs_cmd_int(&RS, "EXISTS rv:deny:j rv:nbf:u"), 2);
    tess_revoker_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deny, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, rs_group_setup, rs_group_teardown);
}
