/* Unit tests of the memory store (store.h): contract, no resurrection, per-user index, sharing. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tessera/error.h"
#include "tessera/store.h"

#define HOUR INT64_C(3600000)

#include "store_result.h"

typedef struct fixture {
    tess_memstore_table_t *t; /* the shared table */
    tess_store_t *st;         /* one handle */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_int_equal(tess_memstore_table_new(&f->t), 0);
    assert_int_equal(tess_memstore_open(&f->st, f->t), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tess_store_close(f->st);
    tess_memstore_table_free(f->t);
    free(f);
    return 0;
}

static void make_session(tess_session_t *s, const char *user, int64_t now)
{
    tess_session_policy_t p;
    tess_session_policy_default(&p);
    assert_int_equal(tess_session_init(s, &p, tess_str(user), TESS_STR_LIT("visitor"), now), 0);
}

static void set_ok(tess_store_t *st, const tess_session_t *s)
{
    result_t r = {0};
    assert_int_equal(tess_store_set(st, s, on_result, &r), 0);
    assert_int_equal(r.calls, 1); /* synchronous */
    assert_int_equal(r.rc, 0);
}

static int get_rc(tess_store_t *st, const char *sid, result_t *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(tess_store_get(st, tess_str(sid), on_result, r), 0);
    assert_int_equal(r->calls, 1);
    return r->rc;
}

static void test_set_get(void **state)
{
    fixture_t *f = *state;
    tess_session_t s;
    result_t r = {0};
    int64_t now = tess_now_ms();

    make_session(&s, "alice", now);
    s.extra_json = strdup("{\"k\":1}");
    assert_string_equal(f->st->ops->name, "memory");
    set_ok(f->st, &s);
    assert_int_equal(get_rc(f->st, s.id, &r), 0);
    assert_string_equal(r.sess.id, s.id);
    assert_string_equal(r.sess.user_id, "alice");
    assert_string_equal(r.sess.extra_json, "{\"k\":1}");
    assert_int_equal(r.sess.expires_ms, s.expires_ms);
    tess_session_clear(&r.sess);
    assert_int_equal(get_rc(f->st, "nope", &r), TESS_ENOTFOUND);
    assert_null(r.sess.extra_json);

    /* replace, moving it to another user */
    memcpy(s.user_id, "bob", 4);
    set_ok(f->st, &s);
    assert_int_equal(get_rc(f->st, s.id, &r), 0);
    assert_string_equal(r.sess.user_id, "bob");
    tess_session_clear(&r.sess);

    assert_int_equal(f->st->stats.gets, 3);
    assert_int_equal(f->st->stats.writes, 2);
    assert_int_equal(f->st->stats.errors, 0);

    /* refused calls never call back */
    memset(&r, 0, sizeof(r));
    assert_int_equal(tess_store_get(f->st, TESS_STR_LIT(""), on_result, &r), TESS_EINVAL);
    assert_int_equal(tess_store_touch(f->st, TESS_STR_LIT(""), now, on_result, &r), TESS_EINVAL);
    assert_int_equal(tess_store_destroy_user(f->st, TESS_STR_LIT(""), on_result, &r), TESS_EINVAL);
    assert_int_equal(r.calls, 0);
    tess_session_clear(&s);
}

