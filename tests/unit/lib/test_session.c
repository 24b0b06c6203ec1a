/* Unit tests of the session model (session.h): lifetimes, throttled touch, the stored JSON form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "session_flat.h"
#include "tessera/cookie.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/session.h"

#define NOW INT64_C(1700000000000)
#define SEC INT64_C(1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static void new_session(tess_session_t *s, const tess_session_policy_t *p)
{
    assert_int_equal(tess_session_init(s, p, TESS_STR_LIT("user-1"), TESS_STR_LIT("visitor"), NOW), 0);
}

static void test_policy_defaults(void **state)
{
    tess_session_policy_t p;
    (void)state;
    tess_session_policy_default(&p);
    assert_int_equal(p.ttl_s, 30 * 24 * 3600);
    assert_int_equal(p.idle_s, 7 * 24 * 3600);
    assert_int_equal(p.touch_interval_s, 3600);
}

static void test_init(void **state)
{
    tess_session_policy_t p;
    tess_session_t s, t;
    char big[TESS_USER_ID_MAX + 2];
    (void)state;

    tess_session_policy_default(&p);
    new_session(&s, &p);
    assert_int_equal(strlen(s.id), TESS_ID_LEN);
    assert_true(tess_id_valid(tess_str(s.id)));
    assert_string_equal(s.user_id, "user-1");
    assert_string_equal(s.role, "visitor");
    assert_int_equal(s.created_ms, NOW);
    assert_int_equal(s.absolute_expires_ms, NOW + 30 * DAY);
    assert_int_equal(s.expires_ms, NOW + 7 * DAY);
    assert_null(s.extra_json);
    new_session(&t, &p);
    assert_string_not_equal(s.id, t.id);

    memset(big, 'u', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(tess_session_init(&s, &p, TESS_STR_LIT(""), TESS_STR_LIT("visitor"), NOW), TESS_EINVAL);
    assert_int_equal(tess_session_init(&s, &p, tess_str(big), TESS_STR_LIT("visitor"), NOW), TESS_EINVAL);
    assert_int_equal(tess_session_init(&s, &p, TESS_STR_LIT("u"), TESS_STR_LIT(""), NOW), TESS_EINVAL);
    assert_int_equal(tess_session_init(&s, &p, TESS_STR_LIT("u"), TESS_STR_LIT("a-role-name-too-long"), NOW),
                     TESS_EINVAL);
    assert_int_equal(tess_session_init(&s, &p, tess_strn("a\0b", 3), TESS_STR_LIT("visitor"), NOW), TESS_EINVAL);
    /* exactly at the bounds */
    big[TESS_USER_ID_MAX] = '\0';
    assert_int_equal(tess_session_init(&s, &p, tess_str(big), TESS_STR_LIT("0123456789abcdef"), NOW), 0);

    /* idle is capped by the absolute lifetime */
    p.ttl_s = 3600;
    new_session(&s, &p);
    assert_int_equal(s.expires_ms, NOW + HOUR);
    assert_int_equal(s.absolute_expires_ms, NOW + HOUR);
}

static void test_expired(void **state)
{
    tess_session_policy_t p;
    tess_session_t s;
    (void)state;

    tess_session_policy_default(&p);
    new_session(&s, &p);
    assert_false(tess_session_expired(&s, NOW));
    assert_false(tess_session_expired(&s, s.expires_ms - 1));
    assert_true(tess_session_expired(&s, s.expires_ms));
    /* the absolute expiry holds even if the rolling one was (wrongly) moved past it */
    s.expires_ms = s.absolute_expires_ms + DAY;
    assert_false(tess_session_expired(&s, s.absolute_expires_ms - 1));
    assert_true(tess_session_expired(&s, s.absolute_expires_ms));
}

