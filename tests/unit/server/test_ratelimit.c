/*
 * Unit tests of the abuse tables (src/server/ratelimit.c): the failure counter (window, lock-out, refunds,
 * clearing), the message rate (GCRA: burst, then one per interval), the keyed hash, the bounded size under a
 * flood of new keys (a key being guessed at outlives the flood), and many threads on one table (the TSan run
 * checks its locking).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "server/ratelimit.h"
#include "tessera/error.h"

#define T0 INT64_C(1000000)

static const rl_fail_policy_t three = {3, 60000, 10000}; /* 3 attempts a minute, then 10 s locked out */

static void test_fail_window_and_lockout(void **state)
{
    rl_table_t *t = NULL;
    uint64_t k;
    (void)state;

    assert_int_equal(rl_new(&t, 1024), 0);
    k = rl_key(t, "alice", 5);
    assert_int_equal(rl_fail_take(t, k, &three, T0), 0);
    assert_int_equal(rl_fail_take(t, k, &three, T0 + 1), 0);
    assert_int_equal(rl_fail_take(t, k, &three, T0 + 2), 0); /* the third runs, and locks */
    assert_int_equal(rl_fail_take(t, k, &three, T0 + 3), 10000 - 1);
    assert_int_equal(rl_fail_take(t, k, &three, T0 + 5000), 10000 - 4998); /* refused: not counted */
    /* The lock-out ends: a new window. */
    assert_int_equal(rl_fail_take(t, k, &three, T0 + 2 + 10000), 0);
    assert_int_equal(rl_fail_take(t, k, &three, T0 + 2 + 10001), 0);
    /* A window passes without reaching the bound: counting starts again. */
    assert_int_equal(rl_fail_take(t, k, &three, T0 + 2 + 10000 + 60000), 0);
    assert_int_equal(rl_fail_take(t, k, &three, T0 + 2 + 10000 + 60001), 0);
    assert_int_equal(rl_fail_take(t, k, &three, T0 + 2 + 10000 + 60002), 0);
    assert_true(rl_fail_take(t, k, &three, T0 + 2 + 10000 + 60003) > 0);
    /* Another key is not affected. */
    assert_int_equal(rl_fail_take(t, rl_key(t, "bob", 3), &three, T0 + 2 + 10000 + 60003), 0);
    rl_free(t);
}

static void test_fail_give_and_clear(void **state)
{
    rl_table_t *t = NULL;
    uint64_t k;
    (void)state;

    assert_int_equal(rl_new(&t, 1024), 0);
    k = rl_key(t, "carol", 5);
    for (int i = 0; i < 3; ++i)
        assert_int_equal(rl_fail_take(t, k, &three, T0), 0);
    assert_true(rl_fail_take(t, k, &three, T0) > 0);
    /* The attempt that locked was never tried: taking it back unlocks. */
    rl_fail_give(t, k, &three);
    assert_int_equal(rl_fail_take(t, k, &three, T0), 0);
    assert_true(rl_fail_take(t, k, &three, T0) > 0);
    /* A success forgets everything, lock-out included. */
    rl_fail_clear(t, k);
    for (int i = 0; i < 3; ++i)
        assert_int_equal(rl_fail_take(t, k, &three, T0), 0);
    /* Giving back a key never seen, or too often, is harmless. */
    rl_fail_give(t, rl_key(t, "never", 5), &three);
    rl_fail_clear(t, rl_key(t, "never", 5));
    rl_free(t);
}

static void test_rate(void **state)
{
    rl_table_t *t = NULL;
    uint64_t k;
    (void)state;

    assert_int_equal(rl_new(&t, 64), 0);
    k = rl_key(t, "7", 1);
    for (int i = 0; i < 5; ++i) /* a burst of 5 */
        assert_int_equal(rl_rate_take(t, k, 1000, 5, T0), 0);
    assert_int_equal(rl_rate_take(t, k, 1000, 5, T0), 1000);
    assert_int_equal(rl_rate_take(t, k, 1000, 5, T0 + 400), 600); /* refused: not counted */
    assert_int_equal(rl_rate_take(t, k, 1000, 5, T0 + 1000), 0);  /* one per second, sustained */
    assert_int_equal(rl_rate_take(t, k, 1000, 5, T0 + 1000), 1000);
    /* Idle long enough, the whole burst is back. */
    for (int i = 0; i < 5; ++i)
        assert_int_equal(rl_rate_take(t, k, 1000, 5, T0 + 100000), 0);
    assert_true(rl_rate_take(t, k, 1000, 5, T0 + 100000) > 0);
    rl_free(t);
}

