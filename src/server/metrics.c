/*
 * /metrics: the process's counters in the Prometheus text format. Per-loop counters are C11 atomics summed
 * on read (relaxed: a value may lag one update behind); the library's are summed by tess_deploy_stats().
 */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>

#include "server/abuse.h"
#include "server/limits.h"
#include "server/poll.h"
#include "server/push.h"
#include "server/request.h"
#include "server/router.h"
#include "server/server.h"

typedef struct out {
    char *buf;  /* pool buffer */
    size_t cap; /* its size */
    size_t n;   /* bytes written */
} out_t;

/* One sample with its # HELP and # TYPE lines (the Prometheus text format, version 0.0.4). */
static void metric(out_t *o, const char *name, const char *type, const char *help, uint64_t value)
{
    if (o->n < o->cap)
        o->n += (size_t)snprintf(o->buf + o->n, o->cap - o->n,
                                 "# HELP tessera_%s %s.\n# TYPE tessera_%s %s\ntessera_%s %" PRIu64 "\n", name, help,
                                 name, type, name, value);
}

/* A counter family by backend (the process's Redis and PostgreSQL connections). */
static void backend(out_t *o, const char *name, const char *help, uint64_t redis, uint64_t postgres)
{
    if (o->n < o->cap)
        o->n += (size_t)snprintf(o->buf + o->n, o->cap - o->n,
                                 "# HELP tessera_%s %s.\n# TYPE tessera_%s counter\n"
                                 "tessera_%s{backend=\"redis\"} %" PRIu64 "\ntessera_%s{backend=\"postgres\"} %" PRIu64
                                 "\n",
                                 name, help, name, name, redis, name, postgres);
}

