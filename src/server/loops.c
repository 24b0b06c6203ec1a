/*
 * The loops: per thread an h2o evloop with its own listener (SO_REUSEPORT), database connection and
 * per-loop part of the session deployment; accepting bounded by TESSERA_MAX_CONNECTIONS (and per client
 * address by TESSERA_MAX_CONNECTIONS_PER_ADDRESS, limits.h); periodic
 * maintenance on thread 0; a bounded drain of in-flight steps when stopping.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/bus.h"
#include "server/limits.h"
#include "server/poll.h"
#include "server/push.h"
#include "server/router.h"
#include "server/timeouts.h"
#include "tessera/error.h"

#define MAINT_INTERVAL_MS 60000 /* expired-session pruning period */
#define PRUNE_BATCH 1000        /* rows per pruning pass */
#define DRAIN_MS 2000           /* how long a stopping loop waits for in-flight steps */
#define READY_WAIT_MS 5000      /* how long start-up waits for networked backends */

server_thread_t *tess_thread_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(server_thread_t, ctx, req->conn->ctx);
}

/* ---- accepting and the connection bound ------------------------------------------------------------------ */

static void on_accept(h2o_socket_t *listener, const char *err);

/* Accepting pauses at the connection bound (new connections wait in the kernel backlog) and on EMFILE. */
static void set_accepting(server_thread_t *th, int on)
{
    if (th->listener == NULL || th->accepting == on)
        return;
    th->accepting = on;
    if (on)
        h2o_socket_read_start(th->listener, on_accept);
    else
        h2o_socket_read_stop(th->listener);
}

static int conns_of(server_thread_t *th)
{
    return atomic_load_explicit(&th->conns, memory_order_relaxed);
}

/* What a connection's close has to give back: its loop's count, and its address's when it was counted. */
typedef struct conn_ref {
    server_thread_t *th; /* its loop */
    int keyed;           /* `key` was counted by the per-address bound */
    addr_key_t key;      /* its address */
} conn_ref_t;

static void on_conn_close(void *data)
{
    conn_ref_t *ref = data;
    server_thread_t *th = ref->th;
    if (ref->keyed)
        addr_limit_release(th->srv->addr_conns, &ref->key);
    free(ref);
    atomic_fetch_sub_explicit(&th->conns, 1, memory_order_relaxed);
    if (conns_of(th) < th->max_conns && !atomic_load(&th->srv->stopping) && !h2o_timeout_is_linked(&th->retry_entry))
        set_accepting(th, 1);
}

static void on_accept_retry(h2o_timeout_entry_t *entry)
{
    server_thread_t *th = H2O_STRUCT_FROM_MEMBER(server_thread_t, retry_entry, entry);
    if (conns_of(th) < th->max_conns && !atomic_load(&th->srv->stopping))
        set_accepting(th, 1);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    server_thread_t *th = listener->data;
    h2o_socket_t *sock;
    conn_ref_t *ref;

    if (err != NULL)
        return;
    for (int i = 0; i < 16 && conns_of(th) < th->max_conns; ++i) {
        errno = 0;
        if ((sock = h2o_evloop_socket_accept(listener)) == NULL) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: a level-triggered listener would spin; wait for some to be freed. */
                set_accepting(th, 0);
                h2o_timeout_link(th->loop, &th->retry_timeout, &th->retry_entry);
            }
            return;
        }
        if ((ref = malloc(sizeof(*ref))) == NULL) {
            h2o_socket_close(sock);
            continue;
        }
        ref->th = th;
        if ((ref->keyed = addr_limit_admit(th->srv->addr_conns, sock, &ref->key)) < 0) {
            free(ref); /* answered 429 and closed */
            continue;
        }
        atomic_fetch_add_explicit(&th->conns, 1, memory_order_relaxed);
        {
            /* Streams and held answers are small writes that must leave at once, not wait for an ACK. */
            int one = 1;
            setsockopt(h2o_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = ref;
        h2o_accept(&th->accept_ctx, sock);
    }
    if (conns_of(th) >= th->max_conns)
        set_accepting(th, 0);
}