static void test_keys(void **state)
{
    rl_table_t *a = NULL, *b = NULL, *c = NULL;
    (void)state;

    assert_int_equal(rl_new(&a, 16), 0);
    assert_int_equal(rl_new(&b, 16), 0);
    assert_int_equal(rl_key(a, "alice", 5), rl_key(a, "alice", 5));
    assert_int_not_equal(rl_key(a, "alice", 5), rl_key(a, "alicf", 5));
    assert_int_not_equal(rl_key(a, "alice", 5), rl_key(b, "alice", 5)); /* each table has its own key */
    assert_int_not_equal(rl_key(a, "", 0), 0);
    assert_int_equal(rl_new(&c, 8), TESS_EINVAL); /* too small */
    assert_null(c);
    assert_int_equal(rl_new(&c, ((size_t)1 << 24) + 1), TESS_EINVAL); /* too large */
    rl_free(a);
    rl_free(b);
    rl_free(NULL);
}

/* A flood of fresh keys (one failure each) into a small table: the key locked out stays locked. */
static void test_flood_keeps_the_guessed_key(void **state)
{
    rl_table_t *t = NULL;
    uint64_t victim;
    char name[32];
    (void)state;

    assert_int_equal(rl_new(&t, 64), 0);
    victim = rl_key(t, "victim", 6);
    for (int i = 0; i < 3; ++i)
        assert_int_equal(rl_fail_take(t, victim, &three, T0), 0);
    for (int i = 0; i < 100000; ++i) {
        int n = snprintf(name, sizeof(name), "flood-%d", i);
        assert_int_equal(rl_fail_take(t, rl_key(t, name, (size_t)n), &three, T0 + 1), 0);
    }
    assert_true(rl_fail_take(t, victim, &three, T0 + 2) > 0);
    assert_true(rl_evictions(t) >= 100000 - 64); /* the table stayed its size: the flood evicted itself */
    rl_free(t);
}

typedef struct hammer {
    rl_table_t *t; /* shared */
    int id;        /* thread number */
    int allowed;   /* attempts of the shared key that were counted */
} hammer_t;

static void *hammer_run(void *p)
{
    hammer_t *h = p;
    uint64_t shared = rl_key(h->t, "shared", 6);
    const rl_fail_policy_t many = {1000, 60000, 60000};
    for (int i = 0; i < 20000; ++i) {
        char name[32];
        int n = snprintf(name, sizeof(name), "t%d-%d", h->id, i % 500);
        if (rl_fail_take(h->t, shared, &many, T0) == 0)
            h->allowed++;
        rl_fail_take(h->t, rl_key(h->t, name, (size_t)n), &many, T0);
        rl_rate_take(h->t, rl_key(h->t, name, (size_t)n), 10, 100, T0 + i);
    }
    return NULL;
}

/* Four threads on one table: the shared key lets exactly its bound through, whatever the interleaving. */
static void test_threads(void **state)
{
    rl_table_t *t = NULL;
    pthread_t tid[4];
    hammer_t h[4];
    int allowed = 0;
    (void)state;

    assert_int_equal(rl_new(&t, 4096), 0);
    for (int i = 0; i < 4; ++i) {
        h[i] = (hammer_t){t, i, 0};
        assert_int_equal(pthread_create(&tid[i], NULL, hammer_run, &h[i]), 0);
    }
    for (int i = 0; i < 4; ++i) {
        pthread_join(tid[i], NULL);
        allowed += h[i].allowed;
    }
    assert_int_equal(allowed, 1000);
    rl_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_window_and_lockout),
        cmocka_unit_test(test_fail_give_and_clear),
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_flood_keeps_the_guessed_key),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
