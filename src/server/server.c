/*
 * tessera serve: configuration, per-thread event loops, listeners, shutdown.
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/http.h"
#include "server/serve.h"
#include "tessera/error.h"
#include "tessera/postgres.h"
#include "tessera/redis.h"

#define MAINT_INTERVAL_MS 60000 /* expired-session pruning period */
#define PRUNE_BATCH 1000        /* rows per pruning pass */
#define DRAIN_MS 2000           /* how long a stopping loop waits for in-flight steps */

static server_t server;

server_thread_t *tess_thread_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(server_thread_t, ctx, req->conn->ctx);
}

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...)
{
    va_list ap;
    char ts[32];
    tess_iso_date(tess_now_ms(), ts, sizeof(ts));
    fprintf(stderr, "%s tessera: ", ts);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- metrics ------------------------------------------------------------------------------------------- */

h2o_iovec_t tess_metrics_text(server_t *srv, h2o_mem_pool_t *pool)
{
    uint64_t requests = 0, checks = 0, early = 0, lookups = 0, touches = 0, gets = 0, writes = 0, errors = 0;
    uint64_t fallbacks = 0, copied = 0, conns = 0;
    size_t cap = 8192, n = 0;
    char *buf = h2o_mem_alloc_pool(pool, cap);

    for (int i = 0; i < srv->cfg.threads; ++i) {
        server_thread_t *th = &srv->threads[i];
        tess_auth_stats_t as;
        requests += atomic_load_explicit(&th->requests, memory_order_relaxed);
        conns += (uint64_t)__atomic_load_n(&th->conns, __ATOMIC_RELAXED);
        /* Other loops' counters are read without their lock: a value may be one update behind. */
        tess_auth_get_stats(th->auth, &as);
        checks += as.checks;
        early += as.rejected_early;
        lookups += as.store_lookups;
        touches += as.touches;
        fallbacks += as.fallback_checks;
        copied += as.copied_forward;
        if (th->store != NULL) {
            gets += __atomic_load_n(&th->store->stats.gets, __ATOMIC_RELAXED);
            writes += __atomic_load_n(&th->store->stats.writes, __ATOMIC_RELAXED);
            errors += __atomic_load_n(&th->store->stats.errors, __ATOMIC_RELAXED);
        }
    }
#define METRIC(name, type, value)                                                                                      \
    n += (size_t)snprintf(buf + n, cap - n, "# TYPE tessera_%s %s\ntessera_%s %" PRIu64 "\n", name, type, name,        \
                          (uint64_t)(value))
    METRIC("requests_total", "counter", requests);
    METRIC("connections", "gauge", conns);
    METRIC("auth_checks_total", "counter", checks);
    METRIC("auth_rejected_early_total", "counter", early);
    METRIC("auth_store_lookups_total", "counter", lookups);
    METRIC("auth_touches_total", "counter", touches);
    METRIC("auth_fallback_checks_total", "counter", fallbacks);
    METRIC("auth_copied_forward_total", "counter", copied);
    METRIC("store_gets_total", "counter", gets);
    METRIC("store_writes_total", "counter", writes);
    METRIC("store_errors_total", "counter", errors);
    if (srv->cache != NULL) {
        tess_cache_stats_t cs;
        tess_cache_get_stats(srv->cache, &cs);
        METRIC("cache_hits_total", "counter", cs.hits);
        METRIC("cache_negative_hits_total", "counter", cs.negative_hits);
        METRIC("cache_misses_total", "counter", cs.misses);
        METRIC("cache_evictions_total", "counter", cs.evictions);
        METRIC("cache_invalidations_total", "counter", cs.invalidations);
        METRIC("cache_entries", "gauge", cs.entries);
        METRIC("cache_bytes", "gauge", cs.bytes);
        METRIC("cache_flight_followers_total", "counter", tess_cache_flight_followers(srv->cache));
    }
    if (srv->rcache != NULL) {
        tess_cache_stats_t cs;
        tess_cache_get_stats(srv->rcache, &cs);
        METRIC("revocation_cache_hits_total", "counter", cs.hits + cs.negative_hits);
        METRIC("revocation_cache_misses_total", "counter", cs.misses);
    }
    if (srv->meta != NULL) {
        uint64_t mh, mm;
        size_t me;
        metacache_stats(srv->meta, &mh, &mm, &me);
        METRIC("meta_cache_hits_total", "counter", mh);
        METRIC("meta_cache_misses_total", "counter", mm);
        METRIC("meta_cache_entries", "gauge", me);
    }
    if (srv->inval != NULL)
        METRIC("coherence_up", "gauge", tess_inval_up(srv->inval));
    if (srv->cfg.strategy == TESS_STRATEGY_CACHED && srv->cfg.redis_url[0] != '\0') {
        uint64_t l2h = 0, l2m = 0, l2e = 0;
        for (int i = 0; i < srv->cfg.threads; ++i) {
            tess_l2_stats_t l2;
            if (srv->threads[i].store == NULL)
                continue;
            tess_cachedstore_stats(srv->threads[i].store, &l2);
            l2h += l2.hits;
            l2m += l2.misses;
            l2e += l2.errors;
        }
        METRIC("l2_hits_total", "counter", l2h);
        METRIC("l2_misses_total", "counter", l2m);
        METRIC("l2_errors_total", "counter", l2e);
    }
#undef METRIC
    return h2o_iovec_init(buf, n < cap ? n : cap - 1);
}

/* ---- coherence ------------------------------------------------------------------------------------------ */

static int has_prefix(tess_str_t k, const char *p, tess_str_t *rest)
{
    size_t n = strlen(p);
    if (k.len < n || memcmp(k.ptr, p, n) != 0)
        return 0;
    *rest = tess_strn(k.ptr + n, k.len - n);
    return 1;
}

static void flush_caches(server_t *srv)
{
    if (srv->cache != NULL)
        tess_cache_flush(srv->cache);
    if (srv->rcache != NULL)
        tess_cache_flush(srv->rcache);
    if (srv->meta != NULL)
        metacache_flush(srv->meta);
}

/* An invalidation from Redis (thread 0): evict what the key stands for, in every cache of this process. */
static void on_invalidated(void *arg, tess_str_t key)
{
    server_t *srv = arg;
    tess_str_t rest;
    char tag[TESS_SID_MAX + 3];

    if (key.len == 0 || has_prefix(key, "tessera:epoch", &rest)) {
        flush_caches(srv);
    } else if (has_prefix(key, "tessera:meta:", &rest)) {
        int64_t id;
        char num[24];
        if (rest.len < sizeof(num)) {
            memcpy(num, rest.ptr, rest.len);
            num[rest.len] = '\0';
            if (tess_parse_int(num, 1, INT64_MAX, &id) == 0)
                metacache_evict(srv->meta, id);
            else
                metacache_flush(srv->meta); /* "queue" and anything unexpected */
        }
    } else if (has_prefix(key, "tessera:deny:", &rest)) {
        if (rest.len <= TESS_SID_MAX) {
            snprintf(tag, sizeof(tag), TESS_REVOKE_DENY_TAG "%.*s", (int)rest.len, rest.ptr);
            tess_cache_evict(srv->rcache, tess_str(tag));
        }
    } else if (has_prefix(key, "tessera:nbf:", &rest)) {
        if (rest.len <= TESS_USER_ID_MAX) {
            snprintf(tag, sizeof(tag), TESS_REVOKE_CUT_TAG "%.*s", (int)rest.len, rest.ptr);
            tess_cache_evict(srv->rcache, tess_str(tag));
            if (srv->cache != NULL)
                tess_cache_evict_user(srv->cache, rest);
        }
    } else if (has_prefix(key, srv->cfg.session_prefix, &rest) && srv->cache != NULL) {
        tess_str_t uid;
        if (!has_prefix(rest, "user:", &uid))
            tess_cache_evict(srv->cache, rest);
    }
}

/* The listener went down (stop caching: nothing is reported) or came back (start afresh). */
static void on_coherence(void *arg, int up)
{
    server_t *srv = arg;
    log_line("cache coherence channel %s: near-caches %s", up ? "up" : "down", up ? "on" : "off and flushed");
    if (up)
        flush_caches(srv);
    if (srv->cache != NULL)
        tess_cache_set_enabled(srv->cache, up);
    if (srv->rcache != NULL)
        tess_cache_set_enabled(srv->rcache, up);
    if (srv->meta != NULL)
        metacache_set_enabled(srv->meta, up);
}

static void ignore_reply(void *arg, int rc, redisReply *r)
{
    (void)arg;
    (void)rc;
    (void)r;
}

void tess_meta_changed(server_thread_t *th, int64_t prechat_id, int queue_moved)
{
    server_t *srv = th->srv;
    char key[48];

    if (srv->meta == NULL)
        return;
    metacache_evict(srv->meta, prechat_id);
    if (queue_moved)
        metacache_flush(srv->meta);
    /* Every instance hears of it through client tracking (the INCR always changes the key). */
    snprintf(key, sizeof(key), "tessera:meta:%" PRId64, prechat_id);
    const char *argv[] = {"INCR", key};
    tess__rconn_command(th->aux, ignore_reply, NULL, 2, argv, NULL);
    if (queue_moved) {
        const char *qargv[] = {"INCR", "tessera:meta:queue"};
        tess__rconn_command(th->aux, ignore_reply, NULL, 2, qargv, NULL);
    }
}

/* ---- loops --------------------------------------------------------------------------------------------- */

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

static void on_conn_close(void *data)
{
    server_thread_t *th = data;
    --th->conns;
    if (th->conns < th->max_conns && !atomic_load(&th->srv->stopping) && !h2o_timeout_is_linked(&th->retry_entry))
        set_accepting(th, 1);
}

static void on_accept_retry(h2o_timeout_entry_t *entry)
{
    server_thread_t *th = H2O_STRUCT_FROM_MEMBER(server_thread_t, retry_entry, entry);
    if (th->conns < th->max_conns && !atomic_load(&th->srv->stopping))
        set_accepting(th, 1);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    server_thread_t *th = listener->data;
    h2o_socket_t *sock;

    if (err != NULL)
        return;
    for (int i = 0; i < 16 && th->conns < th->max_conns; ++i) {
        errno = 0;
        if ((sock = h2o_evloop_socket_accept(listener)) == NULL) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: a level-triggered listener would spin; wait for some to be freed. */
                set_accepting(th, 0);
                h2o_timeout_link(th->loop, &th->retry_timeout, &th->retry_entry);
            }
            return;
        }
        ++th->conns;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = th;
        h2o_accept(&th->accept_ctx, sock);
    }
    if (th->conns >= th->max_conns)
        set_accepting(th, 0);
}

