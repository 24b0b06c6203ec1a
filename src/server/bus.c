/*
 * The change bus (bus.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/bus.h"
#include "server/livechat.h"
#include "server/poll.h"
#include "server/push.h"
#include "server/roles.h"
#include "tessera/error.h"

typedef struct bus_event {
    int kind;                   /* PUSH_* (push.h) */
    int64_t id;                 /* PUSH_PRECHAT: the pre-chat */
    char key[TESS_SID_MAX + 1]; /* PUSH_SID / PUSH_UID: the session or user id */
    live_event_t live;          /* PUSH_LIVE: typing or a read receipt */
} bus_event_t;

static appdb_listener_t *listener; /* without Redis: the process's one listener (on loop 0) */

int bus_init(server_t *srv)
{
    if (livechat_init() != 0)
        return TESS_EIO;
    for (int i = 0; i < srv->cfg.threads; ++i)
        pthread_mutex_init(&srv->threads[i].inbox.lock, NULL);
    return 0;
}

void bus_unlisten(void)
{
    appdb_listener_free(listener);
    listener = NULL;
}

void bus_free(server_t *srv)
{
    for (int i = 0; srv->threads != NULL && i < srv->cfg.threads; ++i) {
        bus_inbox_t *in = &srv->threads[i].inbox;
        free(in->events);
        in->events = NULL;
        in->n = in->cap = 0;
        pthread_mutex_destroy(&in->lock);
    }
}

/* ---- into the loops ------------------------------------------------------------------------------------------ */

/* On loop `th`: everything queued for it. */
static void drain(void *arg)
{
    server_thread_t *th = arg;
    bus_inbox_t *in = &th->inbox;
    bus_event_t *events;
    size_t n;

    pthread_mutex_lock(&in->lock);
    events = in->events;
    n = in->n;
    in->events = NULL;
    in->n = in->cap = 0;
    in->posted = 0;
    pthread_mutex_unlock(&in->lock);
    for (size_t i = 0; i < n; ++i) {
        if (events[i].kind == PUSH_LIVE)
            push_live(th, events[i].id, &events[i].live);
        else
            push_event(th, events[i].kind, events[i].id, tess_str(events[i].key));
    }
    free(events);
}

/* Queues `ev` for every loop: one post per loop while its inbox is not drained yet. */
static void to_loops(server_t *srv, const bus_event_t *ev)
{
    for (int i = 0; i < srv->cfg.threads; ++i) {
        server_thread_t *th = &srv->threads[i];
        bus_inbox_t *in = &th->inbox;
        int post = 0;

        if (th->loop == NULL)
            continue;
        pthread_mutex_lock(&in->lock);
        /* The same pre-chat twice in one batch is one wake. */
        for (size_t k = 0; k < in->n && ev->kind == PUSH_PRECHAT; ++k) {
            if (in->events[k].kind == PUSH_PRECHAT && in->events[k].id == ev->id)
                goto unlock;
        }
        if (in->n == in->cap) {
            size_t cap = in->cap != 0 ? in->cap * 2 : 16;
            bus_event_t *e = realloc(in->events, cap * sizeof(*e));
            if (e == NULL)
                goto unlock; /* a lost wake costs a long-poll its timeout, never a wrong answer */
            in->events = e;
            in->cap = cap;
        }
        in->events[in->n++] = *ev;
        if (!in->posted)
            post = in->posted = 1;
    unlock:
        pthread_mutex_unlock(&in->lock);
        if (post)
            th->tloop.super.ops->post(&th->tloop.super, drain, th);
    }
}

static void event_key(bus_event_t *ev, int kind, tess_str_t key)
{
    memset(ev, 0, sizeof(*ev));
    ev->kind = kind;
    if (key.len <= TESS_SID_MAX)
        memcpy(ev->key, key.ptr, key.len);
    else
        ev->kind = PUSH_ALL; /* not one of ours: re-check everyone */
}

/* ---- the sources ---------------------------------------------------------------------------------------------- */

/* A live event (livechat.h): to the loops when it is well formed, and either published here (`local`) or
 * another process's (an echo of our own, from the event table or NOTIFY, was handled when published). */
static void live_event(server_t *srv, tess_str_t name, int local)
{
    bus_event_t ev;
    int own;
    memset(&ev, 0, sizeof(ev));
    ev.kind = PUSH_LIVE;
    if (livechat_parse(name, &ev.id, &ev.live, &own) && own == local)
        to_loops(srv, &ev);
}

