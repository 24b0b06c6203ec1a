/*
 * Unit tests of single-flight (cache.h: tess_cache_flight_join / _done / _followers), alone and on many
 * threads, and through the cached strategy (auth.c): N concurrent misses for one session id cause one store
 * lookup, the followers being answered on their own loop through the loop's `post`.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tessera/auth.h"
#include "tessera/cache.h"
#include "tessera/error.h"
#include "tessera/loop.h"

#define NOW INT64_C(1700000000000)
#define DAY INT64_C(86400000)

/* A session `sid` of `user` with some app data (so that a copy has heap memory to get wrong). */
static void make(tess_session_t *s, const char *sid, const char *user)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", sid);
    snprintf(s->user_id, sizeof(s->user_id), "%s", user);
    memcpy(s->role, "visitor", 8);
    s->created_ms = NOW;
    s->expires_ms = NOW + DAY;
    s->absolute_expires_ms = NOW + 30 * DAY;
    s->extra_json = strdup("{\"theme\":\"dark\"}");
    assert_non_null(s->extra_json);
}

static tess_cache_t *new_cache(unsigned shards)
{
    tess_cache_opts_t o;
    tess_cache_t *c = NULL;
    tess_cache_opts_default(&o);
    o.shards = shards;
    assert_int_equal(tess_cache_new(&c, &o), 0);
    return c;
}

/* ---- one thread ------------------------------------------------------------------------------------------ */

/* What one follower saw. */
typedef struct seen {
    int calls;           /* deliveries */
    int rc;              /* last rc */
    int had_session;     /* last delivery came with a session */
    tess_session_t copy; /* the follower's own deep copy */
} seen_t;

static void deliver(void *arg, int rc, const tess_session_t *s)
{
    seen_t *w = arg;
    w->calls++;
    w->rc = rc;
    w->had_session = s != NULL;
    tess_session_clear(&w->copy);
    if (s != NULL) {
        /* `s` is borrowed for the call: read all of it now (ASan checks the memory), keep a deep copy. */
        assert_true(strlen(s->id) > 0);
        assert_non_null(s->extra_json);
        assert_string_equal(s->extra_json, "{\"theme\":\"dark\"}");
        assert_int_equal(tess_session_copy(&w->copy, s), 0);
    }
}

/* A leader's own deliver callback: never called. */
static void never(void *arg, int rc, const tess_session_t *s)
{
    (void)arg;
    (void)rc;
    (void)s;
    fail_msg("a leader was delivered to");
}

static void test_first_leads_later_follow(void **state)
{
    tess_cache_t *c = new_cache(16);
    tess_str_t key = TESS_STR_LIT("sid-1");
    seen_t w[3];
    tess_session_t s;
    (void)state;

    memset(w, 0, sizeof(w));
    assert_int_equal(tess_cache_flight_followers(c), 0);
    assert_int_equal(tess_cache_flight_join(c, key, never, NULL), 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tess_cache_flight_join(c, key, deliver, &w[i]), 0);
    assert_int_equal(tess_cache_flight_followers(c), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(w[i].calls, 0); /* nothing before the leader is done */

    make(&s, "sid-1", "user-1");
    tess_cache_flight_done(c, key, 0, &s);
    tess_session_clear(&s); /* the leader's copy is gone: the followers kept their own */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w[i].calls, 1);
        assert_int_equal(w[i].rc, 0);
        assert_true(w[i].had_session);
        assert_string_equal(w[i].copy.id, "sid-1");
        assert_string_equal(w[i].copy.user_id, "user-1");
        assert_string_equal(w[i].copy.extra_json, "{\"theme\":\"dark\"}");
        tess_session_clear(&w[i].copy);
    }

    /* The flight is gone: a second done delivers nothing, the next join leads again. */
    tess_cache_flight_done(c, key, TESS_EIO, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(w[i].calls, 1);
    assert_int_equal(tess_cache_flight_join(c, key, never, NULL), 1);
    tess_cache_flight_done(c, key, 0, NULL);
    assert_int_equal(tess_cache_flight_followers(c), 3);
    tess_cache_free(c);
}

