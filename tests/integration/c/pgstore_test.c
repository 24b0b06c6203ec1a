/*
 * Integration tests of the PostgreSQL session store (tessera/postgres.h) against a real PostgreSQL 15,
 * driven by a poll() loop (tessera/pollloop.h). Run by tests/integration/test_pg_store.py, which starts the server.
 *
 * Environment:
 *   TESS_PG_URL      conninfo of the test database (required; the tests are skipped without it)
 *   TESS_PG_PID      postmaster pid, for the SIGSTOP test (skipped without it)
 *   TESS_CTL_OUT/IN  fds of a control pipe to the driver: we write "kill\n" / "start\n", it answers
 *                    "ok [pid]\n" once done (for the restart test; skipped without them)
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "pg_admin.h"
#include "store/postgres_batch.h"
#include "tessera/pollloop.h"
#include "tessera/error.h"
#include "tessera/nextauth.h"
#include "tessera/postgres.h"
#include "tessera/store.h"

#define HOUR INT64_C(3600000)
#define TIMEOUT_MS 400 /* the store's per-query timeout in these tests */
#define WAIT_MS 5000   /* deadline for anything that should complete */

static const char *pg_url;
static pid_t pg_pid;
static int ctl_out = -1, ctl_in = -1;
static tess_poll_loop_t *L;
static tess_store_t *S;

/* ---- helpers ---------------------------------------------------------------------------------------- */

typedef struct result {
    int done;            /* callback invocations */
    int rc;              /* last rc */
    int64_t at;          /* tess_mono_ms() of the last callback */
    tess_session_t sess; /* last session (copied) */
} result_t;

static void on_result(void *arg, int rc, const tess_session_t *sess)
{
    result_t *r = arg;
    r->done++;
    r->rc = rc;
    r->at = tess_mono_ms();
    tess_session_clear(&r->sess);
    if (sess != NULL)
        assert_int_equal(tess_session_copy(&r->sess, sess), 0);
}

static int is_done(void *arg)
{
    return ((result_t *)arg)->done > 0;
}

static int wait_result(result_t *r)
{
    assert_true(tess_poll_loop_run_until(L, is_done, r, WAIT_MS));
    assert_int_equal(r->done, 1);
    return r->rc;
}

static int get_rc(const char *sid, result_t *r)
{
    tess_session_clear(&r->sess);
    memset(r, 0, sizeof(*r));
    assert_int_equal(tess_store_get(S, tess_str(sid), on_result, r), 0);
    return wait_result(r);
}

static int set_rc(const tess_session_t *s)
{
    result_t r = {0};
    assert_int_equal(tess_store_set(S, s, on_result, &r), 0);
    return wait_result(&r);
}

static int touch_rc(const char *sid, int64_t exp)
{
    result_t r = {0};
    assert_int_equal(tess_store_touch(S, tess_str(sid), exp, on_result, &r), 0);
    return wait_result(&r);
}

static int destroy_rc(const char *sid)
{
    result_t r = {0};
    assert_int_equal(tess_store_destroy(S, tess_str(sid), on_result, &r), 0);
    return wait_result(&r);
}

static int destroy_user_rc(const char *uid)
{
    result_t r = {0};
    assert_int_equal(tess_store_destroy_user(S, tess_str(uid), on_result, &r), 0);
    return wait_result(&r);
}

static int ping_rc(tess_store_t *st)
{
    result_t r = {0};
    assert_int_equal(tess_store_ping(st, on_result, &r), 0);
    return wait_result(&r);
}

static void make_session(tess_session_t *s, const char *user, int64_t now)
{
    tess_session_policy_t p;
    tess_session_policy_default(&p);
    assert_int_equal(tess_session_init(s, &p, tess_str(user), TESS_STR_LIT("visitor"), now), 0);
}

static int store_connected(void *arg)
{
    return tess_pgstore_connected(arg);
}

/* Retries a ping until the backend answers; returns the ms it took from `t0`, or -1 after `budget_ms`. */
static int64_t ms_until_ping_ok(int64_t t0, int64_t budget_ms)
{
    while (tess_mono_ms() - t0 < budget_ms) {
        result_t r = {0};
        assert_int_equal(tess_store_ping(S, on_result, &r), 0);
        if (wait_result(&r) == 0)
            return r.at - t0;
        tess_poll_loop_run_until(L, NULL, NULL, 10);
    }
    return -1;
}

/* The postmaster and its children (backends, checkpointer, ...): "the server" for SIGSTOP/SIGCONT. */
static int server_pids(pid_t *out, int cap)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    out[n++] = pg_pid;
    while (d != NULL && (e = readdir(d)) != NULL && n < cap) {
        char path[300], buf[512], *p;
        FILE *f;
        long ppid = 0;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL &&
            sscanf(p + 1, " %*c %ld", &ppid) == 1 && ppid == pg_pid)
            out[n++] = (pid_t)atol(e->d_name);
        fclose(f);
    }
    if (d != NULL)
        closedir(d);
    return n;
}

static pid_t stopped[256];
static int n_stopped;

static void server_cont(void)
{
    for (int i = 0; i < n_stopped; ++i)
        kill(stopped[i], SIGCONT);
    n_stopped = 0;
}

