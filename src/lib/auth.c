/*
 * The strategies behind tess_auth_check / login / logout.
 *
 * Order of a check (db, redis, cached): find the cookie, verify its signature (a failure ends here, counted
 * in rejected_early, no cache or store touched), then the near-cache (cached only), then the store.
 * A store may answer synchronously (inside the call) or later from its event loop, so every operation that
 * reaches the store carries a small heap context with the user's callback; the context is freed by the store
 * callback, or right away when the store refuses to start the operation (its callback then never runs).
 *
 * Lifetime: every heap context holds a reference on its tess_auth_t. tess_auth_free() with operations in
 * flight only marks it released; the last completing operation frees it. Completions after the release still
 * call the user's callback but skip the cache and touch side effects (the store is usually closing then).
 * The cache, borrowed, must outlive every pending store callback.
 */
#include <stddef.h>
#include <stdlib.h>

#include "tessera/auth.h"
#include "tessera/encoding.h"
#include "tessera/error.h"

#define COOKIE_NAME_DEFAULT "connect.sid"
#define COOKIE_NAME_JWT "session-token"

struct tess_auth {
    tess_auth_config_t cfg;  /* effective configuration (defaults filled in) */
    tess_auth_stats_t stats; /* counters; this thread only */
    size_t inflight;         /* heap contexts not completed yet (this thread only) */
    int released;            /* tess_auth_free() was called; freed when inflight drops to 0 */
};

/* An in-flight check, login or logout. */
typedef struct auth_op {
    tess_auth_t *auth;                   /* owner */
    tess_auth_cb cb;                     /* user callback */
    void *arg;                           /* its argument */
    int64_t now_ms;                      /* the request's clock */
    uint64_t gen;                        /* cache generation read before the store lookup (cached) */
    int leader;                          /* this lookup leads a single-flight: it must report to followers */
    int flight_rc;                       /* follower: the leader's result */
    tess_session_t sess;                 /* login: the new session */
    size_t sid_len;                      /* bytes in sid */
    char sid[TESS_SID_MAX + 1];          /* session id being looked up or destroyed */
    size_t cookie_len;                   /* login: bytes in cookie */
    char cookie[TESS_SIGNED_COOKIE_MAX]; /* login: the signed cookie value */
} auth_op_t;

/* A fire-and-forget touch: enough to undo the cached copy when the session turns out to be gone. */
typedef struct touch_op {
    tess_cache_t *cache;        /* the near-cache, or NULL */
    size_t sid_len;             /* bytes in sid */
    char sid[TESS_SID_MAX + 1]; /* touched session */
} touch_op_t;

static const tess_str_t no_cookie = {NULL, 0};

int tess_strategy_parse(tess_str_t name, tess_strategy_t *out)
{
    static const struct {
        tess_str_t name;
        tess_strategy_t s;
    } names[] = {{TESS_STR_LIT("db"), TESS_STRATEGY_DB},
                 {TESS_STR_LIT("redis"), TESS_STRATEGY_REDIS},
                 {TESS_STR_LIT("jwt"), TESS_STRATEGY_JWT},
                 {TESS_STR_LIT("cached"), TESS_STRATEGY_CACHED}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (tess_str_eq(name, names[i].name)) {
            *out = names[i].s;
            return 0;
        }
    }
    return TESS_EINVAL;
}

const char *tess_strategy_name(tess_strategy_t s)
{
    switch (s) {
    case TESS_STRATEGY_DB:
        return "db";
    case TESS_STRATEGY_REDIS:
        return "redis";
    case TESS_STRATEGY_JWT:
        return "jwt";
    case TESS_STRATEGY_CACHED:
        return "cached";
    }
    return "unknown";
}

