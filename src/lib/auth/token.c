/*
 * A token in the cookie, nothing stored: the jwt strategy. The token is an HS256 JWT (jsonwebtoken), or with
 * cfg.jwe a NextAuth / Auth.js JWE (tessera/jwe.h): the same claims, the same revocation. The session is the token: its
 * id is the jti, or for a token without one (jwt.sign({ userId }, ...)) the digest of the whole token. A check costs a
 * signature verification and, with a revoker, one deny-list / cut-off lookup (from memory without Redis).
 * Logging out puts the id on the revoker's deny list until the token can no longer be accepted (exp plus the
 * leeway); logging a user out everywhere is the revoker's per-user cut-off (by iat). Without a revoker
 * neither is possible: a token stays valid until it expires, only the browser forgets it.
 */
#include <stddef.h>
#include <string.h>

#include "auth/strategy.h"
#include "identity.h"
#include "tessera/error.h"

#define COOKIE_NAME "session-token"

static int token_validate(const tess_auth_config_t *cfg)
{
    return cfg->jwt != NULL || cfg->jwe != NULL ? 0 : TESS_EINVAL;
}

/* The configured format's verify, login signing and token digest. */
static int token_read(tess_auth_t *auth, tess_str_t token, int64_t now_s, tess_jwt_claims_t *claims)
{
    if (auth->cfg.jwe != NULL)
        return tess_jwe_decrypt(auth->cfg.jwe, token, now_s, claims);
    return tess_jwt_verify(auth->cfg.jwt, token, now_s, claims);
}

static int token_write(tess_auth_t *auth, const tess_jwt_claims_t *claims, char *out, size_t cap, size_t *len)
{
    if (auth->cfg.jwe != NULL)
        return tess_jwe_encrypt(auth->cfg.jwe, claims, out, cap, len);
    return tess_jwt_sign(auth->cfg.jwt, claims, out, cap, len);
}

static int token_digest(tess_auth_t *auth, tess_str_t token, char *out, size_t cap)
{
    if (auth->cfg.jwe != NULL)
        return tess_jwe_token_digest(auth->cfg.jwe, token, out, cap);
    return tess_jwt_token_digest(auth->cfg.jwt, token, out, cap);
}

/* ---- check -------------------------------------------------------------------------------------------- */

static void on_revocation(void *arg, int rc)
{
    tess__op_t *op = arg;
    if (rc == 0)
        tess__op_done(op, 0, &op->sess, tess__no_cookie);
    else
        tess__op_done(op, rc == TESS_EREVOKED ? TESS_EDENIED : rc, NULL, tess__no_cookie);
}

static void token_check(tess_auth_t *auth, tess_str_t token, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    tess_jwt_claims_t claims;
    tess_session_t s;
    tess__op_t *op;
    int rc = token_read(auth, token, now_ms / 1000, &claims);

    if (rc != 0) {
        if (rc != TESS_EEXPIRED)
            tess__count(&auth->stats.rejected_early);
        cb(arg, TESS_EDENIED, NULL, tess__no_cookie);
        return;
    }
    if (!tess_session_identity_valid(tess_str(claims.user_id), tess_str(claims.role))) {
        /* Signed, but its identity could not be passed on safely (a header line break, a blank): refused. */
        tess__identity_refused("a token");
        tess__count(&auth->stats.rejected_early);
        cb(arg, TESS_EDENIED, NULL, tess__no_cookie);
        return;
    }
    memset(&s, 0, sizeof(s));
    /* The session is the token: its id is the jti, else its digest (both bounded well under TESS_SID_MAX). */
    if (claims.jti[0] != '\0') {
        memcpy(s.id, claims.jti, strlen(claims.jti) + 1);
    } else if ((rc = token_digest(auth, token, s.id, sizeof(s.id))) != 0) {
        cb(arg, rc, NULL, tess__no_cookie);
        return;
    }
    memcpy(s.user_id, claims.user_id, strlen(claims.user_id) + 1);
    memcpy(s.role, claims.role, strlen(claims.role) + 1);
    s.created_ms = claims.iat * 1000;
    s.absolute_expires_ms = s.expires_ms = claims.exp * 1000;
    if (auth->cfg.revoker == NULL) {
        cb(arg, 0, &s, tess__no_cookie);
        return;
    }
    /* Signed and unexpired; now: logged out (deny list) or cut off (log out everywhere)? */
    if ((op = tess__op_new(auth, 0, cb, arg, now_ms)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, tess__no_cookie);
        return;
    }
    op->sess = s;
    tess_revoker_check(auth->cfg.revoker, tess_str(op->sess.id), tess_str(op->sess.user_id), claims.iat, now_ms,
                       on_revocation, op);
}

/* ---- login -------------------------------------------------------------------------------------------- */

static void token_login(tess__op_t *op)
{
    tess_session_t *s = &op->sess;
    tess_jwt_claims_t claims;
    char token[TESS_TOKEN_MAX + 1];
    size_t len = 0;
    int rc;

    memset(&claims, 0, sizeof(claims));
    memcpy(claims.user_id, s->user_id, strlen(s->user_id) + 1);
    memcpy(claims.role, s->role, strlen(s->role) + 1);
    memcpy(claims.jti, s->id, strlen(s->id) + 1); /* the fresh session id doubles as the jti */
    claims.iat = s->created_ms / 1000;
    claims.exp = claims.iat + op->auth->cfg.policy.ttl_s;
    if ((rc = token_write(op->auth, &claims, token, sizeof(token), &len)) != 0) {
        tess__op_done(op, rc, NULL, tess__no_cookie);
        return;
    }
    /* A token cannot slide: its whole life is the absolute lifetime. */
    s->created_ms = claims.iat * 1000;
    s->absolute_expires_ms = s->expires_ms = claims.exp * 1000;
    tess__op_done(op, 0, s, tess_strn(token, len));
}

/* ---- logout ------------------------------------------------------------------------------------------- */

/*
 * With the session and a revoker: its id on the deny list until the token can no longer be accepted (exp +
 * leeway, and a second for the clocks of other instances). Otherwise nothing.
 */
static void token_logout(tess_auth_t *auth, tess_str_t sid, const tess_session_t *s, tess_auth_cb cb, void *arg)
{
    tess__op_t *op;

    (void)sid;
    if (s == NULL || auth->cfg.revoker == NULL) {
        cb(arg, 0, NULL, tess__no_cookie); /* nothing stored, nothing to revoke with: the browser drops the cookie */
        return;
    }
    if ((op = tess__op_new(auth, 0, cb, arg, 0)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, tess__no_cookie);
        return;
    }
    tess_revoker_deny(auth->cfg.revoker, tess_str(s->id), s->expires_ms + (tess__auth_leeway_s(auth) + 1) * 1000,
                      tess__op_done_rc, op);
}

/* Nothing stored to destroy: the cut-off alone (with a revoker). */
static void token_everywhere(tess__op_t *op)
{
    tess__op_cut_off(op);
}

const tess__strategy_t tess__strategy_jwt = {
    .name = "jwt",
    .id = TESS_STRATEGY_JWT,
    .cookie_name = {COOKIE_NAME, sizeof(COOKIE_NAME) - 1},
    .keeps_sessions = 0,
    .uses_cache = 0,
    .reads_jwe = 1,
    .validate = token_validate,
    .check = token_check,
    .login = token_login,
    .logout = token_logout,
    .everywhere = token_everywhere,
};
