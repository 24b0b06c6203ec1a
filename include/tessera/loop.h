/*
 * The event-loop interface the networked stores (Redis, PostgreSQL) are driven by.
 *
 * libtessera links no event library: the application fills one const tess_loop_ops_t for its loop (tessera
 * serve does it for h2o's evloop in src/server/loop_h2o.c) and passes a tess_loop_t to the stores. All calls
 * happen on the loop's own thread, except `post`.
 */
#ifndef TESSERA_LOOP_H
#define TESSERA_LOOP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tess_loop tess_loop_t;
typedef struct tess_io tess_io_t;       /* a watched file descriptor */
typedef struct tess_timer tess_timer_t; /* a one-shot timer */

enum { TESS_IO_READ = 1, TESS_IO_WRITE = 2 };

typedef void (*tess_io_cb)(void *arg, int events);
typedef void (*tess_timer_cb)(void *arg);

typedef struct tess_loop_ops {
    /*
     * Watches `fd` (not owned: the loop never closes it). `cb(arg, events)` runs on readiness of the events
     * enabled with io_set (none at first). Returns NULL when out of memory.
     */
    tess_io_t *(*io_new)(tess_loop_t *loop, int fd, tess_io_cb cb, void *arg);
    /* Enables exactly `events` (a mask of TESS_IO_READ / TESS_IO_WRITE). */
    void (*io_set)(tess_io_t *io, int events);
    /* Stops watching and frees; safe to call from `cb`. */
    void (*io_free)(tess_io_t *io);
    /* A stopped timer; NULL when out of memory. */
    tess_timer_t *(*timer_new)(tess_loop_t *loop, tess_timer_cb cb, void *arg);
    /* (Re)arms to fire once after `ms`. */
    void (*timer_start)(tess_timer_t *t, uint64_t ms);
    void (*timer_stop)(tess_timer_t *t);
    /* Stops and frees; safe to call from `cb`. */
    void (*timer_free)(tess_timer_t *t);
    /*
     * The one thread-safe operation: runs `fn(arg)` on the loop's own thread soon (used to hand a result
     * computed on another loop back to this one). NULL when the loop cannot be reached from other threads.
     */
    void (*post)(tess_loop_t *loop, tess_timer_cb fn, void *arg);
} tess_loop_ops_t;

struct tess_loop {
    const tess_loop_ops_t *ops; /* the application's table */
};

#ifdef __cplusplus
}
#endif
#endif
