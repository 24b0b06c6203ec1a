/*
 * Unit tests of the Redis session store (tessera/redis.h) against a real redis-server started by the test
 * (tests/support/redis_server.h), driven by the poll loop: the store contract, connect-redis's format, the
 * per-user index, and outages (killed and paused server).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "store_result.h"
#include "redis_server.h" /* after store_result.h: its store helpers */
#include "tessera/error.h"
#include "tessera/pollloop.h"
#include "tessera/redis.h"
#include "tessera/store.h"

#define HOUR INT64_C(3600000)
#define TIMEOUT_MS 300 /* the store's per-command timeout in these tests */

static tess_store_t *S;

/* ---- helpers ------------------------------------------------------------------------------------------- */

static int store_connected(void *arg)
{
    return tess_redisstore_connected(arg);
}

static void open_store(tess_store_t **out, const tess_redis_opts_t *o)
{
    char err[256] = "";
    assert_int_equal(tess_redisstore_open(out, tess_poll_loop_base(L), o, err, sizeof(err)), 0);
    rs_run_until(L, store_connected, *out, RS_WAIT_MS, "store connected");
}

static void assert_near(int64_t got, int64_t want, int64_t slack)
{
    if (got < want - slack || got > want + slack)
        fail_msg("%lld is not within %lld of %lld", (long long)got, (long long)slack, (long long)want);
}

/* ---- fixture ------------------------------------------------------------------------------------------- */

static int setup(void **state)
{
    tess_redis_opts_t o = {.url = RS.url, .timeout_ms = TIMEOUT_MS};
    (void)state;
    rs_fresh(&RS);
    open_store(&S, &o);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tess_store_close(S);
    S = NULL;
    /* A closed store leaves nothing on the loop. */
    rs_loop_clean();
    return 0;
}

/* ---- tests --------------------------------------------------------------------------------------------- */

static void test_set_get(void **state)
{
    tess_session_t s;
    result_t r = {0};
    char raw[4096];
    int64_t now = tess_now_ms();
    (void)state;

    make_session(&s, "alice", now);
    s.extra_json = strdup("{\"theme\":\"dark\",\"n\":7}");
    assert_string_equal(S->ops->name, "redis");
    assert_int_equal(store_set_rc(S, &s), 0);

    assert_int_equal(store_get_rc(S, s.id, &r), 0);
    assert_string_equal(r.sess.id, s.id);
    assert_string_equal(r.sess.user_id, "alice");
    assert_string_equal(r.sess.role, "visitor");
    assert_int_equal(r.sess.created_ms, s.created_ms);
    assert_int_equal(r.sess.absolute_expires_ms, s.absolute_expires_ms);
    assert_non_null(r.sess.extra_json);
    assert_non_null(strstr(r.sess.extra_json, "\"theme\":\"dark\""));
    assert_non_null(strstr(r.sess.extra_json, "\"n\":7"));
    assert_near(r.sess.expires_ms, s.expires_ms, 1000); /* read back from PTTL */

    /* connect-redis's shape under <prefix><sid>, with the key's TTL set from the expiry */
    assert_int_equal(rs_cmd_str(&RS, raw, sizeof(raw), "GET session:%s", s.id), 1);
    assert_non_null(strstr(raw, "\"cookie\":{"));
    assert_non_null(strstr(raw, "\"originalMaxAge\":"));
    assert_non_null(strstr(raw, "\"userId\":\"alice\""));
    assert_near(rs_cmd_int(&RS, "PTTL session:%s", s.id), s.expires_ms - now, 1000);
    /* the user's index holds the id and lives as long as the absolute expiry */
    assert_int_equal(rs_cmd_int(&RS, "SISMEMBER session:user:alice %s", s.id), 1);
    assert_near(rs_cmd_int(&RS, "PTTL session:user:alice"), s.absolute_expires_ms - now, 1000);

    assert_int_equal(store_get_rc(S, "no-such-session", &r), TESS_ENOTFOUND);
    assert_int_equal(S->stats.gets, 2);
    assert_int_equal(S->stats.writes, 1);
    assert_int_equal(S->stats.errors, 0); /* NOTFOUND is no error */

    /* refused calls never call back */
    memset(&r, 0, sizeof(r));
    assert_int_equal(tess_store_get(S, TESS_STR_LIT(""), on_result, &r), TESS_EINVAL);
    assert_int_equal(tess_store_touch(S, TESS_STR_LIT(""), now + HOUR, on_result, &r), TESS_EINVAL);
    assert_int_equal(tess_store_destroy(S, TESS_STR_LIT(""), on_result, &r), TESS_EINVAL);
    assert_int_equal(tess_store_destroy_user(S, TESS_STR_LIT(""), on_result, &r), TESS_EINVAL);
    s.expires_ms = now - 1;
    assert_int_equal(tess_store_set(S, &s, on_result, &r), TESS_EINVAL); /* already expired */
    tess_poll_loop_run_once(L, 0);
    assert_int_equal(r.calls, 0);
    tess_session_clear(&s);
}

