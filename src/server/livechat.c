/*
 * Live-chat signals and the transcript (livechat.h).
 *
 * Access: typing, read and the transcript are for the pre-chat's parties, its visitor and its agent; anyone
 * else gets 404, as for the other writes (prechats.c). Typing and read in a closed pre-chat are 409.
 */
#include <inttypes.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/bus.h"
#include "server/livechat.h"
#include "server/poll.h"
#include "server/router.h"
#include "tessera/cookie.h"
#include "tessera/error.h"

#define TRANSCRIPT_PAGE APP_LIST_MAX /* messages per query while the transcript is gathered */

static char origin[17];           /* this process's id in the events it publishes (16 hex digits) */
static _Atomic uint64_t live_seq; /* its events, numbered */

int livechat_init(void)
{
    unsigned char b[8];
    if (sodium_init() < 0)
        return TESS_EIO;
    randombytes_buf(b, sizeof(b));
    for (size_t i = 0; i < sizeof(b); ++i)
        snprintf(origin + 2 * i, 3, "%02x", b[i]);
    return 0;
}

const char *livechat_origin(void)
{
    return origin;
}

const char *livechat_side_name(int side)
{
    return side == 0 ? "visitor" : "agent";
}

/* The next ':'-ended field of `*s` into `buf`; 0, or -1 when there is none or it does not fit. */
static int field(tess_str_t *s, char *buf, size_t cap, int last)
{
    size_t n = 0;
    while (n < s->len && s->ptr[n] != ':')
        ++n;
    if (n == 0 || n >= cap || (!last && n == s->len) || (last && n != s->len))
        return -1;
    memcpy(buf, s->ptr, n);
    buf[n] = '\0';
    s->ptr += n + (last ? 0 : 1);
    s->len -= n + (last ? 0 : 1);
    return 0;
}

int livechat_parse(tess_str_t name, int64_t *id, live_event_t *ev, int *own)
{
    char num[24], kind[8], side[8], value[24], from[48];
    tess_str_t s = name;
    if (s.len <= 5 || memcmp(s.ptr, "live:", 5) != 0)
        return 0;
    s.ptr += 5;
    s.len -= 5;
    if (field(&s, num, sizeof(num), 0) != 0 || field(&s, kind, sizeof(kind), 0) != 0 ||
        field(&s, side, sizeof(side), 0) != 0 || field(&s, value, sizeof(value), 0) != 0 ||
        field(&s, from, sizeof(from), 1) != 0)
        return 0;
    if (tess_parse_int(num, 1, INT64_MAX, id) != 0 || tess_parse_int(value, 0, INT64_MAX, &ev->value) != 0)
        return 0;
    if (strcmp(kind, "typing") == 0)
        ev->read = 0;
    else if (strcmp(kind, "read") == 0)
        ev->read = 1;
    else
        return 0;
    if (strcmp(side, "visitor") == 0)
        ev->side = 0;
    else if (strcmp(side, "agent") == 0)
        ev->side = 1;
    else
        return 0;
    *own = strlen(from) > 16 && memcmp(from, origin, 16) == 0 && from[16] == '.';
    return 1;
}

/* Publishes a live event of pre-chat `id` from the requester's side. */
static void live_publish(tess_req_t *r, int64_t id, const char *kind, int64_t value)
{
    char name[128];
    int n = snprintf(name, sizeof(name), "live:%" PRId64 ":%s:%s:%" PRId64 ":%s.%" PRIu64, id, kind,
                     strcmp(r->role, "agent") == 0 ? "agent" : "visitor", value, origin,
                     atomic_fetch_add(&live_seq, 1) + 1);
    bus_publish(r->th, tess_strn(name, (size_t)n));
}

/* ---- load {id}: the parties only ----------------------------------------------------------------------------- */

typedef void (*live_then)(tess_req_t *r, const appdb_prechat_t *p);

