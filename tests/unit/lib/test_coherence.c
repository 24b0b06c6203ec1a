/*
 * Unit tests of the invalidation listener (tessera/coherence.h) against a real redis-server
 * (tests/support/redis_server.h) on the poll loop: state reports, key invalidations from other clients,
 * FLUSHDB, the epoch bump, a killed and a paused (SIGSTOP) server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "redis_server.h"
#include "tessera/coherence.h"
#include "tessera/error.h"
#include "tessera/pollloop.h"

#define DOWN_MS 1500   /* a lost or paused server is reported within this (heartbeat 200 ms + liveness 500 ms) */
#define MAX_EVENTS 256 /* recorded callbacks */

static tess_inval_t *INV;

/* What the callbacks saw, in order. */
typedef struct seen {
    int states[MAX_EVENTS];    /* on_state values */
    int nstates;               /* their count */
    int64_t state_at;          /* tess_mono_ms() of the last on_state */
    char keys[MAX_EVENTS][64]; /* on_key keys ("" = everything) */
    int nkeys;                 /* their count */
} seen_t;

static seen_t SEEN;

static void on_key(void *arg, tess_str_t key)
{
    seen_t *s = arg;
    assert_true(s->nkeys < MAX_EVENTS);
    assert_true(key.len < sizeof(s->keys[0]));
    memcpy(s->keys[s->nkeys], key.ptr != NULL ? key.ptr : "", key.len);
    s->keys[s->nkeys++][key.len] = '\0';
}

static void on_state(void *arg, int up)
{
    seen_t *s = arg;
    assert_true(s->nstates < MAX_EVENTS);
    s->states[s->nstates++] = up;
    s->state_at = tess_mono_ms();
}

static int is_up(void *arg)
{
    (void)arg;
    return SEEN.nstates > 0 && SEEN.states[SEEN.nstates - 1] == 1;
}

static int is_down(void *arg)
{
    (void)arg;
    return SEEN.nstates > 0 && SEEN.states[SEEN.nstates - 1] == 0;
}

static int key_count(const char *key)
{
    int n = 0;
    for (int i = 0; i < SEEN.nkeys; i++)
        n += strcmp(SEEN.keys[i], key) == 0;
    return n;
}

typedef struct key_wait {
    const char *key; /* key */
    int n;           /* how many reports of it */
} key_wait_t;

static int key_reported(void *arg)
{
    key_wait_t *w = arg;
    return key_count(w->key) >= w->n;
}

/* Waits for the `n`th report of `key`. */
static void wait_key_n(const char *key, int n)
{
    key_wait_t w = {key, n};
    rs_run_until(L, key_reported, &w, RS_WAIT_MS, key);
}

static void wait_key(const char *key)
{
    wait_key_n(key, 1);
}

