/*
 * Unit tests of the route table and its match (server/router.h): every route by method and path, HEAD on
 * GET routes, 405 with its Allow list, the two kinds of 404, near misses (trailing slash, prefix, suffix)
 * and very long paths. Every method and path is passed in a heap block of its exact length (exactbuf.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "exactbuf.h"
#include "server/livechat.h"
#include "server/router.h"
#include "strfill.h"

#define ALLOW_CAP 64 /* as router_on_req */

/* One route_find() call and everything it answered. */
typedef struct found {
    const route_t *rt; /* the route, or NULL */
    int64_t id;        /* *id */
    int status;        /* *status (untouched on a hit: -1) */
    const char *why;   /* *why (untouched on a hit: NULL) */
    char allow[ALLOW_CAP];
} found_t;

static found_t find(const char *method, tess_str_t path)
{
    exactbuf_t mb = {0};
    found_t f = {.id = 12345, .status = -1, .why = NULL};
    memset(f.allow, 'x', sizeof(f.allow)); /* route_find must terminate it */
    f.rt = route_find(exactbuf_str(&mb, method), path, &f.id, &f.status, &f.why, f.allow, sizeof(f.allow));
    exactbuf_free(&mb);
    return f;
}

static found_t find_s(const char *method, const char *path)
{
    exactbuf_t pb = {0};
    found_t f = find(method, exactbuf_str(&pb, path));
    exactbuf_free(&pb);
    return f;
}

static void assert_not_found(const char *method, const char *path, const char *why)
{
    found_t f = find_s(method, path);
    if (f.rt != NULL)
        fail_msg("%s %s: found a route, want 404 '%s'", method, path, why);
    assert_int_equal(f.status, 404);
    assert_string_equal(f.why, why);
    assert_int_equal(f.id, 0);
    assert_string_equal(f.allow, "");
}

static void assert_not_allowed(const char *method, const char *path, const char *allow)
{
    found_t f = find_s(method, path);
    if (f.rt != NULL)
        fail_msg("%s %s: found a route, want 405", method, path);
    assert_int_equal(f.status, 405);
    assert_string_equal(f.why, "method not allowed on this path");
    assert_string_equal(f.allow, allow);
    assert_int_equal(f.id, 0);
}

/* ---- every route --------------------------------------------------------------------------------------- */

typedef struct want {
    const char *method;
    const char *path;
    tess_req_handler fn;
    const char *fn_name;
    int64_t id;
    int auth;
    int body;
} want_t;

#define H(f) f, #f

static const want_t ROUTES[] = {
    {"GET", "/healthz", H(h_healthz), 0, 0, 0},
    {"GET", "/readyz", H(h_readyz), 0, 0, 0},
    {"GET", "/metrics", H(h_metrics), 0, 0, 0},
    {"GET", "/auth", H(h_auth), 0, 1, 0},
    {"POST", "/api/auth/login", H(h_login), 0, 0, 1},
    {"POST", "/api/auth/logout", H(h_logout), 0, 0, 0},
    {"GET", "/api/auth/session", H(h_session), 0, 1, 0},
    {"POST", "/api/prechats", H(h_prechat_create), 0, 1, 1},
    {"GET", "/api/prechats", H(h_prechat_list), 0, 1, 0},
    {"GET", "/api/prechats/7/meta", H(h_prechat_meta), 7, 1, 0},
    {"GET", "/api/prechats/42/messages", H(h_message_list), 42, 1, 0},
    {"POST", "/api/prechats/42/messages", H(h_message_add), 42, 1, 1},
    {"POST", "/api/prechats/1/join", H(h_prechat_join), 1, 1, 0},
    {"POST", "/api/prechats/123456789/close", H(h_prechat_close), 123456789, 1, 0},
    {"POST", "/api/prechats/5/typing", H(h_prechat_typing), 5, 1, 0},
    {"POST", "/api/prechats/5/read", H(h_prechat_read), 5, 1, 1},
    {"GET", "/api/prechats/5/transcript", H(h_prechat_transcript), 5, 1, 0},
    {"GET", "/api/prechats/9", H(h_prechat_get), 9, 1, 0},
    /* the largest id: 18 digits */
    {"GET", "/api/prechats/999999999999999999/meta", H(h_prechat_meta), INT64_C(999999999999999999), 1, 0},
    {"GET", "/api/prechats/100000000000000000", H(h_prechat_get), INT64_C(100000000000000000), 1, 0},
};

static void check_route(const char *method, const want_t *w)
{
    found_t f = find_s(method, w->path);
    if (f.rt == NULL)
        fail_msg("%s %s: no route (%d %s)", method, w->path, f.status, f.why);
    if (f.rt->fn != w->fn)
        fail_msg("%s %s: wrong handler, want %s", method, w->path, w->fn_name);
    assert_string_equal(f.rt->method, w->method);
    assert_int_equal(f.id, w->id);
    assert_int_equal(f.rt->auth, w->auth);
    assert_int_equal(f.rt->body, w->body);
    assert_int_equal(f.status, -1); /* a hit leaves the failure out-params alone */
    assert_null(f.why);
}

