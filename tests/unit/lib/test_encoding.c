/* Unit tests for src/lib/encoding.c. URL vectors come from node's encodeURIComponent/decodeURIComponent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tessera/encoding.h"
#include "tessera/error.h"
#include "vectors_node.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void test_base64_rfc4648(void **state)
{
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    char out[16];
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(plain); i++) {
        size_t n = strlen(plain[i]);
        assert_int_equal(tess_base64url_encode((const uint8_t *)plain[i], n, out), strlen(enc[i]));
        assert_string_equal(out, enc[i]);
        assert_int_equal(TESS_BASE64_LEN(n), strlen(enc[i]));
        assert_int_equal(tess_base64_encode_nopad((const uint8_t *)plain[i], n, out), strlen(enc[i]));
        assert_string_equal(out, enc[i]);

        uint8_t dec[16];
        size_t dn = 99;
        assert_int_equal(tess_base64url_decode(tess_str(enc[i]), dec, sizeof(dec), &dn), TESS_OK);
        assert_int_equal(dn, n);
        assert_memory_equal(dec, plain[i], n);
    }
}

static void test_base64_alphabets(void **state)
{
    static const uint8_t bytes[] = {0xfb, 0xff, 0xbf};
    char out[8];
    uint8_t dec[8];
    size_t n;
    (void)state;

    tess_base64url_encode(bytes, 3, out);
    assert_string_equal(out, "-_-_");
    tess_base64_encode_nopad(bytes, 3, out);
    assert_string_equal(out, "+/+/");
    tess_base64_encode_nopad(bytes, 2, out);
    assert_string_equal(out, "+/8");
    assert_int_equal(tess_base64url_decode(tess_str("-_-_"), dec, sizeof(dec), &n), TESS_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(dec, bytes, 3);
    /* the standard alphabet's + and / are not base64url */
    assert_int_equal(tess_base64url_decode(tess_str("+/+/"), dec, sizeof(dec), &n), TESS_EBADFMT);
}

static void test_base64_roundtrip_all_lengths(void **state)
{
    uint8_t in[200], dec[200];
    char enc[TESS_BASE64_LEN(200) + 1];
    (void)state;

    for (size_t i = 0; i < sizeof(in); i++) {
        in[i] = (uint8_t)(i * 37 + 11);
    }
    for (size_t n = 0; n <= sizeof(in); n++) {
        size_t el = tess_base64url_encode(in, n, enc);
        assert_int_equal(el, TESS_BASE64_LEN(n));
        assert_int_equal(strlen(enc), el);
        size_t dn = 0;
        assert_int_equal(tess_base64url_decode(tess_strn(enc, el), dec, n, &dn), TESS_OK); /* exact cap */
        assert_int_equal(dn, n);
        assert_memory_equal(dec, in, n);
        if (n > 0) {
            assert_int_equal(tess_base64url_decode(tess_strn(enc, el), dec, n - 1, &dn), TESS_ENOSPACE);
        }
    }
}

static void test_base64_decode_strict(void **state)
{
    static const char *bad[] = {
        "Zg==",  /* padding */
        "Zm8=",  /* padding */
        "Z",     /* 6 bits */
        "Zm9vY", /* 4n+1 */
        "Zh",    /* non-zero trailing bits */
        "Zm9",   /* non-zero trailing bits (9 = 61: low 2 bits 01) */
        "Zm 9v", /* blank */
        "Zm9v\n", "Zm.v", "Zm9v=", "\xc3\xa9xx",
    };
    uint8_t dec[16];
    size_t n = 7;
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        n = 7;
        assert_int_equal(tess_base64url_decode(tess_str(bad[i]), dec, sizeof(dec), &n), TESS_EBADFMT);
        assert_int_equal(n, 0);
    }
    /* a NUL inside is just another byte outside the alphabet */
    assert_int_equal(tess_base64url_decode(tess_strn("Zm\0v", 4), dec, sizeof(dec), &n), TESS_EBADFMT);
    /* empty is fine and NULL ptr with len 0 is fine */
    assert_int_equal(tess_base64url_decode(tess_strn(NULL, 0), dec, 0, &n), TESS_OK);
    assert_int_equal(n, 0);
    /* Zm8 ends in bits 111100: canonical; Zm9 is not */
    assert_int_equal(tess_base64url_decode(tess_str("Zm8"), dec, sizeof(dec), &n), TESS_OK);
}

