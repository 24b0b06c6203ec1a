/*
 * Unit tests for src/lib/jwt.c. Token vectors come from jsonwebtoken (tests/interop/gen_vectors.js).
 *
 * With TESS_INTEROP_OUT=<file> set, test_sign_export also writes tokens we signed, one per line as
 * "<token> <hex userId> <role|-> <jti|-> <iat> <exp> <nbf>", for tests/interop/verify_ours.js to check with
 * jsonwebtoken.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tessera/cookie.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "crypto/claims.h"
#include "tessera/jwt.h"
#include "vectors_node.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NOW TV_JWT_NOW

typedef struct fixture {
    tess_secrets_t *secrets;
    tess_jwt_t *jwt;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    tess_jwt_opts_t opts = {.leeway_s = TV_JWT_LEEWAY, .max_token_len = 0};

    if (f == NULL || tess_secrets_parse(&f->secrets, tess_str(TV_JWT_SECRETS)) != TESS_OK ||
        tess_jwt_new(&f->jwt, f->secrets, &opts) != TESS_OK) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tess_jwt_free(f->jwt);
    tess_secrets_free(f->secrets);
    free(f);
    return 0;
}

static int rc_of(const char *name)
{
    if (strcmp(name, "OK") == 0) {
        return TESS_OK;
    }
#define RC_OF(n, v, m)                                                                                                 \
    if (strcmp(name, #n) == 0) {                                                                                       \
        return v;                                                                                                      \
    }
    TESS_ERRNO_MAP(RC_OF)
#undef RC_OF
    fail_msg("unknown rc name %s", name);
    return 1;
}

static tess_jwt_claims_t claims_of(const char *uid, const char *role, const char *jti, int64_t iat, int64_t exp,
                                   int64_t nbf)
{
    tess_jwt_claims_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.user_id, sizeof(c.user_id), "%s", uid);
    snprintf(c.role, sizeof(c.role), "%s", role);
    snprintf(c.jti, sizeof(c.jti), "%s", jti);
    c.iat = iat;
    c.exp = exp;
    c.nbf = nbf;
    return c;
}

/* ---- jsonwebtoken vectors ---- */

static void test_vectors(void **state)
{
    fixture_t *f = *state;

    for (size_t i = 0; i < ARRAY_LEN(tv_jwts); i++) {
        const tv_jwt_t *v = &tv_jwts[i];
        tess_jwt_claims_t c;
        int want = rc_of(v->expect);
        int rc = tess_jwt_verify(f->jwt, tess_str(v->token), NOW, &c);
        if (rc != want) {
            fail_msg("%s: got %s, want %s (node: %s)", v->name, tess_err_name(rc), v->expect, v->node);
        }
        /* where tessera and jsonwebtoken disagree, the generator had to say why */
        if (want == TESS_OK || strcmp(v->node, "OK") == 0) {
            assert_true(strcmp(v->node, v->expect) == 0 || v->note != NULL);
        }
        if (want != TESS_OK) {
            assert_string_equal(c.user_id, "");
            assert_int_equal(c.exp, 0);
            continue;
        }
        assert_string_equal(c.user_id, v->user_id);
        assert_string_equal(c.role, v->role);
        assert_string_equal(c.jti, v->jti);
        assert_int_equal(c.iat, v->iat);
        assert_int_equal(c.exp, v->exp);
        assert_int_equal(c.nbf, v->nbf);
    }
}

/* The token we sign for the claims of the "valid" vector is byte-identical to jsonwebtoken's. */
static void test_sign_matches_node(void **state)
{
    tess_secrets_t *s = NULL;
    tess_jwt_t *j = NULL;
    const tv_jwt_t *v = NULL;
    char tok[1024];
    size_t n;
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(tv_jwts); i++) {
        if (strcmp(tv_jwts[i].name, "valid") == 0) {
            v = &tv_jwts[i];
        }
    }
    assert_non_null(v);
    assert_int_equal(tess_secrets_parse(&s, tess_str(TV_JWT_SECRET_NEW)), TESS_OK);
    assert_int_equal(tess_jwt_new(&j, s, NULL), TESS_OK);
    tess_jwt_claims_t c = claims_of(v->user_id, v->role, v->jti, v->iat, v->exp, v->nbf);
    assert_int_equal(tess_jwt_sign(j, &c, tok, sizeof(tok), &n), TESS_OK);
    assert_string_equal(tok, v->token);
    assert_int_equal(n, strlen(v->token));
    tess_jwt_free(j);
    tess_secrets_free(s);
}

