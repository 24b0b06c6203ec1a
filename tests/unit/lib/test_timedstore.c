/* Unit tests of the timing store view (store.h, tess_timedstore_open) over the memory store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tessera/error.h"
#include "tessera/store.h"

#include "store_result.h"

typedef struct fixture {
    tess_memstore_table_t *t; /* the table */
    tess_store_t *inner;      /* a memory store handle */
    tess_store_t *timed;      /* the view over it */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tess_memstore_table_new(&f->t), 0);
    assert_int_equal(tess_memstore_open(&f->inner, f->t), 0);
    assert_int_equal(tess_timedstore_open(&f->timed, f->inner), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tess_store_close(f->inner);
    tess_store_close(f->timed); /* after the inner store, as the contract says */
    tess_memstore_table_free(f->t);
    free(f);
    return 0;
}

static uint64_t count_of(const tess_store_t *timed, tess_latency_t *l)
{
    uint64_t n = 0;
    memset(l, 0, sizeof(*l));
    tess_timedstore_latency(timed, l);
    for (int i = 0; i <= TESS_LATENCY_BUCKETS; ++i)
        n += l->n[i];
    return n;
}

/* get, set, touch, destroy are each timed once and answered as the inner store answers. */
static void test_timed_calls_pass_through(void **state)
{
    fixture_t *f = *state;
    tess_session_policy_t p;
    tess_session_t s;
    tess_latency_t l;
    result_t r = {0};
    int64_t now = tess_now_ms();

    tess_session_policy_default(&p);
    assert_int_equal(tess_session_init(&s, &p, TESS_STR_LIT("u1"), TESS_STR_LIT("visitor"), now), 0);
    assert_int_equal(count_of(f->timed, &l), 0);

    assert_int_equal(tess_store_set(f->timed, &s, on_result, &r), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, 0);
    assert_int_equal(tess_store_get(f->timed, tess_str(s.id), on_result, &r), 0);
    assert_int_equal(r.calls, 2);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.sess.user_id, "u1");
    assert_int_equal(tess_store_touch(f->timed, tess_str(s.id), s.expires_ms + 1000, on_result, &r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(tess_store_destroy(f->timed, tess_str(s.id), on_result, &r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(tess_store_get(f->timed, tess_str(s.id), on_result, &r), 0);
    assert_int_equal(r.rc, TESS_ENOTFOUND);
    assert_int_equal(r.calls, 5);
    assert_int_equal(count_of(f->timed, &l), 5);
    assert_true(l.sum_ns > 0);
    /* The inner store did the work and kept its own counters. */
    tess_store_stats_t st;
    tess_store_get_stats(f->inner, &st);
    assert_int_equal(st.gets, 2);

    /* Untimed calls pass through without an observation. */
    assert_int_equal(tess_store_ping(f->timed, on_result, &r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(count_of(f->timed, &l), 5);
    tess_session_clear(&s);
    tess_session_clear(&r.sess);
}

/* Many calls reuse the view's records (no growth per call; ASan would see a leak or a use after free). */
static void test_many_calls(void **state)
{
    fixture_t *f = *state;
    tess_latency_t l;
    result_t r = {0};
    for (int i = 0; i < 1000; ++i)
        assert_int_equal(tess_store_get(f->timed, TESS_STR_LIT("nope"), on_result, &r), 0);
    assert_int_equal(r.calls, 1000);
    assert_int_equal(r.rc, TESS_ENOTFOUND);
    assert_int_equal(count_of(f->timed, &l), 1000);
    tess_session_clear(&r.sess);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_timed_calls_pass_through, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_calls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
