/*
 * Unit tests of deployments (tessera/deploy.h): what tess_deploy_new refuses and why; a db deployment on a
 * SQLite file driven by poll loops (open, login and check, ping, prune, counters summed over loop parts); a
 * jwt deployment (no store); and, against a real redis-server (tests/support/redis_server.h), a cached
 * deployment with its coherence listener: caches on once it is up, application marks, invalidation of a
 * session written by another client, and the caches off when Redis dies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "exactbuf.h"
#include "redis_server.h"
#include "strfill.h"
#include "tessera/deploy.h"
#include "tessera/error.h"
#include "tessera/pollloop.h"
#include "tmpdir.h"

#define DAY_MS (INT64_C(24) * 3600 * 1000)
#define MAX_SEEN 64

/* ---- what the hooks saw ---------------------------------------------------------------------------------- */

typedef struct seen {
    char app[MAX_SEEN][72]; /* on_app_key names ("" = everything) */
    int napp;
    int coh[MAX_SEEN]; /* on_coherence values */
    int ncoh;
} seen_t;

static seen_t SEEN;

/* The case at hand, for failure messages. */
static const char *CASE = "";

static void on_app_key(void *arg, tess_str_t name)
{
    seen_t *s = arg;
    assert_true(s->napp < MAX_SEEN);
    assert_true(name.len < sizeof(s->app[0]));
    memcpy(s->app[s->napp], name.ptr != NULL ? name.ptr : "", name.len);
    s->app[s->napp++][name.len] = '\0';
}

static void on_coherence(void *arg, int up)
{
    seen_t *s = arg;
    assert_true(s->ncoh < MAX_SEEN);
    s->coh[s->ncoh++] = up;
}

/* ---- fixture --------------------------------------------------------------------------------------------- */

typedef struct fixture {
    tmpdir_t tmp;
    tess_secrets_t *secrets;
    char db_url[160]; /* sqlite:<tmp>/sessions.db */
    tess_deploy_opts_t o;
    tess_deploy_t *d;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char path[128];
    assert_non_null(f);
    tmpdir_make(&f->tmp);
    assert_int_equal(tess_secrets_parse(&f->secrets, TESS_STR_LIT("deploy-test-secret")), 0);
    snprintf(f->db_url, sizeof(f->db_url), "sqlite:%s", tmpdir_path(&f->tmp, "sessions.db", path, sizeof(path)));
    f->o.strategy = TESS_STRATEGY_DB;
    f->o.database_url = f->db_url;
    f->o.secrets = f->secrets;
    tess_session_policy_default(&f->o.policy);
    f->o.on_app_key = on_app_key;
    f->o.on_coherence = on_coherence;
    f->o.app_arg = &SEEN;
    memset(&SEEN, 0, sizeof(SEEN));
    CASE = "";
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tess_deploy_free(f->d);
    tess_secrets_free(f->secrets);
    tmpdir_remove(&f->tmp);
    free(f);
    return 0;
}

static int setup_redis(void **state)
{
    rs_fresh(&RS);
    return setup(state);
}

static int teardown_redis(void **state)
{
    teardown(state);
    rs_loop_clean(); /* the listener and every loop part left nothing on L */
    return 0;
}

static void deploy(fixture_t *f)
{
    char err[256] = "";
    if (tess_deploy_new(&f->d, &f->o, err, sizeof(err)) != 0)
        fail_msg("tess_deploy_new: %s", err);
    if (tess_deploy_migrate(f->d, err, sizeof(err)) != 0)
        fail_msg("tess_deploy_migrate: %s", err);
}

static tess_deploy_loop_t *loop_open(fixture_t *f, tess_poll_loop_t *pl)
{
    tess_deploy_loop_t *l = NULL;
    char err[256] = "";
    if (tess_deploy_loop_open(&l, f->d, tess_poll_loop_base(pl), err, sizeof(err)) != 0)
        fail_msg("tess_deploy_loop_open: %s", err);
    assert_non_null(l);
    assert_non_null(tess_deploy_loop_auth(l));
    return l;
}

/* ---- refusals -------------------------------------------------------------------------------------------- */

