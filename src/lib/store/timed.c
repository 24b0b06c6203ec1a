/*
 * A timing view of a store (tessera/store.h, tess_timedstore_open): each timed call takes a small record
 * from the view's spare list (allocated once, kept for reuse), so a warm loop allocates nothing per call.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "tessera/error.h"
#include "tessera/store.h"

typedef struct timed timed_t;

typedef struct timed_call {
    struct timed_call *next; /* spare list */
    timed_t *s;              /* the view */
    tess_store_cb cb;        /* the caller's callback */
    void *arg;               /* and its argument */
    uint64_t t0;             /* when the call was made */
} timed_call_t;

struct timed {
    tess_store_t super;                               /* first: the store base */
    tess_store_t *inner;                              /* the store timed (not owned) */
    timed_call_t *spare;                              /* records kept for reuse (the loop's only) */
    atomic_uint_fast64_t n[TESS_LATENCY_BUCKETS + 1]; /* observations by bucket */
    atomic_uint_fast64_t sum_ns;                      /* their total */
};

static const uint64_t bounds[TESS_LATENCY_BUCKETS] = TESS_LATENCY_BOUNDS_NS;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static timed_call_t *call_new(timed_t *s, tess_store_cb cb, void *arg)
{
    timed_call_t *c = s->spare;
    if (c != NULL)
        s->spare = c->next;
    else if ((c = malloc(sizeof(*c))) == NULL)
        return NULL;
    c->s = s;
    c->cb = cb;
    c->arg = arg;
    c->t0 = now_ns();
    return c;
}

static void call_put(timed_call_t *c)
{
    c->next = c->s->spare;
    c->s->spare = c;
}

static void on_done(void *arg, int rc, const tess_session_t *sess)
{
    timed_call_t *c = arg;
    timed_t *s = c->s;
    tess_store_cb cb = c->cb;
    void *cbarg = c->arg;
    uint64_t ns = now_ns() - c->t0;
    int i = 0;

    while (i < TESS_LATENCY_BUCKETS && ns > bounds[i])
        ++i;
    atomic_fetch_add_explicit(&s->n[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_ns, ns, memory_order_relaxed);
    call_put(c); /* before the callback: it may start the next call */
    cb(cbarg, rc, sess);
}

/* The call `start` made with record `c`: one that did not start gives its record back. */
static int started(timed_call_t *c, int rc)
{
    if (rc != 0)
        call_put(c);
    return rc;
}

static int t_get(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg)
{
    timed_t *s = (timed_t *)store;
    timed_call_t *c = call_new(s, cb, arg);
    if (c == NULL)
        return TESS_ENOMEM;
    return started(c, tess_store_get(s->inner, sid, on_done, c));
}

static int t_set(tess_store_t *store, const tess_session_t *sess, tess_store_cb cb, void *arg)
{
    timed_t *s = (timed_t *)store;
    timed_call_t *c = call_new(s, cb, arg);
    if (c == NULL)
        return TESS_ENOMEM;
    return started(c, tess_store_set(s->inner, sess, on_done, c));
}

static int t_touch(tess_store_t *store, tess_str_t sid, int64_t expires_ms, tess_store_cb cb, void *arg)
{
    timed_t *s = (timed_t *)store;
    timed_call_t *c = call_new(s, cb, arg);
    if (c == NULL)
        return TESS_ENOMEM;
    return started(c, tess_store_touch(s->inner, sid, expires_ms, on_done, c));
}

static int t_destroy(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg)
{
    timed_t *s = (timed_t *)store;
    timed_call_t *c = call_new(s, cb, arg);
    if (c == NULL)
        return TESS_ENOMEM;
    return started(c, tess_store_destroy(s->inner, sid, on_done, c));
}

static int t_destroy_user(tess_store_t *store, tess_str_t user_id, tess_store_cb cb, void *arg)
{
    return tess_store_destroy_user(((timed_t *)store)->inner, user_id, cb, arg);
}

static int t_ping(tess_store_t *store, tess_store_cb cb, void *arg)
{
    return tess_store_ping(((timed_t *)store)->inner, cb, arg);
}

static int t_prune(tess_store_t *store, int64_t now_ms, int batch, tess_store_cb cb, void *arg)
{
    return tess_store_prune(((timed_t *)store)->inner, now_ms, batch, cb, arg);
}

static void t_close(tess_store_t *store)
{
    timed_t *s = (timed_t *)store;
    while (s->spare != NULL) {
        timed_call_t *c = s->spare;
        s->spare = c->next;
        free(c);
    }
    free(s);
}

static const tess_store_ops_t timed_ops = {
    .name = "timed",
    .get = t_get,
    .set = t_set,
    .touch = t_touch,
    .destroy = t_destroy,
    .destroy_user = t_destroy_user,
    .ping = t_ping,
    .close = t_close,
    .prune = t_prune,
};

int tess_timedstore_open(tess_store_t **out, tess_store_t *inner)
{
    timed_t *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (s == NULL)
        return TESS_ENOMEM;
    s->super.ops = &timed_ops;
    s->inner = inner;
    *out = &s->super;
    return 0;
}

void tess_timedstore_latency(const tess_store_t *timed, tess_latency_t *out)
{
    timed_t *s = (timed_t *)timed;
    for (int i = 0; i <= TESS_LATENCY_BUCKETS; ++i)
        out->n[i] += atomic_load_explicit(&s->n[i], memory_order_relaxed);
    out->sum_ns += atomic_load_explicit(&s->sum_ns, memory_order_relaxed);
}