int tess_auth_new(tess_auth_t **out, const tess_auth_config_t *cfg)
{
    tess_auth_t *a;
    tess_session_policy_t def;

    *out = NULL;
    if (cfg == NULL || cfg->secrets == NULL)
        return TESS_EINVAL;
    switch (cfg->strategy) {
    case TESS_STRATEGY_JWT:
        if (cfg->jwt == NULL)
            return TESS_EINVAL;
        break;
    case TESS_STRATEGY_CACHED:
        if (cfg->cache == NULL)
            return TESS_EINVAL;
        /* fall through */
    case TESS_STRATEGY_DB:
    case TESS_STRATEGY_REDIS:
        if (cfg->store == NULL)
            return TESS_EINVAL;
        break;
    default:
        return TESS_EINVAL;
    }
    if (cfg->policy.ttl_s < 0 || cfg->policy.idle_s < 0 || cfg->policy.touch_interval_s < 0)
        return TESS_EINVAL;
    if ((a = calloc(1, sizeof(*a))) == NULL)
        return TESS_ENOMEM;
    a->cfg = *cfg;
    /* A zero lifetime means "the default" (a zeroed config is usable); a zero touch interval is kept. */
    tess_session_policy_default(&def);
    if (a->cfg.policy.ttl_s == 0)
        a->cfg.policy.ttl_s = def.ttl_s;
    if (a->cfg.policy.idle_s == 0)
        a->cfg.policy.idle_s = def.idle_s;
    if (a->cfg.cookie_name.len == 0)
        a->cfg.cookie_name =
            cfg->strategy == TESS_STRATEGY_JWT ? TESS_STR_LIT(COOKIE_NAME_JWT) : TESS_STR_LIT(COOKIE_NAME_DEFAULT);
    if (cfg->strategy != TESS_STRATEGY_CACHED)
        a->cfg.cache = NULL; /* only the cached strategy consults it */
    *out = a;
    return 0;
}

void tess_auth_free(tess_auth_t *auth)
{
    if (auth == NULL)
        return;
    auth->released = 1;
    if (auth->inflight == 0)
        free(auth);
}

const tess_auth_config_t *tess_auth_config(const tess_auth_t *auth)
{
    return &auth->cfg;
}

void tess_auth_get_stats(const tess_auth_t *auth, tess_auth_stats_t *out)
{
    *out = auth->stats;
}

tess_str_t tess_auth_cookie_name(const tess_auth_t *auth)
{
    return auth->cfg.cookie_name;
}

/* Drops one in-flight reference; frees a released tess_auth_t with the last one. */
static void auth_unref(tess_auth_t *auth)
{
    if (--auth->inflight == 0 && auth->released)
        free(auth);
}

static auth_op_t *op_new(tess_auth_t *auth, tess_auth_cb cb, void *arg, int64_t now_ms)
{
    auth_op_t *op = malloc(sizeof(*op));
    if (op == NULL)
        return NULL;
    memset(op, 0, offsetof(auth_op_t, sid)); /* the buffers are written before they are read */
    op->sid[0] = op->cookie[0] = '\0';
    op->auth = auth;
    auth->inflight++;
    op->cb = cb;
    op->arg = arg;
    op->now_ms = now_ms;
    return op;
}

/* Frees `op` and drops its reference on the tess_auth_t (freeing that too when it was released). */
static void op_free(auth_op_t *op)
{
    tess_auth_t *auth = op->auth;
    tess_session_clear(&op->sess);
    free(op);
    auth_unref(auth);
}

/* ---- touch -------------------------------------------------------------------------------------------- */

static void on_touch(void *arg, int rc, const tess_session_t *sess)
{
    touch_op_t *t = arg;
    (void)sess;
    /* Gone from the store (logged out meanwhile): the copy we refreshed must not outlive it. */
    if (rc == TESS_ENOTFOUND && t->cache != NULL)
        tess_cache_evict(t->cache, tess_strn(t->sid, t->sid_len));
    free(t);
}

/*
 * When `s` is due a touch: sends it to the store (fire and forget) and moves `s->expires_ms`, so that the
 * caller hands out and caches the refreshed copy. Failures only cost the refresh: the session stays valid
 * until its current expiry.
 */
