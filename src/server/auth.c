/*
 * Sessions over HTTP: POST /api/auth/login, POST /api/auth/logout[?everywhere=1], GET /api/auth/session, and
 * GET /auth for nginx's auth_request.
 *
 * Login: throttle (abuse.h: a locked-out name or address is 429 before anything else) -> user by name
 * (appdb) -> password check on a worker (app/passwords.h; unknown users against a dummy hash, so both take
 * the same time; dropped from the queue if the client hangs up first) -> tess_auth_login -> Set-Cookie.
 * Logout: tess_auth_check (which session?) -> tess_auth_logout_session / _everywhere -> cookie cleared.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/bus.h"
#include "server/hangup.h"
#include "server/abuse.h"
#include "server/router.h"
#include "tessera/cookie.h"
#include "tessera/error.h"

#define PASSWORD_MAX 1024 /* bytes in a password */

/*
 * One login attempt, from the throttle to the password's verdict: on the heap, as the argument of each
 * asynchronous step (it outlives the request when the client goes away, to settle the throttle's count).
 */
typedef struct login_attempt {
    ticket_t *ticket;  /* the step under way */
    server_t *srv;     /* for the limits */
    login_keys_t keys; /* the throttle's keys */
} login_attempt_t;

/* What a login keeps in its request (pool). */
typedef struct login_state {
    tess_req_t *r;                /* the request */
    int64_t uid;                  /* the user found (0: none) */
    char role[TESS_ROLE_MAX + 1]; /* that user's role */
    char pwhash[256];             /* the stored hash */
    uint64_t job;                 /* the password job while it is queued */
    login_attempt_t *attempt;     /* the attempt, while its job is queued */
    hangup_t *hup;                /* watches the client meanwhile */
} login_state_t;

static void set_named_cookie(tess_req_t *r, tess_str_t name, tess_str_t value, int64_t max_age_s)
{
    server_t *srv = r->th->srv;
    tess_set_cookie_t c = {
        .name = name,
        .value = value,
        .max_age_s = max_age_s,
        .now_ms = tess_now_ms(),
        .secure = srv->cfg.production,
        .http_only = 1,
        .same_site = "Lax",
        .path = "/",
    };
    char buf[TESS_TOKEN_MAX + 512];
    size_t n;
    if (tess_set_cookie_format(&c, buf, sizeof(buf), &n) == 0) {
        /* h2o keeps the pointer, not the bytes: the value must live in the request pool. */
        h2o_iovec_t v = h2o_strdup(&r->req->pool, buf, n);
        h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, v.base, v.len);
    }
}

/*
 * A cookie that may arrive chunked (NextAuth's `<name>.0`, `<name>.1`, ...): clears every chunk this request
 * carries, so that what the browser keeps is one whole value (after a login) or nothing (after a logout).
 * Each Cookie field is read as it is (no joining: never a 431 here, after the session changed).
 */
static void clear_chunks(tess_req_t *r, tess_auth_t *auth)
{
    tess_str_t name = tess_auth_cookie_name(auth), v;
    char cname[80];

    if (!tess_auth_cookie_chunked(auth))
        return;
    for (size_t k = 0; k < TESS_COOKIE_CHUNKS_MAX; k++) {
        int n = snprintf(cname, sizeof(cname), "%.*s.%zu", (int)name.len, name.ptr, k);
        int present = 0;
        for (ssize_t i = -1; !present && (i = h2o_find_header(&r->req->headers, H2O_TOKEN_COOKIE, i)) != -1;) {
            h2o_iovec_t f = r->req->headers.entries[i].value;
            present = tess_cookie_find(tess_strn(f.base, f.len), tess_strn(cname, (size_t)n), &v) == 0;
        }
        if (!present)
            return; /* chunks are contiguous from .0: the reader stops at the first gap too */
        set_named_cookie(r, tess_strn(cname, (size_t)n), TESS_STR_LIT(""), 0); /* formatted into the pool */
    }
}

/* What a logout carries to its end: whose held requests must hear of it (bus.h). */
typedef struct logout_state {
    char event[TESS_SID_MAX + 8]; /* "sid:<id>" or "uid:<id>"; "" when no session was found */
} logout_state_t;

static tess_auth_t *auth_of(tess_req_t *r)
{
    return tess_deploy_loop_auth(r->th->sessions);
}

static void send_session(tess_req_t *r, const char *user_id, const char *role, int64_t expires_ms)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "userId", user_id);
    cJSON_AddStringToObject(o, "role", role);
    json_add_iso(o, "expiresAt", expires_ms);
    send_json(r, 200, o);
}

/* ---- GET /api/auth/session, GET /auth ------------------------------------------------------------------- */

