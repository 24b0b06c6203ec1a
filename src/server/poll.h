/*
 * The polled path: GET /api/prechats/{id}/meta and everything that keeps its cached answer right (poll.c).
 */
#ifndef TESSERA_SERVER_POLL_H
#define TESSERA_SERVER_POLL_H

#include "server/request.h"

#define META_BODY_MAX 256 /* bytes in a rendered meta body (its fields are bounded: ~190 at most) */
#define META_ETAG_LEN 18  /* "\"" 16 hex digits "\"" */

/* A rendered meta: what a poll answers, and what access and the push paths need. */
typedef struct meta_view {
    int64_t visitor_id;           /* access: its visitor */
    int64_t agent_id;             /* access: its agent (0 while waiting) */
    int64_t last_message_id;      /* push: the newest message (0 when none) */
    uint8_t waiting;              /* access: agents may read it while it waits */
    uint8_t closed;               /* push: nothing will change any more */
    uint16_t body_len;            /* bytes in body */
    char etag[META_ETAG_LEN + 1]; /* strong tag, with its quotes */
    char body[META_BODY_MAX];     /* the JSON */
} meta_view_t;

/* rc: 0 with the view (borrowed for the call), TESS_ENOTFOUND, or a backend error. */
typedef void (*meta_cb)(void *arg, int rc, const meta_view_t *v);
/*
 * The rendered meta of pre-chat `id`: from the meta cache (the callback runs before this returns), or read
 * from the database, rendered once and cached. Returns 0 (the callback runs exactly once) or a TESS_E* (it
 * never runs).
 */
int meta_get(server_thread_t *th, int64_t id, meta_cb cb, void *arg);
/*
 * Answers a meta request from `v`: 404 when the session may not read it; else ETag, Cache-Control, and 304
 * when If-None-Match matches, 200 with the body otherwise.
 */
void meta_answer(tess_req_t *r, const meta_view_t *v);
/* 1 when the session of `r` may read the pre-chat `v` shows. */
int meta_may_read(const tess_req_t *r, const meta_view_t *v);

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
/* 1 with `*id` when `name` is "meta:<id>" with <id> in canonical decimal; 0 for anything else. */
int meta_name_id(tess_str_t name, int64_t *id);
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

/*
 * The waiting list's body for the first `limit` of `n` pre-chats (malloc, never NULL) and its strong ETag
 * (prechats.c); prechat_list_answer sends it with the tag (200).
 */
char *prechat_list_render(const appdb_prechat_t *p, size_t n, size_t limit, char etag[META_ETAG_LEN + 1]);
void prechat_list_answer(tess_req_t *r, const char *body, const char *etag);

/* A message as the API shows it (prechats.c). */
cJSON *message_json(const appdb_message_t *m);

/* May the session read a pre-chat with these fields (prechats.c)? Its visitor, its agent, agents while waiting. */
int prechat_may_read(const tess_req_t *r, int64_t visitor_id, int64_t agent_id, int waiting);

#endif
