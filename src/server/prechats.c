/*
 * Pre-chats and their messages: create, the agents' queue, get, join, close, post and list messages.
 * (The polled GET /api/prechats/{id}/meta is poll.c's.)
 *
 * Access: a pre-chat is read by its visitor, its agent, and any agent while it waits; written (messages,
 * close) by its visitor and its agent. Not found and not yours look the same (404): ids of other people's
 * pre-chats are never confirmed. Every write that changes what the meta shows calls meta_changed().
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/abuse.h"
#include "server/bus.h"
#include "server/poll.h"
#include "server/push.h"
#include "server/router.h"
#include "tessera/encoding.h"
#include "tessera/error.h"

#define LIST_DEFAULT 50

typedef void (*prechat_then)(tess_req_t *r, const appdb_prechat_t *p);

/* What a request that loads its pre-chat first carries to the next step. */
typedef struct prechat_state {
    int write;         /* the step needs may_write rather than may_read */
    prechat_then then; /* what runs with the pre-chat once access is granted */
    int was_waiting;   /* join/close: the pre-chat was in the queue (its leaving moves the queue) */
    int64_t after;     /* messages: ?after=K */
    int64_t limit;     /* messages: ?limit=N */
    int64_t wait_s;    /* messages, the waiting list: ?wait=N (0: answer at once) */
} prechat_state_t;

static int is_agent(const tess_req_t *r)
{
    return strcmp(r->role, "agent") == 0;
}

int prechat_may_read(const tess_req_t *r, int64_t visitor_id, int64_t agent_id, int waiting)
{
    if (r->uid == 0)
        return 0;
    if (visitor_id == r->uid || (agent_id != 0 && agent_id == r->uid))
        return 1;
    return is_agent(r) && waiting;
}

static int may_write(const tess_req_t *r, const appdb_prechat_t *p)
{
    return r->uid != 0 && (p->visitor_id == r->uid || (p->agent_id != 0 && p->agent_id == r->uid));
}

/* ---- views ---------------------------------------------------------------------------------------------- */

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
    json_add_iso(o, "createdAt", p->created_ms);
    json_add_iso(o, "updatedAt", p->updated_ms);
    if (p->left_message) { /* the visitor left a message (POST .../leave); it is still in the queue */
        cJSON_AddBoolToObject(o, "leftMessage", 1);
        cJSON_AddStringToObject(o, "contact", p->contact);
    }
    return o;
}

cJSON *message_json(const appdb_message_t *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)m->id);
    cJSON_AddNumberToObject(o, "prechatId", (double)m->prechat_id);
    cJSON_AddNumberToObject(o, "senderId", (double)m->sender_id);
    cJSON_AddStringToObject(o, "sender", m->sender_role);
    cJSON_AddStringToObject(o, "body", m->body);
    json_add_iso(o, "createdAt", m->created_ms);
    return o;
}

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

/* ---- load {id}, check access, continue --------------------------------------------------------------------- */

static void prechat_loaded(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = req_resume(arg);
    prechat_state_t *st;
    const appdb_prechat_t *p;
    if (r == NULL)
        return;
    st = r->state;
    if (res->rc != 0 && res->rc != TESS_ENOTFOUND) {
        send_backend_error(r, res->rc);
        return;
    }
    p = res->n_prechats == 1 ? &res->prechats[0] : NULL;
    if (p == NULL ||
        !(st->write ? may_write(r, p)
                    : prechat_may_read(r, p->visitor_id, p->agent_id, strcmp(p->status, "waiting") == 0))) {
        send_error(r, 404, "not_found", "no such pre-chat");
        return;
    }
    st->then(r, p);
}

/* Loads {id}; `then` runs once the session may read it (write: may write to it), else 404. The state is
 * r->state when the handler made one already. */
