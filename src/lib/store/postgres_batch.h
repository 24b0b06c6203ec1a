/* The PostgreSQL store's lookup batching (postgres.c), seen from its tests. */
#ifndef TESS_STORE_POSTGRES_BATCH_H
#define TESS_STORE_POSTGRES_BATCH_H

#include <stdint.h>

#include "tessera/store.h"

/* How many multi-lookup statements (`sid = ANY($1)`) `store` has sent; 0 for any other store. Loop thread. */
uint64_t tess__pgstore_batches(tess_store_t *store);

#endif
