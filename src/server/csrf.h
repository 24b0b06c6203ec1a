/*
 * Cross-site request forgery: the check every state-changing request passes, once, in the router, before
 * its route runs (and before its body is parsed).
 *
 * State-changing: every method but GET and HEAD (which change nothing here). Such a request is refused
 *   - 403 when it carries an Origin that is not allowed (origins.h: TESSERA_ALLOWED_ORIGINS, else the
 *     request's own host; "null" never is), more than one Origin, or no Origin with a Sec-Fetch-Site other
 *     than same-origin or none (a browser that calls it same-site or cross-site sent no Origin to check);
 *   - 415 when it has a body that is not Content-Type: application/json (parameters allowed): the types a
 *     page on another site may send without asking (text/plain, forms) are never read as JSON.
 * A request without Origin and without Sec-Fetch-Site (curl, a server-side client) passes the first rule:
 * it is not a browser acting for a page of another site.
 */
#ifndef TESSERA_SERVER_CSRF_H
#define TESSERA_SERVER_CSRF_H

#include "app/origins.h"
#include "server/request.h"

typedef enum csrf_verdict {
    CSRF_OK = 0,    /* go on */
    CSRF_FORBIDDEN, /* 403: another site's page, or one that cannot be told apart from one */
    CSRF_NOT_JSON,  /* 415: a body of another type */
} csrf_verdict_t;

/* What the check reads of a request. */
typedef struct csrf_input {
    tess_str_t method;       /* request method */
    size_t origins;          /* Origin headers */
    tess_str_t origin;       /* the first one's value */
    tess_str_t fetch_site;   /* Sec-Fetch-Site (empty when absent) */
    tess_str_t authority;    /* Host, or HTTP/2 :authority */
    size_t content_types;    /* Content-Type headers */
    tess_str_t content_type; /* the first one's value */
    size_t body_len;         /* body bytes */
} csrf_input_t;

/* The verdict on `in` with allowed origins `allowed`. Pure. */
csrf_verdict_t csrf_judge(const csrf_input_t *in, const app_origins_t *allowed);

/* 1 when `value` is application/json, parameters or not ("application/json; charset=utf-8"), any case. */
int csrf_json_type(tess_str_t value);

/* Judges `r` (the server's allowed origins) and answers a refusal. Returns 0 to go on, -1 when answered. */
int csrf_check(tess_req_t *r);

#endif
