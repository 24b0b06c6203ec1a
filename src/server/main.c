/*
 * tessera serve: start-up, signals, shutdown.
 *
 * Order: configuration -> secrets -> the session deployment (tessera/deploy.h) -> password workers -> h2o
 * -> schema migrations -> per-thread backends -> a bounded wait for networked backends -> listeners, the
 * change listeners and threads -> sigwait -> stop: held requests answered, threads joined, workers
 * stopped, listeners, loops, deployment freed.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "server/bus.h"
#include "server/abuse.h"
#include "server/limits.h"
#include "server/poll.h"
#include "server/roles.h"
#include "server/router.h"
#include "server/serve.h"
#include "tessera/error.h"

static server_t server;

void server_log(const char *fmt, ...)
{
    va_list ap;
    char msg[LOG_LINE_MAX - 256];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_event(LOG_INFO, "message", msg, NULL, 0);
}

/*
 * The start-up line: the effective configuration, every secret left out. URLs may carry passwords: the
 * database and Redis are named by kind only (and the SQLite path, which holds none).
 */
static void log_startup(const server_t *srv)
{
    const tess_config_t *c = &srv->cfg;
    char listen[300], msg[400];
    snprintf(listen, sizeof(listen), "%s:%u", c->listen_host, (unsigned)c->listen_port);
    /* The text of the former start-up line, which scripts wait for. */
    snprintf(msg, sizeof(msg), "listening on %s, strategy %s, database %s, %d threads%s", listen,
             tess_strategy_name(c->strategy), c->postgres ? "postgres" : "sqlite", c->threads,
             c->production ? ", production" : "");
    log_field_t f[] = {
        {"listen", listen, 0},
        {"strategy", tess_strategy_name(c->strategy), 0},
        {"database", c->postgres ? "postgres" : "sqlite", 0},
        {"sqlite_path", c->postgres ? "" : c->sqlite_path, 0},
        {"redis", c->redis_url[0] != '\0' ? "yes" : "no", 0},
        {"threads", NULL, c->threads},
        {"production", NULL, c->production},
        {"secrets", "redacted", 0},
        {"secret_count", NULL, (long long)tess_secrets_count(srv->secrets)},
        {"session_prefix", c->session_prefix, 0},
        {"tessera_prefix", c->tessera_prefix, 0},
        {"backend_timeout_ms", NULL, (long long)c->backend_timeout_ms},
        {"max_body", NULL, (long long)c->max_body},
        {"max_connections", NULL, c->max_connections},
        {"max_connections_per_address", NULL, c->max_conns_per_addr},
        {"header_timeout_ms", NULL, (long long)c->header_timeout_ms},
        {"h2c", NULL, c->h2c},
        {"log_level",
         c->log_level == 0   ? "error"
         : c->log_level == 1 ? "warn"
         : c->log_level == 2 ? "info"
                             : "debug",
         0},
        {"log_format", c->log_json ? "json" : "text", 0},
        {"access_log", c->access_log, 0},
    };
    log_event(LOG_INFO, "start", msg, f, sizeof(f) / sizeof(f[0]));
}

/* Connections are descriptors: take the hard limit (accept also pauses on EMFILE rather than spin). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The deployment the configuration asks for; 0, or a TESS_E* with a reason in `err`. */
static int open_sessions(server_t *srv, char *err, size_t errcap)
{
    const tess_config_t *c = &srv->cfg;
    tess_deploy_opts_t o = {
        .strategy = c->strategy,
        .format = c->format,
        .has_fallback = c->has_fallback,
        .fallback = c->fallback,
        .database_url = c->postgres ? c->database_url : NULL,
        .redis_url = c->redis_url,
        .keys = {.session = c->session_prefix, .tessera = c->tessera_prefix},
        .secrets = srv->secrets,
        .policy = c->policy,
        .cookie_name = c->cookie_name,
        .cache = c->cache,
        .l2_ttl_ms = c->l2_ttl_ms,
        .timeout_ms = c->backend_timeout_ms,
        .jwt_leeway_s = c->jwt_leeway_s,
        .jwt_user_claim = c->jwt_user_claim,
        .jwt_role_claim = c->jwt_role_claim,
        .no_session_triggers = c->no_session_triggers,
        .nextauth = {.role_column = c->nextauth_role_column,
                     .default_role = c->nextauth_default_role,
                     .max_age_ms = c->policy.idle_s * 1000},
        .on_app_key = bus_on_event,
        .on_coherence = bus_on_state,
        .on_session_key = bus_on_session_key,
        .app_arg = srv,
    };
    char sqlite_url[sizeof(c->sqlite_path) + 8];
    if (!c->postgres) {
        snprintf(sqlite_url, sizeof(sqlite_url), "sqlite:%s", c->sqlite_path);
        o.database_url = sqlite_url;
    }
    return tess_deploy_new(&srv->sessions, &o, err, errcap);
}