static void prechat_load(tess_req_t *r, int write, prechat_then then)
{
    prechat_state_t *st = r->state != NULL ? r->state : req_state(r, sizeof(*st));
    ticket_t *t;
    st->write = write;
    st->then = then;
    t = req_suspend(r);
    req_started(r, t, r->th->appdb->ops->prechat_get(r->th->appdb, r->prechat_id, prechat_loaded, t));
}

/* ---- POST /api/prechats ------------------------------------------------------------------------------- */

static void prechat_created(void *arg, const appdb_result_t *res)
{
    tess_req_t *r;
    if (res->rc == TESS_EDENIED) { /* the visitor has its bound of open pre-chats */
        if ((r = req_resume(arg)) != NULL)
            abuse_prechat_refused(r);
        return;
    }
    if ((r = appdb_resume(arg, res, 1)) == NULL)
        return;
    bus_publish(r->th, TESS_STR_LIT("queue:new")); /* the agents' waiting list grew (push.c) */
    send_json(r, 201, prechat_json(&res->prechats[0]));
}

void h_prechat_create(tess_req_t *r)
{
    appdb_t *db = r->th->appdb;
    tess_str_t topic;
    ticket_t *t;
    if (strcmp(r->role, "visitor") != 0 || r->uid == 0) {
        send_error(r, 403, "forbidden", "only visitors open pre-chats");
        return;
    }
    if (body_string(r, "topic", APP_TOPIC_MAX, &topic) != 0)
        return;
    t = req_suspend(r);
    req_started(r, t,
                db->ops->prechat_create(db, r->uid, topic, r->th->srv->cfg.limits.max_open_prechats, tess_now_ms(),
                                        prechat_created, t));
}

/* ---- GET /api/prechats?status=waiting[&wait=N] ------------------------------------------------------------- */

char *prechat_list_render(const appdb_prechat_t *p, size_t n, size_t limit, char etag[META_ETAG_LEN + 1])
{
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "prechats");
    char *text;
    for (size_t i = 0; i < n && i < limit; ++i)
        cJSON_AddItemToArray(list, prechat_json(&p[i]));
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text == NULL)
        h2o_fatal("out of memory");
    snprintf(etag, META_ETAG_LEN + 1, "\"%016" PRIx64 "\"", tess_fnv1a64(TESS_FNV1A64_BASIS, text, strlen(text)));
    return text;
}

static void list_headers(tess_req_t *r, const char *etag)
{
    add_header(r, "etag", etag, META_ETAG_LEN);
    h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("private, no-cache"));
}

