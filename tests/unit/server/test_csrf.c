/*
 * Unit tests of the cross-site request check (server/csrf.h): the verdict for every method, Origin and
 * Sec-Fetch-Site combination, and the Content-Type rule for bodies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "server/csrf.h"

static const app_origins_t own_host; /* empty: the request's own host */

/* A same-origin JSON POST to 127.0.0.1:8080, as a browser sends it; tests change one thing at a time. */
static csrf_input_t base(void)
{
    csrf_input_t in;
    memset(&in, 0, sizeof(in));
    in.method = TESS_STR_LIT("POST");
    in.origins = 1;
    in.origin = TESS_STR_LIT("http://127.0.0.1:8080");
    in.fetch_site = TESS_STR_LIT("same-origin");
    in.authority = TESS_STR_LIT("127.0.0.1:8080");
    in.content_types = 1;
    in.content_type = TESS_STR_LIT("application/json");
    in.body_len = 2;
    return in;
}

static void test_json_type(void **state)
{
    static const char *const yes[] = {
        "application/json",   "Application/JSON", "application/json; charset=utf-8", "application/json;charset=UTF-8",
        " application/json ", "application/json;"};
    static const char *const no[] = {"",
                                     "text/plain",
                                     "text/plain;charset=UTF-8",
                                     "application/x-www-form-urlencoded",
                                     "multipart/form-data; boundary=x",
                                     "application/jsonp",
                                     "application/json-seq",
                                     "application/json, text/plain",
                                     "application/ld+json",
                                     "application/jso",
                                     "text/json",
                                     "application /json"};
    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); ++i) {
        if (!csrf_json_type(tess_str(yes[i])))
            fail_msg("'%s' refused", yes[i]);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); ++i) {
        if (csrf_json_type(tess_str(no[i])))
            fail_msg("'%s' accepted", no[i]);
    }
}

static void test_methods(void **state)
{
    static const char *const changing[] = {"POST", "PUT", "PATCH", "DELETE", "OPTIONS", "post", "BREW"};
    (void)state;

    for (size_t i = 0; i < sizeof(changing) / sizeof(changing[0]); ++i) {
        csrf_input_t in = base();
        in.method = tess_str(changing[i]);
        assert_int_equal(csrf_judge(&in, &own_host), CSRF_OK);
        in.origin = TESS_STR_LIT("https://evil.example");
        if (csrf_judge(&in, &own_host) != CSRF_FORBIDDEN)
            fail_msg("%s from another site passed", changing[i]);
        in = base();
        in.method = tess_str(changing[i]);
        in.content_type = TESS_STR_LIT("text/plain");
        assert_int_equal(csrf_judge(&in, &own_host), CSRF_NOT_JSON);
    }
    /* GET and HEAD change nothing: never refused, whatever they carry */
    for (int k = 0; k < 2; ++k) {
        csrf_input_t in = base();
        in.method = k ? TESS_STR_LIT("HEAD") : TESS_STR_LIT("GET");
        in.origin = TESS_STR_LIT("https://evil.example");
        in.fetch_site = TESS_STR_LIT("cross-site");
        in.content_type = TESS_STR_LIT("text/plain");
        assert_int_equal(csrf_judge(&in, &own_host), CSRF_OK);
    }
}

static void test_origin(void **state)
{
    csrf_input_t in;
    app_origins_t list;
    char err[128];
    (void)state;

    in = base();
    in.origin = TESS_STR_LIT("null");
    assert_int_equal(csrf_judge(&in, &own_host), CSRF_FORBIDDEN);
    in = base();
    in.origins = 2; /* a second Origin, whatever the first says */
    assert_int_equal(csrf_judge(&in, &own_host), CSRF_FORBIDDEN);
    in = base();
    in.origin = TESS_STR_LIT("http://127.0.0.1:9999");
    assert_int_equal(csrf_judge(&in, &own_host), CSRF_FORBIDDEN);
    /* the Origin decides when there is one: an allowed page of another site passes (cross-site by fetch) */
    assert_int_equal(app_origins_parse(&list, "https://app.example.com", "X", err, sizeof(err)), 0);
    in = base();
    in.origin = TESS_STR_LIT("https://app.example.com");
    in.fetch_site = TESS_STR_LIT("cross-site");
    assert_int_equal(csrf_judge(&in, &list), CSRF_OK);
    assert_int_equal(csrf_judge(&in, &own_host), CSRF_FORBIDDEN);
    /* a sibling subdomain is same-site to the browser, and another origin here */
    in = base();
    in.authority = TESS_STR_LIT("chat.example.com");
    in.origin = TESS_STR_LIT("https://blog.example.com");
    in.fetch_site = TESS_STR_LIT("same-site");
    assert_int_equal(csrf_judge(&in, &own_host), CSRF_FORBIDDEN);
    in.origin = TESS_STR_LIT("https://chat.example.com");
    assert_int_equal(csrf_judge(&in, &own_host), CSRF_OK);
}

static void test_no_origin(void **state)
{
    static const char *const refused[] = {"cross-site", "same-site", "CROSS-SITE", "weird"};
    static const char *const passed[] = {"", "same-origin", "none", "Same-Origin"};
    (void)state;

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); ++i) {
        csrf_input_t in = base();
        in.origins = 0;
        in.origin = tess_strn(NULL, 0);
        in.fetch_site = tess_str(refused[i]);
        if (csrf_judge(&in, &own_host) != CSRF_FORBIDDEN)
            fail_msg("no Origin, Sec-Fetch-Site '%s': passed", refused[i]);
        in.body_len = 0; /* a bodyless POST (logout, join, close) too */
        assert_int_equal(csrf_judge(&in, &own_host), CSRF_FORBIDDEN);
    }
    for (size_t i = 0; i < sizeof(passed) / sizeof(passed[0]); ++i) {
        csrf_input_t in = base();
        in.origins = 0; /* curl, a server-side client */
        in.origin = tess_strn(NULL, 0);
        in.fetch_site = tess_str(passed[i]);
        if (csrf_judge(&in, &own_host) != CSRF_OK)
            fail_msg("no Origin, Sec-Fetch-Site '%s': refused", passed[i]);
        in.content_type = TESS_STR_LIT("application/x-www-form-urlencoded"); /* curl -d */
        assert_int_equal(csrf_judge(&in, &own_host), CSRF_NOT_JSON);
    }
}

static void test_body_type(void **state)
{
    csrf_input_t in;
    (void)state;

    in = base();
    in.content_types = 0;
    in.content_type = tess_strn(NULL, 0);
    assert_int_equal(csrf_judge(&in, &own_host), CSRF_NOT_JSON);
    in.body_len = 0; /* no body, no type needed */
    assert_int_equal(csrf_judge(&in, &own_host), CSRF_OK);
    in = base();
    in.content_types = 2; /* two types: which one would a reader believe? */
    assert_int_equal(csrf_judge(&in, &own_host), CSRF_NOT_JSON);
    in = base();
    in.content_type = TESS_STR_LIT("text/plain");
    in.body_len = 0;
    assert_int_equal(csrf_judge(&in, &own_host), CSRF_OK);
    /* the Origin is judged first: another site's form post is 403, not 415 */
    in = base();
    in.origin = TESS_STR_LIT("https://evil.example");
    in.content_type = TESS_STR_LIT("text/plain");
    assert_int_equal(csrf_judge(&in, &own_host), CSRF_FORBIDDEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_type), cmocka_unit_test(test_methods),   cmocka_unit_test(test_origin),
        cmocka_unit_test(test_no_origin), cmocka_unit_test(test_body_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
