/*
 * Roles of tokens that carry none (the note's jwt.sign({ userId }, ...)): the user's role from the users
 * table, through a process-wide cache (bounded: ROLES_MAX_ENTRIES; ROLES_TTL_MS), evicted by the change event
 * "user:<id>" that the table's triggers publish when a role changes or a user goes (bus.h). Where those events
 * reach the instance (SQLite without Redis: the file's event table; PostgreSQL without Redis: NOTIFY), a role
 * change is seen within one tail period; elsewhere within the TTL. A user the table does not know has no
 * role: the token is valid, and every role-gated route refuses it.
 */
#ifndef TESSERA_SERVER_ROLES_H
#define TESSERA_SERVER_ROLES_H

#include "server/request.h"
#include "server/server.h"

#define ROLES_TTL_MS 60000
#define ROLES_MAX_ENTRIES 100000

/* The cache (before the threads start). 0 or TESS_ENOMEM. */
int roles_init(void);
void roles_free(void);

/* Fills r->role for a session without one (r->uid set), then runs `next(r)`; 503 on a database error. */
void roles_resolve(tess_req_t *r, tess_req_handler next);

/*
 * For a session whose user is another app's (its id is not one of our users table's: a NextAuth id, or every
 * id under a NextAuth / Auth.js format): sets r->uid to the users-table row standing for it (found or made,
 * appdb user_external; cached for ROLES_TTL_MS), then runs `next(r)`; 503 on a database error.
 */
void roles_resolve_external(tess_req_t *r, tess_req_handler next);

/* A "user:<id>" change event (any thread): that user's cached role goes. */
void roles_on_user_event(tess_str_t id);
/* Change events may have been missed: everything goes. */
void roles_flush(void);

#endif
