/*
 * Internal: the claims of a session token, shared by the HS256 signer (jwt.c) and the NextAuth / Auth.js JWE
 * (jwe.c): one writer and one reader, so both formats apply the same rules to the same fields.
 */
#ifndef TESSERA_CLAIMS_INTERNAL_H
#define TESSERA_CLAIMS_INTERNAL_H

#include <cjson/cJSON.h>

#include "tessera/jwt.h"

/* Largest claims document tess__claims_json() writes: three strings, each at worst \u00XX per byte. */
#define TESS__CLAIMS_JSON_MAX                                                                                          \
    (6 * (TESS_USER_ID_MAX + TESS_ROLE_MAX + TESS_JTI_MAX) + 2 * TESS_JWT_CLAIM_NAME_MAX + 160)

/*
 * 1 when `name` can be written raw into JSON and names none of the registered claims read here (iat, exp, nbf,
 * jti): 1..TESS_JWT_CLAIM_NAME_MAX printable ASCII bytes without blank, '"' or '\\'.
 */
int tess__claim_name_ok(const char *name);

/*
 * Writes `claims` as {user, role, iat, nbf, exp, jti} (role and jti when non-empty, nbf when non-zero) into
 * `json` (TESS__CLAIMS_JSON_MAX bytes), NUL-terminated. Returns the length, or TESS_EINVAL (user id empty, a
 * field without NUL or not UTF-8, times outside 0..2^53-1).
 */
long tess__claims_json(const char *user_claim, const char *role_claim, const tess_jwt_claims_t *claims, char *json);

/*
 * Parses buf[0..n) as one JSON object as JSON.parse would accept it (no BOM, no NUL byte, nothing after the
 * value). Returns the object (cJSON_Delete) or NULL.
 */
cJSON *tess__json_object(const char *buf, size_t n);

/*
 * Reads and checks the claims of `root` at `now_s` (tess_jwt_verify()'s rules: exp required, times within
 * ±2^53, expired when now >= exp + leeway, nbf / iat after now + leeway, user id a non-empty string or an
 * integer, no repeated claim). Returns 0, TESS_EBADFMT, TESS_ETOOBIG or TESS_EEXPIRED; `claims` is filled as
 * far as it got (the caller zeroes it on error).
 */
int tess__claims_check(const char *user_claim, const char *role_claim, int64_t leeway_s, const cJSON *root,
                       int64_t now_s, tess_jwt_claims_t *claims);

/*
 * Reads the claims of buf[0..n) (a JSON object text, any bytes; the caller's buffer holds a NUL after them
 * or not) and checks them as tess__claims_check(). Documents as JSON.stringify writes them are read in
 * place without allocating; any other goes through tess__json_object() and cJSON, with the same result.
 */
int tess__claims_read(const char *user_claim, const char *role_claim, int64_t leeway_s, const char *buf, size_t n,
                      int64_t now_s, tess_jwt_claims_t *claims);
/* tess__claims_read through cJSON only (the reference the flat reader is compared with). */
int tess__claims_read_cjson(const char *user_claim, const char *role_claim, int64_t leeway_s, const char *buf, size_t n,
                            int64_t now_s, tess_jwt_claims_t *claims);

#endif
