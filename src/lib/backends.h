/*
 * Process-wide counters of the networked backends (Redis, PostgreSQL): bumped where rconn.c and pgconn.c
 * detect a failure, a timeout or a reconnect (relaxed atomics, any thread), read by tess_deploy_stats().
 */
#ifndef TESSERA_LIB_BACKENDS_H
#define TESSERA_LIB_BACKENDS_H

#include <stdatomic.h>
#include <stdint.h>

enum { TESS__BACKEND_REDIS, TESS__BACKEND_POSTGRES, TESS__BACKENDS };

typedef struct tess__backend_counters {
    _Atomic uint64_t errors;     /* calls that failed (connection down or lost, no reply) and failed connects */
    _Atomic uint64_t timeouts;   /* commands or connects past their deadline (the connection is dropped) */
    _Atomic uint64_t reconnects; /* reconnect attempts after a failure */
} tess__backend_counters_t;

extern tess__backend_counters_t tess__backends[TESS__BACKENDS];

static inline void tess__backend_count(_Atomic uint64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

#endif
