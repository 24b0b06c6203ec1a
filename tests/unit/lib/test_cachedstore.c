/*
 * Unit tests of the L2 composite store (tess_cachedstore_open, tessera/redis.h): Redis cache-aside in front of
 * the memory store, against a real redis-server (tests/support/redis_server.h) on the poll loop. Hits and
 * misses, write-back with NX, tombstones, the epoch, and Redis outages (the inner store answers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "redis/rconn.h"
#include "store_result.h"
#include "redis_server.h" /* after store_result.h: its store helpers */
#include "tessera/error.h"
#include "tessera/pollloop.h"
#include "tessera/redis.h"
#include "tessera/store.h"

#define HOUR INT64_C(3600000)
#define TIMEOUT_MS 300 /* per-command timeout of the L2 connection in these tests */
#define COPY_TTL_MS 300000

/*
 * The inner store: the memory store, counting gets, that can hold a get's answer (read from the table at
 * call time) until late_release(): a reader slower than a concurrent logout.
 */
typedef struct late_store {
    tess_store_t base;   /* first member */
    tess_store_t *mem;   /* memory store handle (owned) */
    int hold;            /* 1: the next get's answer waits for late_release() */
    int held;            /* an answer is waiting */
    int rc;              /* its rc */
    tess_session_t sess; /* its session */
    tess_store_cb cb;    /* the caller's callback */
    void *arg;           /* its argument */
} late_store_t;

static int late_closed; /* late stores closed (ownership checks) */

static void late_capture(void *arg, int rc, const tess_session_t *s)
{
    late_store_t *l = arg;
    l->rc = rc;
    if (s != NULL)
        assert_int_equal(tess_session_copy(&l->sess, s), 0);
}

static int late_get(tess_store_t *st, tess_str_t sid, tess_store_cb cb, void *arg)
{
    late_store_t *l = (late_store_t *)st;
    ++st->stats.gets;
    if (!l->hold)
        return tess_store_get(l->mem, sid, cb, arg);
    assert_false(l->held);
    l->hold = 0;
    l->held = 1;
    l->cb = cb;
    l->arg = arg;
    return tess_store_get(l->mem, sid, late_capture, l);
}

static void late_release(late_store_t *l)
{
    assert_true(l->held);
    l->held = 0;
    l->cb(l->arg, l->rc, l->rc == 0 ? &l->sess : NULL);
    tess_session_clear(&l->sess);
}

static int late_set(tess_store_t *st, const tess_session_t *s, tess_store_cb cb, void *arg)
{
    ++st->stats.writes;
    return tess_store_set(((late_store_t *)st)->mem, s, cb, arg);
}
static int late_touch(tess_store_t *st, tess_str_t sid, int64_t exp, tess_store_cb cb, void *arg)
{
    ++st->stats.writes;
    return tess_store_touch(((late_store_t *)st)->mem, sid, exp, cb, arg);
}
static int late_destroy(tess_store_t *st, tess_str_t sid, tess_store_cb cb, void *arg)
{
    ++st->stats.writes;
    return tess_store_destroy(((late_store_t *)st)->mem, sid, cb, arg);
}
static int late_destroy_user(tess_store_t *st, tess_str_t uid, tess_store_cb cb, void *arg)
{
    ++st->stats.writes;
    return tess_store_destroy_user(((late_store_t *)st)->mem, uid, cb, arg);
}
static int late_ping(tess_store_t *st, tess_store_cb cb, void *arg)
{
    return tess_store_ping(((late_store_t *)st)->mem, cb, arg);
}
static void late_close(tess_store_t *st)
{
    late_store_t *l = (late_store_t *)st;
    if (l->held)
        l->cb(l->arg, TESS_EUNAVAIL, NULL);
    tess_session_clear(&l->sess);
    tess_store_close(l->mem);
    free(l);
    ++late_closed;
}

static const tess_store_ops_t late_ops = {"late",       late_get,          late_set,  late_touch,
                                          late_destroy, late_destroy_user, late_ping, late_close};

static tess_memstore_table_t *T; /* the source of truth */
static tess_store_t *D;          /* a direct handle on T (bypasses the cache) */
static late_store_t *I;          /* the composite's inner store (owned by S) */
static tess_redis_t *RC;         /* the L2 connection (shared, to see its state) */
static tess_store_t *S;          /* the composite under test */