void h_session(tess_req_t *r)
{
    send_session(r, r->user_id, r->role, r->expires_ms);
}

void h_auth(tess_req_t *r)
{
    add_header(r, "x-session-user", r->user_id, strlen(r->user_id));
    add_header(r, "x-session-role", r->role, strlen(r->role));
    send_empty(r, 204);
}

/* ---- POST /api/auth/login ------------------------------------------------------------------------------- */

static void login_done(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    tess_req_t *r = req_resume(arg);
    if (r == NULL)
        return;
    if (rc != 0 || s == NULL) {
        send_backend_error(r, rc != 0 ? rc : TESS_EIO);
        return;
    }
    set_named_cookie(r, tess_auth_cookie_name(auth_of(r)), cookie, r->th->srv->cfg.policy.ttl_s);
    clear_chunks(r, auth_of(r)); /* a stale chunked token would be joined to nothing: gone */
    send_session(r, s->user_id, s->role, s->expires_ms);
}

static void login_attempt_end(login_attempt_t *a, int tried, int ok)
{
    if (!tried)
        abuse_login_abandoned(a->srv, &a->keys);
    else if (ok)
        abuse_login_succeeded(a->srv, &a->keys);
    /* A wrong password was counted when the attempt began. */
    free(a);
}

static void login_password_checked(void *arg, int ok)
{
    login_attempt_t *a = arg;
    tess_req_t *r = req_resume(a->ticket);
    login_state_t *st;
    char uid[24];

    login_attempt_end(a, 1, ok);
    if (r == NULL)
        return;
    st = r->state;
    st->attempt = NULL;
    hangup_free(st->hup);
    st->hup = NULL;
    if (!ok || st->uid == 0) {
        send_error(r, 401, "invalid_credentials", "unknown user or wrong password");
        return;
    }
    snprintf(uid, sizeof(uid), "%" PRId64, st->uid);
    tess_auth_login(auth_of(r), tess_str(uid), tess_str(st->role), tess_now_ms(), login_done, req_suspend(r));
}

/* The client hung up while its password check waits: a job still queued is dropped, unrun. */
static void login_hung_up(void *arg)
{
    login_state_t *st = arg;
    tess_req_t *r;

    hangup_free(st->hup);
    st->hup = NULL;
    if (st->attempt == NULL || !app_pw_cancel(st->r->th->srv->pw, st->job))
        return; /* running already: its answer comes, and its write tells h2o the client is gone */
    r = req_resume(st->attempt->ticket);
    login_attempt_end(st->attempt, 0, 0);
    st->attempt = NULL;
    if (r != NULL)
        send_error(r, 503, "client_gone", "the client closed the connection"); /* h2o then disposes of it */
}

static void login_state_dispose(void *p)
{
    login_state_t *st = p;
    hangup_free(st->hup);
}

static void login_user_found(void *arg, const appdb_result_t *res)
{
    login_attempt_t *a = arg;
    tess_req_t *r = req_resume(a->ticket);
    login_state_t *st;
    tess_str_t password;
    int rc;
    if (r == NULL) {
        login_attempt_end(a, 0, 0);
        return;
    }
    st = r->state;
    if (res->rc != 0 && res->rc != TESS_ENOTFOUND) {
        login_attempt_end(a, 0, 0);
        send_backend_error(r, res->rc);
        return;
    }
    if (res->user != NULL) {
        st->uid = res->user->id;
        snprintf(st->role, sizeof(st->role), "%s", res->user->role);
        snprintf(st->pwhash, sizeof(st->pwhash), "%s", res->user->pwhash);
    }
    body_string(r, "password", PASSWORD_MAX, &password); /* checked in h_login */
    /* Unknown users are verified against a dummy hash: the reply takes the same time either way. */
    a->ticket = req_suspend(r);
    app_pw_job_opts_t job = {
        .home = &r->th->tloop.super,
        .hash = st->uid != 0 ? st->pwhash : NULL,
        .password = password,
        .owner = a->keys.addr,
        .owner_max = (size_t)r->th->srv->cfg.limits.login_queue_per_addr,
        .cb = login_password_checked,
        .arg = a,
    };
    if ((rc = app_pw_submit(r->th->srv->pw, &job, &st->job)) != 0) {
        req_resume(a->ticket);
        login_attempt_end(a, 0, 0);
        if (rc == TESS_EDENIED) {
            abuse_count_queue_refusal(r->th->srv);
            send_error_retry(r, 429, "too_many_logins", "too many logins in progress from this address", 1000);
        } else {
            send_error(r, 503, "busy", "too many logins in progress; retry shortly"); /* with Retry-After */
        }
        return;
    }
    st->attempt = a;
    st->hup = hangup_watch(r->th, r->req, login_hung_up, st);
}

