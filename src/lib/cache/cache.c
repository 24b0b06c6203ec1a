/*
 * The near-cache: power-of-two shards, each a mutex + chained hash table + LRU list.
 *
 * Bounds are split evenly per shard (max_entries / shards, max_bytes / shards): each shard enforces its own
 * share, so the totals hold without any cross-shard lock. An entry accounts its one allocation: the header and
 * its packed strings (centry_t).
 *
 * Generations: every shard has a counter bumped by tess_cache_evict_user(), tess_cache_flush() and disabling,
 * and GEN_STRIPES stripe counters, one of which (by the key's hash) tess_cache_evict() bumps. A put carries
 * the generation (both counters) its caller read before going to the backend and is dropped when either
 * moved, so a lookup that raced a logout never re-inserts the session, while an eviction of one key drops
 * only the puts of keys in its stripe (1/GEN_STRIPES of the shard's), not every put in flight in the shard:
 * under many concurrent misses, each of which writes an L2 copy whose invalidation comes back, one counter
 * per shard dropped most puts. LRU evictions (a bound) and TTL
 * expiry do not bump it: they remove nothing that a put could wrongly restore.
 */
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>

#include "tessera/cache.h"
#include "tessera/encoding.h"
#include "tessera/error.h"

#define DEFAULT_MAX_ENTRIES 100000
#define DEFAULT_MAX_BYTES (64u << 20)
#define DEFAULT_TTL_MS 300000
#define DEFAULT_NEG_TTL_MS 5000
#define DEFAULT_SHARDS 16
#define MAX_SHARDS 4096
#define INITIAL_BUCKETS 64
#define GEN_STRIPES 64 /* eviction generations per shard (power of two) */

/*
 * One entry, packed: the header, then in `data` the key and a NUL, then (sessions) the user id, the role and
 * extra_json, each with its NUL, or (values) the value's bytes. A session is kept as its variable-length
 * strings, not as a whole tess_session_t (256 bytes of fixed arrays, most of them empty, and the id twice).
 */
typedef struct centry {
    struct centry *hnext;        /* hash chain */
    struct centry *prev;         /* LRU neighbour towards the head (more recent) */
    struct centry *next;         /* LRU neighbour towards the tail (less recent) */
    uint64_t hash;               /* hash of key */
    int64_t expires_at_ms;       /* wall clock after which the entry is unusable */
    int64_t created_ms;          /* the session's fields (tess_session_t) */
    int64_t absolute_expires_ms; /* ... */
    int64_t expires_ms;          /* ... */
    int64_t max_age_ms;          /* ... */
    uint32_t bytes;              /* accounted size */
    uint32_t value_len;          /* value entries: bytes after the key; sessions: extra_json's (0: none) */
    uint16_t key_len;            /* bytes in key (<= TESS_SID_MAX) */
    uint8_t user_len;            /* bytes in the user id (<= TESS_USER_ID_MAX) */
    uint8_t role_len;            /* bytes in the role (<= TESS_ROLE_MAX) */
    uint8_t negative;            /* 1: remembered unknown id */
    uint8_t is_value;            /* 1: an opaque value (tess_cache_put_value) */
    uint8_t has_extra;           /* sessions: extra_json is set (it may be "") */
    char data[];                 /* key NUL, then user NUL role NUL extra NUL, or the value */
} centry_t;

#define ENTRY_KEY(e) ((e)->data)
#define ENTRY_USER(e) ((e)->data + (e)->key_len + 1)
#define ENTRY_ROLE(e) (ENTRY_USER(e) + (e)->user_len + 1)
#define ENTRY_EXTRA(e) (ENTRY_ROLE(e) + (e)->role_len + 1)
#define ENTRY_VALUE(e) ((e)->data + (e)->key_len + 1)

/* A lookup in progress and the callers waiting on it. */
typedef struct fwaiter {
    struct fwaiter *next; /* list link */
    tess_flight_cb cb;    /* delivery */
    void *arg;            /* its argument */
} fwaiter_t;

typedef struct flight {
    struct flight *next; /* list link (few flights at a time: a list is enough) */
    fwaiter_t *waiters;  /* followers */
    size_t key_len;      /* bytes in key */
    char key[];          /* the key */
} flight_t;

