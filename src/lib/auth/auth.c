/*
 * The tess_auth_t object: the strategy table, the one operation lifetime, and dispatch to the rows
 * (strategy.h). What a check, login or logout does is in the row's file; what they share is here.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "auth/strategy.h"
#include "tessera/error.h"

/* The strategies, each a row of its own file. */
static const tess__strategy_t *const strategies[] = {
    &tess__strategy_db,
    &tess__strategy_redis,
    &tess__strategy_jwt,
    &tess__strategy_cached,
};

const tess_str_t tess__no_cookie = {NULL, 0};

static const tess__strategy_t *strategy_of(tess_strategy_t id)
{
    for (size_t i = 0; i < sizeof(strategies) / sizeof(strategies[0]); i++) {
        if (strategies[i]->id == id)
            return strategies[i];
    }
    return NULL;
}

int tess_strategy_parse(tess_str_t name, tess_strategy_t *out)
{
    for (size_t i = 0; i < sizeof(strategies) / sizeof(strategies[0]); i++) {
        if (tess_str_eq(name, tess_str(strategies[i]->name))) {
            *out = strategies[i]->id;
            return 0;
        }
    }
    return TESS_EINVAL;
}

const char *tess_strategy_name(tess_strategy_t s)
{
    const tess__strategy_t *row = strategy_of(s);
    return row != NULL ? row->name : "unknown";
}

/* 0 when `cfg` holds what its strategy needs, else TESS_EINVAL. */
static int config_valid(const tess_auth_config_t *cfg, const tess__strategy_t *row)
{
    if (row == NULL || cfg->secrets == NULL)
        return TESS_EINVAL;
    if ((row->keeps_sessions && cfg->store == NULL) || (row->uses_cache && cfg->cache == NULL))
        return TESS_EINVAL;
    if (row->validate != NULL && row->validate(cfg) != 0)
        return TESS_EINVAL;
    if (cfg->policy.ttl_s < 0 || cfg->policy.idle_s < 0 || cfg->policy.touch_interval_s < 0)
        return TESS_EINVAL;
    return 0;
}

int tess_auth_new(tess_auth_t **out, const tess_auth_config_t *cfg)
{
    const tess__strategy_t *row;
    tess_session_policy_t def;
    tess_auth_t *a;

    *out = NULL;
    if (cfg == NULL)
        return TESS_EINVAL;
    row = strategy_of(cfg->strategy);
    if (config_valid(cfg, row) != 0)
        return TESS_EINVAL;
    if ((a = calloc(1, sizeof(*a))) == NULL)
        return TESS_ENOMEM;
    a->cfg = *cfg;
    a->strategy = row;
    /* A zero lifetime means "the default" (a zeroed config is usable); a zero touch interval is kept. */
    tess_session_policy_default(&def);
    if (a->cfg.policy.ttl_s == 0)
        a->cfg.policy.ttl_s = def.ttl_s;
    if (a->cfg.policy.idle_s == 0)
        a->cfg.policy.idle_s = def.idle_s;
    if (a->cfg.cookie_name.len == 0)
        a->cfg.cookie_name = row->cookie_name;
    if (!row->uses_cache)
        a->cfg.cache = NULL; /* only a strategy that uses the near-cache consults it */
    if (!row->reads_jwe)
        a->cfg.jwe = NULL;
    if (a->cfg.jwe != NULL) {
        /* The JWE names its cookie (Auth.js derives its key from the name): another name is a mistake. */
        tess_str_t name = tess_jwe_cookie_name(a->cfg.jwe);
        if (cfg->cookie_name.len != 0 && !tess_str_eq(cfg->cookie_name, name)) {
            free(a);
            return TESS_EINVAL;
        }
        a->cfg.cookie_name = name;
        if ((a->chunks = malloc(tess_jwe_max_token_len(a->cfg.jwe))) == NULL) {
            free(a);
            return TESS_ENOMEM;
        }
    }
    *out = a;
    return 0;
}

