/*
 * HS256 JWTs as the npm package jsonwebtoken writes and reads them, over OpenSSL's SHA-256 with the HMAC
 * key set up once per secret (see secrets_internal.h) and claims parsed with cJSON.
 *
 * verify, in order: size bound; exactly three parts; header (a byte compare against our own header on
 * the fast path, otherwise decoded and parsed) with alg pinned to "HS256"; the signature against each
 * secret in constant time; only then the payload is decoded and parsed, so forged tokens never reach
 * the JSON parser.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1 /* SHA256_CTX: crypto/secrets.h */
#include <ctype.h>
#include <math.h> /* isfinite, fabs: compiler built-ins, no libm */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto/claims.h"
#include "crypto/secrets.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/jwt.h"

/* base64url('{"alg":"HS256","typ":"JWT"}'): what jsonwebtoken and tess_jwt_sign() emit. */
#define JWT_HEADER_B64 "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
#define JWT_SIG_B64_LEN TESS_BASE64_LEN(TESS__HMAC_LEN) /* 43 */
#define JWT_DEFAULT_LEEWAY_S 30
#define JSON_SAFE_INT 9007199254740991.0 /* 2^53 - 1: integers JavaScript represents exactly */
#define JWT_CLAIMS_JSON_MAX TESS__CLAIMS_JSON_MAX

struct tess_jwt {
    const tess_secrets_t *secrets;                /* borrowed; outlives us */
    char user_claim[TESS_JWT_CLAIM_NAME_MAX + 1]; /* the user id claim's name ("userId") */
    char role_claim[TESS_JWT_CLAIM_NAME_MAX + 1]; /* the role claim's name ("role") */
    int64_t leeway_s;                             /* exp / nbf / iat tolerance */
    size_t max_token_len;                         /* longer tokens are TESS_ETOOBIG */
    char *buf;                                    /* decoded header / payload, max_token_len bytes + NUL */
};

int tess__claim_name_ok(const char *name)
{
    static const char *const reserved[] = {"iat", "exp", "nbf", "jti"};
    size_t n = strlen(name);

    if (n == 0 || n > TESS_JWT_CLAIM_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (name[i] <= 0x20 || name[i] > 0x7e || name[i] == '"' || name[i] == '\\') {
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (strcmp(name, reserved[i]) == 0) {
            return 0;
        }
    }
    return 1;
}

static const char *name_or(const char *name, const char *def)
{
    return name != NULL && name[0] != '\0' ? name : def;
}

int tess_jwt_new(tess_jwt_t **out, const tess_secrets_t *secrets, const tess_jwt_opts_t *opts)
{
    tess_jwt_t *j = NULL;
    int rc = TESS_OK;

    if (out == NULL) {
        return TESS_EINVAL;
    }
    *out = NULL;
    if (secrets == NULL || tess_secrets_count(secrets) == 0) {
        return TESS_EINVAL;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return TESS_ENOMEM;
    }
    j->secrets = secrets;
    {
        const char *user = name_or(opts != NULL ? opts->user_claim : NULL, "userId");
        const char *role = name_or(opts != NULL ? opts->role_claim : NULL, "role");
        if (!tess__claim_name_ok(user) || !tess__claim_name_ok(role) || strcmp(user, role) == 0) {
            rc = TESS_EINVAL;
            goto out;
        }
        memcpy(j->user_claim, user, strlen(user) + 1);
        memcpy(j->role_claim, role, strlen(role) + 1);
    }
    j->leeway_s = opts != NULL && opts->leeway_s >= 0 ? opts->leeway_s : JWT_DEFAULT_LEEWAY_S;
    j->max_token_len = opts != NULL && opts->max_token_len > 0 ? opts->max_token_len : TESS_TOKEN_MAX;
    if (j->leeway_s > INT64_C(1) << 40 || j->max_token_len > (SIZE_MAX >> 2)) {
        rc = TESS_EINVAL;
        goto out;
    }
    j->buf = malloc(j->max_token_len + 1);
    if (j->buf == NULL) {
        rc = TESS_ENOMEM;
        goto out;
    }
    *out = j;
    j = NULL;
out:
    tess_jwt_free(j);
    return rc;
}

void tess_jwt_free(tess_jwt_t *jwt)
{
    if (jwt == NULL) {
        return;
    }
    free(jwt->buf);
    free(jwt);
}

/* ---------------------------------------------------------------------------------------------------- */
/* signing                                                                                              */

/* Length of a NUL-terminated string in a fixed field, or -1 when the field holds no NUL. */
static long field_len(const char *s, size_t size)
{
    const char *nul = memchr(s, '\0', size);
    return nul != NULL ? (long)(nul - s) : -1;
}

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            k = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < k) {
            return 0;
        }
        for (size_t m = 1; m < k; m++) {
            if ((s[i + m] & 0xc0) != 0x80) {
                return 0;
            }
            cp = cp << 6 | (s[i + m] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
        i += k;
    }
    return 1;
}