static void prune_done(void *arg, int rc, const tess_session_t *s)
{
    (void)arg;
    (void)s;
    if (rc < 0)
        log_line("pruning expired sessions failed: %s", tess_strerror(rc));
    else if (rc > 0)
        log_line("pruned %d expired sessions", rc);
}

static void on_maintenance(h2o_timeout_entry_t *entry)
{
    server_thread_t *th = H2O_STRUCT_FROM_MEMBER(server_thread_t, maint_entry, entry);
    if (th->store != NULL)
        tess_store_prune(th->store, tess_now_ms(), PRUNE_BATCH, prune_done, NULL);
    h2o_timeout_link(th->ctx.loop, &th->maint_timeout, &th->maint_entry);
}

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
    deadline = tess_mono_ms() + DRAIN_MS;
    while (th->inflight > 0 && tess_mono_ms() < deadline)
        h2o_evloop_run(th->loop, 50);
    if (th->index == 0 && th->maint_entry.cb != NULL)
        h2o_timeout_unlink(&th->maint_entry);
    return NULL;
}

static int open_listener(const tess_config_t *cfg, char *err, size_t errcap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char port[8];
    int fd = -1, on = 1, gai;

    snprintf(port, sizeof(port), "%u", cfg->listen_port);
    if ((gai = getaddrinfo(cfg->listen_host, port, &hints, &res)) != 0) {
        snprintf(err, errcap, "cannot resolve listen address %s: %s", cfg->listen_host, gai_strerror(gai));
        return -1;
    }
    if ((fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errcap, "cannot listen on %s:%u: %s", cfg->listen_host, cfg->listen_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* The session store a strategy needs on this thread (NULL for jwt); `l2`: the cached strategy's Redis copy. */
static int open_session_store(server_thread_t *th, tess_strategy_t strategy, int l2, tess_store_t **out, char *err,
                              size_t errcap)
{
    server_t *srv = th->srv;
    int rc;

    *out = NULL;
    if (strategy == TESS_STRATEGY_JWT)
        return 0;
    if (strategy == TESS_STRATEGY_REDIS) {
        tess_redis_opts_t ro = {.conn = th->aux, .prefix = srv->cfg.session_prefix};
        return tess_redisstore_open(out, &th->tloop.super, &ro, err, errcap);
    }
    if (srv->cfg.postgres) {
        tess_pg_opts_t po = {srv->cfg.database_url, srv->cfg.backend_timeout_ms};
        rc = tess_pgstore_open(out, &th->tloop.super, &po, err, errcap);
    } else {
        rc = tess_sqlitestore_open(out, th->sqlite, err, errcap);
    }
    if (rc == 0 && l2 && strategy == TESS_STRATEGY_CACHED && srv->cfg.redis_url[0] != '\0') {
        tess_l2_opts_t lo = {.conn = th->aux, .prefix = srv->cfg.session_prefix, .ttl_ms = srv->cfg.l2_ttl_ms};
        tess_store_t *inner = *out;
        *out = NULL;
        rc = tess_cachedstore_open(out, inner, &th->tloop.super, &lo, err, errcap);
    }
    return rc;
}

/* Per-thread backends: a database connection, the store, the JWT verifier, the strategy. */
static int thread_open(server_thread_t *th, char *err, size_t errcap)
{
    server_t *srv = th->srv;
    tess_auth_config_t ac = {0};
    tess_jwt_opts_t jo = {.leeway_s = srv->cfg.jwt_leeway_s, .max_token_len = 0};
    int rc;

    th->loop = h2o_evloop_create();
    tess_h2o_loop_init(&th->tloop, th->loop);
    if (srv->cfg.postgres) {
        if ((rc = appdb_pg_open(&th->appdb, &th->tloop.super, srv->cfg.database_url, srv->cfg.backend_timeout_ms, err,
                                errcap)) != 0)
            return rc;
    } else if ((rc = appdb_sqlite_connect(&th->sqlite, srv->cfg.sqlite_path, err, errcap)) != 0 ||
               (rc = appdb_sqlite_open(&th->appdb, th->sqlite, err, errcap)) != 0) {
        return rc;
    }
    /* One Redis connection per loop, shared by the store, the L2 cache, revocation and meta invalidations. */
    if (srv->cfg.redis_url[0] != '\0') {
        tess_revoker_opts_t rv = {.conn = th->aux, .prefix = "tessera:", .cache = srv->rcache};
        if ((rc = tess_redis_open(&th->aux, &th->tloop.super, srv->cfg.redis_url, srv->cfg.backend_timeout_ms, err,
                                  errcap)) != 0)
            return rc;
        rv.conn = th->aux;
        if ((rc = tess_revoker_open(&th->revoker, &th->tloop.super, &rv, err, errcap)) != 0)
            return rc;
    }
    if ((rc = open_session_store(th, srv->cfg.strategy, 1, &th->store, err, errcap)) != 0)
        return rc;
    if ((rc = tess_jwt_new(&th->jwt, srv->secrets, &jo)) != 0) {
        snprintf(err, errcap, "cannot set up JWT verification: %s", tess_strerror(rc));
        return rc;
    }
    ac.strategy = srv->cfg.strategy;
    ac.secrets = srv->secrets;
    ac.policy = srv->cfg.policy;
    ac.cookie_name = tess_str(srv->cfg.cookie_name);
    ac.store = th->store;
    ac.cache = srv->cache;
    ac.jwt = th->jwt;
    ac.revoker = th->revoker;
    ac.loop = &th->tloop.super;
    if (srv->cfg.has_fallback) {
        tess_auth_config_t fc = ac;
        if ((rc = open_session_store(th, srv->cfg.fallback, 0, &th->fallback_store, err, errcap)) != 0)
            return rc;
        fc.strategy = srv->cfg.fallback == TESS_STRATEGY_CACHED ? TESS_STRATEGY_DB : srv->cfg.fallback;
        fc.cookie_name = tess_strn(NULL, 0); /* the old strategy's own cookie */
        fc.store = th->fallback_store;
        fc.cache = NULL;
        fc.loop = NULL;
        if ((rc = tess_auth_new(&th->fallback_auth, &fc)) != 0) {
            snprintf(err, errcap, "cannot set up the fallback strategy: %s", tess_strerror(rc));
            return rc;
        }
        ac.fallback = th->fallback_auth;
    }
    if ((rc = tess_auth_new(&th->auth, &ac)) != 0) {
        snprintf(err, errcap, "cannot set up the %s strategy: %s", tess_strategy_name(ac.strategy), tess_strerror(rc));
        return rc;
    }
    return 0;
}

/* Start-up: the networked backends connect asynchronously; serve only once they answer (bounded). */
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

static void ready_store(void *arg, int rc, const tess_session_t *s)
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
        readiness_t x = {0, 1};
        ++x.pending;
        if (th->appdb->ops->ping(th->appdb, ready_appdb, &x) != 0) {
            --x.pending;
            x.ok = 0;
        }
        ++x.pending;
        if (th->store == NULL || tess_store_ping(th->store, ready_store, &x) != 0)
            --x.pending;
        /* Each ping ends within the backend timeout: `x` outlives every callback. */
        while (x.pending > 0)
            h2o_evloop_run(th->loop, 10);
        if (x.ok)
            return 0;
        h2o_evloop_run(th->loop, 20); /* let the reconnect timers run */
    }
    return -1;
}

static void thread_close(server_thread_t *th)
{
    /*
     * The shared Redis connection goes first: closing it completes its pending commands (with an error),
     * and their callbacks still find the stores, the revoker and the strategy they belong to.
     */
    tess_redis_close(th->aux);
    th->aux = NULL;
    tess_h2o_loop_dispose(&th->tloop);
    tess_auth_free(th->auth);
    tess_auth_free(th->fallback_auth);
    tess_store_close(th->fallback_store);
    tess_revoker_free(th->revoker);
    tess_jwt_free(th->jwt);
    tess_store_close(th->store);
    if (th->appdb != NULL)
        th->appdb->ops->close(th->appdb);
    sqlite3_close(th->sqlite);
}

int tess_serve_main(int argc, char **argv)
{
    server_t *srv = &server;
    char err[512] = "";
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    h2o_handler_t *handler;
    sigset_t sigs;
    int listen_fd = -1, rc, exit_code = 1, sig, started = 0;

    /*
     * Signals go to the main thread only, through sigwait: block them first, before any thread exists and
     * before the (slow) start-up, so that a SIGTERM during start-up is a clean stop once started.
     */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    {
        /* Connections are descriptors: take the hard limit (accept also pauses on EMFILE rather than spin). */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    rc = tess_config_load(&srv->cfg, argc, argv, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc != 0) {
        fprintf(stderr, "tessera serve: %s\n", err);
        return 2;
    }
    if (tess_config_ensure_secret(&srv->cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "tessera serve: %s\n", err);
        exit_code = 2;
        goto out;
    }
    if (tess_secrets_parse(&srv->secrets, tess_str(srv->cfg.secrets)) != 0) {
        fprintf(stderr, "tessera serve: bad SESSION_SECRET: a comma-separated list of non-empty secrets (at most "
                        "16, each at most 512 bytes)\n");
        exit_code = 2;
        goto out;
    }
    if (srv->cfg.secret_generated == 1)
        log_line("no SESSION_SECRET: generated a development secret in %s.secret", srv->cfg.sqlite_path);
    else if (srv->cfg.secret_generated == 2)
        log_line("no SESSION_SECRET: using the development secret in %s.secret", srv->cfg.sqlite_path);
    if (srv->cfg.strategy == TESS_STRATEGY_CACHED && (rc = tess_cache_new(&srv->cache, &srv->cfg.cache)) != 0) {
        fprintf(stderr, "tessera serve: cannot create the near-cache: %s\n", tess_strerror(rc));
        goto out;
    }
    if (srv->cfg.redis_url[0] != '\0') {
        tess_cache_opts_t ro;
        tess_cache_opts_default(&ro);
        ro.negative_ttl_ms = ro.ttl_ms; /* "not revoked" is as good an answer as "revoked" */
        if ((rc = tess_cache_new(&srv->rcache, &ro)) != 0 ||
            (srv->meta = metacache_new(srv->cfg.cache.max_entries, srv->cfg.meta_ttl_ms)) == NULL) {
            fprintf(stderr, "tessera serve: cannot create the caches\n");
            goto out;
        }
        /* Nothing is cached until the coherence channel is up. */
        if (srv->cache != NULL)
            tess_cache_set_enabled(srv->cache, 0);
        tess_cache_set_enabled(srv->rcache, 0);
        metacache_set_enabled(srv->meta, 0);
    }
    if ((rc = app_pwpool_new(&srv->pw, 2, 256)) != 0) {
        fprintf(stderr, "tessera serve: cannot start password workers: %s\n", tess_strerror(rc));
        goto out;
    }

    h2o_config_init(&srv->h2o);
    /* h2o answers bodies over its own bound with a plain 413; ours (max_body) gets a JSON one first. */
    srv->h2o.max_request_entity_size = srv->cfg.max_body * 2 + 4096;
    host = h2o_config_register_host(&srv->h2o, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = tess_http_on_req;

    if (srv->cfg.postgres && ((rc = appdb_pg_migrate(srv->cfg.database_url, err, sizeof(err))) != 0 ||
                              (srv->cfg.strategy != TESS_STRATEGY_JWT && srv->cfg.strategy != TESS_STRATEGY_REDIS &&
                               (rc = tess_pgstore_migrate(srv->cfg.database_url, err, sizeof(err))) != 0))) {
        fprintf(stderr, "tessera serve: %s\n", err);
        goto out;
    }
    if ((srv->threads = calloc((size_t)srv->cfg.threads, sizeof(*srv->threads))) == NULL)
        goto out;
    for (int i = 0; i < srv->cfg.threads; ++i) {
        server_thread_t *th = &srv->threads[i];
        th->srv = srv;
        th->index = i;
        if (thread_open(th, err, sizeof(err)) != 0) {
            fprintf(stderr, "tessera serve: %s\n", err);
            goto out;
        }
    }

    if (srv->cfg.postgres || srv->cfg.redis_url[0] != '\0') {
        int64_t deadline = tess_mono_ms() + 5000;
        for (int i = 0; i < srv->cfg.threads; ++i) {
            if (wait_ready(&srv->threads[i], deadline) != 0) {
                log_line("backends not answering yet: starting anyway (requests get 503 until they do)");
                break;
            }
        }
    }

    for (int i = 0; i < srv->cfg.threads; ++i) {
        server_thread_t *th = &srv->threads[i];
        if ((listen_fd = open_listener(&srv->cfg, err, sizeof(err))) < 0) {
            fprintf(stderr, "tessera serve: %s\n", err);
            goto stop;
        }
        h2o_context_init(&th->ctx, th->loop, &srv->h2o);
        th->accept_ctx.ctx = &th->ctx;
        th->accept_ctx.hosts = srv->h2o.hosts;
        th->listener = h2o_evloop_socket_create(th->loop, listen_fd, H2O_SOCKET_FLAG_DONT_READ);
        th->listener->data = th;
        th->max_conns =
            srv->cfg.max_connections / srv->cfg.threads > 0 ? srv->cfg.max_connections / srv->cfg.threads : 1;
        h2o_timeout_init(th->loop, &th->retry_timeout, 100);
        th->retry_entry.cb = on_accept_retry;
        set_accepting(th, 1);
        if (i == 0 && srv->cfg.redis_url[0] != '\0') {
            const char *prefixes[] = {srv->cfg.session_prefix, "tessera:"};
            tess_inval_opts_t io = {
                .url = srv->cfg.redis_url,
                .prefixes = prefixes,
                .nprefixes = 2,
                .timeout_ms = srv->cfg.backend_timeout_ms,
                .epoch_key = "tessera:epoch",
                .on_key = on_invalidated,
                .on_state = on_coherence,
                .arg = srv,
            };
            if (tess_inval_open(&srv->inval, &th->tloop.super, &io, err, sizeof(err)) != 0) {
                fprintf(stderr, "tessera serve: %s\n", err);
                goto stop;
            }
        }
        if (i == 0 && th->store != NULL) {
            h2o_timeout_init(th->loop, &th->maint_timeout, MAINT_INTERVAL_MS);
            th->maint_entry.cb = on_maintenance;
            h2o_timeout_link(th->loop, &th->maint_timeout, &th->maint_entry);
        }
        if (pthread_create(&th->tid, NULL, thread_main, th) != 0) {
            fprintf(stderr, "tessera serve: cannot start thread %d\n", i);
            goto stop;
        }
        ++started;
    }
    /* URLs may carry passwords: only the database kind and the SQLite path are logged. */
    log_line("listening on %s:%u, strategy %s, database %s%s, %d threads%s", srv->cfg.listen_host, srv->cfg.listen_port,
             tess_strategy_name(srv->cfg.strategy), srv->cfg.postgres ? "postgres" : "sqlite:", srv->cfg.sqlite_path,
             srv->cfg.threads, srv->cfg.production ? ", production" : "");
    do {
        if (sigwait(&sigs, &sig) != 0)
            break;
    } while (sig != SIGTERM && sig != SIGINT);
    log_line("stopping (signal %d)", sig);
    exit_code = 0;
stop:
    atomic_store(&srv->stopping, 1);
    for (int i = 0; i < started; ++i)
        pthread_join(srv->threads[i].tid, NULL);
    /* Workers stop before the loops' receivers go away; a result still queued is dropped with its job. */
    app_pwpool_free(srv->pw);
    srv->pw = NULL;
out:
    tess_inval_free(srv->inval);
    srv->inval = NULL;
    if (srv->threads != NULL) {
        for (int i = 0; i < srv->cfg.threads; ++i)
            thread_close(&srv->threads[i]);
    }
    app_pwpool_free(srv->pw);
    tess_cache_free(srv->cache);
    tess_cache_free(srv->rcache);
    metacache_free(srv->meta);
    tess_secrets_free(srv->secrets);
    tess_config_free(&srv->cfg);
    return exit_code;
}

#if defined(__SANITIZE_ADDRESS__)
/*
 * LeakSanitizer: h2o keeps socket buffers in per-thread recycle lists (h2o_mem_alloc_recycle) that are never
 * handed back when a loop thread ends, and keep-alive connections still open at shutdown hold theirs. Both
 * are h2o's own caches, not ours; everything tessera allocates is still checked.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:h2o_mem_alloc_recycle\n";
}
#endif
