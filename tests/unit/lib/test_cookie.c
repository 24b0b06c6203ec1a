/*
 * Unit tests for src/lib/cookie.c. Signed-cookie vectors come from cookie-signature / express-session
 * (tests/interop/gen_vectors.js).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tessera/cookie.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "vectors_node.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static tess_secrets_t *secrets_of(const char *list)
{
    tess_secrets_t *s = NULL;
    assert_int_equal(tess_secrets_parse(&s, tess_str(list)), TESS_OK);
    assert_non_null(s);
    return s;
}

/* ---- secret lists ---- */

static void test_secrets_parse(void **state)
{
    tess_secrets_t *s;
    (void)state;

    s = secrets_of(" new , old,\toldest\t");
    assert_int_equal(tess_secrets_count(s), 3);
    assert_true(tess_str_eq(tess_secrets_get(s, 0), tess_str("new")));
    assert_true(tess_str_eq(tess_secrets_get(s, 1), tess_str("old")));
    assert_true(tess_str_eq(tess_secrets_get(s, 2), tess_str("oldest")));
    assert_int_equal(tess_secrets_get(s, 3).len, 0);
    tess_secrets_free(s);

    s = secrets_of("with inner space");
    assert_true(tess_str_eq(tess_secrets_get(s, 0), tess_str("with inner space")));
    tess_secrets_free(s);
    tess_secrets_free(NULL);
    assert_int_equal(tess_secrets_count(NULL), 0);
}

static void test_secrets_parse_errors(void **state)
{
    static const char *empty[] = {"", " ", ",", "a,", ",a", "a,,b", "a, ,b", "\t"};
    tess_secrets_t *s = (tess_secrets_t *)&s; /* must be nulled */
    char big[TESS_SECRET_MAX + 2];
    char many[TESS_SECRETS_MAX * 2 + 4];
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(empty); i++) {
        s = (tess_secrets_t *)&s;
        assert_int_equal(tess_secrets_parse(&s, tess_str(empty[i])), TESS_EINVAL);
        assert_null(s);
    }
    assert_int_equal(tess_secrets_parse(&s, tess_strn(NULL, 0)), TESS_EINVAL);
    assert_int_equal(tess_secrets_parse(NULL, tess_str("a")), TESS_EINVAL);

    memset(big, 'k', sizeof(big));
    assert_int_equal(tess_secrets_parse(&s, tess_strn(big, TESS_SECRET_MAX)), TESS_OK);
    tess_secrets_free(s);
    assert_int_equal(tess_secrets_parse(&s, tess_strn(big, TESS_SECRET_MAX + 1)), TESS_ETOOBIG);
    assert_null(s);

    size_t n = 0;
    for (int i = 0; i < TESS_SECRETS_MAX; i++) {
        many[n++] = (char)('a' + i);
        many[n++] = ',';
    }
    assert_int_equal(tess_secrets_parse(&s, tess_strn(many, n - 1)), TESS_OK);
    assert_int_equal(tess_secrets_count(s), TESS_SECRETS_MAX);
    tess_secrets_free(s);
    many[n++] = 'z';
    assert_int_equal(tess_secrets_parse(&s, tess_strn(many, n)), TESS_ETOOBIG);
    assert_null(s);
}

/* ---- signed cookies against node ---- */

static void test_cookie_vectors(void **state)
{
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(tv_cookies); i++) {
        const tv_cookie_t *v = &tv_cookies[i];
        tess_secrets_t *s = secrets_of(v->secrets);
        char sid[TESS_SID_MAX + 1];
        size_t sid_len = 99;

        int rc = tess_cookie_unsign(s, tess_str(v->value), sid, sizeof(sid), &sid_len);
        if (v->tess_ok) {
            if (rc != TESS_OK) {
                fail_msg("vector %zu (%s): unsign -> %s", i, v->value, tess_err_name(rc));
            }
            assert_non_null(v->node_sid); /* node agrees */
            assert_string_equal(sid, v->node_sid);
            assert_int_equal(sid_len, strlen(v->node_sid));
        } else {
            if (rc != TESS_EBADSIG && rc != TESS_EBADFMT) {
                fail_msg("vector %zu (%s): unsign -> %s, want a rejection", i, v->value, tess_err_name(rc));
            }
            assert_int_equal(sid_len, 0);
            /* node accepted it only when its signature is right, i.e. our refusal is about the id */
            if (v->node_sid != NULL) {
                assert_int_equal(rc, TESS_EBADFMT);
                assert_false(tess_id_valid(tess_str(v->node_sid)));
            }
        }

        /* signing: byte-identical to what express-session sets */
        if (v->signer != NULL && strlen(v->sid) <= TESS_SID_MAX) {
            tess_secrets_t *signer = secrets_of(v->signer);
            char out[TESS_SIGNED_COOKIE_MAX];
            size_t n = 0;
            assert_int_equal(tess_cookie_sign(signer, tess_str(v->sid), out, sizeof(out), &n), TESS_OK);
            assert_string_equal(out, v->value);
            assert_int_equal(n, strlen(v->value));
            tess_secrets_free(signer);
        }
        tess_secrets_free(s);
    }
}