void prechat_list_answer(tess_req_t *r, const char *body, const char *etag)
{
    h2o_req_t *req = r->req;
    size_t len = strlen(body);
    list_headers(r, etag);
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

static void prechat_listed(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = appdb_resume(arg, res, 0);
    prechat_state_t *st;
    char etag[META_ETAG_LEN + 1], *body;
    if (r == NULL)
        return;
    st = r->state;
    body = prechat_list_render(res->prechats, res->n_prechats, (size_t)st->limit, etag);
    if (etag_matches(&r->req->headers, tess_strn(etag, META_ETAG_LEN))) {
        if (st->wait_s > 0) {
            wait_list(r, etag, st->limit, st->wait_s); /* current: held until the list changes (push.c) */
        } else {
            list_headers(r, etag);
            r->req->res.status = 304;
            r->req->res.reason = "Not Modified";
            send_headers_only(r->req);
        }
    } else {
        prechat_list_answer(r, body, etag);
    }
    free(body);
}

void h_prechat_list(tess_req_t *r)
{
    appdb_t *db = r->th->appdb;
    char status[16];
    prechat_state_t *st;
    int64_t limit, wait_s;
    ticket_t *t;
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
    if (limit_param(r, &limit) != 0 || wait_param(r, &wait_s) != 0)
        return;
    st = req_state(r, sizeof(*st));
    st->limit = limit;
    st->wait_s = wait_s;
    t = req_suspend(r);
    req_started(r, t, db->ops->prechat_waiting(db, (size_t)limit, prechat_listed, t));
}

/* ---- GET /api/prechats/{id} ---------------------------------------------------------------------------- */

static void get_then(tess_req_t *r, const appdb_prechat_t *p)
{
    send_json(r, 200, prechat_json(p));
}

void h_prechat_get(tess_req_t *r)
{
    prechat_load(r, 0, get_then);
}

/* ---- POST /api/prechats/{id}/join, /close -------------------------------------------------------------- */

static void prechat_changed(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = appdb_resume(arg, res, 1);
    prechat_state_t *st;
    if (r == NULL)
        return;
    st = r->state;
    /* Joining or closing a waiting pre-chat moves every later one up the queue. */
    meta_changed(r->th, res->prechats[0].id, st->was_waiting);
    send_json(r, 200, prechat_json(&res->prechats[0]));
}

/* The join found the pre-chat not waiting: 409 only to an agent who may see it; others learn nothing (404). */
static void join_conflict_then(tess_req_t *r, const appdb_prechat_t *p)
{
    (void)p;
    send_error(r, 409, "conflict", "the pre-chat is not waiting any more");
}

static void prechat_joined(void *arg, const appdb_result_t *res)
{
    tess_req_t *r;
    if (res->rc == TESS_ECONFLICT && (r = req_resume(arg)) != NULL) {
        prechat_load(r, 0, join_conflict_then);
        return;
    }
    if (res->rc == TESS_ECONFLICT)
        return;                    /* the request is gone */
    if (res->rc == TESS_EDENIED) { /* still waiting, but this agent holds its bound of active pre-chats */
        if ((r = req_resume(arg)) != NULL)
            send_error(r, 409, "agent_at_capacity", "you hold the most active pre-chats allowed; close one first");
        return;
    }
    prechat_changed(arg, res);
}

void h_prechat_join(tess_req_t *r)
{
    appdb_t *db = r->th->appdb;
    prechat_state_t *st = req_state(r, sizeof(*st));
    ticket_t *t;
    st->was_waiting = 1; /* a successful join always leaves the queue */
    if (!is_agent(r) || r->uid == 0) {
        send_error(r, 403, "forbidden", "only agents join pre-chats");
        return;
    }
    t = req_suspend(r);
    req_started(r, t,
                db->ops->prechat_join(db, r->prechat_id, r->uid, r->th->srv->cfg.limits.agent_max_chats, tess_now_ms(),
                                      prechat_joined, t));
}

static void close_then(tess_req_t *r, const appdb_prechat_t *p)
{
    appdb_t *db = r->th->appdb;
    prechat_state_t *st = r->state;
    ticket_t *t;
    st->was_waiting = strcmp(p->status, "waiting") == 0;
    t = req_suspend(r);
    req_started(r, t, db->ops->prechat_close(db, p->id, tess_now_ms(), prechat_changed, t));
}

void h_prechat_close(tess_req_t *r)
{
    prechat_load(r, 1, close_then);
}

/* ---- POST /api/prechats/{id}/leave {"message", "contact"} ------------------------------------------------- */

static void leave_answer(tess_req_t *r, const appdb_prechat_t *p)
{
    send_json(r, 200, prechat_json(p));
}

static void prechat_left(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = req_resume(arg);
    if (r == NULL)
        return;
    if (res->rc == TESS_ECONFLICT) {
        send_error(r, 409, "conflict", "the pre-chat is not waiting, or has a left message already");
        return;
    }
    if (res->rc == TESS_ENOTFOUND) {
        send_error(r, 404, "not_found", "no such pre-chat");
        return;
    }
    if (res->rc != 0) {
        send_backend_error(r, res->rc);
        return;
    }
    meta_changed(r->th, r->prechat_id, 0);
    bus_publish(r->th, TESS_STR_LIT("queue:new")); /* the agents' waiting list shows the mark */
    prechat_load(r, 0, leave_answer);
}

static void leave_then(tess_req_t *r, const appdb_prechat_t *p)
{
    appdb_t *db = r->th->appdb;
    tess_str_t body, contact;
    ticket_t *t;
    if (strcmp(r->role, "visitor") != 0 || p->visitor_id != r->uid) {
        send_error(r, 403, "forbidden", "only the pre-chat's visitor leaves a message");
        return;
    }
    if (strcmp(p->status, "waiting") != 0 || p->left_message) {
        send_error(r, 409, "conflict", "the pre-chat is not waiting, or has a left message already");
        return;
    }
    if (body_string(r, "message", APP_BODY_MAX, &body) != 0 ||
        body_string(r, "contact", APP_CONTACT_MAX, &contact) != 0)
        return;
    if (body.len == 0 || contact.len == 0) {
        send_error(r, 400, "bad_request", "message and contact must not be empty");
        return;
    }
    t = req_suspend(r);
    req_started(r, t, db->ops->prechat_leave(db, p->id, r->uid, contact, body, tess_now_ms(), prechat_left, t));
}

void h_prechat_leave(tess_req_t *r)
{
    prechat_load(r, 0, leave_then);
}

/* ---- POST /api/prechats/{id}/messages ------------------------------------------------------------------ */

static void message_added(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = appdb_resume(arg, res, 1);
    if (r == NULL)
        return;
    meta_changed(r->th, res->messages[0].prechat_id, 0);
    send_json(r, 201, message_json(&res->messages[0]));
}

static void message_add_then(tess_req_t *r, const appdb_prechat_t *p)
{
    appdb_t *db = r->th->appdb;
    tess_str_t body;
    ticket_t *t;
    if (strcmp(p->status, "closed") == 0) {
        send_error(r, 409, "conflict", "the pre-chat is closed");
        return;
    }
    if (body_string(r, "body", APP_BODY_MAX, &body) != 0)
        return;
    t = req_suspend(r);
    req_started(r, t,
                db->ops->message_add(db, p->id, r->uid, tess_str(r->role), body, tess_now_ms(), message_added, t));
}

void h_message_add(tess_req_t *r)
{
    tess_str_t body;
    if (body_string(r, "body", APP_BODY_MAX, &body) != 0) /* bad input is refused before any lookup */
        return;
    if (abuse_message_take(r) != 0) /* 429: this user's message rate */
        return;
    prechat_load(r, 1, message_add_then);
}

/* ---- GET /api/prechats/{id}/messages?after=K&limit=N ------------------------------------------------------- */

static void messages_listed(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = appdb_resume(arg, res, 0);
    prechat_state_t *st;
    if (r == NULL)
        return;
    st = r->state;
    if (res->n_messages == 0 && st->wait_s > 0) {
        wait_messages(r, st->after, st->limit, st->wait_s); /* nothing yet: held until one arrives (push.c) */
        return;
    }
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "messages");
    for (size_t i = 0; i < res->n_messages; ++i)
        cJSON_AddItemToArray(list, message_json(&res->messages[i]));
    send_json(r, 200, o);
}

static void message_list_then(tess_req_t *r, const appdb_prechat_t *p)
{
    appdb_t *db = r->th->appdb;
    prechat_state_t *st = r->state;
    ticket_t *t;
    t = req_suspend(r);
    req_started(r, t, db->ops->messages_list(db, p->id, st->after, (size_t)st->limit, messages_listed, t));
}

void h_message_list(tess_req_t *r)
{
    char buf[32];
    int64_t after = 0, limit, wait_s;
    prechat_state_t *st;
    int q = query_param(r, "after", buf, sizeof(buf));
    /* Bad input is refused before any lookup. */
    if (q < 0 || (q > 0 && tess_parse_int(buf, 0, INT64_MAX / 2, &after) != 0)) {
        send_error(r, 400, "bad_request", "after must be a non-negative integer");
        return;
    }
    if (limit_param(r, &limit) != 0 || wait_param(r, &wait_s) != 0)
        return;
    st = req_state(r, sizeof(*st));
    st->after = after;
    st->limit = limit;
    st->wait_s = wait_s;
    prechat_load(r, 0, message_list_then);
}