/* ---- our own tokens ---- */

static void test_roundtrip(void **state)
{
    fixture_t *f = *state;
    static const char *uids[] = {
        "1", "u-123", "quote\"back\\slash", "ctl\x01\x1f\t\n\r\b\f", "\xc3\xbc\xe2\x82\xac", "/+=.;,% <>&'"};
    char tok[2048];
    size_t n;

    for (size_t i = 0; i < ARRAY_LEN(uids); i++) {
        tess_jwt_claims_t in = claims_of(uids[i], i % 2 ? "admin" : "", i % 3 ? "jti-\"x\"" : "", NOW - 10, NOW + 3600,
                                         i % 2 ? NOW - 5 : 0);
        tess_jwt_claims_t out;
        assert_int_equal(tess_jwt_sign(f->jwt, &in, tok, sizeof(tok), &n), TESS_OK);
        assert_int_equal(strlen(tok), n);
        assert_int_equal(tess_jwt_verify(f->jwt, tess_strn(tok, n), NOW, &out), TESS_OK);
        assert_memory_equal(&in, &out, sizeof(in));
    }
}

static void test_jti_roundtrip(void **state)
{
    fixture_t *f = *state;
    char tok[2048];
    size_t n;
    char jti[TESS_JTI_MAX + 1];

    for (int k = 0; k < 20; k++) {
        uint8_t raw[TESS_JTI_MAX];
        assert_int_equal(tess_random_bytes(raw, sizeof(raw)), TESS_OK);
        /* jti of every length up to the max, from the base64url alphabet */
        size_t len = (size_t)(k * 3 + 1) % (TESS_JTI_MAX + 1);
        char b64[TESS_BASE64_LEN(TESS_JTI_MAX) + 1];
        tess_base64url_encode(raw, sizeof(raw), b64);
        memcpy(jti, b64, len);
        jti[len] = '\0';
        tess_jwt_claims_t in = claims_of("user", "r", jti, NOW, NOW + 60, 0);
        tess_jwt_claims_t out;
        assert_int_equal(tess_jwt_sign(f->jwt, &in, tok, sizeof(tok), &n), TESS_OK);
        assert_int_equal(tess_jwt_verify(f->jwt, tess_strn(tok, n), NOW, &out), TESS_OK);
        assert_string_equal(out.jti, jti);
    }
    memset(jti, 'j', TESS_JTI_MAX);
    jti[TESS_JTI_MAX] = '\0';
    tess_jwt_claims_t in = claims_of("user", "", jti, NOW, NOW + 60, 0);
    tess_jwt_claims_t out;
    assert_int_equal(tess_jwt_sign(f->jwt, &in, tok, sizeof(tok), &n), TESS_OK);
    assert_int_equal(tess_jwt_verify(f->jwt, tess_strn(tok, n), NOW, &out), TESS_OK);
    assert_string_equal(out.jti, jti);
}

static void test_rotation(void **state)
{
    tess_secrets_t *old = NULL, *both = NULL, *newer = NULL;
    tess_jwt_t *jo = NULL, *jb = NULL, *jn = NULL;
    char tok[1024], tok2[1024];
    size_t n, n2;
    tess_jwt_claims_t out;
    (void)state;

    assert_int_equal(tess_secrets_parse(&old, tess_str("old")), TESS_OK);
    assert_int_equal(tess_secrets_parse(&both, tess_str("new, old")), TESS_OK);
    assert_int_equal(tess_secrets_parse(&newer, tess_str("newer,new")), TESS_OK);
    assert_int_equal(tess_jwt_new(&jo, old, NULL), TESS_OK);
    assert_int_equal(tess_jwt_new(&jb, both, NULL), TESS_OK);
    assert_int_equal(tess_jwt_new(&jn, newer, NULL), TESS_OK);
    tess_jwt_claims_t c = claims_of("u", "", "", NOW, NOW + 60, 0);

    assert_int_equal(tess_jwt_sign(jo, &c, tok, sizeof(tok), &n), TESS_OK);
    assert_int_equal(tess_jwt_verify(jb, tess_strn(tok, n), NOW, &out), TESS_OK); /* old verifies */
    assert_int_equal(tess_jwt_verify(jn, tess_strn(tok, n), NOW, &out), TESS_EBADSIG);
    assert_int_equal(tess_jwt_sign(jb, &c, tok2, sizeof(tok2), &n2), TESS_OK); /* first signs */
    assert_string_not_equal(tok, tok2);
    assert_int_equal(tess_jwt_verify(jo, tess_strn(tok2, n2), NOW, &out), TESS_EBADSIG);
    assert_int_equal(tess_jwt_verify(jn, tess_strn(tok2, n2), NOW, &out), TESS_OK);

    tess_jwt_free(jo);
    tess_jwt_free(jb);
    tess_jwt_free(jn);
    tess_secrets_free(old);
    tess_secrets_free(both);
    tess_secrets_free(newer);
}

