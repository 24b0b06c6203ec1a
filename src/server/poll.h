/*
 * The polled path: GET /api/prechats/{id}/meta and everything that keeps its cached answer right (poll.c).
 */
#ifndef TESSERA_SERVER_POLL_H
#define TESSERA_SERVER_POLL_H

#include "server/request.h"

/*
 * The meta cache: the rendered meta body and its ETag per pre-chat, shared by every loop. Created for a
 * coherent deployment (with Redis), off until the coherence listener is up. Returns 0 or TESS_ENOMEM.
 */
int meta_cache_new(server_t *srv);
void meta_cache_free(server_t *srv);
/* Counters for /metrics: hits, misses, entries. 0 when there is no cache. */
int meta_cache_stats(server_t *srv, uint64_t *hits, uint64_t *misses, size_t *entries);

/* The deployment's hooks (tessera/deploy.h): an application key changed somewhere; the listener changed. */
void meta_on_app_key(void *arg, tess_str_t name);
void meta_on_coherence(void *arg, int up);

/*
 * After a write that changes what the meta of `prechat_id` shows: evicts it here and tells every instance;
 * `queue_moved`: the waiting queue moved (every waiting pre-chat's position), so everything goes.
 */
void meta_changed(server_thread_t *th, int64_t prechat_id, int queue_moved);

/*
 * RFC 9110 If-None-Match against the strong tag `etag` (with its quotes): "*" or a list of (possibly weak)
 * tags, compared weakly. Returns 1 on a match.
 */
int etag_matches(const h2o_headers_t *headers, tess_str_t etag);

/* May the session read a pre-chat with these fields (prechats.c)? Its visitor, its agent, agents while waiting. */
int prechat_may_read(const tess_req_t *r, int64_t visitor_id, int64_t agent_id, int waiting);

#endif
