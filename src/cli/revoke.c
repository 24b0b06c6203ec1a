/*
 * tessera session revoke --user NAME: logs a user out everywhere from the command line, with the same
 * effect as POST /api/auth/logout?everywhere=1 on every strategy:
 *   - every stored session of the user goes (SQLite or PostgreSQL session table);
 *   - with Redis: every Redis-held session and cache copy of the user is tombstoned (tracking then evicts
 *     every running instance's near-cache), and a per-user cut-off rejects the user's JWTs issued so far.
 * It opens the `cached` deployment (the database store, with Redis its L2 copies and the revoker) on a small
 * poll loop, with Redis and the `redis` strategy as its fallback (the redis strategy's own sessions: they are
 * kept apart from the L2 copies, tessera/keyspace.h), and calls tess_auth_logout_everywhere(), which ends the
 * user's sessions in both.
 * Without Redis the cut-off goes into the database's revocation table, which running servers follow.
 */
#include <getopt.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/appdb.h"
#include "app/config.h"
#include "cli/cli.h"
#include "tessera/redis.h"
#include "tessera/deploy.h"
#include "tessera/error.h"
#include "tessera/pollloop.h"

#define WAIT_MS 10000

typedef struct step {
    int done;    /* the callback ran */
    int rc;      /* its result */
    int64_t uid; /* user_by_name: the id found */
} step_t;

static int is_done(void *arg)
{
    return ((step_t *)arg)->done;
}

static void on_user(void *arg, const appdb_result_t *res)
{
    step_t *st = arg;
    st->rc = res->rc;
    st->uid = res->user != NULL ? res->user->id : 0;
    st->done = 1;
}

static void on_revoked(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    step_t *st = arg;
    (void)s;
    (void)cookie;
    st->rc = rc;
    st->done = 1;
}

/* Waits for `st`; a started operation always completes (every backend call has a timeout). */
static int await(tess_poll_loop_t *loop, step_t *st)
{
    while (!st->done)
        tess_poll_loop_run_until(loop, is_done, st, WAIT_MS);
    return st->rc;
}

int tess_cli_user_id(const char *cmd, const tess_config_t *cfg, const char *name, char *uid, size_t cap)
{
    appdb_user_t *users = NULL;
    char err[512] = "";
    size_t n = 0, i;
    sqlite3 *db = NULL;
    int rc;

    if (cfg->postgres) {
        rc = appdb_pg_user_list(cfg->database_url, &users, &n, err, sizeof(err));
    } else if ((rc = appdb_sqlite_connect(&db, cfg->sqlite_path, err, sizeof(err))) == 0) {
        rc = appdb_sqlite_user_list(db, &users, &n, err, sizeof(err));
        sqlite3_close(db);
    }
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return 1;
    }
    rc = 1;
    for (i = 0; i < n; i++) {
        if (strcmp(users[i].name, name) == 0) {
            snprintf(uid, cap, "%" PRId64, users[i].id);
            rc = 0;
            break;
        }
    }
    free(users);
    if (rc != 0)
        fprintf(stderr, "%s: no user named %s\n", cmd, name);
    return rc;
}

const char *tess_cli_bad_option(char **argv, int optind_now)
{
    static char shortopt[3];
    if (strncmp(argv[optind_now - 1], "--", 2) == 0)
        return argv[optind_now - 1]; /* an unknown long option, or one without its value */
    if (optopt != 0 && optopt != '?') {
        shortopt[0] = '-';
        shortopt[1] = (char)optopt;
        shortopt[2] = '\0';
        return shortopt;
    }
    return argv[optind_now - 1];
}

static void usage_revoke(FILE *out)
{
    fputs("usage: tessera session revoke [--database URL] [--redis URL] [--] ID|HANDLE|--user NAME\n"
          "(an ID may start with '-': put it after --)\n"
          "Ends one session (by its id or the handle `tessera session list` shows), or with --user logs NAME out\n"
          "everywhere: stored sessions, Redis sessions and cache copies, and (with Redis or the database's\n"
          "revocation table) every JWT issued to NAME so far. DATABASE_URL, REDIS_URL and SESSION_PREFIX are\n"
          "honoured.\n",
          out);
}

