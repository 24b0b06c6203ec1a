/*
 * The pre-chat API: auth, pre-chats, messages, ops endpoints.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http.h"
#include "tessera/cookie.h"
#include "tessera/error.h"

#define LIST_DEFAULT 50

static int is_agent(const tess_req_t *r)
{
    return strcmp(r->role, "agent") == 0;
}

static void add_iso(cJSON *o, const char *name, int64_t ms)
{
    char buf[32];
    tess_iso_date(ms, buf, sizeof(buf));
    cJSON_AddStringToObject(o, name, buf);
}

static void add_id_or_null(cJSON *o, const char *name, int64_t v)
{
    if (v > 0)
        cJSON_AddNumberToObject(o, name, (double)v);
    else
        cJSON_AddNullToObject(o, name);
}

static cJSON *prechat_json(const appdb_prechat_t *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)p->id);
    cJSON_AddStringToObject(o, "topic", p->topic);
    cJSON_AddStringToObject(o, "status", p->status);
    cJSON_AddNumberToObject(o, "visitorId", (double)p->visitor_id);
    add_id_or_null(o, "agentId", p->agent_id);
    add_id_or_null(o, "queuePosition", p->queue_position);
    cJSON_AddNumberToObject(o, "messageCount", (double)p->message_count);
    add_id_or_null(o, "lastMessageId", p->last_message_id);
    add_iso(o, "createdAt", p->created_ms);
    add_iso(o, "updatedAt", p->updated_ms);
    return o;
}

static cJSON *message_json(const appdb_message_t *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)m->id);
    cJSON_AddNumberToObject(o, "prechatId", (double)m->prechat_id);
    cJSON_AddNumberToObject(o, "senderId", (double)m->sender_id);
    cJSON_AddStringToObject(o, "sender", m->sender_role);
    cJSON_AddStringToObject(o, "body", m->body);
    add_iso(o, "createdAt", m->created_ms);
    return o;
}

/* May the session read this pre-chat? Its visitor, its agent, and any agent while it waits. */
static int may_read(const tess_req_t *r, const appdb_prechat_t *p)
{
    if (r->uid == 0)
        return 0;
    if (p->visitor_id == r->uid || (p->agent_id != 0 && p->agent_id == r->uid))
        return 1;
    return is_agent(r) && strcmp(p->status, "waiting") == 0;
}

/* May the session write to it (message, close)? Its visitor and its agent. */
static int may_write(const tess_req_t *r, const appdb_prechat_t *p)
{
    return r->uid != 0 && (p->visitor_id == r->uid || (p->agent_id != 0 && p->agent_id == r->uid));
}

/* Starts an appdb call; a call that cannot start answers like a backend error. */
#define APPDB_CALL(r, op, ...)                                                                                         \
    do {                                                                                                               \
        ticket_t *t_ = req_suspend(r);                                                                                 \
        int rc_ = (r)->th->appdb->ops->op((r)->th->appdb, __VA_ARGS__, t_);                                            \
        if (rc_ != 0) {                                                                                                \
            req_resume(t_);                                                                                            \
            send_backend_error((r), rc_);                                                                              \
        }                                                                                                              \
    } while (0)

/*
 * In an appdb completion: the request, when it is still there and the call succeeded with at least `min_rows`
 * rows (prechats or messages); otherwise NULL, with the error answered.
 */
static tess_req_t *appdb_resume(void *arg, const appdb_result_t *res, size_t min_rows)
{
    tess_req_t *r = req_resume(arg);
    if (r == NULL)
        return NULL;
    if (res->rc != 0 || res->n_prechats + res->n_messages < min_rows) {
        send_backend_error(r, res->rc != 0 ? res->rc : TESS_EIO);
        return NULL;
    }
    return r;
}

/* ---- ops ------------------------------------------------------------------------------------------------ */

void h_healthz(tess_req_t *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    send_json(r, 200, o);
}

