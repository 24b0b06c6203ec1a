/*
 * Routing (router.h): the table, the match, the session check.
 */
#include <stdio.h>
#include <string.h>

#include "server/csrf.h"
#include "server/limits.h"
#include "server/livechat.h"
#include "server/push.h"
#include "server/roles.h"
#include "server/router.h"
#include "server/web.h"
#include "tessera/error.h"

static const route_t routes[] = {
    {"GET", "/healthz", NULL, 0, 0, h_healthz},
    {"GET", "/readyz", NULL, 0, 0, h_readyz},
    {"GET", "/metrics", NULL, 0, 0, h_metrics},
    {"GET", "/auth", NULL, 1, 0, h_auth},
    {"POST", "/api/auth/login", NULL, 0, 1, h_login},
    {"POST", "/api/auth/logout", NULL, 0, 0, h_logout},
    {"GET", "/api/auth/session", NULL, 1, 0, h_session},
    {"POST", "/api/prechats", NULL, 1, 1, h_prechat_create},
    {"GET", "/api/prechats", NULL, 1, 0, h_prechat_list},
    {"GET", "/api/prechats/", "/meta", 1, 0, h_prechat_meta},
    {"GET", "/api/prechats/", "/events", 1, 0, h_prechat_events},
    {"GET", "/api/prechats/", "/messages", 1, 0, h_message_list},
    {"POST", "/api/prechats/", "/messages", 1, 1, h_message_add},
    {"POST", "/api/prechats/", "/join", 1, 0, h_prechat_join},
    {"POST", "/api/prechats/", "/leave", 1, 1, h_prechat_leave},
    {"POST", "/api/prechats/", "/close", 1, 0, h_prechat_close},
    {"POST", "/api/prechats/", "/typing", 1, 0, h_prechat_typing},
    {"POST", "/api/prechats/", "/read", 1, 1, h_prechat_read},
    {"GET", "/api/prechats/", "/transcript", 1, 0, h_prechat_transcript},
    {"GET", "/api/prechats/", "", 1, 0, h_prechat_get},
};

size_t route_count(void)
{
    return sizeof(routes) / sizeof(routes[0]);
}

const route_t *route_at(size_t i)
{
    return &routes[i];
}

/* Parses a positive decimal id of at most 18 digits. */
static int parse_id(const char *p, size_t n, int64_t *out)
{
    int64_t v = 0;
    if (n == 0 || n > 18 || p[0] == '0')
        return -1;
    for (size_t i = 0; i < n; ++i) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/*
 * Matches `path` against a route's shape. Returns 1 on a match (id filled), 0 otherwise, -1 when the shape
 * matches but the id is malformed.
 */
static int route_match(const route_t *rt, tess_str_t path, int64_t *id)
{
    size_t plen = strlen(rt->prefix), slen;
    const char *idp;
    size_t idn;

    if (rt->suffix == NULL)
        return path.len == plen && memcmp(path.ptr, rt->prefix, plen) == 0;
    slen = strlen(rt->suffix);
    if (path.len <= plen + slen || memcmp(path.ptr, rt->prefix, plen) != 0 ||
        memcmp(path.ptr + path.len - slen, rt->suffix, slen) != 0)
        return 0;
    idp = path.ptr + plen;
    idn = path.len - plen - slen;
    if (memchr(idp, '/', idn) != NULL)
        return 0;
    return parse_id(idp, idn, id) == 0 ? 1 : -1;
}

const route_t *route_find(tess_str_t method, tess_str_t path, int64_t *id, int *status, const char **why, char *allow,
                          size_t allowcap)
{
    int shape_found = 0, bad_id = 0;
    int is_head = tess_str_eq(method, TESS_STR_LIT("HEAD"));

    *id = 0;
    if (allowcap > 0)
        allow[0] = '\0';
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); ++i) {
        int m = route_match(&routes[i], path, id);
        if (m == 0)
            continue;
        if (m < 0) {
            bad_id = 1;
            continue;
        }
        shape_found = 1;
        if (tess_str_eq(method, tess_str(routes[i].method)) || (is_head && strcmp(routes[i].method, "GET") == 0))
            return &routes[i];
        if (strstr(allow, routes[i].method) == NULL) {
            size_t n = strlen(allow);
            snprintf(allow + n, allowcap - n, "%s%s", n > 0 ? ", " : "", routes[i].method);
        }
    }
    *id = 0;
    *status = shape_found ? 405 : 404;
    *why = shape_found ? "method not allowed on this path" : bad_id ? "no such pre-chat" : "no such path";
    return NULL;
}