static void test_url_encode_node(void **state)
{
    char out[1024];
    size_t n;
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(tv_url_encode); i++) {
        const tv_url_encode_t *v = &tv_url_encode[i];
        assert_int_equal(tess_url_encode(tess_strn(v->in, v->in_len), out, sizeof(out), &n), TESS_OK);
        assert_string_equal(out, v->out);
        assert_int_equal(n, strlen(v->out));
        /* and back */
        char back[1024];
        size_t bn;
        assert_int_equal(tess_url_decode(tess_strn(out, n), back, sizeof(back), &bn), TESS_OK);
        assert_int_equal(bn, v->in_len);
        assert_memory_equal(back, v->in, v->in_len);
    }
}

static void test_url_encode_nospace(void **state)
{
    char out[8];
    size_t n = 5;
    (void)state;

    /* "a b" -> "a%20b" needs 5 + NUL */
    assert_int_equal(tess_url_encode(tess_str("a b"), out, 6, &n), TESS_OK);
    assert_string_equal(out, "a%20b");
    assert_int_equal(tess_url_encode(tess_str("a b"), out, 5, &n), TESS_ENOSPACE);
    assert_int_equal(n, 0);
    assert_string_equal(out, "");
    assert_int_equal(tess_url_encode(tess_str("abc"), out, 3, &n), TESS_ENOSPACE);
    assert_int_equal(tess_url_encode(tess_str(""), out, 1, &n), TESS_OK);
    assert_string_equal(out, "");
    assert_int_equal(tess_url_encode(tess_str(""), out, 0, &n), TESS_ENOSPACE);
}

static void test_url_decode_node(void **state)
{
    char out[256];
    size_t n;
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(tv_url_decode); i++) {
        const tv_url_decode_t *v = &tv_url_decode[i];
        int rc = tess_url_decode(tess_str(v->in), out, sizeof(out), &n);
        if (v->out == NULL) {
            if (rc != TESS_EBADFMT) {
                fail_msg("decode(\"%s\"): node throws, got %d", v->in, rc);
            }
        } else {
            if (rc != TESS_OK) {
                fail_msg("decode(\"%s\"): node gives a value, got %d", v->in, rc);
            }
            assert_int_equal(n, v->out_len);
            assert_memory_equal(out, v->out, n);
            assert_int_equal(out[n], '\0');
        }
    }
}