static void readyz_store_done(void *arg, int rc, const tess_session_t *s)
{
    tess_req_t *r = req_resume(arg);
    (void)s;
    if (r == NULL)
        return;
    if (rc != 0) {
        send_error(r, 503, "unavailable", "the session store is not answering");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ready");
    send_json(r, 200, o);
}

static void readyz_appdb_done(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = req_resume(arg);
    if (r == NULL)
        return;
    if (res->rc != 0) {
        send_error(r, 503, "unavailable", "the database is not answering");
        return;
    }
    if (r->th->store == NULL) {
        readyz_store_done(req_suspend(r), 0, NULL);
        return;
    }
    ticket_t *t = req_suspend(r);
    int rc = tess_store_ping(r->th->store, readyz_store_done, t);
    if (rc != 0)
        readyz_store_done(t, rc, NULL);
}

void h_readyz(tess_req_t *r)
{
    APPDB_CALL(r, ping, readyz_appdb_done);
}

void h_metrics(tess_req_t *r)
{
    h2o_iovec_t text = tess_metrics_text(r->th->srv, &r->req->pool);
    r->req->res.status = 200;
    r->req->res.reason = "OK";
    h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4"));
    r->req->res.content_length = text.len;
    h2o_send_inline(r->req, text.base, text.len);
}

void h_auth(tess_req_t *r)
{
    add_header(r, "x-session-user", r->user_id, strlen(r->user_id));
    add_header(r, "x-session-role", r->role, strlen(r->role));
    send_empty(r, 204);
}

/* ---- sessions -------------------------------------------------------------------------------------------- */

static void set_named_cookie(tess_req_t *r, tess_str_t name, tess_str_t value, int64_t max_age_s)
{
    server_t *srv = r->th->srv;
    tess_set_cookie_t c = {
        .name = name,
        .value = value,
        .max_age_s = max_age_s,
        .now_ms = tess_now_ms(),
        .secure = srv->cfg.production,
        .http_only = 1,
        .same_site = "Lax",
        .path = "/",
    };
    char buf[TESS_TOKEN_MAX + 512];
    size_t n;
    if (tess_set_cookie_format(&c, buf, sizeof(buf), &n) == 0) {
        /* h2o keeps the pointer, not the bytes: the value must live in the request pool. */
        h2o_iovec_t v = h2o_strdup(&r->req->pool, buf, n);
        h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, v.base, v.len);
    }
}

static void set_cookie(tess_req_t *r, tess_str_t value, int64_t max_age_s)
{
    set_named_cookie(r, tess_auth_cookie_name(r->th->auth), value, max_age_s);
}

void h_session(tess_req_t *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "userId", r->user_id);
    cJSON_AddStringToObject(o, "role", r->role);
    add_iso(o, "expiresAt", r->expires_ms);
    send_json(r, 200, o);
}

static void login_done(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    tess_req_t *r = req_resume(arg);
    if (r == NULL)
        return;
    if (rc != 0 || s == NULL) {
        send_backend_error(r, rc != 0 ? rc : TESS_EIO);
        return;
    }
    set_cookie(r, cookie, r->th->srv->cfg.policy.ttl_s);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "userId", s->user_id);
    cJSON_AddStringToObject(o, "role", s->role);
    add_iso(o, "expiresAt", s->expires_ms);
    send_json(r, 200, o);
}

static void login_password_checked(void *arg, int ok)
{
    tess_req_t *r = req_resume(arg);
    char uid[24];
    if (r == NULL)
        return;
    if (!ok || r->login_uid == 0) {
        send_error(r, 401, "invalid_credentials", "unknown user or wrong password");
        return;
    }
    snprintf(uid, sizeof(uid), "%" PRId64, r->login_uid);
    tess_auth_login(r->th->auth, tess_str(uid), tess_str(r->login_role), tess_now_ms(), login_done, req_suspend(r));
}

static void login_user_found(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = req_resume(arg);
    tess_str_t password;
    int rc;
    if (r == NULL)
        return;
    if (res->rc != 0 && res->rc != TESS_ENOTFOUND) {
        send_backend_error(r, res->rc);
        return;
    }
    if (res->user != NULL) {
        r->login_uid = res->user->id;
        snprintf(r->login_role, sizeof(r->login_role), "%s", res->user->role);
        snprintf(r->pwhash, sizeof(r->pwhash), "%s", res->user->pwhash);
    }
    body_string(r, "password", 1024, &password); /* checked in h_login */
    /* Unknown users are verified against a dummy hash: the reply takes the same time either way. */
    ticket_t *t = req_suspend(r);
    rc = app_pw_verify(r->th->srv->pw, &r->th->tloop.super, r->login_uid != 0 ? r->pwhash : NULL, password,
                       login_password_checked, t);
    if (rc != 0) {
        req_resume(t);
        send_error(r, 503, "busy", "too many logins in progress; retry shortly");
    }
}

void h_login(tess_req_t *r)
{
    tess_str_t name, password;
    if (body_string(r, "username", APP_NAME_MAX, &name) != 0 || body_string(r, "password", 1024, &password) != 0)
        return;
    APPDB_CALL(r, user_by_name, name, login_user_found);
}