static void test_touch_throttle(void **state)
{
    tess_session_policy_t p;
    tess_session_t s;
    int64_t next = 0, now;
    int touches = 0;
    (void)state;

    tess_session_policy_default(&p);
    new_session(&s, &p);
    /* 1000 polls spread over the first interval: none writes */
    for (int i = 0; i < 1000; i++) {
        now = NOW + (HOUR - 1) * i / 999;
        touches += tess_session_needs_touch(&s, &p, now, &next);
    }
    assert_int_equal(touches, 0);
    assert_int_equal(next, s.expires_ms);
    /* at the interval: one touch, new expiry = now + idle */
    now = NOW + HOUR;
    assert_true(tess_session_needs_touch(&s, &p, now, &next));
    assert_int_equal(next, now + 7 * DAY);
    s.expires_ms = next;
    /* the interval restarts from that touch */
    assert_false(tess_session_needs_touch(&s, &p, now + 30 * MIN, &next));
    assert_false(tess_session_needs_touch(&s, &p, now + HOUR - 1, &next));
    assert_true(tess_session_needs_touch(&s, &p, now + HOUR, &next));
    /* an expired session is never touched */
    assert_false(tess_session_needs_touch(&s, &p, s.expires_ms, &next));
    assert_false(tess_session_needs_touch(&s, &p, s.expires_ms + DAY, &next));
}

static void test_touch_never_past_absolute(void **state)
{
    tess_session_policy_t p;
    tess_session_t s;
    int64_t next = 0;
    (void)state;

    tess_session_policy_default(&p);
    p.ttl_s = 10 * 24 * 3600;
    new_session(&s, &p);
    assert_int_equal(s.absolute_expires_ms, NOW + 10 * DAY);
    /* day 5: now + idle would be day 12; capped at day 10 */
    assert_true(tess_session_needs_touch(&s, &p, NOW + 5 * DAY, &next));
    assert_int_equal(next, NOW + 10 * DAY);
    s.expires_ms = next;
    /* pinned at the absolute expiry: nothing left to move, ever */
    for (int64_t t = NOW + 5 * DAY; t < NOW + 10 * DAY; t += HOUR)
        assert_false(tess_session_needs_touch(&s, &p, t, &next));
    assert_false(tess_session_needs_touch(&s, &p, NOW + 10 * DAY, &next));
    assert_true(tess_session_expired(&s, NOW + 10 * DAY));

    /* a zero interval touches whenever the expiry can move */
    p.touch_interval_s = 0;
    new_session(&s, &p);
    assert_true(tess_session_needs_touch(&s, &p, NOW + 1, &next));
    assert_int_equal(next, NOW + 1 + 7 * DAY);
}

static void test_copy_clear(void **state)
{
    tess_session_policy_t p;
    tess_session_t s, c;
    (void)state;

    tess_session_policy_default(&p);
    new_session(&s, &p);
    s.extra_json = strdup("{\"a\":1}");
    assert_int_equal(tess_session_copy(&c, &s), 0);
    assert_ptr_not_equal(c.extra_json, s.extra_json);
    assert_string_equal(c.extra_json, s.extra_json);
    assert_string_equal(c.id, s.id);
    tess_session_clear(&s);
    assert_null(s.extra_json);
    assert_int_equal(s.id[0], 0);
    assert_string_equal(c.extra_json, "{\"a\":1}");
    tess_session_clear(&c);
    tess_session_clear(NULL);
}

