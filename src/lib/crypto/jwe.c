/*
 * NextAuth v4 / Auth.js v5 JWE sessions (tessera/jwe.h) over OpenSSL 3: HKDF (EVP_KDF) once per secret in
 * tess_jwe_new(); AES-256-GCM, or RFC 7518 5.2.5 AES_256_CBC_HMAC_SHA_512 (HMAC-SHA512 keyed once per secret,
 * its tag checked with CRYPTO_memcmp before AES-CBC runs), through contexts reused across calls; claims
 * through claims.h, as for HS256 tokens.
 *
 * decrypt, in order: size; five parts; header (alg and enc pinned, members allow-listed); IV and tag lengths;
 * the tag under each candidate key; then the claims. Nothing that fails the tag reaches the JSON parser.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "crypto/claims.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/jwe.h"

#define KEY_MAX 64         /* A256CBC-HS512: 32 bytes MAC key, then 32 bytes AES key */
#define GCM_IV_LEN 12      /* jose: 96-bit IVs for AES-GCM */
#define GCM_TAG_LEN 16     /* 128-bit tags */
#define CBC_IV_LEN 16      /* one AES block */
#define CBC_TAG_LEN 32     /* HMAC-SHA512 truncated to its first half */
#define HEADER_B64_MAX 512 /* a protected header (Auth.js's, with its 86-byte kid, is 157 bytes) */
#define KID_LEN 86         /* base64url of a SHA-512 thumbprint */
#define COOKIE_NAME_MAX 63 /* as SESSION_COOKIE */
#define BUF_SLACK 32       /* room past the plaintext a cipher update may ask for */
#define BUF_SIZE(max) (2 * (max) + BUF_SLACK)

typedef struct format_desc {
    const char *name;   /* SESSION_FORMAT value */
    const char *enc;    /* the one content encryption this format reads and writes */
    const char *cookie; /* default cookie name (without __Secure-) */
    const char *secure; /* the same over https */
    size_t key_len;     /* derived key, bytes */
    size_t iv_len;      /* IV, bytes */
    size_t tag_len;     /* authentication tag, bytes */
    int salted;         /* Auth.js: salt = cookie name, info names it, kid = thumbprint */
} format_desc_t;

static const format_desc_t formats[] = {
    [TESS_FORMAT_EXPRESS] = {"express", NULL, NULL, NULL, 0, 0, 0, 0},
    [TESS_FORMAT_NEXTAUTH] = {"nextauth", "A256GCM", "next-auth.session-token", "__Secure-next-auth.session-token", 32,
                              GCM_IV_LEN, GCM_TAG_LEN, 0},
    [TESS_FORMAT_AUTHJS] = {"authjs", "A256CBC-HS512", "authjs.session-token", "__Secure-authjs.session-token", 64,
                            CBC_IV_LEN, CBC_TAG_LEN, 1},
};
#define FORMAT_COUNT (sizeof(formats) / sizeof(formats[0]))

typedef struct jwe_key {
    uint8_t key[KEY_MAX];  /* the derived key */
    char kid[KID_LEN + 1]; /* Auth.js: its JWK thumbprint, "" for NextAuth */
    EVP_MAC_CTX *mac;      /* Auth.js: HMAC-SHA512 keyed with key[0..32) (re-initialised per use) */
} jwe_key_t;

struct tess_jwe {
    const format_desc_t *f;                       /* the format */
    tess_session_format_t format;                 /* its value */
    char cookie_name[COOKIE_NAME_MAX + 1];        /* the cookie (Auth.js's salt) */
    char user_claim[TESS_JWT_CLAIM_NAME_MAX + 1]; /* "sub" */
    char role_claim[TESS_JWT_CLAIM_NAME_MAX + 1]; /* "role" */
    int64_t leeway_s;                             /* exp / nbf / iat tolerance */
    size_t max_token_len;                         /* longer tokens are TESS_ETOOBIG */
    char header_b64[HEADER_B64_MAX];              /* what encrypt writes as the protected header */
    size_t header_b64_len;                        /* its length */
    size_t nkeys;                                 /* one per secret */
    jwe_key_t *keys;                              /* the first encrypts */
    EVP_CIPHER *gcm;                              /* AES-256-GCM, fetched once */
    EVP_CIPHER *cbc;                              /* AES-256-CBC, fetched once */
    EVP_CIPHER_CTX *cipher;                       /* reused for every encryption / decryption */
    EVP_MD_CTX *sha;                              /* token digests */
    uint8_t *buf;                                 /* ciphertext (max_token_len) then plaintext (+ BUF_SLACK) */
};