static void logout_done(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    tess_req_t *r = req_resume(arg);
    (void)s;
    (void)cookie;
    if (r == NULL)
        return;
    if (rc != 0 && rc != TESS_ENOTFOUND) {
        send_backend_error(r, rc);
        return;
    }
    set_cookie(r, TESS_STR_LIT(""), 0);
    if (r->th->fallback_auth != NULL &&
        !tess_str_eq(tess_auth_cookie_name(r->th->fallback_auth), tess_auth_cookie_name(r->th->auth)))
        set_named_cookie(r, tess_auth_cookie_name(r->th->fallback_auth), TESS_STR_LIT(""), 0); /* migration */
    send_empty(r, 204);
}

static void logout_checked(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    tess_req_t *r = req_resume(arg);
    (void)cookie;
    if (r == NULL)
        return;
    if (rc == 0 && s != NULL) {
        char everywhere[8];
        int q = query_param(r, "everywhere", everywhere, sizeof(everywhere));
        if (q < 0 || (q > 0 && strcmp(everywhere, "1") != 0 && strcmp(everywhere, "0") != 0)) {
            send_error(r, 400, "bad_request", "everywhere must be 1 or 0");
            return;
        }
        if (q > 0 && strcmp(everywhere, "1") == 0 && r->th->revoker == NULL &&
            r->th->srv->cfg.strategy == TESS_STRATEGY_JWT) {
            send_error(r, 409, "revocation_unavailable",
                       "tokens cannot be revoked without REDIS_URL: they stay valid until they expire");
            return;
        }
        if (q > 0 && strcmp(everywhere, "1") == 0)
            tess_auth_logout_everywhere(r->th->auth, tess_str(s->user_id), tess_now_ms(), logout_done, req_suspend(r));
        else
            tess_auth_logout_session(r->th->auth, s, logout_done, req_suspend(r));
    } else if (rc == TESS_EUNAVAIL || rc == TESS_ETIMEOUT) {
        send_backend_error(r, rc);
    } else {
        /* No valid session: logging out is already done; clear the cookie anyway. */
        logout_done(req_suspend(r), 0, NULL, TESS_STR_LIT(""));
    }
}

void h_logout(tess_req_t *r)
{
    tess_str_t cookies;
    if (cookie_header(r, &cookies) != 0)
        return;
    tess_auth_check(r->th->auth, cookies, tess_now_ms(), logout_checked, req_suspend(r));
}

/* ---- pre-chats -------------------------------------------------------------------------------------------- */

static void prechat_created(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = appdb_resume(arg, res, 1);
    if (r == NULL)
        return;
    send_json(r, 201, prechat_json(&res->prechats[0]));
}

void h_prechat_create(tess_req_t *r)
{
    tess_str_t topic;
    if (strcmp(r->role, "visitor") != 0 || r->uid == 0) {
        send_error(r, 403, "forbidden", "only visitors open pre-chats");
        return;
    }
    if (body_string(r, "topic", APP_TOPIC_MAX, &topic) != 0)
        return;
    APPDB_CALL(r, prechat_create, r->uid, topic, tess_now_ms(), prechat_created);
}

static void prechat_listed(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = appdb_resume(arg, res, 0);
    if (r == NULL)
        return;
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "prechats");
    for (size_t i = 0; i < res->n_prechats; ++i)
        cJSON_AddItemToArray(list, prechat_json(&res->prechats[i]));
    send_json(r, 200, o);
}

/* ?limit=N in [1, APP_LIST_MAX] (default LIST_DEFAULT). Returns 0 or sends 400 and returns -1. */
static int limit_param(tess_req_t *r, int64_t *limit)
{
    char buf[32];
    int q = query_param(r, "limit", buf, sizeof(buf));
    *limit = LIST_DEFAULT;
    if (q < 0 || (q > 0 && tess_parse_int(buf, 1, APP_LIST_MAX, limit) != 0)) {
        send_error(r, 400, "bad_request", "limit must be an integer from 1 to 200");
        return -1;
    }
    return 0;
}

void h_prechat_list(tess_req_t *r)
{
    char status[16];
    int64_t limit;
    int q;

    if (!is_agent(r)) {
        send_error(r, 403, "forbidden", "only agents see the queue");
        return;
    }
    q = query_param(r, "status", status, sizeof(status));
    if (q < 0 || (q > 0 && strcmp(status, "waiting") != 0)) {
        send_error(r, 400, "bad_request", "status must be 'waiting'");
        return;
    }
    if (limit_param(r, &limit) != 0)
        return;
    APPDB_CALL(r, prechat_waiting, (size_t)limit, prechat_listed);
}

