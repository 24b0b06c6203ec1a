/*
 * Per-request context, responses and the small parsers the handlers share.
 *
 * A request's context lives in the h2o request pool. An asynchronous step (store, database, password
 * check) holds a heap ticket instead of the context itself: if the client goes away first, the pool is
 * cleared, the ticket is orphaned, and the completion only frees it.
 */
#ifndef TESSERA_SERVER_HTTP_H
#define TESSERA_SERVER_HTTP_H

#include "server/server.h"

typedef struct tess_req tess_req_t;
typedef struct ticket ticket_t;
typedef void (*tess_req_handler)(tess_req_t *r);

struct tess_req {
    h2o_req_t *req;                     /* the h2o request (NULL never: the context dies with it) */
    server_thread_t *th;                /* serving thread */
    ticket_t *pending;                  /* the asynchronous step under way, if any */
    tess_req_handler next;              /* what runs once the session is known */
    int authed;                         /* a session was verified */
    char sid[TESS_SID_MAX + 1];         /* its id (the jti for jwt) */
    char user_id[TESS_USER_ID_MAX + 1]; /* its user */
    char role[TESS_ROLE_MAX + 1];       /* its role */
    int64_t expires_ms;                 /* its expiry */
    int64_t uid;                        /* user_id as a number, 0 when it is not one */
    int64_t prechat_id;                 /* {id} of the path, when the route has one */
    cJSON *body;                        /* parsed JSON body, when the route takes one */
    char pwhash[256];                   /* login: the stored hash */
    int64_t login_uid;                  /* login: the user found (0: none) */
    char login_role[TESS_ROLE_MAX + 1]; /* login: that user's role */
    uint64_t meta_gen;                  /* meta cache generation read before a database lookup */
    int was_waiting;                    /* the pre-chat being changed was in the queue */
};

/* Suspends `r` for one asynchronous step; pass the ticket as the callback argument. */
ticket_t *req_suspend(tess_req_t *r);
/* In a completion: the request, or NULL when it is gone (the ticket is freed either way). */
tess_req_t *req_resume(void *ticket);

void send_json(tess_req_t *r, int status, cJSON *obj); /* takes ownership of obj */
void send_error(tess_req_t *r, int status, const char *code, const char *message);
void send_empty(tess_req_t *r, int status);
/* Sends the response headers set so far with no body (204, 304), in one write. */
void send_headers_only(h2o_req_t *req);
/* Maps a backend error to its reply: 503 + Retry-After for an outage, 404 for NOTFOUND, 409, ... */
void send_backend_error(tess_req_t *r, int rc);
void add_header(tess_req_t *r, const char *name, const char *value, size_t len);

/* Parses the JSON body into r->body: must be an object; 400/413 sent on failure (returns -1). */
int parse_json_body(tess_req_t *r);
/*
 * A string member of r->body: 1..max bytes without NUL bytes. Returns 0 with `*out` (borrowed); on failure
 * sends 400 and returns -1.
 */
int body_string(tess_req_t *r, const char *name, size_t max, tess_str_t *out);
/* Finds query parameter `name` (percent-decoded into `buf`). Returns 1 found, 0 absent, -1 malformed. */
int query_param(tess_req_t *r, const char *name, char *buf, size_t cap);

/*
 * Joins every Cookie header (HTTP/2 splits them) into one "a=1; b=2" string (borrowed from the request).
 * Returns 0, or -1 when they exceed the bound (431 sent).
 */
int cookie_header(tess_req_t *r, tess_str_t *out);

/* Route handlers (handlers.c). */
void h_login(tess_req_t *r);
void h_logout(tess_req_t *r);
void h_session(tess_req_t *r);
void h_auth(tess_req_t *r);
void h_healthz(tess_req_t *r);
void h_readyz(tess_req_t *r);
void h_metrics(tess_req_t *r);
void h_prechat_create(tess_req_t *r);
void h_prechat_list(tess_req_t *r);
void h_prechat_get(tess_req_t *r);
void h_prechat_meta(tess_req_t *r);
void h_prechat_join(tess_req_t *r);
void h_prechat_close(tess_req_t *r);
void h_message_add(tess_req_t *r);
void h_message_list(tess_req_t *r);

#endif
