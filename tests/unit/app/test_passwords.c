/*
 * Unit tests of the passwords (src/app/passwords.c): argon2id hashing, verification on the worker pool with
 * the answer delivered on the submitting loop, the bounded queue and the input bounds.
 *
 * The library's poll loop (tessera/pollloop.h) has no `post` (it is single-threaded, for tools and tests), so
 * the answers are delivered through a minimal loop of this file: `post` queues under a mutex and writes a byte
 * to a pipe; the test thread polls the pipe and runs what was posted. `post` can also be held, which keeps a
 * worker busy at a known point (how the queue is filled deterministically).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "app/passwords.h"
#include "tessera/error.h"
#include "tessera/pollloop.h"

#include "strfill.h"

#define WAIT_MS 20000 /* argon2 at interactive cost is ~50 ms; far more under sanitizers */

/* ---- a loop with a thread-safe post --------------------------------------------------------------------- */

typedef struct posted {
    struct posted *next; /* FIFO link */
    tess_timer_cb fn;    /* what to run on the loop */
    void *arg;           /* its argument */
} posted_t;

typedef struct pipe_loop {
    tess_loop_t base;      /* first member */
    int fds[2];            /* wake-up pipe: [0] polled by the loop, [1] written by post */
    pthread_mutex_t mu;    /* guards everything below */
    pthread_cond_t cv;     /* signals posts_entered and hold changes */
    posted_t *head, *tail; /* posted, not yet run */
    int hold;              /* post waits while set */
    int posts_entered;     /* post calls begun */
} pipe_loop_t;

static void pl_post(tess_loop_t *loop, tess_timer_cb fn, void *arg)
{
    pipe_loop_t *l = (pipe_loop_t *)loop;
    posted_t *p = calloc(1, sizeof(*p));
    ssize_t n;

    if (p == NULL)
        abort(); /* a worker thread: no cmocka assertions here */
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_lock(&l->mu);
    l->posts_entered++;
    pthread_cond_broadcast(&l->cv);
    while (l->hold)
        pthread_cond_wait(&l->cv, &l->mu);
    if (l->tail != NULL)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    pthread_mutex_unlock(&l->mu);
    do
        n = write(l->fds[1], "x", 1);
    while (n < 0 && errno == EINTR);
    if (n != 1 && !(n < 0 && errno == EAGAIN)) /* a full pipe is awake already */
        abort();
}

static const tess_loop_ops_t pipe_loop_ops = {.post = pl_post}; /* app_pw_verify uses nothing else */

static void pl_init(pipe_loop_t *l)
{
    memset(l, 0, sizeof(*l));
    l->base.ops = &pipe_loop_ops;
    assert_int_equal(pipe2(l->fds, O_CLOEXEC | O_NONBLOCK), 0);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
}

static void pl_destroy(pipe_loop_t *l)
{
    assert_null(l->head); /* everything posted was run */
    close(l->fds[0]);
    close(l->fds[1]);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs what is posted, on this thread, until pred(arg) (returns 1) or timeout_ms pass (returns 0). */
static int pl_run_until(pipe_loop_t *l, int (*pred)(void *), void *arg, int64_t timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    char drain[64];

    while (!pred(arg)) {
        struct pollfd pfd = {.fd = l->fds[0], .events = POLLIN};
        int64_t left = deadline - mono_ms();
        posted_t *p;

        if (left <= 0)
            return 0;
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        while (read(l->fds[0], drain, sizeof(drain)) > 0)
            ;
        pthread_mutex_lock(&l->mu);
        p = l->head;
        l->head = l->tail = NULL;
        pthread_mutex_unlock(&l->mu);
        while (p != NULL) {
            posted_t *next = p->next;
            p->fn(p->arg);
            free(p);
            p = next;
        }
    }
    return 1;
}

/* Waits (on the condition, with a deadline) until `n` posts have begun. */
static void pl_wait_posts(pipe_loop_t *l, int n)
{
    struct timespec until;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&l->mu);
    while (l->posts_entered < n && rc == 0)
        rc = pthread_cond_timedwait(&l->cv, &l->mu, &until);
    pthread_mutex_unlock(&l->mu);
    assert_int_equal(rc, 0);
}

static void pl_set_hold(pipe_loop_t *l, int hold)
{
    pthread_mutex_lock(&l->mu);
    l->hold = hold;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* ---- answers -------------------------------------------------------------------------------------------- */

typedef struct answer {
    int calls;        /* callback invocations */
    int ok;           /* last answer */
    pthread_t thread; /* where it ran */
} answer_t;

static void on_answer(void *arg, int ok)
{
    answer_t *a = arg;
    a->calls++;
    a->ok = ok;
    a->thread = pthread_self();
}

typedef struct answers {
    answer_t *a; /* the answers waited for */
    int n;       /* their count */
} answers_t;

static int all_answered(void *arg)
{
    const answers_t *w = arg;
    for (int i = 0; i < w->n; ++i)
        if (w->a[i].calls == 0)
            return 0;
    return 1;
}

/* Runs the loop until every answer in a[0..n) has come; each must have come once, on this thread. */
static void wait_answers(pipe_loop_t *l, answer_t *a, int n)
{
    answers_t w = {a, n};
    assert_true(pl_run_until(l, all_answered, &w, WAIT_MS));
    for (int i = 0; i < n; ++i) {
        assert_int_equal(a[i].calls, 1);
        assert_true(pthread_equal(a[i].thread, pthread_self()));
    }
}

/* ---- tests ---------------------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0; /* app_pw_hash expects it, as the CLI does */
}

