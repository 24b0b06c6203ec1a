/*
 * Migration (SESSION_FALLBACK): a tess_auth_t with a `fallback` asks it about every request its own strategy
 * refuses (no session; never an outage, which fails closed), so sessions of the strategy being moved away
 * from keep working until they expire. A session found there is copied forward into this strategy's store
 * when both keep sessions in stores (same id, same cookie: the next request is answered here).
 *
 * Logging out during a migration ends the session (or the user) in both strategies: it may live in either,
 * and one left in the fallback would be found there again (and copied forward) by the next check.
 */
#include <stddef.h>
#include <string.h>

#include "auth/strategy.h"
#include "tessera/error.h"

/* ---- check -------------------------------------------------------------------------------------------- */

/* The copy is in the primary store: answer now, so the next request is sure to find it there. */
static void on_copied_forward(void *arg, int rc, const tess_session_t *unused)
{
    tess__op_t *op = arg;
    (void)unused;
    if (rc == 0)
        tess__count(&op->auth->stats.copied_forward);
    tess__op_done(op, 0, &op->sess, tess__no_cookie); /* a failed copy costs the next request a fallback check */
}

static void on_fallback(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    tess__op_t *op = arg;
    tess_auth_t *auth = op->auth;
    (void)cookie;
    if (rc == 0 && s != NULL && tess_auth_keeps_sessions(auth) && tess_auth_keeps_sessions(auth->cfg.fallback) &&
        !auth->released && tess_session_copy(&op->sess, s) == 0) {
        /* Copy forward: the same id under the same signed cookie is found here from now on. */
        if (tess_store_set(auth->cfg.store, &op->sess, on_copied_forward, op) == 0)
            return; /* on_copied_forward answers */
    }
    tess__op_done(op, rc, s, tess__no_cookie);
}

static void on_primary(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    tess__op_t *op = arg;
    (void)cookie;
    if (rc != TESS_EDENIED) {
        tess__op_done(op, rc, s, tess__no_cookie);
        return;
    }
    tess__count(&op->auth->stats.fallback_checks);
    tess_auth_check(op->auth->cfg.fallback, tess_strn(op->buf, op->len), op->now_ms, on_fallback, op);
}

void tess__migrate_check(tess_auth_t *auth, tess_str_t cookie_header, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    tess__op_t *op;

    /* The Cookie header is copied: the primary may answer later, and the fallback is asked after it. */
    if ((op = tess__op_new(auth, cookie_header.len, cb, arg, now_ms)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, tess__no_cookie);
        return;
    }
    op->len = cookie_header.len;
    if (cookie_header.len > 0)
        memcpy(op->buf, cookie_header.ptr, cookie_header.len);
    tess__auth_check_alone(auth, tess_strn(op->buf, op->len), now_ms, on_primary, op);
}

/* ---- logout ------------------------------------------------------------------------------------------- */

static void chain_done(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    tess__op_t *op = arg;
    (void)s;
    (void)cookie;
    /* Both must have happened: the first error (other than "not there") wins. */
    if (op->rc == 0 || op->rc == TESS_ENOTFOUND)
        op->rc = rc == TESS_ENOTFOUND ? 0 : rc;
    tess__op_done(op, op->rc, NULL, tess__no_cookie);
}

static void chain_primary_done(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    tess__op_t *op = arg;
    tess_auth_t *fallback = op->auth->cfg.fallback;
    (void)s;
    (void)cookie;
    op->rc = rc;
    if (op->everywhere)
        tess__auth_everywhere_alone(fallback, tess_strn(op->key, op->key_len), op->now_ms, chain_done, op);
    else
        tess__auth_logout_alone(fallback, &op->sess, chain_done, op);
}

void tess__migrate_logout(tess_auth_t *auth, const tess_session_t *s, tess_str_t user_id, int64_t now_ms,
                          tess_auth_cb cb, void *arg)
{
    tess__op_t *op;

    if ((op = tess__op_new(auth, 0, cb, arg, now_ms)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, tess__no_cookie);
        return;
    }
    if (s != NULL && tess_session_copy(&op->sess, s) != 0) {
        tess__op_done(op, TESS_ENOMEM, NULL, tess__no_cookie);
        return;
    }
    op->everywhere = s == NULL;
    tess__op_key(op, user_id);
    if (op->everywhere)
        tess__auth_everywhere_alone(auth, tess_strn(op->key, op->key_len), now_ms, chain_primary_done, op);
    else
        tess__auth_logout_alone(auth, &op->sess, chain_primary_done, op);
}
