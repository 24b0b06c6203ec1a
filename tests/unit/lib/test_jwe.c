/*
 * Unit tests for src/lib/crypto/jwe.c. Tokens and derived keys come from next-auth and @auth/core
 * (tests/interop/gen_jwe_vectors.mjs); the rejections are built here by sealing chosen headers and payloads
 * under the packages' keys with OpenSSL directly (seal_raw), so each one differs from a good token in one thing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tessera/cookie.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/jwe.h"
#include "vectors_jwe.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NOW INT64_C(1796000000)

static tess_jwe_t *make(tess_session_format_t f, const char *secrets, const char *cookie, tess_secrets_t **sp)
{
    tess_jwe_opts_t o = {.format = f, .cookie_name = cookie, .leeway_s = -1};
    tess_jwe_t *j = NULL;
    assert_int_equal(tess_secrets_parse(sp, tess_str(secrets)), TESS_OK);
    assert_int_equal(tess_jwe_new(&j, *sp, &o), TESS_OK);
    return j;
}

static size_t unhex(const char *h, uint8_t *out)
{
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

/*
 * A compact JWE of `payload` under `header`, sealed with the key in hex (32 bytes: A256GCM, 64: A256CBC-HS512),
 * independently of jwe.c. Returns a malloc'd token.
 */
static char *seal_raw(const char *key_hex, const char *header, const char *payload)
{
    uint8_t key[64], iv[16], tag[32], c[8192], md[64];
    size_t kn = unhex(key_hex, key), pn = strlen(payload), hn = strlen(header);
    int n1 = 0, n2 = 0;
    size_t cn, ivn = kn == 32 ? 12 : 16, tagn = kn == 32 ? 16 : 32;
    char *h64 = malloc(TESS_BASE64_LEN(hn) + 1);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();

    tess_base64url_encode((const uint8_t *)header, hn, h64);
    size_t an = strlen(h64);
    assert_int_equal(RAND_bytes(iv, (int)ivn), 1);
    if (kn == 32) {
        assert_int_equal(EVP_EncryptInit_ex(x, EVP_aes_256_gcm(), NULL, key, iv), 1);
        assert_int_equal(EVP_EncryptUpdate(x, NULL, &n1, (const uint8_t *)h64, (int)an), 1);
        assert_int_equal(EVP_EncryptUpdate(x, c, &n1, (const uint8_t *)payload, (int)pn), 1);
        assert_int_equal(EVP_EncryptFinal_ex(x, c + n1, &n2), 1);
        assert_int_equal(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, 16, tag), 1);
        cn = (size_t)(n1 + n2);
    } else {
        assert_int_equal(EVP_EncryptInit_ex(x, EVP_aes_256_cbc(), NULL, key + 32, iv), 1);
        assert_int_equal(EVP_EncryptUpdate(x, c, &n1, (const uint8_t *)payload, (int)pn), 1);
        assert_int_equal(EVP_EncryptFinal_ex(x, c + n1, &n2), 1);
        cn = (size_t)(n1 + n2);
        uint8_t *m = malloc(an + 16 + cn + 8);
        memcpy(m, h64, an);
        memcpy(m + an, iv, 16);
        memcpy(m + an + 16, c, cn);
        uint64_t bits = (uint64_t)an * 8;
        for (int i = 0; i < 8; i++)
            m[an + 16 + cn + i] = (uint8_t)(bits >> (56 - 8 * i));
        size_t mdn = 0;
        assert_int_equal(
            EVP_Q_mac(NULL, "HMAC", NULL, "SHA512", NULL, key, 32, m, an + 16 + cn + 8, md, sizeof(md), &mdn) != NULL,
            1);
        memcpy(tag, md, 32);
        free(m);
    }
    EVP_CIPHER_CTX_free(x);
    char *tok = malloc(an + 3 + TESS_BASE64_LEN(ivn) + TESS_BASE64_LEN(cn) + TESS_BASE64_LEN(tagn) + 8);
    size_t o = 0;
    memcpy(tok, h64, an);
    o = an;
    tok[o++] = '.';
    tok[o++] = '.';
    o += tess_base64url_encode(iv, ivn, tok + o);
    tok[o++] = '.';
    o += tess_base64url_encode(c, cn, tok + o);
    tok[o++] = '.';
    o += tess_base64url_encode(tag, tagn, tok + o);
    tok[o] = '\0';
    free(h64);
    return tok;
}