typedef struct live_state {
    live_then then;    /* what runs once the requester is found to be a party */
    int64_t upto;      /* read: the message id */
    int text;          /* transcript: text/plain rather than JSON */
    int64_t after;     /* transcript: the last message gathered */
    appdb_prechat_t p; /* transcript: the pre-chat */
    char *buf;         /* transcript: what is gathered so far (request pool) */
    size_t len, cap;   /* its length and capacity */
    int first;         /* transcript, JSON: no message written yet */
} live_state_t;

static void live_loaded(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = req_resume(arg);
    const appdb_prechat_t *p;
    if (r == NULL)
        return;
    if (res->rc != 0 && res->rc != TESS_ENOTFOUND) {
        send_backend_error(r, res->rc);
        return;
    }
    p = res->n_prechats == 1 ? &res->prechats[0] : NULL;
    if (p == NULL || r->uid == 0 || !(p->visitor_id == r->uid || (p->agent_id != 0 && p->agent_id == r->uid))) {
        send_error(r, 404, "not_found", "no such pre-chat");
        return;
    }
    ((live_state_t *)r->state)->then(r, p);
}

static void live_load(tess_req_t *r, live_then then)
{
    live_state_t *st = r->state != NULL ? r->state : req_state(r, sizeof(*st));
    ticket_t *t;
    st->then = then;
    t = req_suspend(r);
    req_started(r, t, r->th->appdb->ops->prechat_get(r->th->appdb, r->prechat_id, live_loaded, t));
}

/* ---- POST /api/prechats/{id}/typing ---------------------------------------------------------------------------- */

static void typing_then(tess_req_t *r, const appdb_prechat_t *p)
{
    if (strcmp(p->status, "closed") == 0) {
        send_error(r, 409, "conflict", "the pre-chat is closed");
        return;
    }
    live_publish(r, p->id, "typing", 0);
    send_empty(r, 204);
}

void h_prechat_typing(tess_req_t *r)
{
    live_load(r, typing_then);
}

/* ---- POST /api/prechats/{id}/read {"upto": N} ------------------------------------------------------------------- */

static void read_then(tess_req_t *r, const appdb_prechat_t *p)
{
    live_state_t *st = r->state;
    if (strcmp(p->status, "closed") == 0) {
        send_error(r, 409, "conflict", "the pre-chat is closed");
        return;
    }
    if (st->upto > p->last_message_id) {
        send_error(r, 422, "unprocessable", "upto is past the newest message");
        return;
    }
    live_publish(r, p->id, "read", st->upto);
    send_empty(r, 204);
}

void h_prechat_read(tess_req_t *r)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->body, "upto");
    live_state_t *st;
    /* Bad input is refused before any lookup. */
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > (double)(INT64_MAX / 2) ||
        v->valuedouble != (double)(int64_t)v->valuedouble) {
        send_error(r, 422, "unprocessable", "upto must be a positive integer (a message id)");
        return;
    }
    st = req_state(r, sizeof(*st));
    st->upto = (int64_t)v->valuedouble;
    live_load(r, read_then);
}

/* ---- GET /api/prechats/{id}/transcript[?format=text|json] ------------------------------------------------------- */

static void put(tess_req_t *r, const char *p, size_t n)
{
    live_state_t *st = r->state;
    if (st->len + n > st->cap) {
        size_t cap = st->cap != 0 ? st->cap : 4096;
        char *b;
        while (cap < st->len + n)
            cap *= 2;
        b = h2o_mem_alloc_pool(&r->req->pool, cap); /* the old buffer goes with the pool */
        if (st->len != 0)
            memcpy(b, st->buf, st->len);
        st->buf = b;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, p, n);
    st->len += n;
}

static void put_str(tess_req_t *r, const char *s)
{
    put(r, s, strlen(s));
}

static void put_json(tess_req_t *r, cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text == NULL)
        h2o_fatal("out of memory");
    put_str(r, text);
    free(text);
}