int tess_cli_session_revoke(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"user", required_argument, NULL, 'u'},
        {"database", required_argument, NULL, 'd'},
        {"redis", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char cmd[] = "tessera session revoke";
    const char *user = NULL, *database = getenv("DATABASE_URL"), *redis = getenv("REDIS_URL"), *arg = NULL;
    char err[512] = "", sid[256] = "";
    tess_config_t cfg;
    int opt;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'u':
            user = optarg;
            break;
        case 'd':
            database = optarg;
            break;
        case 'r':
            redis = optarg;
            break;
        case 'h':
            usage_revoke(stdout);
            return 0;
        default:
            fprintf(
                stderr,
                "%s: bad option '%s' (an ID that starts with '-' goes after --; see tessera session revoke --help)\n",
                cmd, tess_config_shown(tess_cli_bad_option(argv, optind)));
            return 2;
        }
    }
    if (optind == argc - 1)
        arg = argv[optind];
    if ((user == NULL) == (arg == NULL) || optind < argc - 1 ||
        (user != NULL && (*user == '\0' || strlen(user) > APP_NAME_MAX)) ||
        (arg != NULL && (*arg == '\0' || strlen(arg) >= sizeof(sid)))) {
        fprintf(stderr, "%s: expected a session ID or HANDLE, or --user NAME (see tessera session revoke --help)\n",
                cmd);
        return 2;
    }
    memset(&cfg, 0, sizeof(cfg));
    if (tess_config_set_database(&cfg, database != NULL && *database ? database : "sqlite:./tessera.db", err,
                                 sizeof(err)) != 0 ||
        (redis != NULL && *redis != '\0' && tess_redis_url_check(redis, err, sizeof(err)) != 0)) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return 2;
    }
    if (arg != NULL) {
        /* The id or the handle of a stored session; with Redis an id may be a Redis-held session's. */
        tess_cli_sessions_t all;
        size_t i;
        if (tess_cli_sessions_load(&all, &cfg, NULL, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", cmd, err);
            return 1;
        }
        for (i = 0; i < all.n; i++) {
            if (strcmp(all.rows[i].sid, arg) == 0 || strcmp(all.rows[i].handle, arg) == 0) {
                snprintf(sid, sizeof(sid), "%s", all.rows[i].sid);
                break;
            }
        }
        tess_cli_sessions_free(&all);
        if (sid[0] == '\0' && (redis == NULL || *redis == '\0' || strlen(arg) == TESS_CLI_HANDLE_LEN)) {
            fprintf(stderr, "%s: no live session with that id or handle\n", cmd);
            return 1;
        }
        if (sid[0] == '\0')
            snprintf(sid, sizeof(sid), "%s", arg);
    }
    return tess_cli_revoke(cmd, database, redis, user, arg != NULL ? sid : NULL);
}

