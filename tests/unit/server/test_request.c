/*
 * Unit tests of the request parsers (server/request.h): query_find() and utf8_valid(). Inputs sit in heap
 * blocks of their exact length (exactbuf.h), so an overread trips ASan. utf8_valid() is also compared,
 * exhaustively up to three bytes and over a grid of four-byte inputs, with a validator written from the
 * table of well-formed byte sequences in the Unicode standard (Table 3-7).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "exactbuf.h"
#include "server/request.h"
#include "strfill.h"

/* ---- query_find ------------------------------------------------------------------------------------------ */

typedef struct qres {
    int rc;
    char value[64];
} qres_t;

static qres_t qfind_cap(const char *query, const char *name, size_t cap)
{
    exactbuf_t q = {0}, out = {0};
    qres_t r = {0};
    assert_true(cap <= sizeof(r.value));
    exactbuf_alloc(&out, cap); /* the output too: a write past `cap` trips ASan */
    r.rc = query_find(exactbuf_str(&q, query), name, out.p, cap);
    if (r.rc == 1) {
        assert_non_null(memchr(out.p, '\0', cap));
        strcpy(r.value, out.p);
    }
    exactbuf_free(&q);
    exactbuf_free(&out);
    return r;
}

static qres_t qfind(const char *query, const char *name)
{
    return qfind_cap(query, name, 32);
}

static void assert_found(const char *query, const char *name, const char *value)
{
    qres_t r = qfind(query, name);
    if (r.rc != 1)
        fail_msg("query '%s', name '%s': rc %d, want 1 '%s'", query, name, r.rc, value);
    assert_string_equal(r.value, value);
}

static void assert_absent(const char *query, const char *name)
{
    qres_t r = qfind(query, name);
    if (r.rc != 0)
        fail_msg("query '%s', name '%s': rc %d, want 0", query, name, r.rc);
}

static void assert_malformed(const char *query, const char *name)
{
    qres_t r = qfind(query, name);
    if (r.rc != -1)
        fail_msg("query '%s', name '%s': rc %d, want -1", query, name, r.rc);
}

static void test_query_present_absent_empty(void **state)
{
    char out[8];
    (void)state;
    assert_found("after=5&wait=10", "after", "5");
    assert_found("after=5&wait=10", "wait", "10");
    assert_found("wait=10", "wait", "10");
    assert_absent("after=5&wait=10", "x");
    assert_absent("after=5&wait=10", "");
    assert_absent("", "after");
    assert_found("after=&wait=1", "after", "");
    assert_found("wait=1&after=", "after", "");
    /* A NULL query of length 0 (no '?') is absent, and never read. */
    assert_int_equal(query_find(tess_strn(NULL, 0), "after", out, sizeof(out)), 0);
}

static void test_query_name_prefix_of_another(void **state)
{
    (void)state;
    assert_found("afterx=1&after=2", "after", "2");
    assert_found("afterx=1&after=2", "afterx", "1");
    assert_found("after=2&afterx=1", "afterx", "1");
    assert_absent("afterx=1", "after");
    assert_absent("after=1", "afterx");
    assert_absent("after=1", "aft");
    assert_absent("xafter=1", "after");
    assert_absent("after_=1", "after");
}

static void test_query_first_of_repeated_wins(void **state)
{
    (void)state;
    assert_found("after=1&after=2", "after", "1");
    assert_found("after=&after=2", "after", "");
    assert_found("wait=3&after=1&wait=4&after=2", "wait", "3");
}

static void test_query_percent_decoding(void **state)
{
    (void)state;
    assert_found("q=a%20b%2Fc", "q", "a b/c");
    assert_found("q=%41%62", "q", "Ab");
    assert_found("q=%7e%7E", "q", "~~");
    assert_found("q=a+b", "q", "a+b");   /* decodeURIComponent: '+' stays */
    assert_found("q=%26%3D", "q", "&="); /* escaped separators are data */
    assert_found("q=a=b", "q", "a=b");   /* only the first '=' separates */
    assert_found("q=%C3%A9", "q", "\xC3\xA9");
    assert_found("q=%F0%9F%98%80", "q", "\xF0\x9F\x98\x80");
    /* Names are compared as sent, not decoded. */
    assert_absent("%71=1", "q");
}

