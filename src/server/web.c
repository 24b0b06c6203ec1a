/*
 * The pre-chat page (web.h): the embedded files of web/, with the page's security headers.
 */
#include <string.h>

#include "server/poll.h"
#include "server/request.h"
#include "server/web.h"

/*
 * No inline script or style anywhere, nothing from another origin, never framed. connect-src 'self' covers
 * fetch and EventSource to the API of the same origin.
 */
#define WEB_CSP                                                                                                        \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "                    \
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const web_asset_t *web_find(const char *path, size_t n)
{
    for (size_t i = 0; i < web_assets_count; ++i) {
        if (strlen(web_assets[i].path) == n && memcmp(web_assets[i].path, path, n) == 0)
            return &web_assets[i];
    }
    return NULL;
}

static void add_static(h2o_req_t *req, const char *name, const char *value)
{
    /* Both strings are static: h2o may keep the pointers. */
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value, strlen(value));
}

int web_try(tess_req_t *r)
{
    h2o_req_t *req = r->req;
    size_t n = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    const web_asset_t *a = web_find(req->path.base, n);
    int head;

    if (a == NULL)
        return 0;
    head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (!head && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        add_header(r, "allow", "GET, HEAD", 9);
        send_error(r, 405, "method_not_allowed", "method not allowed on this path");
        return 1;
    }
    add_static(req, "content-security-policy", WEB_CSP);
    add_static(req, "x-content-type-options", "nosniff");
    add_static(req, "x-frame-options", "DENY");
    add_static(req, "referrer-policy", "no-referrer");
    add_static(req, "cross-origin-opener-policy", "same-origin");
    add_static(req, "cache-control", "no-cache"); /* kept, but asked again (a 304) before each use */
    add_static(req, "etag", a->etag);
    if (etag_matches(&req->headers, tess_str(a->etag))) {
        req->res.status = 304;
        req->res.reason = "Not Modified";
        send_headers_only(req);
        return 1;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    add_static(req, "content-type", a->type);
    req->res.content_length = a->len;
    if (head) {
        send_headers_only(req);
    } else {
        static h2o_generator_t generator = {NULL, NULL}; /* the bytes are static: one send, no copy */
        h2o_iovec_t body = h2o_iovec_init(a->data, a->len);
        h2o_start_response(req, &generator);
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
    }
    return 1;
}