#define NA_HDR "{\"alg\":\"dir\",\"enc\":\"A256GCM\"}"
#define AJ_HDR "{\"alg\":\"dir\",\"enc\":\"A256CBC-HS512\",\"kid\":\"" TV_JWE_AUTHJS_KID "\"}"
#define CLAIMS "{\"sub\":\"u-1\",\"role\":\"agent\",\"iat\":1796000000,\"exp\":1796003600,\"jti\":\"j-1\"}"

static int decrypt_at(tess_jwe_t *j, const char *tok, int64_t now, tess_jwt_claims_t *c)
{
    return tess_jwe_decrypt(j, tess_str(tok), now, c);
}

/* Every token the packages made: tessera answers as the vector says, and what both accept reads the same. */
static void test_node_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(tv_jwe); i++) {
        const tv_jwe_t *v = &tv_jwe[i];
        tess_secrets_t *s = NULL;
        tess_jwe_t *j = make(v->format == 0 ? TESS_FORMAT_NEXTAUTH : TESS_FORMAT_AUTHJS, v->secrets, v->cookie, &s);
        tess_jwt_claims_t c;
        int rc = decrypt_at(j, v->token, v->iat, &c);
        if (rc != v->tess)
            fail_msg("vector %zu (%s): %s, expected %s", i, v->what, tess_err_name(rc), tess_err_name(v->tess));
        if (rc == TESS_OK) {
            assert_true(v->node_ok);
            assert_string_equal(c.user_id, v->node_sub);
            assert_string_equal(c.role, v->node_role != NULL ? v->node_role : "");
            assert_string_equal(c.jti, v->node_jti != NULL ? v->node_jti : "");
            assert_int_equal(c.iat, v->iat);
            assert_int_equal(c.exp, v->exp);
            /* the 15 s tolerance, both sides of it */
            assert_int_equal(decrypt_at(j, v->token, v->exp + 14, &c), TESS_OK);
            assert_int_equal(decrypt_at(j, v->token, v->exp + 15, &c), TESS_EEXPIRED);
        }
        tess_jwe_free(j);
        tess_secrets_free(s);
    }
}

/* Our HKDF and thumbprint are the packages': a token sealed under their key (hex) decrypts. */
static void test_keys_match_packages(void **state)
{
    (void)state;
    tess_secrets_t *s1 = NULL, *s2 = NULL, *s3 = NULL;
    tess_jwe_t *na = make(TESS_FORMAT_NEXTAUTH, TV_JWE_SECRET, NULL, &s1);
    tess_jwe_t *aj = make(TESS_FORMAT_AUTHJS, TV_JWE_SECRET, NULL, &s2);
    tess_jwe_t *ajs = make(TESS_FORMAT_AUTHJS, TV_JWE_SECRET, "__Secure-authjs.session-token", &s3);
    tess_jwt_claims_t c;
    char *t;

    t = seal_raw(TV_JWE_NEXTAUTH_KEY, NA_HDR, CLAIMS);
    assert_int_equal(decrypt_at(na, t, NOW, &c), TESS_OK);
    assert_string_equal(c.user_id, "u-1");
    assert_string_equal(c.role, "agent");
    assert_string_equal(c.jti, "j-1");
    free(t);
    t = seal_raw(TV_JWE_AUTHJS_KEY, AJ_HDR, CLAIMS);
    assert_int_equal(decrypt_at(aj, t, NOW, &c), TESS_OK);
    assert_int_equal(decrypt_at(ajs, t, NOW, &c), TESS_EBADSIG); /* another salt, another key and kid */
    free(t);
    t = seal_raw(TV_JWE_AUTHJS_SECURE_KEY, "{\"alg\":\"dir\",\"enc\":\"A256CBC-HS512\"}", CLAIMS);
    assert_int_equal(decrypt_at(ajs, t, NOW, &c), TESS_OK);
    assert_int_equal(decrypt_at(aj, t, NOW, &c), TESS_EBADSIG);
    free(t);
    assert_string_equal(tess_jwe_cookie_name(aj).ptr, "authjs.session-token");
    assert_string_equal(tess_jwe_cookie_name(na).ptr, "next-auth.session-token");
    tess_jwe_free(na);
    tess_jwe_free(aj);
    tess_jwe_free(ajs);
    tess_secrets_free(s1);
    tess_secrets_free(s2);
    tess_secrets_free(s3);
}