/* Appends "key":"escaped value" (with a leading comma unless first). Caller sized `buf`. */
static size_t json_put_string(char *buf, size_t o, const char *key, const char *v, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    o += (size_t)sprintf(buf + o, "%s\"%s\":\"", o > 1 ? "," : "", key);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20) {
            /* JSON.stringify's short forms where they exist, \u00XX otherwise */
            static const char shorts[] = {['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r'};
            buf[o++] = '\\';
            if (c < sizeof(shorts) && shorts[c] != 0) {
                buf[o++] = shorts[c];
            } else {
                buf[o++] = 'u';
                buf[o++] = '0';
                buf[o++] = '0';
                buf[o++] = hex[c >> 4];
                buf[o++] = hex[c & 15];
            }
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return o;
}

static size_t json_put_int(char *buf, size_t o, const char *key, int64_t v)
{
    return o + (size_t)sprintf(buf + o, "%s\"%s\":%lld", o > 1 ? "," : "", key, (long long)v);
}

long tess__claims_json(const char *user_claim, const char *role_claim, const tess_jwt_claims_t *claims, char *json)
{
    size_t o = 0;

    long uid_n = field_len(claims->user_id, sizeof(claims->user_id));
    long role_n = field_len(claims->role, sizeof(claims->role));
    long jti_n = field_len(claims->jti, sizeof(claims->jti));
    if (uid_n <= 0 || role_n < 0 || jti_n < 0 || claims->exp <= 0 || claims->exp > (int64_t)JSON_SAFE_INT ||
        claims->iat < 0 || claims->iat > (int64_t)JSON_SAFE_INT || claims->nbf < 0 ||
        claims->nbf > (int64_t)JSON_SAFE_INT) {
        return TESS_EINVAL;
    }
    if (!utf8_valid((const unsigned char *)claims->user_id, (size_t)uid_n) ||
        !utf8_valid((const unsigned char *)claims->role, (size_t)role_n) ||
        !utf8_valid((const unsigned char *)claims->jti, (size_t)jti_n)) {
        return TESS_EINVAL; /* node would decode it to U+FFFD: a different userId */
    }

    /* same member order as jsonwebtoken given {userId, role} and expiresIn / jwtid / notBefore options */
    json[o++] = '{';
    o = json_put_string(json, o, user_claim, claims->user_id, (size_t)uid_n);
    if (role_n > 0) {
        o = json_put_string(json, o, role_claim, claims->role, (size_t)role_n);
    }
    o = json_put_int(json, o, "iat", claims->iat);
    if (claims->nbf != 0) {
        o = json_put_int(json, o, "nbf", claims->nbf);
    }
    o = json_put_int(json, o, "exp", claims->exp);
    if (jti_n > 0) {
        o = json_put_string(json, o, "jti", claims->jti, (size_t)jti_n);
    }
    json[o++] = '}';
    json[o] = '\0';
    return (long)o;
}

int tess_jwt_sign(tess_jwt_t *jwt, const tess_jwt_claims_t *claims, char *out, size_t cap, size_t *outlen)
{
    char json[JWT_CLAIMS_JSON_MAX];
    uint8_t mac[TESS__HMAC_LEN];
    long jn;
    size_t o;
    int rc;

    if (outlen != NULL) {
        *outlen = 0;
    }
    if (out != NULL && cap > 0) {
        out[0] = '\0';
    }
    if (jwt == NULL || claims == NULL || out == NULL) {
        return TESS_EINVAL;
    }
    if ((jn = tess__claims_json(jwt->user_claim, jwt->role_claim, claims, json)) < 0) {
        return (int)jn;
    }
    o = (size_t)jn;

    size_t hlen = sizeof(JWT_HEADER_B64) - 1;
    size_t total = hlen + 1 + TESS_BASE64_LEN(o) + 1 + JWT_SIG_B64_LEN;
    if (cap < total + 1) {
        return TESS_ENOSPACE;
    }
    memcpy(out, JWT_HEADER_B64 ".", hlen + 1);
    size_t n = hlen + 1;
    n += tess_base64url_encode((const uint8_t *)json, o, out + n);
    rc = tess__secrets_hmac(jwt->secrets, 0, out, n, mac);
    if (rc != TESS_OK) {
        out[0] = '\0';
        return rc;
    }
    out[n++] = '.';
    n += tess_base64url_encode(mac, sizeof(mac), out + n);
    if (outlen != NULL) {
        *outlen = n;
    }
    return TESS_OK;
}

/* ---------------------------------------------------------------------------------------------------- */
/* verification                                                                                         */

static int is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

cJSON *tess__json_object(const char *buf, size_t n)
{
    const char *end = NULL;
    cJSON *root;
    size_t i = 0;

    while (i < n && is_json_ws(buf[i])) {
        i++;
    }
    if (i == n || buf[i] != '{' || memchr(buf, '\0', n) != NULL) {
        return NULL;
    }
    root = cJSON_ParseWithLengthOpts(buf, n, &end, 0);
    if (root == NULL) {
        return NULL;
    }
    while (end < buf + n && is_json_ws(*end)) {
        end++;
    }
    if (end != buf + n || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Decodes one base64url part into jwt->buf and parses it with tess__json_object(). */
static cJSON *parse_part(tess_jwt_t *jwt, tess_str_t part)
{
    size_t n = 0;

    if (tess_base64url_decode(part, (uint8_t *)jwt->buf, jwt->max_token_len, &n) != TESS_OK) {
        return NULL;
    }
    jwt->buf[n] = '\0';
    return tess__json_object(jwt->buf, n);
}

/* The object member `name`, or NULL; *dup set when it occurs more than once (JSON.parse keeps the last). */
static const cJSON *member(const cJSON *obj, const char *name, int *dup)
{
    const cJSON *found = NULL;

    for (const cJSON *it = obj->child; it != NULL; it = it->next) {
        if (it->string != NULL && strcmp(it->string, name) == 0) {
            if (found != NULL) {
                *dup = 1;
            }
            found = it;
        }
    }
    return found;
}

static int check_header(tess_jwt_t *jwt, tess_str_t part)
{
    cJSON *hdr;
    int dup = 0;
    int rc = TESS_OK;

    if (part.len == sizeof(JWT_HEADER_B64) - 1 && memcmp(part.ptr, JWT_HEADER_B64, part.len) == 0) {
        return TESS_OK; /* the header every HS256 jsonwebtoken token carries */
    }
    hdr = parse_part(jwt, part);
    if (hdr == NULL) {
        return TESS_EBADFMT;
    }
    const cJSON *alg = member(hdr, "alg", &dup);
    const cJSON *typ = member(hdr, "typ", &dup);
    if (dup) {
        rc = TESS_EBADFMT;
    } else if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "HS256") != 0) {
        rc = TESS_EBADSIG; /* alg pinned: "none", HS384, RS256, missing... */
    } else if (typ != NULL && (!cJSON_IsString(typ) || strcmp(typ->valuestring, "JWT") != 0)) {
        rc = TESS_EBADFMT;
    } else if (member(hdr, "crit", &dup) != NULL) {
        rc = TESS_EBADFMT; /* RFC 7515 4.1.11: we understand no extension */
    }
    cJSON_Delete(hdr);
    return rc;
}

/* Math.floor for |v| <= 2^53 (where every double converts to int64_t exactly), without libm. */
static int64_t floor_i64(double v)
{
    int64_t t = (int64_t)v;
    return (double)t > v ? t - 1 : t;
}

/* A claim's value as both readers see it: what tess__claims_check needs of a cJSON item, without one. */
typedef struct claim_val {
    enum { CV_ABSENT, CV_STRING, CV_NUMBER, CV_OTHER } kind;
    const char *str; /* CV_STRING: its bytes, NUL-terminated (cJSON's) or not (the flat reader's) */
    size_t len;      /* their length */
    double num;      /* CV_NUMBER */
} claim_val_t;

enum { C_USER, C_ROLE, C_JTI, C_IAT, C_EXP, C_NBF, C_COUNT };

/* A JSON number JavaScript holds exactly as a safe integer or a finite double within ±2^53. */
static int number_ok(const claim_val_t *v)
{
    return v->kind == CV_NUMBER && isfinite(v->num) && fabs(v->num) <= JSON_SAFE_INT;
}

/* Copies an optional string claim into a fixed field. */
static int copy_string_claim(const claim_val_t *v, char *dst, size_t size, int required)
{
    if (v->kind == CV_ABSENT) {
        return required ? TESS_EBADFMT : TESS_OK;
    }
    if (v->kind != CV_STRING) {
        return TESS_EBADFMT;
    }
    if (v->len >= size) {
        return TESS_ETOOBIG;
    }
    if (required && v->len == 0) {
        return TESS_EBADFMT;
    }
    memcpy(dst, v->str, v->len);
    dst[v->len] = '\0';
    return TESS_OK;
}

/* The claims' rules (tess__claims_check) on the six values, however they were read. */
static int claims_apply(const claim_val_t found[C_COUNT], int dup, int64_t leeway_s, int64_t now_s,
                        tess_jwt_claims_t *claims)
{
    const claim_val_t *uid = &found[C_USER], *role = &found[C_ROLE], *jti = &found[C_JTI];
    const claim_val_t *iat = &found[C_IAT], *exp = &found[C_EXP], *nbf = &found[C_NBF];
    double now = (double)now_s, leeway = (double)leeway_s;
    int rc;

    if (dup) {
        return TESS_EBADFMT;
    }
    /* types first (jsonwebtoken: "invalid exp value", "invalid nbf value") */
    if (!number_ok(exp) || (nbf->kind != CV_ABSENT && !number_ok(nbf)) || (iat->kind != CV_ABSENT && !number_ok(iat))) {
        return TESS_EBADFMT;
    }
    if (uid->kind == CV_NUMBER) {
        double v = uid->num;
        if (!number_ok(uid) || (double)floor_i64(v) != v) {
            return TESS_EBADFMT;
        }
        tess_i64_decimal((int64_t)v, claims->user_id); /* once per verify: not through printf */
    } else if ((rc = copy_string_claim(uid, claims->user_id, sizeof(claims->user_id), 1)) != TESS_OK) {
        return rc;
    }
    if ((rc = copy_string_claim(role, claims->role, sizeof(claims->role), 0)) != TESS_OK ||
        (rc = copy_string_claim(jti, claims->jti, sizeof(claims->jti), 0)) != TESS_OK) {
        return rc;
    }
    claims->exp = floor_i64(exp->num);
    claims->iat = iat->kind != CV_ABSENT ? floor_i64(iat->num) : 0;
    claims->nbf = nbf->kind != CV_ABSENT ? floor_i64(nbf->num) : 0;

    /* jsonwebtoken's comparisons, in doubles as there: exp fails at now >= exp + leeway */
    if (nbf->kind != CV_ABSENT && nbf->num > now + leeway) {
        return TESS_EEXPIRED;
    }
    if (now >= exp->num + leeway) {
        return TESS_EEXPIRED;
    }
    if (iat->kind != CV_ABSENT && iat->num > now + leeway) {
        return TESS_EEXPIRED; /* issued in the future: not yet valid, like nbf (jsonwebtoken skips this) */
    }
    return TESS_OK;
}

/* Which of the six claims `name` is (the first that matches, as the cJSON loop), or -1. */
static int claim_index(const char *const names[C_COUNT], const char *name, size_t len)
{
    for (int k = 0; k < C_COUNT; k++) {
        if (strlen(names[k]) == len && memcmp(names[k], name, len) == 0) {
            return k;
        }
    }
    return -1;
}

int tess__claims_check(const char *user_claim, const char *role_claim, int64_t leeway_s, const cJSON *root,
                       int64_t now_s, tess_jwt_claims_t *claims)
{
    const char *const names[C_COUNT] = {user_claim, role_claim, "jti", "iat", "exp", "nbf"};
    claim_val_t found[C_COUNT] = {{0}};
    int dup = 0;

    /* one pass over the members (strcmp against six names dominated the lookups otherwise) */
    for (const cJSON *it = root->child; it != NULL; it = it->next) {
        int k = it->string != NULL ? claim_index(names, it->string, strlen(it->string)) : -1;
        if (k < 0) {
            continue;
        }
        dup |= found[k].kind != CV_ABSENT;
        if (cJSON_IsString(it) && it->valuestring != NULL) {
            found[k] = (claim_val_t){CV_STRING, it->valuestring, strlen(it->valuestring), 0};
        } else if (cJSON_IsNumber(it)) {
            found[k] = (claim_val_t){CV_NUMBER, NULL, 0, it->valuedouble};
        } else {
            found[k] = (claim_val_t){CV_OTHER, NULL, 0, 0};
        }
    }
    return claims_apply(found, dup, leeway_s, now_s, claims);
}

/* ---- the flat reader -------------------------------------------------------------------------------- */

/*
 * The claims of the documents JSON.stringify writes, read in place: one object of strings without escapes or
 * control bytes, strict JSON numbers, true/false/null, JSON's blanks. Anything else (an escape, a nested
 * value, a number over 63 characters, a byte cJSON would take and JSON.parse not) returns 0 and cJSON reads
 * the document as before, so the two readers never differ (fuzz_jwt compares them on every input). No
 * allocation: cJSON's tree was two thirds of a verify.
 */
static int flat_ws(const char **p, const char *end)
{
    while (*p < end && is_json_ws(**p)) {
        (*p)++;
    }
    return *p < end;
}

/* A string at *p ('"'): its bytes, or 0 (escape, control byte, unterminated). */
static int flat_string(const char **p, const char *end, const char **str, size_t *len)
{
    const char *q = *p + 1;
    *str = q;
    while (q < end && *q != '"') {
        if (*q == '\\' || (unsigned char)*q < 0x20) {
            return 0;
        }
        q++;
    }
    if (q == end) {
        return 0;
    }
    *len = (size_t)(q - *str);
    *p = q + 1;
    return 1;
}

/* A strict JSON number at *p, as strtod reads it (cJSON's reading of the same text), or 0. */
static int flat_number(const char **p, const char *end, double *out)
{
    const char *q = *p;
    char tmp[64];

    if (q < end && *q == '-') {
        q++;
    }
    if (q == end || !isdigit((unsigned char)*q)) {
        return 0;
    }
    if (*q == '0') {
        q++;
    } else {
        while (q < end && isdigit((unsigned char)*q)) {
            q++;
        }
    }
    if (q - *p - (**p == '-') <= 15 && (q == end || (*q != '.' && *q != 'e' && *q != 'E'))) {
        /* an integer of at most 15 digits is exact in a double, so it is what strtod would make of it */
        int neg = **p == '-';
        uint64_t v = 0;
        for (const char *d = *p + neg; d < q; d++) {
            v = v * 10 + (uint64_t)(*d - '0');
        }
        *out = neg ? -(double)v : (double)v;
        *p = q;
        return 1;
    }
    if (q < end && *q == '.') {
        if (++q == end || !isdigit((unsigned char)*q)) {
            return 0;
        }
        while (q < end && isdigit((unsigned char)*q)) {
            q++;
        }
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        if (++q < end && (*q == '+' || *q == '-')) {
            q++;
        }
        if (q == end || !isdigit((unsigned char)*q)) {
            return 0;
        }
        while (q < end && isdigit((unsigned char)*q)) {
            q++;
        }
    }
    if ((size_t)(q - *p) >= sizeof(tmp)) {
        return 0;
    }
    memcpy(tmp, *p, (size_t)(q - *p));
    tmp[q - *p] = '\0';
    *out = strtod(tmp, NULL);
    *p = q;
    return 1;
}

static int flat_literal(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0) {
        return 0;
    }
    *p += n;
    return 1;
}

