/*
 * Unit tests of the Redis URL parser (src/lib/redis/rconn.h, internal): the accepted forms, the refused ones,
 * and that no error message ever carries the password.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis/rconn.h"
#include "tessera/error.h"

#define SECRET "Zebra-Secret-42"

/* Parses `url`, which must be accepted; the error buffer must stay untouched. */
static void parse_ok(const char *url, tess__redis_url_t *u)
{
    char err[256] = "untouched";
    int rc = tess__redis_url_parse(url, u, err, sizeof(err));
    if (rc != 0)
        fail_msg("'%s' refused (%d): %s", url, rc, err);
    assert_string_equal(err, "untouched");
}

/* Parses `url`, which must be refused with a non-empty reason that does not contain SECRET. */
static void parse_bad(const char *url)
{
    tess__redis_url_t u;
    char err[256] = "";
    int rc = tess__redis_url_parse(url, &u, err, sizeof(err));
    if (rc != TESS_EINVAL)
        fail_msg("'%s' accepted or wrong rc (%d), host '%s' port %d db %d", url, rc, u.host, u.port, u.db);
    assert_true(err[0] != '\0');
    if (strstr(err, SECRET) != NULL || strstr(err, "Zebra") != NULL)
        fail_msg("the error for '%s' shows the password: %s", url, err);
}

static void test_host_only(void **state)
{
    tess__redis_url_t u;
    (void)state;
    parse_ok("redis://cache.internal", &u);
    assert_string_equal(u.host, "cache.internal");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.path, "");
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "");
}

static void test_host_port_db(void **state)
{
    tess__redis_url_t u;
    (void)state;
    parse_ok("redis://127.0.0.1:6380", &u);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 0);

    parse_ok("redis://localhost:7000/5", &u);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 5);

    parse_ok("redis://localhost/2", &u); /* default port with a db */
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 2);

    parse_ok("redis://h:1/0", &u); /* the bounds of the port */
    assert_int_equal(u.port, 1);
    parse_ok("redis://h:65535", &u);
    assert_int_equal(u.port, 65535);
}

static void test_credentials(void **state)
{
    tess__redis_url_t u;
    (void)state;
    parse_ok("redis://:" SECRET "@redis.example", &u);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, SECRET);
    assert_string_equal(u.host, "redis.example");
    assert_int_equal(u.port, 6379);

    parse_ok("redis://app:" SECRET "@10.0.0.7:6390/3", &u);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, SECRET);
    assert_string_equal(u.host, "10.0.0.7");
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 3);

    /* Percent-encoded: '@', ':', '/', '%' and a space may appear in a password only encoded. */
    parse_ok("redis://:p%40ss%3Aw%2Frd%25%20x@host:6379", &u);
    assert_string_equal(u.password, "p@ss:w/rd% x");
    assert_string_equal(u.host, "host");
    parse_ok("redis://us%65r:pw@host", &u);
    assert_string_equal(u.user, "user");
    assert_string_equal(u.password, "pw");
}

static void test_ipv6(void **state)
{
    tess__redis_url_t u;
    (void)state;
    parse_ok("redis://[::1]:6380", &u);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6380);
    parse_ok("redis://:pw@[fe80::1]/4", &u);
    assert_string_equal(u.host, "fe80::1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 4);
    assert_string_equal(u.password, "pw");
}

static void test_unix_socket(void **state)
{
    tess__redis_url_t u;
    (void)state;
    parse_ok("unix:///tmp/redis.sock", &u);
    assert_string_equal(u.path, "/tmp/redis.sock");
    assert_string_equal(u.host, "");
    assert_int_equal(u.db, 0);

    parse_ok("unix:///tmp/r.sock?db=2", &u);
    assert_string_equal(u.path, "/tmp/r.sock");
    assert_int_equal(u.db, 2);
}