h2o_iovec_t metrics_text(server_t *srv, h2o_mem_pool_t *pool)
{
    out_t o = {h2o_mem_alloc_pool(pool, 65536), 65536, 0};
    uint64_t requests = 0, conns = 0, waiters = 0, mh, mm;
    tess_deploy_stats_t ds;
    app_pw_stats_t pw;
    abuse_stats_t ls;
    size_t me;

    for (int i = 0; i < srv->cfg.threads; ++i) {
        requests += atomic_load_explicit(&srv->threads[i].requests, memory_order_relaxed);
        conns += (uint64_t)atomic_load_explicit(&srv->threads[i].conns, memory_order_relaxed);
        waiters += push_count(&srv->threads[i]);
    }
    tess_deploy_stats(srv->sessions, &ds);
    metric(&o, "requests_total", "counter", "HTTP requests received", requests);
    metric(&o, "connections", "gauge", "client connections open", conns);
    metric(&o, "connections_refused_total", "counter", "connections refused by the per-address bound (429)",
           addr_limit_refused(srv->addr_conns));
    metric(&o, "waiters", "gauge", "long-polls and event streams held open", waiters);
    metric(&o, "auth_checks_total", "counter", "session checks", ds.auth.checks);
    metric(&o, "auth_rejected_early_total", "counter",
           "session checks refused before any cache or store (no cookie, bad signature or shape)",
           ds.auth.rejected_early);
    metric(&o, "auth_store_lookups_total", "counter", "session checks that went to the store", ds.auth.store_lookups);
    metric(&o, "auth_touches_total", "counter", "throttled session expiry updates sent to the store", ds.auth.touches);
    metric(&o, "auth_fallback_checks_total", "counter", "session checks asked of the migration fallback strategy",
           ds.auth.fallback_checks);
    metric(&o, "auth_copied_forward_total", "counter", "sessions copied forward from the migration fallback",
           ds.auth.copied_forward);
    metric(&o, "store_gets_total", "counter", "session store lookups that reached the backend", ds.store.gets);
    metric(&o, "store_writes_total", "counter", "session store writes (set, touch, destroy)", ds.store.writes);
    metric(&o, "store_errors_total", "counter", "session store calls that failed", ds.store.errors);
    if (ds.has_cache) {
        metric(&o, "cache_hits_total", "counter", "near-cache hits", ds.cache.hits);
        metric(&o, "cache_negative_hits_total", "counter", "near-cache hits of a known-absent session",
               ds.cache.negative_hits);
        metric(&o, "cache_misses_total", "counter", "near-cache misses", ds.cache.misses);
        metric(&o, "cache_evictions_total", "counter", "near-cache entries evicted by its bounds", ds.cache.evictions);
        metric(&o, "cache_invalidations_total", "counter", "near-cache entries removed because they changed",
               ds.cache.invalidations);
        metric(&o, "cache_entries", "gauge", "near-cache entries", ds.cache.entries);
        metric(&o, "cache_bytes", "gauge", "near-cache bytes", ds.cache.bytes);
        metric(&o, "cache_flight_followers_total", "counter", "lookups that waited on another's identical store lookup",
               ds.flight_followers);
    }
    if (ds.has_revocation) {
        metric(&o, "revocation_cache_hits_total", "counter", "token revocation answers from the cache",
               ds.revocation.hits + ds.revocation.negative_hits);
        metric(&o, "revocation_cache_misses_total", "counter", "token revocation answers from Redis",
               ds.revocation.misses);
    }
    if (meta_cache_stats(srv, &mh, &mm, &me)) {
        metric(&o, "meta_cache_hits_total", "counter", "pre-chat meta bodies served from the cache", mh);
        metric(&o, "meta_cache_misses_total", "counter", "pre-chat meta bodies rendered", mm);
        metric(&o, "meta_cache_entries", "gauge", "pre-chat meta bodies cached", me);
    }
    if (ds.coherence >= 0)
        metric(&o, "coherence_up", "gauge",
               "1 while every cache invalidation channel is up (Redis, the session table watcher)",
               (uint64_t)ds.coherence);
    app_pw_get_stats(srv->pw, &pw);
    abuse_get_stats(srv, &ls);
    metric(&o, "password_hashes_total", "counter", "password hashes computed", pw.hashes);
    metric(&o, "password_queue_depth", "gauge", "password checks queued", pw.queued);
    metric(&o, "password_jobs_dropped_total", "counter", "queued password checks dropped because their client left",
           pw.dropped);
    metric(&o, "password_queue_full_total", "counter", "logins refused because the password queue was full (503)",
           pw.queue_full);
    metric(&o, "login_throttled_user_total", "counter", "logins refused by the per-user failure bound (429)",
           ls.login_throttled_user);
    metric(&o, "login_throttled_address_total", "counter", "logins refused by the per-address failure bound (429)",
           ls.login_throttled_addr);
    metric(&o, "login_queue_address_full_total", "counter",
           "logins refused by the per-address password queue bound (429)", ls.login_queue_addr);
    metric(&o, "messages_throttled_total", "counter", "messages refused by the per-user rate (429)",
           ls.messages_throttled);
    metric(&o, "prechats_refused_total", "counter", "pre-chats refused by the open pre-chats bound (429)",
           ls.prechats_refused);
    metric(&o, "limit_evictions_total", "counter", "entries evicted from the throttling tables", ls.evictions);
    /* Heap SQLite holds now, every connection together (its page caches: bounded, they fill as tables grow). */
    metric(&o, "sqlite_memory_bytes", "gauge",
           "heap held by SQLite (its page caches: bounded, they fill as the tables grow)",
           (uint64_t)sqlite3_memory_used());
    if (ds.has_l2) {
        metric(&o, "l2_hits_total", "counter", "session lookups answered by the Redis L2 copy", ds.l2.hits);
        metric(&o, "l2_misses_total", "counter", "session lookups the L2 copy sent to the database", ds.l2.misses);
        metric(&o, "l2_errors_total", "counter", "L2 copy calls that failed", ds.l2.errors);
    }
    {
        hist_snap_t auth = {{0}, 0};
        for (int i = 0; i < srv->cfg.threads; ++i)
            hist_add(&auth, &srv->threads[i].auth_hist);
        if (o.n < o.cap)
            o.n += (size_t)snprintf(o.buf + o.n, o.cap - o.n,
                                    "# HELP tessera_auth_duration_seconds Session checks of authenticated requests, "
                                    "from the check's start to its answer.\n"
                                    "# TYPE tessera_auth_duration_seconds histogram\n");
        o.n = hist_text(o.buf, o.n, o.cap, "tessera_auth_duration_seconds", "strategy",
                        tess_strategy_name(srv->cfg.strategy), &auth);
    }
    if (ds.store_kind != NULL) {
        if (o.n < o.cap)
            o.n += (size_t)snprintf(o.buf + o.n, o.cap - o.n,
                                    "# HELP tessera_store_duration_seconds Session store round trips (get, set, "
                                    "touch, destroy), from the call to its callback.\n"
                                    "# TYPE tessera_store_duration_seconds histogram\n");
        o.n = hist_text(o.buf, o.n, o.cap, "tessera_store_duration_seconds", "store", ds.store_kind, &ds.store_latency);
    }
    backend(&o, "backend_errors_total",
            "calls to a backend that failed (connection down or lost, no reply) and "
            "failed connects",
            ds.redis.errors, ds.postgres.errors);
    backend(&o, "backend_timeouts_total",
            "backend commands or connects past their deadline (the connection is "
            "dropped)",
            ds.redis.timeouts, ds.postgres.timeouts);
    backend(&o, "backend_reconnects_total", "backend reconnect attempts after a failure", ds.redis.reconnects,
            ds.postgres.reconnects);
    if (o.n < o.cap)
        o.n = httpstats_metrics(srv, o.buf, o.n, o.cap);
    return h2o_iovec_init(o.buf, o.n < o.cap ? o.n : o.cap - 1);
}

/* The metrics listener's only handler: GET (HEAD) /metrics, JSON errors for the rest. */
static int on_metrics_req(h2o_handler_t *self, h2o_req_t *req)
{
    tess_req_t *r = req_new(req, tess_thread_of(req));
    (void)self;
    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/metrics")))
        send_error(r, 404, "not_found", "this port serves /metrics only");
    else if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
             !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        send_error(r, 405, "method_not_allowed", "method not allowed on this path");
    else
        h_metrics(r);
    return 0;
}

void metrics_register(server_t *srv)
{
    /* In the same global configuration (one context per loop inits it), under a name no client uses: the
     * main listener's first host stays the default for every Host header. */
    h2o_hostconf_t *host =
        h2o_config_register_host(&srv->h2o, h2o_iovec_init(H2O_STRLIT("tessera-metrics.invalid")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_metrics_req;
    srv->mhost[0] = host;
    srv->mhost[1] = NULL;
}
