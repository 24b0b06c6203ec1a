/*
 * tessera session list --user NAME: the user's live sessions as the database holds them (the sqlite,
 * postgres and cached strategies' session table), each shown by its handle: the first 16 hex digits of the
 * SHA-256 of the session id. A handle names a session without being one: it cannot be turned back into a
 * cookie, so it may go into logs and tickets. `session revoke` accepts the handle or the id.
 */
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "tessera/error.h"
#include "tessera/keyspace.h"
#include "tessera/pgconn.h"
#include "tessera/redis.h"
#include "tessera/store.h"

void tess_cli_handle(const char *sid, char out[TESS_CLI_HANDLE_LEN + 1])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    static const char hex[] = "0123456789abcdef";
    int i;

    crypto_hash_sha256(digest, (const unsigned char *)sid, strlen(sid));
    for (i = 0; i < TESS_CLI_HANDLE_LEN / 2; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[TESS_CLI_HANDLE_LEN] = '\0';
}

/* createdAt of a stored session's JSON, 0 when absent. */
static int64_t created_of(const char *sess)
{
    cJSON *root = cJSON_Parse(sess), *item;
    int64_t ms = 0;

    if (root != NULL && (item = cJSON_GetObjectItemCaseSensitive(root, "createdAt")) != NULL && cJSON_IsNumber(item))
        ms = (int64_t)item->valuedouble;
    cJSON_Delete(root);
    return ms;
}

static int add_row(tess_cli_sessions_t *out, const char *sid, const char *sess, int64_t expires_ms, const char *where)
{
    tess_cli_session_row_t *grown;

    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 16;
        if ((grown = realloc(out->rows, cap * sizeof(*grown))) == NULL)
            return TESS_ENOMEM;
        out->rows = grown;
        out->cap = cap;
    }
    memset(&out->rows[out->n], 0, sizeof(out->rows[0]));
    snprintf(out->rows[out->n].sid, sizeof(out->rows[0].sid), "%s", sid);
    tess_cli_handle(sid, out->rows[out->n].handle);
    out->rows[out->n].created_ms = created_of(sess);
    out->rows[out->n].expires_ms = expires_ms;
    out->rows[out->n].where = where;
    out->n++;
    return 0;
}

int tess_cli_sessions_load(tess_cli_sessions_t *out, const tess_config_t *cfg, const char *uid, char *err,
                           size_t errcap)
{
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (cfg->postgres) {
        const char *values[1] = {uid};
        PGconn *pg = tess_pgconn_connect_sync(cfg->database_url, err, errcap);
        PGresult *res;
        int i;

        if (pg == NULL)
            return TESS_EUNAVAIL;
        /* uid NULL: every live session (finding one by its handle). */
        res = PQexecParams(pg,
                           uid != NULL ? "SELECT sid, sess::text, (extract(epoch FROM expire) * 1000)::bigint FROM"
                                         " session WHERE sess->>'userId' = $1 AND expire > now() ORDER BY expire"
                                       : "SELECT sid, sess::text, (extract(epoch FROM expire) * 1000)::bigint FROM"
                                         " session WHERE expire > now()",
                           uid != NULL ? 1 : 0, NULL, values, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            if (state == NULL || strcmp(state, "42P01") != 0) { /* no session table yet: no sessions */
                rc = TESS_EIO;
                tess_pgconn_error_line(err, errcap, NULL, PQerrorMessage(pg));
            }
        } else {
            for (i = 0; i < PQntuples(res) && rc == 0; i++)
                rc = add_row(out, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                             strtoll(PQgetvalue(res, i, 2), NULL, 10), "database");
        }
        PQclear(res);
        PQfinish(pg);
    } else {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        int src;

        if (tess_sqlite_connect(&db, cfg->sqlite_path, err, errcap) != 0)
            return TESS_EIO;
        src =
            sqlite3_prepare_v2(db,
                               uid != NULL ? "SELECT sid, sess, expire FROM session WHERE user_id = ?1 AND expire > ?2"
                                             " ORDER BY expire"
                                           : "SELECT sid, sess, expire FROM session WHERE expire > ?2",
                               -1, &st, NULL);
        if (src != SQLITE_OK) {
            if (strstr(sqlite3_errmsg(db), "no such table") == NULL) {
                rc = TESS_EIO;
                snprintf(err, errcap, "%s", sqlite3_errmsg(db));
            }
        } else {
            if (uid != NULL)
                sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, tess_now_ms());
            while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW)
                rc = add_row(out, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
                             sqlite3_column_int64(st, 2), "database");
            if (rc == 0 && src != SQLITE_DONE) {
                rc = TESS_EIO;
                snprintf(err, errcap, "%s", sqlite3_errmsg(db));
            }
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    if (rc == TESS_ENOMEM)
        snprintf(err, errcap, "out of memory");
    if (rc != 0)
        tess_cli_sessions_free(out);
    return rc;
}

