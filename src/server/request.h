/*
 * A request as the handlers see it: its session, its path id, its body; the tickets that suspend it across an
 * asynchronous step; the responses; the small parsers the handlers share.
 *
 * A request's context lives in the h2o request pool. An asynchronous step (store, database, password check)
 * holds a heap ticket instead of the context itself: if the client goes away first, the pool is cleared,
 * the ticket is orphaned, and the completion only frees it.
 *
 * Handler state: what one handler carries across its own steps lives in a struct of that handler's, made
 * with req_state() in the request pool (never in tess_req_t).
 */
#ifndef TESSERA_SERVER_REQUEST_H
#define TESSERA_SERVER_REQUEST_H

#include <cjson/cJSON.h>

#include "server/server.h"

typedef struct tess_req tess_req_t;
typedef struct ticket ticket_t;
typedef void (*tess_req_handler)(tess_req_t *r);

struct tess_req {
    h2o_req_t *req;                     /* the h2o request (never NULL: the context dies with it) */
    server_thread_t *th;                /* serving thread */
    ticket_t *pending;                  /* the asynchronous step under way, if any */
    tess_req_handler next;              /* what runs once the session is known */
    void *state;                        /* the handler's own state (req_state) */
    int authed;                         /* a session was verified */
    char sid[TESS_SID_MAX + 1];         /* its id (the jti for jwt) */
    char user_id[TESS_USER_ID_MAX + 1]; /* its user */
    char role[TESS_ROLE_MAX + 1];       /* its role */
    int64_t expires_ms;                 /* its expiry */
    int64_t uid;                        /* user_id as a number, 0 when it is not one */
    int64_t prechat_id;                 /* {id} of the path, when the route has one */
    cJSON *body;                        /* parsed JSON body, when the route takes one */
    h2o_socket_t *held;                 /* the HTTP/1 socket whose read interest is held (request.c) */
    uint64_t auth_start_ns;             /* when the session check began (hist_now_ns) */
};

/* A request context in the pool of `req` (freed with it; an orphaned ticket then finds NULL). */
tess_req_t *req_new(h2o_req_t *req, server_thread_t *th);

/* Zeroed handler state of `size` bytes in the request pool, kept in r->state. */
void *req_state(tess_req_t *r, size_t size);

/* Suspends `r` for one asynchronous step; pass the ticket as the callback argument. */
ticket_t *req_suspend(tess_req_t *r);
/* In a completion: the request, or NULL when it is gone (the ticket is freed, or kept for reuse, either way). */
tess_req_t *req_resume(void *ticket);
/* Frees the tickets `th` keeps for reuse (when the loop closes, after its last completion). */
void req_tickets_free(server_thread_t *th);
/*
 * After starting a call with ticket `t` that returned `rc`: a call that could not start (rc != 0, so no
 * callback will come) resumes `r` and answers like a backend error. Returns rc.
 */
int req_started(tess_req_t *r, ticket_t *t, int rc);

void send_json(tess_req_t *r, int status, cJSON *obj); /* takes ownership of obj */
/* Adds `name`: the ISO 8601 UTC date of `ms` (as JavaScript's toISOString). */
void json_add_iso(cJSON *o, const char *name, int64_t ms);
void send_error(tess_req_t *r, int status, const char *code, const char *message);
void send_empty(tess_req_t *r, int status);
/* Sends the response headers set so far with no body (204, 304), in one write. */
void send_headers_only(h2o_req_t *req);
/* Maps a backend error to its reply: 503 + Retry-After for an outage, 404 for NOTFOUND, 409, ... */
void send_backend_error(tess_req_t *r, int rc);
/* Adds a response header; the value is copied into the request pool (h2o keeps pointers, not bytes). */
void add_header(tess_req_t *r, const char *name, const char *value, size_t len);
/* The reason phrase of a status code. */
const char *reason_of(int status);

/*
 * Parses the JSON body into r->body: one object, no \u0000 escape, no repeated member name, at most 64
 * members per object and 16 levels; 400/413 sent on failure (returns -1).
 */
int parse_json_body(tess_req_t *r);
/*
 * parse_json_body's rules on `text` (at most `max` bytes), without a request. Returns 0 with the object in
 * `*out` (cJSON_Delete), or the status to answer (400, 413) with `*out` NULL and the error's code and message
 * (static strings) in `*code` and `*message`.
 */
int json_body_parse(tess_str_t text, size_t max, cJSON **out, const char **code, const char **message);
/*
 * A string member of r->body: 1..max bytes of valid UTF-8 without NUL bytes. Returns 0 with `*out`
 * (borrowed); on failure sends 400 (413 when too long) and returns -1.
 */
int body_string(tess_req_t *r, const char *name, size_t max, tess_str_t *out);
/*
 * body_string's rules on member `name` of `body`, without a request. Returns 0 with `*out` (borrowed from
 * `body`), or the status to answer (400, 413) with `*out` empty and the message in `msg`.
 */
int json_string_member(const cJSON *body, const char *name, size_t max, tess_str_t *out, char *msg, size_t msgcap);
/*
 * Finds query parameter `name` in `query` (the bytes after '?', at most QUERY_MAX), percent-decoded into
 * `buf`. Returns 1 found, 0 absent, -1 malformed (bad escape, NUL, too long for `cap`, query too long).
 */
int query_find(tess_str_t query, const char *name, char *buf, size_t cap);
/* query_find on the request's query string. */
int query_param(tess_req_t *r, const char *name, char *buf, size_t cap);
/* 1 when a JSON text has a \u0000 escape inside a string (cJSON would cut the string there). */
int json_has_nul_escape(tess_str_t text);
/* 1 when no object in `v` repeats a member name, has over 64 members or nests over 16 levels. */
int json_members_unique(const cJSON *v, int depth);
/* 1 when `p` is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
int utf8_valid(const unsigned char *p, size_t n);

/*
 * Joins every Cookie header (HTTP/2 splits them) into one "a=1; b=2" string (borrowed from the request).
 * Returns 0, or -1 when they exceed the bound (431 sent).
 */
int cookie_header(tess_req_t *r, tess_str_t *out);

#define QUERY_MAX 2048 /* bytes in a query string */

#endif
