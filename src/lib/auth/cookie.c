/*
 * Signed cookie -> near-cache -> store: the db, redis and cached strategies. One implementation, three rows
 * that differ only in what is wired in (cached requires a near-cache and consults it; db and redis drop it).
 *
 * Order of a check: find the cookie (auth.c), verify its signature (a failure ends here, counted in
 * rejected_early, no cache or store touched), then the near-cache (when wired in), then the store.
 * A store may answer synchronously (inside the call) or later from its event loop, so every operation that
 * reaches the store carries a tess__op_t with the user's callback; the op is freed by the store callback, or
 * right away when the store refuses to start the operation (its callback then never runs).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "auth/strategy.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/nextauth.h"

#define COOKIE_NAME "connect.sid"

/* ---- touch -------------------------------------------------------------------------------------------- */

/* A fire-and-forget touch (no callback): enough to undo the cached copy when the session turns out gone. */
static void on_touch(void *arg, int rc, const tess_session_t *sess)
{
    tess__op_t *t = arg;
    (void)sess;
    /* Gone from the store (logged out meanwhile): the copy we refreshed must not outlive it. */
    if (rc == TESS_ENOTFOUND && t->auth->cfg.cache != NULL)
        tess_cache_evict(t->auth->cfg.cache, tess_strn(t->key, t->key_len));
    tess__op_free(t);
}

/*
 * When `s` is due a touch: sends it to the store (fire and forget) and moves `s->expires_ms`, so that the
 * caller hands out and caches the refreshed copy. Failures only cost the refresh: the session stays valid
 * until its current expiry.
 */
static void maybe_touch(tess_auth_t *auth, tess_session_t *s, int64_t now_ms)
{
    tess__op_t *t;
    int64_t next;

    if (!tess_session_needs_touch(s, &auth->cfg.policy, now_ms, &next))
        return;
    if ((t = tess__op_new(auth, 0, NULL, NULL, now_ms)) == NULL)
        return;
    tess__op_key(t, tess_str(s->id));
    tess__count(&auth->stats.touches);
    if (tess_store_touch(auth->cfg.store, tess_strn(t->key, t->key_len), next, on_touch, t) != 0) {
        tess__op_free(t);
        return;
    }
    s->expires_ms = next;
}

/* ---- check -------------------------------------------------------------------------------------------- */

/* A store lookup's rc as the caller sees it: unknown or unreadable means no session (401). */
static int lookup_rc(int rc)
{
    return rc == TESS_ENOTFOUND || rc == TESS_EBADFMT || rc == TESS_EEXPIRED ? TESS_EDENIED : rc;
}

static void on_check_get(void *arg, int rc, const tess_session_t *found)
{
    tess__op_t *op = arg;
    tess_auth_t *auth = op->auth;
    tess_str_t sid = tess_strn(op->key, op->key_len);
    tess_session_t s;
    int have = 0;

    if (rc == 0 && found != NULL && !tess_session_expired(found, op->now_ms)) {
        rc = tess_session_copy(&s, found);
        have = rc == 0;
    } else if (rc == 0) {
        rc = TESS_EDENIED; /* expired by the request's clock */
    }
    if (have && !auth->released)
        maybe_touch(auth, &s, op->now_ms);
    if (auth->cfg.cache != NULL && !auth->released) {
        /* Remember the answer unless a logout or flush moved the generation since the lookup began. */
        if (have)
            tess_cache_put(auth->cfg.cache, sid, &s, op->now_ms, op->gen);
        else if (rc == TESS_ENOTFOUND)
            tess_cache_put(auth->cfg.cache, sid, NULL, op->now_ms, op->gen);
    }
    if (op->leader)
        tess_cache_flight_done(auth->cfg.cache, sid, rc, have ? &s : NULL);
    op->cb(op->arg, lookup_rc(rc), have ? &s : NULL, tess__no_cookie);
    if (have)
        tess_session_clear(&s);
    tess__op_free(op);
}

/* Follower, back on its own loop: answer with the leader's result. */
static void follower_finish(void *arg)
{
    tess__op_t *op = arg;
    int have = op->rc == 0 && op->sess.user_id[0] != '\0';
    tess__op_done(op, lookup_rc(op->rc), have ? &op->sess : NULL, tess__no_cookie);
}

/* Follower, on the leader's thread: keep a copy of the result and hop home. */
static void follower_deliver(void *arg, int rc, const tess_session_t *s)
{
    tess__op_t *op = arg;
    op->rc = rc;
    if (rc == 0 && (s == NULL || tess_session_copy(&op->sess, s) != 0))
        op->rc = s == NULL ? TESS_EDENIED : TESS_ENOMEM;
    op->auth->cfg.loop->ops->post(op->auth->cfg.loop, follower_finish, op);
}