static void maybe_touch(tess_auth_t *auth, tess_session_t *s, int64_t now_ms)
{
    touch_op_t *t;
    int64_t next;

    if (!tess_session_needs_touch(s, &auth->cfg.policy, now_ms, &next))
        return;
    if ((t = malloc(sizeof(*t))) == NULL)
        return;
    t->cache = auth->cfg.cache;
    t->sid_len = strlen(s->id);
    memcpy(t->sid, s->id, t->sid_len + 1);
    auth->stats.touches++;
    if (tess_store_touch(auth->cfg.store, tess_strn(t->sid, t->sid_len), next, on_touch, t) != 0) {
        free(t);
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
    auth_op_t *op = arg;
    tess_auth_t *auth = op->auth;
    tess_str_t sid = tess_strn(op->sid, op->sid_len);
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
    op->cb(op->arg, lookup_rc(rc), have ? &s : NULL, no_cookie);
    if (have)
        tess_session_clear(&s);
    op_free(op);
}

/* Follower, back on its own loop: answer with the leader's result. */
static void follower_finish(void *arg)
{
    auth_op_t *op = arg;
    int have = op->flight_rc == 0 && op->sess.user_id[0] != '\0';
    op->cb(op->arg, lookup_rc(op->flight_rc), have ? &op->sess : NULL, no_cookie);
    op_free(op);
}

/* Follower, on the leader's thread: keep a copy of the result and hop home. */
static void follower_deliver(void *arg, int rc, const tess_session_t *s)
{
    auth_op_t *op = arg;
    op->flight_rc = rc;
    if (rc == 0 && (s == NULL || tess_session_copy(&op->sess, s) != 0))
        op->flight_rc = s == NULL ? TESS_EDENIED : TESS_ENOMEM;
    op->auth->cfg.loop->ops->post(op->auth->cfg.loop, follower_finish, op);
}

static void on_jwt_revocation(void *arg, int rc)
{
    auth_op_t *op = arg;
    if (rc == 0)
        op->cb(op->arg, 0, &op->sess, no_cookie);
    else
        op->cb(op->arg, rc == TESS_EREVOKED ? TESS_EDENIED : rc, NULL, no_cookie);
    op_free(op);
}

static void check_jwt(tess_auth_t *auth, tess_str_t token, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    tess_jwt_claims_t claims;
    tess_session_t s;
    auth_op_t *op;
    int rc = tess_jwt_verify(auth->cfg.jwt, token, now_ms / 1000, &claims);

    if (rc != 0) {
        if (rc != TESS_EEXPIRED)
            auth->stats.rejected_early++;
        cb(arg, TESS_EDENIED, NULL, no_cookie);
        return;
    }
    memset(&s, 0, sizeof(s));
    /* The session is the token: its id is the jti (both bounded well under TESS_SID_MAX). */
    memcpy(s.id, claims.jti, strlen(claims.jti) + 1);
    memcpy(s.user_id, claims.user_id, strlen(claims.user_id) + 1);
    memcpy(s.role, claims.role, strlen(claims.role) + 1);
    s.created_ms = claims.iat * 1000;
    s.absolute_expires_ms = s.expires_ms = claims.exp * 1000;
    if (auth->cfg.revoker == NULL) {
        cb(arg, 0, &s, no_cookie);
        return;
    }
    /* Signed and unexpired; now: logged out (deny list) or cut off (log out everywhere)? */
    if ((op = op_new(auth, cb, arg, now_ms)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, no_cookie);
        return;
    }
    op->sess = s;
    tess_revoker_check(auth->cfg.revoker, tess_str(op->sess.id), tess_str(op->sess.user_id), claims.iat, now_ms,
                       on_jwt_revocation, op);
}

/* ---- migration fallback ----------------------------------------------------------------------------------- */

typedef struct fb_op {
    tess_auth_t *auth;   /* the primary */
    tess_auth_cb cb;     /* user callback */
    void *arg;           /* its argument */
    int64_t now_ms;      /* request clock */
    tess_session_t sess; /* copy-forward: the session found in the fallback */
    size_t header_len;   /* bytes in header */
    char header[];       /* the Cookie header, copied: the primary may answer later */
} fb_op_t;

static void fb_finish(fb_op_t *op, int rc, const tess_session_t *s)
{
    tess_auth_t *auth = op->auth;
    op->cb(op->arg, rc, s, no_cookie);
    tess_session_clear(&op->sess);
    auth_unref(auth);
    free(op);
}

/* The copy is in the primary store: answer now, so the next request is sure to find it there. */
static void on_copied_forward(void *arg, int rc, const tess_session_t *unused)
{
    fb_op_t *op = arg;
    (void)unused;
    if (rc == 0)
        op->auth->stats.copied_forward++;
    fb_finish(op, 0, &op->sess); /* a failed copy costs the next request a fallback check, nothing more */
}

static int keeps_sessions(const tess_auth_t *a)
{
    return a->cfg.strategy != TESS_STRATEGY_JWT && a->cfg.store != NULL;
}

static void on_fallback(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    fb_op_t *op = arg;
    tess_auth_t *auth = op->auth;
    (void)cookie;
    if (rc == 0 && s != NULL && keeps_sessions(auth) && keeps_sessions(auth->cfg.fallback) && !auth->released &&
        tess_session_copy(&op->sess, s) == 0) {
        /* Copy forward: the same id under the same signed cookie is found here from now on. */
        if (tess_store_set(auth->cfg.store, &op->sess, on_copied_forward, op) == 0)
            return; /* on_copied_forward answers */
    }
    fb_finish(op, rc, s);
}

static void on_primary(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    fb_op_t *op = arg;
    (void)cookie;
    if (rc != TESS_EDENIED) {
        fb_finish(op, rc, s);
        return;
    }
    op->auth->stats.fallback_checks++;
    tess_auth_check(op->auth->cfg.fallback, tess_strn(op->header, op->header_len), op->now_ms, on_fallback, op);
}

static void check_primary(tess_auth_t *auth, tess_str_t cookie_header, int64_t now_ms, tess_auth_cb cb, void *arg);

void tess_auth_check(tess_auth_t *auth, tess_str_t cookie_header, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    fb_op_t *op;

    if (auth->cfg.fallback == NULL) {
        check_primary(auth, cookie_header, now_ms, cb, arg);
        return;
    }
    if ((op = malloc(sizeof(*op) + cookie_header.len)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, no_cookie);
        return;
    }
    op->auth = auth;
    op->cb = cb;
    op->arg = arg;
    op->now_ms = now_ms;
    memset(&op->sess, 0, sizeof(op->sess));
    op->header_len = cookie_header.len;
    if (cookie_header.len > 0)
        memcpy(op->header, cookie_header.ptr, cookie_header.len);
    auth->inflight++;
    check_primary(auth, tess_strn(op->header, op->header_len), now_ms, on_primary, op);
}

static void check_primary(tess_auth_t *auth, tess_str_t cookie_header, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    char sid[TESS_SID_MAX + 1];
    size_t sid_len = 0;
    tess_str_t value;
    tess_session_t s;
    auth_op_t *op;
    uint64_t gen = 0;
    int rc;

    auth->stats.checks++;
    if (cookie_header.len == 0 || tess_cookie_find(cookie_header, auth->cfg.cookie_name, &value) != 0 ||
        value.len == 0) {
        auth->stats.rejected_early++;
        cb(arg, TESS_EDENIED, NULL, no_cookie);
        return;
    }
    if (auth->cfg.strategy == TESS_STRATEGY_JWT) {
        check_jwt(auth, value, now_ms, cb, arg);
        return;
    }
    /* Principle 1: nothing below this line runs for a cookie we did not sign. */
    if (tess_cookie_unsign(auth->cfg.secrets, value, sid, sizeof(sid), &sid_len) != 0) {
        auth->stats.rejected_early++;
        cb(arg, TESS_EDENIED, NULL, no_cookie);
        return;
    }

    if (auth->cfg.cache != NULL) {
        /* Read the generation first: a logout between here and any put below makes that put a no-op. */
        gen = tess_cache_gen(auth->cfg.cache, tess_strn(sid, sid_len));
        switch (tess_cache_get(auth->cfg.cache, tess_strn(sid, sid_len), now_ms, &s)) {
        case TESS_CACHE_HIT:
            if (tess_session_expired(&s, now_ms)) {
                tess_session_clear(&s);
                cb(arg, TESS_EDENIED, NULL, no_cookie);
                return;
            }
            {
                int64_t before = s.expires_ms;
                maybe_touch(auth, &s, now_ms);
                if (s.expires_ms != before)
                    tess_cache_put(auth->cfg.cache, tess_strn(sid, sid_len), &s, now_ms, gen);
            }
            cb(arg, 0, &s, no_cookie);
            tess_session_clear(&s);
            return;
        case TESS_CACHE_NEGATIVE:
            cb(arg, TESS_EDENIED, NULL, no_cookie);
            return;
        default:
            break;
        }
    }

    if ((op = op_new(auth, cb, arg, now_ms)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, no_cookie);
        return;
    }
    op->gen = gen;
    op->sid_len = sid_len;
    memcpy(op->sid, sid, sid_len + 1);
    if (auth->cfg.cache != NULL && auth->cfg.loop != NULL && auth->cfg.loop->ops->post != NULL) {
        /* One backend lookup for N concurrent misses of this id, process-wide. */
        int f = tess_cache_flight_join(auth->cfg.cache, tess_strn(op->sid, op->sid_len), follower_deliver, op);
        if (f == TESS_FLIGHT_FOLLOW)
            return; /* follower_deliver owns `op` now */
        op->leader = f == TESS_FLIGHT_LEAD;
    }
    auth->stats.store_lookups++;
    /* From here on `op` belongs to on_check_get, which may already have run when the call returns. */
    if ((rc = tess_store_get(auth->cfg.store, tess_strn(op->sid, op->sid_len), on_check_get, op)) != 0) {
        if (op->leader)
            tess_cache_flight_done(auth->cfg.cache, tess_strn(op->sid, op->sid_len), rc, NULL);
        op_free(op);
        cb(arg, lookup_rc(rc), NULL, no_cookie);
    }
}

/* ---- login -------------------------------------------------------------------------------------------- */

static void on_login_set(void *arg, int rc, const tess_session_t *unused)
{
    auth_op_t *op = arg;
    (void)unused;
    if (rc == 0)
        op->cb(op->arg, 0, &op->sess, tess_strn(op->cookie, op->cookie_len));
    else
        op->cb(op->arg, rc == TESS_ENOTFOUND ? TESS_EIO : rc, NULL, no_cookie);
    op_free(op);
}

static void login_jwt(tess_auth_t *auth, tess_session_t *s, tess_auth_cb cb, void *arg)
{
    tess_jwt_claims_t claims;
    char token[TESS_TOKEN_MAX + 1];
    size_t len = 0;
    int rc;

    memset(&claims, 0, sizeof(claims));
    memcpy(claims.user_id, s->user_id, strlen(s->user_id) + 1);
    memcpy(claims.role, s->role, strlen(s->role) + 1);
    memcpy(claims.jti, s->id, strlen(s->id) + 1); /* the fresh session id doubles as the jti */
    claims.iat = s->created_ms / 1000;
    claims.exp = claims.iat + auth->cfg.policy.ttl_s;
    if ((rc = tess_jwt_sign(auth->cfg.jwt, &claims, token, sizeof(token), &len)) != 0) {
        cb(arg, rc, NULL, no_cookie);
        return;
    }
    /* A token cannot slide: its whole life is the absolute lifetime. */
    s->created_ms = claims.iat * 1000;
    s->absolute_expires_ms = s->expires_ms = claims.exp * 1000;
    cb(arg, 0, s, tess_strn(token, len));
}

void tess_auth_login(tess_auth_t *auth, tess_str_t user_id, tess_str_t role, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    auth_op_t *op = NULL;
    int rc;

    if ((op = op_new(auth, cb, arg, now_ms)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, no_cookie);
        return;
    }
    if ((rc = tess_session_init(&op->sess, &auth->cfg.policy, user_id, role, now_ms)) != 0)
        goto fail;
    if (auth->cfg.strategy == TESS_STRATEGY_JWT) {
        login_jwt(auth, &op->sess, cb, arg);
        op_free(op);
        return;
    }
    /* Sign first: nothing is stored for a login that could not hand out its cookie. */
    if ((rc = tess_cookie_sign(auth->cfg.secrets, tess_str(op->sess.id), op->cookie, sizeof(op->cookie),
                               &op->cookie_len)) != 0)
        goto fail;
    if ((rc = tess_store_set(auth->cfg.store, &op->sess, on_login_set, op)) != 0)
        goto fail;
    return; /* on_login_set owns `op` now */
fail:
    op_free(op);
    cb(arg, rc, NULL, no_cookie);
}

/* ---- logout ------------------------------------------------------------------------------------------- */

static void on_logout_destroy(void *arg, int rc, const tess_session_t *unused)
{
    auth_op_t *op = arg;
    (void)unused;
    /* Evict again: a lookup that started after the first eviction may have cached the still-stored row. */
    if (op->auth->cfg.cache != NULL)
        tess_cache_evict(op->auth->cfg.cache, tess_strn(op->sid, op->sid_len));
    op->cb(op->arg, rc == TESS_ENOTFOUND ? 0 : rc, NULL, no_cookie);
    op_free(op);
}

void tess_auth_logout(tess_auth_t *auth, tess_str_t sid, tess_auth_cb cb, void *arg)
{
    auth_op_t *op;
    int rc;

    if (auth->cfg.strategy == TESS_STRATEGY_JWT) {
        cb(arg, 0, NULL, no_cookie); /* nothing stored: the browser drops the cookie */
        return;
    }
    if (!tess_id_valid(sid)) {
        cb(arg, TESS_EINVAL, NULL, no_cookie);
        return;
    }
    if ((op = op_new(auth, cb, arg, 0)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, no_cookie);
        return;
    }
    op->sid_len = sid.len;
    memcpy(op->sid, sid.ptr, sid.len);
    op->sid[sid.len] = '\0';
    /* Evict first: bumps the generation, so an in-flight lookup cannot put the session back. */
    if (auth->cfg.cache != NULL)
        tess_cache_evict(auth->cfg.cache, sid);
    if ((rc = tess_store_destroy(auth->cfg.store, tess_strn(op->sid, op->sid_len), on_logout_destroy, op)) != 0) {
        op_free(op);
        cb(arg, rc, NULL, no_cookie);
    }
}

/* ---- revocation ---------------------------------------------------------------------------------------- */

static void on_revoked(void *arg, int rc)
{
    auth_op_t *op = arg;
    op->cb(op->arg, rc, NULL, no_cookie);
    op_free(op);
}

/* Logout during a migration: the session may live in the fallback strategy; end it there too. */
typedef struct chain_op {
    tess_auth_t *auth;              /* primary */
    tess_auth_cb cb;                /* user callback */
    void *arg;                      /* its argument */
    int everywhere;                 /* logout everywhere rather than one session */
    int64_t now_ms;                 /* request clock */
    int rc;                         /* the primary's result */
    tess_session_t sess;            /* the session (one session) */
    char uid[TESS_USER_ID_MAX + 1]; /* the user (everywhere) */
} chain_op_t;

static void logout_one(tess_auth_t *auth, const tess_session_t *s, tess_auth_cb cb, void *arg);
static void everywhere_one(tess_auth_t *auth, tess_str_t user_id, int64_t now_ms, tess_auth_cb cb, void *arg);

static void chain_done(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    chain_op_t *op = arg;
    tess_auth_t *auth = op->auth;
    (void)s;
    (void)cookie;
    /* Both must have happened: the first error (other than "not there") wins. */
    if (op->rc == 0 || op->rc == TESS_ENOTFOUND)
        op->rc = rc == TESS_ENOTFOUND ? 0 : rc;
    op->cb(op->arg, op->rc, NULL, no_cookie);
    tess_session_clear(&op->sess);
    free(op);
    auth_unref(auth);
}

static void chain_primary_done(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    chain_op_t *op = arg;
    (void)s;
    (void)cookie;
    op->rc = rc;
    if (op->everywhere)
        everywhere_one(op->auth->cfg.fallback, tess_str(op->uid), op->now_ms, chain_done, op);
    else
        logout_one(op->auth->cfg.fallback, &op->sess, chain_done, op);
}

static void chain(tess_auth_t *auth, const tess_session_t *s, tess_str_t user_id, int64_t now_ms, tess_auth_cb cb,
                  void *arg)
{
    chain_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL || (s != NULL && tess_session_copy(&op->sess, s) != 0)) {
        free(op);
        cb(arg, TESS_ENOMEM, NULL, no_cookie);
        return;
    }
    op->auth = auth;
    op->cb = cb;
    op->arg = arg;
    op->now_ms = now_ms;
    op->everywhere = s == NULL;
    if (user_id.len > 0)
        memcpy(op->uid, user_id.ptr, user_id.len);
    auth->inflight++;
    if (op->everywhere)
        everywhere_one(auth, tess_str(op->uid), now_ms, chain_primary_done, op);
    else
        logout_one(auth, &op->sess, chain_primary_done, op);
}

