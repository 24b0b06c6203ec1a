/*
 * Password verification off the event loops: a few worker threads take jobs from one bounded queue and
 * hand the result back to the submitting loop through its thread-safe `post` (tessera/loop.h).
 *
 * Each job names its owner (the client address): an owner's jobs queued or running are counted under the
 * queue's lock (the queue is short, and a scan of it costs nothing next to one argon2 run), and a job whose
 * client went away is taken out of the queue by id before a worker spends 64 MiB and ~50 ms on it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "app/passwords.h"
#include "tessera/error.h"

#define PW_MAX 1024

typedef struct pwjob {
    struct pwjob *next;                /* queue link */
    uint64_t id;                       /* for app_pw_cancel */
    uint64_t owner;                    /* who asked (0: nobody in particular) */
    tess_loop_t *home;                 /* where to deliver */
    app_pw_cb cb;                      /* completion, on the home loop */
    void *arg;                         /* its argument */
    char hash[crypto_pwhash_STRBYTES]; /* stored hash, or "" for the dummy */
    char password[PW_MAX + 1];         /* candidate, wiped after use */
    size_t password_len;               /* its length */
    int ok;                            /* result */
} pwjob_t;

struct app_pwpool {
    pthread_mutex_t mu;                 /* guards the queue, next_id and running */
    pthread_cond_t cv;                  /* signals work or stop */
    pwjob_t *head, *tail;               /* FIFO */
    size_t queued, queue_max;           /* length and bound */
    uint64_t next_id;                   /* ids of jobs, from 1 */
    uint64_t *running;                  /* per worker: the owner of the job it runs (0: none) */
    int stop;                           /* workers exit */
    int workers;                        /* thread count */
    pthread_t *tids;                    /* worker threads */
    char dummy[crypto_pwhash_STRBYTES]; /* hash verified for unknown users */
    _Atomic uint64_t hashes;            /* argon2 runs */
    _Atomic uint64_t dropped;           /* cancelled while queued */
    _Atomic uint64_t queue_full;        /* refused: queue full */
    _Atomic uint64_t owner_full;        /* refused: owner bound */
    _Atomic uint64_t depth;             /* `queued`, readable without the lock */
};

typedef struct worker_arg {
    app_pwpool_t *pool; /* the pool */
    int index;          /* its slot in pool->running */
} worker_arg_t;

int app_pw_hash(const char *password, char *out, size_t cap)
{
    if (cap < crypto_pwhash_STRBYTES)
        return TESS_ENOSPACE;
    if (crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return TESS_ENOMEM;
    return 0;
}

/* On the home loop. */
static void on_done(void *arg)
{
    pwjob_t *job = arg;
    job->cb(job->arg, job->ok);
    free(job);
}

static void *worker(void *p)
{
    worker_arg_t *wa = p;
    app_pwpool_t *pool = wa->pool;
    int index = wa->index;

    free(wa);
    for (;;) {
        pwjob_t *job;
        pthread_mutex_lock(&pool->mu);
        pool->running[index] = 0;
        while (pool->head == NULL && !pool->stop)
            pthread_cond_wait(&pool->cv, &pool->mu);
        if (pool->head == NULL) {
            pthread_mutex_unlock(&pool->mu);
            return NULL;
        }
        job = pool->head;
        pool->head = job->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        --pool->queued;
        atomic_store_explicit(&pool->depth, pool->queued, memory_order_relaxed);
        pool->running[index] = job->owner;
        int stopping = pool->stop;
        pthread_mutex_unlock(&pool->mu);

        /* Stopping: what is still queued is answered "no" at once, not hashed (each hash is ~50 ms). */
        const char *hash = job->hash[0] != '\0' ? job->hash : pool->dummy;
        int ok = !stopping && crypto_pwhash_str_verify(hash, job->password, job->password_len) == 0;
        if (!stopping)
            atomic_fetch_add_explicit(&pool->hashes, 1, memory_order_relaxed);
        job->ok = ok && job->hash[0] != '\0';
        sodium_memzero(job->password, sizeof(job->password));
        job->home->ops->post(job->home, on_done, job);
    }
}

/* Jobs of `owner` queued or running; under pool->mu. */
static size_t owner_count(const app_pwpool_t *pool, uint64_t owner)
{
    size_t n = 0;
    for (const pwjob_t *j = pool->head; j != NULL; j = j->next)
        n += j->owner == owner;
    for (int i = 0; i < pool->workers; ++i)
        n += pool->running[i] == owner;
    return n;
}

int app_pw_submit(app_pwpool_t *pool, const app_pw_job_opts_t *o, uint64_t *id)
{
    pwjob_t *job;
    int rc = 0;

    if (id != NULL)
        *id = 0;
    if (o->password.len > PW_MAX || (o->hash != NULL && strlen(o->hash) >= sizeof(job->hash)))
        return TESS_EINVAL;
    if (o->home->ops->post == NULL)
        return TESS_EINVAL;
    if ((job = calloc(1, sizeof(*job))) == NULL)
        return TESS_ENOMEM;
    job->home = o->home;
    job->cb = o->cb;
    job->arg = o->arg;
    job->owner = o->owner;
    if (o->hash != NULL)
        strcpy(job->hash, o->hash);
    memcpy(job->password, o->password.ptr, o->password.len);
    job->password_len = o->password.len;

    pthread_mutex_lock(&pool->mu);
    if (pool->queued >= pool->queue_max || pool->stop) {
        atomic_fetch_add_explicit(&pool->queue_full, 1, memory_order_relaxed);
        rc = TESS_EUNAVAIL;
    } else if (o->owner != 0 && o->owner_max > 0 && owner_count(pool, o->owner) >= o->owner_max) {
        atomic_fetch_add_explicit(&pool->owner_full, 1, memory_order_relaxed);
        rc = TESS_EDENIED;
    }
    if (rc != 0) {
        pthread_mutex_unlock(&pool->mu);
        sodium_memzero(job->password, sizeof(job->password));
        free(job);
        return rc;
    }
    job->id = ++pool->next_id;
    if (id != NULL)
        *id = job->id;
    if (pool->tail != NULL)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    ++pool->queued;
    atomic_store_explicit(&pool->depth, pool->queued, memory_order_relaxed);
    pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    return 0;
}

int app_pw_verify(app_pwpool_t *pool, tess_loop_t *home, const char *hash, tess_str_t password, app_pw_cb cb, void *arg)
{
    app_pw_job_opts_t o = {.home = home, .hash = hash, .password = password, .cb = cb, .arg = arg};
    return app_pw_submit(pool, &o, NULL);
}

int app_pw_cancel(app_pwpool_t *pool, uint64_t id)
{
    pwjob_t **pp, *job = NULL, *prev = NULL;

    if (id == 0)
        return 0;
    pthread_mutex_lock(&pool->mu);
    for (pp = &pool->head; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            job = *pp;
            *pp = job->next;
            if (pool->tail == job)
                pool->tail = prev;
            --pool->queued;
            atomic_store_explicit(&pool->depth, pool->queued, memory_order_relaxed);
            break;
        }
    }
    pthread_mutex_unlock(&pool->mu);
    if (job == NULL)
        return 0;
    atomic_fetch_add_explicit(&pool->dropped, 1, memory_order_relaxed);
    sodium_memzero(job->password, sizeof(job->password));
    free(job);
    return 1;
}