static void test_cookie_roundtrip_and_rotation(void **state)
{
    tess_secrets_t *old = secrets_of("old");
    tess_secrets_t *rot = secrets_of("new,old");
    tess_secrets_t *gone = secrets_of("newer,new");
    char id[TESS_ID_LEN + 1];
    char value[TESS_SIGNED_COOKIE_MAX], value2[TESS_SIGNED_COOKIE_MAX];
    char sid[TESS_SID_MAX + 1];
    size_t n, sn;
    (void)state;

    for (int i = 0; i < 50; i++) {
        assert_int_equal(tess_id_new(id), TESS_OK);
        assert_int_equal(tess_cookie_sign(old, tess_str(id), value, sizeof(value), &n), TESS_OK);
        assert_true(strncmp(value, "s%3A", 4) == 0);
        /* the old secret still verifies after rotation */
        assert_int_equal(tess_cookie_unsign(rot, tess_strn(value, n), sid, sizeof(sid), &sn), TESS_OK);
        assert_string_equal(sid, id);
        /* the first secret signs */
        assert_int_equal(tess_cookie_sign(rot, tess_str(id), value2, sizeof(value2), &n), TESS_OK);
        assert_string_not_equal(value, value2);
        assert_int_equal(tess_cookie_unsign(old, tess_strn(value2, n), sid, sizeof(sid), &sn), TESS_EBADSIG);
        assert_int_equal(tess_cookie_unsign(gone, tess_strn(value2, n), sid, sizeof(sid), &sn), TESS_OK);
        /* dropped from the list: rejected */
        assert_int_equal(tess_cookie_unsign(gone, tess_str(value), sid, sizeof(sid), &sn), TESS_EBADSIG);
        assert_int_equal(sn, 0);
        assert_string_equal(sid, "");
    }
    tess_secrets_free(old);
    tess_secrets_free(rot);
    tess_secrets_free(gone);
}

static void test_cookie_sign_bounds(void **state)
{
    tess_secrets_t *s = secrets_of("keyboard cat");
    char sid[TESS_SID_MAX + 2];
    char out[TESS_SIGNED_COOKIE_MAX];
    char back[TESS_SID_MAX + 1];
    size_t n, bn;
    (void)state;

    memset(sid, 'Z', sizeof(sid));
    assert_int_equal(tess_cookie_sign(s, tess_strn(sid, TESS_SID_MAX), out, sizeof(out), &n), TESS_OK);
    assert_true(n < TESS_SIGNED_COOKIE_MAX);
    assert_int_equal(tess_cookie_unsign(s, tess_strn(out, n), back, sizeof(back), &bn), TESS_OK);
    assert_int_equal(bn, TESS_SID_MAX);
    /* exact capacity, and one short */
    assert_int_equal(tess_cookie_sign(s, tess_strn(sid, TESS_SID_MAX), out, n + 1, &n), TESS_OK);
    assert_int_equal(tess_cookie_sign(s, tess_strn(sid, TESS_SID_MAX), out, n, &n), TESS_ENOSPACE);
    assert_int_equal(n, 0);
    /* worst case: every byte escaped still fits TESS_SIGNED_COOKIE_MAX */
    memset(sid, '/', sizeof(sid));
    assert_int_equal(tess_cookie_sign(s, tess_strn(sid, TESS_SID_MAX), out, sizeof(out), &n), TESS_OK);
    assert_int_equal(tess_cookie_sign(s, tess_strn(sid, TESS_SID_MAX + 1), out, sizeof(out), &n), TESS_EINVAL);
    assert_int_equal(tess_cookie_sign(s, tess_str(""), out, sizeof(out), &n), TESS_EINVAL);
    assert_int_equal(tess_cookie_sign(NULL, tess_str("a"), out, sizeof(out), &n), TESS_EINVAL);
    /* too small a sid buffer on unsign */
    assert_int_equal(tess_cookie_sign(s, tess_str("abcdef"), out, sizeof(out), &n), TESS_OK);
    assert_int_equal(tess_cookie_unsign(s, tess_strn(out, n), back, 6, &bn), TESS_ENOSPACE);
    assert_int_equal(tess_cookie_unsign(s, tess_strn(out, n), back, 7, &bn), TESS_OK);
    tess_secrets_free(s);
}