static void test_error_and_no_session_delivered(void **state)
{
    tess_cache_t *c = new_cache(16);
    tess_str_t key = TESS_STR_LIT("unknown");
    seen_t w[2];
    (void)state;

    memset(w, 0, sizeof(w));
    assert_int_equal(tess_cache_flight_join(c, key, never, NULL), 1);
    assert_int_equal(tess_cache_flight_join(c, key, deliver, &w[0]), 0);
    assert_int_equal(tess_cache_flight_join(c, key, deliver, &w[1]), 0);
    tess_cache_flight_done(c, key, TESS_ENOTFOUND, NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(w[i].calls, 1);
        assert_int_equal(w[i].rc, TESS_ENOTFOUND);
        assert_false(w[i].had_session);
    }

    /* An outage is handed on as it is (the caller fails closed). */
    memset(w, 0, sizeof(w));
    assert_int_equal(tess_cache_flight_join(c, key, never, NULL), 1);
    assert_int_equal(tess_cache_flight_join(c, key, deliver, &w[0]), 0);
    tess_cache_flight_done(c, key, TESS_EUNAVAIL, NULL);
    assert_int_equal(w[0].calls, 1);
    assert_int_equal(w[0].rc, TESS_EUNAVAIL);
    assert_int_equal(w[1].calls, 0);
    tess_cache_free(c);
}

static void test_keys_independent(void **state)
{
    /* One shard: every key shares the flight list, so independence is the key comparison's job. */
    unsigned shard_counts[] = {1, 16};
    (void)state;

    for (size_t k = 0; k < sizeof(shard_counts) / sizeof(shard_counts[0]); k++) {
        tess_cache_t *c = new_cache(shard_counts[k]);
        tess_str_t a = TESS_STR_LIT("abc"), b = TESS_STR_LIT("abcd"), d = TESS_STR_LIT("abd");
        seen_t wa, wb, wd;
        tess_session_t sa, sb;

        memset(&wa, 0, sizeof(wa));
        memset(&wb, 0, sizeof(wb));
        memset(&wd, 0, sizeof(wd));
        assert_int_equal(tess_cache_flight_join(c, a, never, NULL), 1);
        assert_int_equal(tess_cache_flight_join(c, b, never, NULL), 1); /* a prefix match is not a match */
        assert_int_equal(tess_cache_flight_join(c, d, never, NULL), 1);
        assert_int_equal(tess_cache_flight_join(c, a, deliver, &wa), 0);
        assert_int_equal(tess_cache_flight_join(c, b, deliver, &wb), 0);
        assert_int_equal(tess_cache_flight_join(c, d, deliver, &wd), 0);

        make(&sb, "abcd", "user-b");
        tess_cache_flight_done(c, b, 0, &sb);
        tess_session_clear(&sb);
        assert_int_equal(wa.calls, 0);
        assert_int_equal(wb.calls, 1);
        assert_string_equal(wb.copy.user_id, "user-b");
        assert_int_equal(wd.calls, 0);

        make(&sa, "abc", "user-a");
        tess_cache_flight_done(c, a, 0, &sa);
        tess_session_clear(&sa);
        assert_int_equal(wa.calls, 1);
        assert_string_equal(wa.copy.user_id, "user-a");
        assert_int_equal(wb.calls, 1);
        assert_int_equal(wd.calls, 0);

        /* b is gone but d still flies. */
        assert_int_equal(tess_cache_flight_join(c, b, never, NULL), 1);
        assert_int_equal(tess_cache_flight_join(c, d, deliver, &wd), 0);
        tess_cache_flight_done(c, d, TESS_ENOTFOUND, NULL);
        assert_int_equal(wd.calls, 2); /* both of its joins */
        assert_int_equal(wd.rc, TESS_ENOTFOUND);
        tess_cache_flight_done(c, b, 0, NULL);
        assert_int_equal(wb.calls, 1);
        assert_int_equal(tess_cache_flight_followers(c), 4);

        tess_session_clear(&wa.copy);
        tess_session_clear(&wb.copy);
        tess_session_clear(&wd.copy);
        tess_cache_free(c);
    }
}