int tess_session_format_parse(tess_str_t name, tess_session_format_t *out)
{
    for (size_t i = 0; i < FORMAT_COUNT; i++) {
        if (tess_str_eq(name, tess_str(formats[i].name))) {
            *out = (tess_session_format_t)i;
            return TESS_OK;
        }
    }
    return TESS_EINVAL;
}

const char *tess_session_format_name(tess_session_format_t f)
{
    return (unsigned)f < FORMAT_COUNT ? formats[f].name : "unknown";
}

const char *tess_jwe_cookie_default(tess_session_format_t f, int secure)
{
    if ((unsigned)f >= FORMAT_COUNT || formats[f].enc == NULL) {
        return NULL;
    }
    return secure ? formats[f].secure : formats[f].cookie;
}

/* A cookie name as SESSION_COOKIE takes it (RFC 6265 token characters we also accept in a header). */
static int cookie_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= COOKIE_NAME_MAX && strcspn(s, "=;, \t\r\n\"") == n;
}

static const char *name_or(const char *name, const char *def)
{
    return name != NULL && name[0] != '\0' ? name : def;
}

/* HKDF-SHA256(secret, salt, info) -> out[0..n): @panva/hkdf's derivation, as both packages call it. */
static int hkdf(tess_str_t secret, const char *salt, const char *info, uint8_t *out, size_t n)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[5];
    int rc = TESS_EIO;

    EVP_KDF_free(kdf);
    if (ctx == NULL) {
        return TESS_EIO;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret.ptr, secret.len);
    /* An empty salt is HMAC's all-zero key, the same as none (RFC 5869 2.2): pass it as given. */
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, strlen(salt));
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
    params[4] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(ctx, out, n, params) == 1) {
        rc = TESS_OK;
    }
    EVP_KDF_CTX_free(ctx);
    return rc;
}

/* RFC 7638 thumbprint of an "oct" JWK, SHA-512, base64url: @auth/core's kid. */
static int thumbprint(const uint8_t *key, size_t n, char out[KID_LEN + 1])
{
    char jwk[2 * KEY_MAX + 32];
    uint8_t md[64];
    unsigned int mdn = 0;
    size_t o = 0;

    memcpy(jwk, "{\"k\":\"", 6);
    o = 6;
    o += tess_base64url_encode(key, n, jwk + o);
    memcpy(jwk + o, "\",\"kty\":\"oct\"}", 14);
    o += 14;
    if (EVP_Digest(jwk, o, md, &mdn, EVP_sha512(), NULL) != 1 || mdn != sizeof(md)) {
        return TESS_EIO;
    }
    tess_base64url_encode(md, sizeof(md), out);
    return TESS_OK;
}

static int derive_key(tess_jwe_t *j, tess_str_t secret, jwe_key_t *k)
{
    char info[128];
    int rc;

    if (j->f->salted) {
        snprintf(info, sizeof(info), "Auth.js Generated Encryption Key (%s)", j->cookie_name);
        rc = hkdf(secret, j->cookie_name, info, k->key, j->f->key_len);
    } else {
        rc = hkdf(secret, "", "NextAuth.js Generated Encryption Key", k->key, j->f->key_len);
    }
    if (rc != TESS_OK || !j->f->salted) {
        return rc;
    }
    if ((rc = thumbprint(k->key, j->f->key_len, k->kid)) != TESS_OK) {
        return rc;
    }
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA512", 0),
                            OSSL_PARAM_construct_end()};
    k->mac = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac);
    if (k->mac == NULL || EVP_MAC_init(k->mac, k->key, 32, params) != 1) {
        return TESS_EIO;
    }
    return TESS_OK;
}

