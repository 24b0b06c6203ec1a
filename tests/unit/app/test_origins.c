/*
 * Unit tests of the allowed origins (app/origins.h): normalization, the TESSERA_ALLOWED_ORIGINS list and the
 * match of an Origin header against the list or the request's own host (scheme, port, case, IPv6, "null").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "app/origins.h"

static void expect_norm(const char *in, const char *out)
{
    char buf[APP_ORIGIN_MAX + 1];
    int n = app_origin_normalize(tess_str(in), buf, sizeof(buf));
    if (out == NULL) {
        if (n >= 0)
            fail_msg("'%s' normalized to '%s', want a refusal", in, buf);
        return;
    }
    if (n < 0)
        fail_msg("'%s' refused, want '%s'", in, out);
    assert_string_equal(buf, out);
    assert_int_equal((size_t)n, strlen(out));
}

static void test_normalize(void **state)
{
    char long_host[APP_ORIGIN_MAX + 16];
    (void)state;

    expect_norm("https://chat.example.com", "https://chat.example.com");
    expect_norm("HTTPS://Chat.Example.COM", "https://chat.example.com");
    expect_norm("https://chat.example.com:443", "https://chat.example.com");
    expect_norm("http://chat.example.com:80", "http://chat.example.com");
    expect_norm("http://chat.example.com:443", "http://chat.example.com:443");
    expect_norm("https://chat.example.com:80", "https://chat.example.com:80");
    expect_norm("http://localhost:08080", "http://localhost:8080");
    expect_norm("http://127.0.0.1:8080", "http://127.0.0.1:8080");
    expect_norm("http://[::1]:8080", "http://[::1]:8080");
    expect_norm("http://[2001:DB8::1]", "http://[2001:db8::1]");
    expect_norm("https://xn--bcher-kva.example", "https://xn--bcher-kva.example");

    expect_norm("null", NULL);
    expect_norm("", NULL);
    expect_norm("*", NULL);
    expect_norm("https://*.example.com", NULL);
    expect_norm("https://", NULL);
    expect_norm("https://example.com/", NULL);
    expect_norm("https://example.com/app", NULL);
    expect_norm("https://example.com?x", NULL);
    expect_norm("https://user@example.com", NULL);
    expect_norm("https://example.com:", NULL);
    expect_norm("https://example.com:0", NULL);
    expect_norm("https://example.com:65536", NULL);
    expect_norm("https://example.com:123456", NULL);
    expect_norm("https://example.com:8x", NULL);
    expect_norm("https://exa mple.com", NULL);
    expect_norm("https://example.com\r\n", NULL);
    expect_norm("ftp://example.com", NULL);
    expect_norm("chrome-extension://abcdef", NULL);
    expect_norm("example.com", NULL);
    expect_norm("http://[::1", NULL);
    expect_norm("http://[]", NULL);
    expect_norm("http://[::g]", NULL);
    memcpy(long_host, "https://", 8);
    memset(long_host + 8, 'a', sizeof(long_host) - 9);
    long_host[sizeof(long_host) - 1] = '\0';
    expect_norm(long_host, NULL);
}

static void test_parse(void **state)
{
    app_origins_t o;
    char err[256] = "", list[2048];
    (void)state;

    assert_int_equal(app_origins_parse(&o, NULL, "X", err, sizeof(err)), 0);
    assert_int_equal(o.count, 0);
    assert_int_equal(app_origins_parse(&o, "", "X", err, sizeof(err)), 0);
    assert_int_equal(o.count, 0);
    assert_int_equal(
        app_origins_parse(&o, "https://A.example , http://b.example:8080,https://c.example:443", "X", err, sizeof(err)),
        0);
    assert_int_equal(o.count, 3);
    assert_string_equal(o.origin[0], "https://a.example");
    assert_string_equal(o.origin[1], "http://b.example:8080");
    assert_string_equal(o.origin[2], "https://c.example");

    assert_int_equal(app_origins_parse(&o, "https://a.example,", "TESSERA_ALLOWED_ORIGINS", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "TESSERA_ALLOWED_ORIGINS"));
    assert_int_equal(app_origins_parse(&o, "https://a.example/", "--allowed-origins", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--allowed-origins"));
    assert_non_null(strstr(err, "'https://a.example/'"));
    assert_int_equal(app_origins_parse(&o, "*", "X", err, sizeof(err)), -1);
    assert_int_equal(app_origins_parse(&o, "null", "X", err, sizeof(err)), -1);

    list[0] = '\0';
    for (int i = 0; i <= APP_ORIGINS_MAX; ++i)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%shttps://h%d.example", i ? "," : "", i);
    assert_int_equal(app_origins_parse(&o, list, "X", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "at most"));
}

static int allowed(const app_origins_t *o, const char *origin, const char *authority)
{
    return app_origin_allowed(o, tess_str(origin), tess_str(authority));
}

static void test_own_host(void **state)
{
    app_origins_t none;
    (void)state;

    memset(&none, 0, sizeof(none));
    assert_true(allowed(&none, "http://127.0.0.1:8080", "127.0.0.1:8080"));
    assert_true(allowed(&none, "http://localhost:8080", "LocalHost:8080"));
    assert_true(allowed(&none, "https://chat.example.com", "chat.example.com"));     /* behind a TLS proxy */
    assert_true(allowed(&none, "https://chat.example.com", "chat.example.com:443")); /* the default port, written */
    assert_true(allowed(&none, "http://chat.example.com", "chat.example.com"));      /* the scheme is not known */
    assert_true(allowed(&none, "https://chat.example.com:8443", "chat.example.com:8443"));
    assert_true(allowed(&none, "http://[::1]:8080", "[::1]:8080"));

    assert_false(allowed(&none, "https://chat.example.com:8443", "chat.example.com")); /* proxy dropped the port */
    assert_false(allowed(&none, "http://127.0.0.1:9999", "127.0.0.1:8080"));
    assert_false(allowed(&none, "https://evil.example", "chat.example.com"));
    assert_false(allowed(&none, "https://app.chat.example.com", "chat.example.com")); /* a sibling: another origin */
    assert_false(allowed(&none, "https://example.com", "chat.example.com"));
    assert_false(allowed(&none, "https://chat.example.com.evil.example", "chat.example.com"));
    assert_false(allowed(&none, "null", "chat.example.com"));
    assert_false(allowed(&none, "https://chat.example.com", ""));
    assert_false(allowed(&none, "https://chat.example.com", "chat.example.com:bad"));
    assert_false(allowed(&none, "", "chat.example.com"));
}

static void test_list(void **state)
{
    app_origins_t o;
    char err[256];
    (void)state;

    assert_int_equal(app_origins_parse(&o, "https://app.example.com,http://localhost:3000", "X", err, sizeof(err)), 0);
    assert_true(allowed(&o, "https://app.example.com", "api.example.com"));
    assert_true(allowed(&o, "https://APP.example.com:443", "anything"));
    assert_true(allowed(&o, "http://localhost:3000", "127.0.0.1:8080"));
    /* the list pins the scheme and replaces the own-host default */
    assert_false(allowed(&o, "http://app.example.com", "app.example.com"));
    assert_false(allowed(&o, "https://api.example.com", "api.example.com"));
    assert_false(allowed(&o, "http://localhost:3001", "127.0.0.1:8080"));
    assert_false(allowed(&o, "null", "app.example.com"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_own_host),
        cmocka_unit_test(test_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