static int open_listener(const char *host, unsigned listen_port, int reuseport, char *err, size_t errcap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char port[8];
    int fd = -1, on = 1, gai;

    snprintf(port, sizeof(port), "%u", listen_port);
    if ((gai = getaddrinfo(host, port, &hints, &res)) != 0) {
        snprintf(err, errcap, "cannot resolve listen address %s: %s", host, gai_strerror(gai));
        return -1;
    }
    if ((fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errcap, "cannot listen on %s:%u: %s", host, listen_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* The metrics listener's connections: not counted against the client bounds (it is the operator's port). */
static void on_metrics_accept(h2o_socket_t *listener, const char *err)
{
    server_thread_t *th = listener->data;
    h2o_socket_t *sock;
    if (err != NULL)
        return;
    for (int i = 0; i < 16 && (sock = h2o_evloop_socket_accept(listener)) != NULL; ++i)
        h2o_accept(&th->metrics_accept, sock);
}

/* ---- maintenance ---------------------------------------------------------------------------------------- */

static void prune_done(void *arg, int rc, const tess_session_t *s)
{
    (void)arg;
    (void)s;
    if (rc < 0)
        server_log("pruning expired sessions failed: %s", tess_strerror(rc));
    else if (rc > 0)
        server_log("pruned %d expired sessions", rc);
}

static void on_maintenance(h2o_timeout_entry_t *entry)
{
    server_thread_t *th = H2O_STRUCT_FROM_MEMBER(server_thread_t, maint_entry, entry);
    int rc = tess_deploy_loop_prune(th->sessions, tess_now_ms(), PRUNE_BATCH, prune_done, NULL);
    if (rc != 0)
        prune_done(NULL, rc, NULL);
    h2o_timeout_link(th->ctx.loop, &th->maint_timeout, &th->maint_entry);
}

/* ---- per-thread backends ---------------------------------------------------------------------------------- */

static int thread_open(server_thread_t *th, char *err, size_t errcap)
{
    server_t *srv = th->srv;
    int rc;

    th->loop = h2o_evloop_create();
    tess_h2o_loop_init(&th->tloop, th->loop);
    if (srv->cfg.postgres) {
        if ((rc = appdb_pg_open(&th->appdb, &th->tloop.super, srv->cfg.database_url, srv->cfg.backend_timeout_ms, err,
                                errcap)) != 0)
            return rc;
    } else if ((rc = tess_sqlite_connect(&th->sqlite, srv->cfg.sqlite_path, err, errcap)) != 0 ||
               (rc = appdb_sqlite_open(&th->appdb, th->sqlite, err, errcap)) != 0) {
        return rc;
    }
    if ((rc = push_loop_init(th)) != 0) {
        snprintf(err, errcap, "out of memory");
        return rc;
    }
    return tess_deploy_loop_open(&th->sessions, srv->sessions, &th->tloop.super, err, errcap);
}

static void thread_close(server_thread_t *th)
{
    push_loop_free(th);
    tess_deploy_loop_close(th->sessions); /* its Redis connection first: see tess_deploy_loop_close */
    th->sessions = NULL;
    if (th->loop != NULL)
        tess_h2o_loop_dispose(&th->tloop);
    if (th->appdb != NULL)
        th->appdb->ops->close(th->appdb);
    sqlite3_close(th->sqlite);
    req_tickets_free(th); /* last: closing the stores above completes their outstanding steps */
}

int loops_open(server_t *srv, char *err, size_t errcap)
{
    if ((srv->threads = calloc((size_t)srv->cfg.threads, sizeof(*srv->threads))) == NULL) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    bus_init(srv);
    if (srv->cfg.max_conns_per_addr > 0 &&
        addr_limit_new(&srv->addr_conns, srv->cfg.max_conns_per_addr,
                       srv->cfg.max_connections > srv->cfg.threads ? srv->cfg.max_connections : srv->cfg.threads) !=
            0) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    for (int i = 0; i < srv->cfg.threads; ++i) {
        server_thread_t *th = &srv->threads[i];
        th->srv = srv;
        th->index = i;
        if (thread_open(th, err, errcap) != 0)
            return -1;
    }
    return 0;
}

void loops_close(server_t *srv)
{
    if (srv->threads == NULL)
        return;
    for (int i = 0; i < srv->cfg.threads; ++i)
        thread_close(&srv->threads[i]);
    addr_limit_free(srv->addr_conns); /* the loops have stopped: no close will release into it */
    srv->addr_conns = NULL;
    /*
     * The threads' h2o contexts and evloops are not torn down: h2o 2.2 has no safe teardown while keep-alive
     * connections are still open on them, and the process exits next. They stay reachable from here.
     */
}

/* ---- start-up: the networked backends connect asynchronously; serve once they answer (bounded) ------------- */

typedef struct readiness {
    int pending; /* pings outstanding */
    int ok;      /* all answered 0 */
} readiness_t;

static void ready_appdb(void *arg, const appdb_result_t *res)
{
    readiness_t *x = arg;
    --x->pending;
    if (res->rc != 0)
        x->ok = 0;
}

static void ready_sessions(void *arg, int rc, const tess_session_t *s)
{
    readiness_t *x = arg;
    (void)s;
    --x->pending;
    if (rc != 0)
        x->ok = 0;
}

static int wait_ready(server_thread_t *th, int64_t deadline)
{
    while (tess_mono_ms() < deadline) {
        readiness_t x = {2, 1};
        if (th->appdb->ops->ping(th->appdb, ready_appdb, &x) != 0) {
            --x.pending;
            x.ok = 0;
        }
        if (tess_deploy_loop_ping(th->sessions, ready_sessions, &x) != 0) {
            --x.pending;
            x.ok = 0;
        }
        /* Each ping ends within the backend timeout: `x` outlives every callback. */
        while (x.pending > 0)
            h2o_evloop_run(th->loop, 10);
        if (x.ok)
            return 0;
        h2o_evloop_run(th->loop, 20); /* let the reconnect timers run */
    }
    return -1;
}

void loops_wait_ready(server_t *srv)
{
    int64_t deadline = tess_mono_ms() + READY_WAIT_MS;
    if (!srv->cfg.postgres && srv->cfg.redis_url[0] == '\0')
        return; /* SQLite answers at once */
    for (int i = 0; i < srv->cfg.threads; ++i) {
        if (wait_ready(&srv->threads[i], deadline) != 0) {
            server_log("backends not answering yet: starting anyway (requests get 503 until they do)");
            return;
        }
    }
}

/* ---- running ------------------------------------------------------------------------------------------------ */

static void *thread_main(void *arg)
{
    server_thread_t *th = arg;
    int64_t deadline;

    while (!atomic_load(&th->srv->stopping))
        h2o_evloop_run(th->loop, 200);

    /* Stop accepting, then give in-flight steps (password checks, backend calls) a moment to finish. */
    set_accepting(th, 0);
    if (h2o_timeout_is_linked(&th->retry_entry))
        h2o_timeout_unlink(&th->retry_entry);
    h2o_socket_close(th->listener);
    th->listener = NULL;
    if (th->metrics_listener != NULL) {
        h2o_socket_read_stop(th->metrics_listener);
        h2o_socket_close(th->metrics_listener);
        th->metrics_listener = NULL;
    }
    /* Held long-polls answer now and streams end with a retry hint; then what is in flight gets a moment. */
    push_shutdown(th);
    if (th->index == 0)
        timeouts_stop(th);
    deadline = tess_mono_ms() + DRAIN_MS;
    while ((th->inflight > 0 || push_pending(th) > 0) && tess_mono_ms() < deadline)
        h2o_evloop_run(th->loop, 50);
    if (th->index == 0 && th->maint_entry.cb != NULL)
        h2o_timeout_unlink(&th->maint_entry);

    return NULL;
}

int loops_start(server_t *srv, int *started, char *err, size_t errcap)
{
    *started = 0;
    for (int i = 0; i < srv->cfg.threads; ++i) {
        server_thread_t *th = &srv->threads[i];
        int fd;
        if ((fd = open_listener(srv->cfg.listen_host, srv->cfg.listen_port, 1, err, errcap)) < 0)
            return -1;
        h2o_context_init(&th->ctx, th->loop, &srv->h2o);
        th->accept_ctx.ctx = &th->ctx;
        th->accept_ctx.hosts = srv->h2o.hosts;
        th->listener = h2o_evloop_socket_create(th->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        th->listener->data = th;
        th->max_conns =
            srv->cfg.max_connections / srv->cfg.threads > 0 ? srv->cfg.max_connections / srv->cfg.threads : 1;
        h2o_timeout_init(th->loop, &th->retry_timeout, 100);
        th->retry_entry.cb = on_accept_retry;
        set_accepting(th, 1);
        if (i == 0 && (tess_deploy_listen(srv->sessions, &th->tloop.super, err, errcap) != 0 ||
                       bus_listen(srv, err, errcap) != 0))
            return -1;
        if (i == 0 && srv->mhost[0] != NULL) {
            /* --metrics-listen: one socket on the first loop, its own host; outside the connection bounds. */
            if ((fd = open_listener(srv->cfg.metrics_host, srv->cfg.metrics_port, 0, err, errcap)) < 0)
                return -1;
            th->metrics_accept.ctx = &th->ctx;
            th->metrics_accept.hosts = srv->mhost;
            th->metrics_listener = h2o_evloop_socket_create(th->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
            th->metrics_listener->data = th;
            h2o_socket_read_start(th->metrics_listener, on_metrics_accept);
        }
        if (i == 0) {
            h2o_timeout_init(th->loop, &th->maint_timeout, MAINT_INTERVAL_MS);
            th->maint_entry.cb = on_maintenance;
            h2o_timeout_link(th->loop, &th->maint_timeout, &th->maint_entry);
            timeouts_start(th);
        }
        if (pthread_create(&th->tid, NULL, thread_main, th) != 0) {
            snprintf(err, errcap, "cannot start thread %d", i);
            return -1;
        }
        ++*started;
    }
    return 0;
}

void loops_join(server_t *srv, int started)
{
    for (int i = 0; i < started; ++i)
        pthread_join(srv->threads[i].tid, NULL);
}