int tess_jwe_new(tess_jwe_t **out, const tess_secrets_t *secrets, const tess_jwe_opts_t *opts)
{
    tess_jwe_t *j = NULL;
    int rc = TESS_OK;

    if (out == NULL) {
        return TESS_EINVAL;
    }
    *out = NULL;
    if (secrets == NULL || tess_secrets_count(secrets) == 0 || opts == NULL || (unsigned)opts->format >= FORMAT_COUNT ||
        formats[opts->format].enc == NULL) {
        return TESS_EINVAL;
    }
    if ((j = calloc(1, sizeof(*j))) == NULL) {
        return TESS_ENOMEM;
    }
    j->format = opts->format;
    j->f = &formats[opts->format];
    {
        const char *cookie = name_or(opts->cookie_name, j->f->cookie);
        const char *user = name_or(opts->user_claim, "sub");
        const char *role = name_or(opts->role_claim, "role");
        if (!cookie_name_ok(cookie) || !tess__claim_name_ok(user) || !tess__claim_name_ok(role) ||
            strcmp(user, role) == 0) {
            rc = TESS_EINVAL;
            goto out;
        }
        memcpy(j->cookie_name, cookie, strlen(cookie) + 1);
        memcpy(j->user_claim, user, strlen(user) + 1);
        memcpy(j->role_claim, role, strlen(role) + 1);
    }
    j->leeway_s = opts->leeway_s >= 0 ? opts->leeway_s : TESS_JWE_LEEWAY_DEFAULT;
    j->max_token_len = opts->max_token_len > 0 ? opts->max_token_len : TESS_JWE_TOKEN_MAX;
    if (j->leeway_s > INT64_C(1) << 40 || j->max_token_len > (SIZE_MAX >> 2)) {
        rc = TESS_EINVAL;
        goto out;
    }
    j->nkeys = tess_secrets_count(secrets);
    j->keys = calloc(j->nkeys, sizeof(*j->keys));
    j->buf = malloc(BUF_SIZE(j->max_token_len));
    j->cipher = EVP_CIPHER_CTX_new();
    j->sha = EVP_MD_CTX_new();
    j->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    j->cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    if (j->keys == NULL || j->buf == NULL || j->cipher == NULL || j->sha == NULL) {
        rc = TESS_ENOMEM;
        goto out;
    }
    if (j->gcm == NULL || j->cbc == NULL) {
        rc = TESS_EIO;
        goto out;
    }
    for (size_t i = 0; i < j->nkeys; i++) {
        if ((rc = derive_key(j, tess_secrets_get(secrets, i), &j->keys[i])) != TESS_OK) {
            goto out;
        }
    }
    {
        /* the header the format's encode() writes: jose keeps setProtectedHeader's member order */
        char hdr[256];
        int hn = j->f->salted ? snprintf(hdr, sizeof(hdr), "{\"alg\":\"dir\",\"enc\":\"%s\",\"kid\":\"%s\"}", j->f->enc,
                                         j->keys[0].kid)
                              : snprintf(hdr, sizeof(hdr), "{\"alg\":\"dir\",\"enc\":\"%s\"}", j->f->enc);
        j->header_b64_len = tess_base64url_encode((const uint8_t *)hdr, (size_t)hn, j->header_b64);
    }
    *out = j;
    j = NULL;
out:
    tess_jwe_free(j);
    return rc;
}