/* A near-cache hit: answers `cb` (refreshing the cached copy when it was due a touch). */
static void answer_hit(tess_auth_t *auth, tess_str_t sid, tess_session_t *s, uint64_t gen, int64_t now_ms,
                       tess_auth_cb cb, void *arg)
{
    int64_t before = s->expires_ms;

    if (tess_session_expired(s, now_ms)) {
        cb(arg, TESS_EDENIED, NULL, tess__no_cookie);
        return;
    }
    maybe_touch(auth, s, now_ms);
    if (s->expires_ms != before)
        tess_cache_put(auth->cfg.cache, sid, s, now_ms, gen);
    cb(arg, 0, s, tess__no_cookie);
}

static void cookie_check(tess_auth_t *auth, tess_str_t value, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    char sid[TESS_SID_MAX + 1];
    size_t sid_len = 0;
    tess_session_t s;
    tess__op_t *op;
    uint64_t gen = 0;
    int rc;

    if (auth->cfg.format != TESS_FORMAT_EXPRESS) {
        /* NextAuth's database session token, unsigned: only its shape is checked before the lookup (an unknown
         * one is cached negatively like any other). */
        if (!tess_nextauth_token_ok(value)) {
            tess__count(&auth->stats.rejected_early);
            cb(arg, TESS_EDENIED, NULL, tess__no_cookie);
            return;
        }
        memcpy(sid, value.ptr, value.len);
        sid[sid_len = value.len] = '\0';
    } else if (tess_cookie_unsign(auth->cfg.secrets, value, sid, sizeof(sid), &sid_len) != 0) {
        /* Principle 1: nothing below this line runs for a cookie we did not sign. */
        tess__count(&auth->stats.rejected_early);
        cb(arg, TESS_EDENIED, NULL, tess__no_cookie);
        return;
    }

    if (auth->cfg.cache != NULL) {
        /* Read the generation first: a logout between here and any put below makes that put a no-op. */
        gen = tess_cache_gen(auth->cfg.cache, tess_strn(sid, sid_len));
        switch (tess_cache_get(auth->cfg.cache, tess_strn(sid, sid_len), now_ms, &s)) {
        case TESS_CACHE_HIT:
            answer_hit(auth, tess_strn(sid, sid_len), &s, gen, now_ms, cb, arg);
            tess_session_clear(&s);
            return;
        case TESS_CACHE_NEGATIVE:
            cb(arg, TESS_EDENIED, NULL, tess__no_cookie);
            return;
        default:
            break;
        }
    }

    if ((op = tess__op_new(auth, 0, cb, arg, now_ms)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, tess__no_cookie);
        return;
    }
    op->gen = gen;
    tess__op_key(op, tess_strn(sid, sid_len));
    if (auth->cfg.cache != NULL && auth->cfg.loop != NULL && auth->cfg.loop->ops->post != NULL) {
        /* One backend lookup for N concurrent misses of this id, process-wide. */
        int f = tess_cache_flight_join(auth->cfg.cache, tess_strn(op->key, op->key_len), follower_deliver, op);
        if (f == TESS_FLIGHT_FOLLOW)
            return; /* follower_deliver owns `op` now */
        op->leader = f == TESS_FLIGHT_LEAD;
    }
    tess__count(&auth->stats.store_lookups);
    /* From here on `op` belongs to on_check_get, which may already have run when the call returns. */
    if ((rc = tess_store_get(auth->cfg.store, tess_strn(op->key, op->key_len), on_check_get, op)) != 0) {
        if (op->leader)
            tess_cache_flight_done(auth->cfg.cache, tess_strn(op->key, op->key_len), rc, NULL);
        tess__op_free(op);
        cb(arg, lookup_rc(rc), NULL, tess__no_cookie);
    }
}

/* ---- login -------------------------------------------------------------------------------------------- */

static void on_login_set(void *arg, int rc, const tess_session_t *unused)
{
    tess__op_t *op = arg;
    (void)unused;
    if (rc == 0)
        tess__op_done(op, 0, &op->sess, tess_strn(op->buf, op->len));
    else
        tess__op_done(op, rc == TESS_ENOTFOUND ? TESS_EIO : rc, NULL, tess__no_cookie);
}