/* tess_deploy_new refuses `o`: TESS_EINVAL, no deployment, one line containing `want`, never `secret`. */
static void refused(const tess_deploy_opts_t *o, const char *want, const char *secret)
{
    tess_deploy_t *d = (tess_deploy_t *)&SEEN; /* must be reset to NULL */
    char err[256];
    memset(err, 'x', sizeof(err) - 1);
    err[sizeof(err) - 1] = '\0';
    int rc = tess_deploy_new(&d, o, err, sizeof(err));
    if (rc == 0)
        tess_deploy_free(d);
    if (rc != TESS_EINVAL)
        fail_msg("%s: want TESS_EINVAL ('%s'), got %d", CASE, want, rc);
    assert_null(d);
    if (strstr(err, want) == NULL)
        fail_msg("%s: reason '%s', want '%s' in it", CASE, err, want);
    assert_null(strchr(err, '\n'));
    assert_true(err[0] != 'x' && strlen(err) < sizeof(err) - 1);
    if (secret != NULL && strstr(err, secret) != NULL)
        fail_msg("%s: reason '%s' shows the password", CASE, err);
}

static void test_refuses_redis_without_url(void **state)
{
    fixture_t *f = *state;
    tess_deploy_opts_t o = f->o;
    o.strategy = TESS_STRATEGY_REDIS;
    refused(&o, "strategy 'redis' needs a Redis URL", NULL);
    o.redis_url = "";
    refused(&o, "strategy 'redis' needs a Redis URL", NULL);
    /* A redis fallback (migrating away from Redis) needs it as much. */
    o = f->o;
    o.has_fallback = 1;
    o.fallback = TESS_STRATEGY_REDIS;
    refused(&o, "needs a Redis URL", NULL);
    o.strategy = TESS_STRATEGY_JWT;
    refused(&o, "needs a Redis URL", NULL);
}

static void test_refuses_fallback_equal_or_unknown(void **state)
{
    fixture_t *f = *state;
    tess_deploy_opts_t o = f->o;
    o.has_fallback = 1;
    o.fallback = TESS_STRATEGY_DB;
    refused(&o, "the fallback strategy must differ from the strategy", NULL);
    o.strategy = o.fallback = TESS_STRATEGY_JWT;
    refused(&o, "the fallback strategy must differ from the strategy", NULL);
    o.strategy = TESS_STRATEGY_DB;
    o.fallback = (tess_strategy_t)99;
    refused(&o, "unknown strategy", NULL);
    o = f->o;
    o.strategy = (tess_strategy_t)99;
    refused(&o, "unknown strategy", NULL);
}

static void test_refuses_unknown_database_url(void **state)
{
    fixture_t *f = *state;
    const char *urls[] = {NULL, "", "mysql://u:hunter2@h/db", "file:x.db", "http://h/db",
                          /* a Redis URL is a session store, not a database (strategy 'redis' is that) */
                          "redis://:hunter2@127.0.0.1:6379", "unix:///tmp/redis.sock"};
    tess_strategy_t strategies[] = {TESS_STRATEGY_DB, TESS_STRATEGY_CACHED};
    for (size_t s = 0; s < 2; s++) {
        for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
            tess_deploy_opts_t o = f->o;
            o.strategy = strategies[s];
            o.database_url = urls[i];
            CASE = urls[i] != NULL ? urls[i] : "(null)";
            refused(&o, "unsupported database URL", "hunter2");
        }
    }
    /* A database fallback needs one too; jwt alone does not. */
    tess_deploy_opts_t o = f->o;
    o.strategy = TESS_STRATEGY_JWT;
    o.has_fallback = 1;
    o.fallback = TESS_STRATEGY_DB;
    o.database_url = "mysql://h/db";
    refused(&o, "unsupported database URL", NULL);
    o.has_fallback = 0;
    assert_int_equal(tess_deploy_new(&f->d, &o, NULL, 0), 0);
}

static void test_refuses_bad_redis_url_without_its_password(void **state)
{
    fixture_t *f = *state;
    const char *urls[] = {
        "redis://user:hunter2@127.0.0.1:notaport",
        "redis://:hunter2@127.0.0.1:99999",
        "redis://:hunter2@",
        "http://:hunter2@127.0.0.1:6379",
        "redis://:hunter2@127.0.0.1:6379/x",
        "redis://:hunter2@127.0.0.1:6379/-1",
        "redis//:hunter2@127.0.0.1",
        "unix://",
    };
    tess_strategy_t strategies[] = {TESS_STRATEGY_DB, TESS_STRATEGY_REDIS, TESS_STRATEGY_CACHED};
    for (size_t s = 0; s < 3; s++) {
        for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
            tess_deploy_opts_t o = f->o;
            o.strategy = strategies[s];
            o.redis_url = urls[i];
            CASE = urls[i];
            refused(&o, "", "hunter2");
        }
    }
}

