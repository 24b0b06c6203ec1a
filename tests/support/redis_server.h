/*
 * A private redis-server for one unit test binary (include cmocka.h first).
 *
 *   redis_server_t rs = {0};
 *   rs_start(&rs);             // mkdtemp, fork/exec redis-server on <dir>/redis.sock (no TCP, no persistence),
 *                              // returns once it answers PING (fails the test after RS_START_MS)
 *   rs_cmd_int(&rs, "DBSIZE"); // raw commands through a blocking hiredis client (rs.c) with a timeout
 *   rs_kill(&rs); rs_start(&rs);   // an outage and a return on the same socket (an empty server again)
 *   rs_pause(&rs); rs_resume(&rs); // SIGSTOP / SIGCONT: the server keeps its connections and answers nothing
 *   rs_cleanup(&rs);           // kills it and removes the directory
 *
 * The shared fixture: RS and L (one server, one poll loop per binary) made by rs_group_setup/rs_group_teardown;
 * rs_fresh(&RS) in a test's set-up (running, empty), rs_loop_clean() in its teardown, rs_run_until() to wait.
 * With store_result.h included first, store_*_rc() run one store operation on L and return its rc.
 *
 * The tests reach the server with rs.url ("unix://<dir>/redis.sock"). The server dies with the test process
 * (PR_SET_PDEATHSIG), so a crashed test leaves no redis-server behind. Every wait here has a deadline.
 * The functions are `static inline` only so that a test using some of them compiles without unused warnings.
 */
#ifndef TESS_TEST_REDIS_SERVER_H
#define TESS_TEST_REDIS_SERVER_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "tessera/common.h"
#include "tessera/pollloop.h"
#include "tessera/store.h"

#define RS_START_MS 5000 /* longest wait for a starting server to answer PING */
#define RS_RAW_MS 2000   /* timeout of the raw client's commands (a paused server fails them, never hangs them) */
#define RS_WAIT_MS 5000  /* deadline of the tests' waits for anything that should happen */

typedef struct redis_server {
    char dir[64];    /* temporary directory (removed by rs_cleanup) */
    char sock[96];   /* <dir>/redis.sock */
    char url[112];   /* unix://<sock> */
    pid_t pid;       /* running server (0: none) */
    int paused;      /* SIGSTOPped by rs_pause */
    redisContext *c; /* raw blocking client, connected while the server runs */
} redis_server_t;

static inline void rs_nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A blocking client with RS_RAW_MS timeouts, or NULL when the server does not accept. */
static inline redisContext *rs_connect(const redis_server_t *rs)
{
    struct timeval tv = {RS_RAW_MS / 1000, (RS_RAW_MS % 1000) * 1000};
    redisContext *c = redisConnectUnixWithTimeout(rs->sock, tv);
    if (c == NULL || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static inline int rs_answers_ping(redis_server_t *rs)
{
    redisContext *c = rs_connect(rs);
    redisReply *r = c != NULL ? redisCommand(c, "PING") : NULL;
    int ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r != NULL)
        freeReplyObject(r);
    if (ok)
        rs->c = c;
    else
        redisFree(c);
    return ok;
}

static inline void rs_start(redis_server_t *rs)
{
    char log[96];
    int64_t deadline;
    int status;

    assert_int_equal(rs->pid, 0);
    if (rs->dir[0] == '\0') {
        snprintf(rs->dir, sizeof(rs->dir), "/tmp/tess-redis-XXXXXX");
        assert_non_null(mkdtemp(rs->dir));
        snprintf(rs->sock, sizeof(rs->sock), "%s/redis.sock", rs->dir);
        snprintf(rs->url, sizeof(rs->url), "unix://%s", rs->sock);
    }
    snprintf(log, sizeof(log), "%s/redis.log", rs->dir);
    pid_t parent = getpid();
    rs->pid = fork();
    assert_true(rs->pid >= 0);
    if (rs->pid == 0) {
        int null = open("/dev/null", O_RDWR);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126); /* the test died before the line above */
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
        }
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", rs->sock, "--save", "", "--appendonly",
               "no", "--dir", rs->dir, "--logfile", log, (char *)NULL);
        fprintf(stderr, "exec redis-server: %s (scripts/setup.sh installs it)\n", strerror(errno));
        _exit(127);
    }
    deadline = tess_mono_ms() + RS_START_MS;
    while (!rs_answers_ping(rs)) {
        if (waitpid(rs->pid, &status, WNOHANG) == rs->pid) {
            rs->pid = 0;
            fail_msg("redis-server exited at start (status %d); see %s", status, log);
        }
        if (tess_mono_ms() > deadline) {
            kill(rs->pid, SIGKILL);
            waitpid(rs->pid, &status, 0);
            rs->pid = 0;
            fail_msg("redis-server did not answer PING within %d ms; see %s", RS_START_MS, log);
        }
        rs_nap_ms(5);
    }
}

