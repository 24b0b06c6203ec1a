/*
 * libFuzzer driver for tess_jwt_verify.
 * Even first byte: the rest is a token, verified as is (size bound, splitting, header, signature paths).
 * Odd first byte: the rest is "header JSON\npayload JSON" (or just the payload, with jsonwebtoken's header),
 * which the driver base64url-encodes and signs with the verifier's key, so that the fuzzer reaches the
 * header and claims parsers behind the signature check; the payload is also read by both claims readers
 * (the flat one and cJSON's), which must agree on every input. Build and run: see fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "check.h"
#include "crypto/claims.h"
#include "tessera/cookie.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/jwt.h"

#define SECRET "fuzz-secret"
#define NOW INT64_C(1700000000)

static tess_secrets_t *secrets;
static tess_jwt_t *jwt;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The flat claims reader and cJSON's agree: same result, same claims. */
static void both_readers(const char *payload, size_t n)
{
    static const char *const users[] = {"userId", "sub"};
    char *exact = malloc(n > 0 ? n : 1); /* exact length, no NUL after it: ASan sees any over-read */
    if (exact == NULL) {
        return;
    }
    memcpy(exact, payload, n);
    for (size_t u = 0; u < 2; u++) {
        tess_jwt_claims_t a, b;
        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        int ra = tess__claims_read(users[u], "role", 30, exact, n, NOW, &a);
        int rb = tess__claims_read_cjson(users[u], "role", 30, exact, n, NOW, &b);
        check(ra == rb);
        check(memcmp(&a, &b, sizeof(a)) == 0);
    }
    free(exact);
}

static void verify(tess_str_t token)
{
    tess_jwt_claims_t c;
    int rc = tess_jwt_verify(jwt, token, NOW, &c);
    check(rc == TESS_OK || rc == TESS_EBADFMT || rc == TESS_EBADSIG || rc == TESS_EEXPIRED || rc == TESS_ETOOBIG);
    if (rc != TESS_OK) {
        static const tess_jwt_claims_t zero;
        check(memcmp(&c, &zero, sizeof(c)) == 0);
        return;
    }
    check(c.user_id[0] != '\0' && memchr(c.user_id, '\0', sizeof(c.user_id)) != NULL);
    check(memchr(c.role, '\0', sizeof(c.role)) != NULL && memchr(c.jti, '\0', sizeof(c.jti)) != NULL);
    check(c.exp > NOW - 31);
    /* what verifies signs again, and verifies to the same claims (times floored) */
    char tok[TESS_TOKEN_MAX];
    size_t n;
    if (tess_jwt_sign(jwt, &c, tok, sizeof(tok), &n) == TESS_OK) {
        tess_jwt_claims_t c2;
        int rc2 = tess_jwt_verify(jwt, tess_strn(tok, n), NOW, &c2);
        check(rc2 == TESS_OK || rc2 == TESS_EEXPIRED);
        if (rc2 == TESS_OK) {
            check(memcmp(&c, &c2, sizeof(c)) == 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (jwt == NULL) {
        tess_jwt_opts_t opts = {.leeway_s = 30, .max_token_len = 0};
        if (tess_secrets_parse(&secrets, tess_str(SECRET ",old")) != TESS_OK ||
            tess_jwt_new(&jwt, secrets, &opts) != TESS_OK) {
            abort();
        }
    }
    if (size == 0 || size > 3 * TESS_TOKEN_MAX) {
        return 0;
    }
    size_t n;
    char *in = fuzz_rest(data, size, 0, &n);
    if (in == NULL) {
        return 0;
    }

    if ((data[0] & 1) == 0) {
        verify(tess_strn(in, n));
        free(in);
        return 0;
    }
    const char *nl = memchr(in, '\n', n);
    const char *hdr = nl != NULL ? in : "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t hn = nl != NULL ? (size_t)(nl - in) : strlen(hdr);
    const char *pl = nl != NULL ? nl + 1 : in;
    size_t pn = nl != NULL ? n - hn - 1 : n;
    both_readers(pl, pn);
    size_t cap = TESS_BASE64_LEN(hn) + TESS_BASE64_LEN(pn) + 2 + TESS_BASE64_LEN(32) + 1;
    char *tok = malloc(cap);
    if (tok != NULL) {
        size_t o = tess_base64url_encode((const uint8_t *)hdr, hn, tok);
        tok[o++] = '.';
        o += tess_base64url_encode((const uint8_t *)pl, pn, tok + o);
        uint8_t mac[32];
        unsigned int ml = 0;
        if (HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const uint8_t *)tok, o, mac, &ml) != NULL) {
            tok[o++] = '.';
            o += tess_base64url_encode(mac, sizeof(mac), tok + o);
            char *exact = malloc(o); /* exact length: ASan sees any over-read */
            if (exact != NULL) {
                memcpy(exact, tok, o);
                verify(tess_strn(exact, o));
                free(exact);
            }
        }
        free(tok);
    }
    free(in);
    return 0;
}
