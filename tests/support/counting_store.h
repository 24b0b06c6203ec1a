/*
 * A store wrapper for the unit tests: counts every call by operation, and answers either at once or later
 * (queued until the test fires it, like a networked store), or fails, around any inner store.
 * Also what an auth callback saw (outcome_t, on_auth). Shared by test_auth.c and test_fallback.c; every
 * function is used by both (include cmocka.h first).
 */
#ifndef TESS_TEST_COUNTING_STORE_H
#define TESS_TEST_COUNTING_STORE_H

#include <stdlib.h>
#include <string.h>

#include "tessera/store.h"

enum { OP_GET, OP_SET, OP_TOUCH, OP_DESTROY, OP_DESTROY_USER, OP_PING, OP_COUNT };

typedef struct pending {
    int op;                     /* OP_* */
    char sid[TESS_SID_MAX + 1]; /* get/touch/destroy key, or user id */
    int64_t exp;                /* touch */
    tess_session_t sess;        /* set */
    tess_store_cb cb;           /* caller's callback */
    void *arg;                  /* its argument */
} pending_t;

typedef struct cstore {
    tess_store_t base;   /* must be first */
    tess_store_t *inner; /* memory store */
    int calls[OP_COUNT]; /* calls that reached this store */
    int async;           /* 1: queue, answer on fire() */
    int fail_start;      /* non-zero: refuse to start with this rc */
    int fail_cb;         /* non-zero: start, then answer with this rc */
    pending_t q[64];     /* queued operations (async) */
    int nq;              /* queued count */
} cstore_t;

static int total_calls(const cstore_t *c)
{
    int n = 0;
    for (int i = 0; i < OP_COUNT; i++)
        n += c->calls[i];
    return n;
}

static void run(cstore_t *c, pending_t *p)
{
    if (c->fail_cb != 0) {
        p->cb(p->arg, c->fail_cb, NULL);
        return;
    }
    switch (p->op) {
    case OP_GET:
        tess_store_get(c->inner, tess_str(p->sid), p->cb, p->arg);
        break;
    case OP_SET:
        tess_store_set(c->inner, &p->sess, p->cb, p->arg);
        break;
    case OP_TOUCH:
        tess_store_touch(c->inner, tess_str(p->sid), p->exp, p->cb, p->arg);
        break;
    case OP_DESTROY:
        tess_store_destroy(c->inner, tess_str(p->sid), p->cb, p->arg);
        break;
    case OP_DESTROY_USER:
        tess_store_destroy_user(c->inner, tess_str(p->sid), p->cb, p->arg);
        break;
    default:
        tess_store_ping(c->inner, p->cb, p->arg);
    }
}

static int submit(tess_store_t *st, int op, tess_str_t key, int64_t exp, const tess_session_t *s, tess_store_cb cb,
                  void *arg)
{
    cstore_t *c = (cstore_t *)st;
    pending_t local, *p = &local;

    c->calls[op]++;
    if (c->fail_start != 0)
        return c->fail_start;
    if (c->async) {
        assert_true(c->nq < 64);
        p = &c->q[c->nq++];
    }
    memset(p, 0, sizeof(*p));
    p->op = op;
    assert_true(key.len <= TESS_SID_MAX);
    memcpy(p->sid, key.ptr, key.len);
    p->exp = exp;
    if (s != NULL)
        assert_int_equal(tess_session_copy(&p->sess, s), 0);
    p->cb = cb;
    p->arg = arg;
    if (!c->async) {
        run(c, p);
        tess_session_clear(&p->sess);
    }
    return 0;
}

/* Answers every queued operation, oldest first (operations queued meanwhile wait for the next call). */
static int fire(cstore_t *c)
{
    pending_t q[64];
    int n = c->nq;
    memcpy(q, c->q, sizeof(pending_t) * (size_t)n);
    c->nq = 0;
    for (int i = 0; i < n; i++) {
        run(c, &q[i]);
        tess_session_clear(&q[i].sess);
    }
    return n;
}

static int c_get(tess_store_t *st, tess_str_t sid, tess_store_cb cb, void *arg)
{
    return submit(st, OP_GET, sid, 0, NULL, cb, arg);
}
static int c_set(tess_store_t *st, const tess_session_t *s, tess_store_cb cb, void *arg)
{
    return submit(st, OP_SET, tess_str(s->id), 0, s, cb, arg);
}
static int c_touch(tess_store_t *st, tess_str_t sid, int64_t exp, tess_store_cb cb, void *arg)
{
    return submit(st, OP_TOUCH, sid, exp, NULL, cb, arg);
}
static int c_destroy(tess_store_t *st, tess_str_t sid, tess_store_cb cb, void *arg)
{
    return submit(st, OP_DESTROY, sid, 0, NULL, cb, arg);
}
static int c_destroy_user(tess_store_t *st, tess_str_t uid, tess_store_cb cb, void *arg)
{
    return submit(st, OP_DESTROY_USER, uid, 0, NULL, cb, arg);
}
static int c_ping(tess_store_t *st, tess_store_cb cb, void *arg)
{
    return submit(st, OP_PING, TESS_STR_LIT(""), 0, NULL, cb, arg);
}
static void c_close(tess_store_t *st)
{
    cstore_t *c = (cstore_t *)st;
    /* the store contract: pending callbacks are called with TESS_EUNAVAIL first */
    for (int i = 0; i < c->nq; i++) {
        c->q[i].cb(c->q[i].arg, TESS_EUNAVAIL, NULL);
        tess_session_clear(&c->q[i].sess);
    }
    c->nq = 0;
}

static const tess_store_ops_t cstore_ops = {
    .name = "counting",
    .get = c_get,
    .set = c_set,
    .touch = c_touch,
    .destroy = c_destroy,
    .destroy_user = c_destroy_user,
    .ping = c_ping,
    .close = c_close,
};

/* What an auth callback saw. */
typedef struct outcome {
    int calls;                   /* invocations */
    int rc;                      /* last rc */
    tess_session_t sess;         /* last session */
    char cookie[TESS_TOKEN_MAX]; /* last cookie value */
} outcome_t;

static void on_auth(void *arg, int rc, const tess_session_t *sess, tess_str_t cookie)
{
    outcome_t *o = arg;
    o->calls++;
    o->rc = rc;
    tess_session_clear(&o->sess);
    if (sess != NULL)
        assert_int_equal(tess_session_copy(&o->sess, sess), 0);
    assert_true(cookie.len < sizeof(o->cookie));
    memcpy(o->cookie, cookie.ptr != NULL ? cookie.ptr : "", cookie.len);
    o->cookie[cookie.len] = '\0';
}

#endif