static void test_json_round_trip(void **state)
{
    tess_session_policy_t p;
    tess_session_t s, r;
    char *js = NULL;
    size_t len = 0;
    cJSON *doc, *cookie;
    (void)state;

    tess_session_policy_default(&p);
    new_session(&s, &p);
    s.extra_json = strdup("{\"cart\":[1,2,{\"x\":null}],\"theme\":\"dark\"}");
    assert_int_equal(tess_session_to_json(&s, &js, &len), 0);
    assert_int_equal(strlen(js), len);

    /* the connect-redis / connect-pg-simple shape */
    doc = cJSON_Parse(js);
    assert_non_null(doc);
    cookie = cJSON_GetObjectItemCaseSensitive(doc, "cookie");
    assert_true(cJSON_IsObject(cookie));
    /* express-session extends by originalMaxAge on every request: it must be the idle window, not the TTL */
    assert_int_equal((int64_t)cJSON_GetObjectItem(cookie, "originalMaxAge")->valuedouble, 7 * DAY);
    assert_string_equal(cJSON_GetObjectItem(cookie, "expires")->valuestring, "2023-11-21T22:13:20.000Z");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cookie, "httpOnly")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(cookie, "secure")));
    assert_string_equal(cJSON_GetObjectItem(cookie, "path")->valuestring, "/");
    assert_string_equal(cJSON_GetObjectItem(cookie, "sameSite")->valuestring, "lax");
    assert_string_equal(cJSON_GetObjectItem(doc, "userId")->valuestring, "user-1");
    assert_string_equal(cJSON_GetObjectItem(doc, "role")->valuestring, "visitor");
    assert_int_equal((int64_t)cJSON_GetObjectItem(doc, "createdAt")->valuedouble, NOW);
    assert_int_equal((int64_t)cJSON_GetObjectItem(doc, "absoluteExpiresAt")->valuedouble, NOW + 30 * DAY);
    assert_string_equal(cJSON_GetObjectItem(doc, "theme")->valuestring, "dark");
    cJSON_Delete(doc);

    assert_int_equal(tess_session_from_json(&r, tess_str(s.id), tess_strn(js, len), 0), 0);
    assert_string_equal(r.id, s.id);
    assert_string_equal(r.user_id, s.user_id);
    assert_string_equal(r.role, s.role);
    assert_int_equal(r.created_ms, s.created_ms);
    assert_int_equal(r.absolute_expires_ms, s.absolute_expires_ms);
    assert_int_equal(r.expires_ms, s.expires_ms);
    assert_string_equal(r.extra_json, s.extra_json);
    tess_session_clear(&r);

    /* the store's expiry (hint) overrides cookie.expires */
    assert_int_equal(tess_session_from_json(&r, tess_str(s.id), tess_strn(js, len), NOW + DAY), 0);
    assert_int_equal(r.expires_ms, NOW + DAY);
    tess_session_clear(&r);
    free(js);

    /* no extra fields: extra_json stays NULL both ways */
    free(s.extra_json);
    s.extra_json = NULL;
    assert_int_equal(tess_session_to_json(&s, &js, NULL), 0);
    assert_int_equal(tess_session_from_json(&r, tess_str(s.id), tess_str(js), 0), 0);
    assert_null(r.extra_json);
    tess_session_clear(&r);
    free(js);
    tess_session_clear(&s);
}

/* Parses `doc`, writes it back, and checks the result equals `expect` (cJSON_Compare: key order free). */
static void assert_rewrites_to(const char *doc, const char *expect)
{
    tess_session_t s;
    char *js = NULL;
    cJSON *a, *b;

    assert_int_equal(tess_session_from_json(&s, TESS_STR_LIT("abcdefghijklmnopqrstuvwxyz012345"), tess_str(doc), 0), 0);
    assert_int_equal(tess_session_to_json(&s, &js, NULL), 0);
    a = cJSON_Parse(js);
    b = cJSON_Parse(expect);
    assert_non_null(a);
    assert_non_null(b);
    if (!cJSON_Compare(a, b, 1))
        fail_msg("rewritten as %s\nexpected    %s", js, expect);
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(js);
    tess_session_clear(&s);
}

