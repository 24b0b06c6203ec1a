/*
 * tessera check [serve options] [--json]: reads the configuration exactly as `tessera serve` would (the same
 * flags and environment, tess_config_load()), then reaches every backend it names: the database (SQLite: the
 * file can be written; PostgreSQL: connection, password, schema version) and Redis (connection and AUTH).
 * Text: one line per check, "ok: ..." or "error: ..."; --json: one document. Exit 0 when every check passed,
 * 1 otherwise.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/appdb.h"
#include "app/config.h"
#include "cli/cli.h"
#include "tessera/error.h"
#include "tessera/pollloop.h"
#include "tessera/redis.h"

typedef struct report {
    cJSON *checks; /* --json: the array */
    int json;      /* print JSON at the end */
    int failed;    /* some check failed */
} report_t;

static void line(report_t *r, const char *what, int ok, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void line(report_t *r, const char *what, int ok, const char *fmt, ...)
{
    char detail[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    for (char *p = detail; *p; p++) /* one line per check */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (!ok)
        r->failed = 1;
    if (r->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "check", what);
        cJSON_AddBoolToObject(o, "ok", ok);
        cJSON_AddStringToObject(o, "detail", detail);
        cJSON_AddItemToArray(r->checks, o);
    } else {
        printf("%s: %s: %s\n", ok ? "ok" : "error", what, detail);
    }
}

static void check_sqlite(report_t *r, const char *path)
{
    char dirbuf[1024], err[512] = "";
    struct stat sb;
    sqlite3 *db = NULL;
    int have = 0, want = 0;

    snprintf(dirbuf, sizeof(dirbuf), "%s", path);
    const char *dir = dirname(dirbuf);
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT) {
            line(r, "database", 0, "sqlite %s: %s", path, strerror(errno));
        } else if (access(dir, W_OK) != 0) {
            line(r, "database", 0, "sqlite %s does not exist and directory %s is not writable", path, dir);
        } else {
            line(r, "database", 1, "sqlite %s will be created (directory %s writable)", path, dir);
        }
        return;
    }
    if (access(path, R_OK | W_OK) != 0) {
        line(r, "database", 0, "sqlite %s is not writable", path);
        return;
    }
    if (access(dir, W_OK) != 0) {
        line(r, "database", 0, "sqlite %s: directory %s is not writable (journal files)", path, dir);
        return;
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        appdb_sqlite_schema(db, &have, &want) != 0) {
        snprintf(err, sizeof(err), "%s", db != NULL ? sqlite3_errmsg(db) : "out of memory");
        line(r, "database", 0, "sqlite %s: %s", path, err);
    } else if (have > want) {
        line(r, "database", 0, "sqlite %s: schema version %d is newer than this tessera (%d)", path, have, want);
    } else {
        line(r, "database", 1, "sqlite %s writable, schema version %d%s", path, have,
             have < want ? " (serve migrates it)" : "");
    }
    sqlite3_close(db);
}

static void check_pg(report_t *r, const char *url)
{
    char err[512] = "";
    int have = 0, want = 0, rc;

    (void)url; /* may hold a password: never shown */
    if ((rc = appdb_pg_schema(url, &have, &want, err, sizeof(err))) != 0)
        line(r, "database", 0, "postgresql: %s", err);
    else if (have > want)
        line(r, "database", 0, "postgresql: schema version %d is newer than this tessera (%d)", have, want);
    else
        line(r, "database", 1, "postgresql reachable, schema version %d%s", have,
             have < want ? " (serve migrates it)" : "");
}

typedef struct ping {
    int done;      /* the reply (or the failure) came */
    int ok;        /* it was PONG */
    char why[256]; /* otherwise, Redis's error */
} ping_t;

static int ping_done(void *arg)
{
    return ((ping_t *)arg)->done;
}