static late_store_t *late_new(void)
{
    late_store_t *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    l->base.ops = &late_ops;
    assert_int_equal(tess_memstore_open(&l->mem, T), 0);
    return l;
}

/* ---- helpers ------------------------------------------------------------------------------------------- */

static int direct_get_rc(const char *sid)
{
    result_t r = {0};
    assert_int_equal(tess_store_get(D, tess_str(sid), on_result, &r), 0);
    assert_int_equal(r.calls, 1); /* memory store: at once */
    tess_session_clear(&r.sess);
    return r.rc;
}

static tess_l2_stats_t l2(void)
{
    tess_l2_stats_t st;
    tess_cachedstore_stats(S, &st);
    return st;
}

static int redis_up(void *arg)
{
    return tess_redis_connected(arg);
}

/* A copy <prefix><sid> in Redis whose value starts with `stamp` ("0:", "1:", "!"). */
typedef struct copy_wait {
    const char *prefix; /* key prefix */
    const char *sid;    /* session id */
    const char *stamp;  /* expected value prefix */
} copy_wait_t;

static int copy_is(void *arg)
{
    copy_wait_t *w = arg;
    char v[4096];
    return rs_cmd_str(&RS, v, sizeof(v), "GET %s%s", w->prefix, w->sid) && strncmp(v, w->stamp, strlen(w->stamp)) == 0;
}

static int rc_idle(void *arg)
{
    return tess__rconn_pending(arg) == 0;
}

static void wait_copy_at(const char *prefix, const char *sid, const char *stamp)
{
    copy_wait_t w = {prefix, sid, stamp};
    rs_run_until(L, copy_is, &w, RS_WAIT_MS, "the expected copy in Redis");
}

/* Waits for the copy, and for the write-back's own reply (so that a later outage cannot fail it). */
static void wait_copy(const char *sid, const char *stamp)
{
    wait_copy_at("tessera:l2:", sid, stamp);
    rs_run_until(L, rc_idle, RC, RS_WAIT_MS, "every L2 reply read");
}

static void assert_tombstone(const char *sid)
{
    char raw[64];
    assert_int_equal(rs_cmd_str(&RS, raw, sizeof(raw), "GET tessera:l2:%s", sid), 1);
    assert_string_equal(raw, "!");
}

/* get through the composite, then wait for the write-back of the copy. */
static void get_and_populate(const char *sid, const char *stamp)
{
    result_t r = {0};
    assert_int_equal(store_get_rc(S, sid, &r), 0);
    tess_session_clear(&r.sess);
    wait_copy(sid, stamp);
}

/* A new session of `user`, stored through the composite, read once and copied to Redis (epoch 0). */
static void stored_and_copied(tess_session_t *s, const char *user)
{
    make_session(s, user, tess_now_ms());
    assert_int_equal(store_set_rc(S, s), 0);
    get_and_populate(s->id, "0:");
}

/* ---- fixture ------------------------------------------------------------------------------------------- */