void tess_jwe_free(tess_jwe_t *jwe)
{
    if (jwe == NULL) {
        return;
    }
    if (jwe->keys != NULL) {
        for (size_t i = 0; i < jwe->nkeys; i++) {
            EVP_MAC_CTX_free(jwe->keys[i].mac);
        }
        OPENSSL_cleanse(jwe->keys, jwe->nkeys * sizeof(*jwe->keys));
        free(jwe->keys);
    }
    EVP_CIPHER_free(jwe->gcm);
    EVP_CIPHER_free(jwe->cbc);
    EVP_CIPHER_CTX_free(jwe->cipher);
    EVP_MD_CTX_free(jwe->sha);
    if (jwe->buf != NULL) {
        OPENSSL_cleanse(jwe->buf, BUF_SIZE(jwe->max_token_len));
        free(jwe->buf);
    }
    free(jwe);
}

int64_t tess_jwe_leeway_s(const tess_jwe_t *jwe)
{
    return jwe->leeway_s;
}

tess_session_format_t tess_jwe_format(const tess_jwe_t *jwe)
{
    return jwe->format;
}

tess_str_t tess_jwe_cookie_name(const tess_jwe_t *jwe)
{
    return tess_str(jwe->cookie_name);
}

size_t tess_jwe_max_token_len(const tess_jwe_t *jwe)
{
    return jwe->max_token_len;
}

/* ---- the two content encryptions -------------------------------------------------------------------------- */

/* A256CBC-HS512's tag: HMAC-SHA512(mac key, AAD || IV || C || AL)[0..32), AL the AAD's length in bits (RFC
 * 7518 5.2.2.1). */
static int cbc_tag(const jwe_key_t *k, tess_str_t aad, const uint8_t *iv, const uint8_t *c, size_t cn,
                   uint8_t tag[CBC_TAG_LEN])
{
    uint8_t al[8], md[64];
    uint64_t bits = (uint64_t)aad.len * 8;
    size_t mdn = 0;

    for (int i = 0; i < 8; i++) {
        al[i] = (uint8_t)(bits >> (56 - 8 * i));
    }
    /* a NULL key re-initialises with the key set in derive_key() */
    if (EVP_MAC_init(k->mac, NULL, 0, NULL) != 1 || EVP_MAC_update(k->mac, (const uint8_t *)aad.ptr, aad.len) != 1 ||
        EVP_MAC_update(k->mac, iv, CBC_IV_LEN) != 1 || EVP_MAC_update(k->mac, c, cn) != 1 ||
        EVP_MAC_update(k->mac, al, sizeof(al)) != 1 || EVP_MAC_final(k->mac, md, &mdn, sizeof(md)) != 1 ||
        mdn != sizeof(md)) {
        return TESS_EIO;
    }
    memcpy(tag, md, CBC_TAG_LEN);
    return TESS_OK;
}

/* Encrypts p[0..pn) into c (pn + 16 bytes of room), the tag into `tag`; *cn the ciphertext's length. */
static int seal(tess_jwe_t *j, const jwe_key_t *k, tess_str_t aad, const uint8_t *iv, const uint8_t *p, size_t pn,
                uint8_t *c, size_t *cn, uint8_t *tag)
{
    EVP_CIPHER_CTX *x = j->cipher;
    int n1 = 0, n2 = 0, ok;

    if (j->f->salted) {
        ok = EVP_EncryptInit_ex2(x, j->cbc, k->key + 32, iv, NULL) == 1 &&
             EVP_EncryptUpdate(x, c, &n1, p, (int)pn) == 1 && EVP_EncryptFinal_ex(x, c + n1, &n2) == 1;
        *cn = (size_t)(n1 + n2);
        return ok ? cbc_tag(k, aad, iv, c, *cn, tag) : TESS_EIO;
    }
    ok = EVP_EncryptInit_ex2(x, j->gcm, k->key, iv, NULL) == 1 &&
         EVP_EncryptUpdate(x, NULL, &n1, (const uint8_t *)aad.ptr, (int)aad.len) == 1 &&
         EVP_EncryptUpdate(x, c, &n1, p, (int)pn) == 1 && EVP_EncryptFinal_ex(x, c + n1, &n2) == 1 &&
         EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, tag) == 1;
    *cn = (size_t)(n1 + n2);
    return ok ? TESS_OK : TESS_EIO;
}

