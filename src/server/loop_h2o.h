#ifndef TESSERA_SERVER_LOOP_H2O_H
#define TESSERA_SERVER_LOOP_H2O_H

#include <h2o.h>
#include <pthread.h>

#include "tessera/loop.h"

struct tess_h2o_post;

/*
 * A tess_loop_t over an h2o evloop; embed it where the loop lives. It may be set up on another thread than
 * the one that runs the loop: posts wake the loop through an eventfd that h2o only watches (never reads), so
 * no h2o buffer is tied to the thread-local recycler of the thread that called tess_h2o_loop_init.
 */
typedef struct tess_h2o_loop {
    tess_loop_t super;                             /* first member: pass &super to the stores */
    h2o_evloop_t *loop;                            /* the evloop */
    int wake_fd;                                   /* eventfd written by post() from any thread (-1 none) */
    h2o_socket_t *wake;                            /* h2o's socket on a dup of it, H2O_SOCKET_FLAG_DONT_READ */
    pthread_mutex_t posts_mu;                      /* guards the posts */
    struct tess_h2o_post *posts_head, *posts_tail; /* posted, not run yet (FIFO) */
} tess_h2o_loop_t;

void tess_h2o_loop_init(tess_h2o_loop_t *l, h2o_evloop_t *loop);
/* Runs what was posted and not run yet, then releases the queue (after the loop stopped for good). */
void tess_h2o_loop_dispose(tess_h2o_loop_t *l);

#endif