static void test_every_route(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++)
        check_route(ROUTES[i].method, &ROUTES[i]);
}

static void test_head_answers_get_routes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++) {
        if (strcmp(ROUTES[i].method, "GET") == 0)
            check_route("HEAD", &ROUTES[i]);
    }
    /* HEAD is GET only: on a POST-only path it is not allowed. */
    assert_not_allowed("HEAD", "/api/auth/login", "POST");
    assert_not_allowed("HEAD", "/api/prechats/5/close", "POST");
}

/* ---- 405 ----------------------------------------------------------------------------------------------- */

static void test_method_not_allowed_lists_allow(void **state)
{
    (void)state;
    assert_not_allowed("DELETE", "/api/prechats/5/messages", "GET, POST");
    assert_not_allowed("PUT", "/api/prechats/5/messages", "GET, POST");
    assert_not_allowed("DELETE", "/api/prechats", "POST, GET"); /* table order */
    assert_not_allowed("GET", "/api/auth/login", "POST");
    assert_not_allowed("GET", "/api/auth/logout", "POST");
    assert_not_allowed("POST", "/api/auth/session", "GET");
    assert_not_allowed("POST", "/healthz", "GET");
    assert_not_allowed("POST", "/readyz", "GET");
    assert_not_allowed("POST", "/metrics", "GET");
    assert_not_allowed("POST", "/auth", "GET");
    assert_not_allowed("POST", "/api/prechats/5/meta", "GET");
    assert_not_allowed("GET", "/api/prechats/5/join", "POST");
    assert_not_allowed("GET", "/api/prechats/5/close", "POST");
    assert_not_allowed("POST", "/api/prechats/5", "GET");
    /* Methods are case-sensitive (RFC 9110), and must match whole. */
    assert_not_allowed("get", "/healthz", "GET");
    assert_not_allowed("GETX", "/healthz", "GET");
    assert_not_allowed("GE", "/healthz", "GET");
    assert_not_allowed("", "/healthz", "GET");
}

static void test_allow_fits_a_small_buffer(void **state)
{
    const char *method = "DELETE", *path = "/api/prechats/5/messages";
    size_t caps[] = {1, 2, 4, 5, 9, 10};
    const char *want[] = {"", "G", "GET", "GET,", "GET, POS", "GET, POST"};
    (void)state;
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        exactbuf_t mb = {0}, pb = {0}, ab = {0};
        int64_t id;
        int status = 0;
        const char *why = NULL;
        char *allow;
        allow = exactbuf_alloc(&ab, caps[i]);
        assert_null(route_find(exactbuf_str(&mb, method), exactbuf_str(&pb, path), &id, &status, &why, allow, caps[i]));
        assert_int_equal(status, 405);
        assert_string_equal(allow, want[i]);
        exactbuf_free(&mb);
        exactbuf_free(&pb);
        exactbuf_free(&ab);
    }
}

/* ---- 404 ----------------------------------------------------------------------------------------------- */

static void test_bad_ids_are_no_such_prechat(void **state)
{
    const char *ids[] = {"0",
                         "00",
                         "007",
                         "0123",
                         "1234567890123456789" /* 19 digits */,
                         "abc",
                         "12a",
                         "a12",
                         "-1",
                         "+1",
                         " 1",
                         "1 ",
                         "1.0",
                         "0x10",
                         "%31",
                         "9223372036854775807" /* INT64_MAX */};
    const char *suffixes[] = {"/meta", "/messages", "/join", "/close", ""};
    (void)state;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        for (size_t k = 0; k < sizeof(suffixes) / sizeof(suffixes[0]); k++) {
            char path[128];
            snprintf(path, sizeof(path), "/api/prechats/%s%s", ids[i], suffixes[k]);
            assert_not_found("GET", path, "no such pre-chat");
            assert_not_found("POST", path, "no such pre-chat"); /* a bad id is a 404 for every method */
            assert_not_found("DELETE", path, "no such pre-chat");
        }
    }
}

static void test_empty_id_and_extra_slashes_are_no_such_path(void **state)
{
    (void)state;
    assert_not_found("GET", "/api/prechats/", "no such path");
    assert_not_found("GET", "/api/prechats//meta", "no such path");
    assert_not_found("GET", "/api/prechats//messages", "no such path");
    assert_not_found("POST", "/api/prechats//close", "no such path");
    assert_not_found("GET", "/api/prechats/5/meta/", "no such path");
    assert_not_found("GET", "/api/prechats/5//meta", "no such path");
    assert_not_found("GET", "/api/prechats//5/meta", "no such path");
    assert_not_found("GET", "/api/prechats/5/", "no such path");
    assert_not_found("GET", "/api/prechats/5/6/meta", "no such path");
    assert_not_found("GET", "/api/prechats/0/5/meta", "no such path");
    assert_not_found("GET", "/api/prechats/5/meta/meta", "no such path");
}