/*
 * Decrypts c[0..cn) under key `k` into p (cn bytes of room): TESS_OK with *pn, TESS_EBADSIG when the tag does not
 * verify (then p holds nothing to read), TESS_EIO.
 */
static int open_under(tess_jwe_t *j, const jwe_key_t *k, tess_str_t aad, const uint8_t *iv, const uint8_t *c, size_t cn,
                      const uint8_t *tag, uint8_t *p, size_t *pn)
{
    EVP_CIPHER_CTX *x = j->cipher;
    int n1 = 0, n2 = 0;

    *pn = 0;
    if (j->f->salted) {
        uint8_t want[CBC_TAG_LEN];
        int rc = cbc_tag(k, aad, iv, c, cn, want);
        if (rc != TESS_OK) {
            return rc;
        }
        if (CRYPTO_memcmp(want, tag, CBC_TAG_LEN) != 0) {
            return TESS_EBADSIG;
        }
        /* authentic: a padding error now is the sender's bug, not an oracle */
        if (EVP_DecryptInit_ex2(x, j->cbc, k->key + 32, iv, NULL) != 1 ||
            EVP_DecryptUpdate(x, p, &n1, c, (int)cn) != 1 || EVP_DecryptFinal_ex(x, p + n1, &n2) != 1) {
            return TESS_EBADFMT;
        }
        *pn = (size_t)(n1 + n2);
        return TESS_OK;
    }
    if (EVP_DecryptInit_ex2(x, j->gcm, k->key, iv, NULL) != 1 ||
        EVP_DecryptUpdate(x, NULL, &n1, (const uint8_t *)aad.ptr, (int)aad.len) != 1 ||
        EVP_DecryptUpdate(x, p, &n1, c, (int)cn) != 1 ||
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, (void *)tag) != 1) {
        return TESS_EIO;
    }
    /* OpenSSL compares GCM tags with CRYPTO_memcmp */
    if (EVP_DecryptFinal_ex(x, p + n1, &n2) != 1) {
        return TESS_EBADSIG;
    }
    *pn = (size_t)(n1 + n2);
    return TESS_OK;
}

/* ---- encrypt ---------------------------------------------------------------------------------------------- */

int tess_jwe_encrypt(tess_jwe_t *jwe, const tess_jwt_claims_t *claims, char *out, size_t cap, size_t *outlen)
{
    char json[TESS__CLAIMS_JSON_MAX];
    uint8_t iv[CBC_IV_LEN], tag[CBC_TAG_LEN];
    uint8_t *c;
    size_t cn = 0, o;
    long jn;
    int rc;

    if (outlen != NULL) {
        *outlen = 0;
    }
    if (out != NULL && cap > 0) {
        out[0] = '\0';
    }
    if (jwe == NULL || claims == NULL || out == NULL) {
        return TESS_EINVAL;
    }
    if ((jn = tess__claims_json(jwe->user_claim, jwe->role_claim, claims, json)) < 0) {
        return (int)jn;
    }
    size_t iv_len = jwe->f->iv_len, tag_len = jwe->f->tag_len;
    size_t c_max = (size_t)jn + 16;
    size_t total =
        jwe->header_b64_len + 2 + TESS_BASE64_LEN(iv_len) + 1 + TESS_BASE64_LEN(c_max) + 1 + TESS_BASE64_LEN(tag_len);
    if (cap < total + 1) {
        return TESS_ENOSPACE;
    }
    if (c_max > jwe->max_token_len || RAND_bytes(iv, (int)iv_len) != 1) {
        return c_max > jwe->max_token_len ? TESS_ENOSPACE : TESS_EIO;
    }
    c = jwe->buf;
    rc = seal(jwe, &jwe->keys[0], tess_strn(jwe->header_b64, jwe->header_b64_len), iv, (const uint8_t *)json,
              (size_t)jn, c, &cn, tag);
    OPENSSL_cleanse(json, sizeof(json));
    if (rc != TESS_OK) {
        return rc;
    }
    memcpy(out, jwe->header_b64, jwe->header_b64_len);
    o = jwe->header_b64_len;
    out[o++] = '.';
    out[o++] = '.'; /* "dir": no encrypted key */
    o += tess_base64url_encode(iv, iv_len, out + o);
    out[o++] = '.';
    o += tess_base64url_encode(c, cn, out + o);
    out[o++] = '.';
    o += tess_base64url_encode(tag, tag_len, out + o);
    out[o] = '\0';
    OPENSSL_cleanse(c, cn);
    if (outlen != NULL) {
        *outlen = o;
    }
    return TESS_OK;
}

