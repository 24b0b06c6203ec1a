/*
 * Password verification off the event loops: a few worker threads take jobs from one bounded queue and
 * hand the result back to the submitting loop through its thread-safe `post` (tessera/loop.h).
 */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "app/passwords.h"
#include "tessera/error.h"

#define PW_MAX 1024

typedef struct pwjob {
    struct pwjob *next;                /* queue link */
    tess_loop_t *home;                 /* where to deliver */
    app_pw_cb cb;                      /* completion, on the home loop */
    void *arg;                         /* its argument */
    char hash[crypto_pwhash_STRBYTES]; /* stored hash, or "" for the dummy */
    char password[PW_MAX + 1];         /* candidate, wiped after use */
    size_t password_len;               /* its length */
    int ok;                            /* result */
} pwjob_t;

struct app_pwpool {
    pthread_mutex_t mu;                 /* guards the queue */
    pthread_cond_t cv;                  /* signals work or stop */
    pwjob_t *head, *tail;               /* FIFO */
    size_t queued, queue_max;           /* length and bound */
    int stop;                           /* workers exit */
    int workers;                        /* thread count */
    pthread_t *tids;                    /* worker threads */
    char dummy[crypto_pwhash_STRBYTES]; /* hash verified for unknown users */
};

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
    app_pwpool_t *pool = p;

    for (;;) {
        pwjob_t *job;
        pthread_mutex_lock(&pool->mu);
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
        int stopping = pool->stop;
        pthread_mutex_unlock(&pool->mu);

        /* Stopping: what is still queued is answered "no" at once, not hashed (each hash is ~50 ms). */
        const char *hash = job->hash[0] != '\0' ? job->hash : pool->dummy;
        int ok = !stopping && crypto_pwhash_str_verify(hash, job->password, job->password_len) == 0;
        job->ok = ok && job->hash[0] != '\0';
        sodium_memzero(job->password, sizeof(job->password));
        job->home->ops->post(job->home, on_done, job);
    }
}

int app_pw_verify(app_pwpool_t *pool, tess_loop_t *home, const char *hash, tess_str_t password, app_pw_cb cb, void *arg)
{
    pwjob_t *job;

    if (password.len > PW_MAX || (hash != NULL && strlen(hash) >= sizeof(job->hash)))
        return TESS_EINVAL;
    if (home->ops->post == NULL)
        return TESS_EINVAL;
    if ((job = calloc(1, sizeof(*job))) == NULL)
        return TESS_ENOMEM;
    job->home = home;
    job->cb = cb;
    job->arg = arg;
    if (hash != NULL)
        strcpy(job->hash, hash);
    memcpy(job->password, password.ptr, password.len);
    job->password_len = password.len;

    pthread_mutex_lock(&pool->mu);
    if (pool->queued >= pool->queue_max || pool->stop) {
        pthread_mutex_unlock(&pool->mu);
        sodium_memzero(job->password, sizeof(job->password));
        free(job);
        return TESS_EUNAVAIL;
    }
    if (pool->tail != NULL)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    ++pool->queued;
    pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    return 0;
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
    if ((pool = calloc(1, sizeof(*pool))) == NULL ||
        (pool->tids = calloc((size_t)workers, sizeof(pthread_t))) == NULL) {
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
        if (pthread_create(&pool->tids[pool->workers], NULL, worker, pool) != 0) {
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
    free(pool);
}