static void assert_states(const int *want, int n)
{
    assert_int_equal(SEEN.nstates, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(SEEN.states[i], want[i]);
}

static long long epoch(void)
{
    char v[32];
    return rs_cmd_str(&RS, v, sizeof(v), "GET tessera:epoch") ? strtoll(v, NULL, 10) : 0;
}

/* ---- fixture ------------------------------------------------------------------------------------------- */

static const char *const PREFIXES[] = {"session:", "tessera:"};

static int setup(void **state)
{
    char err[256] = "";
    (void)state;
    rs_fresh(&RS);
    memset(&SEEN, 0, sizeof(SEEN));
    tess_inval_opts_t o = {.url = RS.url,
                           .prefixes = PREFIXES,
                           .nprefixes = 2,
                           .epoch_key = "tessera:epoch",
                           .on_key = on_key,
                           .on_state = on_state,
                           .arg = &SEEN};
    assert_int_equal(tess_inval_open(&INV, tess_poll_loop_base(L), &o, err, sizeof(err)), 0);
    assert_int_equal(tess_inval_up(INV), 0); /* asynchronous: not before the loop ran */
    rs_run_until(L, is_up, NULL, RS_WAIT_MS, "listener up");
    return 0;
}

static int teardown(void **state)
{
    int n;
    (void)state;
    tess_inval_free(INV);
    INV = NULL;
    /* no callback after free */
    n = SEEN.nstates + SEEN.nkeys;
    tess_poll_loop_run_once(L, 0);
    assert_int_equal(SEEN.nstates + SEEN.nkeys, n);
    rs_loop_clean();
    return 0;
}

/* ---- tests --------------------------------------------------------------------------------------------- */

static void test_up_after_open(void **state)
{
    (void)state;
    const int want[] = {1};
    assert_states(want, 1);
    assert_int_equal(tess_inval_up(INV), 1);
    assert_int_equal(epoch(), 1); /* INCR'ed before "up" */
    /* the epoch key is under a tracked prefix: its own INCR is reported too, and nothing else */
    wait_key("tessera:epoch");
    assert_int_equal(SEEN.nkeys, 1);
}

static int expired(void *key)
{
    /* an access makes Redis expire the key at once (and report it) */
    return rs_cmd_int(&RS, "EXISTS %s", (const char *)key) == 0;
}

static void test_key_invalidation(void **state)
{
    (void)state;
    rs_cmd(&RS, "SET session:abc 1");
    wait_key("session:abc");
    rs_cmd(&RS, "SET tessera:deny:j1 1");
    wait_key("tessera:deny:j1");

    /* untracked prefixes are not reported: invalidations arrive in order, so the marker comes after */
    rs_cmd(&RS, "SET other:x 1");
    rs_cmd(&RS, "SET session:marker 1");
    wait_key("session:marker");
    assert_int_equal(key_count("other:x"), 0);

    /* several keys in one command; a deletion; an expiry */
    rs_cmd(&RS, "MSET session:m1 1 session:m2 2");
    wait_key("session:m1");
    wait_key("session:m2");
    rs_cmd(&RS, "DEL session:abc");
    wait_key_n("session:abc", 2);
    rs_cmd(&RS, "SET session:short 1 PX 30");
    wait_key("session:short");
    rs_run_until(L, expired, "session:short", RS_WAIT_MS, "session:short expired");
    wait_key_n("session:short", 2);
    assert_int_equal(key_count(""), 0); /* nothing was "everything" */
    assert_int_equal(tess_inval_up(INV), 1);
}

static int everything_seen(void *arg)
{
    (void)arg;
    return key_count("") > 0;
}

static void test_flushdb(void **state)
{
    (void)state;
    rs_cmd(&RS, "FLUSHDB");
    rs_run_until(L, everything_seen, NULL, RS_WAIT_MS, "FLUSHDB reported as everything");
    assert_int_equal(key_count(""), 1);
    assert_int_equal(key_count("") + key_count("tessera:epoch"), SEEN.nkeys); /* nothing else */
    assert_int_equal(tess_inval_up(INV), 1);
}

static void test_killed_server(void **state)
{
    int64_t t0;
    (void)state;

    rs_kill(&RS);
    t0 = tess_mono_ms();
    rs_run_until(L, is_down, NULL, DOWN_MS, "down after the kill");
    assert_true(SEEN.state_at - t0 < DOWN_MS);
    assert_int_equal(tess_inval_up(INV), 0);

    rs_start(&RS); /* an empty server on the same socket */
    rs_run_until(L, is_up, NULL, RS_WAIT_MS, "up after the restart");
    const int want[] = {1, 0, 1};
    assert_states(want, 3);
    assert_int_equal(epoch(), 1); /* absent on the new server: only the listener's INCR made it 1 */
    /* and tracking works again */
    rs_cmd(&RS, "SET session:after 1");
    wait_key("session:after");
}

static void test_paused_server(void **state)
{
    int64_t t0;
    long long e;
    (void)state;

    e = epoch();
    rs_pause(&RS);
    t0 = tess_mono_ms();
    rs_run_until(L, is_down, NULL, DOWN_MS, "down while paused (heartbeat)");
    assert_true(SEEN.state_at - t0 < DOWN_MS);
    assert_int_equal(tess_inval_up(INV), 0);

    rs_resume(&RS);
    rs_run_until(L, is_up, NULL, RS_WAIT_MS, "up after SIGCONT");
    const int want[] = {1, 0, 1};
    assert_states(want, 3);
    assert_true(epoch() > e); /* copies from before the pause are stale */
    rs_cmd(&RS, "SET session:after-pause 1");
    wait_key("session:after-pause");
}

static void test_open_refusals(void **state)
{
    tess_inval_t *inv = (tess_inval_t *)&inv;
    char err[256] = "";
    (void)state;

    tess_inval_opts_t o = {.url = RS.url, .prefixes = PREFIXES, .nprefixes = 0, .on_key = on_key, .on_state = on_state};
    assert_int_equal(tess_inval_open(&inv, tess_poll_loop_base(L), &o, err, sizeof(err)), TESS_EINVAL);
    assert_null(inv);
    o.nprefixes = 17;
    assert_int_equal(tess_inval_open(&inv, tess_poll_loop_base(L), &o, err, sizeof(err)), TESS_EINVAL);
    o.nprefixes = 2;
    o.on_key = NULL;
    assert_int_equal(tess_inval_open(&inv, tess_poll_loop_base(L), &o, err, sizeof(err)), TESS_EINVAL);
    o.on_key = on_key;
    o.url = "tcp://nowhere";
    err[0] = '\0';
    assert_int_equal(tess_inval_open(&inv, tess_poll_loop_base(L), &o, err, sizeof(err)), TESS_EINVAL);
    assert_true(strlen(err) > 0);
    const char *empty[] = {""};
    o.url = RS.url;
    o.prefixes = empty;
    o.nprefixes = 1;
    assert_int_equal(tess_inval_open(&inv, tess_poll_loop_base(L), &o, err, sizeof(err)), TESS_EINVAL);
    assert_null(inv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_up_after_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_invalidation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flushdb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, rs_group_setup, rs_group_teardown);
}