/* ---- decrypt ---------------------------------------------------------------------------------------------- */

/* The member `name` of `obj`, or NULL; *dup set when repeated. */
static const cJSON *member(const cJSON *obj, const char *name, int *dup)
{
    const cJSON *found = NULL;
    for (const cJSON *it = obj->child; it != NULL; it = it->next) {
        if (it->string != NULL && strcmp(it->string, name) == 0) {
            *dup |= found != NULL;
            found = it;
        }
    }
    return found;
}

/*
 * The protected header: alg "dir" and the format's enc (else TESS_EBADSIG), kid and typ allowed, nothing
 * else (TESS_EBADFMT). *key_from / *key_to: the keys to try (the one a kid names, or all).
 */
static int check_header(tess_jwe_t *j, tess_str_t part, size_t *key_from, size_t *key_to)
{
    char hdr[HEADER_B64_MAX];
    size_t n = 0, count = 0;
    int dup = 0, rc = TESS_OK;
    cJSON *root;

    *key_from = 0;
    *key_to = j->nkeys;
    if (part.len == 0 || part.len >= HEADER_B64_MAX) {
        return part.len == 0 ? TESS_EBADFMT : TESS_ETOOBIG;
    }
    if (tess_base64url_decode(part, (uint8_t *)hdr, sizeof(hdr) - 1, &n) != TESS_OK) {
        return TESS_EBADFMT;
    }
    hdr[n] = '\0';
    if ((root = tess__json_object(hdr, n)) == NULL) {
        return TESS_EBADFMT;
    }
    const cJSON *alg = member(root, "alg", &dup), *enc = member(root, "enc", &dup);
    const cJSON *kid = member(root, "kid", &dup), *typ = member(root, "typ", &dup);
    for (const cJSON *it = root->child; it != NULL; it = it->next) {
        count++;
    }
    size_t known = (size_t)(alg != NULL) + (enc != NULL) + (kid != NULL) + (typ != NULL);
    if (dup || count != known) {
        rc = TESS_EBADFMT; /* zip, crit, cty, epk, a repeated member...: nothing we would honour */
    } else if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "dir") != 0 || !cJSON_IsString(enc) ||
               strcmp(enc->valuestring, j->f->enc) != 0) {
        rc = TESS_EBADSIG; /* pinned: another key management or content encryption is not ours */
    } else if ((typ != NULL && (!cJSON_IsString(typ) || strcmp(typ->valuestring, "JWT") != 0)) ||
               (kid != NULL && !cJSON_IsString(kid))) {
        rc = TESS_EBADFMT;
    } else if (kid != NULL && j->f->salted) {
        /* @auth/core: a kid names the secret; one no secret has is refused without trying the others */
        size_t kn = strlen(kid->valuestring);
        rc = TESS_EBADSIG;
        for (size_t i = 0; i < j->nkeys && kn == KID_LEN; i++) {
            if (CRYPTO_memcmp(j->keys[i].kid, kid->valuestring, KID_LEN) == 0) {
                *key_from = i;
                *key_to = i + 1;
                rc = TESS_OK;
                break;
            }
        }
    }
    cJSON_Delete(root);
    return rc;
}