static void test_express_documents(void **state)
{
    tess_session_t s;
    const tess_str_t sid = TESS_STR_LIT("abcdefghijklmnopqrstuvwxyz012345");
    /* what express-session + connect-pg-simple store for an app that sets req.session.userId = 42 */
    const char *numeric = "{\"cookie\":{\"originalMaxAge\":86400000,\"expires\":\"2030-01-02T00:00:00.000Z\","
                          "\"httpOnly\":true,\"path\":\"/\"},\"userId\":42}";
    const char *stringy = "{\"cookie\":{\"originalMaxAge\":null,\"expires\":\"2030-01-02T00:00:00.000Z\","
                          "\"secure\":true,\"httpOnly\":true,\"domain\":\"example.com\",\"path\":\"/\","
                          "\"sameSite\":\"strict\"},\"userId\":\"u-7\",\"passport\":{\"user\":\"u-7\"},"
                          "\"flash\":{}}";
    int64_t exp = 0;
    (void)state;

    assert_int_equal(tess_iso_date_parse(TESS_STR_LIT("2030-01-02T00:00:00.000Z"), &exp), 0);

    assert_int_equal(tess_session_from_json(&s, sid, tess_str(numeric), 0), 0);
    assert_string_equal(s.id, "abcdefghijklmnopqrstuvwxyz012345");
    assert_string_equal(s.user_id, "42");
    assert_string_equal(s.role, "");
    assert_int_equal(s.expires_ms, exp);
    assert_int_equal(s.absolute_expires_ms, 0);     /* absent: no absolute bound (the app governs it) */
    assert_int_equal(s.max_age_ms, 86400000);       /* touches extend by the document's own window */
    assert_int_equal(s.created_ms, exp - 86400000); /* expires - originalMaxAge */
    assert_false(tess_session_expired(&s, exp - 1));
    {
        /* A poll an hour later (touch interval 0) moves the expiry by the document's window, as Express would. */
        tess_session_policy_t p;
        int64_t next = 0;
        tess_session_policy_default(&p);
        p.touch_interval_s = 0;
        assert_true(tess_session_needs_touch(&s, &p, exp - 86400000 + 3600000, &next));
        assert_int_equal(next, exp + 3600000);
    }
    tess_session_clear(&s);

    assert_int_equal(tess_session_from_json(&s, sid, tess_str(stringy), 0), 0);
    assert_string_equal(s.user_id, "u-7");
    assert_int_equal(s.created_ms, 0); /* unknown */
    assert_non_null(s.extra_json);
    assert_non_null(strstr(s.extra_json, "passport"));
    tess_session_clear(&s);

    /* Written back, an express document keeps its own cookie attributes and its numeric userId, and gets no
       absolute expiry it did not have (express-session would never honour one). */
    assert_rewrites_to(numeric, "{\"cookie\":{\"originalMaxAge\":86400000,\"expires\":\"2030-01-02T00:00:00.000Z\","
                                "\"httpOnly\":true,\"path\":\"/\"},\"userId\":42,\"createdAt\":1893456000000}");
    assert_rewrites_to(stringy, "{\"cookie\":{\"originalMaxAge\":null,\"expires\":\"2030-01-02T00:00:00.000Z\","
                                "\"secure\":true,\"httpOnly\":true,\"domain\":\"example.com\",\"path\":\"/\","
                                "\"sameSite\":\"strict\"},\"userId\":\"u-7\","
                                "\"passport\":{\"user\":\"u-7\"},\"flash\":{}}");

    /* no expiry anywhere: only the store's hint can vouch for it */
    assert_int_equal(tess_session_from_json(&s, sid, TESS_STR_LIT("{\"userId\":\"a\"}"), 0), TESS_EBADFMT);
    assert_int_equal(
        tess_session_from_json(&s, sid, TESS_STR_LIT("{\"userId\":\"a\",\"cookie\":{\"expires\":null}}"), NOW + DAY),
        0);
    assert_int_equal(s.expires_ms, NOW + DAY);
    tess_session_clear(&s);
    /* anonymous (no userId): not an authenticated session */
    assert_int_equal(
        tess_session_from_json(&s, sid, TESS_STR_LIT("{\"cookie\":{\"expires\":\"2030-01-02T00:00:00.000Z\"}}"), 0),
        TESS_EBADFMT);
}

static void expect_rejected(const char *doc, int rc)
{
    tess_session_t s;
    int got = tess_session_from_json(&s, TESS_STR_LIT("sid"), tess_str(doc), NOW + DAY);
    if (got != rc)
        fail_msg("%s: got %s, expected %s", doc, tess_err_name(got), tess_err_name(rc));
    assert_null(s.extra_json);
    assert_int_equal(s.id[0], 0);
}

static char *nested(int depth)
{
    /* {"userId":"a","x":[[[...]]]} with `depth` levels in all (the outer object counts) */
    size_t n = (size_t)depth * 2 + 32;
    char *buf = malloc(n), *p = buf;
    p += sprintf(p, "{\"userId\":\"a\",\"x\":");
    for (int i = 1; i < depth; i++)
        *p++ = '[';
    for (int i = 1; i < depth; i++)
        *p++ = ']';
    *p++ = '}';
    *p = '\0';
    return buf;
}