static void test_works_while_disabled(void **state)
{
    tess_cache_t *c = new_cache(16);
    tess_str_t key = TESS_STR_LIT("sid-off");
    seen_t w;
    (void)state;

    memset(&w, 0, sizeof(w));
    tess_cache_set_enabled(c, 0);
    assert_int_equal(tess_cache_flight_join(c, key, never, NULL), 1);
    assert_int_equal(tess_cache_flight_join(c, key, deliver, &w), 0);
    tess_cache_set_enabled(c, 1); /* a flush meanwhile does not drop the waiters */
    tess_cache_set_enabled(c, 0);
    tess_cache_flight_done(c, key, TESS_ENOTFOUND, NULL);
    assert_int_equal(w.calls, 1);
    tess_cache_free(c);
}

static void test_free_with_flight_open(void **state)
{
    /* A leader that never finishes: freeing the cache releases the waiters without delivering (ASan: no leak). */
    tess_cache_t *c = new_cache(4);
    seen_t w;
    (void)state;

    memset(&w, 0, sizeof(w));
    assert_int_equal(tess_cache_flight_join(c, TESS_STR_LIT("k"), never, NULL), 1);
    assert_int_equal(tess_cache_flight_join(c, TESS_STR_LIT("k"), deliver, &w), 0);
    tess_cache_free(c);
    assert_int_equal(w.calls, 0);
}

/* ---- threads --------------------------------------------------------------------------------------------- */

#define NTHREADS 8
#define JOINS_PER_ROUND 16 /* joins per thread per round */
#define ROUNDS 50
#define FREE_JOINS 5000 /* joins per thread in the free-running test */

typedef struct mt_slot {
    int delivered; /* deliveries to this join (atomic) */
    int rc;        /* rc delivered */
    int ok;        /* the session pointer read fine during the call */
} mt_slot_t;

typedef struct mt {
    tess_cache_t *cache;
    pthread_barrier_t barrier;
    int leaders;       /* joins that led (atomic) */
    int followers;     /* joins that followed (atomic) */
    int bad;           /* deliveries with unexpected contents (atomic) */
    mt_slot_t *slots;  /* one per join: NTHREADS * max joins */
    size_t per_thread; /* slots per thread */
} mt_t;

typedef struct mt_arg {
    mt_t *mt;
    int id; /* thread index */
} mt_arg_t;

static const tess_str_t mt_key = {"hot-session", 11};

static void mt_deliver(void *arg, int rc, const tess_session_t *s)
{
    mt_slot_t *slot = arg;
    int ok = rc == 0 && s != NULL && strcmp(s->id, "hot-session") == 0 && strcmp(s->user_id, "user-hot") == 0 &&
             s->extra_json != NULL && strcmp(s->extra_json, "{\"theme\":\"dark\"}") == 0;
    slot->rc = rc;
    slot->ok = ok;
    __atomic_add_fetch(&slot->delivered, 1, __ATOMIC_ACQ_REL);
}

/* The leader's lookup result: built on the leader's stack and gone right after done (followers must copy). */
static void mt_finish(mt_t *mt)
{
    tess_session_t s;
    make(&s, "hot-session", "user-hot");
    tess_cache_flight_done(mt->cache, mt_key, 0, &s);
    tess_session_clear(&s);
}

/*
 * Rounds: every thread joins JOINS_PER_ROUND times, then all wait at a barrier, then the round's leader
 * completes and all wait again. Each round has exactly one leader whatever the interleaving.
 */
static void *mt_rounds(void *p)
{
    mt_arg_t *a = p;
    mt_t *mt = a->mt;
    size_t n = 0;

    for (int r = 0; r < ROUNDS; r++) {
        int led = 0;
        for (int j = 0; j < JOINS_PER_ROUND; j++, n++) {
            mt_slot_t *slot = &mt->slots[(size_t)a->id * mt->per_thread + n];
            if (tess_cache_flight_join(mt->cache, mt_key, mt_deliver, slot)) {
                __atomic_add_fetch(&mt->leaders, 1, __ATOMIC_ACQ_REL);
                slot->delivered = -1000; /* a leader's slot must never see a delivery */
                led++;
            } else {
                __atomic_add_fetch(&mt->followers, 1, __ATOMIC_ACQ_REL);
            }
        }
        pthread_barrier_wait(&mt->barrier);
        if (led) {
            if (led != 1)
                __atomic_add_fetch(&mt->bad, 1, __ATOMIC_ACQ_REL);
            mt_finish(mt);
        }
        pthread_barrier_wait(&mt->barrier);
    }
    return NULL;
}