/* Splits a compact JWE into its five parts; 0 or TESS_EBADFMT. */
static int split5(tess_str_t token, tess_str_t parts[5])
{
    const char *p = token.ptr, *end = token.ptr + token.len;

    for (int i = 0; i < 5; i++) {
        const char *dot = i < 4 ? memchr(p, '.', (size_t)(end - p)) : NULL;
        if (i < 4 && dot == NULL) {
            return TESS_EBADFMT;
        }
        const char *stop = i < 4 ? dot : end;
        parts[i] = tess_strn(p, (size_t)(stop - p));
        p = stop + (i < 4);
    }
    return memchr(parts[4].ptr, '.', parts[4].len) != NULL ? TESS_EBADFMT : TESS_OK;
}

int tess_jwe_decrypt(tess_jwe_t *jwe, tess_str_t token, int64_t now_s, tess_jwt_claims_t *claims)
{
    tess_str_t parts[5];
    uint8_t iv[CBC_IV_LEN], tag[CBC_TAG_LEN];
    size_t n = 0, cn = 0, pn = 0, from = 0, to = 0;
    int rc;

    if (claims != NULL) {
        memset(claims, 0, sizeof(*claims));
    }
    if (jwe == NULL || claims == NULL) {
        return TESS_EINVAL;
    }
    if (token.len > jwe->max_token_len) {
        return TESS_ETOOBIG;
    }
    if (token.len == 0 || token.ptr == NULL || split5(token, parts) != TESS_OK) {
        return TESS_EBADFMT;
    }
    if ((rc = check_header(jwe, parts[0], &from, &to)) != TESS_OK) {
        return rc;
    }
    if (parts[1].len != 0 || parts[3].len == 0) {
        return TESS_EBADFMT; /* "dir" carries no encrypted key; an empty ciphertext is no claims */
    }
    if (tess_base64url_decode(parts[2], iv, sizeof(iv), &n) != TESS_OK || n != jwe->f->iv_len) {
        return TESS_EBADFMT;
    }
    if (tess_base64url_decode(parts[4], tag, sizeof(tag), &n) != TESS_OK || n != jwe->f->tag_len) {
        return TESS_EBADSIG; /* no key produces a tag of another length */
    }
    /* the ciphertext first in buf, the plaintext after it: neither is longer than the token */
    size_t half = jwe->max_token_len;
    if (tess_base64url_decode(parts[3], jwe->buf, half, &cn) != TESS_OK) {
        return TESS_EBADFMT;
    }
    if (jwe->f->salted && cn % 16 != 0) {
        return TESS_EBADFMT; /* CBC: whole blocks */
    }
    rc = TESS_EBADSIG;
    for (size_t i = from; i < to && rc == TESS_EBADSIG; i++) {
        rc = open_under(jwe, &jwe->keys[i], parts[0], iv, jwe->buf, cn, tag, jwe->buf + half, &pn);
    }
    if (rc != TESS_OK) {
        return rc;
    }
    rc = tess__claims_read(jwe->user_claim, jwe->role_claim, jwe->leeway_s, (const char *)jwe->buf + half, pn, now_s,
                           claims);
    OPENSSL_cleanse(jwe->buf + half, pn);
    if (rc != TESS_OK) {
        memset(claims, 0, sizeof(*claims));
    }
    return rc;
}

int tess_jwe_token_digest(tess_jwe_t *jwe, tess_str_t token, char *out, size_t cap)
{
    uint8_t md[32];
    unsigned int n = 0;
    size_t plen = sizeof(TESS_JWT_DIGEST_PREFIX) - 1;

    if (cap > 0) {
        out[0] = '\0';
    }
    if (cap < TESS_JWT_TOKEN_ID_MAX + 1) {
        return TESS_ENOSPACE;
    }
    if (EVP_DigestInit_ex(jwe->sha, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(jwe->sha, token.ptr, token.len) != 1 ||
        EVP_DigestFinal_ex(jwe->sha, md, &n) != 1 || n != sizeof(md)) {
        return TESS_ENOMEM;
    }
    memcpy(out, TESS_JWT_DIGEST_PREFIX, plen);
    out[plen + tess_base64url_encode(md, sizeof(md), out + plen)] = '\0';
    return TESS_OK;
}