static void transcript_send(tess_req_t *r)
{
    live_state_t *st = r->state;
    h2o_req_t *req = r->req;
    if (!st->text)
        put_str(r, "]}");
    req->res.status = 200;
    req->res.reason = "OK";
    if (st->text)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("text/plain; charset=utf-8"));
    else
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("private, no-store"));
    req->res.content_length = st->len;
    h2o_send_inline(req, st->buf, st->len);
}

static void transcript_page(tess_req_t *r);

static void transcript_listed(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = req_resume(arg);
    live_state_t *st;
    if (r == NULL)
        return;
    if (res->rc != 0) {
        send_backend_error(r, res->rc);
        return;
    }
    st = r->state;
    for (size_t i = 0; i < res->n_messages; ++i) {
        const appdb_message_t *m = &res->messages[i];
        if (st->text) {
            char date[32], head[96];
            tess_iso_date(m->created_ms, date, sizeof(date));
            put(r, head, (size_t)snprintf(head, sizeof(head), "[%s] %s: ", date, m->sender_role));
            /* One line per message: a line break in the body is written as the two characters \n. */
            for (const char *c = m->body; *c != '\0'; ++c) {
                if (*c == '\n')
                    put_str(r, "\\n");
                else if (*c == '\r')
                    put_str(r, "\\r");
                else if (*c == '\\')
                    put_str(r, "\\\\");
                else
                    put(r, c, 1);
            }
            put_str(r, "\n");
        } else {
            if (!st->first)
                put_str(r, ",");
            st->first = 0;
            put_json(r, message_json(m));
        }
        st->after = m->id;
    }
    if (res->n_messages == TRANSCRIPT_PAGE)
        transcript_page(r); /* there may be more */
    else
        transcript_send(r);
}

static void transcript_page(tess_req_t *r)
{
    appdb_t *db = r->th->appdb;
    live_state_t *st = r->state;
    ticket_t *t = req_suspend(r);
    req_started(r, t, db->ops->messages_list(db, st->p.id, st->after, TRANSCRIPT_PAGE, transcript_listed, t));
}

static void transcript_then(tess_req_t *r, const appdb_prechat_t *p)
{
    live_state_t *st = r->state;
    st->p = *p;
    st->first = 1;
    if (st->text) {
        char line[APP_TOPIC_MAX + 128], date[32];
        tess_iso_date(p->created_ms, date, sizeof(date));
        put(r, line,
            (size_t)snprintf(line, sizeof(line), "Pre-chat %" PRId64 " (%s), opened %s: %s\n", p->id, p->status, date,
                             p->topic));
    } else {
        cJSON *o = cJSON_CreateObject();
        char *text;
        size_t n;
        cJSON_AddNumberToObject(o, "id", (double)p->id);
        cJSON_AddStringToObject(o, "topic", p->topic);
        cJSON_AddStringToObject(o, "status", p->status);
        cJSON_AddNumberToObject(o, "visitorId", (double)p->visitor_id);
        if (p->agent_id > 0)
            cJSON_AddNumberToObject(o, "agentId", (double)p->agent_id);
        else
            cJSON_AddNullToObject(o, "agentId");
        json_add_iso(o, "createdAt", p->created_ms);
        if ((text = cJSON_PrintUnformatted(o)) == NULL)
            h2o_fatal("out of memory");
        cJSON_Delete(o);
        n = strlen(text);
        put(r, "{\"prechat\":", 11);
        put(r, text, n);
        put_str(r, ",\"messages\":[");
        free(text);
    }
    transcript_page(r);
}

void h_prechat_transcript(tess_req_t *r)
{
    char format[8];
    live_state_t *st;
    int q = query_param(r, "format", format, sizeof(format));
    if (q < 0 || (q > 0 && strcmp(format, "text") != 0 && strcmp(format, "json") != 0)) {
        send_error(r, 400, "bad_request", "format must be 'text' or 'json'");
        return;
    }
    st = req_state(r, sizeof(*st));
    st->text = q > 0 && strcmp(format, "text") == 0;
    live_load(r, transcript_then);
}
