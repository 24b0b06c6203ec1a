/*
 * Operations endpoints: GET /healthz (the process answers), GET /readyz (the backends answer), GET /metrics.
 */
#include "server/router.h"
#include "tessera/error.h"

void h_healthz(tess_req_t *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    send_json(r, 200, o);
}

static void readyz_sessions_done(void *arg, int rc, const tess_session_t *s)
{
    tess_req_t *r = req_resume(arg);
    (void)s;
    if (r == NULL)
        return;
    if (rc != 0) {
        send_error(r, 503, "unavailable", "the session store is not answering");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ready");
    send_json(r, 200, o);
}

static void readyz_appdb_done(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = req_resume(arg);
    ticket_t *t;
    int rc;
    if (r == NULL)
        return;
    if (res->rc != 0) {
        send_error(r, 503, "unavailable", "the database is not answering");
        return;
    }
    t = req_suspend(r);
    if ((rc = tess_deploy_loop_ping(r->th->sessions, readyz_sessions_done, t)) != 0)
        readyz_sessions_done(t, rc, NULL);
}

void h_readyz(tess_req_t *r)
{
    appdb_t *db = r->th->appdb;
    ticket_t *t = req_suspend(r);
    req_started(r, t, db->ops->ping(db, readyz_appdb_done, t));
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