static void test_refuses_bad_prefixes(void **state)
{
    fixture_t *f = *state;
    char p65[TESS_KEY_PREFIX_MAX + 2];
    tess_keyspace_t bad[] = {{"", NULL},         {NULL, ""},  {"same:", "same:"},
                             {"tessera:", NULL}, {"s", "s:"}, {strfill(p65, 'p', TESS_KEY_PREFIX_MAX + 1), NULL}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tess_deploy_opts_t o = f->o;
        o.keys = bad[i];
        refused(&o, "bad Redis key prefixes", NULL);
        o.redis_url = "redis://127.0.0.1:6379";
        refused(&o, "bad Redis key prefixes", NULL);
    }
}

static void test_refuses_missing_secrets_and_long_cookie_name(void **state)
{
    fixture_t *f = *state;
    char name[80];
    tess_deploy_opts_t o = f->o;
    o.secrets = NULL;
    refused(&o, "no secrets", NULL);
    o.strategy = TESS_STRATEGY_JWT;
    refused(&o, "no secrets", NULL);
    o = f->o;
    o.cookie_name = strfill(name, 'c', 64);
    refused(&o, "cookie name longer than 63 bytes", NULL);
    o.cookie_name = strfill(name, 'c', 63);
    assert_int_equal(tess_deploy_new(&f->d, &o, NULL, 0), 0);
}

/* The reason fits any buffer: truncated, terminated, nothing written past it. */
static void test_reason_truncated_to_a_small_buffer(void **state)
{
    fixture_t *f = *state;
    tess_deploy_opts_t o = f->o;
    exactbuf_t b = {0};
    tess_deploy_t *d = NULL;
    o.strategy = TESS_STRATEGY_REDIS;
    exactbuf_alloc(&b, 8);
    assert_int_equal(tess_deploy_new(&d, &o, b.p, 8), TESS_EINVAL);
    assert_string_equal(b.p, "strateg");
    o.redis_url = "redis://:hunter2@h:0x";
    assert_int_equal(tess_deploy_new(&d, &o, b.p, 8), TESS_EINVAL);
    assert_true(strlen(b.p) < 8);
    exactbuf_free(&b);
    assert_null(d);
}

/* Coherent: kept so through Redis, or (cached) through the session table's triggers unless opted out. */
static void test_coherent_means_a_listener(void **state)
{
    fixture_t *f = *state;
    struct {
        tess_strategy_t s;
        const char *redis;
        int no_triggers;
        int coherent;
    } rows[] = {
        {TESS_STRATEGY_DB, NULL, 0, 0},
        {TESS_STRATEGY_DB, "", 0, 0},
        {TESS_STRATEGY_CACHED, NULL, 0, 1},
        {TESS_STRATEGY_CACHED, NULL, 1, 0},
        {TESS_STRATEGY_JWT, NULL, 0, 0},
        {TESS_STRATEGY_DB, "redis://127.0.0.1:1", 0, 1},
        {TESS_STRATEGY_CACHED, "redis://127.0.0.1:1", 1, 1},
        {TESS_STRATEGY_JWT, "unix:///nonexistent/redis.sock", 0, 1},
        {TESS_STRATEGY_REDIS, "redis://127.0.0.1:1", 0, 1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        tess_deploy_opts_t o = f->o;
        tess_deploy_t *d = NULL;
        tess_deploy_stats_t st;
        char err[256] = "";
        o.strategy = rows[i].s;
        o.redis_url = rows[i].redis;
        o.no_session_triggers = rows[i].no_triggers;
        if (tess_deploy_new(&d, &o, err, sizeof(err)) != 0)
            fail_msg("row %zu: %s", i, err);
        assert_int_equal(tess_deploy_coherent(d), rows[i].coherent);
        tess_deploy_stats(d, &st);
        assert_int_equal(st.coherence, -1); /* nothing listens before tess_deploy_listen */
        assert_int_equal(st.has_revocation, rows[i].redis != NULL && rows[i].redis[0] != '\0');
        assert_int_equal(st.has_cache, rows[i].s == TESS_STRATEGY_CACHED);
        tess_deploy_free(d);
    }
}

/* ---- a db deployment on SQLite ---------------------------------------------------------------------------- */

typedef struct auth_res {
    int calls;
    int rc;
    char user[TESS_USER_ID_MAX + 1];
    char sid[TESS_SID_MAX + 1];
    char cookie[512];
} auth_res_t;

static void on_auth(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    auth_res_t *r = arg;
    r->calls++;
    r->rc = rc;
    if (s != NULL) {
        snprintf(r->user, sizeof(r->user), "%s", s->user_id);
        snprintf(r->sid, sizeof(r->sid), "%s", s->id);
    }
    if (cookie.len > 0) {
        assert_true(cookie.len < sizeof(r->cookie));
        memcpy(r->cookie, cookie.ptr, cookie.len);
        r->cookie[cookie.len] = '\0';
    }
}

static int auth_done(void *arg)
{
    return ((auth_res_t *)arg)->calls > 0;
}

static auth_res_t login_at(tess_poll_loop_t *pl, tess_deploy_loop_t *l, const char *user, int64_t now)
{
    auth_res_t r = {0};
    tess_auth_login(tess_deploy_loop_auth(l), tess_str(user), TESS_STR_LIT("visitor"), now, on_auth, &r);
    rs_run_until(pl, auth_done, &r, RS_WAIT_MS, "login");
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, 0);
    assert_true(strlen(r.cookie) > 0);
    return r;
}

