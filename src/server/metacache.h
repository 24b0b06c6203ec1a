/*
 * The pre-chat meta cache: pre-chat rows by id, shared by every loop of the process, so that a poll of
 * GET /api/prechats/{id}/meta costs a memory lookup instead of a database query.
 *
 * Coherent through the invalidation listener: every write (message, join, close) evicts the row here and
 * bumps "tessera:meta:<id>" in Redis, which every instance hears of; a change of the waiting queue bumps
 * "tessera:meta:queue" and flushes (queue positions of every waiting row move). Lookups that raced an
 * eviction never put back an old row (generation guard, as in tessera/cache.h). Disabled (and flushed)
 * while the listener is down.
 */
#ifndef TESSERA_SERVER_METACACHE_H
#define TESSERA_SERVER_METACACHE_H

#include <stddef.h>
#include <stdint.h>

#include "app/appdb.h"

typedef struct metacache metacache_t;

/* Returns NULL when out of memory. `max_entries` bounds the rows kept; `ttl_ms` their life. */
metacache_t *metacache_new(size_t max_entries, int64_t ttl_ms);
void metacache_free(metacache_t *m);
/* 1 with a copy in `out`, 0 on a miss. */
int metacache_get(metacache_t *m, int64_t id, int64_t now_ms, appdb_prechat_t *out);
/* The generation to pass to metacache_put, read before the database lookup. */
uint64_t metacache_gen(metacache_t *m, int64_t id);
void metacache_put(metacache_t *m, const appdb_prechat_t *p, int64_t now_ms, uint64_t gen);
void metacache_evict(metacache_t *m, int64_t id);
void metacache_flush(metacache_t *m);
void metacache_set_enabled(metacache_t *m, int enabled);
/* Counters. */
void metacache_stats(metacache_t *m, uint64_t *hits, uint64_t *misses, size_t *entries);

#endif