int tess_cli_revoke(const char *cmd, const char *database, const char *redis, const char *user, const char *sid)
{
    const char *prefix = getenv("SESSION_PREFIX"), *tess_prefix = getenv("TESSERA_KEY_PREFIX");
    char err[512] = "", uid[24] = "", handle[TESS_CLI_HANDLE_LEN + 1];
    tess_config_t cfg;
    tess_poll_loop_t *loop = NULL;
    sqlite3 *db = NULL;
    appdb_t *appdb = NULL;
    tess_secrets_t *secrets = NULL;
    tess_deploy_t *deploy = NULL;
    tess_deploy_loop_t *sessions = NULL;
    tess_session_t one;
    step_t st;
    int code = 1, rc;
    int64_t deadline;

    memset(&cfg, 0, sizeof(cfg));
    if (tess_config_set_database(&cfg, database != NULL && *database ? database : "sqlite:./tessera.db", err,
                                 sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return 1;
    }
    if (redis != NULL && *redis == '\0')
        redis = NULL;
    if (prefix != NULL && *prefix == '\0')
        prefix = NULL; /* the default */
    if (tess_prefix != NULL && *tess_prefix == '\0')
        tess_prefix = NULL;
    if ((loop = tess_poll_loop_new()) == NULL) {
        fprintf(stderr, "%s: out of memory\n", cmd);
        return 1;
    }

    /* The user's id, from the application database. */
    if (cfg.postgres) {
        if (appdb_pg_migrate(cfg.database_url, err, sizeof(err)) != 0 ||
            appdb_pg_open(&appdb, tess_poll_loop_base(loop), cfg.database_url, 2000, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", cmd, err);
            goto out;
        }
    } else if (appdb_sqlite_connect(&db, cfg.sqlite_path, err, sizeof(err)) != 0 ||
               appdb_sqlite_open(&appdb, db, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        goto out;
    }
    /* PostgreSQL connects asynchronously: retry while it is not up yet (bounded). */
    deadline = tess_mono_ms() + WAIT_MS;
    do {
        if (user == NULL)
            break; /* one session: no user to look up */
        memset(&st, 0, sizeof(st));
        if ((rc = appdb->ops->user_by_name(appdb, tess_str(user), on_user, &st)) == 0)
            rc = await(loop, &st);
        if (rc == TESS_EUNAVAIL && tess_mono_ms() < deadline)
            tess_poll_loop_run_until(loop, NULL, NULL, 50);
    } while (rc == TESS_EUNAVAIL && tess_mono_ms() < deadline);
    if (user == NULL) {
        rc = 0;
    } else if (rc == TESS_ENOTFOUND) {
        fprintf(stderr, "%s: no user named %s\n", cmd, user);
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "%s: looking up %s: %s\n", cmd, user, tess_strerror(rc));
        goto out;
    }
    if (user != NULL)
        snprintf(uid, sizeof(uid), "%" PRId64, st.uid);

    {
        /* Tokens live at most SESSION_TTL (default 30 days): the cut-off is kept that long, and a minute. */
        int64_t ttl_s = 30LL * 86400;
        const char *env = getenv("SESSION_TTL");
        char sqlite_url[sizeof(cfg.sqlite_path) + 8];
        tess_deploy_opts_t o = {
            .strategy = TESS_STRATEGY_CACHED,
            .database_url = cfg.database_url,
            .redis_url = redis,
            .keys = {.session = prefix, .tessera = tess_prefix},
            .timeout_ms = 2000,
            .token_revocation = 1, /* without Redis: the database's cut-off, which running servers follow */
        };
        if (redis != NULL && redis[0] != '\0') {
            o.has_fallback = 1;
            o.fallback = TESS_STRATEGY_REDIS;
        }
        int64_t leeway_s = 30;
        const char *leeway = getenv("JWT_LEEWAY");
        if (leeway != NULL && tess_parse_int(leeway, 0, 3600, &leeway_s) == 0)
            o.jwt_leeway_s = leeway_s; /* the cut-off outlives the tokens' acceptance */
        else
            o.jwt_leeway_s = 30;
        if (env != NULL && tess_parse_int(env, 60, 10LL * 365 * 86400, &ttl_s) != 0)
            ttl_s = 30LL * 86400;
        tess_session_policy_default(&o.policy);
        o.policy.ttl_s = ttl_s;
        if (!cfg.postgres) {
            snprintf(sqlite_url, sizeof(sqlite_url), "sqlite:%s", cfg.sqlite_path);
            o.database_url = sqlite_url;
        }
        /* Nothing is signed here; the strategy only needs a secret list to exist. */
        if (tess_secrets_parse(&secrets, TESS_STR_LIT("revoke-signs-nothing")) != 0) {
            fprintf(stderr, "%s: out of memory\n", cmd);
            goto out;
        }
        o.secrets = secrets;
        if (tess_deploy_new(&deploy, &o, err, sizeof(err)) != 0 || tess_deploy_migrate(deploy, err, sizeof(err)) != 0 ||
            tess_deploy_loop_open(&sessions, deploy, tess_poll_loop_base(loop), err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", cmd, err);
            goto out;
        }
    }
    /* The store's own connection may still be coming up: retry while it is unavailable (bounded). */
    deadline = tess_mono_ms() + WAIT_MS;
    do {
        memset(&st, 0, sizeof(st));
        if (sid != NULL) {
            /* As a logout of that session: both stores with Redis (the redis strategy's sessions too). */
            memset(&one, 0, sizeof(one));
            snprintf(one.id, sizeof(one.id), "%s", sid);
            tess_auth_logout_session(tess_deploy_loop_auth(sessions), &one, on_revoked, &st);
        } else
            tess_auth_logout_everywhere(tess_deploy_loop_auth(sessions), tess_str(uid), tess_now_ms(), on_revoked, &st);
        rc = await(loop, &st);
        if (rc == TESS_EUNAVAIL && tess_mono_ms() < deadline)
            tess_poll_loop_run_until(loop, NULL, NULL, 50);
    } while (rc == TESS_EUNAVAIL && tess_mono_ms() < deadline);
    if (sid != NULL && (rc == TESS_ENOTFOUND || rc == TESS_EDENIED)) {
        fprintf(stderr, "%s: no live session with that id or handle\n", cmd);
        goto out;
    }
    if (rc != 0 && rc != TESS_ENOTFOUND) {
        fprintf(stderr, "%s: revoking: %s\n", cmd, tess_strerror(rc));
        goto out;
    }
    {
        /* Held long-polls and streams of the user end on every instance (they re-check their sessions). */
        char event[APP_EVENT_MAX + 1];
        memset(&st, 0, sizeof(st));
        if (sid != NULL)
            snprintf(event, sizeof(event), "sid:%s", sid);
        else
            snprintf(event, sizeof(event), "uid:%s", uid);
        if (appdb->ops->publish(appdb, tess_str(event), on_user, &st) == 0 && await(loop, &st) != 0)
            fprintf(stderr, "%s: telling running servers: %s\n", cmd, tess_strerror(st.rc));
    }
    if (sid != NULL) {
        tess_cli_handle(sid, handle);
        printf("revoked session %s\n", handle);
    } else {
        printf("revoked every session of %s\n", user);
    }
    code = 0;
out:
    tess_deploy_loop_close(sessions);
    tess_deploy_free(deploy);
    tess_secrets_free(secrets);
    if (appdb != NULL)
        appdb->ops->close(appdb);
    sqlite3_close(db);
    /* Closing completes what was pending; let the loop sweep the watchers. */
    if (loop != NULL) {
        tess_poll_loop_run_once(loop, 0);
        tess_poll_loop_free(loop);
    }
    return code;
}