/* Free-running: join, and when leading complete at once; followers wait for whichever leader is current. */
static void *mt_free(void *p)
{
    mt_arg_t *a = p;
    mt_t *mt = a->mt;

    pthread_barrier_wait(&mt->barrier);
    for (size_t n = 0; n < FREE_JOINS; n++) {
        mt_slot_t *slot = &mt->slots[(size_t)a->id * mt->per_thread + n];
        if (tess_cache_flight_join(mt->cache, mt_key, mt_deliver, slot)) {
            __atomic_add_fetch(&mt->leaders, 1, __ATOMIC_ACQ_REL);
            slot->delivered = -1000;
            mt_finish(mt);
        } else {
            __atomic_add_fetch(&mt->followers, 1, __ATOMIC_ACQ_REL);
        }
    }
    return NULL;
}

static void mt_run(void *(*fn)(void *), size_t per_thread, int *leaders, int *followers)
{
    mt_t mt;
    mt_arg_t args[NTHREADS];
    pthread_t th[NTHREADS];
    size_t total = (size_t)NTHREADS * per_thread;
    int delivered_followers = 0;

    memset(&mt, 0, sizeof(mt));
    mt.cache = new_cache(16);
    mt.per_thread = per_thread;
    mt.slots = calloc(total, sizeof(*mt.slots));
    assert_non_null(mt.slots);
    assert_int_equal(pthread_barrier_init(&mt.barrier, NULL, NTHREADS), 0);
    for (int i = 0; i < NTHREADS; i++) {
        args[i].mt = &mt;
        args[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, fn, &args[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);

    assert_int_equal(mt.bad, 0);
    assert_int_equal((size_t)(mt.leaders + mt.followers), total);
    assert_int_equal(tess_cache_flight_followers(mt.cache), (uint64_t)mt.followers);
    for (size_t i = 0; i < total; i++) {
        if (mt.slots[i].delivered == -1000)
            continue;                               /* a leader */
        assert_int_equal(mt.slots[i].delivered, 1); /* every follower exactly once */
        assert_int_equal(mt.slots[i].rc, 0);
        assert_true(mt.slots[i].ok);
        delivered_followers++;
    }
    assert_int_equal(delivered_followers, mt.followers);
    /* Everything finished: the next join leads. */
    assert_int_equal(tess_cache_flight_join(mt.cache, mt_key, never, NULL), 1);
    tess_cache_flight_done(mt.cache, mt_key, 0, NULL);

    *leaders = mt.leaders;
    *followers = mt.followers;
    pthread_barrier_destroy(&mt.barrier);
    free(mt.slots);
    tess_cache_free(mt.cache);
}

static void test_threads_barrier_rounds(void **state)
{
    int leaders = 0, followers = 0;
    (void)state;
    mt_run(mt_rounds, (size_t)ROUNDS * JOINS_PER_ROUND, &leaders, &followers);
    assert_int_equal(leaders, ROUNDS); /* one backend lookup per round */
    assert_int_equal(followers, ROUNDS * (NTHREADS * JOINS_PER_ROUND - 1));
}

static void test_threads_free_running(void **state)
{
    int leaders = 0, followers = 0;
    (void)state;
    mt_run(mt_free, FREE_JOINS, &leaders, &followers);
    assert_true(leaders >= 1);
    assert_int_equal(leaders + followers, NTHREADS * FREE_JOINS);
}

/* ---- through the cached strategy ------------------------------------------------------------------------- */

/* A loop whose `post` queues the function (the only op auth.c uses); run_posted() plays the loop's turn. */
typedef struct fake_loop {
    tess_loop_t base; /* must be first */
    pthread_mutex_t lock;
    struct {
        tess_timer_cb fn;
        void *arg;
    } q[64];
    int n;     /* queued */
    int posts; /* post calls in all */
} fake_loop_t;

static void fake_post(tess_loop_t *loop, tess_timer_cb fn, void *arg)
{
    fake_loop_t *l = (fake_loop_t *)loop;
    pthread_mutex_lock(&l->lock);
    assert_true(l->n < 64);
    l->q[l->n].fn = fn;
    l->q[l->n].arg = arg;
    l->n++;
    l->posts++;
    pthread_mutex_unlock(&l->lock);
}

static const tess_loop_ops_t fake_loop_ops = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, fake_post};

static int run_posted(fake_loop_t *l)
{
    int ran = 0;
    for (;;) {
        tess_timer_cb fn;
        void *arg;
        pthread_mutex_lock(&l->lock);
        if (l->n == 0) {
            pthread_mutex_unlock(&l->lock);
            return ran;
        }
        fn = l->q[0].fn;
        arg = l->q[0].arg;
        memmove(&l->q[0], &l->q[1], sizeof(l->q[0]) * (size_t)(l->n - 1));
        l->n--;
        pthread_mutex_unlock(&l->lock);
        fn(arg);
        ran++;
    }
}

/* A store over the memory store that counts calls and, when `async`, answers gets only on fire() (like a
 * networked store answering from its loop). Other operations go straight through. */
typedef struct pending_get {
    char sid[TESS_SID_MAX + 1];
    tess_store_cb cb;
    void *arg;
} pending_get_t;

typedef struct astore {
    tess_store_t base;   /* must be first */
    tess_store_t *inner; /* memory store */
    int gets;            /* get calls that reached this store */
    int sets;            /* set calls */
    int async;           /* 1: queue gets */
    int fail_cb;         /* non-zero: answer gets with this rc */
    pending_get_t q[64]; /* queued gets */
    int nq;
} astore_t;

static void answer(astore_t *a, pending_get_t *p)
{
    if (a->fail_cb != 0)
        p->cb(p->arg, a->fail_cb, NULL);
    else
        assert_int_equal(tess_store_get(a->inner, tess_str(p->sid), p->cb, p->arg), 0);
}

static int fire(astore_t *a)
{
    pending_get_t q[64];
    int n = a->nq;
    memcpy(q, a->q, sizeof(q[0]) * (size_t)n);
    a->nq = 0;
    for (int i = 0; i < n; i++)
        answer(a, &q[i]);
    return n;
}

static int a_get(tess_store_t *st, tess_str_t sid, tess_store_cb cb, void *arg)
{
    astore_t *a = (astore_t *)st;
    pending_get_t local, *p = &local;
    a->gets++;
    if (a->async) {
        assert_true(a->nq < 64);
        p = &a->q[a->nq++];
    }
    memset(p, 0, sizeof(*p));
    assert_true(sid.len <= TESS_SID_MAX);
    memcpy(p->sid, sid.ptr, sid.len);
    p->cb = cb;
    p->arg = arg;
    if (!a->async)
        answer(a, p);
    return 0;
}
static int a_set(tess_store_t *st, const tess_session_t *s, tess_store_cb cb, void *arg)
{
    ((astore_t *)st)->sets++;
    return tess_store_set(((astore_t *)st)->inner, s, cb, arg);
}
static int a_touch(tess_store_t *st, tess_str_t sid, int64_t exp, tess_store_cb cb, void *arg)
{
    return tess_store_touch(((astore_t *)st)->inner, sid, exp, cb, arg);
}
static int a_destroy(tess_store_t *st, tess_str_t sid, tess_store_cb cb, void *arg)
{
    return tess_store_destroy(((astore_t *)st)->inner, sid, cb, arg);
}
static int a_destroy_user(tess_store_t *st, tess_str_t uid, tess_store_cb cb, void *arg)
{
    return tess_store_destroy_user(((astore_t *)st)->inner, uid, cb, arg);
}
static int a_ping(tess_store_t *st, tess_store_cb cb, void *arg)
{
    return tess_store_ping(((astore_t *)st)->inner, cb, arg);
}
static void a_close(tess_store_t *st)
{
    astore_t *a = (astore_t *)st;
    for (int i = 0; i < a->nq; i++) /* the store contract: pending callbacks get TESS_EUNAVAIL */
        a->q[i].cb(a->q[i].arg, TESS_EUNAVAIL, NULL);
    a->nq = 0;
}

static const tess_store_ops_t astore_ops = {"async-counting", a_get,          a_set,  a_touch,
                                            a_destroy,        a_destroy_user, a_ping, a_close};

typedef struct afix {
    tess_memstore_table_t *table;
    astore_t st;
    fake_loop_t loop;
    tess_secrets_t *secrets;
    tess_cache_t *cache;
    tess_auth_t *auth;
    int64_t now;
} afix_t;

typedef struct outcome {
    int calls;
    int rc;
    tess_session_t sess;
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

static afix_t *afix_new(void)
{
    afix_t *f = calloc(1, sizeof(*f));
    tess_auth_config_t cfg;

    assert_non_null(f);
    assert_int_equal(tess_memstore_table_new(&f->table), 0);
    assert_int_equal(tess_memstore_open(&f->st.inner, f->table), 0);
    f->st.base.ops = &astore_ops;
    f->loop.base.ops = &fake_loop_ops;
    assert_int_equal(pthread_mutex_init(&f->loop.lock, NULL), 0);
    assert_int_equal(tess_secrets_parse(&f->secrets, TESS_STR_LIT("flight-secret")), 0);
    f->cache = new_cache(16);
    memset(&cfg, 0, sizeof(cfg));
    cfg.strategy = TESS_STRATEGY_CACHED;
    cfg.secrets = f->secrets;
    tess_session_policy_default(&cfg.policy);
    cfg.store = &f->st.base;
    cfg.cache = f->cache;
    cfg.loop = &f->loop.base;
    assert_int_equal(tess_auth_new(&f->auth, &cfg), 0);
    f->now = tess_now_ms();
    return f;
}

static void afix_free(afix_t *f)
{
    a_close(&f->st.base);
    run_posted(&f->loop);
    tess_auth_free(f->auth);
    tess_store_close(f->st.inner);
    tess_memstore_table_free(f->table);
    tess_cache_free(f->cache);
    tess_secrets_free(f->secrets);
    pthread_mutex_destroy(&f->loop.lock);
    free(f);
}

/* What a login callback handed out: the session and the cookie value. */
typedef struct login_out {
    int calls;
    int rc;
    tess_session_t sess;
    char cookie[TESS_TOKEN_MAX];
} login_out_t;

static void on_login(void *arg, int rc, const tess_session_t *sess, tess_str_t cookie)
{
    login_out_t *o = arg;
    o->calls++;
    o->rc = rc;
    if (sess != NULL)
        assert_int_equal(tess_session_copy(&o->sess, sess), 0);
    assert_true(cookie.len < sizeof(o->cookie));
    memcpy(o->cookie, cookie.ptr != NULL ? cookie.ptr : "", cookie.len);
    o->cookie[cookie.len] = '\0';
}

/* Logs user-1 in (store answering at once) and writes "theme=dark; connect.sid=<cookie>" to `header`. */
static void afix_login(afix_t *f, char *header, size_t cap, tess_session_t *out)
{
    login_out_t o;

    memset(&o, 0, sizeof(o));
    tess_auth_login(f->auth, TESS_STR_LIT("user-1"), TESS_STR_LIT("visitor"), f->now, on_login, &o);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.rc, 0);
    *out = o.sess;
    snprintf(header, cap, "theme=dark; connect.sid=%s", o.cookie);
}

#define CONCURRENT 10

/* 10 checks of one cookie before the store answers: 1 get; all 10 get the session once the posts have run. */
static void test_auth_single_flight(void **state)
{
    afix_t *f = afix_new();
    outcome_t o[CONCURRENT];
    tess_session_t s;
    char header[TESS_TOKEN_MAX + 64];
    tess_auth_stats_t st;
    (void)state;

    afix_login(f, header, sizeof(header), &s);
    f->st.async = 1;
    memset(o, 0, sizeof(o));
    for (int i = 0; i < CONCURRENT; i++)
        tess_auth_check(f->auth, tess_str(header), f->now, on_auth, &o[i]);
    assert_int_equal(f->st.gets, 1);
    for (int i = 0; i < CONCURRENT; i++)
        assert_int_equal(o[i].calls, 0);
    assert_int_equal(tess_cache_flight_followers(f->cache), CONCURRENT - 1);

    assert_int_equal(fire(&f->st), 1);
    /* The leader answers from the store callback; the followers only once their loop runs the posts. */
    assert_int_equal(o[0].calls, 1);
    assert_int_equal(o[0].rc, 0);
    for (int i = 1; i < CONCURRENT; i++)
        assert_int_equal(o[i].calls, 0);
    assert_int_equal(f->loop.n, CONCURRENT - 1);
    assert_int_equal(run_posted(&f->loop), CONCURRENT - 1);
    for (int i = 0; i < CONCURRENT; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].rc, 0);
        assert_string_equal(o[i].sess.id, s.id);
        assert_string_equal(o[i].sess.user_id, "user-1");
        tess_session_clear(&o[i].sess);
    }
    assert_int_equal(f->st.gets, 1);
    tess_auth_get_stats(f->auth, &st);
    assert_int_equal(st.store_lookups, 1);
    assert_int_equal(st.checks, CONCURRENT);

    /* Now cached: ten more checks are near-cache hits, no store call, no post. */
    memset(o, 0, sizeof(o));
    for (int i = 0; i < CONCURRENT; i++) {
        tess_auth_check(f->auth, tess_str(header), f->now, on_auth, &o[i]);
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].rc, 0);
        tess_session_clear(&o[i].sess);
    }
    assert_int_equal(f->st.gets, 1);
    assert_int_equal(f->loop.n, 0);
    tess_session_clear(&s);
    afix_free(f);
}

