/*
 * The in-process memory store.
 *
 * One table (hash map sid -> entry, plus a per-user index: user id -> list of that user's entries) behind one
 * mutex, shared by any number of handles on any threads. A handle only carries its own call counters.
 * Every operation completes synchronously: the callback runs before the call returns, outside the lock
 * (a callback may call the store again).
 */
#include <pthread.h>
#include <stdlib.h>

#include "tessera/error.h"
#include "tessera/store.h"

#define INITIAL_BUCKETS 64

typedef struct mem_user mem_user_t;

typedef struct mem_entry {
    struct mem_entry *next;      /* hash chain (sid map) */
    struct mem_entry *user_prev; /* previous session of the same user */
    struct mem_entry *user_next; /* next session of the same user */
    mem_user_t *user;            /* the user index node this entry hangs on */
    uint64_t hash;               /* hash of sess.id */
    tess_session_t sess;         /* owned deep copy */
} mem_entry_t;

struct mem_user {
    struct mem_user *next;         /* hash chain (user map) */
    uint64_t hash;                 /* hash of id */
    mem_entry_t *head;             /* the user's sessions */
    size_t count;                  /* entries on `head` */
    char id[TESS_USER_ID_MAX + 1]; /* user id */
};

struct tess_memstore_table {
    pthread_mutex_t lock; /* guards everything below */
    mem_entry_t **by_sid; /* buckets, `sid_cap` of them (power of two) */
    size_t sid_cap;       /* bucket count */
    size_t sid_count;     /* entries */
    mem_user_t **by_user; /* buckets, `user_cap` of them (power of two) */
    size_t user_cap;      /* bucket count */
    size_t user_count;    /* user nodes */
};

typedef struct memstore {
    tess_store_t base;        /* must be first */
    tess_memstore_table_t *t; /* shared table, borrowed */
} memstore_t;