void tess_auth_logout_session(tess_auth_t *auth, const tess_session_t *s, tess_auth_cb cb, void *arg)
{
    if (auth->cfg.fallback != NULL)
        chain(auth, s, tess_strn(NULL, 0), 0, cb, arg);
    else
        logout_one(auth, s, cb, arg);
}

void tess_auth_logout_everywhere(tess_auth_t *auth, tess_str_t user_id, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    if (user_id.len == 0 || user_id.len > TESS_USER_ID_MAX) {
        cb(arg, TESS_EINVAL, NULL, no_cookie);
        return;
    }
    if (auth->cfg.fallback != NULL)
        chain(auth, NULL, user_id, now_ms, cb, arg);
    else
        everywhere_one(auth, user_id, now_ms, cb, arg);
}

static void logout_one(tess_auth_t *auth, const tess_session_t *s, tess_auth_cb cb, void *arg)
{
    auth_op_t *op;

    if (auth->cfg.strategy != TESS_STRATEGY_JWT) {
        tess_auth_logout(auth, tess_str(s->id), cb, arg);
        return;
    }
    if (auth->cfg.revoker == NULL) {
        cb(arg, 0, NULL, no_cookie); /* nothing to revoke with: the browser drops the cookie */
        return;
    }
    if ((op = op_new(auth, cb, arg, 0)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, no_cookie);
        return;
    }
    tess_revoker_deny(auth->cfg.revoker, tess_str(s->id), s->expires_ms, on_revoked, op);
}