typedef struct shard {
    alignas(64) pthread_mutex_t lock; /* guards the shard; aligned to keep shards off each other's lines */
    centry_t **buckets;               /* hash buckets, `nbuckets` of them (power of two) */
    size_t nbuckets;                  /* bucket count */
    size_t max_buckets;               /* growth stops here */
    centry_t lru;                     /* sentinel: lru.next is the most recent, lru.prev the least */
    size_t count;                     /* entries */
    size_t bytes;                     /* accounted bytes */
    uint32_t gen;                     /* generation (written under lock, read with atomics) */
    uint32_t stripes[GEN_STRIPES];    /* per-stripe eviction generations (the same) */
    uint64_t hits;                    /* counters, see tess_cache_stats_t */
    uint64_t negative_hits;
    uint64_t misses;
    uint64_t evictions;
    uint64_t invalidations;
    flight_t *flights;  /* lookups in progress */
    uint64_t followers; /* waiters served by a leader */
} shard_t;

struct tess_cache {
    tess_cache_opts_t opts; /* effective options */
    size_t shard_entries;   /* entry bound per shard */
    size_t shard_bytes;     /* byte bound per shard */
    unsigned shard_bits;    /* log2(nshards) */
    unsigned nshards;       /* shard count */
    int enabled;            /* read/written with atomics */
    uint64_t flushes;       /* atomics */
    uint64_t seed;          /* hash seed */
    shard_t *shards;        /* `nshards` shards */
};

void tess_cache_opts_default(tess_cache_opts_t *o)
{
    o->max_entries = DEFAULT_MAX_ENTRIES;
    o->max_bytes = DEFAULT_MAX_BYTES;
    o->ttl_ms = DEFAULT_TTL_MS;
    o->negative_ttl_ms = DEFAULT_NEG_TTL_MS;
    o->shards = DEFAULT_SHARDS;
}

static uint64_t hash_key(const tess_cache_t *c, tess_str_t k)
{
    uint64_t h = tess_fnv1a64(TESS_FNV1A64_BASIS ^ c->seed, k.ptr, k.len);
    h ^= h >> 33; /* finalizer: spread FNV's weak high bits, which pick the shard */
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static shard_t *shard_of(const tess_cache_t *c, uint64_t h)
{
    return &c->shards[c->shard_bits == 0 ? 0 : h >> (64 - c->shard_bits)];
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n && p < ((size_t)1 << (sizeof(size_t) * 8 - 2)))
        p <<= 1;
    return p;
}

/* ---- shard internals (lock held) --------------------------------------------------------------------- */