static void test_query_malformed(void **state)
{
    (void)state;
    assert_malformed("q=%", "q");
    assert_malformed("q=%4", "q");
    assert_malformed("q=%zz", "q");
    assert_malformed("q=%4g", "q");
    assert_malformed("q=abc%", "q");
    assert_malformed("q=%00", "q"); /* an encoded NUL */
    assert_malformed("q=a%00b", "q");
    assert_malformed("q=%C3", "q");       /* an escaped lead byte without its continuation */
    assert_malformed("q=%C0%80", "q");    /* an overlong NUL */
    assert_malformed("q=%ED%A0%80", "q"); /* a surrogate */
    assert_malformed("q=%80", "q");
    /* A malformed value of another parameter is not ours to refuse. */
    assert_found("x=%zz&q=1", "q", "1");
    assert_found("q=1&x=%", "q", "1");
}

static void test_query_value_longer_than_cap(void **state)
{
    qres_t r;
    (void)state;
    r = qfind_cap("q=abcd", "q", 5);
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.value, "abcd");
    assert_int_equal(qfind_cap("q=abcd", "q", 4).rc, -1); /* no room for the NUL */
    assert_int_equal(qfind_cap("q=abcd", "q", 1).rc, -1);
    assert_int_equal(qfind_cap("q=", "q", 1).rc, 1);
    /* The bound is on the decoded bytes: "%41%41" is two. */
    r = qfind_cap("q=%41%41", "q", 3);
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.value, "AA");
    assert_int_equal(qfind_cap("q=%C3%A9", "q", 2).rc, -1);
    assert_int_equal(qfind_cap("q=%C3%A9", "q", 3).rc, 1);
}

static void test_query_longer_than_max(void **state)
{
    char *q = malloc(QUERY_MAX + 2);
    exactbuf_t qb = {0};
    char out[8];
    (void)state;
    assert_non_null(q);
    /* The parameter first, padding after it: the whole query is what is bounded. */
    memcpy(q, "q=1&x=", 6);
    strfill(q + 6, 'a', QUERY_MAX - 6);
    assert_int_equal(query_find(exactbuf_set(&qb, q, QUERY_MAX), "q", out, sizeof(out)), 1);
    assert_string_equal(out, "1");
    assert_int_equal(query_find(exactbuf_set(&qb, q, QUERY_MAX), "y", out, sizeof(out)), 0);
    strfill(q + 6, 'a', QUERY_MAX - 5);
    assert_int_equal(query_find(exactbuf_set(&qb, q, QUERY_MAX + 1), "q", out, sizeof(out)), -1);
    assert_int_equal(query_find(exactbuf_set(&qb, q, QUERY_MAX + 1), "y", out, sizeof(out)), -1);
    exactbuf_free(&qb);
    free(q);
}

static void test_query_empty_pieces_and_names_without_value(void **state)
{
    (void)state;
    assert_found("&&after=3&&", "after", "3");
    assert_found("after=3&&wait=4", "wait", "4");
    assert_absent("&&", "after");
    assert_absent("&", "after");
    assert_absent("=", "after");
    assert_absent("=5", "after");
    /* A name without '=' carries no value: absent, and a later "name=value" is found. */
    assert_absent("after", "after");
    assert_absent("after&wait=5", "after");
    assert_found("after&wait=5", "wait", "5");
    assert_found("after&after=7", "after", "7");
    assert_found("wait&after=7", "after", "7");
}

/* ---- utf8_valid ------------------------------------------------------------------------------------------ */

static int valid(const void *p, size_t n)
{
    exactbuf_t b = {0};
    int v;
    exactbuf_set(&b, p, n);
    v = utf8_valid((const unsigned char *)b.p, n);
    exactbuf_free(&b);
    return v;
}

#define VALID(lit) assert_int_equal(valid(lit, sizeof(lit) - 1), 1)
#define INVALID(lit) assert_int_equal(valid(lit, sizeof(lit) - 1), 0)

static void test_utf8_ascii(void **state)
{
    unsigned char all[128];
    (void)state;
    for (int i = 0; i < 128; i++)
        all[i] = (unsigned char)i;
    assert_int_equal(valid(all, sizeof(all)), 1); /* NUL included: the length is given */
    assert_int_equal(valid("", 0), 1);
    VALID("hello, world");
}

static void test_utf8_multibyte(void **state)
{
    (void)state;
    VALID("\xC2\x80");         /* U+0080, the first 2-byte */
    VALID("\xDF\xBF");         /* U+07FF, the last 2-byte */
    VALID("\xE0\xA0\x80");     /* U+0800, the first 3-byte */
    VALID("\xED\x9F\xBF");     /* U+D7FF, just below the surrogates */
    VALID("\xEE\x80\x80");     /* U+E000, just above them */
    VALID("\xEF\xBF\xBF");     /* U+FFFF */
    VALID("\xF0\x90\x80\x80"); /* U+10000, the first 4-byte */
    VALID("\xF4\x8F\xBF\xBF"); /* U+10FFFF, the last code point */
    VALID("h\xC3\xA9llo \xE2\x82\xAC \xF0\x90\x8D\x88!");
}

