/*
 * HS256 JSON Web Tokens, compatible with jsonwebtoken:
 *   header {"alg":"HS256","typ":"JWT"}; claims {userId, role, iat, exp, jti[, nbf]}.
 * The user and role claims' names are configurable (e.g. "sub"); jti and role are optional: the note's own
 * token, jwt.sign({ userId }, secret, { expiresIn: '30d' }), carries neither.
 * `alg` is pinned: any other algorithm, "none" included, is rejected before the signature is looked at.
 *
 * HS256 is written here over OpenSSL's HMAC (not libjwt) because the HMAC key is set up once per
 * verifier and reused: 0.55 µs against 4 µs per verify, and claims are validated too.
 *
 * A tess_jwt_t holds an HMAC work context and a decode buffer: it is NOT thread-safe. Make one per thread
 * (per event loop). The keyed HMAC states themselves live in the (shared, read-only) tess_secrets_t.
 */
#ifndef TESSERA_JWT_H
#define TESSERA_JWT_H

#include "tessera/common.h"
#include "tessera/cookie.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tess_jwt tess_jwt_t;

typedef struct tess_jwt_opts {
    int64_t leeway_s;       /* tolerance for exp / nbf / iat-in-the-future, seconds (default 30 when < 0) */
    size_t max_token_len;   /* reject longer tokens (0: TESS_TOKEN_MAX) */
    const char *user_claim; /* name of the user id claim (NULL or "": "userId"); copied */
    const char *role_claim; /* name of the role claim (NULL or "": "role"); copied */
} tess_jwt_opts_t;

/* Longest configurable claim name, bytes. */
#define TESS_JWT_CLAIM_NAME_MAX 64
/* A token's id when it carries no jti: "sha256:" + base64url(SHA-256 of the compact token), 50 bytes. */
#define TESS_JWT_DIGEST_PREFIX "sha256:"
#define TESS_JWT_TOKEN_ID_MAX (sizeof(TESS_JWT_DIGEST_PREFIX) - 1 + 43)

typedef struct tess_jwt_claims {
    char user_id[TESS_USER_ID_MAX + 1]; /* the user claim ("userId"): string, or integer rendered in decimal */
    char role[TESS_ROLE_MAX + 1];       /* the role claim ("role"), "" when absent */
    char jti[TESS_JTI_MAX + 1];         /* "jti", "" when absent */
    int64_t iat;                        /* issued at, seconds since the epoch */
    int64_t exp;                        /* expiry, seconds since the epoch; required */
    int64_t nbf;                        /* not before, seconds; 0 when absent */
} tess_jwt_claims_t;

/*
 * A verifier/signer over a secret list (the first signs, all verify). The list is borrowed and must
 * outlive the tess_jwt_t. `opts` may be NULL. Returns 0, TESS_EINVAL (also for a claim name that is empty
 * after defaults, longer than TESS_JWT_CLAIM_NAME_MAX, not printable ASCII, holding a blank, '"' or '\\', one of
 * iat/exp/nbf/jti, or the same for user and role), TESS_ENOMEM.
 */
TESS_API int tess_jwt_new(tess_jwt_t **out, const tess_secrets_t *secrets, const tess_jwt_opts_t *opts);
TESS_API void tess_jwt_free(tess_jwt_t *jwt);

/*
 * Signs `claims` (exp and user_id required; iat as given; jti and role emitted when non-empty; nbf when
 * non-zero). Writes a NUL-terminated compact token to `out`. Returns 0, TESS_EINVAL, TESS_ENOSPACE.
 * Claims are written {userId, role, iat, nbf, exp, jti} (under the configured user and role claim names),
 * as jsonwebtoken orders them; userId is always a JSON string. TESS_EINVAL also for a field without NUL, invalid UTF-8,
 * or times outside 0..2^53-1.
 */
TESS_API int tess_jwt_sign(tess_jwt_t *jwt, const tess_jwt_claims_t *claims, char *out, size_t cap, size_t *outlen);

/*
 * Verifies `token` at wall-clock `now_s`: size bound, three base64url parts, header with alg exactly
 * "HS256" (typ, when present, "JWT"), signature under any secret (constant time), then claims:
 * exp required and > now - leeway; nbf (when present) <= now + leeway; userId required.
 * Returns 0 with `*claims` filled; TESS_ETOOBIG; TESS_EBADFMT; TESS_EBADSIG (alg not HS256 or no
 * secret verifies); TESS_EEXPIRED (exp passed or nbf not reached).
 * Details: the payload is parsed only after the signature verifies. Times compare as jsonwebtoken does
 * (expired when now >= exp + leeway; not yet valid when nbf > now + leeway) and, beyond it, iat > now +
 * leeway is TESS_EEXPIRED too. Claims must be a JSON object with nothing after it; exp/nbf/iat numbers
 * within ±2^53 (fractions floored into `claims`); userId a non-empty string or an integer; role/jti
 * strings; a repeated claim or header member is TESS_EBADFMT; a string longer than its field is
 * TESS_ETOOBIG. A header other than jsonwebtoken's exact one is decoded and may carry more members
 * (kid...) but no "crit". `*claims` is zeroed on every error.
 */
TESS_API int tess_jwt_verify(tess_jwt_t *jwt, tess_str_t token, int64_t now_s, tess_jwt_claims_t *claims);

/*
 * The verifier's leeway, seconds: a token is accepted until exp + leeway, so whatever revokes it must be
 * kept at least that long.
 */
TESS_API int64_t tess_jwt_leeway_s(const tess_jwt_t *jwt);

/*
 * Writes the id of a token without a jti: TESS_JWT_DIGEST_PREFIX + base64url(SHA-256(token)), NUL-terminated
 * (`cap` >= TESS_JWT_TOKEN_ID_MAX + 1). Two tokens share it only when they are the same string. Returns 0,
 * TESS_ENOSPACE, TESS_ENOMEM. Uses the verifier's digest context: same thread rules as verify.
 */
TESS_API int tess_jwt_token_digest(tess_jwt_t *jwt, tess_str_t token, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