static auth_res_t login(tess_poll_loop_t *pl, tess_deploy_loop_t *l, const char *user)
{
    return login_at(pl, l, user, tess_now_ms());
}

/* tess_auth_check with "<cookie name>=<value>"; the callback's result. */
static auth_res_t check(tess_poll_loop_t *pl, tess_deploy_loop_t *l, const char *cookie)
{
    auth_res_t r = {0};
    char header[600];
    tess_str_t name = tess_auth_cookie_name(tess_deploy_loop_auth(l));
    snprintf(header, sizeof(header), "%.*s=%s", (int)name.len, name.ptr, cookie);
    tess_auth_check(tess_deploy_loop_auth(l), tess_str(header), tess_now_ms(), on_auth, &r);
    rs_run_until(pl, auth_done, &r, RS_WAIT_MS, "check");
    assert_int_equal(r.calls, 1);
    return r;
}

typedef struct store_res {
    int calls;
    int rc;
} store_res_t;

static void on_store(void *arg, int rc, const tess_session_t *s)
{
    store_res_t *r = arg;
    (void)s;
    r->calls++;
    r->rc = rc;
}

static int store_done_(void *arg)
{
    return ((store_res_t *)arg)->calls > 0;
}

static int ping_rc(tess_poll_loop_t *pl, tess_deploy_loop_t *l)
{
    store_res_t r = {0};
    assert_int_equal(tess_deploy_loop_ping(l, on_store, &r), 0);
    rs_run_until(pl, store_done_, &r, RS_WAIT_MS, "ping");
    assert_int_equal(r.calls, 1);
    return r.rc;
}

static int prune_rc(tess_poll_loop_t *pl, tess_deploy_loop_t *l, int64_t now)
{
    store_res_t r = {0};
    assert_int_equal(tess_deploy_loop_prune(l, now, 100, on_store, &r), 0);
    rs_run_until(pl, store_done_, &r, RS_WAIT_MS, "prune");
    assert_int_equal(r.calls, 1);
    return r.rc;
}