static void test_leeway_boundaries(void **state)
{
    fixture_t *f = *state;
    tess_jwt_t *strict = NULL, *dflt = NULL;
    tess_jwt_opts_t zero = {.leeway_s = 0, .max_token_len = 0};
    tess_jwt_opts_t neg = {.leeway_s = -1, .max_token_len = 0};
    char tok[1024];
    size_t n;
    tess_jwt_claims_t out;

    assert_int_equal(tess_jwt_new(&strict, f->secrets, &zero), TESS_OK);
    assert_int_equal(tess_jwt_new(&dflt, f->secrets, &neg), TESS_OK);

    struct {
        int64_t exp, nbf, iat;
        int strict_rc, leeway_rc;
    } cases[] = {
        {NOW + 1, 0, NOW, TESS_OK, TESS_OK},
        {NOW, 0, NOW, TESS_EEXPIRED, TESS_OK}, /* now >= exp */
        {NOW - 29, 0, NOW - 100, TESS_EEXPIRED, TESS_OK},
        {NOW - 30, 0, NOW - 100, TESS_EEXPIRED, TESS_EEXPIRED},
        {NOW + 60, NOW, NOW, TESS_OK, TESS_OK},
        {NOW + 60, NOW + 1, NOW, TESS_EEXPIRED, TESS_OK},
        {NOW + 60, NOW + 30, NOW, TESS_EEXPIRED, TESS_OK},
        {NOW + 60, NOW + 31, NOW, TESS_EEXPIRED, TESS_EEXPIRED},
        {NOW + 60, 0, NOW + 1, TESS_EEXPIRED, TESS_OK}, /* issued in the future */
        {NOW + 60, 0, NOW + 30, TESS_EEXPIRED, TESS_OK},
        {NOW + 60, 0, NOW + 31, TESS_EEXPIRED, TESS_EEXPIRED},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        tess_jwt_claims_t c = claims_of("u", "", "", cases[i].iat, cases[i].exp, cases[i].nbf);
        assert_int_equal(tess_jwt_sign(f->jwt, &c, tok, sizeof(tok), &n), TESS_OK);
        int rs = tess_jwt_verify(strict, tess_strn(tok, n), NOW, &out);
        int rl = tess_jwt_verify(dflt, tess_strn(tok, n), NOW, &out);
        int rf = tess_jwt_verify(f->jwt, tess_strn(tok, n), NOW, &out);
        if (rs != cases[i].strict_rc || rl != cases[i].leeway_rc || rf != rl) {
            fail_msg("case %zu: strict %s leeway %s fixture %s", i, tess_err_name(rs), tess_err_name(rl),
                     tess_err_name(rf));
        }
    }
    tess_jwt_free(strict);
    tess_jwt_free(dflt);
}

