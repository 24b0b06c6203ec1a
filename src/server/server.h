/*
 * tessera serve: one h2o event loop per thread, each with its own listener (SO_REUSEPORT), its own
 * database connection, store handle and JWT verifier. Only the near-cache and the password-hash worker
 * pool are shared between threads.
 */
#ifndef TESSERA_SERVER_SERVER_H
#define TESSERA_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>

#include <cjson/cJSON.h>
#include <h2o.h>

#include "app/appdb.h"
#include "app/config.h"
#include "app/passwords.h"
#include "server/loop_h2o.h"
#include "server/metacache.h"
#include "redis/rconn.h"
#include "tessera/coherence.h"
#include "tessera/revoke.h"
#include "tessera/auth.h"

struct sqlite3;
typedef struct server server_t;
typedef struct server_thread server_thread_t;

struct server_thread {
    server_t *srv;                      /* the process-wide server */
    int index;                          /* 0..threads-1 */
    pthread_t tid;                      /* its thread */
    h2o_evloop_t *loop;                 /* its event loop */
    tess_h2o_loop_t tloop;              /* the same loop, for the networked stores */
    h2o_context_t ctx;                  /* h2o context on that loop */
    h2o_accept_ctx_t accept_ctx;        /* accept context */
    h2o_socket_t *listener;             /* listening socket (SO_REUSEPORT) */
    struct sqlite3 *sqlite;             /* this thread's connection (SQLite databases) */
    appdb_t *appdb;                     /* users, pre-chats, messages */
    tess_store_t *store;                /* session store (db, cached) */
    tess_jwt_t *jwt;                    /* JWT verifier (jwt) */
    tess_auth_t *auth;                  /* strategy */
    tess_auth_t *fallback_auth;         /* migration: the strategy being moved away from */
    tess_store_t *fallback_store;       /* its store */
    tess_revoker_t *revoker;            /* token revocation (with Redis) */
    tess__rconn_t *aux;                 /* this loop's Redis connection (with Redis), shared */
    h2o_timeout_t maint_timeout;        /* periodic maintenance (pruning), thread 0 only */
    h2o_timeout_entry_t maint_entry;    /* its entry */
    atomic_uint_fast64_t requests;      /* requests handled */
    int inflight;                       /* asynchronous steps under way (tickets) */
    int conns;                          /* open client connections */
    int max_conns;                      /* this loop's share of TESSERA_MAX_CONNECTIONS */
    int accepting;                      /* the listener is being read */
    h2o_timeout_t retry_timeout;        /* accept retry after EMFILE/ENFILE */
    h2o_timeout_entry_t retry_entry;    /* its entry */
};

struct server {
    tess_config_t cfg;        /* configuration */
    h2o_globalconf_t h2o;     /* h2o global configuration */
    tess_secrets_t *secrets;  /* parsed secret list (shared, immutable) */
    tess_cache_t *cache;      /* near-cache (cached strategy), shared */
    app_pwpool_t *pw;         /* password-hash workers, shared */
    tess_cache_t *rcache;     /* revocation answers (with Redis), shared */
    metacache_t *meta;        /* pre-chat meta rows (with Redis), shared */
    tess_inval_t *inval;      /* invalidation listener (with Redis), on thread 0 */
    server_thread_t *threads; /* cfg.threads of them */
    atomic_int stopping;      /* set by SIGTERM/SIGINT */
};


/* The request handler (routing); registered on "/". */
int tess_http_on_req(h2o_handler_t *self, h2o_req_t *req);

/* The thread serving the current request. */
server_thread_t *tess_thread_of(h2o_req_t *req);

/* After a pre-chat write: evicts its meta row here and tells every instance (queue: all waiting rows moved). */
void tess_meta_changed(server_thread_t *th, int64_t prechat_id, int queue_moved);

/* Prometheus text of the process's counters into a pool buffer. */
h2o_iovec_t tess_metrics_text(server_t *srv, h2o_mem_pool_t *pool);

#endif