static tess_jwt_claims_t claims(const char *uid, const char *role, const char *jti, int64_t iat, int64_t exp)
{
    tess_jwt_claims_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.user_id, sizeof(c.user_id), "%s", uid);
    snprintf(c.role, sizeof(c.role), "%s", role);
    snprintf(c.jti, sizeof(c.jti), "%s", jti);
    c.iat = iat;
    c.exp = exp;
    return c;
}

/* encrypt -> decrypt in both formats; the header is the package's; rotation: the first secret encrypts. */
static void test_round_trip_and_rotation(void **state)
{
    (void)state;
    const tess_session_format_t fs[] = {TESS_FORMAT_NEXTAUTH, TESS_FORMAT_AUTHJS};
    for (size_t k = 0; k < ARRAY_LEN(fs); k++) {
        tess_secrets_t *s_new = NULL, *s_old = NULL, *s_list = NULL;
        tess_jwe_t *j_new = make(fs[k], "new-secret,old-secret", NULL, &s_list);
        tess_jwe_t *j_only_new = make(fs[k], "new-secret", NULL, &s_new);
        tess_jwe_t *j_only_old = make(fs[k], "old-secret", NULL, &s_old);
        tess_jwt_claims_t in = claims("user \"42\" \xc3\xbc", "admin", "jti-x", NOW, NOW + 60), out;
        char tok[4096], tok2[4096];
        size_t n = 0, n2 = 0;

        assert_int_equal(tess_jwe_encrypt(j_new, &in, tok, sizeof(tok), &n), TESS_OK);
        assert_int_equal(strlen(tok), n);
        assert_int_equal(tess_jwe_encrypt(j_new, &in, tok2, sizeof(tok2), &n2), TESS_OK);
        assert_true(n == n2 && strcmp(tok, tok2) != 0); /* a fresh IV each time */
        assert_int_equal(decrypt_at(j_new, tok, NOW, &out), TESS_OK);
        assert_memory_equal(&in, &out, sizeof(in));
        assert_int_equal(decrypt_at(j_only_new, tok, NOW, &out), TESS_OK);
        assert_int_equal(decrypt_at(j_only_old, tok, NOW, &out), TESS_EBADSIG);
        /* what the old secret encrypted, the list decrypts */
        assert_int_equal(tess_jwe_encrypt(j_only_old, &in, tok, sizeof(tok), &n), TESS_OK);
        assert_int_equal(decrypt_at(j_new, tok, NOW, &out), TESS_OK);
        assert_string_equal(out.user_id, in.user_id);
        /* the header: NextAuth's exact one; Auth.js's with the kid */
        const char *want = fs[k] == TESS_FORMAT_NEXTAUTH ? "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0.."
                                                         : "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2Q0JDLUhTNTEyIiwia2lkIjoi";
        assert_memory_equal(tok, want, strlen(want));
        /* bounds and bad claims */
        assert_int_equal(tess_jwe_encrypt(j_new, &in, tok, 64, &n), TESS_ENOSPACE);
        assert_string_equal(tok, "");
        tess_jwt_claims_t bad = claims("", "", "", NOW, NOW + 60);
        assert_int_equal(tess_jwe_encrypt(j_new, &bad, tok, sizeof(tok), &n), TESS_EINVAL);
        bad = claims("u", "", "", NOW, 0);
        assert_int_equal(tess_jwe_encrypt(j_new, &bad, tok, sizeof(tok), &n), TESS_EINVAL);
        tess_jwe_free(j_new);
        tess_jwe_free(j_only_new);
        tess_jwe_free(j_only_old);
        tess_secrets_free(s_new);
        tess_secrets_free(s_old);
        tess_secrets_free(s_list);
    }
}

