/*
 * Passwords: argon2id (libsodium) hashing, and verification off the event loops.
 *
 * Verification costs tens of milliseconds and 64 MiB, so it runs on a few worker threads fed by one bounded
 * queue; the result comes back on the submitting loop through its `post` (tessera/loop.h). Unknown users are
 * verified against a dummy hash of a random password, so a reply takes the same time either way.
 *
 * Thread-safety: one pool serves every loop of the process.
 */
#ifndef TESSERA_APP_PASSWORDS_H
#define TESSERA_APP_PASSWORDS_H

#include <stddef.h>
#include <stdint.h>

#include "tessera/common.h"
#include "tessera/loop.h"

typedef struct app_pwpool app_pwpool_t;
typedef void (*app_pw_cb)(void *arg, int ok);

/* One password check to run (app_pw_submit). */
typedef struct app_pw_job_opts {
    tess_loop_t *home;   /* where `cb` runs (needs `post`) */
    const char *hash;    /* stored hash; NULL: the dummy hash (`ok` is then 0) */
    tess_str_t password; /* candidate (copied; at most 1024 bytes) */
    uint64_t owner;      /* who asks (e.g. a keyed hash of the client address); 0: nobody in particular */
    size_t owner_max;    /* jobs of one owner queued or running at once (0: no bound) */
    app_pw_cb cb;        /* completion, on `home`'s thread */
    void *arg;           /* its argument */
} app_pw_job_opts_t;

/* Counters of a pool (/metrics); read relaxed, each may lag one update behind. */
typedef struct app_pw_stats {
    uint64_t hashes;     /* argon2 verifications run */
    uint64_t dropped;    /* jobs cancelled before they ran (their client went away) */
    uint64_t queue_full; /* jobs refused: the queue was full */
    uint64_t owner_full; /* jobs refused: their owner had owner_max in flight */
    uint64_t queued;     /* jobs waiting now (gauge) */
} app_pw_stats_t;

/* Starts `workers` threads with a queue of at most `queue_max` jobs. Returns 0, TESS_ENOMEM, TESS_EIO. */
int app_pwpool_new(app_pwpool_t **out, int workers, size_t queue_max);
/*
 * Stops the workers (after the loops they answer to have stopped): each finishes the hash it is on; the jobs
 * still queued are answered "no" (ok = 0) without hashing, so a stop never waits for a full queue of hashes.
 * Every answer is posted to its home loop as usual (callbacks run once, when that loop runs its posts). NULL
 * is a no-op.
 */
void app_pwpool_free(app_pwpool_t *pool);
/*
 * Verifies `password` against `hash` (NULL: against the dummy hash; `ok` is then 0) on a worker; `cb(arg, ok)`
 * then runs on `home`'s thread. Returns 0, TESS_EUNAVAIL when the queue is full, TESS_EINVAL (oversized input,
 * or a loop without `post`); no callback on failure.
 */
int app_pw_verify(app_pwpool_t *pool, tess_loop_t *home, const char *hash, tess_str_t password, app_pw_cb cb,
                  void *arg);
/*
 * As app_pw_verify, with an owner bound, and the job's id in `*id` (for app_pw_cancel). Returns 0 (the
 * callback comes exactly once, never inside this call, unless the job is cancelled), TESS_EUNAVAIL (queue
 * full), TESS_EDENIED (the owner has `owner_max` jobs queued or running), TESS_EINVAL; no callback on failure.
 */
int app_pw_submit(app_pwpool_t *pool, const app_pw_job_opts_t *opts, uint64_t *id);
/*
 * Cancels job `id` if it is still queued: returns 1 (dropped: its callback never comes) or 0 (it is running
 * or done: its callback comes, or came). Any thread.
 */
int app_pw_cancel(app_pwpool_t *pool, uint64_t id);
void app_pw_get_stats(app_pwpool_t *pool, app_pw_stats_t *out);
/* Hashes a password (argon2id, interactive limits) synchronously; for the command line. 0, TESS_ENOSPACE, ... */
int app_pw_hash(const char *password, char *out, size_t cap);

#endif
