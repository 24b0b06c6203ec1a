#ifndef TESSERA_SERVER_LOOP_H2O_H
#define TESSERA_SERVER_LOOP_H2O_H

#include <h2o.h>

#include "tessera/loop.h"

/* A tess_loop_t over an h2o evloop; embed it where the loop lives. */
typedef struct tess_h2o_loop {
    tess_loop_t super;                   /* first member: pass &super to the stores */
    h2o_evloop_t *loop;                  /* the evloop */
    h2o_multithread_queue_t *queue;      /* posts from other threads */
    h2o_multithread_receiver_t receiver; /* their receiver on this loop */
} tess_h2o_loop_t;

void tess_h2o_loop_init(tess_h2o_loop_t *l, h2o_evloop_t *loop);
/* Runs what was posted and not run yet, then releases the queue (after the loop stopped for good). */
void tess_h2o_loop_dispose(tess_h2o_loop_t *l);

#endif