static void test_sign_errors(void **state)
{
    fixture_t *f = *state;
    char tok[1024];
    size_t n = 5;
    tess_jwt_claims_t c = claims_of("u", "", "", NOW, NOW + 60, 0);

    assert_int_equal(tess_jwt_sign(f->jwt, &c, tok, sizeof(tok), &n), TESS_OK);
    size_t need = n;
    assert_int_equal(tess_jwt_sign(f->jwt, &c, tok, need + 1, &n), TESS_OK);
    assert_int_equal(tess_jwt_sign(f->jwt, &c, tok, need, &n), TESS_ENOSPACE);
    assert_int_equal(n, 0);
    assert_string_equal(tok, "");

    tess_jwt_claims_t bad = c;
    bad.user_id[0] = '\0';
    assert_int_equal(tess_jwt_sign(f->jwt, &bad, tok, sizeof(tok), &n), TESS_EINVAL);
    bad = c;
    bad.exp = 0;
    assert_int_equal(tess_jwt_sign(f->jwt, &bad, tok, sizeof(tok), &n), TESS_EINVAL);
    bad = c;
    memset(bad.user_id, 'x', sizeof(bad.user_id)); /* no NUL in the field */
    assert_int_equal(tess_jwt_sign(f->jwt, &bad, tok, sizeof(tok), &n), TESS_EINVAL);
    bad = c;
    memset(bad.role, 'x', sizeof(bad.role));
    assert_int_equal(tess_jwt_sign(f->jwt, &bad, tok, sizeof(tok), &n), TESS_EINVAL);
    bad = c;
    strcpy(bad.user_id, "\xc3\x28"); /* invalid UTF-8 */
    assert_int_equal(tess_jwt_sign(f->jwt, &bad, tok, sizeof(tok), &n), TESS_EINVAL);
    bad = c;
    strcpy(bad.jti, "\xed\xa0\x80"); /* surrogate */
    assert_int_equal(tess_jwt_sign(f->jwt, &bad, tok, sizeof(tok), &n), TESS_EINVAL);
    assert_int_equal(tess_jwt_sign(f->jwt, NULL, tok, sizeof(tok), &n), TESS_EINVAL);
    assert_int_equal(tess_jwt_sign(NULL, &c, tok, sizeof(tok), &n), TESS_EINVAL);

    /* worst case fits a TESS_TOKEN_MAX buffer: every string byte escaped */
    memset(&bad, 0, sizeof(bad));
    memset(bad.user_id, 0x01, TESS_USER_ID_MAX);
    memset(bad.role, 0x02, TESS_ROLE_MAX);
    memset(bad.jti, 0x03, TESS_JTI_MAX);
    bad.iat = bad.exp = bad.nbf = INT64_C(9007199254740991);
    char big[TESS_TOKEN_MAX];
    tess_jwt_claims_t out;
    assert_int_equal(tess_jwt_sign(f->jwt, &bad, big, sizeof(big), &n), TESS_OK);
    assert_int_equal(tess_jwt_verify(f->jwt, tess_strn(big, n), bad.nbf - 30, &out), TESS_OK);
    assert_memory_equal(&out, &bad, sizeof(out));

    tess_jwt_t *j = (tess_jwt_t *)&j;
    assert_int_equal(tess_jwt_new(&j, NULL, NULL), TESS_EINVAL);
    assert_null(j);
    assert_int_equal(tess_jwt_new(NULL, f->secrets, NULL), TESS_EINVAL);
    tess_jwt_free(NULL);
}

