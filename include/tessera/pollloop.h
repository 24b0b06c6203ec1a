/*
 * A tiny poll()-based tess_loop_t (single thread, ms timers) for the command line tools and the C
 * integration tests.
 *
 *   tess_poll_loop_t *l = tess_poll_loop_new();
 *   tess_pgstore_open(&store, tess_poll_loop_base(l), ...);
 *   tess_poll_loop_run_until(l, done, &state, 5000);   // runs until done(&state) or 5 s pass
 *   tess_poll_loop_free(l);                             // after every watcher/timer user is closed
 *
 * io/timer free is safe from inside callbacks (freed at the end of the iteration).
 */
#ifndef TESSERA_POLLLOOP_H
#define TESSERA_POLLLOOP_H

#include <stdint.h>

#include "tessera/common.h"

#include "tessera/loop.h"

typedef struct tess_poll_loop tess_poll_loop_t;

TESS_API tess_poll_loop_t *tess_poll_loop_new(void); /* NULL when out of memory */
TESS_API tess_loop_t *tess_poll_loop_base(tess_poll_loop_t *l);
TESS_API void tess_poll_loop_free(tess_poll_loop_t *l);

/* One iteration: waits up to max_wait_ms (0: none) for I/O or the next timer, runs callbacks. */
TESS_API void tess_poll_loop_run_once(tess_poll_loop_t *l, int max_wait_ms);
/* Iterates until pred(arg) is non-zero (returns 1) or timeout_ms pass (returns 0). pred NULL: runs out the time. */
TESS_API int tess_poll_loop_run_until(tess_poll_loop_t *l, int (*pred)(void *arg), void *arg, int64_t timeout_ms);
/* Live watchers and armed timers (to check that a closed client left nothing behind). */
TESS_API int tess_poll_loop_live_ios(const tess_poll_loop_t *l);
TESS_API int tess_poll_loop_armed_timers(const tess_poll_loop_t *l);

#endif
