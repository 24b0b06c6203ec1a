/*
 * Micro-benchmark: ns per tess_jwt_verify against its roof (one bare HMAC-SHA256 of the same signing
 * input with a pre-keyed context), plus tess_cookie_unsign. Rounds are interleaved so that frequency
 * changes hit every measurement alike; the best round is reported (the least disturbed one).
 *
 *   cmake -S bench -B build-bench -DCMAKE_BUILD_TYPE=Release && make -C build-bench && ./build-bench/bench_jwt
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "tessera/cookie.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/jwt.h"

#define ROUNDS 7
#define ITERS 200000

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_jwt: %s: %s\n", what, tess_strerror(rc));
    exit(1);
}

/* The roof: HMAC-SHA256 with ipad/opad states absorbed once, copied per message. */
typedef struct roof {
    EVP_MD_CTX *inner, *outer, *work;
} roof_t;

static void roof_init(roof_t *r, const char *key)
{
    unsigned char ipad[64], opad[64];
    size_t klen = strlen(key);
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);

    if (klen > 64) {
        fprintf(stderr, "roof: key over one block\n");
        exit(1);
    }
    memset(ipad, 0x36, sizeof(ipad));
    memset(opad, 0x5c, sizeof(opad));
    for (size_t i = 0; i < klen; i++) {
        ipad[i] ^= (unsigned char)key[i];
        opad[i] ^= (unsigned char)key[i];
    }
    r->inner = EVP_MD_CTX_new();
    r->outer = EVP_MD_CTX_new();
    r->work = EVP_MD_CTX_new();
    if (md == NULL || r->inner == NULL || r->outer == NULL || r->work == NULL ||
        EVP_DigestInit_ex(r->inner, md, NULL) != 1 || EVP_DigestUpdate(r->inner, ipad, 64) != 1 ||
        EVP_DigestInit_ex(r->outer, md, NULL) != 1 || EVP_DigestUpdate(r->outer, opad, 64) != 1) {
        fprintf(stderr, "roof: OpenSSL setup failed\n");
        exit(1);
    }
    EVP_MD_free(md);
}

static void roof_mac(roof_t *r, const void *msg, size_t n, unsigned char out[32])
{
    unsigned char ih[32];
    unsigned int len;

    EVP_MD_CTX_copy_ex(r->work, r->inner);
    EVP_DigestUpdate(r->work, msg, n);
    EVP_DigestFinal_ex(r->work, ih, &len);
    EVP_MD_CTX_copy_ex(r->work, r->outer);
    EVP_DigestUpdate(r->work, ih, 32);
    EVP_DigestFinal_ex(r->work, out, &len);
}