static int register_handler(server_t *srv, char *err, size_t errcap)
{
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    h2o_handler_t *handler;

    h2o_config_init(&srv->h2o);
    srv->h2o.server_name = h2o_iovec_init(H2O_STRLIT("tessera")); /* not the h2o version */
    /* h2o answers bodies over its own bound with a plain 413; ours (max_body) gets a JSON one first. */
    srv->h2o.max_request_entity_size = srv->cfg.max_body * 2 + 4096;
    host = h2o_config_register_host(&srv->h2o, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = router_on_req;
    limits_configure(srv, host); /* timeouts, h2c, JSON for h2o's own error answers */
    if (srv->cfg.metrics_port != 0)
        metrics_register(srv); /* --metrics-listen's host, after the default one */
    return httpstats_register(srv, path, srv->cfg.access_log, err, errcap); /* per-route counters, access log */
}

int tess_serve_main(int argc, char **argv)
{
    server_t *srv = &server;
    char err[512] = "";
    sigset_t sigs;
    int rc, exit_code = 1, sig = 0, started = 0;

    /*
     * Signals go to the main thread only, through sigwait: block them first, before any thread exists and
     * before the (slow) start-up, so that a SIGTERM during start-up is a clean stop once started.
     */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A write past a file-size limit (ulimit -f, LimitFSIZE=) then fails with EFBIG, which SQLite reports and
     * the request answers 503, instead of the signal's default: the whole server dumped. */
    signal(SIGXFSZ, SIG_IGN);
    raise_fd_limit();

    rc = tess_config_load(&srv->cfg, argc, argv, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc != 0) {
        fprintf(stderr, "tessera serve: %s\n", err);
        return 2;
    }
    log_configure((log_level_t)srv->cfg.log_level, srv->cfg.log_json);
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
        server_log("no SESSION_SECRET: generated a development secret in %s.secret", srv->cfg.sqlite_path);
    else if (srv->cfg.secret_generated == 2)
        server_log("no SESSION_SECRET: using the development secret in %s.secret", srv->cfg.sqlite_path);
    if (open_sessions(srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "tessera serve: %s\n", err);
        exit_code = 2;
        goto out;
    }
    if (meta_cache_new(srv) != 0 || roles_init() != 0) {
        fprintf(stderr, "tessera serve: cannot create the meta and role caches\n");
        goto out;
    }
    if ((rc = abuse_new(srv)) != 0) {
        fprintf(stderr, "tessera serve: cannot make the abuse limits: %s\n", tess_strerror(rc));
        goto out;
    }
    if ((rc = app_pwpool_new(&srv->pw, (int)srv->cfg.limits.password_workers,
                             (size_t)srv->cfg.limits.password_queue)) != 0) {
        fprintf(stderr, "tessera serve: cannot start password workers: %s\n", tess_strerror(rc));
        goto out;
    }
    if (register_handler(srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "tessera serve: %s\n", err);
        exit_code = 2;
        goto out;
    }
    if ((srv->cfg.postgres && appdb_pg_migrate(srv->cfg.database_url, err, sizeof(err)) != 0) ||
        tess_deploy_migrate(srv->sessions, err, sizeof(err)) != 0) {
        fprintf(stderr, "tessera serve: %s\n", err);
        goto out;
    }
    if (loops_open(srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "tessera serve: %s\n", err);
        goto out;
    }
    loops_wait_ready(srv);
    if (loops_start(srv, &started, err, sizeof(err)) != 0) {
        fprintf(stderr, "tessera serve: %s\n", err);
        goto stop;
    }
    log_startup(srv);
    do {
        if (sigwait(&sigs, &sig) != 0)
            break;
    } while (sig != SIGTERM && sig != SIGINT);
    log_event(LOG_INFO, "stop", "stopping", (log_field_t[]){{"signal", NULL, sig}}, 1);
    exit_code = 0;
stop:
    atomic_store(&srv->stopping, 1);
    loops_join(srv, started);
    /* Workers stop before the loops go away; a result still queued is dropped with its job. */
    app_pwpool_free(srv->pw);
    srv->pw = NULL;
out:
    if (srv->sessions != NULL)
        tess_deploy_unlisten(srv->sessions); /* it runs on loop 0 */
    bus_unlisten();
    loops_close(srv);
    bus_free(srv);
    app_pwpool_free(srv->pw);
    meta_cache_free(srv);
    abuse_free(srv);
    roles_free();
    tess_deploy_free(srv->sessions);
    tess_secrets_free(srv->secrets);
    tess_config_free(&srv->cfg);
    httpstats_close();
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