static void cookie_login(tess__op_t *op)
{
    int rc;

    if (op->auth->cfg.format != TESS_FORMAT_EXPRESS) {
        /* NextAuth's shape: 64 hex digits (256 random bits), the cookie is the token itself. */
        uint8_t raw[32];
        if ((rc = tess_random_bytes(raw, sizeof(raw))) != 0)
            goto fail;
        tess_hex_encode(raw, sizeof(raw), op->sess.id);
        memcpy(op->buf, op->sess.id, op->len = 64);
    } else if ((rc = tess_cookie_sign(op->auth->cfg.secrets, tess_str(op->sess.id), op->buf, TESS_SIGNED_COOKIE_MAX,
                                      &op->len)) != 0) {
        goto fail; /* sign first: nothing is stored for a login that could not hand out its cookie */
    }
    if ((rc = tess_store_set(op->auth->cfg.store, &op->sess, on_login_set, op)) != 0)
        goto fail;
    return; /* on_login_set owns `op` now */
fail:
    tess__op_done(op, rc, NULL, tess__no_cookie);
}

/* ---- logout ------------------------------------------------------------------------------------------- */

static void on_logout_destroy(void *arg, int rc, const tess_session_t *unused)
{
    tess__op_t *op = arg;
    (void)unused;
    /* Evict again: a lookup that started after the first eviction may have cached the still-stored row. */
    if (op->auth->cfg.cache != NULL)
        tess_cache_evict(op->auth->cfg.cache, tess_strn(op->key, op->key_len));
    tess__op_done(op, rc == TESS_ENOTFOUND ? 0 : rc, NULL, tess__no_cookie);
}

/* Store destroy + cache eviction; the session as checked adds nothing to its id. */
static void cookie_logout(tess_auth_t *auth, tess_str_t sid, const tess_session_t *unused, tess_auth_cb cb, void *arg)
{
    tess__op_t *op;
    int rc;

    (void)unused;
    if (!tess_id_valid(sid)) {
        cb(arg, TESS_EINVAL, NULL, tess__no_cookie);
        return;
    }
    if ((op = tess__op_new(auth, 0, cb, arg, 0)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, tess__no_cookie);
        return;
    }
    tess__op_key(op, sid);
    /* Evict first: bumps the generation, so an in-flight lookup cannot put the session back. */
    if (auth->cfg.cache != NULL)
        tess_cache_evict(auth->cfg.cache, sid);
    if ((rc = tess_store_destroy(auth->cfg.store, tess_strn(op->key, op->key_len), on_logout_destroy, op)) != 0) {
        tess__op_free(op);
        cb(arg, rc, NULL, tess__no_cookie);
    }
}

static void on_everywhere_destroyed(void *arg, int rc, const tess_session_t *unused)
{
    tess__op_t *op = arg;
    tess_auth_t *auth = op->auth;
    (void)unused;
    if (auth->cfg.cache != NULL)
        tess_cache_evict_user(auth->cfg.cache, tess_strn(op->key, op->key_len));
    if (rc != 0 && rc != TESS_ENOTFOUND) {
        tess__op_done(op, rc, NULL, tess__no_cookie);
        return;
    }
    tess__op_cut_off(op);
}

/* Every stored session of the user (store destroy_user, near-cache eviction before and after), then the cut-off. */
static void cookie_everywhere(tess__op_t *op)
{
    tess_auth_t *auth = op->auth;
    int rc;

    if (auth->cfg.cache != NULL)
        tess_cache_evict_user(auth->cfg.cache, tess_strn(op->key, op->key_len));
    if ((rc = tess_store_destroy_user(auth->cfg.store, tess_strn(op->key, op->key_len), on_everywhere_destroyed, op)) !=
        0)
        on_everywhere_destroyed(op, rc, NULL);
}

/* ---- the rows ------------------------------------------------------------------------------------------ */

/* The three rows share every function: they differ in their name and in whether the near-cache is used. */
#define COOKIE_ROW(row_name, row_id, with_cache)                                                                       \
    {                                                                                                                  \
        .name = row_name, .id = row_id, .cookie_name = {COOKIE_NAME, sizeof(COOKIE_NAME) - 1}, .keeps_sessions = 1,    \
        .uses_cache = with_cache, .validate = NULL, .check = cookie_check, .login = cookie_login,                      \
        .logout = cookie_logout, .everywhere = cookie_everywhere,                                                      \
    }

const tess__strategy_t tess__strategy_db = COOKIE_ROW("db", TESS_STRATEGY_DB, 0);
const tess__strategy_t tess__strategy_redis = COOKIE_ROW("redis", TESS_STRATEGY_REDIS, 0);
const tess__strategy_t tess__strategy_cached = COOKIE_ROW("cached", TESS_STRATEGY_CACHED, 1);
