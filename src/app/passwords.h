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

#include "tessera/common.h"
#include "tessera/loop.h"

typedef struct app_pwpool app_pwpool_t;
typedef void (*app_pw_cb)(void *arg, int ok);

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
/* Hashes a password (argon2id, interactive limits) synchronously; for the command line. 0, TESS_ENOSPACE, ... */
int app_pw_hash(const char *password, char *out, size_t cap);

#endif