/* SIGKILL (works on a stopped server too), reaped; the socket file goes with it. */
static inline void rs_kill(redis_server_t *rs)
{
    redisFree(rs->c);
    rs->c = NULL;
    if (rs->pid > 0) {
        kill(rs->pid, SIGKILL);
        assert_int_equal(waitpid(rs->pid, NULL, 0), rs->pid);
        rs->pid = 0;
    }
    rs->paused = 0;
    unlink(rs->sock);
}

static inline void rs_restart(redis_server_t *rs)
{
    rs_kill(rs);
    rs_start(rs);
}

/* SIGSTOP, returning once the kernel reports the server stopped. */
static inline void rs_pause(redis_server_t *rs)
{
    int status;
    assert_int_equal(kill(rs->pid, SIGSTOP), 0);
    assert_int_equal(waitpid(rs->pid, &status, WUNTRACED), rs->pid);
    assert_true(WIFSTOPPED(status));
    rs->paused = 1;
}

/* SIGCONT, returning once it runs (and answers PING on the raw client) again. */
static inline void rs_resume(redis_server_t *rs)
{
    int status;
    redisReply *r;
    assert_int_equal(kill(rs->pid, SIGCONT), 0);
    assert_int_equal(waitpid(rs->pid, &status, WCONTINUED), rs->pid);
    assert_true(WIFCONTINUED(status));
    rs->paused = 0;
    /* The raw client may have timed out meanwhile (hiredis then refuses further use): reconnect it. */
    redisFree(rs->c);
    assert_non_null(rs->c = rs_connect(rs));
    assert_non_null(r = redisCommand(rs->c, "PING"));
    freeReplyObject(r);
}