static void test_url_decode_bounds(void **state)
{
    char out[8];
    size_t n = 3;
    (void)state;

    assert_int_equal(tess_url_decode(tess_str("%41%42"), out, 3, &n), TESS_OK);
    assert_string_equal(out, "AB");
    assert_int_equal(tess_url_decode(tess_str("%41%42"), out, 2, &n), TESS_ENOSPACE);
    assert_int_equal(n, 0);
    assert_int_equal(tess_url_decode(tess_str("%E2%82%AC"), out, 4, &n), TESS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(tess_url_decode(tess_str("%E2%82%AC"), out, 3, &n), TESS_ENOSPACE);
    /* an escape cut by the length must not read past it */
    assert_int_equal(tess_url_decode(tess_strn("%41", 2), out, sizeof(out), &n), TESS_EBADFMT);
    assert_int_equal(tess_url_decode(tess_strn("%E2%82%AC", 8), out, sizeof(out), &n), TESS_EBADFMT);
    /* NUL bytes, literal or escaped, are data */
    assert_int_equal(tess_url_decode(tess_strn("a\0b", 3), out, sizeof(out), &n), TESS_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "a\0b", 4);
    assert_int_equal(tess_url_decode(tess_str(""), out, 1, &n), TESS_OK);
    assert_int_equal(tess_url_decode(tess_str(""), out, 0, &n), TESS_ENOSPACE);
}

static void test_hex(void **state)
{
    static const uint8_t in[] = {0x00, 0x01, 0xab, 0xff, 0x7f};
    char out[11];
    (void)state;

    assert_int_equal(tess_hex_encode(in, sizeof(in), out), 10);
    assert_string_equal(out, "0001abff7f");
    assert_int_equal(tess_hex_encode(in, 0, out), 0);
    assert_string_equal(out, "");
}

/* The decimal writer against printf's %lld, over the edges and a spread of magnitudes of both signs. */
static void test_i64_decimal(void **state)
{
    static const int64_t edges[] = {0, 1, -1, 9, 10, -10, 999999999999999, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    char got[TESS_I64_DEC_MAX], want[32];
    (void)state;
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
        size_t n = tess_i64_decimal(edges[i], got);
        snprintf(want, sizeof(want), "%lld", (long long)edges[i]);
        assert_string_equal(got, want);
        assert_int_equal(n, strlen(want));
    }
    for (int64_t v = 1; v > 0 && v < INT64_MAX / 7; v = v * 7 + 3) {
        for (int sign = -1; sign <= 1; sign += 2) {
            tess_i64_decimal(sign * v, got);
            snprintf(want, sizeof(want), "%lld", (long long)(sign * v));
            assert_string_equal(got, want);
        }
    }
}

static void test_id_new(void **state)
{
    char a[TESS_ID_LEN + 1], b[TESS_ID_LEN + 1];
    (void)state;

    assert_int_equal(tess_id_new(a), TESS_OK);
    assert_int_equal(tess_id_new(b), TESS_OK);
    assert_int_equal(strlen(a), TESS_ID_LEN);
    assert_true(tess_id_valid(tess_str(a)));
    assert_string_not_equal(a, b);

    uint8_t r1[64] = {0}, r2[64] = {0};
    assert_int_equal(tess_random_bytes(r1, sizeof(r1)), TESS_OK);
    assert_int_equal(tess_random_bytes(r2, sizeof(r2)), TESS_OK);
    assert_memory_not_equal(r1, r2, sizeof(r1));
    assert_int_equal(tess_random_bytes(r1, 0), TESS_OK);
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, TESS_ID_BYTES);
}

/*
 * Session ids carry 256 random bits: each decodes to TESS_ID_BYTES bytes, 4,096 of them are all distinct, and
 * every one of the 256 bit positions is set in 40-60 % of them (a counter, a time stamp or a short random part
 * in any byte fails this: such a bit is constant, or its byte repeats).
 */
static void test_id_entropy(void **state)
{
    enum { N = 4096 };
    static uint8_t raw[N][TESS_ID_BYTES];
    unsigned ones[TESS_ID_BYTES * 8] = {0};
    (void)state;

    for (size_t i = 0; i < N; i++) {
        char id[TESS_ID_LEN + 1];
        size_t n = 0;
        assert_int_equal(tess_id_new(id), TESS_OK);
        assert_int_equal(tess_base64url_decode(tess_str(id), raw[i], sizeof(raw[i]), &n), TESS_OK);
        assert_int_equal(n, TESS_ID_BYTES);
        for (size_t bit = 0; bit < TESS_ID_BYTES * 8; bit++)
            ones[bit] += (raw[i][bit / 8] >> (bit % 8)) & 1u;
    }
    for (size_t bit = 0; bit < TESS_ID_BYTES * 8; bit++) {
        assert_in_range(ones[bit], N * 40 / 100, N * 60 / 100);
    }
    qsort(raw, N, sizeof(raw[0]), cmp_id);
    for (size_t i = 1; i < N; i++)
        assert_memory_not_equal(raw[i - 1], raw[i], TESS_ID_BYTES);
}