/* 1 with the six claims read from buf[0..n), or 0: the document is cJSON's to read. */
static int flat_claims(const char *buf, size_t n, const char *const names[C_COUNT], claim_val_t found[C_COUNT],
                       int *dup)
{
    const char *p = buf, *end = buf + n;

    if (!flat_ws(&p, end) || *p++ != '{' || !flat_ws(&p, end)) {
        return 0;
    }
    if (*p == '}') {
        p++;
    } else {
        for (;;) {
            const char *name, *str = NULL;
            size_t name_len, len = 0;
            claim_val_t v = {CV_OTHER, NULL, 0, 0};
            int k;

            if (*p != '"' || !flat_string(&p, end, &name, &name_len) || !flat_ws(&p, end) || *p++ != ':' ||
                !flat_ws(&p, end)) {
                return 0;
            }
            if (*p == '"') {
                if (!flat_string(&p, end, &str, &len)) {
                    return 0;
                }
                v = (claim_val_t){CV_STRING, str, len, 0};
            } else if (*p == '-' || isdigit((unsigned char)*p)) {
                v.kind = CV_NUMBER;
                if (!flat_number(&p, end, &v.num)) {
                    return 0;
                }
            } else if (!flat_literal(&p, end, "true") && !flat_literal(&p, end, "false") &&
                       !flat_literal(&p, end, "null")) {
                return 0; /* a nested value, or not JSON */
            }
            if ((k = claim_index(names, name, name_len)) >= 0) {
                *dup |= found[k].kind != CV_ABSENT;
                found[k] = v;
            }
            if (!flat_ws(&p, end)) {
                return 0;
            }
            if (*p == '}') {
                p++;
                break;
            }
            if (*p++ != ',' || !flat_ws(&p, end)) {
                return 0;
            }
        }
    }
    while (p < end && is_json_ws(*p)) {
        p++;
    }
    return p == end;
}