static void test_hostile_json(void **state)
{
    tess_session_t s;
    char *doc;
    size_t n;
    (void)state;

    expect_rejected("", TESS_EBADFMT);
    expect_rejected("   ", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\"} x", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\"}{}", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\"}]", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\"", TESS_EBADFMT);
    expect_rejected("[{\"userId\":\"a\"}]", TESS_EBADFMT);
    expect_rejected("\"userId\"", TESS_EBADFMT);
    expect_rejected("null", TESS_EBADFMT);
    expect_rejected("{\"userId\":true}", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"\"}", TESS_EBADFMT);
    expect_rejected("{\"userId\":1.5}", TESS_EBADFMT);
    expect_rejected("{\"userId\":1e300}", TESS_EBADFMT);
    expect_rejected("{\"userId\":{\"id\":1}}", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\",\"role\":7}", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\",\"role\":\"a-role-name-too-long\"}", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\",\"cookie\":\"x\"}", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\",\"cookie\":{\"expires\":12}}", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\",\"cookie\":{\"expires\":\"tomorrow\"}}", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\",\"cookie\":{\"originalMaxAge\":\"1\"}}", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\",\"createdAt\":\"1\"}", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\",\"createdAt\":-1}", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\",\"absoluteExpiresAt\":1.5}", TESS_EBADFMT);
    expect_rejected("{\"userId\":\"a\",\"x\":\"\\u0000\"}x", TESS_EBADFMT);
    {
        static const char with_nul[] = "{\"userId\":\"a\"}\0 garbage";
        assert_int_equal(
            tess_session_from_json(&s, TESS_STR_LIT("sid"), tess_strn(with_nul, sizeof(with_nul) - 1), NOW),
            TESS_EBADFMT);
    }
    {
        char uid[128];
        snprintf(uid, sizeof(uid), "{\"userId\":\"%065d\"}", 0);
        expect_rejected(uid, TESS_EBADFMT);
    }
    /* trailing whitespace is fine */
    assert_int_equal(tess_session_from_json(&s, TESS_STR_LIT("sid"), TESS_STR_LIT("{\"userId\":\"a\"} \n\t"), NOW), 0);
    tess_session_clear(&s);
    /* bad session ids */
    assert_int_equal(tess_session_from_json(&s, TESS_STR_LIT(""), TESS_STR_LIT("{\"userId\":\"a\"}"), NOW),
                     TESS_EBADFMT);

    /* nesting: 32 levels pass, 33 do not, 100000 do not crash */
    doc = nested(32);
    assert_int_equal(tess_session_from_json(&s, TESS_STR_LIT("sid"), tess_str(doc), NOW), 0);
    tess_session_clear(&s);
    free(doc);
    doc = nested(33);
    expect_rejected(doc, TESS_EBADFMT);
    free(doc);
    doc = nested(30000);
    expect_rejected(doc, TESS_EBADFMT);
    free(doc);
    /* brackets inside strings do not count */
    expect_rejected("{\"userId\":\"a\",\"x\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"} !", TESS_EBADFMT);
    assert_int_equal(tess_session_from_json(
                         &s, TESS_STR_LIT("sid"),
                         TESS_STR_LIT("{\"userId\":\"a\",\"x\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\"}"), NOW),
                     0);
    tess_session_clear(&s);

    /* size: at the bound parses, one byte over is TOOBIG */
    n = TESS_SESSION_JSON_MAX;
    doc = malloc(n + 2);
    memset(doc, ' ', n + 1);
    memcpy(doc, "{\"userId\":\"a\"}", 14);
    doc[n + 1] = '\0';
    assert_int_equal(tess_session_from_json(&s, TESS_STR_LIT("sid"), tess_strn(doc, n), NOW), 0);
    tess_session_clear(&s);
    expect_rejected(doc, TESS_ETOOBIG);
    free(doc);
}