static void on_pong(void *arg, int rc, redisReply *reply)
{
    ping_t *p = arg;
    if (rc == TESS_EUNAVAIL && reply == NULL)
        return; /* not connected (yet), or the set-up was refused: tried again until the deadline */
    p->done = 1;
    if (rc == 0 && reply != NULL && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0)
        p->ok = 1;
    else if (rc == 0 && reply != NULL && reply->type == REDIS_REPLY_ERROR)
        snprintf(p->why, sizeof(p->why), "%.*s", (int)reply->len, reply->str);
    else
        snprintf(p->why, sizeof(p->why), "%s", tess_strerror(rc != 0 ? rc : TESS_EIO));
}

static void check_redis(report_t *r, const char *url, int64_t timeout_ms)
{
    tess_poll_loop_t *loop = tess_poll_loop_new();
    tess_redis_t *conn = NULL;
    char err[512] = "";

    if (loop == NULL) {
        line(r, "redis", 0, "out of memory");
        return;
    }
    if (tess_redis_open(&conn, tess_poll_loop_base(loop), url, timeout_ms, err, sizeof(err)) != 0) {
        line(r, "redis", 0, "%s", err);
    } else {
        /* A PING goes on the wire after the AUTH and SELECT the URL asks for: its answer tells of them too. */
        static const char *argv[1] = {"PING"};
        ping_t p = {0};
        int64_t wait_ms = timeout_ms * 3 > 3000 ? timeout_ms * 3 : 3000, deadline = tess_mono_ms() + wait_ms;
        while (!p.done && tess_mono_ms() < deadline) {
            if (tess_redis_command(conn, on_pong, &p, 1, argv, NULL) == 0)
                tess_poll_loop_run_until(loop, ping_done, &p, deadline - tess_mono_ms());
            if (!p.done)
                tess_poll_loop_run_until(loop, NULL, NULL, 50); /* not connected yet */
        }
        if (p.ok)
            line(r, "redis", 1, "reachable, PING answered");
        else if (p.done)
            line(r, "redis", 0, "PING refused: %s (check the password in REDIS_URL)", p.why);
        else
            line(r, "redis", 0, "not reachable, or the connection set-up (AUTH) refused, within %lld ms",
                 (long long)wait_ms);
        tess_redis_close(conn);
    }
    tess_poll_loop_run_once(loop, 0);
    tess_poll_loop_free(loop);
}

int tess_cli_check(int argc, char **argv)
{
    report_t r = {0};
    tess_config_t cfg;
    char err[512] = "", **args;
    int i, n = 0, rc;

    if ((args = calloc((size_t)argc + 1, sizeof(*args))) == NULL) {
        fprintf(stderr, "tessera check: out of memory\n");
        return 1;
    }
    for (i = 0; i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--json") == 0)
            r.json = 1;
        else
            args[n++] = argv[i];
    }
    if (r.json)
        r.checks = cJSON_CreateArray();
    memset(&cfg, 0, sizeof(cfg));
    rc = tess_config_load(&cfg, n, args, err, sizeof(err));
    free(args);
    if (rc == 1) { /* --help: serve's options */
        cJSON_Delete(r.checks);
        return 0;
    }
    if (rc != 0) {
        line(&r, "config", 0, "%s", err);
    } else {
        line(&r, "config", 1, "strategy %s, listen %s:%u", tess_strategy_name(cfg.strategy), cfg.listen_host,
             (unsigned)cfg.listen_port);
        if (cfg.postgres)
            check_pg(&r, cfg.database_url);
        else
            check_sqlite(&r, cfg.sqlite_path);
        if (cfg.redis_url[0] != '\0')
            check_redis(&r, cfg.redis_url, cfg.backend_timeout_ms);
    }
    tess_config_free(&cfg);
    if (r.json) {
        cJSON *root = cJSON_CreateObject();
        char *text;
        cJSON_AddBoolToObject(root, "ok", !r.failed);
        cJSON_AddItemToObject(root, "checks", r.checks);
        if ((text = cJSON_PrintUnformatted(root)) != NULL)
            puts(text);
        free(text);
        cJSON_Delete(root);
    }
    return r.failed ? 1 : 0;
}
