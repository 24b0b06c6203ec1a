/*
 * The request context, its tickets, the responses and the parsers the handlers share (request.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/request.h"
#include "tessera/encoding.h"
#include "tessera/error.h"

#define COOKIE_HEADER_MAX 16384 /* all Cookie headers of a request together */

struct ticket {
    tess_req_t *r;       /* NULL once the request is gone */
    server_thread_t *th; /* for the in-flight count */
    ticket_t *next;      /* in th->spare_tickets */
};

#define SPARE_TICKETS_MAX 1024 /* freed tickets a loop keeps for reuse (a hit then allocates nothing) */

/* ---- holds ------------------------------------------------------------------------------------------- */

/*
 * h2o's HTTP/1 stops reading a connection while its request is processed and starts again once the answer
 * is written. An answer given in the same loop iteration costs nothing (the poller sees no change), but an
 * asynchronous one (Redis, PostgreSQL, a password check) would cost two epoll_ctl calls: the read interest
 * dropped at the end of the iteration, and added back when the answer goes. A hold keeps the interest
 * registered without reading (h2o_socket_dont_read) and gives the socket back, not reading, as h2o left it,
 * before the answer is written. Should the client send while held (a pipelined request, a hang-up), the
 * hold ends there: h2o reads those bytes after this answer, as without a hold.
 */

static void on_held_readable(h2o_socket_t *sock, const char *err)
{
    (void)err; /* nothing was read (dont_read): the bytes or the end of file wait for h2o */
    h2o_socket_dont_read(sock, 0);
    h2o_socket_read_stop(sock);
}

static void hold_start(tess_req_t *r)
{
    h2o_req_t *req = r->req;
    h2o_socket_t *sock;

    if (r->held != NULL || req->version >= 0x200 || req->conn->callbacks->get_socket == NULL ||
        (sock = req->conn->callbacks->get_socket(req->conn)) == NULL || h2o_socket_is_reading(sock))
        return;
    h2o_socket_dont_read(sock, 1);
    h2o_socket_read_start(sock, on_held_readable);
    r->held = sock;
}

static void hold_end(tess_req_t *r)
{
    h2o_socket_t *sock = r->held;

    if (sock == NULL)
        return;
    r->held = NULL;
    h2o_socket_dont_read(sock, 0);
    if (sock->_cb.read == on_held_readable)
        h2o_socket_read_stop(sock); /* h2o starts reading again once the answer is written */
}

/* ---- tickets ------------------------------------------------------------------------------------------- */

static void req_dispose(void *p)
{
    tess_req_t *r = p;
    if (r->pending != NULL)
        r->pending->r = NULL;
    hold_end(r); /* answered while a step was under way: h2o disposes of the request before the socket */
    cJSON_Delete(r->body);
}

tess_req_t *req_new(h2o_req_t *req, server_thread_t *th)
{
    tess_req_t *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), req_dispose);
    memset(r, 0, sizeof(*r));
    r->req = req;
    r->th = th;
    return r;
}

ticket_t *req_suspend(tess_req_t *r)
{
    ticket_t *t = r->th->spare_tickets;
    if (t != NULL) {
        r->th->spare_tickets = t->next;
        --r->th->spare_count;
    } else if ((t = malloc(sizeof(*t))) == NULL) {
        h2o_fatal("out of memory");
    }
    t->r = r;
    t->th = r->th;
    r->pending = t;
    ++r->th->inflight;
    hold_start(r);
    return t;
}

tess_req_t *req_resume(void *arg)
{
    ticket_t *t = arg;
    tess_req_t *r = t->r;
    server_thread_t *th = t->th;
    --th->inflight;
    if (th->spare_count < SPARE_TICKETS_MAX) {
        t->next = th->spare_tickets;
        th->spare_tickets = t;
        ++th->spare_count;
    } else {
        free(t);
    }
    if (r != NULL) {
        r->pending = NULL;
        hold_end(r);
    }
    return r;
}

void req_tickets_free(server_thread_t *th)
{
    while (th->spare_tickets != NULL) {
        ticket_t *t = th->spare_tickets;
        th->spare_tickets = t->next;
        free(t);
    }
    th->spare_count = 0;
}

int req_started(tess_req_t *r, ticket_t *t, int rc)
{
    if (rc != 0) {
        req_resume(t);
        send_backend_error(r, rc);
    }
    return rc;
}

void *req_state(tess_req_t *r, size_t size)
{
    void *p = h2o_mem_alloc_pool(&r->req->pool, size);
    memset(p, 0, size);
    r->state = p;
    return p;
}

/* ---- responses ----------------------------------------------------------------------------------------- */

