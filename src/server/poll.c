/*
 * The polled path, top to bottom: GET /api/prechats/{id}/meta.
 *
 *   router.c     the session is checked (tess_auth_check: signed cookie -> near-cache -> store, or the JWT)
 *                and {id} parsed; then h_prechat_meta runs.
 *   1. lookup    the meta cache holds, per pre-chat, the rendered body and its ETag with the fields access
 *                needs. A hit answers from those bytes: no database, no JSON printing.
 *   2. miss      the cache generation is read, the row comes from the database (appdb prechat_get), the
 *                body and ETag are rendered once, and put back unless a write moved the generation
 *                meanwhile (the row may be older than that write).
 *   3. answer    access is checked (not yours = 404, as not found); ETag and Cache-Control are set; a
 *                matching If-None-Match is a 304 without a body, anything else a 200 with the body.
 *   Out:         every write that changes a meta (message, join, close; prechats.c) calls meta_changed(),
 *                which publishes "meta:<id>" (and "meta:queue" when the waiting queue moved) on the change
 *                bus (bus.c): here at once, and to every instance through Redis, PostgreSQL's NOTIFY or the
 *                SQLite file's event table.
 *   In:          every event, from here or elsewhere, reaches meta_on_app_key (evict "meta:<id>", flush on
 *                anything else) and then the waiters (push.c); while events may be missed (a listener
 *                down), meta_on_coherence keeps the cache off and empty.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/poll.h"
#include "server/bus.h"
#include "server/push.h"
#include "server/router.h"
#include "tessera/cache.h"
#include "tessera/encoding.h"
#include "tessera/error.h"

struct meta_cache {
    tess_cache_t *c; /* values keyed by the decimal id */
};

/* A meta read from the database: what comes back to meta_get's caller. */
typedef struct meta_load {
    server_thread_t *th; /* its loop */
    int64_t id;          /* the pre-chat */
    uint64_t gen;        /* cache generation read before the lookup */
    meta_cb cb;          /* the caller */
    void *arg;           /* its argument */
} meta_load_t;

/* What a long-poll of the meta carries across meta_get. */
typedef struct meta_state {
    int64_t wait_s; /* ?wait=N (0: none) */
} meta_state_t;

/* ---- the cache ------------------------------------------------------------------------------------------- */

int meta_cache_new(server_t *srv)
{
    tess_cache_opts_t o;
    meta_cache_t *m;

    srv->meta = NULL;
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return TESS_ENOMEM;
    tess_cache_opts_default(&o);
    o.max_entries = srv->cfg.cache.max_entries;
    o.ttl_ms = srv->cfg.meta_ttl_ms;
    o.negative_ttl_ms = 0;
    if (tess_cache_new(&m->c, &o) != 0) {
        free(m);
        return TESS_ENOMEM;
    }
    tess_cache_set_enabled(m->c, 0); /* nothing is cached until the change events flow (bus.c) */
    srv->meta = m;
    return 0;
}

void meta_cache_free(server_t *srv)
{
    if (srv->meta == NULL)
        return;
    tess_cache_free(srv->meta->c);
    free(srv->meta);
    srv->meta = NULL;
}

int meta_cache_stats(server_t *srv, uint64_t *hits, uint64_t *misses, size_t *entries)
{
    tess_cache_stats_t cs;
    if (srv->meta == NULL)
        return 0;
    tess_cache_get_stats(srv->meta->c, &cs);
    *hits = cs.hits;
    *misses = cs.misses;
    *entries = cs.entries;
    return 1;
}

/* The meta cache's key of pre-chat `id`: its decimal (it runs on every poll). */
static tess_str_t meta_key(int64_t id, char buf[TESS_I64_DEC_MAX])
{
    return tess_strn(buf, tess_i64_decimal(id, buf));
}

static void copy_view(void *arg, const void *bytes, size_t len)
{
    memcpy(arg, bytes, len <= sizeof(meta_view_t) ? len : sizeof(meta_view_t));
}

/* ---- render and answer ----------------------------------------------------------------------------------- */

static void append_id_or_null(char *buf, size_t cap, size_t *n, const char *name, int64_t v)
{
    if (v > 0)
        *n += (size_t)snprintf(buf + *n, cap - *n, ",\"%s\":%" PRId64, name, v);
    else
        *n += (size_t)snprintf(buf + *n, cap - *n, ",\"%s\":null", name);
}