static void test_malformed(void **state)
{
    fixture_t *f = *state;
    char tok[1024];
    size_t n;
    tess_jwt_claims_t out;
    tess_jwt_claims_t c = claims_of("user-1", "admin", "j1", NOW, NOW + 60, 0);

    assert_int_equal(tess_jwt_sign(f->jwt, &c, tok, sizeof(tok), &n), TESS_OK);

    static const char *bad[] = {"", ".", "..", "...", "a", "a.b", "a.b.c", "a..c", ".b.c", "a.b.", "..c"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int rc = tess_jwt_verify(f->jwt, tess_str(bad[i]), NOW, &out);
        assert_true(rc == TESS_EBADFMT || rc == TESS_EBADSIG);
    }
    assert_int_equal(tess_jwt_verify(f->jwt, tess_strn(NULL, 0), NOW, &out), TESS_EBADFMT);
    assert_int_equal(tess_jwt_verify(f->jwt, tess_strn(tok, n), NOW, NULL), TESS_EINVAL);
    assert_int_equal(tess_jwt_verify(NULL, tess_strn(tok, n), NOW, &out), TESS_EINVAL);

    /* every truncation, from an exact-size heap copy (ASan catches an over-read) */
    for (size_t k = 0; k < n; k++) {
        char *copy = malloc(k + 1);
        memcpy(copy, tok, k);
        int rc = tess_jwt_verify(f->jwt, tess_strn(copy, k), NOW, &out);
        if (rc == TESS_OK) {
            fail_msg("truncation to %zu verified", k);
        }
        free(copy);
    }
    /* every single-bit flip */
    for (size_t k = 0; k < n; k++) {
        for (int bit = 0; bit < 8; bit++) {
            char copy[1024];
            memcpy(copy, tok, n);
            copy[k] ^= (char)(1 << bit);
            if (tess_jwt_verify(f->jwt, tess_strn(copy, n), NOW, &out) == TESS_OK) {
                fail_msg("flip of bit %d in byte %zu verified", bit, k);
            }
        }
    }
    /* NUL bytes and junk around a good token */
    char buf[TESS_TOKEN_MAX + 16];
    memcpy(buf, tok, n);
    buf[n] = '\0';
    assert_int_not_equal(tess_jwt_verify(f->jwt, tess_strn(buf, n + 1), NOW, &out), TESS_OK);
    memcpy(buf + n, ".x", 2);
    assert_int_equal(tess_jwt_verify(f->jwt, tess_strn(buf, n + 2), NOW, &out), TESS_EBADFMT);
    buf[0] = ' ';
    memcpy(buf + 1, tok, n);
    assert_int_not_equal(tess_jwt_verify(f->jwt, tess_strn(buf, n + 1), NOW, &out), TESS_OK);

    /* oversized: TESS_TOKEN_MAX accepted as input size, one more refused before any parsing */
    memset(buf, 'A', sizeof(buf));
    assert_int_equal(tess_jwt_verify(f->jwt, tess_strn(buf, TESS_TOKEN_MAX + 1), NOW, &out), TESS_ETOOBIG);
    assert_int_equal(tess_jwt_verify(f->jwt, tess_strn(buf, TESS_TOKEN_MAX), NOW, &out), TESS_EBADFMT);
    buf[100] = '.';
    buf[200] = '.';
    assert_int_equal(tess_jwt_verify(f->jwt, tess_strn(buf, TESS_TOKEN_MAX), NOW, &out), TESS_EBADFMT);

    /* a configured bound */
    tess_jwt_t *small = NULL;
    tess_jwt_opts_t o = {.leeway_s = 0, .max_token_len = n - 1};
    assert_int_equal(tess_jwt_new(&small, f->secrets, &o), TESS_OK);
    assert_int_equal(tess_jwt_verify(small, tess_strn(tok, n), NOW, &out), TESS_ETOOBIG);
    tess_jwt_free(small);
    o.max_token_len = n;
    assert_int_equal(tess_jwt_new(&small, f->secrets, &o), TESS_OK);
    assert_int_equal(tess_jwt_verify(small, tess_strn(tok, n), NOW, &out), TESS_OK);
    tess_jwt_free(small);
}

/* A token with a valid HS256 signature (first secret) over a hand-written header and payload. */
static void sign_raw(const char *header, const char *payload, char *tok, size_t cap)
{
    char h[512], p[1024], msg[1600];
    uint8_t mac[32];
    unsigned int mlen = 0;
    char sig[TESS_BASE64_LEN(32) + 1];

    tess_base64url_encode((const uint8_t *)header, strlen(header), h);
    tess_base64url_encode((const uint8_t *)payload, strlen(payload), p);
    snprintf(msg, sizeof(msg), "%s.%s", h, p);
    assert_non_null(HMAC(EVP_sha256(), TV_JWT_SECRET_NEW, (int)strlen(TV_JWT_SECRET_NEW), (const uint8_t *)msg,
                         strlen(msg), mac, &mlen));
    tess_base64url_encode(mac, sizeof(mac), sig);
    snprintf(tok, cap, "%s.%s", msg, sig);
}

