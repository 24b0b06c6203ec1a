/*
 * Routing: one table of every endpoint, matched on the normalized path; the session check runs before any
 * route that needs one.
 */
#ifndef TESSERA_SERVER_ROUTER_H
#define TESSERA_SERVER_ROUTER_H

#include "server/request.h"

typedef struct route {
    const char *method;  /* "GET" or "POST" (GET also answers HEAD) */
    const char *prefix;  /* fixed part of the path */
    const char *suffix;  /* after {id} ("" for none; NULL: no {id}) */
    int auth;            /* 1: runs after the session check */
    int body;            /* takes a JSON object body */
    tess_req_handler fn; /* handler */
} route_t;

/*
 * Finds the route of `method` and `path`. Returns it with `*id` filled (when the route has one), or NULL
 * with `*status` and a message in `*why`: 404 (no such path, or an {id} that is not a positive decimal of at
 * most 18 digits) or 405 (the path exists for other methods, listed in `allow`, e.g. "GET, POST").
 */
const route_t *route_find(tess_str_t method, tess_str_t path, int64_t *id, int *status, const char **why, char *allow,
                          size_t allowcap);

/* The table's size, and route `i` of it (0 <= i < route_count()), for the per-route counters. */
size_t route_count(void);
const route_t *route_at(size_t i);

/* The h2o request handler; registered on "/". */
int router_on_req(h2o_handler_t *self, h2o_req_t *req);

/* The route handlers, by resource: auth.c, prechats.c, poll.c, ops.c. */
void h_login(tess_req_t *r);
void h_logout(tess_req_t *r);
void h_session(tess_req_t *r);
void h_auth(tess_req_t *r);
void h_prechat_create(tess_req_t *r);
void h_prechat_list(tess_req_t *r);
void h_prechat_get(tess_req_t *r);
void h_prechat_join(tess_req_t *r);
void h_prechat_leave(tess_req_t *r);
void h_prechat_close(tess_req_t *r);
void h_message_add(tess_req_t *r);
void h_message_list(tess_req_t *r);
void h_prechat_meta(tess_req_t *r);
void h_healthz(tess_req_t *r);
void h_readyz(tess_req_t *r);
void h_metrics(tess_req_t *r);

#endif
