#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "server/metacache.h"

#define SHARDS 16

typedef struct mentry {
    struct mentry *next; /* chain */
    int64_t expires_ms;  /* unusable after */
    appdb_prechat_t row; /* the cached row */
} mentry_t;

typedef struct mshard {
    pthread_mutex_t lock;  /* guards the shard */
    mentry_t **buckets;    /* chains, `nbuckets` (power of two) */
    size_t nbuckets;       /* bucket count */
    size_t count;          /* entries */
    uint64_t gen;          /* bumped by evict / flush / disable */
    uint64_t hits, misses; /* counters */
} mshard_t;

struct metacache {
    mshard_t shards[SHARDS]; /* shards by id */
    size_t shard_max;        /* entry bound per shard */
    int64_t ttl_ms;          /* row life */
    int enabled;             /* atomics */
};

static mshard_t *shard_of(metacache_t *m, int64_t id)
{
    return &m->shards[(uint64_t)id % SHARDS];
}

static mentry_t **slot(mshard_t *s, int64_t id)
{
    mentry_t **pp = &s->buckets[((uint64_t)id * 0x9E3779B97F4A7C15ULL >> 32) & (s->nbuckets - 1)];
    while (*pp != NULL && (*pp)->row.id != id)
        pp = &(*pp)->next;
    return pp;
}

metacache_t *metacache_new(size_t max_entries, int64_t ttl_ms)
{
    metacache_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->shard_max = max_entries / SHARDS > 0 ? max_entries / SHARDS : 1;
    m->ttl_ms = ttl_ms;
    m->enabled = 1;
    for (int i = 0; i < SHARDS; ++i) {
        mshard_t *s = &m->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->nbuckets = 64;
        while (s->nbuckets < m->shard_max && s->nbuckets < 65536)
            s->nbuckets <<= 1;
        if ((s->buckets = calloc(s->nbuckets, sizeof(*s->buckets))) == NULL) {
            metacache_free(m);
            return NULL;
        }
    }
    return m;
}

static void clear_shard(mshard_t *s)
{
    for (size_t b = 0; b < s->nbuckets; ++b) {
        while (s->buckets[b] != NULL) {
            mentry_t *e = s->buckets[b];
            s->buckets[b] = e->next;
            free(e);
        }
    }
    s->count = 0;
}

void metacache_free(metacache_t *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < SHARDS; ++i) {
        if (m->shards[i].buckets != NULL)
            clear_shard(&m->shards[i]);
        free(m->shards[i].buckets);
        pthread_mutex_destroy(&m->shards[i].lock);
    }
    free(m);
}

int metacache_get(metacache_t *m, int64_t id, int64_t now_ms, appdb_prechat_t *out)
{
    mshard_t *s = shard_of(m, id);
    mentry_t **pp;
    int hit = 0;

    if (!__atomic_load_n(&m->enabled, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&s->lock);
    if (*(pp = slot(s, id)) != NULL) {
        if ((*pp)->expires_ms > now_ms) {
            *out = (*pp)->row;
            hit = 1;
        } else {
            mentry_t *e = *pp;
            *pp = e->next;
            free(e);
            --s->count;
        }
    }
    if (hit)
        ++s->hits;
    else
        ++s->misses;
    pthread_mutex_unlock(&s->lock);
    return hit;
}

uint64_t metacache_gen(metacache_t *m, int64_t id)
{
    return __atomic_load_n(&shard_of(m, id)->gen, __ATOMIC_ACQUIRE);
}

void metacache_put(metacache_t *m, const appdb_prechat_t *p, int64_t now_ms, uint64_t gen)
{
    mshard_t *s = shard_of(m, p->id);
    mentry_t **pp, *e;

    if (!__atomic_load_n(&m->enabled, __ATOMIC_ACQUIRE) || (e = malloc(sizeof(*e))) == NULL)
        return;
    e->row = *p;
    e->expires_ms = now_ms + m->ttl_ms;
    pthread_mutex_lock(&s->lock);
    if (s->gen != gen || !__atomic_load_n(&m->enabled, __ATOMIC_ACQUIRE)) {
        /* evicted meanwhile: this row may be older than the write that evicted it */
    } else if (*(pp = slot(s, p->id)) != NULL) {
        e->next = (*pp)->next;
        free(*pp);
        *pp = e;
        e = NULL;
    } else if (s->count < m->shard_max) {
        e->next = NULL;
        *pp = e;
        ++s->count;
        e = NULL;
    } /* else full: the bound holds, this row is simply not cached */
    pthread_mutex_unlock(&s->lock);
    free(e);
}

void metacache_evict(metacache_t *m, int64_t id)
{
    mshard_t *s = shard_of(m, id);
    mentry_t **pp, *e = NULL;

    pthread_mutex_lock(&s->lock);
    __atomic_store_n(&s->gen, s->gen + 1, __ATOMIC_RELEASE);
    if (*(pp = slot(s, id)) != NULL) {
        e = *pp;
        *pp = e->next;
        --s->count;
    }
    pthread_mutex_unlock(&s->lock);
    free(e);
}

void metacache_flush(metacache_t *m)
{
    for (int i = 0; i < SHARDS; ++i) {
        mshard_t *s = &m->shards[i];
        pthread_mutex_lock(&s->lock);
        __atomic_store_n(&s->gen, s->gen + 1, __ATOMIC_RELEASE);
        clear_shard(s);
        pthread_mutex_unlock(&s->lock);
    }
}

void metacache_set_enabled(metacache_t *m, int enabled)
{
    __atomic_store_n(&m->enabled, enabled, __ATOMIC_RELEASE);
    metacache_flush(m); /* off: drop everything; on: nothing cached before may be trusted */
}

void metacache_stats(metacache_t *m, uint64_t *hits, uint64_t *misses, size_t *entries)
{
    *hits = *misses = 0;
    *entries = 0;
    for (int i = 0; i < SHARDS; ++i) {
        mshard_t *s = &m->shards[i];
        pthread_mutex_lock(&s->lock);
        *hits += s->hits;
        *misses += s->misses;
        *entries += s->count;
        pthread_mutex_unlock(&s->lock);
    }
}