/* Loads {id}, checks access, then continues with `then` (or answers 404). */
typedef void (*prechat_then)(tess_req_t *r, const appdb_prechat_t *p);

typedef struct {
    prechat_then then; /* continuation */
    int write;         /* needs may_write rather than may_read */
} prechat_step_t;

static void prechat_loaded(tess_req_t *r, const appdb_result_t *res, const prechat_step_t *step)
{
    if (res->rc != 0 && res->rc != TESS_ENOTFOUND) {
        send_backend_error(r, res->rc);
        return;
    }
    /* Not found and not yours look the same: ids of other people's pre-chats are not confirmed. */
    if (res->n_prechats != 1 || !(step->write ? may_write(r, &res->prechats[0]) : may_read(r, &res->prechats[0]))) {
        send_error(r, 404, "not_found", "no such pre-chat");
        return;
    }
    step->then(r, &res->prechats[0]);
}

#define PRECHAT_STEP(name, fn, wr)                                                                                     \
    static void name##_loaded(void *arg, const appdb_result_t *res)                                                    \
    {                                                                                                                  \
        static const prechat_step_t step = {fn, wr};                                                                   \
        tess_req_t *r = req_resume(arg);                                                                               \
        if (r != NULL)                                                                                                 \
            prechat_loaded(r, res, &step);                                                                             \
    }

static void get_then(tess_req_t *r, const appdb_prechat_t *p)
{
    send_json(r, 200, prechat_json(p));
}
PRECHAT_STEP(get, get_then, 0)

void h_prechat_get(tess_req_t *r)
{
    APPDB_CALL(r, prechat_get, r->prechat_id, get_loaded);
}

/* 64-bit FNV-1a: ETags need to change with the content, not to resist forgery. */
static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; ++i) {
        h ^= (uint8_t)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* RFC 9110 If-None-Match: "*" or a list of (possibly weak) tags, compared weakly. */
static int etag_matches(h2o_req_t *req, const char *etag, size_t etag_len)
{
    ssize_t i = -1;
    while ((i = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, i)) != -1) {
        const char *p = req->headers.entries[i].value.base, *end = p + req->headers.entries[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                ++p;
            if (p < end && *p == '*')
                return 1;
            if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
                p += 2;
            const char *start = p;
            if (p < end && *p == '"') {
                const char *close = memchr(p + 1, '"', (size_t)(end - p - 1));
                if (close == NULL)
                    break;
                p = close + 1;
                if ((size_t)(p - start) == etag_len && memcmp(start, etag, etag_len) == 0)
                    return 1;
            } else {
                while (p < end && *p != ',')
                    ++p;
            }
        }
    }
    return 0;
}

static void meta_then(tess_req_t *r, const appdb_prechat_t *p)
{
    cJSON *o = cJSON_CreateObject();
    char etag[24], *text;
    size_t n;

    cJSON_AddNumberToObject(o, "id", (double)p->id);
    cJSON_AddStringToObject(o, "status", p->status);
    add_id_or_null(o, "queuePosition", p->queue_position);
    cJSON_AddNumberToObject(o, "messageCount", (double)p->message_count);
    add_id_or_null(o, "lastMessageId", p->last_message_id);
    add_iso(o, "updatedAt", p->updated_ms);
    if ((text = cJSON_PrintUnformatted(o)) == NULL)
        h2o_fatal("out of memory");
    cJSON_Delete(o);
    n = strlen(text);
    snprintf(etag, sizeof(etag), "\"%016" PRIx64 "\"", fnv1a(text, n));
    h2o_iovec_t etag_v = h2o_strdup(&r->req->pool, etag, strlen(etag)); /* h2o keeps the pointer */
    h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_ETAG, NULL, etag_v.base, etag_v.len);
    h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("private, no-cache"));
    r->req->res.reason = "OK";
    if (etag_matches(r->req, etag, strlen(etag))) {
        r->req->res.status = 304;
        r->req->res.reason = "Not Modified";
        send_headers_only(r->req);
    } else {
        r->req->res.status = 200;
        h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json"));
        r->req->res.content_length = n;
        h2o_send_inline(r->req, text, n);
    }
    free(text);
}
PRECHAT_STEP(meta, meta_then, 0)