void app_pw_get_stats(app_pwpool_t *pool, app_pw_stats_t *out)
{
    out->hashes = atomic_load_explicit(&pool->hashes, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&pool->dropped, memory_order_relaxed);
    out->queue_full = atomic_load_explicit(&pool->queue_full, memory_order_relaxed);
    out->owner_full = atomic_load_explicit(&pool->owner_full, memory_order_relaxed);
    out->queued = atomic_load_explicit(&pool->depth, memory_order_relaxed);
}

int app_pwpool_new(app_pwpool_t **out, int workers, size_t queue_max)
{
    app_pwpool_t *pool = NULL;
    uint8_t junk[32];
    char junk_pw[65];
    int rc = 0;

    *out = NULL;
    if (sodium_init() < 0)
        return TESS_EIO;
    if (workers < 1)
        return TESS_EINVAL;
    if ((pool = calloc(1, sizeof(*pool))) == NULL ||
        (pool->tids = calloc((size_t)workers, sizeof(pthread_t))) == NULL ||
        (pool->running = calloc((size_t)workers, sizeof(uint64_t))) == NULL) {
        rc = TESS_ENOMEM;
        goto out;
    }
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pool->queue_max = queue_max;
    /* A hash of a random password nobody knows: unknown users are verified against it. */
    randombytes_buf(junk, sizeof(junk));
    sodium_bin2hex(junk_pw, sizeof(junk_pw), junk, sizeof(junk));
    if ((rc = app_pw_hash(junk_pw, pool->dummy, sizeof(pool->dummy))) != 0)
        goto out;
    for (; pool->workers < workers; ++pool->workers) {
        worker_arg_t *wa = malloc(sizeof(*wa));
        if (wa == NULL) {
            rc = TESS_ENOMEM;
            goto out;
        }
        wa->pool = pool;
        wa->index = pool->workers;
        if (pthread_create(&pool->tids[pool->workers], NULL, worker, wa) != 0) {
            free(wa);
            rc = TESS_EIO;
            goto out;
        }
    }
    *out = pool;
    pool = NULL;
out:
    app_pwpool_free(pool);
    return rc;
}

void app_pwpool_free(app_pwpool_t *pool)
{
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->workers; ++i)
        pthread_join(pool->tids[i], NULL);
    /* Jobs still queued belong to loops that are gone by now. */
    while (pool->head != NULL) {
        pwjob_t *job = pool->head;
        pool->head = job->next;
        free(job);
    }
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool->tids);
    free(pool->running);
    free(pool);
}