/* Flips one base64url character of part `p` (0..4) at offset `at` to another valid one. */
static char *tamper(const char *tok, int p, size_t at)
{
    char *t = strdup(tok);
    char *q = t;
    for (int i = 0; i < p; i++)
        q = strchr(q, '.') + 1;
    q[at] = q[at] == 'A' ? 'B' : 'A';
    return t;
}

static void expect(tess_jwe_t *j, char *tok, int rc)
{
    tess_jwt_claims_t c;
    static const tess_jwt_claims_t zero;
    int got = decrypt_at(j, tok, NOW, &c);
    if (got != rc)
        fail_msg("%s: %s, expected %s", tok, tess_err_name(got), tess_err_name(rc));
    if (rc != TESS_OK)
        assert_memory_equal(&c, &zero, sizeof(c));
    free(tok);
}

static void test_rejections(void **state)
{
    (void)state;
    tess_secrets_t *s1 = NULL, *s2 = NULL;
    tess_jwe_t *na = make(TESS_FORMAT_NEXTAUTH, TV_JWE_SECRET, NULL, &s1);
    tess_jwe_t *aj = make(TESS_FORMAT_AUTHJS, TV_JWE_SECRET, NULL, &s2);
    struct {
        tess_jwe_t *j;
        const char *key;
        const char *hdr;
    } fs[] = {{na, TV_JWE_NEXTAUTH_KEY, NA_HDR}, {aj, TV_JWE_AUTHJS_KEY, AJ_HDR}};

    for (size_t k = 0; k < ARRAY_LEN(fs); k++) {
        tess_jwe_t *j = fs[k].j;
        const char *key = fs[k].key;
        char *good = seal_raw(key, fs[k].hdr, CLAIMS);
        expect(j, strdup(good), TESS_OK);
        /* tampered header, iv, ciphertext, tag: the tag no longer verifies (the header is the AAD) */
        expect(j, tamper(good, 0, 5), TESS_EBADFMT); /* the header no longer parses, or: */
        expect(j, tamper(good, 2, 3), TESS_EBADSIG);
        expect(j, tamper(good, 3, 10), TESS_EBADSIG);
        expect(j, tamper(good, 4, 2), TESS_EBADSIG);
        {
            /* the same header with blanks: valid JSON, but not the bytes that were authenticated */
            char h[512];
            snprintf(h, sizeof(h), "%s", fs[k].hdr);
            char *t = seal_raw(key, h, CLAIMS);
            char alt[512];
            snprintf(alt, sizeof(alt), "%.*s ", (int)strlen(h), h);
            char h64[1024];
            tess_base64url_encode((const uint8_t *)alt, strlen(alt), h64);
            char *rest = strchr(t, '.');
            char *swapped = malloc(strlen(h64) + strlen(rest) + 1);
            sprintf(swapped, "%s%s", h64, rest);
            expect(j, swapped, TESS_EBADSIG);
            free(t);
        }
        /* wrong secret: another key */
        expect(j,
               seal_raw(k == 0 ? "00000000000000000000000000000000000000000000000000000000000000ff"
                               : TV_JWE_AUTHJS_SECURE_KEY,
                        k == 0 ? NA_HDR : "{\"alg\":\"dir\",\"enc\":\"A256CBC-HS512\"}", CLAIMS),
               TESS_EBADSIG);
        /* alg / enc pinned */
        expect(j,
               seal_raw(key,
                        k == 0 ? "{\"alg\":\"A256KW\",\"enc\":\"A256GCM\"}"
                               : "{\"alg\":\"none\",\"enc\":\"A256CBC-HS512\"}",
                        CLAIMS),
               TESS_EBADSIG);
        expect(j, seal_raw(key, "{\"enc\":\"A256GCM\"}", CLAIMS), TESS_EBADSIG);
        expect(j,
               seal_raw(k == 0 ? TV_JWE_AUTHJS_KEY : TV_JWE_NEXTAUTH_KEY,
                        k == 0 ? "{\"alg\":\"dir\",\"enc\":\"A256CBC-HS512\"}" : NA_HDR, CLAIMS),
               TESS_EBADSIG);
        /* members that change the meaning, repeated ones, unknown ones */
        const char *enc = k == 0 ? "A256GCM" : "A256CBC-HS512";
        const char *extra[] = {"\"zip\":\"DEF\"", "\"crit\":[\"exp\"],\"exp\":1",
                               "\"cty\":\"JWT\"", "\"epk\":{}",
                               "\"alg\":\"dir\"", "\"typ\":\"JOSE\"",
                               "\"typ\":1",       "\"kid\":7"};
        for (size_t e = 0; e < ARRAY_LEN(extra); e++) {
            char h[256];
            snprintf(h, sizeof(h), "{\"alg\":\"dir\",\"enc\":\"%s\",%s}", enc, extra[e]);
            expect(j, seal_raw(key, h, CLAIMS), TESS_EBADFMT);
        }
        {
            char h[256];
            snprintf(h, sizeof(h), "{\"alg\":\"dir\",\"enc\":\"%s\",\"typ\":\"JWT\"}", enc);
            expect(j, seal_raw(key, h, CLAIMS), TESS_OK);
            /* a kid: Auth.js's must name a secret's key; NextAuth ignores one */
            snprintf(h, sizeof(h), "{\"alg\":\"dir\",\"enc\":\"%s\",\"kid\":\"someone-else\"}", enc);
            expect(j, seal_raw(key, h, CLAIMS), k == 0 ? TESS_OK : TESS_EBADSIG);
        }
        /* the claims: expired (past the 15 s), not yet valid, bad JSON, not an object, types, sizes */
        expect(j, seal_raw(key, fs[k].hdr, "{\"sub\":\"u\",\"iat\":1795990000,\"exp\":1795999985}"), TESS_EEXPIRED);
        expect(j, seal_raw(key, fs[k].hdr, "{\"sub\":\"u\",\"iat\":1795990000,\"exp\":1795999986}"), TESS_OK);
        expect(j, seal_raw(key, fs[k].hdr, "{\"sub\":\"u\",\"nbf\":1796000016,\"exp\":1796003600}"), TESS_EEXPIRED);
        expect(j, seal_raw(key, fs[k].hdr, "{\"sub\":\"u\",\"iat\":1796000016,\"exp\":1796003600}"), TESS_EEXPIRED);
        expect(j, seal_raw(key, fs[k].hdr, "{\"sub\":\"u\"}"), TESS_EBADFMT);
        expect(j, seal_raw(key, fs[k].hdr, "{\"exp\":1796003600}"), TESS_EBADFMT);
        expect(j, seal_raw(key, fs[k].hdr, "{\"sub\":\"u\",\"exp\":\"1796003600\"}"), TESS_EBADFMT);
        expect(j, seal_raw(key, fs[k].hdr, "{\"sub\":\"u\",\"exp\":1796003600"), TESS_EBADFMT);
        expect(j, seal_raw(key, fs[k].hdr, "{\"sub\":\"u\",\"exp\":1796003600}x"), TESS_EBADFMT);
        expect(j, seal_raw(key, fs[k].hdr, "[1796003600]"), TESS_EBADFMT);
        expect(j, seal_raw(key, fs[k].hdr, "{\"sub\":\"u\",\"sub\":\"v\",\"exp\":1796003600}"), TESS_EBADFMT);
        expect(j,
               seal_raw(key, fs[k].hdr,
                        "{\"sub\":\"u-1234567890123456789012345678901234567890123456789012345678901234\","
                        "\"exp\":1796003600}"),
               TESS_ETOOBIG);
        expect(j, seal_raw(key, fs[k].hdr, "{\"sub\":42,\"exp\":1796003600,\"name\":\"A\",\"picture\":null}"), TESS_OK);
        /* shape: parts, encrypted key, base64url, lengths */
        {
            char *t = strdup(good);
            char *d = strchr(t, '.');
            char *with_key = malloc(strlen(t) + 8);
            sprintf(with_key, "%.*s.AAAA%s", (int)(d - t), t, d + 1);
            expect(j, with_key, TESS_EBADFMT);
            char *four = strdup(good);
            *strrchr(four, '.') = '\0';
            expect(j, four, TESS_EBADFMT);
            char *six = malloc(strlen(good) + 3);
            sprintf(six, "%s.A", good);
            expect(j, six, TESS_EBADFMT);
            char *pad = malloc(strlen(good) + 3);
            sprintf(pad, "%s=", good);
            expect(j, pad, TESS_EBADSIG); /* '=' in the tag: not base64url */
            char *iv = strdup(good);
            char *p2 = strchr(strchr(iv, '.') + 1, '.') + 1;
            p2[0] = '*';
            expect(j, iv, TESS_EBADFMT);
            char *ct = strdup(good);
            char *p3 = strchr(strchr(strchr(ct, '.') + 1, '.') + 1, '.') + 1;
            p3[1] = '!';
            expect(j, ct, TESS_EBADFMT);
            expect(j, strdup(""), TESS_EBADFMT);
            expect(j, strdup("...."), TESS_EBADFMT);
            free(t);
        }
        /* too big: over the bound, before anything is decoded */
        {
            size_t n = tess_jwe_max_token_len(j) + 1;
            char *big = malloc(n + 1);
            memset(big, 'A', n);
            big[n] = '\0';
            expect(j, big, TESS_ETOOBIG);
        }
        free(good);
    }
    tess_jwe_free(na);
    tess_jwe_free(aj);
    tess_secrets_free(s1);
    tess_secrets_free(s2);
}