int main(void)
{
    const char *key = "bench-secret-new";
    tess_secrets_t *secrets = NULL, *one = NULL;
    tess_jwt_t *jwt = NULL;
    char tok[1024], old_tok[1024], forged[1024], cookie[TESS_SIGNED_COOKIE_MAX];
    size_t tok_n, old_n, cookie_n;
    int rc;

    if ((rc = tess_secrets_parse(&secrets, tess_str("bench-secret-new,bench-secret-old"))) != TESS_OK ||
        (rc = tess_secrets_parse(&one, tess_str("bench-secret-old"))) != TESS_OK) {
        die("secrets", rc);
    }
    if ((rc = tess_jwt_new(&jwt, secrets, NULL)) != TESS_OK) {
        die("jwt_new", rc);
    }
    int64_t now = tess_now_ms() / 1000;
    tess_jwt_claims_t c;
    memset(&c, 0, sizeof(c));
    strcpy(c.user_id, "user-0123456789");
    strcpy(c.role, "user");
    if ((rc = tess_id_new(c.jti)) != TESS_OK) {
        die("id", rc);
    }
    c.iat = now;
    c.exp = now + 30 * 86400;
    if ((rc = tess_jwt_sign(jwt, &c, tok, sizeof(tok), &tok_n)) != TESS_OK) {
        die("sign", rc);
    }
    tess_jwt_t *old_signer = NULL;
    if ((rc = tess_jwt_new(&old_signer, one, NULL)) != TESS_OK ||
        (rc = tess_jwt_sign(old_signer, &c, old_tok, sizeof(old_tok), &old_n)) != TESS_OK) {
        die("old sign", rc);
    }
    memcpy(forged, tok, tok_n + 1);
    forged[tok_n - 5] = forged[tok_n - 5] == 'A' ? 'B' : 'A';

    char sid[TESS_ID_LEN + 1];
    if ((rc = tess_id_new(sid)) != TESS_OK ||
        (rc = tess_cookie_sign(secrets, tess_str(sid), cookie, sizeof(cookie), &cookie_n)) != TESS_OK) {
        die("cookie", rc);
    }

    roof_t roof;
    roof_init(&roof, key);
    const char *dot2 = strrchr(tok, '.');
    size_t signing_n = (size_t)(dot2 - tok);
    unsigned char mac[32];
    roof_mac(&roof, tok, signing_n, mac);
    char mac_b64[44];
    tess_base64url_encode(mac, 32, mac_b64);
    if (strcmp(mac_b64, dot2 + 1) != 0) {
        fprintf(stderr, "roof HMAC differs from the token's signature\n");
        return 1;
    }

    /* reference: EVP_MAC re-initialised with a NULL key (the other documented way to reuse a key) */
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *mctx = EVP_MAC_CTX_new(hmac);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC_init(mctx, (const unsigned char *)key, strlen(key), params);

    double best[6];
    for (int k = 0; k < 6; k++) {
        best[k] = 1e18;
    }
    tess_jwt_claims_t out;
    char sid_out[TESS_SID_MAX + 1];
    size_t sid_n;
    volatile int sink = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_ns();
        for (int i = 0; i < ITERS; i++) {
            sink += tess_jwt_verify(jwt, tess_strn(tok, tok_n), now, &out);
        }
        double t1 = now_ns();
        for (int i = 0; i < ITERS; i++) {
            roof_mac(&roof, tok, signing_n, mac);
            sink += mac[0];
        }
        double t2 = now_ns();
        for (int i = 0; i < ITERS; i++) {
            size_t ml;
            EVP_MAC_init(mctx, NULL, 0, NULL);
            EVP_MAC_update(mctx, (const unsigned char *)tok, signing_n);
            EVP_MAC_final(mctx, mac, &ml, sizeof(mac));
            sink += mac[0];
        }
        double t3 = now_ns();
        for (int i = 0; i < ITERS; i++) {
            sink += tess_jwt_verify(jwt, tess_strn(old_tok, old_n), now, &out);
        }
        double t4 = now_ns();
        for (int i = 0; i < ITERS; i++) {
            sink += tess_jwt_verify(jwt, tess_strn(forged, tok_n), now, &out);
        }
        double t5 = now_ns();
        for (int i = 0; i < ITERS; i++) {
            sink += tess_cookie_unsign(secrets, tess_strn(cookie, cookie_n), sid_out, sizeof(sid_out), &sid_n);
        }
        double t6 = now_ns();
        double d[6] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5};
        for (int k = 0; k < 6; k++) {
            if (d[k] / ITERS < best[k]) {
                best[k] = d[k] / ITERS;
            }
        }
    }
    if ((rc = tess_jwt_verify(jwt, tess_strn(tok, tok_n), now, &out)) != TESS_OK ||
        tess_jwt_verify(jwt, tess_strn(old_tok, old_n), now, &out) != TESS_OK ||
        tess_jwt_verify(jwt, tess_strn(forged, tok_n), now, &out) != TESS_EBADSIG ||
        tess_cookie_unsign(secrets, tess_strn(cookie, cookie_n), sid_out, sizeof(sid_out), &sid_n) != TESS_OK) {
        fprintf(stderr, "bench inputs do not verify as expected\n");
        return 1;
    }

    printf("token %zu bytes, signing input %zu bytes; best of %d rounds x %d\n", tok_n, signing_n, ROUNDS, ITERS);
    printf("tess_jwt_verify (first secret)        %8.1f ns\n", best[0]);
    printf("roof: HMAC-SHA256, pre-keyed EVP_MD    %8.1f ns\n", best[1]);
    printf("ref:  HMAC-SHA256, EVP_MAC NULL-key    %8.1f ns\n", best[2]);
    printf("verify / roof                          %8.2f x\n", best[0] / best[1]);
    printf("tess_jwt_verify (second secret)        %8.1f ns\n", best[3]);
    printf("tess_jwt_verify (forged, 2 secrets)    %8.1f ns\n", best[4]);
    printf("tess_cookie_unsign (43-char sid)       %8.1f ns\n", best[5]);
    printf("(sink %d)\n", sink != 0);

    EVP_MAC_CTX_free(mctx);
    EVP_MAC_free(hmac);
    tess_jwt_free(old_signer);
    tess_jwt_free(jwt);
    tess_secrets_free(one);
    tess_secrets_free(secrets);
    return 0;
}
