/*
 * NextAuth v4 and Auth.js v5 JWT sessions: encrypted JWTs (JWE compact serialization, RFC 7516), as
 * `next-auth/jwt` and `@auth/core/jwt` encode and decode them, and the session formats that name them.
 *
 *   format     header                                       key (HKDF-SHA256 of each secret)                 cookie
 *   nextauth   {"alg":"dir","enc":"A256GCM"}                salt "", info "NextAuth.js Generated Encryption
 * next-auth.session-token Key", 32 bytes authjs     {"alg":"dir","enc":"A256CBC-HS512","kid":T}  salt = the cookie
 * name, info "Auth.js Generated    authjs.session-token Encryption Key (<cookie name>)", 64 bytes
 *
 * T is the key's JWK thumbprint (RFC 7638, SHA-512), as @auth/core writes it. Over https the cookies carry the
 * `__Secure-` prefix (and Auth.js's salt with it). A secret list rotates as for signed cookies: the first
 * encrypts, all decrypt. `alg` and `enc` are pinned per format; every other header member is refused but `kid`
 * (Auth.js: it must name one of the secrets' keys) and `typ` "JWT": no `zip`, `crit`, `cty`.
 *
 * Claims are the HS256 tokens' (tessera/jwt.h): the user id from `sub` by default (NextAuth's user id), `role`,
 * `iat`, `exp` (required), `nbf`, `jti`; other claims (name, email, picture, the app's own) are allowed and not
 * read. NextAuth's clock tolerance, 15 s, is the default leeway.
 *
 * Keys (and Auth.js's thumbprints) are derived once, in tess_jwe_new(), with OpenSSL's HKDF; the cipher and
 * MAC contexts are reused. A tess_jwe_t is NOT thread-safe: make one per thread (event loop). The secret list
 * is only read while the tess_jwe_t is made and may be freed afterwards.
 */
#ifndef TESSERA_JWE_H
#define TESSERA_JWE_H

#include "tessera/common.h"
#include "tessera/cookie.h"
#include "tessera/jwt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a session looks like, whatever holds it (SESSION_FORMAT). */
typedef enum tess_session_format {
    TESS_FORMAT_EXPRESS = 0, /* express-session cookies, jsonwebtoken HS256 tokens */
    TESS_FORMAT_NEXTAUTH,    /* NextAuth v4: JWE A256GCM */
    TESS_FORMAT_AUTHJS,      /* Auth.js v5 (@auth/core): JWE A256CBC-HS512 */
} tess_session_format_t;

/*
 * "express", "nextauth", "authjs" -> format: 0 or TESS_EINVAL. tess_session_format_name() returns the name, or
 * "unknown". Both read constant tables: safe from any thread.
 */
TESS_API int tess_session_format_parse(tess_str_t name, tess_session_format_t *out);
TESS_API const char *tess_session_format_name(tess_session_format_t f);

/*
 * The session cookie's name for a JWE format as NextAuth / Auth.js choose it: "next-auth.session-token" /
 * "authjs.session-token", with "__Secure-" in front when `secure` (an https site, production). NULL for
 * express (the strategy's own name applies).
 */
TESS_API const char *tess_jwe_cookie_default(tess_session_format_t f, int secure);

/* Default bound on a token, bytes: a cookie split into chunks (tess_cookie_find_chunked()) may exceed 4 KB. */
#define TESS_JWE_TOKEN_MAX 16384
/* NextAuth's and Auth.js's clock tolerance (jwtDecrypt clockTolerance), seconds. */
#define TESS_JWE_LEEWAY_DEFAULT 15

typedef struct tess_jwe tess_jwe_t;

typedef struct tess_jwe_opts {
    tess_session_format_t format; /* TESS_FORMAT_NEXTAUTH or TESS_FORMAT_AUTHJS */
    const char *cookie_name;      /* the session cookie (Auth.js's salt); NULL or "": the format's default; copied */
    int64_t leeway_s;             /* tolerance for exp / nbf / iat, seconds (< 0: TESS_JWE_LEEWAY_DEFAULT) */
    size_t max_token_len;         /* reject longer tokens (0: TESS_JWE_TOKEN_MAX) */
    const char *user_claim;       /* the user id claim (NULL or "": "sub"); copied */
    const char *role_claim;       /* the role claim (NULL or "": "role"); copied */
} tess_jwe_opts_t;

/*
 * A decrypter / encrypter over `secrets` (the first encrypts, all decrypt). Returns 0; TESS_EINVAL (no
 * secrets, the express format, a cookie name over 63 bytes or not a cookie token, claim names as
 * tess_jwt_new() refuses them); TESS_ENOMEM; TESS_EIO (OpenSSL could not derive a key).
 */
TESS_API int tess_jwe_new(tess_jwe_t **out, const tess_secrets_t *secrets, const tess_jwe_opts_t *opts);
TESS_API void tess_jwe_free(tess_jwe_t *jwe);

/*
 * Encrypts `claims` (tess_jwt_sign()'s rules: user id and exp required, {user, role, iat, nbf, exp, jti}) with
 * the first secret's key and a fresh random IV, as the format's encode() does. Writes a NUL-terminated compact
 * token. Returns 0, TESS_EINVAL, TESS_ENOSPACE, TESS_EIO.
 */
TESS_API int tess_jwe_encrypt(tess_jwe_t *jwe, const tess_jwt_claims_t *claims, char *out, size_t cap, size_t *outlen);

/*
 * Decrypts and checks `token` at wall-clock `now_s`. Order: size bound; five parts (the second, the
 * encrypted key, empty for "dir"); the header (base64url, JSON, alg and enc pinned, members as above); IV and
 * tag lengths of the enc; then each secret's key (only the one `kid` names, when it names one) until the tag
 * verifies (constant-time; GCM's tag, or HMAC-SHA512 truncated to 32 bytes before any AES-CBC); only then the
 * claims are parsed (tess_jwt_verify()'s rules with this leeway).
 * Returns 0 with `*claims` filled; TESS_ETOOBIG; TESS_EBADFMT (shape, base64url, JSON, header members, claim
 * types); TESS_EBADSIG (alg / enc not the format's, a kid no secret has, no key verifies the tag);
 * TESS_EEXPIRED (expired, not yet valid). `*claims` is zeroed on every error.
 */
TESS_API int tess_jwe_decrypt(tess_jwe_t *jwe, tess_str_t token, int64_t now_s, tess_jwt_claims_t *claims);

/* The leeway, seconds: whatever revokes a token must be kept until exp + leeway. */
TESS_API int64_t tess_jwe_leeway_s(const tess_jwe_t *jwe);
/* The format, and the cookie name in use (borrowed from `jwe`). */
TESS_API tess_session_format_t tess_jwe_format(const tess_jwe_t *jwe);
TESS_API tess_str_t tess_jwe_cookie_name(const tess_jwe_t *jwe);
/* Longest token this tess_jwe_t accepts, bytes. */
TESS_API size_t tess_jwe_max_token_len(const tess_jwe_t *jwe);

/*
 * The id of a token without a jti, as tess_jwt_token_digest(): TESS_JWT_DIGEST_PREFIX + base64url(SHA-256 of
 * the compact token), NUL-terminated (cap >= TESS_JWT_TOKEN_ID_MAX + 1). Returns 0, TESS_ENOSPACE, TESS_ENOMEM.
 */
TESS_API int tess_jwe_token_digest(tess_jwe_t *jwe, tess_str_t token, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