static centry_t **slot_of(shard_t *sh, tess_str_t key, uint64_t h)
{
    centry_t **pp = &sh->buckets[h & (sh->nbuckets - 1)];
    while (*pp != NULL &&
           !((*pp)->hash == h && (*pp)->key_len == key.len && memcmp(ENTRY_KEY(*pp), key.ptr, key.len) == 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void lru_unlink(centry_t *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_push_front(shard_t *sh, centry_t *e)
{
    e->prev = &sh->lru;
    e->next = sh->lru.next;
    sh->lru.next->prev = e;
    sh->lru.next = e;
}

static void entry_free(centry_t *e)
{
    free(e);
}

/* The session of a positive entry into `out` (zeroed by the caller); 0, or TESS_ENOMEM (extra_json). */
static int entry_session(const centry_t *e, tess_session_t *out)
{
    memcpy(out->id, ENTRY_KEY(e), (size_t)e->key_len + 1);
    memcpy(out->user_id, ENTRY_USER(e), (size_t)e->user_len + 1);
    memcpy(out->role, ENTRY_ROLE(e), (size_t)e->role_len + 1);
    out->created_ms = e->created_ms;
    out->absolute_expires_ms = e->absolute_expires_ms;
    out->expires_ms = e->expires_ms;
    out->max_age_ms = e->max_age_ms;
    if (e->has_extra) {
        if ((out->extra_json = malloc((size_t)e->value_len + 1)) == NULL)
            return TESS_ENOMEM;
        memcpy(out->extra_json, ENTRY_EXTRA(e), (size_t)e->value_len + 1);
    }
    return 0;
}

/* Removes the entry at `slot` from the table and the LRU list and frees it. */
static void remove_at(shard_t *sh, centry_t **slot)
{
    centry_t *e = *slot;
    *slot = e->hnext;
    lru_unlink(e);
    sh->count--;
    sh->bytes -= e->bytes;
    entry_free(e);
}

static void remove_entry(shard_t *sh, centry_t *e)
{
    centry_t **pp = &sh->buckets[e->hash & (sh->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    remove_at(sh, pp);
}

static void grow(shard_t *sh)
{
    size_t cap = sh->nbuckets * 2;
    centry_t **b;
    if (sh->count <= sh->nbuckets || sh->nbuckets >= sh->max_buckets || (b = calloc(cap, sizeof(*b))) == NULL)
        return; /* a failed grow costs speed, not correctness */
    for (size_t i = 0; i < sh->nbuckets; i++) {
        centry_t *e = sh->buckets[i], *n;
        for (; e != NULL; e = n) {
            n = e->hnext;
            e->hnext = b[e->hash & (cap - 1)];
            b[e->hash & (cap - 1)] = e;
        }
    }
    free(sh->buckets);
    sh->buckets = b;
    sh->nbuckets = cap;
}

static void clear_shard(shard_t *sh)
{
    while (sh->lru.next != &sh->lru)
        remove_entry(sh, sh->lru.next);
}

static void bump_gen(shard_t *sh)
{
    __atomic_add_fetch(&sh->gen, 1, __ATOMIC_RELEASE);
}

/* The stripe of hash `h` (bits apart from the shard's high bits and the buckets' low ones). */
static uint32_t *stripe_of(shard_t *sh, uint64_t h)
{
    return &sh->stripes[(h >> 24) & (GEN_STRIPES - 1)];
}

/* What a put must find unchanged: the shard's generation and the key's stripe's. */
static uint64_t gen_of(shard_t *sh, uint64_t h)
{
    return (uint64_t)__atomic_load_n(&sh->gen, __ATOMIC_ACQUIRE) << 32 |
           __atomic_load_n(stripe_of(sh, h), __ATOMIC_ACQUIRE);
}

/* ---- API ---------------------------------------------------------------------------------------------- */

int tess_cache_new(tess_cache_t **out, const tess_cache_opts_t *opts)
{
    tess_cache_t *c = NULL;
    tess_cache_opts_t o;
    unsigned n;
    int rc = TESS_EINVAL;

    *out = NULL;
    tess_cache_opts_default(&o);
    if (opts != NULL) {
        /* Zero means "default" for every field but negative_ttl_ms, where 0 turns negative caching off. */
        if (opts->ttl_ms < 0 || opts->negative_ttl_ms < 0 || opts->shards > MAX_SHARDS ||
            (opts->shards & (opts->shards - 1)) != 0)
            goto out;
        o.max_entries = opts->max_entries != 0 ? opts->max_entries : o.max_entries;
        o.max_bytes = opts->max_bytes != 0 ? opts->max_bytes : o.max_bytes;
        o.ttl_ms = opts->ttl_ms != 0 ? opts->ttl_ms : o.ttl_ms;
        o.negative_ttl_ms = opts->negative_ttl_ms;
        o.shards = opts->shards != 0 ? opts->shards : o.shards;
    }
    /* Fewer shards than bounded entries would leave a shard a zero share: shrink the shard count. */
    while (o.shards > 1 && o.max_entries / o.shards == 0)
        o.shards >>= 1;
    rc = TESS_ENOMEM;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        goto out;
    c->opts = o;
    c->nshards = o.shards;
    for (n = o.shards; n > 1; n >>= 1)
        c->shard_bits++;
    c->shard_entries = o.max_entries / o.shards;
    c->shard_bytes = o.max_bytes / o.shards;
    c->enabled = 1;
    c->seed = (uint64_t)(uintptr_t)c ^ (uint64_t)tess_mono_ms() * 0x9e3779b97f4a7c15ULL;
    if ((c->shards = aligned_alloc(alignof(shard_t), sizeof(shard_t) * c->nshards)) == NULL)
        goto out;
    memset(c->shards, 0, sizeof(shard_t) * c->nshards);
    for (unsigned i = 0; i < c->nshards; i++) {
        shard_t *sh = &c->shards[i];
        sh->lru.next = sh->lru.prev = &sh->lru;
        sh->max_buckets = pow2_at_least(c->shard_entries);
        sh->nbuckets = sh->max_buckets < INITIAL_BUCKETS ? sh->max_buckets : INITIAL_BUCKETS;
        if ((sh->buckets = calloc(sh->nbuckets, sizeof(*sh->buckets))) == NULL ||
            pthread_mutex_init(&sh->lock, NULL) != 0) {
            free(sh->buckets);
            c->nshards = i; /* only the shards made so far are freed */
            goto out;
        }
    }
    *out = c;
    c = NULL;
    rc = 0;
out:
    tess_cache_free(c);
    return rc;
}

void tess_cache_free(tess_cache_t *c)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; c->shards != NULL && i < c->nshards; i++) {
        while (c->shards[i].flights != NULL) { /* only when a leader never finished: free, never deliver */
            flight_t *f = c->shards[i].flights;
            c->shards[i].flights = f->next;
            while (f->waiters != NULL) {
                fwaiter_t *w = f->waiters;
                f->waiters = w->next;
                free(w);
            }
            free(f);
        }
        clear_shard(&c->shards[i]);
        free(c->shards[i].buckets);
        pthread_mutex_destroy(&c->shards[i].lock);
    }
    free(c->shards);
    free(c);
}

static int is_enabled(const tess_cache_t *c)
{
    return __atomic_load_n(&c->enabled, __ATOMIC_ACQUIRE);
}

int tess_cache_get(tess_cache_t *c, tess_str_t key, int64_t now_ms, tess_session_t *out)
{
    uint64_t h = hash_key(c, key);
    shard_t *sh = shard_of(c, h);
    centry_t **pp;
    int res = TESS_CACHE_MISS;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&sh->lock);
    if (!is_enabled(c) || *(pp = slot_of(sh, key, h)) == NULL)
        goto out;
    if (now_ms >= (*pp)->expires_at_ms) {
        remove_at(sh, pp);
        goto out;
    }
    if ((*pp)->is_value) {
        goto out; /* not a session */
    } else if ((*pp)->negative) {
        res = TESS_CACHE_NEGATIVE;
    } else if (entry_session(*pp, out) == 0) {
        res = TESS_CACHE_HIT;
    } else {
        goto out; /* no memory for the copy: let the caller ask the store */
    }
    lru_unlink(*pp);
    lru_push_front(sh, *pp);
out:
    if (res == TESS_CACHE_HIT)
        sh->hits++;
    else if (res == TESS_CACHE_NEGATIVE)
        sh->negative_hits++;
    else
        sh->misses++;
    pthread_mutex_unlock(&sh->lock);
    return res;
}

uint64_t tess_cache_gen(tess_cache_t *c, tess_str_t key)
{
    uint64_t h = hash_key(c, key);
    return gen_of(shard_of(c, h), h);
}

static int insert(tess_cache_t *c, shard_t *sh, tess_str_t key, uint64_t h, centry_t *e, uint64_t gen);

int tess_cache_put(tess_cache_t *c, tess_str_t key, const tess_session_t *s, int64_t now_ms, uint64_t gen)
{
    uint64_t h = hash_key(c, key);
    shard_t *sh = shard_of(c, h);
    centry_t *e = NULL;
    int64_t until;

    if (!is_enabled(c) || key.len == 0 || key.len > TESS_SID_MAX)
        return 0;
    if (s == NULL) {
        if (c->opts.negative_ttl_ms == 0)
            return 0;
        until = now_ms + c->opts.negative_ttl_ms;
    } else {
        until = now_ms + c->opts.ttl_ms;
        if (s->expires_ms < until)
            until = s->expires_ms;
        if (s->absolute_expires_ms > 0 && s->absolute_expires_ms < until)
            until = s->absolute_expires_ms;
    }
    /* Build the entry outside the lock. */
    if (until > now_ms) {
        size_t ulen = s != NULL ? strnlen(s->user_id, TESS_USER_ID_MAX) : 0;
        size_t rlen = s != NULL ? strnlen(s->role, TESS_ROLE_MAX) : 0;
        size_t xlen = s != NULL && s->extra_json != NULL ? strlen(s->extra_json) : 0;
        size_t size = sizeof(*e) + key.len + 1 + (s != NULL ? ulen + 1 + rlen + 1 + xlen + 1 : 0);
        if (xlen > UINT32_MAX || size > UINT32_MAX)
            return 0; /* not worth keeping; the store answers */
        if ((e = malloc(size)) == NULL)
            return TESS_ENOMEM;
        memset(e, 0, sizeof(*e));
        memcpy(ENTRY_KEY(e), key.ptr, key.len);
        ENTRY_KEY(e)[key.len] = '\0';
        e->key_len = (uint16_t)key.len;
        e->hash = h;
        e->expires_at_ms = until;
        e->bytes = (uint32_t)size;
        e->negative = s == NULL;
        if (s != NULL) {
            e->user_len = (uint8_t)ulen;
            e->role_len = (uint8_t)rlen;
            e->has_extra = s->extra_json != NULL;
            e->value_len = (uint32_t)xlen;
            memcpy(ENTRY_USER(e), s->user_id, ulen);
            ENTRY_USER(e)[ulen] = '\0';
            memcpy(ENTRY_ROLE(e), s->role, rlen);
            ENTRY_ROLE(e)[rlen] = '\0';
            if (xlen > 0)
                memcpy(ENTRY_EXTRA(e), s->extra_json, xlen);
            ENTRY_EXTRA(e)[xlen] = '\0';
            e->created_ms = s->created_ms;
            e->absolute_expires_ms = s->absolute_expires_ms;
            e->expires_ms = s->expires_ms;
            e->max_age_ms = s->max_age_ms;
        }
    }
    return insert(c, sh, key, h, e, gen);
}

/*
 * Puts the built entry `e` (NULL: nothing to store, but the old value goes) for `key` unless the generation
 * moved since `gen`; frees what is not kept.
 */
static int insert(tess_cache_t *c, shard_t *sh, tess_str_t key, uint64_t h, centry_t *e, uint64_t gen)
{
    centry_t **pp;

    pthread_mutex_lock(&sh->lock);
    if (!is_enabled(c) || gen_of(sh, h) != gen)
        goto out; /* an eviction or flush happened since the caller's lookup began: drop */
    /* The new value supersedes the old one even when it is not stored (expired, or larger than a shard). */
    if (*(pp = slot_of(sh, key, h)) != NULL)
        remove_at(sh, pp);
    if (e == NULL || e->bytes > c->shard_bytes)
        goto out;
    while (sh->count > 0 && (sh->count + 1 > c->shard_entries || sh->bytes + e->bytes > c->shard_bytes)) {
        remove_entry(sh, sh->lru.prev);
        sh->evictions++;
    }
    pp = &sh->buckets[h & (sh->nbuckets - 1)];
    e->hnext = *pp;
    *pp = e;
    lru_push_front(sh, e);
    sh->count++;
    sh->bytes += e->bytes;
    e = NULL;
    grow(sh);
out:
    pthread_mutex_unlock(&sh->lock);
    if (e != NULL)
        entry_free(e);
    return 0;
}

int tess_cache_put_value(tess_cache_t *c, tess_str_t key, const void *value, size_t len, int64_t now_ms, uint64_t gen)
{
    uint64_t h = hash_key(c, key);
    shard_t *sh = shard_of(c, h);
    centry_t *e;

    if (!is_enabled(c) || key.len == 0 || key.len > TESS_SID_MAX || len > UINT32_MAX - sizeof(*e) - key.len - 1)
        return 0;
    /* One allocation: the entry, the key, its NUL, the value. */
    if ((e = calloc(1, sizeof(*e) + key.len + 1 + len)) == NULL)
        return TESS_ENOMEM;
    memcpy(ENTRY_KEY(e), key.ptr, key.len);
    e->key_len = (uint16_t)key.len;
    e->hash = h;
    e->expires_at_ms = now_ms + c->opts.ttl_ms;
    e->bytes = (uint32_t)(sizeof(*e) + key.len + 1 + len);
    e->is_value = 1;
    e->value_len = (uint32_t)len;
    if (len > 0)
        memcpy(ENTRY_VALUE(e), value, len);
    return insert(c, sh, key, h, e, gen);
}

int tess_cache_read_value(tess_cache_t *c, tess_str_t key, int64_t now_ms, tess_cache_read_cb read, void *arg)
{
    uint64_t h = hash_key(c, key);
    shard_t *sh = shard_of(c, h);
    centry_t **pp;
    int res = TESS_CACHE_MISS;

    pthread_mutex_lock(&sh->lock);
    if (!is_enabled(c) || *(pp = slot_of(sh, key, h)) == NULL || !(*pp)->is_value)
        goto out;
    if (now_ms >= (*pp)->expires_at_ms) {
        remove_at(sh, pp);
        goto out;
    }
    read(arg, ENTRY_VALUE(*pp), (*pp)->value_len);
    res = TESS_CACHE_HIT;
    lru_unlink(*pp);
    lru_push_front(sh, *pp);
out:
    if (res == TESS_CACHE_HIT)
        sh->hits++;
    else
        sh->misses++;
    pthread_mutex_unlock(&sh->lock);
    return res;
}

void tess_cache_evict(tess_cache_t *c, tess_str_t key)
{
    uint64_t h = hash_key(c, key);
    shard_t *sh = shard_of(c, h);
    centry_t **pp;

    pthread_mutex_lock(&sh->lock);
    if (*(pp = slot_of(sh, key, h)) != NULL) {
        remove_at(sh, pp);
        sh->invalidations++;
    }
    __atomic_add_fetch(stripe_of(sh, h), 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&sh->lock);
}

void tess_cache_evict_user(tess_cache_t *c, tess_str_t user_id)
{
    for (unsigned i = 0; i < c->nshards; i++) {
        shard_t *sh = &c->shards[i];
        pthread_mutex_lock(&sh->lock);
        for (centry_t *e = sh->lru.next, *n; e != &sh->lru; e = n) {
            n = e->next;
            if (!e->negative && !e->is_value && tess_str_eq(tess_strn(ENTRY_USER(e), e->user_len), user_id)) {
                remove_entry(sh, e);
                sh->invalidations++;
            }
        }
        /* Every shard: a lookup of one of the user's sessions may be in flight anywhere. */
        bump_gen(sh);
        pthread_mutex_unlock(&sh->lock);
    }
}

void tess_cache_flush(tess_cache_t *c)
{
    for (unsigned i = 0; i < c->nshards; i++) {
        shard_t *sh = &c->shards[i];
        pthread_mutex_lock(&sh->lock);
        clear_shard(sh);
        bump_gen(sh);
        pthread_mutex_unlock(&sh->lock);
    }
    __atomic_add_fetch(&c->flushes, 1, __ATOMIC_RELAXED);
}

void tess_cache_set_enabled(tess_cache_t *c, int enabled)
{
    __atomic_store_n(&c->enabled, enabled ? 1 : 0, __ATOMIC_RELEASE);
    if (!enabled)
        tess_cache_flush(c);
}

void tess_cache_get_stats(tess_cache_t *c, tess_cache_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < c->nshards; i++) {
        shard_t *sh = &c->shards[i];
        pthread_mutex_lock(&sh->lock);
        out->hits += sh->hits;
        out->negative_hits += sh->negative_hits;
        out->misses += sh->misses;
        out->evictions += sh->evictions;
        out->invalidations += sh->invalidations;
        out->entries += sh->count;
        out->bytes += sh->bytes;
        pthread_mutex_unlock(&sh->lock);
    }
    out->flushes = __atomic_load_n(&c->flushes, __ATOMIC_RELAXED);
}

/* ---- single-flight ---------------------------------------------------------------------------------------- */

int tess_cache_flight_join(tess_cache_t *c, tess_str_t key, tess_flight_cb deliver, void *arg)
{
    shard_t *sh = shard_of(c, hash_key(c, key));
    flight_t *f;
    int lead = 0;

    pthread_mutex_lock(&sh->lock);
    for (f = sh->flights; f != NULL; f = f->next)
        if (f->key_len == key.len && memcmp(f->key, key.ptr, key.len) == 0)
            break;
    if (f != NULL) {
        fwaiter_t *w = malloc(sizeof(*w));
        if (w == NULL) {
            lead = TESS_FLIGHT_ALONE; /* cannot wait: look it up alone, leaving the flight to its leader */
        } else {
            w->cb = deliver;
            w->arg = arg;
            w->next = f->waiters;
            f->waiters = w;
            sh->followers++;
        }
    } else if ((f = malloc(sizeof(*f) + key.len)) != NULL) {
        f->waiters = NULL;
        f->key_len = key.len;
        memcpy(f->key, key.ptr, key.len);
        f->next = sh->flights;
        sh->flights = f;
        lead = 1;
    } else {
        lead = TESS_FLIGHT_ALONE;
    }
    pthread_mutex_unlock(&sh->lock);
    return lead;
}

void tess_cache_flight_done(tess_cache_t *c, tess_str_t key, int rc, const tess_session_t *s)
{
    shard_t *sh = shard_of(c, hash_key(c, key));
    flight_t **pp, *f = NULL;

    pthread_mutex_lock(&sh->lock);
    for (pp = &sh->flights; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->key_len == key.len && memcmp((*pp)->key, key.ptr, key.len) == 0) {
            f = *pp;
            *pp = f->next;
            break;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    if (f == NULL)
        return;
    /* Deliver outside the lock: a waiter may look the cache up again. */
    while (f->waiters != NULL) {
        fwaiter_t *w = f->waiters;
        f->waiters = w->next;
        w->cb(w->arg, rc, s);
        free(w);
    }
    free(f);
}

uint64_t tess_cache_flight_followers(tess_cache_t *c)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < c->nshards; i++) {
        pthread_mutex_lock(&c->shards[i].lock);
        n += c->shards[i].followers;
        pthread_mutex_unlock(&c->shards[i].lock);
    }
    return n;
}