static void auth_destroy(tess_auth_t *auth)
{
    free(auth->chunks);
    free(auth);
}

void tess_auth_free(tess_auth_t *auth)
{
    if (auth == NULL)
        return;
    auth->released = 1;
    if (auth->inflight == 0)
        auth_destroy(auth);
}

const tess_auth_config_t *tess_auth_config(const tess_auth_t *auth)
{
    return &auth->cfg;
}

void tess_auth_get_stats(const tess_auth_t *auth, tess_auth_stats_t *out)
{
    const tess__auth_counters_t *c = &auth->stats;
    out->checks = atomic_load_explicit(&c->checks, memory_order_relaxed);
    out->rejected_early = atomic_load_explicit(&c->rejected_early, memory_order_relaxed);
    out->store_lookups = atomic_load_explicit(&c->store_lookups, memory_order_relaxed);
    out->touches = atomic_load_explicit(&c->touches, memory_order_relaxed);
    out->fallback_checks = atomic_load_explicit(&c->fallback_checks, memory_order_relaxed);
    out->copied_forward = atomic_load_explicit(&c->copied_forward, memory_order_relaxed);
}

tess_str_t tess_auth_cookie_name(const tess_auth_t *auth)
{
    return auth->cfg.cookie_name;
}

int tess_auth_cookie_chunked(const tess_auth_t *auth)
{
    return auth->cfg.jwe != NULL;
}

int64_t tess__auth_leeway_s(const tess_auth_t *auth)
{
    if (auth->cfg.jwe != NULL)
        return tess_jwe_leeway_s(auth->cfg.jwe);
    return auth->cfg.jwt != NULL ? tess_jwt_leeway_s(auth->cfg.jwt) : 0;
}

int tess_auth_keeps_sessions(const tess_auth_t *auth)
{
    return auth->strategy->keeps_sessions;
}

/* What tess__auth_everywhere_alone() ends: the stored sessions, and tokens only through the cut-off. */
static int can_revoke_alone(const tess_auth_t *a)
{
    return a->strategy->keeps_sessions || a->cfg.revoker != NULL;
}

int tess_auth_can_revoke_everywhere(const tess_auth_t *auth)
{
    /* A migration logs out in the fallback too (alone: never the fallback's own fallback). */
    return can_revoke_alone(auth) && (auth->cfg.fallback == NULL || can_revoke_alone(auth->cfg.fallback));
}

/* ---- the operation ------------------------------------------------------------------------------------ */

tess__op_t *tess__op_new(tess_auth_t *auth, size_t extra, tess_auth_cb cb, void *arg, int64_t now_ms)
{
    tess__op_t *op = malloc(sizeof(*op) + extra);
    if (op == NULL)
        return NULL;
    memset(op, 0, offsetof(tess__op_t, key)); /* the buffers are written before they are read */
    op->key[0] = '\0';
    op->len = 0;
    op->auth = auth;
    auth->inflight++;
    op->cb = cb;
    op->arg = arg;
    op->now_ms = now_ms;
    return op;
}

void tess__op_free(tess__op_t *op)
{
    tess_auth_t *auth = op->auth;
    tess_session_clear(&op->sess);
    free(op);
    if (--auth->inflight == 0 && auth->released)
        auth_destroy(auth);
}

void tess__op_done(tess__op_t *op, int rc, const tess_session_t *s, tess_str_t cookie)
{
    op->cb(op->arg, rc, s, cookie);
    tess__op_free(op);
}

void tess__op_key(tess__op_t *op, tess_str_t key)
{
    op->key_len = key.len;
    if (key.len > 0)
        memcpy(op->key, key.ptr, key.len);
    op->key[key.len] = '\0';
}

void tess__op_done_rc(void *op, int rc)
{
    tess__op_done(op, rc, NULL, tess__no_cookie);
}