static void test_utf8_overlongs(void **state)
{
    (void)state;
    INVALID("\xC0\x80");
    INVALID("\xC0\xAF");
    INVALID("\xC1\xBF");
    INVALID("\xE0\x80\x80");
    INVALID("\xE0\x9F\xBF");
    INVALID("\xF0\x80\x80\x80");
    INVALID("\xF0\x8F\xBF\xBF");
    INVALID("a\xC0\x80"
            "b");
}

static void test_utf8_surrogates_and_beyond(void **state)
{
    (void)state;
    INVALID("\xED\xA0\x80");             /* U+D800 */
    INVALID("\xED\xAD\xBF");             /* U+DB7F */
    INVALID("\xED\xBF\xBF");             /* U+DFFF */
    INVALID("\xED\xA0\xBD\xED\xB8\x80"); /* a CESU-8 pair */
    INVALID("\xF4\x90\x80\x80");         /* U+110000 */
    INVALID("\xF5\x80\x80\x80");
    INVALID("\xF7\xBF\xBF\xBF");
    INVALID("\xF8\x88\x80\x80\x80");
    INVALID("\xFC\x84\x80\x80\x80\x80");
    INVALID("\xFE");
    INVALID("\xFF");
}

static void test_utf8_truncated_and_stray(void **state)
{
    (void)state;
    INVALID("\xC2");
    INVALID("\xE0\xA0");
    INVALID("\xE2\x82");
    INVALID("\xF0\x90\x80");
    INVALID("\xF0\x90");
    INVALID("\xF0");
    INVALID("ok\xE2\x82");
    INVALID("\xC2"
            "A");
    INVALID("\xE0\xA0"
            "A");
    INVALID("\xF0\x90\x80"
            "A");
    INVALID("\xC2\xC2\x80");
    INVALID("\x80");
    INVALID("\xBF");
    INVALID("a\x80"
            "b");
    INVALID("\xC2\x80\x80");
    INVALID("\xEF\xBF\xBF\xBF");
}

/* Unicode Table 3-7: the well-formed sequences; the first well-formed prefix of `p` is its length, 0 if none. */
static size_t ref_seq_len(const unsigned char *p, size_t n)
{
    static const struct {
        unsigned char lo[4], hi[4];
        size_t len;
    } rows[] = {
        {{0x00}, {0x7F}, 1},
        {{0xC2, 0x80}, {0xDF, 0xBF}, 2},
        {{0xE0, 0xA0, 0x80}, {0xE0, 0xBF, 0xBF}, 3},
        {{0xE1, 0x80, 0x80}, {0xEC, 0xBF, 0xBF}, 3},
        {{0xED, 0x80, 0x80}, {0xED, 0x9F, 0xBF}, 3},
        {{0xEE, 0x80, 0x80}, {0xEF, 0xBF, 0xBF}, 3},
        {{0xF0, 0x90, 0x80, 0x80}, {0xF0, 0xBF, 0xBF, 0xBF}, 4},
        {{0xF1, 0x80, 0x80, 0x80}, {0xF3, 0xBF, 0xBF, 0xBF}, 4},
        {{0xF4, 0x80, 0x80, 0x80}, {0xF4, 0x8F, 0xBF, 0xBF}, 4},
    };
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        size_t k;
        if (rows[r].len > n)
            continue;
        for (k = 0; k < rows[r].len; k++) {
            if (p[k] < rows[r].lo[k] || p[k] > rows[r].hi[k])
                break;
        }
        if (k == rows[r].len)
            return k;
    }
    return 0;
}