static void test_db_login_check_ping(void **state)
{
    fixture_t *f = *state;
    tess_poll_loop_t *pl = tess_poll_loop_new();
    tess_deploy_loop_t *l;
    auth_res_t in, r;
    assert_non_null(pl);
    deploy(f);
    l = loop_open(f, pl);
    assert_null(tess_deploy_loop_fallback(l));
    assert_int_equal(tess_auth_keeps_sessions(tess_deploy_loop_auth(l)), 1);
    assert_true(tess_str_eq(tess_auth_cookie_name(tess_deploy_loop_auth(l)), TESS_STR_LIT("connect.sid")));
    assert_int_equal(ping_rc(pl, l), 0);

    in = login(pl, l, "42");
    r = check(pl, l, in.cookie);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.user, "42");
    assert_string_equal(r.sid, in.sid);
    /* A forged cookie is refused before the store. */
    r = check(pl, l, "s%3Anot-a-session.c2lnbmF0dXJl");
    assert_int_equal(r.rc, TESS_EDENIED);
    /* Logged out: the cookie no longer checks. */
    {
        auth_res_t out = {0};
        tess_auth_logout(tess_deploy_loop_auth(l), tess_str(in.sid), on_auth, &out);
        rs_run_until(pl, auth_done, &out, RS_WAIT_MS, "logout");
        assert_int_equal(out.rc, 0);
    }
    assert_int_equal(check(pl, l, in.cookie).rc, TESS_EDENIED);

    tess_deploy_loop_close(l);
    assert_int_equal(tess_poll_loop_live_ios(pl), 0);
    assert_int_equal(tess_poll_loop_armed_timers(pl), 0);
    tess_poll_loop_free(pl);
}

static void test_db_prune_removes_the_expired_session(void **state)
{
    fixture_t *f = *state;
    tess_poll_loop_t *pl = tess_poll_loop_new();
    tess_deploy_loop_t *l;
    auth_res_t old, fresh;
    assert_non_null(pl);
    deploy(f);
    l = loop_open(f, pl);
    /* Logged in 31 days ago: past the 30-day lifetime. */
    old = login_at(pl, l, "1", tess_now_ms() - 31 * DAY_MS);
    fresh = login(pl, l, "2");
    assert_int_equal(check(pl, l, old.cookie).rc, TESS_EDENIED);
    assert_int_equal(prune_rc(pl, l, tess_now_ms()), 1);
    assert_int_equal(prune_rc(pl, l, tess_now_ms()), 0); /* nothing left to prune */
    assert_int_equal(check(pl, l, fresh.cookie).rc, 0);  /* the live one stays */
    /* Pruning "in 31 days" takes the fresh one too. */
    assert_int_equal(prune_rc(pl, l, tess_now_ms() + 31 * DAY_MS), 1);
    tess_deploy_loop_close(l);
    tess_poll_loop_free(pl);
}

static void test_db_stats_sum_the_loop_parts(void **state)
{
    fixture_t *f = *state;
    tess_poll_loop_t *pa = tess_poll_loop_new(), *pb = tess_poll_loop_new();
    tess_deploy_loop_t *la, *lb;
    tess_deploy_stats_t st;
    tess_auth_stats_t a, b;
    auth_res_t in;
    assert_non_null(pa);
    assert_non_null(pb);
    deploy(f);
    la = loop_open(f, pa);
    lb = loop_open(f, pb);
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.auth.checks, 0);
    assert_int_equal(st.has_cache, 0);
    assert_int_equal(st.has_revocation, 0);
    assert_int_equal(st.has_l2, 0);
    assert_int_equal(st.coherence, -1);

    in = login(pa, la, "7");                          /* A: 1 write */
    assert_int_equal(check(pa, la, in.cookie).rc, 0); /* A: 1 check, 1 get */
    for (int i = 0; i < 3; i++)                       /* B (same file): 3 checks, 3 gets */
        assert_int_equal(check(pb, lb, in.cookie).rc, 0);
    assert_int_equal(check(pb, lb, "s%3Ax.y").rc, TESS_EDENIED); /* B: 1 check refused early */

    tess_auth_get_stats(tess_deploy_loop_auth(la), &a);
    tess_auth_get_stats(tess_deploy_loop_auth(lb), &b);
    assert_int_equal(a.checks, 1);
    assert_int_equal(b.checks, 4);
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.auth.checks, a.checks + b.checks);
    assert_int_equal(st.auth.rejected_early, a.rejected_early + b.rejected_early);
    assert_int_equal(st.auth.rejected_early, 1);
    assert_int_equal(st.auth.store_lookups, a.store_lookups + b.store_lookups);
    assert_int_equal(st.auth.store_lookups, 4);
    assert_int_equal(st.store.gets, 4);
    assert_int_equal(st.store.writes, 1);
    assert_int_equal(st.store.errors, 0);

    /* B closed: only A counts. */
    tess_deploy_loop_close(lb);
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.auth.checks, 1);
    assert_int_equal(st.auth.rejected_early, 0);
    assert_int_equal(st.store.gets, 1);
    assert_int_equal(st.store.writes, 1);
    tess_deploy_loop_close(la);
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.auth.checks, 0);
    assert_int_equal(st.store.writes, 0);
    tess_poll_loop_free(pa);
    tess_poll_loop_free(pb);
}

