/*
 * Waiting without polling (push.h): long-polls and Server-Sent Events.
 *
 * A waiter is a held request: its state lives in the request pool (freed with it, so a client that goes away
 * unlinks its waiter), linked per loop
 *   - under its pre-chat's watch, which a change of that pre-chat wakes: one meta read (meta_get: the meta
 *     cache, or one database read) and at most one message query serve every waiter of the watch;
 *   - on the loop's list of all waiters, which session events scan for their session or user;
 *   - in a timing wheel of TICK_MS slots, for the long-poll deadline, the stream keep-alive and the
 *     session's expiry, whichever comes first.
 * The agents' long-poll of the waiting list is a watch too, under id LIST_WATCH (pre-chat ids are positive):
 * one list query serves all its waiters on a loop; queue events wake it, and so does a change of a pre-chat
 * that its last read listed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/hangup.h"
#include "server/livechat.h"
#include "server/push.h"
#include "server/router.h"
#include "server/sse.h"
#include "tessera/encoding.h"
#include "tessera/error.h"

#define TICK_MS 100        /* timing wheel resolution */
#define WHEEL_SLOTS 1024   /* 102.4 s: more than WAIT_MAX_S and the keep-alive */
#define WATCH_BUCKETS 1024 /* pre-chat hash of a loop */
#define KEEPALIVE_MS 15000 /* a comment line on an idle stream */
#define RETRY_MS 2000      /* the stream's reconnect hint */
#define SSE_OUT_MAX 65536  /* bytes queued for a slow stream before it is ended (the client resumes by id) */
#define LIMIT_BUCKETS 1024 /* the process-wide waiter counts */

#define LIST_WATCH 0 /* the watch of the waiting list */

enum { W_META = 1, W_MESSAGES, W_EVENTS, W_LIST };

typedef struct watch watch_t;
typedef struct waiter waiter_t;

struct waiter {
    tess_req_t *r;                /* the held request */
    push_loop_t *pl;              /* its loop */
    int kind;                     /* W_* */
    watch_t *watch;               /* its pre-chat's watch, while linked */
    waiter_t *wnext, *wprev;      /* the watch's waiters */
    waiter_t *anext, *aprev;      /* the loop's waiters */
    waiter_t *tnext, *tprev;      /* a wheel slot's waiters */
    int in_wheel;                 /* in a slot */
    int linked;                   /* in the watch and the loop's list */
    int counted;                  /* holds its place in the per-session and per-user counts */
    int64_t due_ms;               /* mono ms the wheel fires it */
    int64_t deadline_ms;          /* mono ms a long-poll answers by (0: none) */
    int64_t keepalive_ms;         /* mono ms of a stream's next keep-alive (0: none) */
    int64_t expires_ms;           /* wall ms the session expires */
    int64_t after;                /* the newest message id the client has */
    int64_t limit;                /* messages, list long-poll: page size */
    char etag[META_ETAG_LEN + 1]; /* meta, list long-poll: the client's tag; stream: the last meta sent */
    tess_str_t cookies;           /* the Cookie headers, for re-validation (request pool) */
    hangup_t *hup;                /* watches the client socket for a hang-up (h2o does not, while held) */
    int checking;                 /* a re-validation is under way */
    int recheck;                  /* another session event came meanwhile */
    h2o_generator_t gen;          /* stream: the response generator */
    char *out;                    /* stream: bytes not handed to h2o yet */
    size_t out_len, out_cap;      /* their length and capacity */
    char *inflight;               /* stream: bytes h2o is sending (freed at proceed) */
    int started;                  /* stream: the response has begun */
    int sending;                  /* stream: an h2o_send is outstanding */
    int final;                    /* stream: end once the queued bytes are out */
    int finished;                 /* stream: the final send was made, or the client went away */
    int64_t reads[LIVE_SIDES];    /* stream: the last read receipt sent, per side */
};

struct watch {
    watch_t *next;   /* hash chain */
    int64_t id;      /* the pre-chat */
    waiter_t *head;  /* its waiters on this loop */
    int loading;     /* a shared read is under way */
    int again;       /* a change came during it: read again afterwards */
    int closed;      /* the read found the pre-chat closed */
    push_loop_t *pl; /* its loop */
    int64_t *listed; /* LIST_WATCH: the ids its last read listed (malloc) */
    size_t n_listed; /* their number */
};

struct push_loop {
    server_thread_t *th;             /* the loop */
    watch_t *buckets[WATCH_BUCKETS]; /* watches by pre-chat */
    waiter_t *all;                   /* every linked waiter */
    waiter_t *wheel[WHEEL_SLOTS];    /* by due time */
    int64_t tick;                    /* the last slot processed (mono ms / TICK_MS) */
    h2o_timeout_t tick_timeout;      /* TICK_MS */
    h2o_timeout_entry_t tick_entry;  /* its entry */
    _Atomic size_t count;            /* linked waiters (/metrics reads it) */
    size_t streams;                  /* streams begun and not finished */
};