static int ref_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t k = ref_seq_len(p + i, n - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

static void compare(const unsigned char *b, size_t n)
{
    int got = utf8_valid(b, n), want = ref_valid(b, n);
    if (got != want)
        fail_msg("utf8_valid(%02x %02x %02x %02x / %zu) = %d, Table 3-7 says %d", b[0], n > 1 ? b[1] : 0,
                 n > 2 ? b[2] : 0, n > 3 ? b[3] : 0, n, got, want);
}

static void test_utf8_matches_the_standard_table(void **state)
{
    unsigned char *b = malloc(4);
    static const unsigned char edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xF4, 0xFF};
    unsigned long valid3 = 0;
    (void)state;
    assert_non_null(b);
    for (unsigned a = 0; a < 256; a++) {
        b[0] = (unsigned char)a;
        compare(b, 1);
        for (unsigned c = 0; c < 256; c++) {
            b[1] = (unsigned char)c;
            compare(b, 2);
            for (unsigned d = 0; d < 256; d++) {
                b[2] = (unsigned char)d;
                /* compare() with its message is too slow for 16M calls under ASan: fail with it only. */
                if (utf8_valid(b, 3) != ref_valid(b, 3))
                    compare(b, 3);
                valid3 += (unsigned long)ref_valid(b, 3);
                for (size_t e = 0; e < sizeof(edges) && (a >= 0xF0 && a <= 0xF7); e++) {
                    b[3] = edges[e];
                    compare(b, 4);
                }
            }
        }
    }
    /*
     * The reference itself: 3-byte strings that are valid are 128^3 (ASCII) + 2 * 128 * 1920 (ASCII and a
     * 2-byte sequence, either order) + 61440 (3-byte sequences: 2048 + 12 * 4096 + 2048 + 2 * 4096).
     */
    assert_int_equal(valid3, 2650112);
    free(b);
}

/* ---- JSON bodies: what cJSON and JSON.parse would read differently ---------------------------------------- */

static int nul(const char *text)
{
    return json_has_nul_escape(tess_str(text));
}

static void test_json_nul_escape(void **state)
{
    (void)state;
    assert_true(nul("{\"password\":\"pw\\u0000junk\"}"));
    assert_true(nul("{\"a\\u0000b\":1}"));                   /* in a member name too */
    assert_false(nul("{\"password\":\"pw\\\\u0000junk\"}")); /* an escaped backslash, then text */
    assert_false(nul("{\"a\":\"\\u0001\"}"));
    assert_false(nul("{\"a\":\"u0000\"}"));
    assert_false(nul("{\"a\":1} \\u0000")); /* outside any string (and not JSON anyway) */
    assert_false(nul("{\"a\":\"\\u000\"}"));
    assert_false(nul("{\"a\":\"\\")); /* cut short */
}

static int unique(const char *text)
{
    cJSON *v = cJSON_Parse(text);
    int u;
    assert_non_null(v);
    u = json_members_unique(v, 0);
    cJSON_Delete(v);
    return u;
}

static void test_json_members_unique(void **state)
{
    char big[1024];
    size_t n = 0;
    (void)state;
    assert_true(unique("{\"username\":\"a\",\"password\":\"b\"}"));
    assert_false(unique("{\"username\":\"a\",\"username\":\"b\"}"));
    assert_false(unique("{\"x\":{\"k\":1,\"k\":2}}"));      /* nested */
    assert_false(unique("{\"x\":[{\"k\":1,\"k\":2}]}"));    /* in an array */
    assert_true(unique("{\"x\":[1,1,1],\"y\":{\"x\":1}}")); /* equal values and names in other objects */
    /* 64 members pass, 65 do not */
    for (int k = 0; k < 65; ++k)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"m%d\":1", k == 0 ? "{" : ",", k);
    snprintf(big + n, sizeof(big) - n, "}");
    assert_false(unique(big));
    n = 0;
    for (int k = 0; k < 64; ++k)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"m%d\":1", k == 0 ? "{" : ",", k);
    snprintf(big + n, sizeof(big) - n, "}");
    assert_true(unique(big));
    /* 16 levels pass, 17 do not */
    assert_true(unique("{\"a\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}"));
    assert_false(unique("{\"a\":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_present_absent_empty),
        cmocka_unit_test(test_query_name_prefix_of_another),
        cmocka_unit_test(test_query_first_of_repeated_wins),
        cmocka_unit_test(test_query_percent_decoding),
        cmocka_unit_test(test_query_malformed),
        cmocka_unit_test(test_query_value_longer_than_cap),
        cmocka_unit_test(test_query_longer_than_max),
        cmocka_unit_test(test_query_empty_pieces_and_names_without_value),
        cmocka_unit_test(test_utf8_ascii),
        cmocka_unit_test(test_utf8_multibyte),
        cmocka_unit_test(test_utf8_overlongs),
        cmocka_unit_test(test_utf8_surrogates_and_beyond),
        cmocka_unit_test(test_utf8_truncated_and_stray),
        cmocka_unit_test(test_utf8_matches_the_standard_table),
        cmocka_unit_test(test_json_nul_escape),
        cmocka_unit_test(test_json_members_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