static void meta_db_loaded(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = req_resume(arg);
    if (r == NULL)
        return;
    if (res->rc == 0 && res->n_prechats == 1 && r->th->srv->meta != NULL)
        metacache_put(r->th->srv->meta, &res->prechats[0], tess_now_ms(), r->meta_gen);
    meta_loaded(req_suspend(r), res);
}

void h_prechat_meta(tess_req_t *r)
{
    metacache_t *meta = r->th->srv->meta;
    appdb_prechat_t p;

    if (meta == NULL) {
        APPDB_CALL(r, prechat_get, r->prechat_id, meta_loaded);
        return;
    }
    if (metacache_get(meta, r->prechat_id, tess_now_ms(), &p)) {
        appdb_result_t res = {.rc = 0, .prechats = &p, .n_prechats = 1};
        meta_loaded(req_suspend(r), &res);
        return;
    }
    /* Read the generation first: a write (here or on another instance) meanwhile drops our put. */
    r->meta_gen = metacache_gen(meta, r->prechat_id);
    APPDB_CALL(r, prechat_get, r->prechat_id, meta_db_loaded);
}

static void prechat_changed(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = appdb_resume(arg, res, 1);
    if (r == NULL)
        return;
    /* Joining or closing a waiting pre-chat moves every later one up the queue. */
    tess_meta_changed(r->th, res->prechats[0].id, r->was_waiting);
    send_json(r, 200, prechat_json(&res->prechats[0]));
}

void h_prechat_join(tess_req_t *r)
{
    r->was_waiting = 1; /* a successful join always leaves the queue */
    if (!is_agent(r) || r->uid == 0) {
        send_error(r, 403, "forbidden", "only agents join pre-chats");
        return;
    }
    APPDB_CALL(r, prechat_join, r->prechat_id, r->uid, tess_now_ms(), prechat_changed);
}

static void close_then(tess_req_t *r, const appdb_prechat_t *p)
{
    r->was_waiting = strcmp(p->status, "waiting") == 0;
    APPDB_CALL(r, prechat_close, p->id, tess_now_ms(), prechat_changed);
}
PRECHAT_STEP(close, close_then, 1)

void h_prechat_close(tess_req_t *r)
{
    APPDB_CALL(r, prechat_get, r->prechat_id, close_loaded);
}

/* ---- messages ------------------------------------------------------------------------------------------- */

static void message_added(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = appdb_resume(arg, res, 1);
    if (r == NULL)
        return;
    tess_meta_changed(r->th, res->messages[0].prechat_id, 0);
    send_json(r, 201, message_json(&res->messages[0]));
}

static void message_add_then(tess_req_t *r, const appdb_prechat_t *p)
{
    tess_str_t body;
    if (strcmp(p->status, "closed") == 0) {
        send_error(r, 409, "conflict", "the pre-chat is closed");
        return;
    }
    if (body_string(r, "body", APP_BODY_MAX, &body) != 0)
        return;
    APPDB_CALL(r, message_add, p->id, r->uid, tess_str(r->role), body, tess_now_ms(), message_added);
}
PRECHAT_STEP(message_add, message_add_then, 1)

void h_message_add(tess_req_t *r)
{
    tess_str_t body;
    if (body_string(r, "body", APP_BODY_MAX, &body) != 0) /* bad input is refused before any lookup */
        return;
    APPDB_CALL(r, prechat_get, r->prechat_id, message_add_loaded);
}

static void messages_listed(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = appdb_resume(arg, res, 0);
    if (r == NULL)
        return;
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "messages");
    for (size_t i = 0; i < res->n_messages; ++i)
        cJSON_AddItemToArray(list, message_json(&res->messages[i]));
    send_json(r, 200, o);
}

static void message_list_then(tess_req_t *r, const appdb_prechat_t *p)
{
    char buf[32];
    int64_t after = 0, limit;
    int q = query_param(r, "after", buf, sizeof(buf));
    if (q < 0 || (q > 0 && tess_parse_int(buf, 0, INT64_MAX / 2, &after) != 0)) {
        send_error(r, 400, "bad_request", "after must be a non-negative integer");
        return;
    }
    if (limit_param(r, &limit) != 0)
        return;
    APPDB_CALL(r, messages_list, p->id, after, (size_t)limit, messages_listed);
}
PRECHAT_STEP(message_list, message_list_then, 0)

void h_message_list(tess_req_t *r)
{
    APPDB_CALL(r, prechat_get, r->prechat_id, message_list_loaded);
}
