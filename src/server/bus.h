/*
 * The change bus: what changed, here or on another instance, reaches the meta cache and every waiter.
 *
 * Events are names: "meta:<id>" (what pre-chat <id>'s meta shows changed), "meta:queue" (the waiting queue
 * moved), "queue:new" (a pre-chat joined the end of the queue: only the agents' waiting list changed),
 * "sid:<id>" (a session ended), "uid:<id>" (every session of a user ended), "live:<id>:..." (typing or a read
 * receipt, livechat.h: over the database only, never Redis; a process drops its own coming back). They travel
 *   with Redis            as <tessera>app:<name> keys, reported by the coherence listener (tessera/deploy.h);
 *                         session keys the listener reports (logout, revocation, foreign writes) join them
 *   PostgreSQL, no Redis  as NOTIFY tessera_events, heard by a LISTEN connection (app/appdb.h)
 *   SQLite, no Redis      as rows of the file's event table, tailed when PRAGMA data_version moves
 * and always in process at once. A process that hears an event evicts the meta cache once and hands the
 * event to each loop once (one post per loop, not per waiter); each loop wakes its own waiters (push.c).
 */
#ifndef TESSERA_SERVER_BUS_H
#define TESSERA_SERVER_BUS_H

#include "server/server.h"

/* Sets up the inboxes (before the threads start). 0 or TESS_ENOMEM. */
int bus_init(server_t *srv);
/* Opens the listener for deployments without Redis, on loop 0. 0, or -1 with a reason in `err`. */
int bus_listen(server_t *srv, char *err, size_t errcap);
/* Stops the listener (before loop 0 goes away). */
void bus_unlisten(void);
/* Frees the inboxes, once the loops are closed (closing a loop runs the drains still posted to it). */
void bus_free(server_t *srv);

/* Publishes `name` from loop `th`: handled in this process at once, sent to every other instance. */
void bus_publish(server_thread_t *th, tess_str_t name);

/* Entry points of the sources (any thread of this process). */
void bus_on_event(void *srv, tess_str_t name);                           /* an event */
void bus_on_state(void *srv, int up);                                    /* events flow, or may be missed */
void bus_on_session_key(void *srv, tess_key_kind_t kind, tess_str_t id); /* the deployment's session keys */

#endif