static void test_refused(void **state)
{
    static const char *bad[] = {
        "",
        "http://host:6379",
        "rediss://host", /* TLS is not supported: refused, not silently plain */
        "redis:/host",
        "redis://",
        "redis://:6379",
        "redis:///3",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:99999",
        "redis://host:123456789",
        "redis://host:",
        "redis://host:port",
        "redis://host:-1",
        "redis://host:63 79",
        "redis://host:6379/notanumber",
        "redis://host:6379/-1",
        "redis://host:6379/3x",
        "redis://[::1",
        "redis://[::1]x",
        "redis://@[]", /* found by fuzz_session: an empty bracketed host */
        "redis://[]:6379",
        "unix://",
        "unix://relative/redis.sock",
        "unix:///p?x=1",
        "unix:///p?db=",
        "unix:///p?db=two",
        "unix:///p?db=-1",
        "unix:///p?db=2&x=1",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_bad(bad[i]);
}

static void test_overlong(void **state)
{
    tess__redis_url_t u;
    char url[2048], big[1024];
    (void)state;

    /* host: 255 bytes fit, 256 do not */
    memset(big, 'h', 255);
    big[255] = '\0';
    snprintf(url, sizeof(url), "redis://%s:6379", big);
    parse_ok(url, &u);
    assert_int_equal(strlen(u.host), 255);
    memset(big, 'h', 256);
    big[256] = '\0';
    snprintf(url, sizeof(url), "redis://%s:6379", big);
    parse_bad(url);
    snprintf(url, sizeof(url), "redis://[%s]:6379", big);
    parse_bad(url);

    /* password: 255 bytes fit, 256 and 1000 do not (and the refusal does not echo it) */
    memcpy(big, SECRET, strlen(SECRET));
    memset(big + strlen(SECRET), 'p', 255 - strlen(SECRET));
    big[255] = '\0';
    snprintf(url, sizeof(url), "redis://:%s@host", big);
    parse_ok(url, &u);
    assert_int_equal(strlen(u.password), 255);
    memset(big + strlen(SECRET), 'p', 256 - strlen(SECRET));
    big[256] = '\0';
    snprintf(url, sizeof(url), "redis://:%s@host", big);
    parse_bad(url);
    memset(big + strlen(SECRET), 'p', 1000 - strlen(SECRET));
    big[1000] = '\0';
    snprintf(url, sizeof(url), "redis://user:%s@host", big);
    parse_bad(url);

    /* user: 127 bytes fit, 128 do not */
    memset(big, 'u', 128);
    big[128] = '\0';
    snprintf(url, sizeof(url), "redis://%s:" SECRET "@host", big);
    parse_bad(url);
    big[127] = '\0';
    snprintf(url, sizeof(url), "redis://%s:" SECRET "@host", big);
    parse_ok(url, &u);

    /* unix path: 255 bytes fit, 256 do not */
    big[0] = '/';
    memset(big + 1, 's', 254);
    big[255] = '\0';
    snprintf(url, sizeof(url), "unix://%s", big);
    parse_ok(url, &u);
    big[255] = 's';
    big[256] = '\0';
    snprintf(url, sizeof(url), "unix://%s", big);
    parse_bad(url);
}

/* Every refusal of a URL that carries a password: the reason never contains it. */
static void test_errors_never_show_password(void **state)
{
    static const char *bad[] = {
        "redis://:" SECRET "@",
        "redis://:" SECRET "@:6379",
        "redis://:" SECRET "@host:0",
        "redis://:" SECRET "@host:99999",
        "redis://:" SECRET "@host:port",
        "redis://:" SECRET "@host:6379/notanumber",
        "redis://:" SECRET "@host:6379/-1",
        "redis://user:" SECRET "@[::1",
        "redis://user:" SECRET "%ZZ@host",     /* malformed escape in the password */
        "redis://user:" SECRET "%00@host",     /* NUL byte in the password */
        "redis://user%ZZ:" SECRET "@host",     /* malformed escape in the user */
        "redis://:" SECRET "/x@host:6379",     /* an unencoded '/' in the password */
        "http://:" SECRET "@host:6379",        /* wrong scheme */
        "unix:///tmp/r.sock?password=" SECRET, /* not a parameter unix:// takes */
        "unix://" SECRET,
    };
    tess__redis_url_t u;
    char err[8];
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_bad(bad[i]);
    /* A tiny error buffer is filled within its bounds (snprintf semantics). */
    memset(err, 'x', sizeof(err));
    assert_int_equal(tess__redis_url_parse("redis://host:0", &u, err, sizeof(err)), TESS_EINVAL);
    assert_true(memchr(err, '\0', sizeof(err)) != NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_only),   cmocka_unit_test(test_host_port_db),
        cmocka_unit_test(test_credentials), cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_unix_socket), cmocka_unit_test(test_refused),
        cmocka_unit_test(test_overlong),    cmocka_unit_test(test_errors_never_show_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