static uint64_t hash_str(tess_str_t s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: keys are our own random ids, not attacker-chosen */
    for (size_t i = 0; i < s.len; i++) {
        h ^= (unsigned char)s.ptr[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static int key_eq(const char *stored, tess_str_t k)
{
    return strlen(stored) == k.len && memcmp(stored, k.ptr, k.len) == 0;
}

/* ---- table internals (lock held) --------------------------------------------------------------------- */

static mem_entry_t **sid_slot(tess_memstore_table_t *t, tess_str_t sid, uint64_t h)
{
    mem_entry_t **pp = &t->by_sid[h & (t->sid_cap - 1)];
    while (*pp != NULL && !((*pp)->hash == h && key_eq((*pp)->sess.id, sid)))
        pp = &(*pp)->next;
    return pp;
}

static mem_user_t **user_slot(tess_memstore_table_t *t, tess_str_t uid, uint64_t h)
{
    mem_user_t **pp = &t->by_user[h & (t->user_cap - 1)];
    while (*pp != NULL && !((*pp)->hash == h && key_eq((*pp)->id, uid)))
        pp = &(*pp)->next;
    return pp;
}

/* Doubles a bucket array when the load passes 1; a failed grow only costs speed. */
static void grow_sids(tess_memstore_table_t *t)
{
    size_t cap = t->sid_cap * 2;
    mem_entry_t **b;
    if (t->sid_count < t->sid_cap || (b = calloc(cap, sizeof(*b))) == NULL)
        return;
    for (size_t i = 0; i < t->sid_cap; i++) {
        mem_entry_t *e = t->by_sid[i], *n;
        for (; e != NULL; e = n) {
            n = e->next;
            e->next = b[e->hash & (cap - 1)];
            b[e->hash & (cap - 1)] = e;
        }
    }
    free(t->by_sid);
    t->by_sid = b;
    t->sid_cap = cap;
}

static void grow_users(tess_memstore_table_t *t)
{
    size_t cap = t->user_cap * 2;
    mem_user_t **b;
    if (t->user_count < t->user_cap || (b = calloc(cap, sizeof(*b))) == NULL)
        return;
    for (size_t i = 0; i < t->user_cap; i++) {
        mem_user_t *u = t->by_user[i], *n;
        for (; u != NULL; u = n) {
            n = u->next;
            u->next = b[u->hash & (cap - 1)];
            b[u->hash & (cap - 1)] = u;
        }
    }
    free(t->by_user);
    t->by_user = b;
    t->user_cap = cap;
}

/* Unlinks `e` from the user index (dropping the user node when it empties) and from the sid map, frees it. */
static void entry_remove(tess_memstore_table_t *t, mem_entry_t **slot)
{
    mem_entry_t *e = *slot;
    mem_user_t *u = e->user;

    *slot = e->next;
    t->sid_count--;
    if (e->user_prev != NULL)
        e->user_prev->user_next = e->user_next;
    else
        u->head = e->user_next;
    if (e->user_next != NULL)
        e->user_next->user_prev = e->user_prev;
    if (--u->count == 0) {
        mem_user_t **up = user_slot(t, tess_str(u->id), u->hash);
        *up = u->next;
        t->user_count--;
        free(u);
    }
    tess_session_clear(&e->sess);
    free(e);
}

/* Finds a live entry; removes it (and answers NULL) when it expired. */
static mem_entry_t **find_live(tess_memstore_table_t *t, tess_str_t sid, int64_t now_ms)
{
    mem_entry_t **pp = sid_slot(t, sid, hash_str(sid));
    if (*pp != NULL && (*pp)->sess.expires_ms <= now_ms) {
        entry_remove(t, pp);
        return NULL;
    }
    return *pp != NULL ? pp : NULL;
}

/* ---- table API ---------------------------------------------------------------------------------------- */

int tess_memstore_table_new(tess_memstore_table_t **out)
{
    tess_memstore_table_t *t = NULL;
    int rc = TESS_ENOMEM;

    *out = NULL;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        goto out;
    t->sid_cap = t->user_cap = INITIAL_BUCKETS;
    if ((t->by_sid = calloc(t->sid_cap, sizeof(*t->by_sid))) == NULL ||
        (t->by_user = calloc(t->user_cap, sizeof(*t->by_user))) == NULL)
        goto out;
    if (pthread_mutex_init(&t->lock, NULL) != 0)
        goto out;
    *out = t;
    t = NULL;
    rc = 0;
out:
    if (t != NULL) {
        free(t->by_sid);
        free(t->by_user);
        free(t);
    }
    return rc;
}

void tess_memstore_table_free(tess_memstore_table_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->sid_cap; i++) {
        mem_entry_t *e = t->by_sid[i], *n;
        for (; e != NULL; e = n) {
            n = e->next;
            tess_session_clear(&e->sess);
            free(e);
        }
    }
    for (size_t i = 0; i < t->user_cap; i++) {
        mem_user_t *u = t->by_user[i], *n;
        for (; u != NULL; u = n) {
            n = u->next;
            free(u);
        }
    }
    pthread_mutex_destroy(&t->lock);
    free(t->by_sid);
    free(t->by_user);
    free(t);
}

size_t tess_memstore_table_prune(tess_memstore_table_t *t, int64_t now_ms)
{
    size_t n = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->sid_cap; i++) {
        mem_entry_t **pp = &t->by_sid[i];
        while (*pp != NULL) {
            if ((*pp)->sess.expires_ms <= now_ms) {
                entry_remove(t, pp);
                n++;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

/* ---- store ops ---------------------------------------------------------------------------------------- */

static void finish(memstore_t *m, int rc, const tess_session_t *sess, tess_store_cb cb, void *arg)
{
    if (rc != 0 && rc != TESS_ENOTFOUND)
        tess_store_count(&m->base.stats.errors);
    if (cb != NULL)
        cb(arg, rc, sess);
}

static int valid_sid(tess_str_t sid)
{
    return sid.len > 0 && sid.len <= TESS_SID_MAX;
}

static int mem_get(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg)
{
    memstore_t *m = (memstore_t *)store;
    tess_session_t copy;
    mem_entry_t **pp;
    int rc = TESS_ENOTFOUND;

    if (!valid_sid(sid))
        return TESS_EINVAL;
    tess_store_count(&m->base.stats.gets);
    pthread_mutex_lock(&m->t->lock);
    if ((pp = find_live(m->t, sid, tess_now_ms())) != NULL)
        rc = tess_session_copy(&copy, &(*pp)->sess);
    pthread_mutex_unlock(&m->t->lock);
    finish(m, rc, rc == 0 ? &copy : NULL, cb, arg);
    if (rc == 0)
        tess_session_clear(&copy);
    return 0;
}

static int mem_set(tess_store_t *store, const tess_session_t *sess, tess_store_cb cb, void *arg)
{
    memstore_t *m = (memstore_t *)store;
    tess_memstore_table_t *t = m->t;
    tess_str_t sid = tess_str(sess->id), uid = tess_str(sess->user_id);
    mem_entry_t *e = NULL, **pp;
    mem_user_t *u = NULL, **up;
    int rc = TESS_ENOMEM;

    if (!valid_sid(sid) || uid.len == 0)
        return TESS_EINVAL;
    tess_store_count(&m->base.stats.writes);
    if ((e = calloc(1, sizeof(*e))) == NULL || tess_session_copy(&e->sess, sess) != 0)
        goto out;
    e->hash = hash_str(sid);
    pthread_mutex_lock(&t->lock);
    /* Replace: drop the old entry first (its user may differ). */
    if (*(pp = sid_slot(t, sid, e->hash)) != NULL)
        entry_remove(t, pp);
    up = user_slot(t, uid, hash_str(uid));
    if ((u = *up) == NULL) {
        if ((u = calloc(1, sizeof(*u))) == NULL) {
            pthread_mutex_unlock(&t->lock);
            goto out;
        }
        u->hash = hash_str(uid);
        memcpy(u->id, uid.ptr, uid.len);
        *up = u;
        t->user_count++;
        grow_users(t);
    }
    e->user = u;
    e->user_next = u->head;
    if (u->head != NULL)
        u->head->user_prev = e;
    u->head = e;
    u->count++;
    pp = &t->by_sid[e->hash & (t->sid_cap - 1)];
    e->next = *pp;
    *pp = e;
    t->sid_count++;
    grow_sids(t);
    pthread_mutex_unlock(&t->lock);
    e = NULL;
    rc = 0;
out:
    if (e != NULL) {
        tess_session_clear(&e->sess);
        free(e);
    }
    finish(m, rc, NULL, cb, arg);
    return 0;
}

static int mem_touch(tess_store_t *store, tess_str_t sid, int64_t expires_ms, tess_store_cb cb, void *arg)
{
    memstore_t *m = (memstore_t *)store;
    mem_entry_t **pp;
    int rc = TESS_ENOTFOUND;

    if (!valid_sid(sid))
        return TESS_EINVAL;
    tess_store_count(&m->base.stats.writes);
    pthread_mutex_lock(&m->t->lock);
    /* Only a live entry moves: a destroyed or expired session stays gone. */
    if ((pp = find_live(m->t, sid, tess_now_ms())) != NULL) {
        (*pp)->sess.expires_ms = expires_ms;
        rc = 0;
    }
    pthread_mutex_unlock(&m->t->lock);
    finish(m, rc, NULL, cb, arg);
    return 0;
}

static int mem_destroy(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg)
{
    memstore_t *m = (memstore_t *)store;
    mem_entry_t **pp;

    if (!valid_sid(sid))
        return TESS_EINVAL;
    tess_store_count(&m->base.stats.writes);
    pthread_mutex_lock(&m->t->lock);
    if (*(pp = sid_slot(m->t, sid, hash_str(sid))) != NULL)
        entry_remove(m->t, pp);
    pthread_mutex_unlock(&m->t->lock);
    finish(m, 0, NULL, cb, arg);
    return 0;
}

static int mem_destroy_user(tess_store_t *store, tess_str_t user_id, tess_store_cb cb, void *arg)
{
    memstore_t *m = (memstore_t *)store;
    tess_memstore_table_t *t = m->t;
    mem_user_t *u;

    if (user_id.len == 0 || user_id.len > TESS_USER_ID_MAX)
        return TESS_EINVAL;
    tess_store_count(&m->base.stats.writes);
    pthread_mutex_lock(&t->lock);
    /* O(sessions of the user): each removal finds its sid slot by hash; the last one frees the user node. */
    if ((u = *user_slot(t, user_id, hash_str(user_id))) != NULL) {
        for (size_t n = u->count; n > 0; n--) /* the last removal frees `u` */
            entry_remove(t, sid_slot(t, tess_str(u->head->sess.id), u->head->hash));
    }
    pthread_mutex_unlock(&t->lock);
    finish(m, 0, NULL, cb, arg);
    return 0;
}

static int mem_ping(tess_store_t *store, tess_store_cb cb, void *arg)
{
    finish((memstore_t *)store, 0, NULL, cb, arg);
    return 0;
}

static void mem_close(tess_store_t *store)
{
    free(store); /* nothing is ever pending: every call completes before it returns */
}

/* The whole table, whatever `batch` says (it is in memory: one pass is cheap). */
static int mem_prune(tess_store_t *store, int64_t now_ms, int batch, tess_store_cb cb, void *arg)
{
    memstore_t *m = (memstore_t *)store;
    if (batch <= 0)
        return TESS_EINVAL;
    finish(m, (int)tess_memstore_table_prune(m->t, now_ms), NULL, cb, arg);
    return 0;
}

static const tess_store_ops_t memstore_ops = {
    .name = "memory",
    .get = mem_get,
    .set = mem_set,
    .touch = mem_touch,
    .destroy = mem_destroy,
    .destroy_user = mem_destroy_user,
    .ping = mem_ping,
    .prune = mem_prune,
    .close = mem_close,
};

int tess_memstore_open(tess_store_t **out, tess_memstore_table_t *t)
{
    memstore_t *m;

    *out = NULL;
    if (t == NULL)
        return TESS_EINVAL;
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return TESS_ENOMEM;
    m->base.ops = &memstore_ops;
    m->t = t;
    *out = &m->base;
    return 0;
}
