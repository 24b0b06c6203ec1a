/*
 * Cross-site request forgery (csrf.h): the verdict, and the check the router runs.
 */
#include <string.h>

#include "server/csrf.h"

/* ASCII case-insensitive equality of `a` and NUL-terminated lower-case `lit`. */
static int eq_lower(tess_str_t a, const char *lit)
{
    size_t n = strlen(lit);
    if (a.len != n)
        return 0;
    for (size_t i = 0; i < n; ++i) {
        char c = a.ptr[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lit[i])
            return 0;
    }
    return 1;
}

int csrf_json_type(tess_str_t v)
{
    static const char type[] = "application/json";
    size_t i = 0, n = sizeof(type) - 1;

    while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t'))
        ++i;
    if (v.len - i < n || !eq_lower(tess_strn(v.ptr + i, n), type))
        return 0;
    i += n;
    while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t'))
        ++i;
    return i == v.len || v.ptr[i] == ';';
}

csrf_verdict_t csrf_judge(const csrf_input_t *in, const app_origins_t *allowed)
{
    if (tess_str_eq(in->method, TESS_STR_LIT("GET")) || tess_str_eq(in->method, TESS_STR_LIT("HEAD")))
        return CSRF_OK;
    if (in->origins > 1)
        return CSRF_FORBIDDEN;
    if (in->origins == 1) {
        /* A browser names the page's origin; "null" (sandboxed frames, file: pages, some redirects) is none. */
        if (!app_origin_allowed(allowed, in->origin, in->authority))
            return CSRF_FORBIDDEN;
    } else if (in->fetch_site.len > 0 && !eq_lower(in->fetch_site, "same-origin") &&
               !eq_lower(in->fetch_site, "none")) {
        /* cross-site, same-site (a sibling subdomain is another origin), or a value we do not know */
        return CSRF_FORBIDDEN;
    }
    if (in->body_len > 0 && (in->content_types != 1 || !csrf_json_type(in->content_type)))
        return CSRF_NOT_JSON;
    return CSRF_OK;
}

/* Counts the headers named `name` (lower case) and keeps the first value. */
static size_t header_count(const h2o_headers_t *headers, const char *name, tess_str_t *first)
{
    size_t n = 0, len = strlen(name);
    ssize_t i = -1;
    *first = tess_strn(NULL, 0);
    while ((i = h2o_find_header_by_str(headers, name, len, i)) != -1) {
        if (n++ == 0)
            *first = tess_strn(headers->entries[i].value.base, headers->entries[i].value.len);
    }
    return n;
}

int csrf_check(tess_req_t *r)
{
    h2o_req_t *req = r->req;
    csrf_input_t in;
    ssize_t i = -1;

    memset(&in, 0, sizeof(in));
    in.method = tess_strn(req->method.base, req->method.len);
    if (tess_str_eq(in.method, TESS_STR_LIT("GET")) || tess_str_eq(in.method, TESS_STR_LIT("HEAD")))
        return 0; /* the common case, without looking at a header */
    in.origins = header_count(&req->headers, "origin", &in.origin);
    header_count(&req->headers, "sec-fetch-site", &in.fetch_site);
    in.authority = tess_strn(req->input.authority.base, req->input.authority.len);
    while ((i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, i)) != -1) {
        if (in.content_types++ == 0)
            in.content_type = tess_strn(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
    }
    in.body_len = req->entity.base != NULL ? req->entity.len : 0;
    switch (csrf_judge(&in, &r->th->srv->cfg.origins)) {
    case CSRF_OK:
        return 0;
    case CSRF_FORBIDDEN:
        send_error(r, 403, "forbidden", "cross-site request refused (see TESSERA_ALLOWED_ORIGINS)");
        return -1;
    case CSRF_NOT_JSON:
        add_header(r, "accept", "application/json", strlen("application/json"));
        send_error(r, 415, "unsupported_media_type", "the body must be sent as Content-Type: application/json");
        return -1;
    }
    return 0;
}