static void test_hand_written(void **state)
{
    fixture_t *f = *state;
    char tok[2048];
    tess_jwt_claims_t out;
    struct {
        const char *header, *payload;
        int rc;
    } cases[] = {
        {"{\"alg\":\"HS256\"}", "{\"userId\":\"a\",\"exp\":1700000060}", TESS_OK},
        {" {\"alg\":\"HS256\"} ", "{\"userId\":\"a\",\"exp\":1700000060}", TESS_OK},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "{\"userId\":\"a\",\"exp\":1700000060}", TESS_EBADFMT},
        {"{\"alg\":\"HS256\",\"crit\":[\"b64\"]}", "{\"userId\":\"a\",\"exp\":1700000060}", TESS_EBADFMT},
        {"{\"alg\":\"HS256\",\"typ\":7}", "{\"userId\":\"a\",\"exp\":1700000060}", TESS_EBADFMT},
        {"{\"alg\":\"none\"}", "{\"userId\":\"a\",\"exp\":1700000060}", TESS_EBADSIG},
        {"{\"alg\":null}", "{\"userId\":\"a\",\"exp\":1700000060}", TESS_EBADSIG},
        {"{\"alg\":\"HS256 \"}", "{\"userId\":\"a\",\"exp\":1700000060}", TESS_EBADSIG},
        {"[\"HS256\"]", "{\"userId\":\"a\",\"exp\":1700000060}", TESS_EBADFMT},
        {"\xef\xbb\xbf{\"alg\":\"HS256\"}", "{\"userId\":\"a\",\"exp\":1700000060}", TESS_EBADFMT},
        {"{\"alg\":\"HS256\"}", "{\"userId\":\"a\",\"exp\":1700000060}x", TESS_EBADFMT},
        {"{\"alg\":\"HS256\"}", "{\"userId\":\"a\",\"exp\":1.6e9}", TESS_EEXPIRED},
        {"{\"alg\":\"HS256\"}", "{\"userId\":\"a\",\"exp\":1.7e9}", TESS_OK},
        {"{\"alg\":\"HS256\"}", "{\"userId\":\"a\",\"exp\":\"1\"}", TESS_EBADFMT},
        {"{\"alg\":\"HS256\"}", "{\"userId\":\"a\",\"exp\":null}", TESS_EBADFMT},
        {"{\"alg\":\"HS256\"}", "{\"userId\":\"a\"}", TESS_EBADFMT},
        {"{\"alg\":\"HS256\"}", "{\"userId\":12345678901234567,\"exp\":1700000060}", TESS_EBADFMT},
        {"{\"alg\":\"HS256\"}", "{\"userId\":9007199254740991,\"exp\":1700000060}", TESS_OK},
        {"{\"alg\":\"HS256\"}", "{\"userId\":\"a\",\"exp\":1700000060,\"iat\":true}", TESS_EBADFMT},
        {"{\"alg\":\"HS256\"}", "{\"userId\":\"a\",\"exp\":1700000060,\"jti\":5}", TESS_EBADFMT},
        {"{\"alg\":\"HS256\"}", "{\"userId\":\"a\",\"exp\":1700000060,\"exp\":1}", TESS_EBADFMT},
        {"{\"alg\":\"HS256\"}", "{\"userId\":[\"a\"],\"exp\":1700000060}", TESS_EBADFMT},
        {"{\"alg\":\"HS256\"}", "{\"userId\":\"a\",\"exp\":1700000060,\"x\":[[[[[[1]]]]]]}", TESS_OK},
        {"{\"alg\":\"HS256\"}", "{\"userId\":\"a\",\"exp\":1700000060,\"x\":[[[[[[1]]]]]}", TESS_EBADFMT},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        sign_raw(cases[i].header, cases[i].payload, tok, sizeof(tok));
        int rc = tess_jwt_verify(f->jwt, tess_str(tok), NOW, &out);
        if (rc != cases[i].rc) {
            fail_msg("case %zu (%s / %s): got %s want %s", i, cases[i].header, cases[i].payload, tess_err_name(rc),
                     tess_err_name(cases[i].rc));
        }
        if (rc == TESS_OK) {
            assert_true(strlen(out.user_id) > 0);
        }
    }
}

/* The numbers of a claims document: the in-place reader (integers without strtod) as cJSON reads them. */
static void test_claim_numbers(void **state)
{
    static const char *const numbers[] = {
        "0",
        "-0",
        "7",
        "-7",
        "1700000060",
        "999999999999999",
        "-999999999999999",
        "1000000000000000",
        "9007199254740991",
        "9007199254740993",
        "1700000060.5",
        "1.7e9",
        "17e8",
        "1E9",
        "0.0",
        "-0.5",
        "123456789012345678901234567890",
        "00",
        "01",
        "1.",
        "-",
        "1e",
        "+1",
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(numbers); i++) {
        for (int as_user = 0; as_user < 2; as_user++) {
            char doc[256];
            tess_jwt_claims_t a, b;
            if (as_user) {
                snprintf(doc, sizeof(doc), "{\"userId\":%s,\"exp\":1700000060}", numbers[i]);
            } else {
                snprintf(doc, sizeof(doc), "{\"userId\":\"u\",\"iat\":%s,\"exp\":%s}", numbers[i], numbers[i]);
            }
            memset(&a, 0, sizeof(a));
            memset(&b, 0, sizeof(b));
            int ra = tess__claims_read("userId", "role", 30, doc, strlen(doc), NOW - 3600 * 24 * 365 * 60, &a);
            int rb = tess__claims_read_cjson("userId", "role", 30, doc, strlen(doc), NOW - 3600 * 24 * 365 * 60, &b);
            if (ra != rb || memcmp(&a, &b, sizeof(a)) != 0) {
                fail_msg("%s: flat %s (user %s, exp %lld) against cJSON %s (user %s, exp %lld)", doc, tess_err_name(ra),
                         a.user_id, (long long)a.exp, tess_err_name(rb), b.user_id, (long long)b.exp);
            }
        }
    }
}