/* A NUL-terminated copy of `src`, cut to `cap` - 1 bytes (snprintf's result, without printf per request). */
static void copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void set_session(tess_req_t *r, const tess_session_t *s)
{
    int64_t uid = 0;
    r->authed = 1;
    copy_field(r->sid, sizeof(r->sid), s->id);
    copy_field(r->user_id, sizeof(r->user_id), s->user_id);
    copy_field(r->role, sizeof(r->role), s->role);
    r->expires_ms = s->expires_ms;
    /* A decimal id is one of our users' (tessera's own logins, whatever the format); any other id is another
     * app's user, mapped to a users-table row by roles_resolve_external (on_auth). */
    r->uid = tess_parse_int(s->user_id, 1, INT64_MAX, &uid) == 0 ? uid : 0;
}

/* The user is known as a users-table row (or as nobody): the role, then the route. */
static void with_uid(tess_req_t *r)
{
    if (r->role[0] == '\0')
        roles_resolve(r, r->next); /* a token without a role claim: the users table says */
    else
        r->next(r);
}

/* The session check's answer: the route's handler runs, or 401 / the backend's error. */
static void on_auth(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    tess_req_t *r = req_resume(arg);
    (void)cookie;
    if (r == NULL)
        return;
    hist_record(&r->th->auth_hist, hist_now_ns() - r->auth_start_ns);
    if (rc == 0 && s != NULL) {
        set_session(r, s);
        if (r->uid == 0 && r->user_id[0] != '\0')
            roles_resolve_external(r, with_uid); /* another app's user: the row standing for it */
        else
            with_uid(r);
    } else if (rc == TESS_EDENIED || rc == TESS_ENOTFOUND || rc == TESS_EEXPIRED || rc == TESS_EBADSIG ||
               rc == TESS_EBADFMT || rc == TESS_ETOOBIG || rc == TESS_EREVOKED) {
        send_error(r, 401, "unauthorized", "no valid session");
    } else {
        send_backend_error(r, rc);
    }
}

int router_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    server_thread_t *th = tess_thread_of(req);
    tess_req_t *r = req_new(req, th);
    const route_t *hit;
    char allow[64];
    const char *why = "";
    int status = 404;
    tess_str_t cookies;
    (void)self;

    atomic_fetch_add_explicit(&th->requests, 1, memory_order_relaxed);
    if (limits_check_head(r) != 0 || web_try(r))
        return 0;
    hit = route_find(tess_strn(req->method.base, req->method.len),
                     tess_strn(req->path_normalized.base, req->path_normalized.len), &r->prechat_id, &status, &why,
                     allow, sizeof(allow));
    if (hit == NULL) {
        if (status == 405) {
            add_header(r, "allow", allow, strlen(allow));
            send_error(r, 405, "method_not_allowed", why);
        } else {
            send_error(r, 404, "not_found", why);
        }
        return 0;
    }
    if (csrf_check(r) != 0 || (hit->body && parse_json_body(r) != 0))
        return 0;
    if (!hit->auth) {
        hit->fn(r);
        return 0;
    }
    if (cookie_header(r, &cookies) != 0)
        return 0;
    r->next = hit->fn;
    r->auth_start_ns = hist_now_ns();
    tess_auth_check(tess_deploy_loop_auth(th->sessions), cookies, tess_now_ms(), on_auth, req_suspend(r));
    return 0;
}