/*
 * Renders the meta of `p` (the fields are numbers, a fixed status word and a date: nothing to escape).
 * `offer`: the pre-chat has waited longer than TESSERA_PRECHAT_WAIT_TIMEOUT (timeouts.h).
 */
static void render(const appdb_prechat_t *p, int offer, meta_view_t *v)
{
    char date[32];
    size_t n;

    memset(v, 0, offsetof(meta_view_t, body));
    v->visitor_id = p->visitor_id;
    v->agent_id = p->agent_id;
    v->last_message_id = p->last_message_id;
    v->waiting = strcmp(p->status, "waiting") == 0;
    v->closed = strcmp(p->status, "closed") == 0;
    tess_iso_date(p->updated_ms, date, sizeof(date));
    n = (size_t)snprintf(v->body, sizeof(v->body), "{\"id\":%" PRId64 ",\"status\":\"%s\"", p->id, p->status);
    append_id_or_null(v->body, sizeof(v->body), &n, "queuePosition", p->queue_position);
    if (p->wait_estimate_ms >= 0) /* rounded to the second: the meta (and its ETag) moves only on real change */
        n += (size_t)snprintf(v->body + n, sizeof(v->body) - n, ",\"estimatedWaitSeconds\":%" PRId64,
                              (p->wait_estimate_ms + 500) / 1000);
    else
        n += (size_t)snprintf(v->body + n, sizeof(v->body) - n, ",\"estimatedWaitSeconds\":null");
    if (v->waiting && offer)
        n += (size_t)snprintf(v->body + n, sizeof(v->body) - n, ",\"offerLeaveMessage\":true");
    n += (size_t)snprintf(v->body + n, sizeof(v->body) - n, ",\"messageCount\":%" PRId64, p->message_count);
    append_id_or_null(v->body, sizeof(v->body), &n, "lastMessageId", p->last_message_id);
    n += (size_t)snprintf(v->body + n, sizeof(v->body) - n, ",\"updatedAt\":\"%s\"}", date);
    v->body_len = (uint16_t)(n < sizeof(v->body) ? n : sizeof(v->body) - 1);
    snprintf(v->etag, sizeof(v->etag), "\"%016" PRIx64 "\"", tess_fnv1a64(TESS_FNV1A64_BASIS, v->body, v->body_len));
}

int etag_matches(const h2o_headers_t *headers, tess_str_t etag)
{
    ssize_t i = -1;
    while ((i = h2o_find_header(headers, H2O_TOKEN_IF_NONE_MATCH, i)) != -1) {
        const char *p = headers->entries[i].value.base, *end = p + headers->entries[i].value.len;
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
                if ((size_t)(p - start) == etag.len && memcmp(start, etag.ptr, etag.len) == 0)
                    return 1;
            } else {
                while (p < end && *p != ',')
                    ++p;
            }
        }
    }
    return 0;
}

int meta_may_read(const tess_req_t *r, const meta_view_t *v)
{
    return prechat_may_read(r, v->visitor_id, v->agent_id, v->waiting);
}

void meta_answer(tess_req_t *r, const meta_view_t *v)
{
    h2o_req_t *req = r->req;
    h2o_iovec_t etag;

    if (!meta_may_read(r, v)) {
        send_error(r, 404, "not_found", "no such pre-chat");
        return;
    }
    etag = h2o_strdup(&req->pool, v->etag, META_ETAG_LEN); /* h2o keeps the pointer */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, etag.base, etag.len);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("private, no-cache"));
    if (etag_matches(&req->headers, tess_strn(v->etag, META_ETAG_LEN))) {
        req->res.status = 304;
        req->res.reason = "Not Modified";
        send_headers_only(req);
        return;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    req->res.content_length = v->body_len;
    h2o_send_inline(req, v->body, v->body_len);
}

/* ---- lookup --------------------------------------------------------------------------------------------- */

static void on_meta_loaded(void *arg, const appdb_result_t *res)
{
    meta_load_t *op = arg;
    meta_cache_t *m = op->th->srv->meta;
    meta_view_t v;
    char key[24];

    if (res->rc != 0 && res->rc != TESS_ENOTFOUND) {
        op->cb(op->arg, res->rc, NULL);
    } else if (res->n_prechats != 1) {
        op->cb(op->arg, TESS_ENOTFOUND, NULL);
    } else {
        int64_t wait_s = op->th->srv->cfg.limits.prechat_wait_timeout_s;
        render(&res->prechats[0], wait_s > 0 && tess_now_ms() - res->prechats[0].created_ms >= wait_s * 1000, &v);
        if (m != NULL)
            tess_cache_put_value(m->c, meta_key(op->id, key), &v, offsetof(meta_view_t, body) + v.body_len,
                                 tess_now_ms(), op->gen);
        op->cb(op->arg, 0, &v);
    }
    free(op);
}