static void on_everywhere_store(void *arg, int rc, const tess_session_t *unused)
{
    auth_op_t *op = arg;
    tess_auth_t *auth = op->auth;
    (void)unused;
    if (auth->cfg.cache != NULL)
        tess_cache_evict_user(auth->cfg.cache, tess_strn(op->sid, op->sid_len));
    if (rc != 0 && rc != TESS_ENOTFOUND) {
        on_revoked(op, rc);
        return;
    }
    if (auth->cfg.revoker == NULL) {
        on_revoked(op, 0);
        return;
    }
    /* Keep the cut-off as long as any token issued before it can live. */
    tess_revoker_cut(auth->cfg.revoker, tess_strn(op->sid, op->sid_len), op->now_ms,
                     auth->cfg.policy.ttl_s * 1000 + 60000, on_revoked, op);
}

static void everywhere_one(tess_auth_t *auth, tess_str_t user_id, int64_t now_ms, tess_auth_cb cb, void *arg)
{
    auth_op_t *op;
    int rc;

    if ((op = op_new(auth, cb, arg, now_ms)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL, no_cookie);
        return;
    }
    op->sid_len = user_id.len; /* the user id rides in the id buffer (TESS_USER_ID_MAX < TESS_SID_MAX) */
    memcpy(op->sid, user_id.ptr, user_id.len);
    op->sid[user_id.len] = '\0';
    if (auth->cfg.cache != NULL)
        tess_cache_evict_user(auth->cfg.cache, user_id);
    if (auth->cfg.store == NULL || auth->cfg.strategy == TESS_STRATEGY_JWT) {
        on_everywhere_store(op, 0, NULL);
        return;
    }
    if ((rc = tess_store_destroy_user(auth->cfg.store, tess_strn(op->sid, op->sid_len), on_everywhere_store, op)) != 0)
        on_everywhere_store(op, rc, NULL);
}
