/*
 * Operations endpoints: GET /healthz (the process answers), GET /readyz (the backends answer), GET /metrics.
 */
#include <stdio.h>
#include <stdlib.h>

#include "server/router.h"
#include "tessera/error.h"

void h_healthz(tess_req_t *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    send_json(r, 200, o);
}

/*
 * GET /readyz: every backend the configuration uses is asked at once, on the loop (each check bounded by
 * BACKEND_TIMEOUT_MS): the application database (SQLite file or PostgreSQL), the session store(s), Redis and
 * the coherence listener (tess_deploy_loop_ready). The body names each backend and its state, never a URL:
 *   200 {"status":"ready","checks":{"database":"ok","redis":"ok","coherence":"ok"}}
 *   200 {"status":"degraded",...}  a backend that only caches is down (Redis for db/cached, the listener):
 *                                  requests are still answered from the database (docs/server.md)
 *   503 {"error":"unavailable","message":"not ready: redis","status":"unavailable","checks":{...}}
 */
typedef struct readyz {
    ticket_t *ticket;          /* the request, suspended */
    int pending;               /* checks outstanding, plus one while starting */
    int appdb_rc;              /* the application database's ping */
    tess_deploy_ready_t ready; /* the session deployment's checks */
} readyz_t;

static const char *state_name(tess_ready_state_t s)
{
    return s == TESS_READY_OK ? "ok" : "down";
}

static void readyz_answer(tess_req_t *r, const readyz_t *z)
{
    const tess_deploy_ready_t *d = &z->ready;
    int db_down = z->appdb_rc != 0 || d->database == TESS_READY_DOWN;
    int redis_down = d->redis == TESS_READY_DOWN, coh_down = d->coherence == TESS_READY_DOWN;
    char message[96];
    cJSON *o = cJSON_CreateObject(), *checks = cJSON_CreateObject();
    const char *status;

    cJSON_AddStringToObject(checks, "database", db_down ? "down" : "ok");
    if (d->redis != TESS_READY_UNUSED)
        cJSON_AddStringToObject(checks, "redis", state_name(d->redis));
    if (d->coherence != TESS_READY_UNUSED)
        cJSON_AddStringToObject(checks, "coherence", state_name(d->coherence));
    if (db_down || (redis_down && d->redis_required)) {
        snprintf(message, sizeof(message), "not ready: %s%s%s", db_down ? "database" : "",
                 db_down && redis_down && d->redis_required ? ", " : "",
                 redis_down && d->redis_required ? "redis" : "");
        cJSON_AddStringToObject(o, "error", "unavailable");
        cJSON_AddStringToObject(o, "message", message);
        cJSON_AddStringToObject(o, "status", "unavailable");
        cJSON_AddItemToObject(o, "checks", checks);
        h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        send_json(r, 503, o);
        return;
    }
    status = redis_down || coh_down ? "degraded" : "ready";
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddItemToObject(o, "checks", checks);
    send_json(r, 200, o);
}

static void readyz_step(readyz_t *z)
{
    tess_req_t *r;
    if (--z->pending > 0)
        return;
    if ((r = req_resume(z->ticket)) != NULL)
        readyz_answer(r, z);
    free(z);
}

static void readyz_appdb_done(void *arg, const appdb_result_t *res)
{
    readyz_t *z = arg;
    z->appdb_rc = res->rc;
    readyz_step(z);
}

static void readyz_sessions_done(void *arg, const tess_deploy_ready_t *ready)
{
    readyz_t *z = arg;
    z->ready = *ready;
    readyz_step(z);
}

void h_readyz(tess_req_t *r)
{
    appdb_t *db = r->th->appdb;
    readyz_t *z = calloc(1, sizeof(*z));
    int rc;

    if (z == NULL) {
        send_error(r, 503, "unavailable", "out of memory");
        return;
    }
    z->ticket = req_suspend(r);
    z->pending = 3;
    /* A check that cannot start counts as done here: the third count keeps `z` alive until the end. */
    if ((rc = db->ops->ping(db, readyz_appdb_done, z)) != 0) {
        z->appdb_rc = rc;
        --z->pending;
    }
    if (tess_deploy_loop_ready(r->th->sessions, readyz_sessions_done, z) != 0) {
        z->ready.database = TESS_READY_DOWN;
        z->ready.database_rc = TESS_ENOMEM;
        --z->pending;
    }
    readyz_step(z);
}

void h_metrics(tess_req_t *r)
{
    h2o_iovec_t text = metrics_text(r->th->srv, &r->req->pool);
    r->req->res.status = 200;
    r->req->res.reason = "OK";
    h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4"));
    r->req->res.content_length = text.len;
    h2o_send_inline(r->req, text.base, text.len);
}
