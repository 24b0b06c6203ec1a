/*
 * Waiting without polling (push.c): long-polls of the meta and of the messages, and the event stream
 * (Server-Sent Events), all woken by the change bus (bus.h) instead of asking the database every second.
 *
 * Per loop, waiters are grouped by pre-chat: a change of pre-chat P is one meta read (the meta cache) and
 * at most one message query for all of P's waiters on that loop. Session events (logout, revocation, a
 * foreign write of the session) re-validate only the waiters of that session or user; a session's expiry
 * ends its waiters on time. Bounds: TESSERA_MAX_WAITERS_PER_SESSION / _PER_USER (429 beyond them); every
 * waiter is a connection, so TESSERA_MAX_CONNECTIONS counts them too.
 */
#ifndef TESSERA_SERVER_PUSH_H
#define TESSERA_SERVER_PUSH_H

#include "server/poll.h"

#define WAIT_MAX_S 60 /* ?wait=N: 1..60 seconds */

/* Event kinds the bus hands to push_event(). */
enum { PUSH_PRECHAT = 1, PUSH_QUEUE, PUSH_SID, PUSH_UID, PUSH_ALL, PUSH_QUEUE_NEW, PUSH_LIVE };

/* The per-loop state, in server_thread_t. */
typedef struct push_loop push_loop_t;

/* Sets up / frees a loop's waiters (on that loop's thread, before it runs / after it stopped). */
int push_loop_init(server_thread_t *th);
void push_loop_free(server_thread_t *th);
/*
 * Stopping: held long-polls answer now (304, or an empty list), streams end with a `retry:` hint. Returns
 * the number of responses still being written (the loop should run until it is 0, bounded).
 */
size_t push_shutdown(server_thread_t *th);
size_t push_pending(server_thread_t *th);
/* The number of waiters open on this loop (/metrics; relaxed). */
size_t push_count(server_thread_t *th);

/* A change event on this loop: `kind` with the pre-chat `id` or the session / user `key`. */
void push_event(server_thread_t *th, int kind, int64_t id, tess_str_t key);

/* Typing or a read receipt of pre-chat `id` (livechat.h): to each of its streams on this loop. */
struct live_event;
void push_live(server_thread_t *th, int64_t id, const struct live_event *ev);

/* ?wait=N: 0 when absent; 400 sent (returns -1) when not an integer in 1..WAIT_MAX_S. */
int wait_param(tess_req_t *r, int64_t *wait_s);

/* Holds a meta request whose If-None-Match is `v`'s tag until the meta changes or `wait_s` pass (poll.c). */
void wait_meta(tess_req_t *r, const meta_view_t *v, int64_t wait_s);
/* Holds a message list that found nothing after `after` until one arrives or `wait_s` pass (prechats.c). */
void wait_messages(tess_req_t *r, int64_t after, int64_t limit, int64_t wait_s);
/*
 * Holds an agent's GET /api/prechats?status=waiting&wait=N whose If-None-Match is `etag`, the list's current
 * tag for `limit` rows, until the list shows something else (200, the new list and tag) or `wait_s` pass (304).
 */
void wait_list(tess_req_t *r, const char *etag, int64_t limit, int64_t wait_s);
/* GET /api/prechats/{id}/events. */
void h_prechat_events(tess_req_t *r);

#endif