void bus_on_event(void *arg, tess_str_t name)
{
    server_t *srv = arg;
    bus_event_t ev;
    int64_t id;

    if (name.len > 5 && memcmp(name.ptr, "live:", 5) == 0) {
        live_event(srv, name, 0);
        return;
    }
    if (name.len > 4 && memcmp(name.ptr, "sid:", 4) == 0) {
        event_key(&ev, PUSH_SID, tess_strn(name.ptr + 4, name.len - 4));
    } else if (name.len > 4 && memcmp(name.ptr, "uid:", 4) == 0) {
        event_key(&ev, PUSH_UID, tess_strn(name.ptr + 4, name.len - 4));
    } else if (name.len > 5 && memcmp(name.ptr, "user:", 5) == 0) {
        roles_on_user_event(tess_strn(name.ptr + 5, name.len - 5)); /* a role changed: nothing to wake */
        return;
    } else if (tess_str_eq(name, TESS_STR_LIT("queue:new"))) {
        memset(&ev, 0, sizeof(ev));
        ev.kind = PUSH_QUEUE_NEW; /* a pre-chat joined the end of the queue: no meta moved */
    } else {
        /* A meta change: the cache first, so that every woken waiter reads the new one. */
        meta_on_app_key(srv, name);
        memset(&ev, 0, sizeof(ev));
        if (meta_name_id(name, &id)) {
            ev.kind = PUSH_PRECHAT;
            ev.id = id;
        } else {
            /* "meta:queue" moved every waiting position; anything else: everyone looks again */
            ev.kind = tess_str_eq(name, TESS_STR_LIT("meta:queue")) ? PUSH_QUEUE : PUSH_ALL;
        }
    }
    to_loops(srv, &ev);
}

void bus_on_state(void *arg, int up)
{
    server_t *srv = arg;
    bus_event_t ev = {.kind = PUSH_ALL};
    /* The change channel is Redis client tracking (and the session table watcher): its state is a backend's. */
    log_event(up ? LOG_INFO : LOG_WARN, up ? "backend.up" : "backend.down",
              up ? "change events flowing: caches on" : "change events lost: caches off and flushed",
              (log_field_t[]){{"backend", "coherence", 0}}, 1);
    meta_on_coherence(srv, up);
    roles_flush();
    if (up)
        to_loops(srv, &ev); /* what changed meanwhile was not reported: every waiter looks again */
}

void bus_on_session_key(void *arg, tess_key_kind_t kind, tess_str_t id)
{
    server_t *srv = arg;
    bus_event_t ev;
    switch (kind) {
    case TESS_KEYKIND_SESSION:
    case TESS_KEYKIND_DENY: /* a token's session id is its jti */
        event_key(&ev, PUSH_SID, id);
        break;
    case TESS_KEYKIND_CUTOFF:
        event_key(&ev, PUSH_UID, id);
        break;
    default:
        memset(&ev, 0, sizeof(ev));
        ev.kind = PUSH_ALL;
        break;
    }
    to_loops(srv, &ev);
}

/* ---- out ------------------------------------------------------------------------------------------------------- */

static void published(void *arg, const appdb_result_t *res)
{
    (void)arg;
    if (res->rc != 0)
        server_log("publishing a change event failed: %s", tess_strerror(res->rc));
}

void bus_publish(server_thread_t *th, tess_str_t name)
{
    server_t *srv = th->srv;
    if (name.len > 5 && memcmp(name.ptr, "live:", 5) == 0) {
        /* Not through Redis: its app keys are counters of a few fixed names, and a live name is new each time. */
        live_event(srv, name, 1);
        if (!tess_deploy_coherent(srv->sessions))
            th->appdb->ops->publish(th->appdb, name, published, NULL);
        return;
    }
    bus_on_event(srv, name);
    if (tess_deploy_coherent(srv->sessions))
        tess_deploy_loop_publish(th->sessions, name);
    else
        th->appdb->ops->publish(th->appdb, name, published, NULL);
}

int bus_listen(server_t *srv, char *err, size_t errcap)
{
    server_thread_t *th0 = &srv->threads[0];
    appdb_listen_opts_t o = {.on_event = bus_on_event, .on_state = bus_on_state, .arg = srv};

    if (tess_deploy_coherent(srv->sessions))
        return 0; /* Redis carries the events: the deployment's listener reports them */
    if (srv->cfg.postgres)
        return appdb_pg_listen(&listener, &th0->tloop.super, srv->cfg.database_url, srv->cfg.backend_timeout_ms, &o,
                               err, errcap) == 0
                   ? 0
                   : -1;
    return appdb_sqlite_listen(&listener, &th0->tloop.super, srv->cfg.sqlite_path, &o, err, errcap) == 0 ? 0 : -1;
}