void add_header(tess_req_t *r, const char *name, const char *value, size_t len)
{
    /* h2o keeps pointers, not bytes: copy the value into the request pool. */
    h2o_iovec_t v = h2o_strdup(&r->req->pool, value, len);
    h2o_add_header_by_str(&r->req->pool, &r->req->res.headers, name, strlen(name), 1, NULL, v.base, v.len);
}

const char *reason_of(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "OK";
    }
}

void send_headers_only(h2o_req_t *req)
{
    /* One write for the whole response: h2o_send_inline("", 0) costs three extra system calls. */
    static h2o_generator_t generator = {NULL, NULL};
    h2o_start_response(req, &generator);
    h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
}

static void send_body(tess_req_t *r, int status, const char *type, const char *body, size_t len)
{
    h2o_req_t *req = r->req;
    hold_end(r); /* an answer while a step is still under way (a long-poll's revalidation) */
    req->res.status = status;
    req->res.reason = reason_of(status);
    if (type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    req->res.content_length = len;
    if (len == 0)
        send_headers_only(req);
    else
        h2o_send_inline(req, body, len);
}

void json_add_iso(cJSON *o, const char *name, int64_t ms)
{
    char buf[32];
    tess_iso_date(ms, buf, sizeof(buf));
    cJSON_AddStringToObject(o, name, buf);
}

void send_json(tess_req_t *r, int status, cJSON *obj)
{
    char *text = obj != NULL ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (text == NULL)
        h2o_fatal("out of memory");
    send_body(r, status, "application/json", text, strlen(text));
    free(text);
}

void send_empty(tess_req_t *r, int status)
{
    send_body(r, status, NULL, "", 0);
}

void send_error(tess_req_t *r, int status, const char *code, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", code);
    cJSON_AddStringToObject(o, "message", message);
    if (status == 503)
        h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    send_json(r, status, o);
}

void send_backend_error(tess_req_t *r, int rc)
{
    switch (rc) {
    case TESS_ENOTFOUND:
        send_error(r, 404, "not_found", "no such resource");
        break;
    case TESS_ECONFLICT:
        send_error(r, 409, "conflict", "the resource is not in a state that allows this");
        break;
    case TESS_EDENIED:
        send_error(r, 401, "unauthorized", "no valid session");
        break;
    case TESS_ETOOBIG:
        send_error(r, 413, "too_large", "input too large");
        break;
    case TESS_EBADFMT:
    case TESS_EINVAL:
        send_error(r, 400, "bad_request", "the input was refused");
        break;
    default:
        /* Outage, timeout, I/O: fail closed, and tell the client when to retry. */
        send_error(r, 503, "unavailable", "a backend is not answering; retry shortly");
        break;
    }
}

/* ---- parsing ------------------------------------------------------------------------------------------- */

#define JSON_MEMBERS_MAX 64 /* members of one object in a request body (ours have three at most) */
#define JSON_DEPTH_MAX 16   /* nesting of a request body */

int json_has_nul_escape(tess_str_t text)
{
    int in_string = 0;
    for (size_t i = 0; i < text.len; ++i) {
        char c = text.ptr[i];
        if (!in_string) {
            in_string = c == '"';
        } else if (c == '"') {
            in_string = 0;
        } else if (c == '\\' && i + 1 < text.len) {
            if (text.ptr[i + 1] == 'u' && i + 5 < text.len && memcmp(text.ptr + i + 2, "0000", 4) == 0)
                return 1;
            ++i; /* the escaped character, whatever it is */
        }
    }
    return 0;
}

int json_members_unique(const cJSON *v, int depth)
{
    int n = 0;
    if (depth > JSON_DEPTH_MAX)
        return 0;
    for (const cJSON *a = v != NULL ? v->child : NULL; a != NULL; a = a->next, ++n) {
        if (n >= JSON_MEMBERS_MAX || !json_members_unique(a, depth + 1))
            return 0;
        if (!cJSON_IsObject(v))
            continue;
        for (const cJSON *b = a->next; b != NULL; b = b->next) {
            if (a->string != NULL && b->string != NULL && strcmp(a->string, b->string) == 0)
                return 0;
        }
    }
    return 1;
}

int json_body_parse(tess_str_t text, size_t max, cJSON **out, const char **code, const char **message)
{
    const char *end = NULL;
    cJSON *body;

    *out = NULL;
    if (text.len > max) {
        *code = "too_large", *message = "request body too large";
        return 413;
    }
    if (text.ptr == NULL || text.len == 0) {
        *code = "bad_request", *message = "a JSON object body is required";
        return 400;
    }
    body = cJSON_ParseWithLengthOpts(text.ptr, text.len, &end, 0);
    if (body != NULL) {
        /* cJSON stops at the end of the first value: anything but blanks after it is garbage. */
        while (end < text.ptr + text.len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
            ++end;
        if (end != text.ptr + text.len || !cJSON_IsObject(body)) {
            cJSON_Delete(body);
            body = NULL;
        }
    }
    if (body == NULL) {
        *code = "bad_json", *message = "the body must be one JSON object";
        return 400;
    }
    if (json_has_nul_escape(text) || !json_members_unique(body, 0)) {
        /* cJSON would cut "pw\u0000junk" at the NUL, and keep the first of two equal keys where JSON.parse
         * keeps the last: two readers of one body must never see two different requests. */
        cJSON_Delete(body);
        *code = "bad_json", *message = "NUL characters and repeated member names are refused";
        return 400;
    }
    *out = body;
    return 0;
}

int parse_json_body(tess_req_t *r)
{
    const char *code = "", *message = "";
    int status = json_body_parse(tess_strn(r->req->entity.base, r->req->entity.len), r->th->srv->cfg.max_body, &r->body,
                                 &code, &message);
    if (status != 0)
        send_error(r, status, code, message);
    return status != 0 ? -1 : 0;
}

int utf8_valid(const unsigned char *p, size_t n)
{
    for (size_t i = 0, len; i < n; i += len) {
        uint32_t cp;
        if ((len = tess_utf8_decode(p + i, n - i, &cp)) == 0)
            return 0;
    }
    return 1;
}

int json_string_member(const cJSON *body, const char *name, size_t max, tess_str_t *out, char *msg, size_t msgcap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    size_t n;

    *out = tess_strn(NULL, 0);
    if (!cJSON_IsString(v) || v->valuestring == NULL) {
        snprintf(msg, msgcap, "field '%s' must be a string", name);
        return 400;
    }
    n = strlen(v->valuestring); /* json_body_parse refuses \u0000, so strlen is the real length */
    if (n == 0 || n > max) {
        snprintf(msg, msgcap, "field '%s' must have 1 to %zu bytes", name, max);
        return n > max ? 413 : 400;
    }
    if (!utf8_valid((const unsigned char *)v->valuestring, n)) {
        snprintf(msg, msgcap, "field '%s' is not valid UTF-8", name);
        return 400;
    }
    *out = tess_strn(v->valuestring, n);
    return 0;
}

int body_string(tess_req_t *r, const char *name, size_t max, tess_str_t *out)
{
    char msg[128];
    int status = json_string_member(r->body, name, max, out, msg, sizeof(msg));
    if (status != 0)
        send_error(r, status, status == 413 ? "too_large" : "bad_request", msg);
    return status != 0 ? -1 : 0;
}

int query_param(tess_req_t *r, const char *name, char *buf, size_t cap)
{
    h2o_req_t *req = r->req;
    if (req->query_at == SIZE_MAX)
        return 0;
    return query_find(tess_strn(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1), name, buf, cap);
}

int query_find(tess_str_t query, const char *name, char *buf, size_t cap)
{
    size_t namelen = strlen(name);
    const char *p, *end;

    if (query.len > QUERY_MAX)
        return -1;
    if (query.len == 0)
        return 0; /* and query.ptr may be NULL: no arithmetic on it */
    p = query.ptr, end = query.ptr + query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *eq;
        if (amp == NULL)
            amp = end;
        eq = memchr(p, '=', (size_t)(amp - p));
        if (eq != NULL && (size_t)(eq - p) == namelen && memcmp(p, name, namelen) == 0) {
            size_t n;
            if (tess_url_decode(tess_strn(eq + 1, (size_t)(amp - eq - 1)), buf, cap, &n) != 0 || strlen(buf) != n)
                return -1;
            return 1;
        }
        p = amp + 1;
    }
    return 0;
}

/* ---- cookies ---------------------------------------------------------------------------------------- */

int cookie_header(tess_req_t *r, tess_str_t *out)
{
    h2o_req_t *req = r->req;
    ssize_t i = -1;
    size_t total = 0, count = 0;
    char *buf, *p;

    *out = tess_strn(NULL, 0);
    while ((i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1) {
        total += req->headers.entries[i].value.len + 2;
        ++count;
    }
    if (total > COOKIE_HEADER_MAX) {
        send_error(r, 431, "header_too_large", "cookies too large");
        return -1;
    }
    if (count == 1) {
        i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, -1);
        *out = tess_strn(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
        return 0;
    }
    if (count == 0)
        return 0;
    p = buf = h2o_mem_alloc_pool(&req->pool, total);
    while ((i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1) {
        if (p != buf) {
            *p++ = ';';
            *p++ = ' ';
        }
        memcpy(p, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
        p += req->headers.entries[i].value.len;
    }
    *out = tess_strn(buf, (size_t)(p - buf));
    return 0;
}