static int key_gone(void *sid)
{
    return rs_cmd_int(&RS, "EXISTS session:%s", (const char *)sid) == 0;
}

static void test_ttl_expires_key(void **state)
{
    tess_session_t s;
    result_t r = {0};
    int64_t now = tess_now_ms(), deadline;
    (void)state;

    make_session(&s, "alice", now);
    s.expires_ms = now + 400;
    assert_int_equal(store_set_rc(S, &s), 0);
    long long pttl = rs_cmd_int(&RS, "PTTL session:%s", s.id);
    assert_true(pttl > 0 && pttl <= 400);
    /* Redis removes it at its expiry: the store then says NOTFOUND */
    deadline = tess_mono_ms() + RS_WAIT_MS;
    while (store_get_rc(S, s.id, &r) == 0) {
        assert_true(tess_mono_ms() < deadline);
        tess_session_clear(&r.sess);
        tess_poll_loop_run_once(L, 20);
    }
    assert_int_equal(r.rc, TESS_ENOTFOUND);
    assert_true(tess_now_ms() >= now + 400 - 5);
    /* the store counts the key's last millisecond (PTTL 0) as expired, Redis as alive: allow that one ms */
    rs_run_until(L, key_gone, s.id, RS_WAIT_MS, "Redis dropped the expired key");
    tess_session_clear(&s);
}

static void test_touch_no_resurrection(void **state)
{
    tess_session_t s;
    result_t r = {0};
    int64_t now = tess_now_ms();
    (void)state;

    make_session(&s, "alice", now);
    assert_int_equal(store_set_rc(S, &s), 0);
    assert_int_equal(store_touch_rc(S, s.id, now + 2 * HOUR), 0);
    assert_near(rs_cmd_int(&RS, "PTTL session:%s", s.id), 2 * HOUR, 1000);
    assert_int_equal(store_get_rc(S, s.id, &r), 0);
    assert_near(r.sess.expires_ms, now + 2 * HOUR, 1000);
    tess_session_clear(&r.sess);

    /* destroyed: a late touch must not bring it back */
    assert_int_equal(store_destroy_rc(S, s.id), 0);
    assert_int_equal(store_touch_rc(S, s.id, now + 3 * HOUR), TESS_ENOTFOUND);
    assert_int_equal(rs_cmd_int(&RS, "EXISTS session:%s", s.id), 0);
    assert_int_equal(store_get_rc(S, s.id, &r), TESS_ENOTFOUND);
    assert_int_equal(store_touch_rc(S, "never-existed", now + HOUR), TESS_ENOTFOUND);
    assert_int_equal(rs_cmd_int(&RS, "EXISTS session:never-existed"), 0);
    assert_int_equal(S->stats.errors, 0);
    tess_session_clear(&s);
}

static void test_destroy(void **state)
{
    tess_session_t a, b;
    result_t r = {0};
    int64_t now = tess_now_ms();
    (void)state;

    make_session(&a, "alice", now);
    make_session(&b, "alice", now);
    assert_int_equal(store_set_rc(S, &a), 0);
    assert_int_equal(store_set_rc(S, &b), 0);
    assert_int_equal(rs_cmd_int(&RS, "SCARD session:user:alice"), 2);

    assert_int_equal(store_destroy_rc(S, a.id), 0);
    assert_int_equal(store_get_rc(S, a.id, &r), TESS_ENOTFOUND);
    assert_int_equal(rs_cmd_int(&RS, "SISMEMBER session:user:alice %s", a.id), 0); /* out of the index */
    assert_int_equal(rs_cmd_int(&RS, "SISMEMBER session:user:alice %s", b.id), 1);
    assert_int_equal(store_get_rc(S, b.id, &r), 0); /* the other one stays */
    tess_session_clear(&r.sess);
    assert_int_equal(store_destroy_rc(S, a.id), 0); /* absent: still 0 */
    assert_int_equal(S->stats.errors, 0);
    tess_session_clear(&a);
    tess_session_clear(&b);
}