static void test_jwt_keeps_no_store(void **state)
{
    fixture_t *f = *state;
    tess_poll_loop_t *pl = tess_poll_loop_new();
    tess_deploy_loop_t *l;
    tess_deploy_stats_t st;
    auth_res_t in, r;
    char err[256] = "";
    assert_non_null(pl);
    f->o.strategy = TESS_STRATEGY_JWT;
    f->o.database_url = NULL;
    deploy(f);
    assert_int_equal(tess_deploy_coherent(f->d), 0);
    assert_int_equal(tess_deploy_listen(f->d, tess_poll_loop_base(pl), err, sizeof(err)), 0); /* no Redis: no-op */
    l = loop_open(f, pl);
    assert_int_equal(tess_auth_keeps_sessions(tess_deploy_loop_auth(l)), 0);
    assert_true(tess_str_eq(tess_auth_cookie_name(tess_deploy_loop_auth(l)), TESS_STR_LIT("session-token")));
    assert_int_equal(ping_rc(pl, l), 0);
    assert_int_equal(prune_rc(pl, l, tess_now_ms()), 0);
    in = login(pl, l, "9");
    r = check(pl, l, in.cookie);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.user, "9");
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.auth.checks, 1);
    assert_int_equal(st.auth.store_lookups, 0);
    assert_int_equal(st.store.gets, 0);
    assert_int_equal(st.store.writes, 0);
    assert_int_equal(st.coherence, -1);
    assert_int_equal(st.has_cache, 0);
    assert_int_equal(st.has_revocation, 0);
    tess_deploy_loop_close(l);
    assert_int_equal(tess_poll_loop_live_ios(pl), 0);
    tess_poll_loop_free(pl);
}

/* Without Redis, with a database: tokens are revoked through the database's table (tessera/revoke.h). */
static void test_jwt_revocation_in_the_database(void **state)
{
    fixture_t *f = *state;
    tess_poll_loop_t *pl = tess_poll_loop_new();
    tess_deploy_loop_t *l;
    auth_res_t in, other, r, out = {0};
    tess_session_t s;
    char err[256] = "";
    assert_non_null(pl);
    f->o.strategy = TESS_STRATEGY_JWT;
    deploy(f);
    assert_int_equal(tess_deploy_coherent(f->d), 0);
    assert_int_equal(tess_deploy_listen(f->d, tess_poll_loop_base(pl), err, sizeof(err)), 0);
    l = loop_open(f, pl);
    assert_int_equal(tess_auth_can_revoke_everywhere(tess_deploy_loop_auth(l)), 1);
    assert_int_equal(ping_rc(pl, l), 0);
    in = login(pl, l, "9");
    other = login_at(pl, l, "9", tess_now_ms() - 2000);
    r = check(pl, l, in.cookie);
    assert_int_equal(r.rc, 0);
    memset(&s, 0, sizeof(s));
    snprintf(s.id, sizeof(s.id), "%s", r.sid);
    snprintf(s.user_id, sizeof(s.user_id), "%s", r.user);
    s.expires_ms = tess_now_ms() + 3600 * 1000;
    tess_auth_logout_session(tess_deploy_loop_auth(l), &s, on_auth, &out);
    rs_run_until(pl, auth_done, &out, RS_WAIT_MS, "logout");
    assert_int_equal(out.rc, 0);
    assert_int_equal(check(pl, l, in.cookie).rc, TESS_EDENIED);
    assert_int_equal(check(pl, l, other.cookie).rc, 0);
    /* the listener stopped: the mirror is no longer known to be current, so checks and /readyz fail closed */
    tess_deploy_unlisten(f->d);
    assert_int_equal(check(pl, l, other.cookie).rc, TESS_EUNAVAIL);
    assert_int_equal(ping_rc(pl, l), TESS_EUNAVAIL);
    tess_deploy_loop_close(l);
    assert_int_equal(tess_poll_loop_live_ios(pl), 0);
    tess_poll_loop_free(pl);
}