int tess__claims_read_cjson(const char *user_claim, const char *role_claim, int64_t leeway_s, const char *buf, size_t n,
                            int64_t now_s, tess_jwt_claims_t *claims)
{
    cJSON *root = tess__json_object(buf, n);
    int rc;

    if (root == NULL) {
        return TESS_EBADFMT;
    }
    rc = tess__claims_check(user_claim, role_claim, leeway_s, root, now_s, claims);
    cJSON_Delete(root);
    return rc;
}

int tess__claims_read(const char *user_claim, const char *role_claim, int64_t leeway_s, const char *buf, size_t n,
                      int64_t now_s, tess_jwt_claims_t *claims)
{
    const char *const names[C_COUNT] = {user_claim, role_claim, "jti", "iat", "exp", "nbf"};
    claim_val_t found[C_COUNT] = {{0}};
    int dup = 0;

    if (flat_claims(buf, n, names, found, &dup)) {
        return claims_apply(found, dup, leeway_s, now_s, claims);
    }
    return tess__claims_read_cjson(user_claim, role_claim, leeway_s, buf, n, now_s, claims);
}

int tess_jwt_verify(tess_jwt_t *jwt, tess_str_t token, int64_t now_s, tess_jwt_claims_t *claims)
{
    uint8_t sig[TESS__HMAC_LEN];
    uint8_t mac[TESS__HMAC_LEN];
    size_t sig_n = 0, n = 0;
    int rc;

    if (claims != NULL) {
        memset(claims, 0, sizeof(*claims));
    }
    if (jwt == NULL || claims == NULL) {
        return TESS_EINVAL;
    }
    if (token.len > jwt->max_token_len) {
        return TESS_ETOOBIG;
    }
    if (token.len == 0 || token.ptr == NULL) {
        return TESS_EBADFMT;
    }
    const char *p = token.ptr, *end = token.ptr + token.len;
    const char *d1 = memchr(p, '.', token.len);
    const char *d2 = d1 != NULL ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL || d1 == p || d2 == d1 + 1) {
        return TESS_EBADFMT;
    }
    rc = check_header(jwt, tess_strn(p, (size_t)(d1 - p)));
    if (rc != TESS_OK) {
        return rc;
    }
    if (tess_base64url_decode(tess_strn(d2 + 1, (size_t)(end - d2 - 1)), sig, sizeof(sig), &sig_n) != TESS_OK ||
        sig_n != sizeof(sig)) {
        return TESS_EBADSIG; /* empty, short, long or non-canonical: no secret produces it */
    }
    rc = TESS_EBADSIG;
    for (size_t i = 0; i < tess_secrets_count(jwt->secrets); i++) {
        int hrc = tess__secrets_hmac(jwt->secrets, i, p, (size_t)(d2 - p), mac);
        if (hrc != TESS_OK) {
            return hrc;
        }
        if (CRYPTO_memcmp(mac, sig, sizeof(mac)) == 0) {
            rc = TESS_OK;
            break; /* which secret matched is no secret */
        }
    }
    if (rc != TESS_OK) {
        return rc;
    }
    if (tess_base64url_decode(tess_strn(d1 + 1, (size_t)(d2 - d1 - 1)), (uint8_t *)jwt->buf, jwt->max_token_len, &n) !=
        TESS_OK) {
        return TESS_EBADFMT;
    }
    jwt->buf[n] = '\0';
    rc = tess__claims_read(jwt->user_claim, jwt->role_claim, jwt->leeway_s, jwt->buf, n, now_s, claims);
    if (rc != TESS_OK) {
        memset(claims, 0, sizeof(*claims));
    }
    return rc;
}

int64_t tess_jwt_leeway_s(const tess_jwt_t *jwt)
{
    return jwt->leeway_s;
}

int tess_jwt_token_digest(tess_jwt_t *jwt, tess_str_t token, char *out, size_t cap)
{
    uint8_t md[32];
    size_t plen = sizeof(TESS_JWT_DIGEST_PREFIX) - 1;

    if (cap > 0) {
        out[0] = '\0';
    }
    if (cap < TESS_JWT_TOKEN_ID_MAX + 1) {
        return TESS_ENOSPACE;
    }
    /* the low-level one-shot: no algorithm fetch nor allocation per digest (OpenSSL 3) */
    (void)jwt;
    SHA256((const unsigned char *)token.ptr, token.len, md);
    memcpy(out, TESS_JWT_DIGEST_PREFIX, plen);
    out[plen + tess_base64url_encode(md, sizeof(md), out + plen)] = '\0';
    return TESS_OK;
}