static void test_near_misses_are_no_such_path(void **state)
{
    const char *paths[] = {
        "",
        "/",
        "//",
        "/healthz/",
        "/healthzx",
        "/health",
        "healthz",
        "/HEALTHZ",
        "//healthz",
        "/x/healthz",
        "/auth/",
        "/authz",
        "/api/auth",
        "/api/auth/",
        "/api/auth/login/",
        "/api/auth/loginx",
        "/api/auth/log",
        "/api/prechats/5/metax",
        "/api/prechats/5/mets",
        "/api/prechats/5/messagesx",
        "/api/prechats/5/message",
        "/api/prechats/5/open",
        "/api/prechats/5/Meta",
        "/api/prechatsx",
        "/api/prechatsx/5/meta",
        "/api/prechat/5/meta",
        "/x/api/prechats/5/meta",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        assert_not_found("GET", paths[i], "no such path");
        assert_not_found("POST", paths[i], "no such path");
    }
}

/* A sub-resource name where the id goes is GET /api/prechats/{id} with a bad id, not an unknown path. */
static void test_path_without_id_vs_letters_id(void **state)
{
    (void)state;
    assert_not_found("GET", "/api/prechats/meta", "no such pre-chat");
    assert_not_found("GET", "/api/prechats/messages", "no such pre-chat");
    assert_not_found("GET", "/api/prechats/5.meta", "no such pre-chat");
    assert_not_found("GET", "/api/prechats/meta/meta", "no such pre-chat");
    assert_not_found("GET", "/api/prechats/messages/messages", "no such pre-chat");
}

static void test_embedded_nul(void **state)
{
    exactbuf_t pb = {0};
    found_t f;
    (void)state;
    f = find("GET", exactbuf_set(&pb, "/healthz\0", 9));
    assert_null(f.rt);
    assert_int_equal(f.status, 404);
    f = find("GET", exactbuf_set(&pb, "/api/prechats/5\0/meta", 21));
    assert_null(f.rt);
    assert_int_equal(f.status, 404);
    assert_string_equal(f.why, "no such pre-chat");
    exactbuf_free(&pb);
}

/* ---- very long paths ------------------------------------------------------------------------------------- */

static void test_very_long_paths(void **state)
{
    size_t n = 1 << 20;
    char *buf = malloc(n + 64);
    exactbuf_t pb = {0};
    found_t f;
    (void)state;
    assert_non_null(buf);

    strfill(buf, 'a', n);
    f = find("GET", exactbuf_str(&pb, buf));
    assert_null(f.rt);
    assert_int_equal(f.status, 404);
    assert_string_equal(f.why, "no such path");

    /* An {id} route's shape around a megabyte of digits: a bad id, not an overflow. */
    memcpy(buf, "/api/prechats/", 14);
    strfill(buf + 14, '1', n);
    strcpy(buf + 14 + n, "/meta");
    f = find("GET", exactbuf_str(&pb, buf));
    assert_null(f.rt);
    assert_string_equal(f.why, "no such pre-chat");
    buf[14 + n] = '\0';
    f = find("GET", exactbuf_str(&pb, buf));
    assert_null(f.rt);
    assert_string_equal(f.why, "no such pre-chat");

    /* A megabyte of slashes after the prefix: no such path. */
    strfill(buf + 14, '/', n);
    strcpy(buf + 14 + n, "meta");
    f = find("GET", exactbuf_str(&pb, buf));
    assert_null(f.rt);
    assert_string_equal(f.why, "no such path");

    /* A known path repeated: still no route. */
    for (size_t i = 0; i + 8 <= n; i += 8)
        memcpy(buf + i, "/healthz", 8);
    f = find("GET", exactbuf_set(&pb, buf, n - n % 8));
    assert_null(f.rt);
    assert_string_equal(f.why, "no such path");
    exactbuf_free(&pb);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route),
        cmocka_unit_test(test_head_answers_get_routes),
        cmocka_unit_test(test_method_not_allowed_lists_allow),
        cmocka_unit_test(test_allow_fits_a_small_buffer),
        cmocka_unit_test(test_bad_ids_are_no_such_prechat),
        cmocka_unit_test(test_empty_id_and_extra_slashes_are_no_such_path),
        cmocka_unit_test(test_near_misses_are_no_such_path),
        cmocka_unit_test(test_path_without_id_vs_letters_id),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_very_long_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