void h_login(tess_req_t *r)
{
    appdb_t *db = r->th->appdb;
    tess_str_t name, password;
    login_state_t *st;
    login_attempt_t *a;
    ticket_t *t;
    if (r->th->srv->cfg.format != TESS_FORMAT_EXPRESS &&
        tess_auth_keeps_sessions(tess_deploy_loop_auth(r->th->sessions))) {
        /* NextAuth's database sessions belong to its "User" rows: they are made by the app's sign-in */
        send_error(r, 409, "login_elsewhere", "sign in through the app: its NextAuth database sessions are used here");
        return;
    }
    if (body_string(r, "username", APP_NAME_MAX, &name) != 0 ||
        body_string(r, "password", PASSWORD_MAX, &password) != 0)
        return;
    st = h2o_mem_alloc_shared(&r->req->pool, sizeof(*st), login_state_dispose);
    memset(st, 0, sizeof(*st));
    st->r = r;
    r->state = st;
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        send_error(r, 503, "busy", "out of memory; retry shortly");
        return;
    }
    a->srv = r->th->srv;
    if (abuse_login_begin(r, name, &a->keys) != 0) { /* 429 sent: no lookup, no argon2 */
        free(a);
        return;
    }
    /* The ticket in a local: the lookup may answer (and free `a`) before it returns. */
    t = req_suspend(r);
    a->ticket = t;
    if (req_started(r, t, db->ops->user_by_name(db, name, login_user_found, a)) != 0)
        login_attempt_end(a, 0, 0); /* not started: no callback */
}

/* ---- POST /api/auth/logout ------------------------------------------------------------------------------ */

static void logout_done(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    tess_req_t *r = req_resume(arg);
    tess_auth_t *fallback;
    (void)s;
    (void)cookie;
    if (r == NULL)
        return;
    if (rc != 0 && rc != TESS_ENOTFOUND) {
        send_backend_error(r, rc);
        return;
    }
    if (r->state != NULL && ((logout_state_t *)r->state)->event[0] != '\0')
        bus_publish(r->th, tess_str(((logout_state_t *)r->state)->event)); /* held requests of it end */
    set_named_cookie(r, tess_auth_cookie_name(auth_of(r)), TESS_STR_LIT(""), 0);
    clear_chunks(r, auth_of(r));
    fallback = tess_deploy_loop_fallback(r->th->sessions);
    if (fallback != NULL && !tess_str_eq(tess_auth_cookie_name(fallback), tess_auth_cookie_name(auth_of(r))))
        set_named_cookie(r, tess_auth_cookie_name(fallback), TESS_STR_LIT(""), 0); /* migration */
    send_empty(r, 204);
}

/* ?everywhere=1|0: 1, 0, or -1 (400 sent). */
static int everywhere_param(tess_req_t *r)
{
    char v[8];
    int q = query_param(r, "everywhere", v, sizeof(v));
    if (q < 0 || (q > 0 && strcmp(v, "1") != 0 && strcmp(v, "0") != 0)) {
        send_error(r, 400, "bad_request", "everywhere must be 1 or 0");
        return -1;
    }
    return q > 0 && strcmp(v, "1") == 0;
}

static void logout_checked(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    tess_req_t *r = req_resume(arg);
    logout_state_t *st;
    int everywhere;
    (void)cookie;
    if (r == NULL)
        return;
    if (rc == TESS_EUNAVAIL || rc == TESS_ETIMEOUT) {
        send_backend_error(r, rc);
        return;
    }
    if (rc != 0 || s == NULL) {
        /* No valid session: logging out is already done; clear the cookie anyway. */
        logout_done(req_suspend(r), 0, NULL, TESS_STR_LIT(""));
        return;
    }
    if ((everywhere = everywhere_param(r)) < 0)
        return;
    if (everywhere && !tess_auth_can_revoke_everywhere(auth_of(r))) {
        send_error(r, 409, "revocation_unavailable",
                   "tokens cannot be revoked here: they stay valid until they expire");
        return;
    }
    st = req_state(r, sizeof(*st));
    snprintf(st->event, sizeof(st->event), "%s:%s", everywhere ? "uid" : "sid", everywhere ? s->user_id : s->id);
    if (everywhere)
        tess_auth_logout_everywhere(auth_of(r), tess_str(s->user_id), tess_now_ms(), logout_done, req_suspend(r));
    else
        tess_auth_logout_session(auth_of(r), s, logout_done, req_suspend(r));
}

void h_logout(tess_req_t *r)
{
    tess_str_t cookies;
    if (cookie_header(r, &cookies) != 0)
        return;
    tess_auth_check(auth_of(r), cookies, tess_now_ms(), logout_checked, req_suspend(r));
}