static void test_new_and_names(void **state)
{
    (void)state;
    tess_secrets_t *s = NULL;
    tess_jwe_t *j = NULL;
    tess_session_format_t f;
    assert_int_equal(tess_secrets_parse(&s, tess_str("x")), TESS_OK);
    tess_jwe_opts_t o = {.format = TESS_FORMAT_EXPRESS, .leeway_s = -1};
    assert_int_equal(tess_jwe_new(&j, s, &o), TESS_EINVAL);
    o.format = TESS_FORMAT_AUTHJS;
    o.cookie_name = "bad name";
    assert_int_equal(tess_jwe_new(&j, s, &o), TESS_EINVAL);
    o.cookie_name = NULL;
    o.user_claim = "exp";
    assert_int_equal(tess_jwe_new(&j, s, &o), TESS_EINVAL);
    o.user_claim = NULL;
    assert_int_equal(tess_jwe_new(&j, NULL, &o), TESS_EINVAL);
    assert_null(j);
    assert_int_equal(tess_jwe_new(&j, s, &o), TESS_OK);
    assert_int_equal(tess_jwe_leeway_s(j), TESS_JWE_LEEWAY_DEFAULT);
    assert_int_equal(tess_jwe_format(j), TESS_FORMAT_AUTHJS);
    tess_jwe_free(j);
    tess_secrets_free(s);

    assert_int_equal(tess_session_format_parse(tess_str("nextauth"), &f), TESS_OK);
    assert_int_equal(f, TESS_FORMAT_NEXTAUTH);
    assert_int_equal(tess_session_format_parse(tess_str("authjs"), &f), TESS_OK);
    assert_int_equal(f, TESS_FORMAT_AUTHJS);
    assert_int_equal(tess_session_format_parse(tess_str("express"), &f), TESS_OK);
    assert_int_equal(f, TESS_FORMAT_EXPRESS);
    assert_int_equal(tess_session_format_parse(tess_str("NextAuth"), &f), TESS_EINVAL);
    assert_int_equal(tess_session_format_parse(tess_str(""), &f), TESS_EINVAL);
    assert_string_equal(tess_session_format_name(TESS_FORMAT_AUTHJS), "authjs");
    assert_string_equal(tess_session_format_name((tess_session_format_t)7), "unknown");
    assert_string_equal(tess_jwe_cookie_default(TESS_FORMAT_NEXTAUTH, 1), "__Secure-next-auth.session-token");
    assert_string_equal(tess_jwe_cookie_default(TESS_FORMAT_AUTHJS, 0), "authjs.session-token");
    assert_null(tess_jwe_cookie_default(TESS_FORMAT_EXPRESS, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_vectors),
        cmocka_unit_test(test_keys_match_packages),
        cmocka_unit_test(test_round_trip_and_rotation),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_new_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