/* A reply of `c` to argv, or NULL with the reason in `err` (the password never in it). */
static redisReply *command(redisContext *c, int argc, const char **argv, char *err, size_t errcap)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);

    if (r == NULL)
        snprintf(err, errcap, "redis: %s", c->errstr);
    else if (r->type == REDIS_REPLY_ERROR)
        snprintf(err, errcap, "redis %s: %.*s", argv[0], (int)r->len, r->str);
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

int tess_cli_sessions_load_redis(tess_cli_sessions_t *out, const char *url, const char *prefix, const char *uid,
                                 char *err, size_t errcap)
{
    redisContext *c = NULL;
    redisReply *set = NULL;
    char key[512];
    const char *argv[3];
    int rc = 0;
    size_t i;

    if (prefix == NULL || *prefix == '\0')
        prefix = TESS_KEYSPACE_SESSION_DEFAULT;
    if ((c = tess_redis_connect_sync(url, 2000, err, errcap)) == NULL) {
        rc = TESS_EUNAVAIL;
        goto out;
    }
    snprintf(key, sizeof(key), "%s" TESS_KEY_USER "%s", prefix, uid);
    argv[0] = "SMEMBERS";
    argv[1] = key;
    if ((set = command(c, 2, argv, err, errcap)) == NULL) {
        rc = TESS_EIO;
        goto out;
    }
    for (i = 0; set->type == REDIS_REPLY_ARRAY && i < set->elements && rc == 0; i++) {
        redisReply *get, *ttl;
        if (set->element[i]->type != REDIS_REPLY_STRING)
            continue;
        snprintf(key, sizeof(key), "%s%s", prefix, set->element[i]->str);
        argv[0] = "GET";
        argv[1] = key;
        if ((get = command(c, 2, argv, err, errcap)) == NULL) {
            rc = TESS_EIO;
            break;
        }
        argv[0] = "PTTL";
        if ((ttl = command(c, 2, argv, err, errcap)) == NULL) {
            freeReplyObject(get);
            rc = TESS_EIO;
            break;
        }
        /* The set outlives its members: an id whose session expired or went is skipped. */
        if (get->type == REDIS_REPLY_STRING && ttl->type == REDIS_REPLY_INTEGER && ttl->integer > 0)
            rc = add_row(out, set->element[i]->str, get->str, tess_now_ms() + ttl->integer, "redis");
        freeReplyObject(get);
        freeReplyObject(ttl);
    }
    if (rc == TESS_ENOMEM)
        snprintf(err, errcap, "out of memory");
out:
    if (set != NULL)
        freeReplyObject(set);
    if (c != NULL)
        redisFree(c);
    return rc;
}

void tess_cli_sessions_free(tess_cli_sessions_t *s)
{
    if (s->rows != NULL)
        sodium_memzero(s->rows, s->cap * sizeof(*s->rows));
    free(s->rows);
    memset(s, 0, sizeof(*s));
}

static void iso(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || gmtime_r(&t, &tm) == NULL)
        snprintf(buf, cap, "-");
    else
        strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void tess_cli_sessions_print(const tess_cli_sessions_t *s, const char *user, int json)
{
    char created[32], expires[32];
    size_t i;

    if (json) {
        cJSON *root = cJSON_CreateObject(), *arr;
        char *text;
        cJSON_AddStringToObject(root, "user", user);
        arr = cJSON_AddArrayToObject(root, "sessions");
        for (i = 0; i < s->n; i++) {
            cJSON *o = cJSON_CreateObject();
            iso(s->rows[i].created_ms, created, sizeof(created));
            iso(s->rows[i].expires_ms, expires, sizeof(expires));
            cJSON_AddStringToObject(o, "handle", s->rows[i].handle);
            if (s->rows[i].created_ms > 0)
                cJSON_AddStringToObject(o, "created", created);
            else
                cJSON_AddNullToObject(o, "created");
            cJSON_AddStringToObject(o, "expires", expires);
            cJSON_AddStringToObject(o, "store", s->rows[i].where);
            cJSON_AddItemToArray(arr, o);
        }
        text = cJSON_PrintUnformatted(root);
        if (text != NULL)
            puts(text);
        free(text);
        cJSON_Delete(root);
        return;
    }
    printf("%-16s  %-20s  %-20s  %s\n", "HANDLE", "CREATED", "EXPIRES", "STORE");
    for (i = 0; i < s->n; i++) {
        iso(s->rows[i].created_ms, created, sizeof(created));
        iso(s->rows[i].expires_ms, expires, sizeof(expires));
        printf("%-16s  %-20s  %-20s  %s\n", s->rows[i].handle, created, expires, s->rows[i].where);
    }
}