/* ---- a cached deployment with Redis ----------------------------------------------------------------------- */

typedef struct coh_wait {
    tess_deploy_t *d;
    int want; /* tess_deploy_stats().coherence */
} coh_wait_t;

static int coherence_reached(void *arg)
{
    coh_wait_t *w = arg;
    tess_deploy_stats_t st;
    tess_deploy_stats(w->d, &st);
    return st.coherence == w->want;
}

static void wait_coherence(tess_deploy_t *d, int want)
{
    coh_wait_t w = {d, want};
    rs_run_until(L, coherence_reached, &w, RS_WAIT_MS, want ? "coherence up" : "coherence down");
}

typedef struct evict_wait {
    tess_deploy_t *d;
    uint64_t invalidations; /* before */
} evict_wait_t;

/* The near-cache counted one more invalidation and holds nothing. */
static int evicted(void *arg)
{
    evict_wait_t *w = arg;
    tess_deploy_stats_t st;
    tess_deploy_stats(w->d, &st);
    return st.cache.invalidations > w->invalidations && st.cache.entries == 0;
}

static int app_seen(const char *name)
{
    for (int i = 0; i < SEEN.napp; i++) {
        if (strcmp(SEEN.app[i], name) == 0)
            return 1;
    }
    return 0;
}

static int app_seen_pred(void *arg)
{
    return app_seen(arg);
}

/*
 * Publishes a fresh mark and waits for it: invalidations reach the listener in the order Redis made them, so
 * once it is heard every invalidation of an earlier write (ours on this loop, or the listener's epoch bump)
 * has been applied.
 */
static void barrier(tess_deploy_loop_t *l)
{
    static int n;
    char name[32];
    snprintf(name, sizeof(name), "barrier-%d", ++n);
    tess_deploy_loop_publish(l, tess_str(name));
    rs_run_until(L, app_seen_pred, name, RS_WAIT_MS, name);
}

static tess_deploy_loop_t *cached_up(fixture_t *f)
{
    tess_deploy_loop_t *l;
    tess_deploy_stats_t st;
    char err[256] = "";
    f->o.strategy = TESS_STRATEGY_CACHED;
    f->o.redis_url = RS.url;
    deploy(f);
    assert_int_equal(tess_deploy_coherent(f->d), 1);
    l = loop_open(f, L);
    if (tess_deploy_listen(f->d, tess_poll_loop_base(L), err, sizeof(err)) != 0)
        fail_msg("tess_deploy_listen: %s", err);
    tess_deploy_stats(f->d, &st);
    assert_true(st.coherence == 0 || st.coherence == 1);
    wait_coherence(f->d, 1);
    assert_true(SEEN.ncoh >= 1);
    assert_int_equal(SEEN.coh[SEEN.ncoh - 1], 1);
    barrier(l);
    return l;
}

static void test_cached_caches_on_once_the_listener_is_up(void **state)
{
    fixture_t *f = *state;
    tess_deploy_loop_t *l;
    tess_deploy_stats_t st;
    auth_res_t in;
    char err[256] = "";
    f->o.strategy = TESS_STRATEGY_CACHED;
    f->o.redis_url = RS.url;
    deploy(f);
    l = loop_open(f, L);
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.has_cache, 1);
    assert_int_equal(st.has_revocation, 1);
    assert_int_equal(st.has_l2, 1);
    assert_int_equal(st.coherence, -1);
    /* No listener: sessions check (from the store) but nothing is cached. */
    in = login(L, l, "5");
    assert_int_equal(check(L, l, in.cookie).rc, 0);
    assert_int_equal(check(L, l, in.cookie).rc, 0);
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.cache.entries, 0);
    assert_int_equal(st.cache.hits, 0);
    assert_int_equal(SEEN.ncoh, 0);

    if (tess_deploy_listen(f->d, tess_poll_loop_base(L), err, sizeof(err)) != 0)
        fail_msg("tess_deploy_listen: %s", err);
    wait_coherence(f->d, 1);
    assert_int_equal(SEEN.coh[SEEN.ncoh - 1], 1);
    barrier(l); /* the listener's epoch bump is applied */
    /* Up: a check caches the session (a copy the epoch bump made stale is read again, once). */
    assert_int_equal(check(L, l, in.cookie).rc, 0);
    barrier(l);
    assert_int_equal(check(L, l, in.cookie).rc, 0);
    barrier(l);
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.cache.entries, 1);
    uint64_t hits = st.cache.hits;
    assert_int_equal(check(L, l, in.cookie).rc, 0);
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.cache.hits, hits + 1);
    tess_deploy_loop_close(l);
}