void tess__op_cut_off(tess__op_t *op)
{
    tess_auth_t *auth = op->auth;
    if (auth->cfg.revoker == NULL) {
        tess__op_done_rc(op, 0);
        return;
    }
    /* Keep the cut-off as long as any token issued before it can be accepted (its life plus the leeway). */
    int64_t leeway_s = tess__auth_leeway_s(auth);
    tess_revoker_cut(auth->cfg.revoker, tess_strn(op->key, op->key_len), op->now_ms,
                     (auth->cfg.policy.ttl_s + leeway_s) * 1000 + 60000, tess__op_done_rc, op);
}

/* ---- dispatch ------------------------------------------------------------------------------------------ */

void tess__auth_check_alone(tess_auth_t *auth, tess_str_t cookie_header, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    tess_str_t value;

    size_t chunks = 0;
    int found;

    tess__count(&auth->stats.checks);
    if (auth->chunks != NULL)
        found = tess_cookie_find_chunked(cookie_header, auth->cfg.cookie_name, auth->chunks,
                                         tess_jwe_max_token_len(auth->cfg.jwe), &value, &chunks);
    else
        found = tess_cookie_find(cookie_header, auth->cfg.cookie_name, &value);
    if (cookie_header.len == 0 || found != 0 || value.len == 0) {
        tess__count(&auth->stats.rejected_early);
        cb(arg, TESS_EDENIED, NULL, tess__no_cookie);
        return;
    }
    auth->strategy->check(auth, value, now_ms, cb, arg);
}

void tess_auth_check(tess_auth_t *auth, tess_str_t cookie_header, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    if (auth->cfg.fallback != NULL)
        tess__migrate_check(auth, cookie_header, now_ms, cb, arg);
    else
        tess__auth_check_alone(auth, cookie_header, now_ms, cb, arg);
}

void tess_auth_login(tess_auth_t *auth, tess_str_t user_id, tess_str_t role, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    tess__op_t *op;
    int rc;

    if ((op = tess__op_new(auth, TESS_SIGNED_COOKIE_MAX, cb, arg, now_ms)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, tess__no_cookie);
        return;
    }
    if ((rc = tess_session_init(&op->sess, &auth->cfg.policy, user_id, role, now_ms)) != 0) {
        tess__op_done(op, rc, NULL, tess__no_cookie);
        return;
    }
    auth->strategy->login(op);
}

void tess_auth_logout(tess_auth_t *auth, tess_str_t sid, tess_auth_cb cb, void *arg)
{
    auth->strategy->logout(auth, sid, NULL, cb, arg);
}

void tess__auth_logout_alone(tess_auth_t *auth, const tess_session_t *s, tess_auth_cb cb, void *arg)
{
    auth->strategy->logout(auth, tess_str(s->id), s, cb, arg);
}

void tess__auth_everywhere_alone(tess_auth_t *auth, tess_str_t user_id, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    tess__op_t *op;

    if ((op = tess__op_new(auth, 0, cb, arg, now_ms)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, tess__no_cookie);
        return;
    }
    /* The user id rides in the key buffer (TESS_USER_ID_MAX < TESS_SID_MAX). */
    tess__op_key(op, user_id);
    auth->strategy->everywhere(op);
}

void tess_auth_logout_session(tess_auth_t *auth, const tess_session_t *s, tess_auth_cb cb, void *arg)
{
    if (auth->cfg.fallback != NULL)
        tess__migrate_logout(auth, s, tess_strn(NULL, 0), 0, cb, arg);
    else
        tess__auth_logout_alone(auth, s, cb, arg);
}

void tess_auth_logout_everywhere(tess_auth_t *auth, tess_str_t user_id, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    if (user_id.len == 0 || user_id.len > TESS_USER_ID_MAX) {
        cb(arg, TESS_EINVAL, NULL, tess__no_cookie);
        return;
    }
    if (auth->cfg.fallback != NULL)
        tess__migrate_logout(auth, NULL, user_id, now_ms, cb, arg);
    else
        tess__auth_everywhere_alone(auth, user_id, now_ms, cb, arg);
}