static void test_hash(void **state)
{
    char h1[crypto_pwhash_STRBYTES], h2[crypto_pwhash_STRBYTES], small[crypto_pwhash_STRBYTES - 1];
    (void)state;

    assert_int_equal(app_pw_hash("correct horse", h1, sizeof(h1)), 0);
    assert_int_equal(strncmp(h1, "$argon2id$", 10), 0);
    assert_true(strlen(h1) < sizeof(h1));
    assert_int_equal(crypto_pwhash_str_verify(h1, "correct horse", 13), 0);
    assert_int_equal(app_pw_hash("correct horse", h2, sizeof(h2)), 0);
    assert_string_not_equal(h1, h2); /* salted */
    assert_int_equal(app_pw_hash("correct horse", small, sizeof(small)), TESS_ENOSPACE);
}

static void test_verify(void **state)
{
    static char longest[1024 + 1];
    char hash[crypto_pwhash_STRBYTES];
    answer_t a[4];
    app_pwpool_t *pool = NULL;
    pipe_loop_t l;
    (void)state;

    strfill(longest, 'p', sizeof(longest) - 1);
    assert_int_equal(app_pw_hash("correct horse", hash, sizeof(hash)), 0);
    pl_init(&l);
    assert_int_equal(app_pwpool_new(&pool, 2, 8), 0);
    memset(a, 0, sizeof(a));

    assert_int_equal(app_pw_verify(pool, &l.base, hash, tess_str("correct horse"), on_answer, &a[0]), 0);
    assert_int_equal(app_pw_verify(pool, &l.base, hash, tess_str("correct horsf"), on_answer, &a[1]), 0);
    /* No user: the dummy hash is verified (same time), and the answer is no whatever the password. */
    assert_int_equal(app_pw_verify(pool, &l.base, NULL, tess_str("correct horse"), on_answer, &a[2]), 0);
    /* The longest password taken (checked against a hash it does not match: one argon2 run less). */
    assert_int_equal(app_pw_verify(pool, &l.base, hash, tess_str(longest), on_answer, &a[3]), 0);
    for (int i = 0; i < 4; ++i)
        assert_int_equal(a[i].calls, 0); /* answers come on the loop, never inside the call */
    wait_answers(&l, a, 4);
    assert_int_equal(a[0].ok, 1);
    assert_int_equal(a[1].ok, 0);
    assert_int_equal(a[2].ok, 0);
    assert_int_equal(a[3].ok, 0);

    app_pwpool_free(pool);
    pl_destroy(&l);
}

/* One worker, a queue of one: a job on the worker (held in post) and one queued fill it; the next is refused. */
static void test_queue_full(void **state)
{
    answer_t a[3];
    app_pwpool_t *pool = NULL;
    pipe_loop_t l;
    (void)state;

    pl_init(&l);
    assert_int_equal(app_pwpool_new(&pool, 1, 1), 0);
    memset(a, 0, sizeof(a));
    pl_set_hold(&l, 1);

    assert_int_equal(app_pw_verify(pool, &l.base, NULL, tess_str("a"), on_answer, &a[0]), 0);
    pl_wait_posts(&l, 1); /* the worker took it off the queue and is answering */
    assert_int_equal(app_pw_verify(pool, &l.base, NULL, tess_str("b"), on_answer, &a[1]), 0);
    assert_int_equal(app_pw_verify(pool, &l.base, NULL, tess_str("c"), on_answer, &a[2]), TESS_EUNAVAIL);

    pl_set_hold(&l, 0);
    wait_answers(&l, a, 2);
    assert_int_equal(a[2].calls, 0); /* refused: never called back */
    /* The queue drained: there is room again. */
    assert_int_equal(app_pw_verify(pool, &l.base, NULL, tess_str("d"), on_answer, &a[2]), 0);
    wait_answers(&l, &a[2], 1);

    app_pwpool_free(pool);
    pl_destroy(&l);
}

static int submit(app_pwpool_t *pool, pipe_loop_t *l, uint64_t owner, size_t owner_max, answer_t *a, uint64_t *id)
{
    app_pw_job_opts_t o = {.home = &l->base,
                           .password = tess_str("pw"),
                           .owner = owner,
                           .owner_max = owner_max,
                           .cb = on_answer,
                           .arg = a};
    return app_pw_submit(pool, &o, id);
}

/*
 * One worker held in post (its job counts as running): an owner's jobs queued or running are bounded; a queued
 * job can be cancelled (its callback never comes), a running one cannot; the counters say so.
 */
