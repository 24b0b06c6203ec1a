#ifndef TESSERA_SERVER_LOOP_H2O_H
#define TESSERA_SERVER_LOOP_H2O_H

#include <h2o.h>

#include "tessera/loop.h"

/* A tess_loop_t over an h2o evloop; embed it where the loop lives. */
typedef struct tess_h2o_loop {
    tess_loop_t super;  /* first member: pass &super to the stores */
    h2o_evloop_t *loop; /* the evloop */
} tess_h2o_loop_t;

void tess_h2o_loop_init(tess_h2o_loop_t *l, h2o_evloop_t *loop);

#endif