static void test_touch_no_resurrection(void **state)
{
    fixture_t *f = *state;
    tess_session_t s;
    result_t r = {0};
    int64_t now = tess_now_ms();

    make_session(&s, "alice", now);
    set_ok(f->st, &s);
    assert_int_equal(tess_store_touch(f->st, tess_str(s.id), now + 2 * HOUR, on_result, &r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(get_rc(f->st, s.id, &r), 0);
    assert_int_equal(r.sess.expires_ms, now + 2 * HOUR);
    tess_session_clear(&r.sess);

    /* destroyed: a late touch must not bring it back */
    memset(&r, 0, sizeof(r));
    assert_int_equal(tess_store_destroy(f->st, tess_str(s.id), on_result, &r), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(tess_store_touch(f->st, tess_str(s.id), now + 3 * HOUR, on_result, &r), 0);
    assert_int_equal(r.rc, TESS_ENOTFOUND);
    assert_int_equal(get_rc(f->st, s.id, &r), TESS_ENOTFOUND);
    /* destroying an absent session is fine */
    assert_int_equal(tess_store_destroy(f->st, tess_str(s.id), on_result, &r), 0);
    assert_int_equal(r.rc, 0);

    /* expired: invisible, untouchable */
    s.expires_ms = now - 1;
    set_ok(f->st, &s);
    assert_int_equal(get_rc(f->st, s.id, &r), TESS_ENOTFOUND);
    set_ok(f->st, &s);
    assert_int_equal(tess_store_touch(f->st, tess_str(s.id), now + HOUR, on_result, &r), 0);
    assert_int_equal(r.rc, TESS_ENOTFOUND);
    assert_int_equal(get_rc(f->st, s.id, &r), TESS_ENOTFOUND);
    assert_int_equal(f->st->stats.errors, 0); /* NOTFOUND is not an error */
    tess_session_clear(&s);
}

static void test_destroy_user(void **state)
{
    fixture_t *f = *state;
    tess_session_t a[3], b[2];
    result_t r = {0};
    int64_t now = tess_now_ms();

    for (int i = 0; i < 3; i++) {
        make_session(&a[i], "alice", now);
        set_ok(f->st, &a[i]);
    }
    for (int i = 0; i < 2; i++) {
        make_session(&b[i], "bob", now);
        set_ok(f->st, &b[i]);
    }
    assert_int_equal(tess_store_destroy_user(f->st, TESS_STR_LIT("alice"), on_result, &r), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(get_rc(f->st, a[i].id, &r), TESS_ENOTFOUND);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(get_rc(f->st, b[i].id, &r), 0);
        tess_session_clear(&r.sess);
    }
    /* unknown user: fine; then the index is reusable */
    assert_int_equal(tess_store_destroy_user(f->st, TESS_STR_LIT("alice"), on_result, &r), 0);
    assert_int_equal(r.rc, 0);
    set_ok(f->st, &a[0]);
    assert_int_equal(get_rc(f->st, a[0].id, &r), 0);
    tess_session_clear(&r.sess);
    assert_int_equal(tess_store_destroy(f->st, tess_str(b[0].id), on_result, &r), 0);
    assert_int_equal(tess_store_destroy_user(f->st, TESS_STR_LIT("bob"), on_result, &r), 0);
    assert_int_equal(get_rc(f->st, b[1].id, &r), TESS_ENOTFOUND);
    assert_int_equal(get_rc(f->st, a[0].id, &r), 0);
    tess_session_clear(&r.sess);
}

static void test_prune_and_many(void **state)
{
    fixture_t *f = *state;
    tess_session_t s;
    result_t r = {0};
    int64_t now = tess_now_ms();
    char ids[1000][TESS_SID_MAX + 1];

    /* enough entries to grow the tables several times; every other one already expired */
    for (int i = 0; i < 1000; i++) {
        char user[16];
        snprintf(user, sizeof(user), "u%d", i % 37);
        make_session(&s, user, now);
        if (i % 2)
            s.expires_ms = now - 1;
        set_ok(f->st, &s);
        memcpy(ids[i], s.id, sizeof(s.id));
    }
    assert_int_equal(tess_memstore_table_prune(f->t, now), 500);
    assert_int_equal(tess_memstore_table_prune(f->t, now), 0);
    for (int i = 0; i < 1000; i += 2) {
        assert_int_equal(get_rc(f->st, ids[i], &r), 0);
        tess_session_clear(&r.sess);
    }
    assert_int_equal(tess_store_ping(f->st, on_result, &r), 0);
    assert_int_equal(r.rc, 0);
    /* everything of user u0 goes, in one call */
    assert_int_equal(tess_store_destroy_user(f->st, TESS_STR_LIT("u0"), on_result, &r), 0);
    for (int i = 0; i < 1000; i += 2) {
        int rc = get_rc(f->st, ids[i], &r);
        assert_int_equal(rc, i % 37 == 0 ? TESS_ENOTFOUND : 0);
        tess_session_clear(&r.sess);
    }
    tess_session_clear(&s);
}

/* Several handles on one table, one per thread. */
typedef struct worker {
    tess_memstore_table_t *t; /* shared table */
    int n;                    /* worker index */
    int failures;             /* unexpected results */
    int rounds;               /* iterations completed (a worker that did nothing must not pass) */
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    tess_store_t *st;
    tess_session_t s;
    tess_session_policy_t p;
    result_t r = {0};
    char user[16];

    tess_session_policy_default(&p);
    snprintf(user, sizeof(user), "w%d", w->n);
    if (tess_memstore_open(&st, w->t) != 0) {
        w->failures++; /* a worker that cannot start is a failure, not a pass */
        return NULL;
    }
    for (int i = 0; i < 2000; i++) {
        if (tess_session_init(&s, &p, tess_str(user), TESS_STR_LIT("visitor"), tess_now_ms()) != 0)
            w->failures++;
        if (tess_store_set(st, &s, on_result, &r) != 0 || r.rc != 0)
            w->failures++;
        tess_store_get(st, tess_str(s.id), on_result, &r);
        if (r.rc != 0 || strcmp(r.sess.id, s.id) != 0)
            w->failures++;
        tess_store_touch(st, tess_str(s.id), s.expires_ms + 1, on_result, &r);
        if (r.rc != 0)
            w->failures++;
        if (i % 3 == 0)
            tess_store_destroy(st, tess_str(s.id), on_result, &r);
        if (i % 500 == 499)
            tess_store_destroy_user(st, tess_str(user), on_result, &r);
        tess_session_clear(&s);
        w->rounds++;
    }
    tess_session_clear(&r.sess);
    tess_store_close(st);
    return NULL;
}

static void test_threads(void **state)
{
    fixture_t *f = *state;
    pthread_t th[4];
    worker_t w[4];

    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){f->t, i, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
        assert_int_equal(w[i].rounds, 2000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_touch_no_resurrection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_and_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