/* The cookie default_cookie() writes is dropped from extra_json in any member order; any difference keeps it. */
static void test_default_cookie_dropped(void **state)
{
    static const struct {
        const char *doc;
        int dropped;
    } cases[] = {
        {"{\"cookie\":{\"originalMaxAge\":60000,\"expires\":null,\"secure\":false,\"httpOnly\":true,\"path\":\"/\","
         "\"sameSite\":\"lax\"},\"userId\":\"7\"}",
         1},
        {"{\"cookie\":{\"sameSite\":\"lax\",\"path\":\"/"
         "\",\"httpOnly\":true,\"secure\":false,\"originalMaxAge\":60000},"
         "\"userId\":\"7\"}",
         1},
        {"{\"cookie\":{\"originalMaxAge\":null,\"secure\":false,\"httpOnly\":true,\"path\":\"/\",\"sameSite\":\"lax\"},"
         "\"userId\":\"7\"}",
         1},
        /* a member missing, one more, another value, a repeated member */
        {"{\"cookie\":{\"originalMaxAge\":60000,\"httpOnly\":true,\"path\":\"/"
         "\",\"sameSite\":\"lax\"},\"userId\":\"7\"}",
         0},
        {"{\"cookie\":{\"originalMaxAge\":60000,\"secure\":false,\"httpOnly\":true,\"path\":\"/\",\"sameSite\":\"lax\","
         "\"domain\":\"a.example\"},\"userId\":\"7\"}",
         0},
        {"{\"cookie\":{\"originalMaxAge\":60000,\"secure\":true,\"httpOnly\":true,\"path\":\"/\",\"sameSite\":\"lax\"},"
         "\"userId\":\"7\"}",
         0},
        {"{\"cookie\":{\"originalMaxAge\":60000,\"secure\":false,\"httpOnly\":true,\"path\":\"/"
         "app\",\"sameSite\":\"lax\"},"
         "\"userId\":\"7\"}",
         0},
        {"{\"cookie\":{\"originalMaxAge\":60000,\"secure\":false,\"httpOnly\":true,\"path\":\"/\",\"path\":\"/\","
         "\"sameSite\":\"lax\"},\"userId\":\"7\"}",
         0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        tess_session_t s;
        assert_int_equal(tess_session_from_json(&s, TESS_STR_LIT("sid"), tess_str(cases[i].doc), NOW + DAY), 0);
        if (cases[i].dropped)
            assert_null(s.extra_json);
        else
            assert_non_null(s.extra_json != NULL ? strstr(s.extra_json, "\"cookie\"") : NULL);
        tess_session_clear(&s);
    }
}

/* Plain documents are read in place, the rest with cJSON; both answer alike (fuzz_session checks it on every
   input; these are the shapes apps write). */
static void test_flat_reader(void **state)
{
    static const struct {
        const char *doc;
        int flat; /* 1: read in place; 0: declined to cJSON */
        const char *extra;
    } cases[] = {
        {"{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2030-01-01T00:00:00.000Z\",\"httpOnly\":true,"
         "\"path\":\"/\"},\"userId\":42,\"role\":\"agent\",\"cart\":[1,{\"x\":null}]}",
         1,
         "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2030-01-01T00:00:00.000Z\",\"httpOnly\":true,"
         "\"path\":\"/\"},\"userId\":42,\"cart\":[1,{\"x\":null}]}"},
        {" { \"userId\" : \"u1\" , \"theme\" : \"dark\" , \"cookie\" : null } ", 1,
         "{\"theme\":\"dark\",\"cookie\":null}"},
        {"{\"userId\":\"u1\",\"createdAt\":1700000000000,\"absoluteExpiresAt\":1900000000000}", 1, NULL},
        /* declined: an escape, a non-ASCII byte, a fraction, a repeated modelled member */
        {"{\"userId\":\"u\\u0031\"}", 0, NULL},
        {"{\"userId\":\"u1\",\"name\":\"Zo\xc3\xab\"}", 0, "{\"name\":\"Zo\xc3\xab\"}"},
        {"{\"userId\":\"u1\",\"score\":1.5}", 0, "{\"score\":1.5}"},
        {"{\"userId\":\"u1\",\"role\":\"a\",\"role\":\"b\"}", 0, NULL},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        tess_session_t s, t;
        tess__flat_t f;
        int flat = tess__session_flat_read(&s, tess_str(cases[i].doc), &f);
        free(f.extra);
        assert_int_equal(flat, cases[i].flat);
        assert_int_equal(tess_session_from_json(&s, TESS_STR_LIT("sid"), tess_str(cases[i].doc), NOW + DAY), 0);
        assert_int_equal(tess__session_from_json_cjson(&t, TESS_STR_LIT("sid"), tess_str(cases[i].doc), NOW + DAY), 0);
        assert_string_equal(s.user_id, t.user_id);
        assert_string_equal(s.role, t.role);
        assert_int_equal(s.created_ms, t.created_ms);
        assert_int_equal(s.absolute_expires_ms, t.absolute_expires_ms);
        if (cases[i].extra == NULL) {
            assert_null(s.extra_json);
            assert_null(t.extra_json);
        } else {
            assert_non_null(s.extra_json);
            cJSON *x = cJSON_Parse(s.extra_json), *y = cJSON_Parse(cases[i].extra);
            char *px = cJSON_PrintUnformatted(x), *py = cJSON_PrintUnformatted(y);
            assert_string_equal(px, py);
            free(px);
            free(py);
            cJSON_Delete(x);
            cJSON_Delete(y);
        }
        tess_session_clear(&s);
        tess_session_clear(&t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_defaults),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_default_cookie_dropped),
        cmocka_unit_test(test_flat_reader),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_touch_throttle),
        cmocka_unit_test(test_touch_never_past_absolute),
        cmocka_unit_test(test_copy_clear),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_express_documents),
        cmocka_unit_test(test_hostile_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