/* One tess_secrets_t shared by threads, each with its own tess_jwt_t: the documented sharing model. */
typedef struct thread_arg {
    const tess_secrets_t *secrets;
    int failures;
} thread_arg_t;

static void *thread_main(void *p)
{
    thread_arg_t *a = p;
    tess_jwt_t *j = NULL;
    char tok[1024], cookie[TESS_SIGNED_COOKIE_MAX], sid[TESS_SID_MAX + 1], id[TESS_ID_LEN + 1];
    size_t n, cn, sn;

    if (tess_jwt_new(&j, a->secrets, NULL) != TESS_OK) {
        a->failures++;
        return NULL;
    }
    for (int i = 0; i < 2000; i++) {
        tess_jwt_claims_t c = claims_of("u", "", "", NOW, NOW + 60, 0), out;
        snprintf(c.user_id, sizeof(c.user_id), "user-%d", i);
        a->failures += tess_jwt_sign(j, &c, tok, sizeof(tok), &n) != TESS_OK;
        a->failures += tess_jwt_verify(j, tess_strn(tok, n), NOW, &out) != TESS_OK;
        a->failures += strcmp(out.user_id, c.user_id) != 0;
        a->failures += tess_id_new(id) != TESS_OK;
        a->failures += tess_cookie_sign(a->secrets, tess_str(id), cookie, sizeof(cookie), &cn) != TESS_OK;
        a->failures += tess_cookie_unsign(a->secrets, tess_strn(cookie, cn), sid, sizeof(sid), &sn) != TESS_OK;
        a->failures += strcmp(sid, id) != 0;
    }
    tess_jwt_free(j);
    return NULL;
}

static void test_threads_share_secrets(void **state)
{
    fixture_t *f = *state;
    pthread_t th[4];
    thread_arg_t args[4];

    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg_t){f->secrets, 0};
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
}

/* Writes tokens for tests/interop/verify_ours.js when TESS_INTEROP_OUT names a file. */
static void test_sign_export(void **state)
{
    fixture_t *f = *state;
    const char *path = getenv("TESS_INTEROP_OUT");
    char tok[2048];
    size_t n;

    if (path == NULL) {
        skip();
    }
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    int64_t now = tess_now_ms() / 1000;
    tess_jwt_claims_t cs[] = {
        claims_of("u-123", "user", "jti-1", now, now + 30 * 86400, 0),
        claims_of("42", "", "", now, now + 60, now - 1),
        claims_of("\xc3\xbc\xe2\x82\xac \"q\" \\", "admin", "", now, now + 60, 0),
    };
    for (size_t i = 0; i < ARRAY_LEN(cs); i++) {
        assert_int_equal(tess_jwt_sign(f->jwt, &cs[i], tok, sizeof(tok), &n), TESS_OK);
        char hex[2 * TESS_USER_ID_MAX + 1];
        tess_hex_encode((const uint8_t *)cs[i].user_id, strlen(cs[i].user_id), hex);
        fprintf(fp, "%s %s %s %s %lld %lld %lld\n", tok, hex, cs[i].role[0] ? cs[i].role : "-",
                cs[i].jti[0] ? cs[i].jti : "-", (long long)cs[i].iat, (long long)cs[i].exp, (long long)cs[i].nbf);
    }
    fclose(fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vectors, setup, teardown),
        cmocka_unit_test(test_sign_matches_node),
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jti_roundtrip, setup, teardown),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test_setup_teardown(test_leeway_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hand_written, setup, teardown),
        cmocka_unit_test(test_claim_numbers),
        cmocka_unit_test_setup_teardown(test_threads_share_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_export, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