static void server_stop(void)
{
    n_stopped = server_pids(stopped, 256);
    for (int i = 0; i < n_stopped; ++i)
        kill(stopped[i], SIGSTOP);
}

/* Reads the driver's answer line ("ok [pid]"); fails the test on anything else. */
static void ctl_read_reply(const char *cmd)
{
    char line[128];
    size_t n = 0;
    while (n + 1 < sizeof(line)) {
        ssize_t r = read(ctl_in, line + n, 1);
        assert_true(r == 1);
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    if (strncmp(line, "ok", 2) != 0)
        fail_msg("driver answered %s to %s", line, cmd);
    if (line[2] == ' ')
        pg_pid = (pid_t)atol(line + 3);
}

static void ctl_send(const char *cmd)
{
    assert_true(write(ctl_out, cmd, strlen(cmd)) == (ssize_t)strlen(cmd));
    assert_true(write(ctl_out, "\n", 1) == 1);
}

/* Sends a control command to the driver and waits (blocking) for its answer. */
static void ctl(const char *cmd)
{
    ctl_send(cmd);
    ctl_read_reply(cmd);
}

/* The answer to an asynchronous command, watched on the loop while the store keeps running. */
typedef struct ctl_wait {
    const char *cmd; /* the command sent */
    int64_t at;      /* tess_mono_ms() when the answer arrived; 0 before */
} ctl_wait_t;

static void on_ctl_readable(void *arg, int events)
{
    ctl_wait_t *w = arg;
    (void)events;
    w->at = tess_mono_ms();
    ctl_read_reply(w->cmd); /* the driver writes the whole line at once */
}

static int ctl_answered(void *arg)
{
    return ((ctl_wait_t *)arg)->at != 0;
}

/* ---- fixtures --------------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    char err[512];
    tess_pg_opts_t opts = {.conninfo = pg_url, .timeout_ms = TIMEOUT_MS};
    (void)state;

    if (tess_pgstore_migrate(pg_url, err, sizeof(err)) != 0) {
        fprintf(stderr, "migrate: %s\n", err);
        return -1;
    }
    /* twice: idempotent */
    if (tess_pgstore_migrate(pg_url, err, sizeof(err)) != 0) {
        fprintf(stderr, "migrate again: %s\n", err);
        return -1;
    }
    admin = PQconnectdb(pg_url);
    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "admin connection: %s\n", PQerrorMessage(admin));
        return -1;
    }
    PQclear(PQexec(admin, "SET client_min_messages = warning"));
    L = tess_poll_loop_new();
    if (tess_pgstore_open(&S, tess_poll_loop_base(L), &opts, err, sizeof(err)) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return -1;
    }
    if (!tess_poll_loop_run_until(L, store_connected, S, WAIT_MS)) {
        fprintf(stderr, "store did not connect\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    server_cont();
    tess_store_close(S);
    S = NULL;
    if (L != NULL) {
        assert_int_equal(tess_poll_loop_live_ios(L), 0);
        assert_int_equal(tess_poll_loop_armed_timers(L), 0);
    }
    tess_poll_loop_free(L);
    PQfinish(admin);
    return 0;
}

static int test_setup(void **state)
{
    (void)state;
    if (!tess_poll_loop_run_until(L, store_connected, S, WAIT_MS))
        return -1;
    sql("TRUNCATE session");
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------------------ */

static void test_schema(void **state)
{
    (void)state;
    assert_int_equal(sql_int("SELECT count(*) FROM pg_indexes WHERE tablename = 'session' AND "
                             "indexname IN ('session_pkey', 'IDX_session_expire', 'session_user_id_idx')"),
                     3);
    assert_int_equal(sql_int("SELECT count(*) FROM information_schema.columns WHERE table_name = 'session' AND "
                             "((column_name = 'sid' AND data_type = 'character varying') OR "
                             "(column_name = 'sess' AND data_type = 'json') OR "
                             "(column_name = 'expire' AND data_type = 'timestamp without time zone'))"),
                     3);
    assert_int_equal(ping_rc(S), 0);
}

static void test_set_get_roundtrip(void **state)
{
    tess_session_t s;
    result_t r = {0};
    int64_t now = tess_now_ms();
    (void)state;

    make_session(&s, "user-1", now);
    s.expires_ms = now + 2 * HOUR;
    assert_int_equal(set_rc(&s), 0);
    assert_int_equal(get_rc(s.id, &r), 0);
    assert_string_equal(r.sess.id, s.id);
    assert_string_equal(r.sess.user_id, "user-1");
    assert_string_equal(r.sess.role, "visitor");
    assert_int_equal(r.sess.created_ms, s.created_ms);
    assert_int_equal(r.sess.absolute_expires_ms, s.absolute_expires_ms);
    assert_int_equal(r.sess.expires_ms, s.expires_ms); /* ms precision through timestamp(6) */
    assert_int_equal(sql_int("SELECT count(*) FROM session WHERE sess->>'userId' = 'user-1' AND "
                             "sess->'cookie'->>'httpOnly' = 'true'"),
                     1);
    /* replace (set is an upsert) */
    s.expires_ms = now + 3 * HOUR;
    assert_int_equal(set_rc(&s), 0);
    assert_int_equal(get_rc(s.id, &r), 0);
    assert_int_equal(r.sess.expires_ms, s.expires_ms);
    assert_int_equal(sql_int("SELECT count(*) FROM session"), 1);

    /* unknown and expired ids */
    assert_int_equal(get_rc("no-such-session", &r), TESS_ENOTFOUND);
    sql("INSERT INTO session VALUES ('expired-1', '{\"cookie\":{},\"userId\":\"u\"}', now() - interval '1 second')");
    assert_int_equal(get_rc("expired-1", &r), TESS_ENOTFOUND);
    /* a broken document is an error, not a session */
    sql("INSERT INTO session VALUES ('broken-1', '[1,2]', now() + interval '1 hour')");
    assert_int_equal(get_rc("broken-1", &r), TESS_EBADFMT);
    assert_true(S->stats.errors > 0);
    /* bad arguments are refused up front */
    assert_int_equal(tess_store_get(S, tess_strn("", 0), on_result, &r), TESS_EINVAL);
    tess_session_clear(&r.sess);
    tess_session_clear(&s);
}

/* A row as connect-pg-simple writes it for an express-session app: integer userId, ISO cookie.expires. */
static void test_express_session_row(void **state)
{
    result_t r = {0};
    int64_t expire_ms;
    (void)state;

    sql("INSERT INTO session (sid, sess, expire) VALUES ('kA8uJq0dT7pX2mZ9vC4bN6yL1rW3sE5h', "
        "'{\"cookie\":{\"originalMaxAge\":2592000000,\"expires\":\"2031-01-01T00:00:00.000Z\",\"secure\":false,"
        "\"httpOnly\":true,\"path\":\"/\",\"sameSite\":\"lax\"},\"userId\":42,\"cart\":{\"items\":[1,2]}}', "
        "to_timestamp(extract(epoch from now()) + 86400))");
    expire_ms = sql_int("SELECT (extract(epoch FROM expire::timestamptz) * 1000)::bigint FROM session");
    assert_int_equal(get_rc("kA8uJq0dT7pX2mZ9vC4bN6yL1rW3sE5h", &r), 0);
    assert_string_equal(r.sess.user_id, "42");
    assert_int_equal(r.sess.expires_ms, expire_ms); /* the column wins over cookie.expires */
    assert_non_null(r.sess.extra_json);
    assert_non_null(strstr(r.sess.extra_json, "\"cart\""));
    tess_session_clear(&r.sess);
}

static void test_touch_never_resurrects(void **state)
{
    tess_session_t s;
    result_t r = {0};
    int64_t now = tess_now_ms();
    (void)state;

    make_session(&s, "user-2", now);
    s.expires_ms = now + HOUR;
    assert_int_equal(set_rc(&s), 0);
    assert_int_equal(touch_rc(s.id, now + 5 * HOUR), 0);
    assert_int_equal(get_rc(s.id, &r), 0);
    assert_int_equal(r.sess.expires_ms, now + 5 * HOUR);
    assert_int_equal(destroy_rc(s.id), 0);
    assert_int_equal(destroy_rc(s.id), 0); /* absent: still 0 */
    assert_int_equal(touch_rc(s.id, now + 6 * HOUR), TESS_ENOTFOUND);
    assert_int_equal(sql_int("SELECT count(*) FROM session"), 0);
    assert_int_equal(get_rc(s.id, &r), TESS_ENOTFOUND);

    /* an expired row stays expired */
    sql("INSERT INTO session VALUES ('expired-2', '{\"cookie\":{},\"userId\":\"u\"}', now() - interval '1 minute')");
    assert_int_equal(touch_rc("expired-2", now + HOUR), TESS_ENOTFOUND);
    assert_int_equal(sql_int("SELECT count(*) FROM session WHERE sid = 'expired-2' AND expire < now()"), 1);
    tess_session_clear(&r.sess);
    tess_session_clear(&s);
}

static void test_destroy_user(void **state)
{
    tess_session_t s[5];
    const char *users[5] = {"alice", "alice", "alice", "bob", "bob"};
    result_t r = {0};
    int64_t now = tess_now_ms();
    (void)state;

    for (int i = 0; i < 5; ++i) {
        make_session(&s[i], users[i], now);
        assert_int_equal(set_rc(&s[i]), 0);
    }
    sql("INSERT INTO session VALUES ('int-user', '{\"cookie\":{},\"userId\":7}', now() + interval '1 hour')");
    sql("INSERT INTO session VALUES ('str-user', '{\"cookie\":{},\"userId\":\"7\"}', now() + interval '1 hour')");
    assert_int_equal(destroy_user_rc("alice"), 0);
    for (int i = 0; i < 5; ++i)
        assert_int_equal(get_rc(s[i].id, &r), i < 3 ? TESS_ENOTFOUND : 0);
    assert_int_equal(sql_int("SELECT count(*) FROM session"), 4);
    assert_int_equal(destroy_user_rc("7"), 0); /* integer and string ids alike */
    assert_int_equal(sql_int("SELECT count(*) FROM session"), 2);
    assert_int_equal(destroy_user_rc("nobody"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM session WHERE sess->>'userId' = 'bob'"), 2);
    /* the per-user index is used */
    assert_int_equal(sql_int("SELECT count(*) FROM pg_indexes WHERE indexname = 'session_user_id_idx' AND "
                             "indexdef LIKE '%userId%'"),
                     1);
    for (int i = 0; i < 5; ++i)
        tess_session_clear(&s[i]);
    tess_session_clear(&r.sess);
}

static void test_prune_batches(void **state)
{
    char err[256];
    tess_pg_opts_t opts = {.conninfo = pg_url, .timeout_ms = 2000};
    tess_store_t *other = NULL;
    result_t r[6];
    (void)state;

    sql("INSERT INTO session SELECT 'old-' || i, '{\"cookie\":{},\"userId\":\"u\"}', "
        "now() - (i || ' seconds')::interval FROM generate_series(1, 250) i");
    sql("INSERT INTO session SELECT 'live-' || i, '{\"cookie\":{},\"userId\":\"u\"}', now() + interval '1 hour' "
        "FROM generate_series(1, 10) i");
    memset(r, 0, sizeof(r));
    assert_int_equal(tess_store_prune(S, 0, 100, on_result, &r[0]), 0);
    assert_int_equal(wait_result(&r[0]), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM session WHERE expire < now()"), 150);
    /* the oldest went first */
    assert_int_equal(sql_int("SELECT count(*) FROM session WHERE sid IN ('old-250', 'old-151')"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM session WHERE sid = 'old-150'"), 1);

    /* two instances pruning at once: disjoint batches, no errors, no waiting on each other */
    assert_int_equal(tess_pgstore_open(&other, tess_poll_loop_base(L), &opts, err, sizeof(err)), 0);
    assert_true(tess_poll_loop_run_until(L, store_connected, other, WAIT_MS));
    for (int i = 1; i < 6; ++i)
        assert_int_equal(tess_store_prune(i % 2 ? other : S, 0, 40, on_result, &r[i]), 0);
    for (int i = 1; i < 6; ++i)
        assert_int_equal(wait_result(&r[i]), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM session WHERE expire < now()"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM session"), 10);
    assert_int_equal(tess_store_prune(S, 0, 0, on_result, &r[0]), TESS_EINVAL);
    tess_store_close(other);
}

typedef struct order {
    int n;    /* completions so far */
    int bad;  /* completions out of issue order */
    int want; /* completions to wait for (n_done) */
} order_t;

typedef struct pipe_req {
    order_t *o;                      /* shared state */
    int i;                           /* issue index */
    int rc;                          /* result */
    char user[TESS_USER_ID_MAX + 1]; /* user id seen */
    char role[TESS_ROLE_MAX + 1];    /* role seen */
} pipe_req_t;

static void on_pipe(void *arg, int rc, const tess_session_t *sess)
{
    pipe_req_t *q = arg;
    if (q->o->n != q->i)
        q->o->bad++;
    q->o->n++;
    q->rc = rc;
    if (sess != NULL) {
        snprintf(q->user, sizeof(q->user), "%s", sess->user_id);
        snprintf(q->role, sizeof(q->role), "%s", sess->role);
    }
}

static int all_done(void *arg)
{
    order_t *o = arg;
    return o->n >= 1000;
}

static void test_pipelining(void **state)
{
    enum { N = 1000 };
    static pipe_req_t req[N];
    static order_t o; /* static, as req: see test_bench_pipelined_gets */
    int64_t t0, t1;
    uint64_t gets0 = S->stats.gets;
    (void)state;

    memset(&o, 0, sizeof(o));
    sql("INSERT INTO session SELECT 'p-' || i, json_build_object('cookie', '{}'::json, 'userId', 'u' || i), "
        "now() + interval '1 hour' FROM generate_series(0, 999) i");
    t0 = tess_mono_ms();
    for (int i = 0; i < N; ++i) {
        char sid[16];
        req[i].o = &o;
        req[i].i = i;
        req[i].rc = 1;
        snprintf(sid, sizeof(sid), "p-%d", i);
        assert_int_equal(tess_store_get(S, tess_str(sid), on_pipe, &req[i]), 0);
    }
    assert_int_equal(o.n, 0); /* nothing completes before the loop runs */
    assert_true(tess_poll_loop_run_until(L, all_done, &o, WAIT_MS));
    t1 = tess_mono_ms();
    assert_int_equal(o.n, N);
    assert_int_equal(o.bad, 0);
    for (int i = 0; i < N; ++i) {
        char want[16];
        snprintf(want, sizeof(want), "u%d", i);
        assert_int_equal(req[i].rc, 0);
        assert_string_equal(req[i].user, want);
    }
    assert_int_equal(S->stats.gets - gets0, N);
    printf("# pipelining: %d gets issued at once, all in order, %lld ms\n", N, (long long)(t1 - t0));
}

static int n_done(void *arg)
{
    order_t *o = arg;
    return o->n >= o->want;
}

/* Asks `st` for every id at once (none answered before the loop runs), then runs until all are answered. */
static void get_all(tess_store_t *st, const char *const *ids, int n, pipe_req_t *req, order_t *o)
{
    memset(o, 0, sizeof(*o));
    memset(req, 0, (size_t)n * sizeof(*req));
    o->want = n;
    for (int i = 0; i < n; ++i) {
        req[i].o = o;
        req[i].i = i;
        req[i].rc = 1;
        assert_int_equal(tess_store_get(st, tess_str(ids[i]), on_pipe, &req[i]), 0);
    }
    assert_int_equal(o->n, 0);
    assert_true(tess_poll_loop_run_until(L, n_done, o, WAIT_MS));
}

/*
 * Lookups asked while one is in flight go in one statement (sid = ANY($1)), each answered from its own row
 * in the order asked: a missing id, an expired row, an id asked twice and one with quotes and commas
 * included. The first goes at once, alone (a plain Q_GET), and so does a lookup on an idle store.
 */
static void test_batched_lookups(void **state)
{
    static const char *const ids[] = {"b-1", "b-missing", "b-2", "b-1", "b-expired", "b-\"quote,comma{}"};
    static const int want_rc[] = {0, TESS_ENOTFOUND, 0, 0, TESS_ENOTFOUND, 0};
    static const char *const want_user[] = {"u1", "", "u2", "u1", "", "u3"};
    enum { N = sizeof(ids) / sizeof(ids[0]) };
    pipe_req_t req[N];
    order_t o;
    uint64_t batches0 = tess__pgstore_batches(S), gets0 = S->stats.gets;
    (void)state;

    sql("INSERT INTO session VALUES ('b-1', '{\"cookie\":{},\"userId\":\"u1\"}', now() + interval '1 hour'),"
        " ('b-2', '{\"cookie\":{},\"userId\":\"u2\"}', now() + interval '1 hour'),"
        " ('b-expired', '{\"cookie\":{},\"userId\":\"u9\"}', now() - interval '1 second'),"
        " ('b-\"quote,comma{}', '{\"cookie\":{},\"userId\":\"u3\"}', now() + interval '1 hour')");
    get_all(S, ids, N, req, &o);
    assert_int_equal(o.bad, 0); /* answered in the order asked */
    for (int i = 0; i < N; ++i) {
        assert_int_equal(req[i].rc, want_rc[i]);
        assert_string_equal(req[i].user, want_user[i]);
    }
    assert_int_equal(tess__pgstore_batches(S) - batches0, 1);
    assert_int_equal(S->stats.gets - gets0, N);

    /* one lookup alone: the plain statement */
    memset(&o, 0, sizeof(o));
    o.want = 1;
    req[0].rc = 1;
    req[0].i = 0;
    req[0].user[0] = '\0';
    assert_int_equal(tess_store_get(S, TESS_STR_LIT("b-2"), on_pipe, &req[0]), 0);
    assert_true(tess_poll_loop_run_until(L, n_done, &o, WAIT_MS));
    assert_int_equal(req[0].rc, 0);
    assert_string_equal(req[0].user, "u2");
    assert_int_equal(tess__pgstore_batches(S) - batches0, 1);
}

/*
 * The same over NextAuth's Prisma tables (a join of "Session" and "User"): lookups asked while one is in
 * flight go in one statement ("sessionToken" = ANY($1)), each answered from its own row in the order asked,
 * the role from the "User" column or the default role when it is NULL.
 */
static void test_nextauth_batched_lookups(void **state)
{
    static const char *const ids[] = {"00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-0000000000ff",
                                      "00000000-0000-4000-8000-00000000000b", "00000000-0000-4000-8000-00000000000a",
                                      "00000000-0000-4000-8000-00000000000e"};
    static const int want_rc[] = {0, TESS_ENOTFOUND, 0, 0, TESS_ENOTFOUND};
    static const char *const want_user[] = {"cuser-a", "", "cuser-b", "cuser-a", ""};
    static const char *const want_role[] = {"agent", "", "visitor", "agent", ""};
    enum { N = sizeof(ids) / sizeof(ids[0]) };
    tess_nextauth_opts_t no = {.role_column = "role", .default_role = "visitor"};
    tess_store_params_t sp = {.url = pg_url, .loop = tess_poll_loop_base(L), .timeout_ms = TIMEOUT_MS};
    tess_store_t *na = NULL;
    char err[256];
    pipe_req_t req[N];
    order_t o;
    (void)state;

    sql("DROP TABLE IF EXISTS \"Session\", \"User\"");
    sql("CREATE TABLE \"User\" (id text PRIMARY KEY, name text, email text UNIQUE, role text)");
    sql("CREATE TABLE \"Session\" (id text PRIMARY KEY, \"sessionToken\" text NOT NULL UNIQUE, \"userId\" text NOT NULL"
        " REFERENCES \"User\" (id) ON DELETE CASCADE, expires timestamp(3) NOT NULL)");
    sql("INSERT INTO \"User\" VALUES ('cuser-a', 'a', 'a@x', 'agent'), ('cuser-b', 'b', 'b@x', NULL)");
    sql("INSERT INTO \"Session\" VALUES"
        " ('s1', '00000000-0000-4000-8000-00000000000a', 'cuser-a', (now() AT TIME ZONE 'UTC') + interval '1 day'),"
        " ('s2', '00000000-0000-4000-8000-00000000000b', 'cuser-b', (now() AT TIME ZONE 'UTC') + interval '1 day'),"
        " ('s3', '00000000-0000-4000-8000-00000000000e', 'cuser-b', (now() AT TIME ZONE 'UTC') - interval '1 s')");
    assert_int_equal(tess_nextauth_migrate(&sp, &no, err, sizeof(err)), 0);
    assert_int_equal(tess_nextauth_open(&na, &sp, &no, err, sizeof(err)), 0);
    assert_true(tess_poll_loop_run_until(L, store_connected, na, WAIT_MS));
    uint64_t batches0 = tess__pgstore_batches(na);

    get_all(na, ids, N, req, &o);
    assert_int_equal(o.bad, 0);
    for (int i = 0; i < N; ++i) {
        assert_int_equal(req[i].rc, want_rc[i]);
        assert_string_equal(req[i].user, want_user[i]);
        assert_string_equal(req[i].role, want_role[i]);
    }
    assert_int_equal(tess__pgstore_batches(na) - batches0, 1); /* the first alone, the other four together */
    tess_store_close(na);
    sql("DROP TABLE \"Session\", \"User\"");
}

/* A statement that fails in the middle of a pipeline fails alone (each query has its own Sync). */
static void test_error_isolated_in_pipeline(void **state)
{
    tess_session_t s, s2;
    result_t r[4];
    int64_t now = tess_now_ms();
    (void)state;

    make_session(&s, "user-e", now);
    make_session(&s2, "user-e2", now);
    assert_int_equal(set_rc(&s), 0);
    memset(r, 0, sizeof(r));
    assert_int_equal(tess_store_get(S, tess_str(s.id), on_result, &r[0]), 0);
    assert_int_equal(tess_store_touch(S, tess_str(s.id), INT64_MAX, on_result, &r[1]), 0); /* out of range */
    assert_int_equal(tess_store_get(S, tess_str(s.id), on_result, &r[2]), 0);
    assert_int_equal(tess_store_set(S, &s2, on_result, &r[3]), 0);
    for (int i = 0; i < 4; ++i)
        assert_true(tess_poll_loop_run_until(L, is_done, &r[i], WAIT_MS));
    for (int i = 0; i < 4; ++i)
        if (r[i].rc != (i == 1 ? TESS_EBADFMT : 0)) /* a data exception is the input's fault */
            fail_msg("query %d: %s", i, tess_err_name(r[i].rc));
    assert_true(r[0].at <= r[1].at && r[1].at <= r[2].at && r[2].at <= r[3].at);
    assert_int_equal(r[2].sess.expires_ms, s.expires_ms); /* the failed touch changed nothing */
    assert_int_equal(sql_int("SELECT count(*) FROM session"), 2);
    assert_true(tess_pgstore_connected(S));
    for (int i = 0; i < 4; ++i)
        tess_session_clear(&r[i].sess);
    tess_session_clear(&s);
    tess_session_clear(&s2);
}

static int all_done_n(void *arg)
{
    result_t *r = arg;
    for (int i = 0; i < 400; ++i)
        if (r[i].done == 0)
            return 0;
    return 1;
}

/* 16 MB of writes at once, more than the socket takes: libpq keeps the rest, the store waits for writability. */
static void test_large_burst(void **state)
{
    enum { N = 400, BLOB = 40000 };
    static result_t r[N];
    tess_session_t s;
    char *blob = malloc(BLOB + 32), err[256];
    int64_t now = tess_now_ms(), t0;
    tess_pg_opts_t opts = {.conninfo = pg_url, .timeout_ms = 15000}; /* a slow machine is not what is tested */
    tess_store_t *st = NULL;
    (void)state;

    assert_non_null(blob);
    assert_int_equal(tess_pgstore_open(&st, tess_poll_loop_base(L), &opts, err, sizeof(err)), 0);
    assert_true(tess_poll_loop_run_until(L, store_connected, st, WAIT_MS));
    make_session(&s, "user-big", now);
    memcpy(blob, "{\"blob\":\"", 9);
    for (int i = 0; i < BLOB; ++i)
        blob[9 + i] = (char)('a' + (i * 7919) % 26);
    memcpy(blob + 9 + BLOB, "\"}", 3);
    s.extra_json = blob;
    memset(r, 0, sizeof(r));
    t0 = tess_mono_ms();
    for (int i = 0; i < N; ++i) {
        snprintf(s.id, sizeof(s.id), "big-%d", i);
        assert_int_equal(tess_store_set(st, &s, on_result, &r[i]), 0);
    }
    assert_true(tess_poll_loop_run_until(L, all_done_n, r, 20000));
    printf("# large burst: %d sets of %d KB issued at once, done in %lld ms\n", N, BLOB / 1000,
           (long long)(tess_mono_ms() - t0));
    for (int i = 0; i < N; ++i)
        assert_int_equal(r[i].rc, 0);
    assert_int_equal(sql_int("SELECT count(*) FROM session WHERE length(sess->>'blob') = 40000"), N);
    assert_int_equal(get_rc("big-399", &r[0]), 0);
    assert_non_null(r[0].sess.extra_json);
    assert_true(strlen(r[0].sess.extra_json) >= BLOB);
    tess_session_clear(&r[0].sess);
    tess_session_clear(&s); /* frees blob */
    tess_store_close(st);
}

/* Throughput with a window of W gets in flight, for the report. */
typedef struct bench {
    tess_store_t *st;
    int issued, done, failed, total;
} bench_t;

static void on_bench(void *arg, int rc, const tess_session_t *sess);

static void bench_issue(bench_t *b)
{
    char sid[16];
    snprintf(sid, sizeof(sid), "p-%d", b->issued % 1000);
    b->issued++;
    assert_int_equal(tess_store_get(b->st, tess_str(sid), on_bench, b), 0);
}

static void on_bench(void *arg, int rc, const tess_session_t *sess)
{
    bench_t *b = arg;
    (void)sess;
    b->done++;
    b->failed += rc != 0;
    if (b->issued < b->total)
        bench_issue(b);
}

static int bench_done(void *arg)
{
    bench_t *b = arg;
    return b->done >= b->total;
}

/*
 * Its own store with a generous per-query timeout (a slow machine is not what is measured), and the state
 * static: a failed assertion leaves gets in flight, whose callbacks must not write into a dead stack frame.
 */
static void test_bench_pipelined_gets(void **state)
{
    static bench_t b;
    tess_pg_opts_t opts = {.conninfo = pg_url, .timeout_ms = 15000};
    char err[256];
    int64_t t0, ms;
    (void)state;

    memset(&b, 0, sizeof(b));
    b.total = 30000;
    assert_int_equal(tess_pgstore_open(&b.st, tess_poll_loop_base(L), &opts, err, sizeof(err)), 0);
    assert_true(tess_poll_loop_run_until(L, store_connected, b.st, WAIT_MS));
    sql("INSERT INTO session SELECT 'p-' || i, json_build_object('cookie', '{}'::json, 'userId', 'u' || i), "
        "now() + interval '1 hour' FROM generate_series(0, 999) i");
    t0 = tess_mono_ms();
    for (int i = 0; i < 256; ++i)
        bench_issue(&b);
    assert_true(tess_poll_loop_run_until(L, bench_done, &b, 30000));
    ms = tess_mono_ms() - t0;
    assert_int_equal(b.failed, 0);
    printf("# bench: %d pipelined gets (256 in flight) on one connection in %lld ms: %.0f gets/s\n", b.total,
           (long long)ms, ms > 0 ? b.total * 1000.0 / (double)ms : 0.0);
    tess_store_close(b.st);
}

static void test_timeout_server_paused(void **state)
{
    enum { N = 20 };
    tess_session_t s;
    result_t r[N], late = {0};
    int64_t t0, worst = 0, took;
    int timeouts = 0;
    (void)state;

    if (pg_pid <= 0)
        skip();
    make_session(&s, "user-t", tess_now_ms());
    assert_int_equal(set_rc(&s), 0);

    server_stop();
    t0 = tess_mono_ms();
    memset(r, 0, sizeof(r));
    for (int i = 0; i < N; ++i)
        assert_int_equal(tess_store_get(S, tess_str(s.id), on_result, &r[i]), 0);
    for (int i = 0; i < N; ++i) {
        assert_true(tess_poll_loop_run_until(L, is_done, &r[i], WAIT_MS));
        assert_int_equal(r[i].done, 1);
        assert_true(r[i].rc == TESS_ETIMEOUT || r[i].rc == TESS_EUNAVAIL);
        timeouts += r[i].rc == TESS_ETIMEOUT;
        if (r[i].at - t0 > worst)
            worst = r[i].at - t0;
    }
    printf("# paused server: %d queries failed (%d ETIMEOUT) after %lld ms (timeout %d ms)\n", N, timeouts,
           (long long)worst, TIMEOUT_MS);
    assert_true(timeouts > 0);
    assert_true(worst >= TIMEOUT_MS - 5);
    assert_true(worst <= TIMEOUT_MS + 300);
    assert_false(tess_pgstore_connected(S));

    /* while it is down, calls fail at once (fail closed, no queueing) */
    assert_int_equal(tess_store_get(S, tess_str(s.id), on_result, &late), 0);
    assert_int_equal(late.done, 1);
    assert_int_equal(late.rc, TESS_EUNAVAIL);

    /* stay paused past one connection attempt's deadline, then resume */
    tess_poll_loop_run_until(L, NULL, NULL, 1300);
    server_cont();
    t0 = tess_mono_ms();
    took = ms_until_ping_ok(t0, 3000);
    printf("# paused server resumed: first successful query after %lld ms\n", (long long)took);
    assert_true(took >= 0 && took <= 1000);
    assert_int_equal(get_rc(s.id, &late), 0);
    tess_session_clear(&late.sess);
    for (int i = 0; i < N; ++i)
        tess_session_clear(&r[i].sess);
    tess_session_clear(&s);
}

static void test_server_restart(void **state)
{
    tess_session_t s;
    result_t r = {0};
    int64_t t0, took;
    int rc;
    (void)state;

    if (ctl_out < 0 || ctl_in < 0)
        skip();
    make_session(&s, "user-r", tess_now_ms());
    assert_int_equal(set_rc(&s), 0);
    /* The test cluster runs with synchronous_commit=off: make the WAL of that acknowledged write reach the
     * OS (a synchronous commit flushes everything before it) so that an immediate shutdown keeps it. */
    sql("SET synchronous_commit = on");
    sql("CREATE TEMP TABLE flush_wal (x int); INSERT INTO flush_wal VALUES (1)");

    ctl("kill"); /* immediate shutdown: backends die without a goodbye */
    t0 = tess_mono_ms();
    rc = ping_rc(S);
    assert_true(rc == TESS_EUNAVAIL || rc == TESS_ETIMEOUT);
    assert_true(tess_mono_ms() - t0 <= TIMEOUT_MS + 300);
    assert_int_equal(get_rc(s.id, &r), TESS_EUNAVAIL);
    /* a while down: reconnect attempts fail and back off */
    tess_poll_loop_run_until(L, NULL, NULL, 700);
    assert_false(tess_pgstore_connected(S));
    assert_int_equal(ping_rc(S), TESS_EUNAVAIL);

    /* restart while the loop runs (the store keeps retrying with its capped backoff) */
    {
        ctl_wait_t w = {.cmd = "start"};
        tess_io_t *io = tess_poll_loop_base(L)->ops->io_new(tess_poll_loop_base(L), ctl_in, on_ctl_readable, &w);
        assert_non_null(io);
        tess_poll_loop_base(L)->ops->io_set(io, TESS_IO_READ);
        ctl_send("start");
        assert_true(tess_poll_loop_run_until(L, ctl_answered, &w, 30000));
        tess_poll_loop_base(L)->ops->io_free(io);
        t0 = w.at; /* the server accepts connections from here on */
    }
    took = ms_until_ping_ok(t0, 3000);
    printf("# restarted server: first successful query %lld ms after it was ready\n", (long long)took);
    assert_true(took >= 0 && took <= 1000);
    assert_int_equal(get_rc(s.id, &r), 0);
    assert_string_equal(r.sess.user_id, "user-r");
    tess_session_clear(&r.sess);
    tess_session_clear(&s);
}

/* Closing with queries in flight: each completes once with EUNAVAIL, nothing runs afterwards. */
static void test_close_with_pending(void **state)
{
    char err[256];
    tess_pg_opts_t opts = {.conninfo = pg_url, .timeout_ms = 2000};
    tess_store_t *st = NULL;
    result_t r[50];
    (void)state;

    assert_int_equal(tess_pgstore_open(&st, tess_poll_loop_base(L), &opts, err, sizeof(err)), 0);
    assert_true(tess_poll_loop_run_until(L, store_connected, st, WAIT_MS));
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 50; ++i)
        assert_int_equal(tess_store_get(st, TESS_STR_LIT("nope"), on_result, &r[i]), 0);
    tess_store_close(st);
    for (int i = 0; i < 50; ++i) {
        assert_int_equal(r[i].done, 1);
        assert_int_equal(r[i].rc, TESS_EUNAVAIL);
    }
    tess_poll_loop_run_until(L, NULL, NULL, 50);
    for (int i = 0; i < 50; ++i)
        assert_int_equal(r[i].done, 1);

    /* bad conninfo is refused at open, with a reason */
    assert_int_equal(tess_pgstore_open(&st, tess_poll_loop_base(L), &(tess_pg_opts_t){.conninfo = "host=x bogus=1"},
                                       err, sizeof(err)),
                     TESS_EINVAL);
    assert_null(st);
    assert_true(strlen(err) > 0);
    /* an unreachable server: the handle works, every call fails closed at once */
    assert_int_equal(tess_pgstore_open(&st, tess_poll_loop_base(L),
                                       &(tess_pg_opts_t){.conninfo = "postgres://127.0.0.1:1/x", .timeout_ms = 100},
                                       err, sizeof(err)),
                     0);
    tess_poll_loop_run_until(L, NULL, NULL, 100);
    assert_false(tess_pgstore_connected(st));
    assert_int_equal(ping_rc(st), TESS_EUNAVAIL);
    tess_store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_schema, test_setup),
        cmocka_unit_test_setup(test_set_get_roundtrip, test_setup),
        cmocka_unit_test_setup(test_express_session_row, test_setup),
        cmocka_unit_test_setup(test_touch_never_resurrects, test_setup),
        cmocka_unit_test_setup(test_destroy_user, test_setup),
        cmocka_unit_test_setup(test_prune_batches, test_setup),
        cmocka_unit_test_setup(test_pipelining, test_setup),
        cmocka_unit_test_setup(test_batched_lookups, test_setup),
        cmocka_unit_test_setup(test_nextauth_batched_lookups, test_setup),
        cmocka_unit_test_setup(test_error_isolated_in_pipeline, test_setup),
        cmocka_unit_test_setup(test_large_burst, test_setup),
        cmocka_unit_test_setup(test_bench_pipelined_gets, test_setup),
        cmocka_unit_test_setup(test_close_with_pending, test_setup),
        cmocka_unit_test_setup(test_timeout_server_paused, test_setup),
        cmocka_unit_test_setup(test_server_restart, test_setup),
    };
    const char *v;

    signal(SIGPIPE, SIG_IGN);
    if ((pg_url = getenv("TESS_PG_URL")) == NULL || pg_url[0] == '\0') {
        printf("# TESS_PG_URL not set: skipping (tests/integration/test_pg_store.py runs this)\n");
        return 0;
    }
    if ((v = getenv("TESS_PG_PID")) != NULL)
        pg_pid = (pid_t)atol(v);
    if ((v = getenv("TESS_CTL_OUT")) != NULL)
        ctl_out = atoi(v);
    if ((v = getenv("TESS_CTL_IN")) != NULL)
        ctl_in = atoi(v);
    atexit(server_cont); /* never leave the server stopped */
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