static void test_owner_bound_and_cancel(void **state)
{
    answer_t a[5];
    uint64_t id[5];
    app_pw_stats_t st;
    app_pwpool_t *pool = NULL;
    pipe_loop_t l;
    (void)state;

    pl_init(&l);
    assert_int_equal(app_pwpool_new(&pool, 1, 8), 0);
    memset(a, 0, sizeof(a));
    pl_set_hold(&l, 1);

    assert_int_equal(submit(pool, &l, 7, 2, &a[0], &id[0]), 0);
    pl_wait_posts(&l, 1); /* job 0 is on the worker */
    assert_int_equal(submit(pool, &l, 7, 2, &a[1], &id[1]), 0);
    assert_int_equal(submit(pool, &l, 7, 2, &a[2], &id[2]), TESS_EDENIED); /* one running, one queued */
    assert_int_equal(id[2], 0);
    assert_int_equal(submit(pool, &l, 9, 2, &a[3], &id[3]), 0); /* another owner */
    assert_int_not_equal(id[1], id[3]);

    assert_int_equal(app_pw_cancel(pool, id[1]), 1);
    assert_int_equal(app_pw_cancel(pool, id[1]), 0); /* gone already */
    assert_int_equal(app_pw_cancel(pool, id[0]), 0); /* running: its answer comes */
    assert_int_equal(app_pw_cancel(pool, 0), 0);
    app_pw_get_stats(pool, &st);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.owner_full, 1);
    assert_int_equal(st.queued, 1);
    assert_int_equal(submit(pool, &l, 7, 2, &a[2], &id[2]), 0); /* room again for owner 7 */
    assert_int_equal(submit(pool, &l, 0, 1, &a[4], &id[4]), 0); /* owner 0: no bound */

    pl_set_hold(&l, 0);
    {
        answer_t *wanted[] = {&a[0], &a[2], &a[3], &a[4]};
        for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); ++i)
            wait_answers(&l, wanted[i], 1);
    }
    assert_int_equal(a[1].calls, 0); /* cancelled: never called back */
    app_pw_get_stats(pool, &st);
    assert_int_equal(st.hashes, 4);
    assert_int_equal(st.queued, 0);

    app_pwpool_free(pool);
    pl_destroy(&l);
}

/*
 * Stopping with a full queue: the worker finishes the hash it is on, the jobs still queued are answered "no"
 * without being hashed (a stop must not wait for a queue of ~50 ms hashes), and every callback runs once.
 */
static void test_stop_answers_queued_jobs_without_hashing(void **state)
{
    enum { N = 12 };
    char hash[crypto_pwhash_STRBYTES];
    answer_t a[N];
    app_pwpool_t *pool = NULL;
    pipe_loop_t l;
    int hashed = 0;
    (void)state;

    assert_int_equal(app_pw_hash("correct horse", hash, sizeof(hash)), 0);
    pl_init(&l);
    assert_int_equal(app_pwpool_new(&pool, 1, N), 0);
    memset(a, 0, sizeof(a));
    for (int i = 0; i < N; ++i)
        assert_int_equal(app_pw_verify(pool, &l.base, hash, tess_str("correct horse"), on_answer, &a[i]), 0);
    app_pwpool_free(pool); /* at once: the worker is on its first hash (or about to start it) */
    wait_answers(&l, a, N);
    for (int i = 0; i < N; ++i)
        hashed += a[i].ok;
    /* Hashed, all N would say yes. Stopped, only the one under way (two if this thread was descheduled). */
    assert_true(hashed <= 2);
    pl_destroy(&l);
}

static void test_refusals(void **state)
{
    static char oversized[1024 + 2];
    char long_hash[crypto_pwhash_STRBYTES + 1];
    tess_poll_loop_t *poll_loop = tess_poll_loop_new();
    app_pwpool_t *pool = NULL;
    answer_t a = {0};
    pipe_loop_t l;
    (void)state;

    strfill(oversized, 'p', sizeof(oversized) - 1);
    strfill(long_hash, 'h', sizeof(long_hash) - 1);
    pl_init(&l);
    assert_non_null(poll_loop);
    assert_int_equal(app_pwpool_new(&pool, 1, 4), 0);

    assert_int_equal(app_pw_verify(pool, &l.base, NULL, tess_str(oversized), on_answer, &a), TESS_EINVAL);
    assert_int_equal(app_pw_verify(pool, &l.base, long_hash, tess_str("pw"), on_answer, &a), TESS_EINVAL);
    /* The library's poll loop cannot be reached from a worker: no post, refused up front. */
    assert_null(tess_poll_loop_base(poll_loop)->ops->post);
    assert_int_equal(app_pw_verify(pool, tess_poll_loop_base(poll_loop), NULL, tess_str("pw"), on_answer, &a),
                     TESS_EINVAL);
    assert_int_equal(a.calls, 0);

    app_pwpool_free(pool);
    app_pwpool_free(NULL);
    tess_poll_loop_free(poll_loop);
    assert_int_equal(l.posts_entered, 0);
    pl_destroy(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_owner_bound_and_cancel),
        cmocka_unit_test(test_stop_answers_queued_jobs_without_hashing),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
