/*
 * libFuzzer driver for tess_jwe_decrypt (NextAuth v4 A256GCM and Auth.js v5 A256CBC-HS512) and
 * tess_cookie_find_chunked.
 * First byte, bit 0 clear: the rest is a token, decrypted as is by both formats (size bound, splitting, header,
 * lengths, tag paths), and also read as a Cookie header whose chunked session cookie is joined.
 * Bit 0 set: the rest is "header JSON\npayload" (or just the payload, under the format's own header), which the
 * driver seals with the format's key (bit 1: 0 NextAuth, 1 Auth.js), so that the fuzzer reaches the header and
 * claims parsers behind the tag. What decrypts is encrypted again and must decrypt to the same claims.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "check.h"
#include "tessera/cookie.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/jwe.h"

#define SECRET "tessera-nextauth-secret-0123456789abcdef"
#define NOW INT64_C(1796000000)
/* HKDF of SECRET as next-auth / @auth/core derive it (tests/support/vectors_jwe.h) */
#define NEXTAUTH_KEY "fe25452048130082df215377fd814a8f4c26cd632e0354333e23ec337a10e143"
#define AUTHJS_KEY                                                                                                     \
    "3f7e359f2f925c32e9b4c9e85b6770c68e2a7a1b372b6455c1da8f233d9d645d4d9f01540aa533a7f21901b36117ca3bdffc5a79f21445cb" \
    "36f82a3acdd9b1a3"

