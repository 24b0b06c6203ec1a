/*
 * A tiny poll()-based tess_loop_t (single thread, ms timers) for the command line tools and the C
 * integration tests.
 *
 *   poll_loop_t *l = poll_loop_new();
 *   tess_pgstore_open(&store, poll_loop_base(l), ...);
 *   poll_loop_run_until(l, done, &state, 5000);   // runs until done(&state) or 5 s pass
 *   poll_loop_free(l);                             // after every watcher/timer user is closed
 *
 * io/timer free is safe from inside callbacks (freed at the end of the iteration).
 */
#ifndef TESS_TEST_POLL_LOOP_H
#define TESS_TEST_POLL_LOOP_H

#include <stdint.h>

#include "tessera/loop.h"

typedef struct poll_loop poll_loop_t;

poll_loop_t *poll_loop_new(void); /* NULL when out of memory */
tess_loop_t *poll_loop_base(poll_loop_t *l);
void poll_loop_free(poll_loop_t *l);

/* One iteration: waits up to max_wait_ms (0: none) for I/O or the next timer, runs callbacks. */
void poll_loop_run_once(poll_loop_t *l, int max_wait_ms);
/* Iterates until pred(arg) is non-zero (returns 1) or timeout_ms pass (returns 0). pred NULL: runs out the time. */
int poll_loop_run_until(poll_loop_t *l, int (*pred)(void *arg), void *arg, int64_t timeout_ms);
/* Live watchers and armed timers (to check that a closed client left nothing behind). */
int poll_loop_live_ios(const poll_loop_t *l);
int poll_loop_armed_timers(const poll_loop_t *l);

#endif