/* ---- per-session and per-user counts, process-wide ----------------------------------------------------------- */

typedef struct limit_entry {
    struct limit_entry *next; /* chain */
    int count;                /* waiters */
    char key[];               /* "s:<sid>" or "u:<uid>" */
} limit_entry_t;

static pthread_mutex_t limits_lock = PTHREAD_MUTEX_INITIALIZER;
static limit_entry_t *limits[LIMIT_BUCKETS];

static limit_entry_t **limit_slot(const char *key)
{
    limit_entry_t **pp = &limits[tess_fnv1a64(TESS_FNV1A64_BASIS, key, strlen(key)) % LIMIT_BUCKETS];
    while (*pp != NULL && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Adds `delta` to the count of `key`; with delta > 0, refuses (returns -1) past `max`. */
static int limit_add(const char *key, int delta, int max)
{
    limit_entry_t **pp, *e;
    int rc = 0;
    pthread_mutex_lock(&limits_lock);
    pp = limit_slot(key);
    if ((e = *pp) == NULL && delta > 0) {
        if ((e = calloc(1, sizeof(*e) + strlen(key) + 1)) == NULL) {
            rc = -1;
            goto out;
        }
        strcpy(e->key, key);
        *pp = e;
    }
    if (e == NULL)
        goto out;
    if (delta > 0 && e->count >= max) {
        rc = -1;
        goto out;
    }
    e->count += delta;
    if (e->count <= 0) {
        *pp = e->next;
        free(e);
    }
out:
    pthread_mutex_unlock(&limits_lock);
    return rc;
}

static void limit_keys(const tess_req_t *r, char *s, size_t scap, char *u, size_t ucap)
{
    snprintf(s, scap, "s:%s", r->sid);
    snprintf(u, ucap, "u:%s", r->user_id);
}

static int limits_take(tess_req_t *r)
{
    const tess_config_t *cfg = &r->th->srv->cfg;
    char s[TESS_SID_MAX + 3], u[TESS_USER_ID_MAX + 3];
    limit_keys(r, s, sizeof(s), u, sizeof(u));
    if (limit_add(s, 1, cfg->max_waiters_session) != 0)
        return -1;
    if (limit_add(u, 1, cfg->max_waiters_user) != 0) {
        limit_add(s, -1, 0);
        return -1;
    }
    return 0;
}

static void limits_give(tess_req_t *r)
{
    char s[TESS_SID_MAX + 3], u[TESS_USER_ID_MAX + 3];
    limit_keys(r, s, sizeof(s), u, sizeof(u));
    limit_add(s, -1, 0);
    limit_add(u, -1, 0);
}

/* ---- watches and the wheel ------------------------------------------------------------------------------------ */

static watch_t **watch_slot(push_loop_t *pl, int64_t id)
{
    watch_t **pp = &pl->buckets[((uint64_t)id * 0x9E3779B97F4A7C15ULL >> 40) % WATCH_BUCKETS];
    while (*pp != NULL && (*pp)->id != id)
        pp = &(*pp)->next;
    return pp;
}

static void watch_release(watch_t *wt)
{
    watch_t **pp;
    if (wt->head != NULL || wt->loading)
        return;
    pp = watch_slot(wt->pl, wt->id);
    *pp = wt->next;
    free(wt->listed);
    free(wt);
}

static void wheel_remove(waiter_t *w)
{
    if (!w->in_wheel)
        return;
    if (w->tprev != NULL)
        w->tprev->tnext = w->tnext;
    else
        w->pl->wheel[(w->due_ms / TICK_MS) % WHEEL_SLOTS] = w->tnext;
    if (w->tnext != NULL)
        w->tnext->tprev = w->tprev;
    w->in_wheel = 0;
}

/* Puts `w` in the slot of its next deadline, keep-alive or session expiry. */
static void schedule(waiter_t *w)
{
    int64_t now = tess_mono_ms(), due = now + (w->expires_ms - tess_now_ms());
    waiter_t **slot;

    wheel_remove(w);
    if (w->deadline_ms > 0 && w->deadline_ms < due)
        due = w->deadline_ms;
    if (w->keepalive_ms > 0 && w->keepalive_ms < due)
        due = w->keepalive_ms;
    if (due > now + (int64_t)(WHEEL_SLOTS - 2) * TICK_MS)
        due = now + (int64_t)(WHEEL_SLOTS - 2) * TICK_MS; /* a far expiry: look again then */
    due = (due + TICK_MS - 1) / TICK_MS * TICK_MS;        /* a slot's start: fired by the tick that reaches it */
    if (due <= w->pl->tick * TICK_MS)
        due = (w->pl->tick + 1) * TICK_MS; /* never in a slot already processed */
    w->due_ms = due;
    slot = &w->pl->wheel[(due / TICK_MS) % WHEEL_SLOTS];
    w->tprev = NULL;
    w->tnext = *slot;
    if (*slot != NULL)
        (*slot)->tprev = w;
    *slot = w;
    w->in_wheel = 1;
}

/* Takes `w` out of every list; idempotent. The request is answered (or being answered) by the caller. */
static void unlink_waiter(waiter_t *w)
{
    push_loop_t *pl = w->pl;
    wheel_remove(w);
    hangup_free(w->hup);
    w->hup = NULL;
    if (w->linked) {
        if (w->wprev != NULL)
            w->wprev->wnext = w->wnext;
        else
            w->watch->head = w->wnext;
        if (w->wnext != NULL)
            w->wnext->wprev = w->wprev;
        if (w->aprev != NULL)
            w->aprev->anext = w->anext;
        else
            pl->all = w->anext;
        if (w->anext != NULL)
            w->anext->aprev = w->aprev;
        w->linked = 0;
        atomic_fetch_sub_explicit(&pl->count, 1, memory_order_relaxed);
        watch_release(w->watch);
        w->watch = NULL;
    }
    if (w->counted) {
        limits_give(w->r);
        w->counted = 0;
    }
}

static void answer_timeout(waiter_t *w);
static void sse_end(waiter_t *w);

/* The client hung up while its request is held: the waiter goes now, so its place in the bounds and the
 * loop's lists is free at once. */
static void on_hangup(void *arg)
{
    waiter_t *w = arg;
    if (w->kind == W_EVENTS)
        sse_end(w); /* the write fails and h2o disposes of the request */
    else
        answer_timeout(w);
}

static void watch_hangup(waiter_t *w)
{
    if (w->hup == NULL)
        w->hup = hangup_watch(w->pl->th, w->r->req, on_hangup, w);
}

static void link_waiter(waiter_t *w)
{
    push_loop_t *pl = w->pl;
    watch_t **pp = watch_slot(pl, w->r->prechat_id), *wt = *pp;
    if (wt == NULL) {
        if ((wt = calloc(1, sizeof(*wt))) == NULL)
            h2o_fatal("out of memory");
        wt->id = w->r->prechat_id;
        wt->pl = pl;
        *pp = wt;
    }
    w->watch = wt;
    w->wprev = NULL;
    w->wnext = wt->head;
    if (wt->head != NULL)
        wt->head->wprev = w;
    wt->head = w;
    w->aprev = NULL;
    w->anext = pl->all;
    if (pl->all != NULL)
        pl->all->aprev = w;
    pl->all = w;
    w->linked = 1;
    atomic_fetch_add_explicit(&pl->count, 1, memory_order_relaxed);
    watch_hangup(w);
    schedule(w);
    if (!h2o_timeout_is_linked(&pl->tick_entry))
        h2o_timeout_link(pl->th->loop, &pl->tick_timeout, &pl->tick_entry);
}

/* ---- the event stream's bytes ------------------------------------------------------------------------------- */

static void sse_flush(waiter_t *w);

static void sse_end(waiter_t *w)
{
    unlink_waiter(w);
    w->final = 1;
    sse_flush(w);
}

static void sse_write(waiter_t *w, const char *p, size_t n)
{
    if (w->final || w->finished)
        return;
    if (w->out_len + n > SSE_OUT_MAX) {
        /* Too slow a reader: end the stream; it resumes from the last id it received. */
        w->out_len = 0;
        sse_end(w);
        return;
    }
    if (w->out_len + n > w->out_cap) {
        size_t cap = w->out_cap != 0 ? w->out_cap : 512;
        char *o;
        while (cap < w->out_len + n)
            cap *= 2;
        if ((o = realloc(w->out, cap)) == NULL)
            h2o_fatal("out of memory");
        w->out = o;
        w->out_cap = cap;
    }
    memcpy(w->out + w->out_len, p, n);
    w->out_len += n;
}

static void sse_flush(waiter_t *w)
{
    h2o_iovec_t iov;
    if (w->sending || w->finished || !w->started || (w->out_len == 0 && !w->final))
        return;
    iov = h2o_iovec_init(w->out, w->out_len);
    free(w->inflight);
    w->inflight = w->out; /* h2o reads it until proceed (or the end of the request) */
    w->out = NULL;
    w->out_len = w->out_cap = 0;
    if (w->final) {
        w->finished = 1;
        w->pl->streams--;
        h2o_send(w->r->req, &iov, iov.len > 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
        return;
    }
    w->sending = 1;
    h2o_send(w->r->req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    waiter_t *w = H2O_STRUCT_FROM_MEMBER(waiter_t, gen, gen);
    (void)req;
    w->sending = 0;
    free(w->inflight);
    w->inflight = NULL;
    sse_flush(w);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    waiter_t *w = H2O_STRUCT_FROM_MEMBER(waiter_t, gen, gen);
    (void)req;
    if (!w->finished) {
        w->finished = 1;
        w->pl->streams--;
    }
    unlink_waiter(w);
}

static void sse_sink(void *ctx, const char *p, size_t n)
{
    sse_write(ctx, p, n);
}

static void sse_meta(waiter_t *w, const meta_view_t *v)
{
    sse_event(sse_sink, w, -1, "meta", v->body, v->body_len);
    memcpy(w->etag, v->etag, sizeof(w->etag));
}

static void sse_message(waiter_t *w, int64_t id, const char *json, size_t n)
{
    sse_event(sse_sink, w, id, "message", json, n);
    w->after = id;
}

/* ---- answers -------------------------------------------------------------------------------------------------- */

/* A long-poll's time is up: the meta did not change (304), or no message came (an empty list). */
static void answer_timeout(waiter_t *w)
{
    tess_req_t *r = w->r;
    unlink_waiter(w);
    if (w->kind == W_META || w->kind == W_LIST) {
        h2o_iovec_t etag = h2o_strdup(&r->req->pool, w->etag, META_ETAG_LEN);
        h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_ETAG, NULL, etag.base, etag.len);
        h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                       H2O_STRLIT("private, no-cache"));
        r->req->res.status = 304;
        r->req->res.reason = "Not Modified";
        send_headers_only(r->req);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddArrayToObject(o, "messages");
        send_json(r, 200, o);
    }
}

/* Ends `w` with an error: a stream just ends (a reconnect gets the error), a long-poll answers it. */
static void end_with(waiter_t *w, int status, const char *code, const char *message)
{
    if (w->kind == W_EVENTS) {
        sse_end(w);
        return;
    }
    unlink_waiter(w);
    send_error(w->r, status, code, message);
}

/* ---- the shared read of a watch --------------------------------------------------------------------------------- */

static void watch_load(watch_t *wt);

static void load_done(watch_t *wt)
{
    wt->loading = 0;
    if (wt->again && wt->head != NULL) {
        wt->again = 0;
        watch_load(wt);
        return;
    }
    watch_release(wt);
}

/* Every stream of a closed pre-chat that has had its messages ends (after its final meta). */
static void end_closed(watch_t *wt, int64_t last_message_id)
{
    for (waiter_t *w = wt->head, *n; w != NULL; w = n) {
        n = w->wnext;
        if (w->kind == W_EVENTS && w->after >= last_message_id)
            sse_end(w);
    }
}

static void on_watch_messages(void *arg, const appdb_result_t *res)
{
    watch_t *wt = arg;
    char **json = NULL;
    size_t *len = NULL, n = res->rc == 0 ? res->n_messages : 0;
    int64_t newest = n > 0 ? res->messages[n - 1].id : 0;

    if (n > 0 && ((json = calloc(n, sizeof(*json))) == NULL || (len = calloc(n, sizeof(*len))) == NULL))
        h2o_fatal("out of memory");
    for (size_t i = 0; i < n; ++i) {
        cJSON *o = message_json(&res->messages[i]);
        if ((json[i] = cJSON_PrintUnformatted(o)) == NULL)
            h2o_fatal("out of memory");
        len[i] = strlen(json[i]);
        cJSON_Delete(o);
    }
    for (waiter_t *w = wt->head, *next; w != NULL; w = next) {
        next = w->wnext;
        if (w->kind == W_MESSAGES) {
            cJSON *o = NULL, *list = NULL;
            for (size_t i = 0; i < n; ++i) {
                if (res->messages[i].id <= w->after)
                    continue;
                if (o == NULL) {
                    o = cJSON_CreateObject();
                    list = cJSON_AddArrayToObject(o, "messages");
                }
                if (cJSON_GetArraySize(list) >= w->limit)
                    break;
                cJSON_AddItemToArray(list, message_json(&res->messages[i]));
            }
            if (o != NULL) {
                unlink_waiter(w);
                send_json(w->r, 200, o);
            }
        } else if (w->kind == W_EVENTS) {
            for (size_t i = 0; i < n; ++i) {
                if (res->messages[i].id > w->after)
                    sse_message(w, res->messages[i].id, json[i], len[i]);
            }
            sse_flush(w);
        }
    }
    for (size_t i = 0; i < n; ++i)
        free(json[i]);
    free(json);
    free(len);
    if (n == APP_LIST_MAX)
        wt->again = 1; /* a full page: there may be more */
    else if (wt->closed)
        end_closed(wt, newest);
    load_done(wt);
}

static void on_watch_meta(void *arg, int rc, const meta_view_t *v)
{
    watch_t *wt = arg;
    int64_t min_after = INT64_MAX;

    if (rc != 0) {
        for (waiter_t *w = wt->head, *n; rc == TESS_ENOTFOUND && w != NULL; w = n) {
            n = w->wnext;
            end_with(w, 404, "not_found", "no such pre-chat");
        }
        load_done(wt); /* an outage: the waiters stay; the next event or their deadline answers */
        return;
    }
    wt->closed = v->closed;
    for (waiter_t *w = wt->head, *n; w != NULL; w = n) {
        n = w->wnext;
        if (!meta_may_read(w->r, v)) {
            end_with(w, 404, "not_found", "no such pre-chat");
            continue;
        }
        if (w->kind == W_META && strcmp(w->etag, v->etag) != 0) {
            unlink_waiter(w);
            meta_answer(w->r, v);
            continue;
        }
        if (w->kind == W_EVENTS && strcmp(w->etag, v->etag) != 0)
            sse_meta(w, v);
        if (w->kind != W_META && w->after < v->last_message_id && w->after < min_after)
            min_after = w->after;
        else if (w->kind == W_EVENTS)
            sse_flush(w); /* no message follows: out now (else the meta goes out with the messages) */
    }
    if (min_after != INT64_MAX && wt->head != NULL) {
        appdb_t *db = wt->pl->th->appdb;
        if (db->ops->messages_list(db, wt->id, min_after, APP_LIST_MAX, on_watch_messages, wt) == 0)
            return; /* on_watch_messages finishes the load */
    } else if (v->closed) {
        end_closed(wt, v->last_message_id);
    }
    load_done(wt);
}

/* The waiting list, read once for all the list's waiters: each whose tag it no longer matches is answered. */
static void on_watch_list(void *arg, const appdb_result_t *res)
{
    watch_t *wt = arg;
    char etag[META_ETAG_LEN + 1], *body = NULL;
    int64_t limit = 0;

    if (res->rc != 0) {
        load_done(wt); /* an outage: the waiters stay; the next event or their deadline answers */
        return;
    }
    free(wt->listed);
    wt->listed = NULL;
    wt->n_listed = 0;
    if (res->n_prechats > 0 && (wt->listed = malloc(res->n_prechats * sizeof(*wt->listed))) == NULL)
        h2o_fatal("out of memory");
    for (size_t i = 0; i < res->n_prechats; ++i)
        wt->listed[wt->n_listed++] = res->prechats[i].id;
    /* Rendered once per distinct limit (agents mostly use the default one). */
    for (waiter_t *w = wt->head, *n; w != NULL; w = n) {
        n = w->wnext;
        if (body == NULL || w->limit != limit) {
            free(body);
            limit = w->limit;
            body = prechat_list_render(res->prechats, res->n_prechats, (size_t)limit, etag);
        }
        if (strcmp(etag, w->etag) != 0) {
            unlink_waiter(w);
            prechat_list_answer(w->r, body, etag);
        }
    }
    free(body);
    load_done(wt);
}

static int watch_listed(const watch_t *wt, int64_t id)
{
    for (size_t i = 0; i < wt->n_listed; ++i) {
        if (wt->listed[i] == id)
            return 1;
    }
    return 0;
}

/* Reads the watch's pre-chat (or the waiting list) once for all its waiters (again after the current read,
 * when one is going). */
static void watch_load(watch_t *wt)
{
    appdb_t *db = wt->pl->th->appdb;
    int rc;
    if (wt->loading) {
        wt->again = 1;
        return;
    }
    wt->loading = 1;
    if (wt->id == LIST_WATCH)
        rc = db->ops->prechat_waiting(db, APP_LIST_MAX, on_watch_list, wt);
    else
        rc = meta_get(wt->pl->th, wt->id, on_watch_meta, wt);
    if (rc != 0) {
        wt->loading = 0;
        watch_release(wt);
    }
}

/* ---- sessions ------------------------------------------------------------------------------------------------- */

static void revalidate(waiter_t *w);

static void on_revalidated(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    tess_req_t *r = req_resume(arg);
    waiter_t *w;
    (void)cookie;
    if (r == NULL)
        return;
    w = r->state;
    w->checking = 0;
    if (!w->linked)
        return; /* answered meanwhile */
    if (rc == 0 && s != NULL && strcmp(s->id, r->sid) == 0) {
        w->expires_ms = s->expires_ms;
        schedule(w);
        if (w->recheck) {
            w->recheck = 0;
            revalidate(w);
        }
    } else if (rc == 0 || rc == TESS_EDENIED || rc == TESS_ENOTFOUND || rc == TESS_EEXPIRED || rc == TESS_EREVOKED) {
        end_with(w, 401, "unauthorized", "no valid session");
    } else {
        end_with(w, 503, "unavailable", "a backend is not answering; retry shortly");
    }
}

/* Asks the strategy again whether the waiter's session is still valid. */
static void revalidate(waiter_t *w)
{
    tess_req_t *r = w->r;
    if (w->checking) {
        w->recheck = 1;
        return;
    }
    w->checking = 1;
    tess_auth_check(tess_deploy_loop_auth(r->th->sessions), w->cookies, tess_now_ms(), on_revalidated, req_suspend(r));
}

/* ---- events and time ------------------------------------------------------------------------------------------ */

/* Every watch of the loop reads again (ids first: a read answered from the cache may free its watch). */
static void load_all(push_loop_t *pl)
{
    size_t n = 0, cap = 0;
    int64_t *ids = NULL;
    for (size_t b = 0; b < WATCH_BUCKETS; ++b) {
        for (watch_t *wt = pl->buckets[b]; wt != NULL; wt = wt->next) {
            if (n == cap) {
                cap = cap != 0 ? cap * 2 : 64;
                if ((ids = realloc(ids, cap * sizeof(*ids))) == NULL)
                    h2o_fatal("out of memory");
            }
            ids[n++] = wt->id;
        }
    }
    for (size_t i = 0; i < n; ++i) {
        watch_t *wt = *watch_slot(pl, ids[i]);
        if (wt != NULL)
            watch_load(wt);
    }
    free(ids);
}

void push_event(server_thread_t *th, int kind, int64_t id, tess_str_t key)
{
    push_loop_t *pl = th->push;
    watch_t *wt;

    if (pl == NULL)
        return;
    switch (kind) {
    case PUSH_PRECHAT:
        if ((wt = *watch_slot(pl, id)) != NULL)
            watch_load(wt);
        if ((wt = *watch_slot(pl, LIST_WATCH)) != NULL && watch_listed(wt, id))
            watch_load(wt); /* a listed pre-chat changed (its messages, its status) */
        break;
    case PUSH_QUEUE_NEW: /* a pre-chat joined the end of the queue: only the list changed */
        if ((wt = *watch_slot(pl, LIST_WATCH)) != NULL)
            watch_load(wt);
        break;
    case PUSH_QUEUE: /* every waiting pre-chat's position moved: each watch reads its meta again */
    case PUSH_ALL:
        load_all(pl);
        if (kind == PUSH_QUEUE)
            break;
        for (waiter_t *w = pl->all; w != NULL; w = w->anext)
            revalidate(w);
        break;
    case PUSH_SID:
    case PUSH_UID:
        for (waiter_t *w = pl->all; w != NULL; w = w->anext) {
            if (tess_str_eq(key, tess_str(kind == PUSH_SID ? w->r->sid : w->r->user_id)))
                revalidate(w);
        }
        break;
    }
}

void push_live(server_thread_t *th, int64_t id, const live_event_t *ev)
{
    push_loop_t *pl = th->push;
    watch_t *wt;
    char data[96];
    int n;

    if (pl == NULL || (wt = *watch_slot(pl, id)) == NULL)
        return;
    if (ev->read)
        n = snprintf(data, sizeof(data), "{\"from\":\"%s\",\"upto\":%" PRId64 "}", livechat_side_name(ev->side),
                     ev->value);
    else
        n = snprintf(data, sizeof(data), "{\"from\":\"%s\"}", livechat_side_name(ev->side));
    for (waiter_t *w = wt->head; w != NULL; w = w->wnext) {
        if (w->kind != W_EVENTS || !w->started || w->finished || w->final)
            continue;
        if (ev->read) {
            if (ev->value <= w->reads[ev->side])
                continue; /* not news to this stream (a duplicate, or an older receipt) */
            w->reads[ev->side] = ev->value;
        }
        sse_event(sse_sink, w, -1, ev->read ? "read" : "typing", data, (size_t)n);
        sse_flush(w);
    }
}

/* A waiter's time came: its session expired, its keep-alive is due, or its long-poll deadline passed. */
static void fire(waiter_t *w, int64_t now)
{
    if (tess_now_ms() >= w->expires_ms) {
        end_with(w, 401, "unauthorized", "the session expired");
    } else if (w->kind == W_EVENTS && w->keepalive_ms <= now) {
        sse_write(w, ": keep-alive\n\n", 14);
        sse_flush(w);
        w->keepalive_ms = now + KEEPALIVE_MS;
        if (w->linked)
            schedule(w);
    } else if (w->kind != W_EVENTS && w->deadline_ms <= now) {
        answer_timeout(w);
    } else {
        schedule(w);
    }
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    push_loop_t *pl = H2O_STRUCT_FROM_MEMBER(push_loop_t, tick_entry, entry);
    int64_t now = tess_mono_ms(), until = now / TICK_MS;

    for (int64_t t = pl->tick + 1; t <= until && t <= pl->tick + WHEEL_SLOTS; ++t) {
        waiter_t **slot = &pl->wheel[t % WHEEL_SLOTS];
        for (waiter_t *w = *slot, *n; w != NULL; w = n) {
            n = w->tnext;
            if (w->due_ms <= now) {
                wheel_remove(w);
                fire(w, now);
            }
        }
    }
    pl->tick = until;
    if (pl->all != NULL)
        h2o_timeout_link(pl->th->loop, &pl->tick_timeout, &pl->tick_entry);
}

/* ---- the loop ------------------------------------------------------------------------------------------------- */

int push_loop_init(server_thread_t *th)
{
    push_loop_t *pl = calloc(1, sizeof(*pl));
    if (pl == NULL)
        return TESS_ENOMEM;
    pl->th = th;
    pl->tick = tess_mono_ms() / TICK_MS;
    h2o_timeout_init(th->loop, &pl->tick_timeout, TICK_MS);
    pl->tick_entry.cb = on_tick;
    th->push = pl;
    return 0;
}

void push_loop_free(server_thread_t *th)
{
    push_loop_t *pl = th->push;
    if (pl == NULL)
        return;
    while (pl->all != NULL)
        unlink_waiter(pl->all);
    for (size_t b = 0; b < WATCH_BUCKETS; ++b) {
        while (pl->buckets[b] != NULL) {
            watch_t *wt = pl->buckets[b];
            pl->buckets[b] = wt->next;
            free(wt->listed);
            free(wt);
        }
    }
    if (h2o_timeout_is_linked(&pl->tick_entry))
        h2o_timeout_unlink(&pl->tick_entry);
    h2o_timeout_dispose(th->loop, &pl->tick_timeout);
    free(pl);
    th->push = NULL;
}

size_t push_shutdown(server_thread_t *th)
{
    push_loop_t *pl = th->push;
    if (pl == NULL)
        return 0;
    while (pl->all != NULL) {
        waiter_t *w = pl->all;
        if (w->kind == W_EVENTS) {
            char hint[32];
            sse_write(w, hint, (size_t)snprintf(hint, sizeof(hint), "retry: %d\n\n", RETRY_MS));
            sse_end(w);
        } else {
            answer_timeout(w);
        }
    }
    return pl->streams;
}

size_t push_pending(server_thread_t *th)
{
    return th->push != NULL ? th->push->streams : 0;
}

size_t push_count(server_thread_t *th)
{
    return th->push != NULL ? atomic_load_explicit(&th->push->count, memory_order_relaxed) : 0;
}

/* ---- the requests --------------------------------------------------------------------------------------------- */

static void waiter_dispose(void *p)
{
    waiter_t *w = p;
    if (w->kind == W_EVENTS && w->started && !w->finished) {
        w->finished = 1;
        w->pl->streams--;
    }
    unlink_waiter(w);
    free(w->out);
    free(w->inflight);
}

int wait_param(tess_req_t *r, int64_t *wait_s)
{
    char buf[16];
    int q = query_param(r, "wait", buf, sizeof(buf));
    *wait_s = 0;
    if (q < 0 || (q > 0 && tess_parse_int(buf, 1, WAIT_MAX_S, wait_s) != 0)) {
        send_error(r, 400, "bad_request", "wait must be an integer from 1 to 60 (seconds)");
        return -1;
    }
    return 0;
}

/* A waiter for `r` (its state from now on), counted against the bounds; NULL with 429 or 431 sent. */
static waiter_t *waiter_new(tess_req_t *r, int kind)
{
    waiter_t *w;
    tess_str_t cookies;

    if (cookie_header(r, &cookies) != 0)
        return NULL;
    if (limits_take(r) != 0) {
        send_error(r, 429, "too_many_waiters", "too many open waits for this session or user");
        return NULL;
    }
    w = h2o_mem_alloc_shared(&r->req->pool, sizeof(*w), waiter_dispose);
    memset(w, 0, sizeof(*w));
    w->r = r;
    w->pl = r->th->push;
    w->kind = kind;
    w->counted = 1;
    w->expires_ms = r->expires_ms;
    w->cookies = tess_strn(h2o_strdup(&r->req->pool, cookies.ptr, cookies.len).base, cookies.len);
    r->state = w;
    return w;
}

/* The long-poll deadline: `wait_s` from now, less a little jitter (up to a tenth, at most a second). */
static int64_t deadline_of(int64_t wait_s)
{
    int64_t span = wait_s * 1000, jitter = span / 10 < 1000 ? span / 10 : 1000;
    uint32_t rnd;
    tess_random_bytes((uint8_t *)&rnd, sizeof(rnd));
    return tess_mono_ms() + span - (jitter > 0 ? (int64_t)(rnd % (uint32_t)jitter) : 0);
}

void wait_meta(tess_req_t *r, const meta_view_t *v, int64_t wait_s)
{
    waiter_t *w = waiter_new(r, W_META);
    if (w == NULL)
        return;
    memcpy(w->etag, v->etag, sizeof(w->etag));
    w->deadline_ms = deadline_of(wait_s);
    link_waiter(w);
    watch_load(w->watch); /* a change between the read and now is not missed */
}

void wait_list(tess_req_t *r, const char *etag, int64_t limit, int64_t wait_s)
{
    waiter_t *w = waiter_new(r, W_LIST);
    if (w == NULL)
        return;
    snprintf(w->etag, sizeof(w->etag), "%s", etag);
    w->limit = limit;
    w->deadline_ms = deadline_of(wait_s);
    r->prechat_id = LIST_WATCH; /* the route has no {id}: it is 0 already */
    link_waiter(w);
    watch_load(w->watch); /* a change between the read and now is not missed */
}

void wait_messages(tess_req_t *r, int64_t after, int64_t limit, int64_t wait_s)
{
    waiter_t *w = waiter_new(r, W_MESSAGES);
    if (w == NULL)
        return;
    w->after = after;
    w->limit = limit;
    w->deadline_ms = deadline_of(wait_s);
    link_waiter(w);
    watch_load(w->watch);
}

static void on_events_meta(void *arg, int rc, const meta_view_t *v)
{
    tess_req_t *r = req_resume(arg);
    h2o_req_t *req;
    waiter_t *w;
    char hint[32];
    if (r == NULL)
        return;
    w = r->state;
    if (rc == TESS_ENOTFOUND || (rc == 0 && !meta_may_read(r, v))) {
        unlink_waiter(w);
        send_error(r, 404, "not_found", "no such pre-chat");
        return;
    }
    if (rc != 0) {
        unlink_waiter(w);
        send_backend_error(r, rc);
        return;
    }
    req = r->req;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL, H2O_STRLIT("no"));
    w->gen.proceed = on_proceed;
    w->gen.stop = on_stop;
    h2o_start_response(req, &w->gen);
    w->started = 1;
    w->pl->streams++;
    sse_write(w, hint, (size_t)snprintf(hint, sizeof(hint), "retry: %d\n\n", RETRY_MS));
    sse_meta(w, v);
    if (w->after < 0)
        w->after = v->last_message_id; /* no resume point: the messages written from now on */
    w->keepalive_ms = tess_mono_ms() + KEEPALIVE_MS;
    link_waiter(w);
    sse_flush(w);
    /* The backlog (after Last-Event-ID), a change meanwhile, or a closed pre-chat: the watch's read. */
    watch_load(w->watch);
}

void h_prechat_events(tess_req_t *r)
{
    char buf[32];
    int64_t after = -1;
    ssize_t i = h2o_find_header_by_str(&r->req->headers, H2O_STRLIT("last-event-id"), -1);
    waiter_t *w;
    ticket_t *t;
    int q = query_param(r, "after", buf, sizeof(buf));

    if (i >= 0) {
        h2o_iovec_t v = r->req->headers.entries[i].value;
        if (sse_last_event_id(tess_strn(v.base, v.len), &after) != 0) {
            send_error(r, 400, "bad_request", "Last-Event-ID must be a message id");
            return;
        }
    } else if (q < 0 || (q > 0 && tess_parse_int(buf, 0, INT64_MAX / 2, &after) != 0)) {
        send_error(r, 400, "bad_request", "after / Last-Event-ID must be a non-negative message id");
        return;
    }
    if ((w = waiter_new(r, W_EVENTS)) == NULL)
        return;
    w->after = after;
    t = req_suspend(r);
    if (req_started(r, t, meta_get(r->th, r->prechat_id, on_events_meta, t)) != 0)
        unlink_waiter(w);
}