/* Unknown id and store outage: one get, every caller gets the same answer (401 / 503). */
static void test_auth_single_flight_denied_and_outage(void **state)
{
    afix_t *f = afix_new();
    outcome_t o[CONCURRENT];
    char cookie[TESS_TOKEN_MAX], header[TESS_TOKEN_MAX + 64];
    size_t len = 0;
    int expect[2] = {TESS_EDENIED, TESS_EUNAVAIL};
    (void)state;

    f->st.async = 1;
    for (int round = 0; round < 2; round++) {
        const char *sid = round == 0 ? "unknown-session-id-0000000000000000000000000"
                                     : "outage-session-id-00000000000000000000000000";
        f->st.gets = 0;
        f->st.fail_cb = round == 0 ? 0 : TESS_EUNAVAIL;
        assert_int_equal(tess_cookie_sign(f->secrets, tess_str(sid), cookie, sizeof(cookie), &len), 0);
        snprintf(header, sizeof(header), "connect.sid=%s", cookie);
        memset(o, 0, sizeof(o));
        for (int i = 0; i < CONCURRENT; i++)
            tess_auth_check(f->auth, tess_str(header), f->now, on_auth, &o[i]);
        assert_int_equal(f->st.gets, 1);
        assert_int_equal(fire(&f->st), 1);
        run_posted(&f->loop);
        for (int i = 0; i < CONCURRENT; i++) {
            assert_int_equal(o[i].calls, 1);
            assert_int_equal(o[i].rc, expect[round]);
            assert_string_equal(o[i].sess.user_id, "");
        }
    }
    afix_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_leads_later_follow),
        cmocka_unit_test(test_error_and_no_session_delivered),
        cmocka_unit_test(test_keys_independent),
        cmocka_unit_test(test_works_while_disabled),
        cmocka_unit_test(test_free_with_flight_open),
        cmocka_unit_test(test_threads_barrier_rounds),
        cmocka_unit_test(test_threads_free_running),
        cmocka_unit_test(test_auth_single_flight),
        cmocka_unit_test(test_auth_single_flight_denied_and_outage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