static void test_destroy_user(void **state)
{
    tess_session_t a[3], b[2];
    result_t r = {0};
    int64_t now = tess_now_ms();
    (void)state;

    for (int i = 0; i < 3; i++) {
        make_session(&a[i], "alice", now);
        assert_int_equal(store_set_rc(S, &a[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        make_session(&b[i], "bob", now);
        assert_int_equal(store_set_rc(S, &b[i]), 0);
    }
    assert_int_equal(store_destroy_user_rc(S, "alice"), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_get_rc(S, a[i].id, &r), TESS_ENOTFOUND);
        assert_int_equal(rs_cmd_int(&RS, "EXISTS session:%s", a[i].id), 0);
    }
    assert_int_equal(rs_cmd_int(&RS, "EXISTS session:user:alice"), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(store_get_rc(S, b[i].id, &r), 0);
        assert_string_equal(r.sess.user_id, "bob");
        tess_session_clear(&r.sess);
    }
    assert_int_equal(rs_cmd_int(&RS, "SCARD session:user:bob"), 2);
    assert_int_equal(store_destroy_user_rc(S, "nobody"), 0); /* unknown user: fine */
    for (int i = 0; i < 3; i++)
        tess_session_clear(&a[i]);
    for (int i = 0; i < 2; i++)
        tess_session_clear(&b[i]);
}

static void test_ping(void **state)
{
    (void)state;
    long long before = rs_cmd_int(&RS, "DBSIZE");
    assert_int_equal(store_ping_rc(S), 0);
    assert_int_equal(rs_cmd_int(&RS, "DBSIZE"), before);
    assert_int_equal(S->stats.errors, 0);
}

static void iso_time(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}

/* Documents as connect-redis + express-session write them (numeric userId, own fields, EX ttl). */
static void test_connect_redis_documents(void **state)
{
    result_t r = {0};
    char doc[512], iso[40];
    int64_t now = tess_now_ms();
    (void)state;

    iso_time(now + HOUR, iso, sizeof(iso));
    snprintf(doc, sizeof(doc),
             "{\"cookie\":{\"originalMaxAge\":3600000,\"expires\":\"%s\",\"httpOnly\":true,\"path\":\"/\"},"
             "\"userId\":42,\"views\":3}",
             iso);
    rs_cmd(&RS, "SET session:express-1 %s EX 1800", doc);
    rs_cmd(&RS, "SADD session:user:42 express-1");
    assert_int_equal(store_get_rc(S, "express-1", &r), 0);
    assert_string_equal(r.sess.id, "express-1");
    assert_string_equal(r.sess.user_id, "42");
    assert_int_equal(r.sess.max_age_ms, HOUR);
    assert_near(r.sess.expires_ms, now + 1800 * 1000, 1000); /* the key's TTL is the truth, not cookie.expires */
    assert_non_null(r.sess.extra_json);
    assert_non_null(strstr(r.sess.extra_json, "\"views\":3"));
    tess_session_clear(&r.sess);

    /* without a TTL the document's cookie.expires governs */
    rs_cmd(&RS, "SET session:express-2 %s", doc);
    assert_int_equal(store_get_rc(S, "express-2", &r), 0);
    assert_near(r.sess.expires_ms, now + HOUR, 1000);
    tess_session_clear(&r.sess);

    /* an unreadable document is no session, and no backend error */
    rs_cmd(&RS, "SET session:express-3 %s", "{\"cookie\":");
    assert_int_equal(store_get_rc(S, "express-3", &r), TESS_ENOTFOUND);
    assert_int_equal(S->stats.errors, 0);

    /* destroy finds the numeric userId's index */
    assert_int_equal(store_destroy_rc(S, "express-1"), 0);
    assert_int_equal(rs_cmd_int(&RS, "EXISTS session:express-1"), 0);
    assert_int_equal(rs_cmd_int(&RS, "SISMEMBER session:user:42 express-1"), 0);
}

/* One shared connection under two stores with their own prefixes; closing a store keeps the connection. */
static void test_shared_connection(void **state)
{
    tess_redis_t *conn = NULL;
    tess_store_t *a = NULL, *b = NULL;
    tess_session_t s;
    result_t r = {0};
    char err[256] = "";
    (void)state;

    assert_int_equal(tess_redis_open(&conn, tess_poll_loop_base(L), RS.url, TIMEOUT_MS, err, sizeof(err)), 0);
    tess_redis_opts_t oa = {.conn = conn, .prefix = "a:"}, ob = {.conn = conn, .prefix = "b:"};
    open_store(&a, &oa);
    open_store(&b, &ob);
    make_session(&s, "carol", tess_now_ms());
    assert_int_equal(store_set_rc(a, &s), 0);
    assert_int_equal(rs_cmd_int(&RS, "EXISTS a:%s", s.id), 1);
    assert_int_equal(rs_cmd_int(&RS, "SISMEMBER a:user:carol %s", s.id), 1);
    memset(&r, 0, sizeof(r));
    assert_int_equal(tess_store_get(b, tess_str(s.id), on_result, &r), 0);
    assert_int_equal(store_wait(&r), TESS_ENOTFOUND); /* another prefix, another namespace */

    tess_store_close(a);
    assert_int_equal(tess_redis_connected(conn), 1);
    assert_int_equal(store_ping_rc(b), 0);
    tess_store_close(b);
    assert_int_equal(tess_redis_connected(conn), 1);
    tess_redis_close(conn);
    tess_session_clear(&s);
}

static void test_open_refusals(void **state)
{
    tess_store_t *st = (tess_store_t *)&st;
    char err[256] = "", prefix[80];
    (void)state;

    tess_redis_opts_t bad_url = {.url = "http://localhost"};
    assert_int_equal(tess_redisstore_open(&st, tess_poll_loop_base(L), &bad_url, err, sizeof(err)), TESS_EINVAL);
    assert_null(st);
    assert_true(strlen(err) > 0);
    memset(prefix, 'p', sizeof(prefix) - 1);
    prefix[sizeof(prefix) - 1] = '\0';
    tess_redis_opts_t long_prefix = {.url = RS.url, .prefix = prefix};
    err[0] = '\0';
    assert_int_equal(tess_redisstore_open(&st, tess_poll_loop_base(L), &long_prefix, err, sizeof(err)), TESS_EINVAL);
    assert_null(st);
    assert_non_null(strstr(err, "prefix"));
}

/* Closing the store completes what is in flight with TESS_EUNAVAIL (exactly once). */
static void test_close_completes_pending(void **state)
{
    result_t r = {0};
    (void)state;

    assert_int_equal(tess_store_get(S, TESS_STR_LIT("in-flight"), on_result, &r), 0);
    assert_int_equal(r.calls, 0);
    tess_store_close(S);
    S = NULL;
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, TESS_EUNAVAIL);
    tess_poll_loop_run_once(L, 0);
    assert_int_equal(r.calls, 1);
}

/* Every operation fails (fast) while Redis is gone, and the store uses the returning server by itself. */
static void test_killed_server(void **state)
{
    tess_session_t s;
    result_t r = {0};
    int64_t t0;
    (void)state;

    make_session(&s, "alice", tess_now_ms());
    assert_int_equal(store_set_rc(S, &s), 0);
    rs_kill(&RS);

    t0 = tess_mono_ms();
    assert_int_equal(store_get_rc(S, s.id, &r), TESS_EUNAVAIL);
    assert_int_equal(store_set_rc(S, &s), TESS_EUNAVAIL);
    assert_int_equal(store_touch_rc(S, s.id, tess_now_ms() + HOUR), TESS_EUNAVAIL);
    assert_int_equal(store_destroy_rc(S, s.id), TESS_EUNAVAIL);
    assert_int_equal(store_destroy_user_rc(S, "alice"), TESS_EUNAVAIL);
    assert_int_equal(store_ping_rc(S), TESS_EUNAVAIL);
    assert_true(tess_mono_ms() - t0 < TIMEOUT_MS); /* all six: none waited for a timeout */
    assert_int_equal(S->stats.errors, 6);
    assert_int_equal(tess_redisstore_connected(S), 0);

    rs_start(&RS); /* same socket, an empty server */
    rs_run_until(L, store_connected, S, RS_WAIT_MS, "store reconnected");
    assert_int_equal(store_ping_rc(S), 0);
    assert_int_equal(store_get_rc(S, s.id, &r), TESS_ENOTFOUND); /* nothing persisted */
    assert_int_equal(store_set_rc(S, &s), 0);
    assert_int_equal(store_get_rc(S, s.id, &r), 0);
    assert_string_equal(r.sess.id, s.id);
    tess_session_clear(&r.sess);
    tess_session_clear(&s);
}

/* A paused server closes no connection: commands time out (TESS_ETIMEOUT) and the store recovers. */
static void test_paused_server(void **state)
{
    tess_session_t s;
    result_t r = {0};
    int64_t t0, took;
    (void)state;

    make_session(&s, "alice", tess_now_ms());
    assert_int_equal(store_set_rc(S, &s), 0);
    rs_pause(&RS);
    t0 = tess_mono_ms();
    assert_int_equal(store_get_rc(S, s.id, &r), TESS_ETIMEOUT);
    took = tess_mono_ms() - t0;
    assert_true(took >= TIMEOUT_MS - 10);
    assert_true(took < TIMEOUT_MS + 500);
    assert_int_equal(S->stats.errors, 1);

    rs_resume(&RS);
    /* back within the reconnect backoff (capped at 500 ms); the session was kept */
    rs_run_until(L, store_connected, S, RS_WAIT_MS, "store reconnected");
    assert_int_equal(store_get_rc(S, s.id, &r), 0);
    assert_string_equal(r.sess.user_id, "alice");
    tess_session_clear(&r.sess);
    tess_session_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_expires_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_touch_no_resurrection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_redis_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_completes_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_server, setup, teardown),
    };
    return cmocka_run_group_tests(tests, rs_group_setup, rs_group_teardown);
}