static void test_cached_publish_reaches_on_app_key(void **state)
{
    fixture_t *f = *state;
    tess_deploy_loop_t *l = cached_up(f);
    assert_false(app_seen("meta:7"));
    tess_deploy_loop_publish(l, TESS_STR_LIT("meta:7"));
    rs_run_until(L, app_seen_pred, "meta:7", RS_WAIT_MS, "on_app_key(meta:7)");
    char v[32];
    assert_int_equal(rs_cmd_str(&RS, v, sizeof(v), "GET tessera:app:meta:7"), 1);
    assert_string_equal(v, "1");
    /* Names out of bounds are not sent. */
    char name[80];
    long long before = rs_cmd_int(&RS, "DBSIZE");
    tess_deploy_loop_publish(l, tess_strn(NULL, 0));
    tess_deploy_loop_publish(l, tess_str(strfill(name, 'n', 65)));
    barrier(l);
    assert_int_equal(rs_cmd_int(&RS, "DBSIZE"), before + 1); /* the barrier's key only */
    assert_false(app_seen(name));
    tess_deploy_loop_close(l);
}

static void test_cached_foreign_write_evicts_the_session(void **state)
{
    fixture_t *f = *state;
    tess_deploy_loop_t *l = cached_up(f);
    tess_deploy_stats_t st;
    auth_res_t in = login(L, l, "6");
    assert_int_equal(check(L, l, in.cookie).rc, 0);
    barrier(l);
    assert_int_equal(check(L, l, in.cookie).rc, 0);
    barrier(l);
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.cache.entries, 1);

    /* Another client writes the session's key: the near-cache lets the copy go. */
    rs_cmd(&RS, "SET session:%s %s", in.sid, "{\"cookie\":{}}");
    evict_wait_t w = {f->d, st.cache.invalidations};
    rs_run_until(L, evicted, &w, RS_WAIT_MS, "near-cache eviction of the session");
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.cache.entries, 0);
    tess_deploy_loop_close(l);
}

static void test_cached_redis_death_turns_coherence_off(void **state)
{
    fixture_t *f = *state;
    tess_deploy_loop_t *l = cached_up(f);
    tess_deploy_stats_t st;
    auth_res_t in = login(L, l, "8");
    int ncoh;
    assert_int_equal(check(L, l, in.cookie).rc, 0);
    barrier(l);
    assert_int_equal(check(L, l, in.cookie).rc, 0);
    barrier(l);
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.cache.entries, 1);
    ncoh = SEEN.ncoh;

    rs_kill(&RS);
    wait_coherence(f->d, 0);
    assert_int_equal(SEEN.ncoh, ncoh + 1);
    assert_int_equal(SEEN.coh[SEEN.ncoh - 1], 0);
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.cache.entries, 0); /* flushed */
    /* The truth is in SQLite: the session still checks, and nothing is cached meanwhile. */
    assert_int_equal(check(L, l, in.cookie).rc, 0);
    tess_deploy_stats(f->d, &st);
    assert_int_equal(st.cache.entries, 0);
    tess_deploy_loop_close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refuses_redis_without_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_fallback_equal_or_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_unknown_database_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_bad_redis_url_without_its_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_bad_prefixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_missing_secrets_and_long_cookie_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reason_truncated_to_a_small_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coherent_means_a_listener, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_login_check_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_prune_removes_the_expired_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_stats_sum_the_loop_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jwt_keeps_no_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jwt_revocation_in_the_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cached_caches_on_once_the_listener_is_up, setup_redis, teardown_redis),
        cmocka_unit_test_setup_teardown(test_cached_publish_reaches_on_app_key, setup_redis, teardown_redis),
        cmocka_unit_test_setup_teardown(test_cached_foreign_write_evicts_the_session, setup_redis, teardown_redis),
        cmocka_unit_test_setup_teardown(test_cached_redis_death_turns_coherence_off, setup_redis, teardown_redis),
    };
    return cmocka_run_group_tests(tests, rs_group_setup, rs_group_teardown);
}