int meta_get(server_thread_t *th, int64_t id, meta_cb cb, void *arg)
{
    meta_cache_t *m = th->srv->meta;
    appdb_t *db = th->appdb;
    meta_load_t *op;
    meta_view_t v;
    char key[24];
    int rc;

    if (m != NULL) {
        tess_str_t k = meta_key(id, key);
        if (tess_cache_read_value(m->c, k, tess_now_ms(), copy_view, &v) == TESS_CACHE_HIT) {
            cb(arg, 0, &v);
            return 0;
        }
    }
    if ((op = malloc(sizeof(*op))) == NULL)
        return TESS_ENOMEM;
    op->th = th;
    op->id = id;
    op->cb = cb;
    op->arg = arg;
    /* Read the generation first: a write (here or on another instance) meanwhile drops our put. */
    op->gen = m != NULL ? tess_cache_gen(m->c, meta_key(id, key)) : 0;
    if ((rc = db->ops->prechat_get(db, id, on_meta_loaded, op)) != 0)
        free(op);
    return rc;
}

/* ---- the request ----------------------------------------------------------------------------------------- */

static void on_meta(void *arg, int rc, const meta_view_t *v)
{
    tess_req_t *r = req_resume(arg);
    meta_state_t *st;
    if (r == NULL)
        return;
    st = r->state;
    if (rc == TESS_ENOTFOUND || (rc == 0 && !meta_may_read(r, v))) {
        send_error(r, 404, "not_found", "no such pre-chat");
        return;
    }
    if (rc != 0) {
        send_backend_error(r, rc);
        return;
    }
    /* A long-poll whose tag is current waits for the next change (push.c); anything else answers now. */
    if (st->wait_s > 0 && etag_matches(&r->req->headers, tess_strn(v->etag, META_ETAG_LEN))) {
        wait_meta(r, v, st->wait_s);
        return;
    }
    meta_answer(r, v);
}

void h_prechat_meta(tess_req_t *r)
{
    meta_state_t *st = req_state(r, sizeof(*st));
    ticket_t *t;
    if (wait_param(r, &st->wait_s) != 0)
        return;
    t = req_suspend(r);
    req_started(r, t, meta_get(r->th, r->prechat_id, on_meta, t));
}

/* ---- invalidations, out and in ----------------------------------------------------------------------------- */

void meta_changed(server_thread_t *th, int64_t prechat_id, int queue_moved)
{
    char name[32];
    /* Here at once (the cache and this process's waiters), then every instance (bus.c). */
    bus_publish(th, tess_strn(name, (size_t)snprintf(name, sizeof(name), "meta:%" PRId64, prechat_id)));
    if (queue_moved)
        bus_publish(th, TESS_STR_LIT("meta:queue"));
}

int meta_name_id(tess_str_t name, int64_t *id)
{
    char num[24], key[24];
    if (name.len <= 5 || memcmp(name.ptr, "meta:", 5) != 0 || name.len - 5 >= sizeof(num))
        return 0;
    memcpy(num, name.ptr + 5, name.len - 5);
    num[name.len - 5] = '\0';
    /* Only the canonical decimal (meta_key's) names an entry: "007", "+7", "7\0x" do not. */
    return tess_parse_int(num, 1, INT64_MAX, id) == 0 && tess_str_eq(meta_key(*id, key), tess_strn(num, name.len - 5));
}

void meta_on_app_key(void *arg, tess_str_t name)
{
    server_t *srv = arg;
    int64_t id;

    if (srv->meta == NULL)
        return;
    if (meta_name_id(name, &id))
        tess_cache_evict(srv->meta->c, tess_strn(name.ptr + 5, name.len - 5));
    else
        tess_cache_flush(srv->meta->c); /* "meta:queue", "everything", and anything unexpected */
}

void meta_on_coherence(void *arg, int up)
{
    server_t *srv = arg;
    if (srv->meta == NULL)
        return;
    if (up)
        tess_cache_flush(srv->meta->c);
    tess_cache_set_enabled(srv->meta->c, up);
}