static tess_secrets_t *secrets;
static tess_jwe_t *jwe[2];
static uint8_t keys[2][64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void unhex(const char *h, uint8_t *out)
{
    for (size_t i = 0; h[2 * i] != '\0'; i++) {
        unsigned v = 0;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static void decrypt(tess_jwe_t *j, tess_str_t token)
{
    tess_jwt_claims_t c;
    int rc = tess_jwe_decrypt(j, token, NOW, &c);
    check(rc == TESS_OK || rc == TESS_EBADFMT || rc == TESS_EBADSIG || rc == TESS_EEXPIRED || rc == TESS_ETOOBIG);
    if (rc != TESS_OK) {
        static const tess_jwt_claims_t zero;
        check(memcmp(&c, &zero, sizeof(c)) == 0);
        return;
    }
    check(c.user_id[0] != '\0' && memchr(c.user_id, '\0', sizeof(c.user_id)) != NULL);
    check(memchr(c.role, '\0', sizeof(c.role)) != NULL && memchr(c.jti, '\0', sizeof(c.jti)) != NULL);
    check(c.exp > NOW - 16);
    char tok[8192];
    size_t n;
    if (tess_jwe_encrypt(j, &c, tok, sizeof(tok), &n) == TESS_OK) {
        tess_jwt_claims_t c2;
        int rc2 = tess_jwe_decrypt(j, tess_strn(tok, n), NOW, &c2);
        check(rc2 == TESS_OK || rc2 == TESS_EEXPIRED);
        if (rc2 == TESS_OK) {
            check(memcmp(&c, &c2, sizeof(c)) == 0);
        }
    }
}

/* A compact JWE of p under header h, sealed with format f's key. Returns its length in out, 0 on failure. */
static size_t seal(int f, const char *h, size_t hn, const uint8_t *p, size_t pn, char *out)
{
    uint8_t iv[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, tag[64];
    uint8_t *c = malloc(pn + 32), *m = NULL;
    size_t ivn = f == 0 ? 12 : 16, tagn = f == 0 ? 16 : 32, o, an, cn = 0;
    int n1 = 0, n2 = 0, ok;
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();

    o = tess_base64url_encode((const uint8_t *)h, hn, out);
    an = o;
    if (f == 0) {
        ok = EVP_EncryptInit_ex(x, EVP_aes_256_gcm(), NULL, keys[0], iv) == 1 &&
             EVP_EncryptUpdate(x, NULL, &n1, (const uint8_t *)out, (int)an) == 1 &&
             EVP_EncryptUpdate(x, c, &n1, p, (int)pn) == 1 && EVP_EncryptFinal_ex(x, c + n1, &n2) == 1 &&
             EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
        cn = (size_t)(n1 + n2);
    } else {
        ok = EVP_EncryptInit_ex(x, EVP_aes_256_cbc(), NULL, keys[1] + 32, iv) == 1 &&
             EVP_EncryptUpdate(x, c, &n1, p, (int)pn) == 1 && EVP_EncryptFinal_ex(x, c + n1, &n2) == 1;
        cn = (size_t)(n1 + n2);
        m = malloc(an + 16 + cn + 8);
        if (ok && m != NULL) {
            uint64_t bits = (uint64_t)an * 8;
            size_t mdn = 0;
            memcpy(m, out, an);
            memcpy(m + an, iv, 16);
            memcpy(m + an + 16, c, cn);
            for (int i = 0; i < 8; i++) {
                m[an + 16 + cn + i] = (uint8_t)(bits >> (56 - 8 * i));
            }
            ok = EVP_Q_mac(NULL, "HMAC", NULL, "SHA512", NULL, keys[1], 32, m, an + 16 + cn + 8, tag, sizeof(tag),
                           &mdn) != NULL;
        }
    }
    EVP_CIPHER_CTX_free(x);
    if (ok) {
        out[o++] = '.';
        out[o++] = '.';
        o += tess_base64url_encode(iv, ivn, out + o);
        out[o++] = '.';
        o += tess_base64url_encode(c, cn, out + o);
        out[o++] = '.';
        o += tess_base64url_encode(tag, tagn, out + o);
    }
    free(c);
    free(m);
    return ok ? o : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (jwe[0] == NULL) {
        tess_jwe_opts_t na = {.format = TESS_FORMAT_NEXTAUTH, .leeway_s = -1};
        tess_jwe_opts_t aj = {.format = TESS_FORMAT_AUTHJS, .leeway_s = -1};
        if (tess_secrets_parse(&secrets, tess_str(SECRET ",old")) != TESS_OK ||
            tess_jwe_new(&jwe[0], secrets, &na) != TESS_OK || tess_jwe_new(&jwe[1], secrets, &aj) != TESS_OK) {
            abort();
        }
        unhex(NEXTAUTH_KEY, keys[0]);
        unhex(AUTHJS_KEY, keys[1]);
    }
    if (size == 0 || size > 2 * TESS_JWE_TOKEN_MAX) {
        return 0;
    }
    size_t n;
    char *in = fuzz_rest(data, size, 0, &n);
    if (in == NULL) {
        return 0;
    }

    if ((data[0] & 1) == 0) {
        decrypt(jwe[0], tess_strn(in, n));
        decrypt(jwe[1], tess_strn(in, n));
        char buf[TESS_JWE_TOKEN_MAX];
        tess_str_t v;
        size_t chunks;
        int rc = tess_cookie_find_chunked(tess_strn(in, n), TESS_STR_LIT("next-auth.session-token"), buf, sizeof(buf),
                                          &v, &chunks);
        check(rc == TESS_OK || rc == TESS_ENOTFOUND || rc == TESS_ETOOBIG);
        if (rc == TESS_OK) {
            check(v.len <= (chunks > 0 ? sizeof(buf) : n) && chunks <= TESS_COOKIE_CHUNKS_MAX);
            decrypt(jwe[0], v);
        }
        free(in);
        return 0;
    }
    int f = (data[0] >> 1) & 1;
    const char *nl = memchr(in, '\n', n);
    const char *hdr = nl != NULL ? in
                      : f == 0   ? "{\"alg\":\"dir\",\"enc\":\"A256GCM\"}"
                                 : "{\"alg\":\"dir\",\"enc\":\"A256CBC-HS512\"}";
    size_t hn = nl != NULL ? (size_t)(nl - in) : strlen(hdr);
    const char *pl = nl != NULL ? nl + 1 : in;
    size_t pn = nl != NULL ? n - hn - 1 : n;
    char *tok = malloc(TESS_BASE64_LEN(hn) + TESS_BASE64_LEN(pn + 32) + 128);
    if (tok != NULL) {
        size_t o = seal(f, hdr, hn, (const uint8_t *)pl, pn, tok);
        char *exact = o > 0 ? malloc(o) : NULL;
        if (exact != NULL) {
            memcpy(exact, tok, o);
            decrypt(jwe[f], tess_strn(exact, o));
            free(exact);
        }
        free(tok);
    }
    free(in);
    return 0;
}
