/*
 * tessera serve: one h2o event loop per thread, each with its own listener (SO_REUSEPORT), database
 * connection and per-loop part of the session deployment (tessera/deploy.h). Shared between threads: the
 * deployment's process-wide part (near-cache, revocation cache, coherence listener), the meta cache and the
 * password workers — each thread-safe by itself.
 *
 * Ownership of the counters below: a loop writes its own; /metrics (any loop) reads all of them, so every
 * counter read across threads is a C11 atomic, written and read relaxed.
 */
#ifndef TESSERA_SERVER_SERVER_H
#define TESSERA_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>

#include <h2o.h>

#include "app/appdb.h"
#include "app/config.h"
#include "app/passwords.h"
#include "server/hist.h"
#include "server/httpstats.h"
#include "server/log.h"
#include "server/loop_h2o.h"
#include "tessera/deploy.h"

struct sqlite3;
typedef struct server server_t;
typedef struct server_thread server_thread_t;
typedef struct meta_cache meta_cache_t;
typedef struct push_loop push_loop_t;
typedef struct addr_limit addr_limit_t;
typedef struct abuse abuse_t;

/* A loop's inbox of change events (bus.c): filled by any thread, drained on the loop. */
typedef struct bus_inbox {
    pthread_mutex_t lock;     /* guards the fields below */
    struct bus_event *events; /* queued for the loop */
    size_t n, cap;            /* count and capacity */
    int posted;               /* a drain is posted to the loop */
} bus_inbox_t;

struct server_thread {
    server_t *srv;                   /* the process-wide server */
    int index;                       /* 0..threads-1 */
    pthread_t tid;                   /* its thread */
    h2o_evloop_t *loop;              /* its event loop */
    tess_h2o_loop_t tloop;           /* the same loop, for the library's networked backends */
    h2o_context_t ctx;               /* h2o context on that loop */
    h2o_accept_ctx_t accept_ctx;     /* accept context */
    h2o_socket_t *listener;          /* listening socket (SO_REUSEPORT) */
    struct sqlite3 *sqlite;          /* this thread's connection (SQLite databases) */
    appdb_t *appdb;                  /* users, pre-chats, messages */
    tess_deploy_loop_t *sessions;    /* this loop's strategy, stores and Redis connection */
    h2o_timeout_t maint_timeout;     /* periodic maintenance (pruning), thread 0 only */
    h2o_timeout_entry_t maint_entry; /* its entry */
    h2o_timeout_t sweep_timeout;     /* the pre-chat timeouts' tick (timeouts.c), thread 0 only */
    h2o_timeout_entry_t sweep_entry; /* its entry */
    int sweep_busy;                  /* a sweep step is in flight */
    int sweep_stopped;               /* no further ticks (stopping, or both timeouts off) */
    atomic_uint_fast64_t requests;   /* requests handled (this loop writes, /metrics reads) */
    atomic_int conns;                /* open client connections (this loop writes, /metrics reads) */
    int inflight;                    /* asynchronous steps under way (tickets); this loop only */
    struct ticket *spare_tickets;    /* freed tickets kept for reuse (request.c); this loop only */
    int spare_count;                 /* how many */
    int max_conns;                   /* this loop's share of TESSERA_MAX_CONNECTIONS */
    int accepting;                   /* the listener is being read */
    h2o_timeout_t retry_timeout;     /* accept retry after EMFILE/ENFILE */
    h2o_timeout_entry_t retry_entry; /* its entry */
    bus_inbox_t inbox;               /* change events for this loop (bus.c) */
    push_loop_t *push;               /* this loop's waiters (push.c) */
    httpstats_t http;                /* requests by route and status class (this loop writes, /metrics reads) */
    h2o_socket_t *metrics_listener;  /* --metrics-listen's socket, thread 0 only (loops.c) */
    h2o_accept_ctx_t metrics_accept; /* its accept context: the metrics host alone */
    hist_t auth_hist;                /* session check durations (router.c; this loop writes, /metrics reads) */
};

struct server {
    tess_config_t cfg;        /* configuration */
    h2o_globalconf_t h2o;     /* h2o global configuration */
    tess_secrets_t *secrets;  /* parsed secret list (shared, immutable) */
    tess_deploy_t *sessions;  /* the session deployment's process-wide part */
    app_pwpool_t *pw;         /* password-hash workers, shared */
    abuse_t *abuse;           /* login throttling and quotas (abuse.h), shared */
    meta_cache_t *meta;       /* rendered pre-chat meta (poll.c), shared; NULL when not cached */
    server_thread_t *threads; /* cfg.threads of them */
    addr_limit_t *addr_conns; /* open connections per client address (limits.h); NULL: no bound */
    h2o_hostconf_t *mhost[2]; /* --metrics-listen: its host (/metrics alone), NULL-terminated */
    atomic_int stopping;      /* set by SIGTERM/SIGINT */
};

/* The thread serving the current request. */
server_thread_t *tess_thread_of(h2o_req_t *req);

/* One info line (event "message", log.h) on stderr. Never give it a secret or a URL that may hold a password. */
void server_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* loops.c: threads, listeners and the connection bound. Each returns 0 or -1 with a reason in `err`. */
int loops_open(server_t *srv, char *err, size_t errcap);                /* per-thread backends, all threads */
void loops_wait_ready(server_t *srv);                                   /* bounded wait for networked backends */
int loops_start(server_t *srv, int *started, char *err, size_t errcap); /* listeners + threads */
void loops_join(server_t *srv, int started);                            /* after `stopping` is set */
void loops_close(server_t *srv);                                        /* frees what loops_open made */

/* metrics.c: the Prometheus text of the process's counters, in the request pool. */
h2o_iovec_t metrics_text(server_t *srv, h2o_mem_pool_t *pool);
/* With --metrics-listen: registers the host its listener serves (/metrics, JSON 404 for any other path). */
void metrics_register(server_t *srv);

#endif
