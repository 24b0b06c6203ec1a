/*
 * Fixed-size, set-associative tables of per-key counters (ratelimit.h).
 */
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "server/ratelimit.h"
#include "tessera/error.h"

typedef struct rl_entry {
    uint64_t key;  /* 0: free */
    int64_t t0;    /* failures: the window's start; rate: the theoretical arrival time (GCRA) */
    int64_t until; /* failures: locked until this (0: not locked) */
    int64_t count; /* failures: attempts counted in the window */
} rl_entry_t;

typedef struct rl_bucket {
    pthread_mutex_t mu;    /* guards the entries */
    rl_entry_t e[RL_WAYS]; /* the ways */
} rl_bucket_t;

struct rl_table {
    rl_bucket_t *buckets;                         /* nbuckets of them */
    size_t mask;                                  /* nbuckets - 1 (a power of two) */
    unsigned char key[crypto_shorthash_KEYBYTES]; /* SipHash key, random */
    _Atomic uint64_t evictions;                   /* live entries pushed out */
};

enum { KIND_FAIL, KIND_RATE };

int rl_new(rl_table_t **out, size_t entries)
{
    rl_table_t *t;
    size_t n = 1;

    *out = NULL;
    if (entries < 16 || entries > ((size_t)1 << 24))
        return TESS_EINVAL;
    if (sodium_init() < 0)
        return TESS_EIO;
    while (n * RL_WAYS < entries)
        n <<= 1;
    if ((t = calloc(1, sizeof(*t))) == NULL || (t->buckets = calloc(n, sizeof(*t->buckets))) == NULL) {
        free(t);
        return TESS_ENOMEM;
    }
    for (size_t i = 0; i < n; ++i)
        pthread_mutex_init(&t->buckets[i].mu, NULL);
    t->mask = n - 1;
    crypto_shorthash_keygen(t->key);
    *out = t;
    return 0;
}

void rl_free(rl_table_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i <= t->mask; ++i)
        pthread_mutex_destroy(&t->buckets[i].mu);
    sodium_memzero(t->key, sizeof(t->key));
    free(t->buckets);
    free(t);
}

uint64_t rl_key(const rl_table_t *t, const void *p, size_t n)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint64_t k;
    crypto_shorthash(h, p, n, t->key);
    memcpy(&k, h, sizeof(k));
    return k != 0 ? k : 1;
}

uint64_t rl_evictions(const rl_table_t *t)
{
    return atomic_load_explicit(&t->evictions, memory_order_relaxed);
}

static rl_bucket_t *bucket_of(rl_table_t *t, uint64_t key)
{
    /* The high bits pick the bucket: the low ones are as random, but keep them for nothing else. */
    return &t->buckets[(key >> 32 ^ key) & t->mask];
}

/* What keeping `e` is worth: 0 when it holds nothing that matters any more. */
static int64_t worth(const rl_entry_t *e, int kind, int64_t window_ms, int64_t now)
{
    if (kind == KIND_RATE)
        return e->t0 > now ? e->t0 - now : 0;
    if (e->until != 0)
        return e->until > now ? INT64_MAX : 0;
    return now - e->t0 >= window_ms ? 0 : e->count;
}

/*
 * The entry of `key` in `b` (locked); with `make`, made when absent by taking a free way or evicting the
 * one worth least (the oldest of those). NULL when absent and not made.
 */
static rl_entry_t *find(rl_table_t *t, rl_bucket_t *b, uint64_t key, int make, int kind, int64_t window_ms, int64_t now)
{
    rl_entry_t *victim = NULL;
    int64_t victim_worth = INT64_MAX;

    for (int i = 0; i < RL_WAYS; ++i) {
        rl_entry_t *e = &b->e[i];
        int64_t w;
        if (e->key == key)
            return e;
        if (!make)
            continue;
        w = e->key == 0 ? -1 : worth(e, kind, window_ms, now);
        if (victim == NULL || w < victim_worth || (w == victim_worth && e->t0 < victim->t0)) {
            victim = e;
            victim_worth = w;
        }
    }
    if (!make)
        return NULL;
    if (victim->key != 0 && victim_worth > 0)
        atomic_fetch_add_explicit(&t->evictions, 1, memory_order_relaxed);
    memset(victim, 0, sizeof(*victim));
    victim->key = key;
    victim->t0 = kind == KIND_FAIL ? now : 0;
    return victim;
}

int64_t rl_fail_take(rl_table_t *t, uint64_t key, const rl_fail_policy_t *p, int64_t now_ms)
{
    rl_bucket_t *b = bucket_of(t, key);
    rl_entry_t *e;
    int64_t wait = 0;

    pthread_mutex_lock(&b->mu);
    e = find(t, b, key, 1, KIND_FAIL, p->window_ms, now_ms);
    if (e->until != 0 && e->until <= now_ms) {
        e->until = 0; /* the lock-out is over: a new window */
        e->count = 0;
        e->t0 = now_ms;
    } else if (e->until == 0 && now_ms - e->t0 >= p->window_ms) {
        e->count = 0;
        e->t0 = now_ms;
    }
    if (e->until != 0) {
        wait = e->until - now_ms;
    } else if (++e->count >= p->max) {
        e->until = now_ms + p->lockout_ms; /* this attempt runs; the ones after it wait */
    }
    pthread_mutex_unlock(&b->mu);
    return wait;
}

void rl_fail_give(rl_table_t *t, uint64_t key, const rl_fail_policy_t *p)
{
    rl_bucket_t *b = bucket_of(t, key);
    rl_entry_t *e;

    pthread_mutex_lock(&b->mu);
    if ((e = find(t, b, key, 0, KIND_FAIL, 0, 0)) != NULL) {
        if (e->count > 0)
            --e->count;
        if (e->count < p->max)
            e->until = 0; /* locked only by attempts that did count */
    }
    pthread_mutex_unlock(&b->mu);
}

void rl_fail_clear(rl_table_t *t, uint64_t key)
{
    rl_bucket_t *b = bucket_of(t, key);
    rl_entry_t *e;

    pthread_mutex_lock(&b->mu);
    if ((e = find(t, b, key, 0, KIND_FAIL, 0, 0)) != NULL)
        memset(e, 0, sizeof(*e));
    pthread_mutex_unlock(&b->mu);
}

int64_t rl_rate_take(rl_table_t *t, uint64_t key, int64_t interval_ms, int64_t burst, int64_t now_ms)
{
    rl_bucket_t *b = bucket_of(t, key);
    rl_entry_t *e;
    int64_t tat, tolerance = interval_ms * (burst - 1), wait = 0;

    pthread_mutex_lock(&b->mu);
    e = find(t, b, key, 1, KIND_RATE, 0, now_ms);
    tat = e->t0 > now_ms ? e->t0 : now_ms;
    if (tat - now_ms > tolerance)
        wait = tat - now_ms - tolerance;
    else
        e->t0 = tat + interval_ms;
    pthread_mutex_unlock(&b->mu);
    return wait;
}
