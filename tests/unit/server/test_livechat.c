/*
 * livechat_parse (src/server/livechat.c): the live event names of the change bus, and whose they are.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "server/livechat.h"

static int parse(const char *name, int64_t *id, live_event_t *ev, int *own)
{
    return livechat_parse(tess_strn(name, strlen(name)), id, ev, own);
}

static void test_well_formed(void **state)
{
    int64_t id = 0;
    live_event_t ev;
    int own = -1;
    (void)state;
    assert_int_equal(parse("live:12:read:agent:7:0123456789abcdef.3", &id, &ev, &own), 1);
    assert_int_equal(id, 12);
    assert_int_equal(ev.read, 1);
    assert_int_equal(ev.side, 1);
    assert_int_equal(ev.value, 7);
    assert_int_equal(own, 0); /* another process's origin */
    assert_int_equal(parse("live:1:typing:visitor:0:ffffffffffffffff.1", &id, &ev, &own), 1);
    assert_int_equal(ev.read, 0);
    assert_int_equal(ev.side, 0);
}

static void test_malformed(void **state)
{
    static const char *const bad[] = {
        "live:",
        "live:12",
        "live:12:read:agent:7",
        "live:0:read:agent:7:o.1",
        "live:-1:read:agent:7:o.1",
        "live:12:seen:agent:7:o.1",
        "live:12:read:admin:7:o.1",
        "live:12:read:agent:-7:o.1",
        "live:12:read:agent:x:o.1",
        "live:12:read:agent:7:",
        "live:12:read:agent:7:o.1:extra",
        "meta:12",
        "live:12::agent:7:o.1",
        "live:99999999999999999999999:read:agent:7:o.1",
    };
    int64_t id;
    live_event_t ev;
    int own;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        if (parse(bad[i], &id, &ev, &own) != 0)
            fail_msg("accepted %s", bad[i]);
    }
}

/* A process knows its own events (it handled them when it published them). */
static void test_own_origin(void **state)
{
    char name[96];
    int64_t id;
    live_event_t ev;
    int own = 0;
    (void)state;
    assert_int_equal(livechat_init(), 0);
    snprintf(name, sizeof(name), "live:3:typing:agent:0:%s.9", livechat_origin());
    assert_int_equal(parse(name, &id, &ev, &own), 1);
    assert_int_equal(own, 1);
    snprintf(name, sizeof(name), "live:3:typing:agent:0:%sx.9", livechat_origin());
    assert_int_equal(parse(name, &id, &ev, &own), 1);
    assert_int_equal(own, 0); /* a longer origin that starts like ours is not ours */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_well_formed),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_own_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