static void test_utf8_decode(void **state)
{
    static const struct {
        const char *in;
        size_t n, len;
        uint32_t cp;
    } v[] = {
        {"a", 1, 1, 'a'},
        {"\xc3\xa9", 2, 2, 0xe9},
        {"\xe2\x82\xac", 3, 3, 0x20ac},
        {"\xf0\x9f\x98\x80", 4, 4, 0x1f600},
        {"\xf4\x8f\xbf\xbf", 4, 4, 0x10ffff},
        {"\xc3\xa9x", 3, 2, 0xe9},     /* one sequence at a time */
        {"", 0, 0, 0},                 /* nothing */
        {"\xc3", 1, 0, 0},             /* truncated */
        {"\xe2\x82", 2, 0, 0},         /* truncated */
        {"\x80", 1, 0, 0},             /* stray continuation */
        {"\xc0\xaf", 2, 0, 0},         /* overlong '/' */
        {"\xe0\x80\xaf", 3, 0, 0},     /* overlong */
        {"\xed\xa0\x80", 3, 0, 0},     /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 4, 0, 0}, /* past U+10FFFF */
        {"\xf8\x88\x80\x80\x80", 5, 0, 0},
        {"\xc3\x28", 2, 0, 0}, /* not a continuation */
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(v); i++) {
        uint32_t cp = 0xffffffffu;
        size_t len = tess_utf8_decode((const unsigned char *)v[i].in, v[i].n, &cp);
        if (len != v[i].len || (len != 0 && cp != v[i].cp))
            fail_msg("vector %zu: length %zu code point %x", i, len, (unsigned)cp);
    }
}

static void test_id_valid(void **state)
{
    char max[TESS_SID_MAX + 2];
    (void)state;

    memset(max, 'A', sizeof(max));
    assert_true(tess_id_valid(tess_strn(max, TESS_SID_MAX)));
    assert_false(tess_id_valid(tess_strn(max, TESS_SID_MAX + 1)));
    assert_true(tess_id_valid(tess_str("a")));
    assert_true(tess_id_valid(tess_str("abc-DEF_0123456789")));
    assert_true(tess_id_valid(tess_str("4ZXz1Zbn2Y1vXhQ2mXzqgqE4eVxH0oR9")));
    assert_false(tess_id_valid(tess_str("")));
    assert_false(tess_id_valid(tess_strn(NULL, 0)));
    assert_false(tess_id_valid(tess_str("abc+def")));
    assert_false(tess_id_valid(tess_str("abc/def")));
    assert_false(tess_id_valid(tess_str("abc=")));
    assert_false(tess_id_valid(tess_str("abc.def")));
    assert_false(tess_id_valid(tess_str("abc def")));
    assert_false(tess_id_valid(tess_str("abc%41")));
    assert_false(tess_id_valid(tess_strn("ab\0c", 4)));
    assert_false(tess_id_valid(tess_str("\xc3\xa9")));
}

static void test_ct_eq(void **state)
{
    (void)state;
    assert_true(tess_ct_eq("abc", "abc", 3));
    assert_false(tess_ct_eq("abc", "abd", 3));
    assert_false(tess_ct_eq("\0bc", "abc", 3));
    assert_true(tess_ct_eq("x", "y", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_base64_alphabets),
        cmocka_unit_test(test_base64_roundtrip_all_lengths),
        cmocka_unit_test(test_base64_decode_strict),
        cmocka_unit_test(test_url_encode_node),
        cmocka_unit_test(test_url_encode_nospace),
        cmocka_unit_test(test_url_decode_node),
        cmocka_unit_test(test_url_decode_bounds),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_i64_decimal),
        cmocka_unit_test(test_id_new),
        cmocka_unit_test(test_id_entropy),
        cmocka_unit_test(test_utf8_decode),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_ct_eq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