static int setup(void **state)
{
    char err[256] = "";
    (void)state;
    rs_fresh(&RS);
    assert_int_equal(tess_memstore_table_new(&T), 0);
    assert_int_equal(tess_memstore_open(&D, T), 0);
    assert_int_equal(tess_redis_open(&RC, tess_poll_loop_base(L), RS.url, TIMEOUT_MS, err, sizeof(err)), 0);
    rs_run_until(L, redis_up, RC, RS_WAIT_MS, "L2 connection up");
    I = late_new();
    tess_l2_opts_t o = {.conn = RC};
    assert_int_equal(tess_cachedstore_open(&S, &I->base, tess_poll_loop_base(L), &o, err, sizeof(err)), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tess_store_close(S);
    S = NULL;
    I = NULL;
    tess_redis_close(RC);
    RC = NULL;
    tess_store_close(D);
    tess_memstore_table_free(T);
    rs_loop_clean();
    return 0;
}

/* ---- tests --------------------------------------------------------------------------------------------- */

static void test_miss_then_hit(void **state)
{
    tess_session_t s;
    result_t r = {0};
    char raw[4096];
    int64_t now = tess_now_ms();
    (void)state;

    make_session(&s, "alice", now);
    s.extra_json = strdup("{\"theme\":\"dark\"}");
    assert_int_equal(store_set_rc(S, &s), 0);
    assert_int_equal(I->base.stats.writes, 1);
    assert_int_equal(rs_cmd_int(&RS, "EXISTS tessera:l2:%s", s.id), 0); /* set goes to the inner store only */

    assert_int_equal(store_get_rc(S, s.id, &r), 0);
    assert_string_equal(r.sess.user_id, "alice");
    assert_int_equal(l2().misses, 1);
    assert_int_equal(l2().hits, 0);
    assert_int_equal(I->base.stats.gets, 1);

    /* written back: "<epoch>:<json>", the copy's lifetime, indexed under its user */
    wait_copy(s.id, "0:{");
    assert_int_equal(rs_cmd_str(&RS, raw, sizeof(raw), "GET tessera:l2:%s", s.id), 1);
    assert_non_null(strstr(raw, "\"userId\":\"alice\""));
    long long pttl = rs_cmd_int(&RS, "PTTL tessera:l2:%s", s.id);
    assert_true(pttl > COPY_TTL_MS - 5000 && pttl <= COPY_TTL_MS);
    assert_int_equal(rs_cmd_int(&RS, "SISMEMBER tessera:l2:user:alice %s", s.id), 1);

    /* the second get is an L2 hit: the inner store is not asked */
    assert_int_equal(store_get_rc(S, s.id, &r), 0);
    assert_string_equal(r.sess.id, s.id);
    assert_string_equal(r.sess.user_id, "alice");
    assert_string_equal(r.sess.role, "visitor");
    assert_non_null(r.sess.extra_json);
    assert_non_null(strstr(r.sess.extra_json, "\"theme\":\"dark\""));
    assert_true(r.sess.expires_ms > now + HOUR);
    assert_int_equal(l2().hits, 1);
    assert_int_equal(l2().misses, 1);
    assert_int_equal(l2().errors, 0);
    assert_int_equal(I->base.stats.gets, 1);

    /* unknown ids are not cached (nothing to write back) */
    assert_int_equal(store_get_rc(S, "unknown-id", &r), TESS_ENOTFOUND);
    assert_int_equal(rs_cmd_int(&RS, "EXISTS tessera:l2:unknown-id"), 0);
    tess_session_clear(&r.sess);
    tess_session_clear(&s);
}

/* The write-back is SET ... NX: a tombstone written meanwhile wins. */
typedef struct racing {
    result_t r;      /* first member (store_done) */
    const char *sid; /* whose tombstone to write from inside the callback */
} racing_t;

static void on_get_then_tombstone(void *arg, int rc, const tess_session_t *sess)
{
    racing_t *x = arg;
    on_result(&x->r, rc, sess);
    /* The write-back is queued on the connection but not sent yet: this SET lands first. */
    rs_cmd(&RS, "SET tessera:l2:%s ! PX 60000", x->sid);
}

static void test_writeback_is_nx(void **state)
{
    tess_session_t s;
    result_t r = {0};
    (void)state;

    make_session(&s, "alice", tess_now_ms());
    assert_int_equal(store_set_rc(S, &s), 0);
    racing_t x = {{0}, s.id};
    assert_int_equal(tess_store_get(S, tess_str(s.id), on_get_then_tombstone, &x), 0);
    assert_int_equal(store_wait(&x.r), 0);
    tess_session_clear(&x.r.sess);
    /* this get's commands follow the write-back on the connection */
    assert_int_equal(store_get_rc(S, s.id, &r), TESS_ENOTFOUND);
    assert_tombstone(s.id);
    assert_int_equal(l2().errors, 0);
    tess_session_clear(&s);
}

static void test_destroy_tombstone(void **state)
{
    tess_session_t s;
    result_t r = {0};
    (void)state;

    stored_and_copied(&s, "alice");
    assert_int_equal(I->base.stats.gets, 1);

    assert_int_equal(store_destroy_rc(S, s.id), 0);
    assert_tombstone(s.id);
    long long pttl = rs_cmd_int(&RS, "PTTL tessera:l2:%s", s.id);
    assert_true(pttl > 0 && pttl <= COPY_TTL_MS);
    assert_int_equal(direct_get_rc(s.id), TESS_ENOTFOUND); /* the inner store forgot it too */

    /* the tombstone answers: NOTFOUND, counted as a hit, the inner store not asked */
    uint64_t hits = l2().hits;
    assert_int_equal(store_get_rc(S, s.id, &r), TESS_ENOTFOUND);
    assert_int_equal(l2().hits, hits + 1);
    assert_int_equal(I->base.stats.gets, 1);
    assert_int_equal(store_destroy_rc(S, "never-existed"), 0); /* absent: 0 */
    assert_int_equal(l2().errors, 0);
    tess_session_clear(&s);
}

static int late_held(void *arg)
{
    return ((late_store_t *)arg)->held;
}

/*
 * A reader that missed the cache and read the session from the inner store before a logout, but whose answer
 * comes after it, must not put the session back. With `touch_between`, a touch of the destroyed id (a poll
 * that read the session before the logout) runs between the logout and the late answer.
 */
static void slow_reader_after_logout(int touch_between)
{
    tess_session_t s;
    result_t r = {0}, slow = {0};

    make_session(&s, "alice", tess_now_ms());
    assert_int_equal(store_set_rc(S, &s), 0);
    I->hold = 1;
    assert_int_equal(tess_store_get(S, tess_str(s.id), on_result, &slow), 0);
    rs_run_until(L, late_held, I, RS_WAIT_MS, "the slow reader's inner lookup");
    assert_int_equal(store_destroy_rc(S, s.id), 0);
    if (touch_between) {
        assert_int_equal(tess_store_touch(S, tess_str(s.id), tess_now_ms() + HOUR, on_result, &r), 0);
        assert_int_equal(store_wait(&r), TESS_ENOTFOUND); /* never resurrected in the inner store */
    }
    late_release(I);
    assert_int_equal(slow.calls, 1);
    assert_int_equal(slow.rc, 0); /* it read before the logout */
    tess_session_clear(&slow.sess);

    /* its write-back (queued before this get's commands) found the tombstone */
    assert_int_equal(store_get_rc(S, s.id, &r), TESS_ENOTFOUND);
    assert_tombstone(s.id);
    tess_session_clear(&r.sess);
    tess_session_clear(&s);
}

static void test_slow_reader_after_logout(void **state)
{
    (void)state;
    slow_reader_after_logout(0);
}

static void test_touch_keeps_tombstone(void **state)
{
    (void)state;
    slow_reader_after_logout(1);
}

static int copy_gone(void *sid)
{
    return rs_cmd_int(&RS, "EXISTS tessera:l2:%s", (const char *)sid) == 0;
}

static void test_touch_drops_copy(void **state)
{
    tess_session_t s;
    result_t r = {0};
    int64_t later = tess_now_ms() + 2 * HOUR;
    (void)state;

    stored_and_copied(&s, "alice");
    assert_int_equal(tess_store_touch(S, tess_str(s.id), later, on_result, &r), 0);
    assert_int_equal(store_wait(&r), 0);
    rs_run_until(L, copy_gone, s.id, RS_WAIT_MS, "the copy with the old expiry dropped");
    assert_int_equal(store_get_rc(S, s.id, &r), 0); /* a miss: the inner store has the new expiry */
    assert_int_equal(r.sess.expires_ms, later);
    assert_int_equal(l2().misses, 2);
    assert_int_equal(I->base.stats.gets, 2);
    tess_session_clear(&r.sess);
    wait_copy(s.id, "0:");
    assert_int_equal(store_get_rc(S, s.id, &r), 0);
    assert_int_equal(r.sess.expires_ms, later);
    assert_int_equal(l2().hits, 1);
    tess_session_clear(&r.sess);
    tess_session_clear(&s);
}

static void test_destroy_user(void **state)
{
    tess_session_t a[2], b;
    result_t r = {0};
    (void)state;

    for (int i = 0; i < 2; i++) {
        stored_and_copied(&a[i], "alice");
    }
    stored_and_copied(&b, "bob");
    assert_int_equal(rs_cmd_int(&RS, "SCARD tessera:l2:user:alice"), 2);

    assert_int_equal(tess_store_destroy_user(S, TESS_STR_LIT("alice"), on_result, &r), 0);
    assert_int_equal(store_wait(&r), 0);
    uint64_t gets = I->base.stats.gets;
    for (int i = 0; i < 2; i++) {
        assert_tombstone(a[i].id);
        assert_int_equal(direct_get_rc(a[i].id), TESS_ENOTFOUND);
        assert_int_equal(store_get_rc(S, a[i].id, &r), TESS_ENOTFOUND);
    }
    assert_int_equal(I->base.stats.gets, gets); /* the tombstones answered */
    assert_int_equal(rs_cmd_int(&RS, "EXISTS tessera:l2:user:alice"), 0);
    /* bob keeps his session and his copy */
    assert_int_equal(store_get_rc(S, b.id, &r), 0);
    assert_string_equal(r.sess.user_id, "bob");
    assert_int_equal(I->base.stats.gets, gets);
    tess_session_clear(&r.sess);
    for (int i = 0; i < 2; i++)
        tess_session_clear(&a[i]);
    tess_session_clear(&b);
}

static void test_epoch_bump(void **state)
{
    tess_session_t s;
    result_t r = {0};
    (void)state;

    stored_and_copied(&s, "alice");
    assert_int_equal(rs_cmd_int(&RS, "INCR tessera:epoch"), 1); /* what a (re)connecting listener does */

    /* the copy stamped 0 is a miss now, and is replaced by one stamped 1 */
    assert_int_equal(store_get_rc(S, s.id, &r), 0);
    assert_string_equal(r.sess.id, s.id);
    tess_session_clear(&r.sess);
    assert_int_equal(l2().hits, 0);
    assert_int_equal(l2().misses, 2);
    assert_int_equal(I->base.stats.gets, 2);
    wait_copy(s.id, "1:{");
    assert_int_equal(store_get_rc(S, s.id, &r), 0);
    assert_int_equal(l2().hits, 1);
    assert_int_equal(I->base.stats.gets, 2);
    tess_session_clear(&r.sess);

    /* an unreadable copy is a miss too, and replaced */
    rs_cmd(&RS, "SET tessera:l2:%s %s", s.id, "1:{broken");
    assert_int_equal(store_get_rc(S, s.id, &r), 0);
    assert_int_equal(I->base.stats.gets, 3);
    tess_session_clear(&r.sess);
    wait_copy(s.id, "1:{\"");
    assert_int_equal(l2().errors, 0);
    tess_session_clear(&s);
}

/* Redis down costs speed only: the inner store answers, nothing is written back, errors are counted. */
static void test_redis_down(void **state)
{
    tess_session_t s, s2;
    result_t r = {0};
    int64_t t0;
    (void)state;

    make_session(&s, "alice", tess_now_ms());
    make_session(&s2, "alice", tess_now_ms());
    assert_int_equal(store_set_rc(S, &s), 0);
    get_and_populate(s.id, "0:");
    rs_kill(&RS);

    t0 = tess_mono_ms();
    assert_int_equal(store_get_rc(S, s.id, &r), 0); /* from the inner store, not 503 */
    assert_string_equal(r.sess.id, s.id);
    assert_int_equal(l2().errors, 1);
    assert_int_equal(l2().misses, 2);
    assert_int_equal(I->base.stats.gets, 2);
    assert_int_equal(store_set_rc(S, &s2), 0);
    assert_int_equal(store_get_rc(S, s2.id, &r), 0);
    assert_int_equal(l2().errors, 2);
    assert_int_equal(store_destroy_rc(S, s.id), 0); /* the tombstone fails; the inner store forgets it */
    assert_int_equal(l2().errors, 3);
    assert_int_equal(direct_get_rc(s.id), TESS_ENOTFOUND);
    assert_int_equal(store_get_rc(S, s.id, &r), TESS_ENOTFOUND);
    assert_int_equal(l2().errors, 4);
    memset(&r, 0, sizeof(r));
    assert_int_equal(tess_store_ping(S, on_result, &r), 0);
    assert_int_equal(store_wait(&r), 0); /* readiness is the source of truth's */
    assert_true(tess_mono_ms() - t0 < TIMEOUT_MS);
    assert_int_equal(l2().hits, 0);

    /* back: an empty Redis, filled again by the next miss */
    rs_start(&RS);
    rs_run_until(L, redis_up, RC, RS_WAIT_MS, "L2 connection back");
    get_and_populate(s2.id, "0:");
    assert_int_equal(store_get_rc(S, s2.id, &r), 0);
    assert_int_equal(l2().hits, 1);
    assert_int_equal(l2().errors, 4);
    tess_session_clear(&r.sess);
    tess_session_clear(&s);
    tess_session_clear(&s2);
}

/* A paused Redis: the read waits for the L2 timeout, then the inner store answers. */
static void test_redis_paused(void **state)
{
    tess_session_t s;
    result_t r = {0};
    int64_t t0, took;
    (void)state;

    stored_and_copied(&s, "alice");
    rs_pause(&RS);
    t0 = tess_mono_ms();
    assert_int_equal(store_get_rc(S, s.id, &r), 0);
    took = tess_mono_ms() - t0;
    assert_true(took >= TIMEOUT_MS - 10 && took < TIMEOUT_MS + 500);
    assert_int_equal(l2().errors, 1);
    assert_int_equal(I->base.stats.gets, 2);
    rs_resume(&RS);
    rs_run_until(L, redis_up, RC, RS_WAIT_MS, "L2 connection back");
    assert_int_equal(store_get_rc(S, s.id, &r), 0);
    assert_int_equal(l2().hits, 1); /* the copy survived the pause */
    tess_session_clear(&r.sess);
    tess_session_clear(&s);
}

/* Opened by URL (its own connection) and refused: either way the composite owns the inner store. */
static void test_open_by_url_owns_inner(void **state)
{
    tess_store_t *st = NULL;
    tess_session_t s;
    result_t r = {0};
    char err[256] = "";
    int closed = late_closed;
    (void)state;

    tess_l2_opts_t o = {.url = RS.url, .prefix = "l2:", .epoch_key = "l2:epoch", .ttl_ms = 5000};
    assert_int_equal(tess_cachedstore_open(&st, &late_new()->base, tess_poll_loop_base(L), &o, err, sizeof(err)), 0);
    assert_string_equal(st->ops->name, "cached");
    make_session(&s, "dave", tess_now_ms());
    assert_int_equal(tess_store_set(st, &s, on_result, &r), 0);
    assert_int_equal(store_wait(&r), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(tess_store_get(st, tess_str(s.id), on_result, &r), 0);
    assert_int_equal(store_wait(&r), 0);
    tess_session_clear(&r.sess);
    /* the copy lands under the configured prefix, stamped from the configured epoch key, with its ttl */
    rs_cmd(&RS, "SET l2:epoch 7");
    memset(&r, 0, sizeof(r));
    assert_int_equal(tess_store_get(st, tess_str(s.id), on_result, &r), 0);
    assert_int_equal(store_wait(&r), 0);
    tess_session_clear(&r.sess);
    wait_copy_at("l2:", s.id, "7:{");
    long long pttl = rs_cmd_int(&RS, "PTTL l2:%s", s.id);
    assert_true(pttl > 0 && pttl <= 5000);
    assert_int_equal(rs_cmd_int(&RS, "SISMEMBER l2:user:dave %s", s.id), 1);
    tess_store_close(st);
    assert_int_equal(late_closed, closed + 1);

    tess_l2_opts_t bad = {.url = "redis://"};
    st = (tess_store_t *)&st;
    assert_int_equal(tess_cachedstore_open(&st, &late_new()->base, tess_poll_loop_base(L), &bad, err, sizeof(err)),
                     TESS_EINVAL);
    assert_null(st);
    assert_true(strlen(err) > 0);
    assert_int_equal(late_closed, closed + 2); /* closed on failure too */
    tess_session_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_miss_then_hit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writeback_is_nx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_tombstone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_after_logout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_touch_keeps_tombstone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_touch_drops_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epoch_bump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_paused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_by_url_owns_inner, setup, teardown),
    };
    return cmocka_run_group_tests(tests, rs_group_setup, rs_group_teardown);
}