static inline void rs_cleanup(redis_server_t *rs)
{
    DIR *d;
    struct dirent *e;

    rs_kill(rs);
    if (rs->dir[0] == '\0' || (d = opendir(rs->dir)) == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
    rmdir(rs->dir);
    rs->dir[0] = '\0';
}

/* ---- raw commands (the test's own blocking client; failures fail the test) -------------------------------- */

/* A reply (freeReplyObject() it); never an error reply. */
static inline redisReply *rs_vcmd(redis_server_t *rs, const char *fmt, va_list ap)
{
    redisReply *r;
    assert_non_null(rs->c);
    r = redisvCommand(rs->c, fmt, ap);
    if (r == NULL)
        fail_msg("raw redis command %s: %s", fmt, rs->c->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("raw redis command %s: %s", fmt, r->str);
    return r;
}

static inline void rs_cmd(redis_server_t *rs, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    freeReplyObject(rs_vcmd(rs, fmt, ap));
    va_end(ap);
}

/* An integer reply's value. */
static inline long long rs_cmd_int(redis_server_t *rs, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    long long v;
    va_start(ap, fmt);
    r = rs_vcmd(rs, fmt, ap);
    va_end(ap);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

/* A bulk string reply copied into `out` (1), or nil (0, `out` empty). */
static inline int rs_cmd_str(redis_server_t *rs, char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    int found;
    va_start(ap, fmt);
    r = rs_vcmd(rs, fmt, ap);
    va_end(ap);
    found = r->type == REDIS_REPLY_STRING;
    assert_true(found || r->type == REDIS_REPLY_NIL);
    out[0] = '\0';
    if (found) {
        assert_true(r->len < cap);
        memcpy(out, r->str, r->len + 1);
    }
    freeReplyObject(r);
    return found;
}

/* For a test's set-up: a running, empty server, whatever an earlier (failed) test left. */
static inline void rs_fresh(redis_server_t *rs)
{
    if (rs->paused)
        rs_resume(rs);
    if (rs->pid == 0)
        rs_start(rs);
    rs_cmd(rs, "FLUSHALL");
}

/* How often `cmd` (lower case, e.g. "exists") ran since the last CONFIG RESETSTAT, from INFO commandstats. */
static inline long long rs_calls(redis_server_t *rs, const char *cmd)
{
    char needle[64];
    const char *p;
    long long n = 0;
    redisReply *r = redisCommand(rs->c, "INFO commandstats");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", cmd);
    if ((p = strstr(r->str, needle)) != NULL)
        n = strtoll(p + strlen(needle), NULL, 10);
    freeReplyObject(r);
    return n;
}

/* ---- the shared fixture: one server and one poll loop per test binary -------------------------------------- */

static redis_server_t RS;   /* the server */
static tess_poll_loop_t *L; /* the loop the code under test runs on */

static inline int rs_group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* as tessera serve: a write to a killed server is an error, not the test's death */
    rs_start(&RS);
    assert_non_null(L = tess_poll_loop_new());
    return 0;
}

static inline int rs_group_teardown(void **state)
{
    (void)state;
    tess_poll_loop_free(L);
    L = NULL;
    rs_cleanup(&RS);
    return 0;
}

/* For a test's teardown, once it closed what it opened: nothing it made is left on the loop. */
static inline void rs_loop_clean(void)
{
    assert_int_equal(tess_poll_loop_live_ios(L), 0);
    assert_int_equal(tess_poll_loop_armed_timers(L), 0);
}

/* ---- driving the code under test --------------------------------------------------------------------------- */

/* Runs `l` until `pred(arg)` holds; fails the test (naming `what`) when `ms` pass first. */
static inline void rs_run_until(tess_poll_loop_t *l, int (*pred)(void *), void *arg, int64_t ms, const char *what)
{
    if (!tess_poll_loop_run_until(l, pred, arg, ms))
        fail_msg("not within %lld ms: %s", (long long)ms, what);
}

/*
 * Store operations on L, each waited for (RS_WAIT_MS) and answering its callback's rc, for the store tests:
 * only when store_result.h (result_t, on_result) was included before this header.
 */
#ifdef TESS_TEST_STORE_RESULT_H
static inline int store_done(void *arg)
{
    return ((result_t *)arg)->calls > 0;
}

static inline int store_wait(result_t *r)
{
    rs_run_until(L, store_done, r, RS_WAIT_MS, "store callback");
    assert_int_equal(r->calls, 1);
    return r->rc;
}

/* `r` gets the session (cleared first). */
static inline int store_get_rc(tess_store_t *st, const char *sid, result_t *r)
{
    tess_session_clear(&r->sess);
    memset(r, 0, sizeof(*r));
    assert_int_equal(tess_store_get(st, tess_str(sid), on_result, r), 0);
    return store_wait(r);
}

static inline int store_set_rc(tess_store_t *st, const tess_session_t *s)
{
    result_t r = {0};
    assert_int_equal(tess_store_set(st, s, on_result, &r), 0);
    return store_wait(&r);
}

static inline int store_touch_rc(tess_store_t *st, const char *sid, int64_t exp)
{
    result_t r = {0};
    assert_int_equal(tess_store_touch(st, tess_str(sid), exp, on_result, &r), 0);
    return store_wait(&r);
}

static inline int store_destroy_rc(tess_store_t *st, const char *sid)
{
    result_t r = {0};
    assert_int_equal(tess_store_destroy(st, tess_str(sid), on_result, &r), 0);
    return store_wait(&r);
}

static inline int store_destroy_user_rc(tess_store_t *st, const char *uid)
{
    result_t r = {0};
    assert_int_equal(tess_store_destroy_user(st, tess_str(uid), on_result, &r), 0);
    return store_wait(&r);
}

static inline int store_ping_rc(tess_store_t *st)
{
    result_t r = {0};
    assert_int_equal(tess_store_ping(st, on_result, &r), 0);
    return store_wait(&r);
}

/* A new session of `user` (default policy) at `now`. */
static inline void make_session(tess_session_t *s, const char *user, int64_t now)
{
    tess_session_policy_t p;
    tess_session_policy_default(&p);
    assert_int_equal(tess_session_init(s, &p, tess_str(user), TESS_STR_LIT("visitor"), now), 0);
}
#endif

#endif