static void test_cookie_unsign_malformed(void **state)
{
    tess_secrets_t *s = secrets_of("keyboard cat");
    char good[TESS_SIGNED_COOKIE_MAX];
    char raw[TESS_SIGNED_COOKIE_MAX];
    char sid[TESS_SID_MAX + 1];
    char buf[TESS_COOKIE_VALUE_MAX + 64];
    size_t n, rn, sn;
    (void)state;

    assert_int_equal(tess_cookie_sign(s, tess_str("4ZXz1Zbn2Y1vXhQ2mXzqgqE4eVxH0oR9"), good, sizeof(good), &n),
                     TESS_OK);
    assert_int_equal(tess_url_decode(tess_strn(good, n), raw, sizeof(raw), &rn), TESS_OK);
    assert_int_equal(tess_cookie_unsign(s, tess_strn(raw, rn), sid, sizeof(sid), &sn), TESS_OK);

    struct {
        const char *v;
        size_t len;
        int rc;
    } cases[] = {
        {"", 0, TESS_EBADFMT},
        {"s", 1, TESS_EBADFMT},
        {"s:", 2, TESS_EBADFMT},
        {"s%3A", 4, TESS_EBADFMT},
        {"s:.", 3, TESS_EBADFMT},
        {"s:abc", 5, TESS_EBADFMT},
        {"S:abc.def", 9, TESS_EBADFMT},
        {"abc.def", 7, TESS_EBADFMT},
        {"s:abc.", 6, TESS_EBADSIG},
        {"s:abc.short", 11, TESS_EBADSIG},
        {"s%3Aabc%2", 9, TESS_EBADFMT},
        {"s%3Aabc%ZZ.x", 12, TESS_EBADFMT},
        {"s%3Aabc%C3.x", 12, TESS_EBADFMT},
        {"s%3A%00.x", 9, TESS_EBADSIG},
        {"s:\0bc.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 49, TESS_EBADSIG},
        {"s:a.b.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 49, TESS_EBADSIG},
        {"\"s:abc.def\"", 11, TESS_EBADFMT},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        strcpy(sid, "junk");
        sn = 77;
        int rc = tess_cookie_unsign(s, tess_strn(cases[i].v, cases[i].len), sid, sizeof(sid), &sn);
        if (rc != cases[i].rc) {
            fail_msg("case %zu: got %s want %s", i, tess_err_name(rc), tess_err_name(cases[i].rc));
        }
        assert_int_equal(sn, 0);
        assert_string_equal(sid, "");
    }

    /* every truncation of a good value fails, and never reads past the given length */
    for (size_t k = 0; k < n; k++) {
        char *copy = malloc(k + 1); /* exact-size heap copy: ASan catches an over-read */
        memcpy(copy, good, k);
        int rc = tess_cookie_unsign(s, tess_strn(copy, k), sid, sizeof(sid), &sn);
        assert_true(rc == TESS_EBADFMT || rc == TESS_EBADSIG);
        free(copy);
    }
    /* a flipped byte anywhere fails */
    for (size_t k = 0; k < rn; k++) {
        char copy[TESS_SIGNED_COOKIE_MAX];
        memcpy(copy, raw, rn);
        copy[k] ^= 0x01;
        assert_int_not_equal(tess_cookie_unsign(s, tess_strn(copy, rn), sid, sizeof(sid), &sn), TESS_OK);
    }
    /* multiple dots: the last splits, as cookie-signature's lastIndexOf */
    snprintf(buf, sizeof(buf), "%.*s.extra", (int)rn, raw);
    assert_int_equal(tess_cookie_unsign(s, tess_str(buf), sid, sizeof(sid), &sn), TESS_EBADSIG);
    /* NUL byte after a valid value */
    memcpy(buf, raw, rn);
    buf[rn] = '\0';
    assert_int_equal(tess_cookie_unsign(s, tess_strn(buf, rn + 1), sid, sizeof(sid), &sn), TESS_EBADSIG);

    /* oversized */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "s:", 2);
    assert_int_equal(tess_cookie_unsign(s, tess_strn(buf, TESS_COOKIE_VALUE_MAX + 1), sid, sizeof(sid), &sn),
                     TESS_ETOOBIG);
    assert_int_equal(tess_cookie_unsign(s, tess_strn(buf, TESS_COOKIE_VALUE_MAX), sid, sizeof(sid), &sn),
                     TESS_EBADFMT); /* no dot */
    buf[TESS_COOKIE_VALUE_MAX - 44] = '.';
    assert_int_equal(tess_cookie_unsign(s, tess_strn(buf, TESS_COOKIE_VALUE_MAX), sid, sizeof(sid), &sn),
                     TESS_EBADFMT); /* id longer than TESS_SID_MAX */
    assert_int_equal(tess_cookie_unsign(NULL, tess_str(raw), sid, sizeof(sid), &sn), TESS_EINVAL);
    tess_secrets_free(s);
}

/* A signature that verifies over an id that is not a session id is still refused, after the check. */
static void test_cookie_signed_but_invalid_id(void **state)
{
    tess_secrets_t *s = secrets_of("keyboard cat");
    char out[TESS_SIGNED_COOKIE_MAX];
    char sid[TESS_SID_MAX + 1];
    size_t n, sn;
    (void)state;

    assert_int_equal(tess_cookie_sign(s, tess_str("a b/c+d"), out, sizeof(out), &n), TESS_OK);
    assert_non_null(strstr(out, "a%20b%2Fc%2Bd."));
    assert_int_equal(tess_cookie_unsign(s, tess_strn(out, n), sid, sizeof(sid), &sn), TESS_EBADFMT);
    tess_secrets_free(s);
}

/* ---- Cookie header ---- */

static void test_cookie_find(void **state)
{
    tess_str_t v;
    (void)state;

    const char *h = "a=1; connect.sid=s%3Aabc.def;b=2 ;  c = \"quoted\" ; d=\"; e; f=x=y; a=second;g=";
    assert_int_equal(tess_cookie_find(tess_str(h), tess_str("a"), &v), TESS_OK);
    assert_true(tess_str_eq(v, tess_str("1")));
    assert_int_equal(tess_cookie_find(tess_str(h), tess_str("connect.sid"), &v), TESS_OK);
    assert_true(tess_str_eq(v, tess_str("s%3Aabc.def")));
    assert_int_equal(tess_cookie_find(tess_str(h), tess_str("b"), &v), TESS_OK);
    assert_true(tess_str_eq(v, tess_str("2")));
    assert_int_equal(tess_cookie_find(tess_str(h), tess_str("c"), &v), TESS_OK);
    assert_true(tess_str_eq(v, tess_str("quoted")));
    assert_int_equal(tess_cookie_find(tess_str(h), tess_str("d"), &v), TESS_OK);
    assert_true(tess_str_eq(v, tess_str("\""))); /* a lone quote is not a pair */
    assert_int_equal(tess_cookie_find(tess_str(h), tess_str("e"), &v), TESS_ENOTFOUND);
    assert_int_equal(tess_cookie_find(tess_str(h), tess_str("f"), &v), TESS_OK);
    assert_true(tess_str_eq(v, tess_str("x=y")));
    assert_int_equal(tess_cookie_find(tess_str(h), tess_str("g"), &v), TESS_OK);
    assert_int_equal(v.len, 0);
    assert_int_equal(tess_cookie_find(tess_str(h), tess_str("connect"), &v), TESS_ENOTFOUND);
    assert_int_equal(tess_cookie_find(tess_str(h), tess_str("A"), &v), TESS_ENOTFOUND);
    assert_int_equal(tess_cookie_find(tess_str(""), tess_str("a"), &v), TESS_ENOTFOUND);
    assert_int_equal(tess_cookie_find(tess_str(h), tess_str(""), &v), TESS_ENOTFOUND);
    assert_int_equal(v.len, 0);
    assert_null(v.ptr);
    /* the length bounds the search: "a=1" cut to "a=" */
    assert_int_equal(tess_cookie_find(tess_strn("x=1; a=123", 7), tess_str("a"), &v), TESS_OK);
    assert_int_equal(v.len, 0);
    assert_int_equal(tess_cookie_find(tess_strn("x=1; ab=12", 6), tess_str("ab"), &v), TESS_ENOTFOUND);
}

/* ---- Set-Cookie and dates ---- */

static void test_set_cookie(void **state)
{
    char out[512];
    size_t n;
    (void)state;

    tess_set_cookie_t c = {
        .name = TESS_STR_LIT("connect.sid"),
        .value = TESS_STR_LIT("s%3Aabc.def"),
        .max_age_s = 86400,
        .now_ms = INT64_C(1445412480000), /* 2015-10-21T07:28:00Z */
        .secure = 1,
        .http_only = 1,
        .same_site = "Lax",
        .path = NULL,
    };
    assert_int_equal(tess_set_cookie_format(&c, out, sizeof(out), &n), TESS_OK);
    assert_string_equal(out, "connect.sid=s%3Aabc.def; Max-Age=86400; Path=/; Expires=Thu, 22 Oct 2015 07:28:00 GMT; "
                             "HttpOnly; Secure; SameSite=Lax");
    assert_int_equal(n, strlen(out));
    /* exact fit and one short */
    assert_int_equal(tess_set_cookie_format(&c, out, n + 1, &n), TESS_OK);
    assert_int_equal(tess_set_cookie_format(&c, out, n, &n), TESS_ENOSPACE);
    assert_int_equal(n, 0);
    assert_string_equal(out, "");

    c.max_age_s = 0; /* clear */
    c.secure = 0;
    c.same_site = NULL;
    c.path = "/api";
    assert_int_equal(tess_set_cookie_format(&c, out, sizeof(out), &n), TESS_OK);
    assert_string_equal(
        out, "connect.sid=s%3Aabc.def; Max-Age=0; Path=/api; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly");
    c.max_age_s = -1; /* session cookie */
    c.http_only = 0;
    c.value = tess_strn(NULL, 0);
    assert_int_equal(tess_set_cookie_format(&c, out, sizeof(out), &n), TESS_OK);
    assert_string_equal(out, "connect.sid=; Path=/api");

    /* header injection refused */
    c.value = TESS_STR_LIT("a\r\nSet-Cookie: x=y");
    assert_int_equal(tess_set_cookie_format(&c, out, sizeof(out), &n), TESS_EINVAL);
    c.value = TESS_STR_LIT("a; Domain=evil");
    assert_int_equal(tess_set_cookie_format(&c, out, sizeof(out), &n), TESS_EINVAL);
    c.value = TESS_STR_LIT("ok");
    c.name = TESS_STR_LIT("a=b");
    assert_int_equal(tess_set_cookie_format(&c, out, sizeof(out), &n), TESS_EINVAL);
    c.name = TESS_STR_LIT("");
    assert_int_equal(tess_set_cookie_format(&c, out, sizeof(out), &n), TESS_EINVAL);
    c.name = TESS_STR_LIT("sid");
    c.path = "/\n";
    assert_int_equal(tess_set_cookie_format(&c, out, sizeof(out), &n), TESS_EINVAL);
    c.path = NULL;
    c.max_age_s = INT64_MAX; /* past year 9999 */
    assert_int_equal(tess_set_cookie_format(&c, out, sizeof(out), &n), TESS_EINVAL);
    assert_int_equal(tess_set_cookie_format(NULL, out, sizeof(out), &n), TESS_EINVAL);
}

static void test_dates(void **state)
{
    char out[40];
    int64_t ms;
    (void)state;

    assert_int_equal(tess_http_date(INT64_C(1445412480000), out, sizeof(out)), 29);
    assert_string_equal(out, "Wed, 21 Oct 2015 07:28:00 GMT");
    assert_int_equal(tess_http_date(0, out, 30), 29);
    assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_int_equal(tess_http_date(0, out, 29), 0);
    assert_int_equal(tess_http_date(INT64_C(951782400000), out, sizeof(out)), 29); /* leap day 2000 */
    assert_string_equal(out, "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_int_equal(tess_http_date(INT64_C(253402300799999), out, sizeof(out)), 29);
    assert_string_equal(out, "Fri, 31 Dec 9999 23:59:59 GMT");
    assert_int_equal(tess_http_date(INT64_C(253402300800000), out, sizeof(out)), 0);
    assert_int_equal(tess_http_date(-1, out, sizeof(out)), 0);

    assert_int_equal(tess_iso_date(INT64_C(1445412480123), out, sizeof(out)), 24);
    assert_string_equal(out, "2015-10-21T07:28:00.123Z");
    assert_int_equal(tess_iso_date(0, out, 25), 24);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    assert_int_equal(tess_iso_date(0, out, 24), 0);
    assert_int_equal(tess_iso_date(-1, out, sizeof(out)), 24);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    /* JavaScript's limits and expanded years (new Date(8.64e15).toISOString()) */
    assert_int_equal(tess_iso_date(INT64_C(8640000000000000), out, sizeof(out)), 27);
    assert_string_equal(out, "+275760-09-13T00:00:00.000Z");
    assert_int_equal(tess_iso_date(INT64_C(-8640000000000000), out, sizeof(out)), 27);
    assert_string_equal(out, "-271821-04-20T00:00:00.000Z");
    assert_int_equal(tess_iso_date(INT64_C(8640000000000001), out, sizeof(out)), 0);
    assert_int_equal(tess_iso_date(INT64_C(-62198755200000), out, sizeof(out)), 27); /* year -1 */
    assert_string_equal(out, "-000001-01-01T00:00:00.000Z");

    assert_int_equal(tess_iso_date_parse(tess_str("2015-10-21T07:28:00.123Z"), &ms), TESS_OK);
    assert_int_equal(ms, INT64_C(1445412480123));
    assert_int_equal(tess_iso_date_parse(tess_str("2015-10-21T07:28:00Z"), &ms), TESS_OK);
    assert_int_equal(ms, INT64_C(1445412480000));
    assert_int_equal(tess_iso_date_parse(tess_str("2015-10-21T07:28:00.5Z"), &ms), TESS_OK);
    assert_int_equal(ms, INT64_C(1445412480500));
    assert_int_equal(tess_iso_date_parse(tess_str("2015-10-21T07:28:00.123456Z"), &ms), TESS_OK);
    assert_int_equal(ms, INT64_C(1445412480123));
    assert_int_equal(tess_iso_date_parse(tess_str("1969-12-31T23:59:59.999Z"), &ms), TESS_OK);
    assert_int_equal(ms, -1);
    assert_int_equal(tess_iso_date_parse(tess_str("2000-02-29T00:00:00.000Z"), &ms), TESS_OK);
    assert_int_equal(ms, INT64_C(951782400000));

    /* round trip over a spread of instants */
    for (int64_t t = INT64_C(-62135596800000); t < INT64_C(253402300799999); t += INT64_C(7777777777777)) {
        char iso[32];
        assert_int_equal(tess_iso_date(t, iso, sizeof(iso)), 24);
        assert_int_equal(tess_iso_date_parse(tess_str(iso), &ms), TESS_OK);
        assert_int_equal(ms, t);
    }

    static const char *bad[] = {
        "",
        "2015-10-21",
        "2015-10-21T07:28:00",
        "2015-10-21T07:28:00.Z",
        "2015-10-21T07:28:00.1234567890Z",
        "2015-10-21T07:28:00+00:00",
        "2015-10-21 07:28:00Z",
        "2015-13-21T07:28:00Z",
        "2015-00-21T07:28:00Z",
        "2015-02-29T07:28:00Z",
        "1900-02-29T07:28:00Z",
        "2015-10-32T07:28:00Z",
        "2015-10-21T24:00:00Z",
        "2015-10-21T07:60:00Z",
        "2015-10-21T07:28:60Z",
        "2015-10-21T07:28:00ZZ",
        "+2015-10-21T07:28:00Z",
        "2015-1a-21T07:28:00Z",
        " 2015-10-21T07:28:00Z",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        ms = 5;
        if (tess_iso_date_parse(tess_str(bad[i]), &ms) != TESS_EBADFMT) {
            fail_msg("parsed \"%s\"", bad[i]);
        }
        assert_int_equal(ms, 0);
    }
    /* the length bounds parsing */
    assert_int_equal(tess_iso_date_parse(tess_strn("2015-10-21T07:28:00Z", 19), &ms), TESS_EBADFMT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secrets_parse),
        cmocka_unit_test(test_secrets_parse_errors),
        cmocka_unit_test(test_cookie_vectors),
        cmocka_unit_test(test_cookie_roundtrip_and_rotation),
        cmocka_unit_test(test_cookie_sign_bounds),
        cmocka_unit_test(test_cookie_unsign_malformed),
        cmocka_unit_test(test_cookie_signed_but_invalid_id),
        cmocka_unit_test(test_cookie_find),
        cmocka_unit_test(test_set_cookie),
        cmocka_unit_test(test_dates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
