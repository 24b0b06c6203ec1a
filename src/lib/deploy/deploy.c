/*
 * A deployment (tessera/deploy.h): which backends each strategy needs, opened from URLs, and the coherence
 * router that turns invalidated Redis keys into evictions.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "cache/dbwatch.h"
#include "redis/rconn.h"
#include "tessera/coherence.h"
#include "tessera/deploy.h"
#include "tessera/error.h"
#include "tessera/jwe.h"
#include "tessera/jwt.h"
#include "tessera/revoke.h"

/* What a strategy needs wired in. A new strategy adds a row (and its own row in the auth table). */
typedef struct wiring {
    tess_strategy_t strategy;                               /* the strategy */
    enum { STORE_NONE, STORE_DATABASE, STORE_REDIS } store; /* where its sessions live */
    int near_cache;                                         /* fronted by the process-wide near-cache */
    int l2;                                                 /* with Redis: an L2 copy in front of the store */
    tess_strategy_t as_fallback; /* the strategy that reads its sessions during a migration (no caches) */
} wiring_t;

static const wiring_t wirings[] = {
    {TESS_STRATEGY_DB, STORE_DATABASE, 0, 0, TESS_STRATEGY_DB},
    {TESS_STRATEGY_REDIS, STORE_REDIS, 0, 0, TESS_STRATEGY_REDIS},
    {TESS_STRATEGY_JWT, STORE_NONE, 0, 0, TESS_STRATEGY_JWT},
    {TESS_STRATEGY_CACHED, STORE_DATABASE, 1, 1, TESS_STRATEGY_DB},
};

struct tess_deploy {
    tess_deploy_opts_t o;                             /* options (strings below are our copies) */
    const wiring_t *w;                                /* the strategy's wiring */
    const wiring_t *fw;                               /* the fallback's, or NULL */
    char *database_url;                               /* copied */
    char *redis_url;                                  /* copied ("" for none); never logged */
    char cookie_name[64];                             /* "" for the strategy's default */
    char user_claim[TESS_JWT_CLAIM_NAME_MAX + 1];     /* "" for the default */
    char role_claim[TESS_JWT_CLAIM_NAME_MAX + 1];     /* "" for the default */
    char nextauth_role[TESS_NEXTAUTH_COLUMN_MAX + 1]; /* NextAuth's role column, "" for none */
    char nextauth_default_role[TESS_ROLE_MAX + 1];    /* its default role ("" for visitor) */
    tess_revlist_t *revlist;                          /* token revocation in the database (no Redis) */
    char session_prefix[TESS_KEY_PREFIX_MAX + 1];     /* <session> */
    char tessera_prefix[TESS_KEY_PREFIX_MAX + 1];     /* <tessera> */
    char l2_prefix[TESS_KEY_L2_PREFIX_MAX + 1];       /* <tessera>l2: (apart from the redis store's keys) */
    char epoch_key[TESS_KEY_MAX + 1];                 /* <tessera>epoch */
    tess_cache_t *cache;                              /* near-cache (cached), shared */
    tess_cache_t *rcache;                             /* revocation answers (with Redis), shared */
    tess_inval_t *inval;                              /* the coherence listener (with Redis) */
    tess_dbwatch_t *watch;                            /* the session table's writes (cached, unless opted out) */
    tess_loop_t *listen_loop;                         /* the loop of `inval` and `watch` */
    int redis_up, watch_up;                           /* their states (the listener loop's thread) */
    pthread_mutex_t lock;                             /* guards `loops` */
    tess_deploy_loop_t *loops;                        /* open loop parts */
};

struct tess_deploy_loop {
    tess_deploy_t *d;              /* the deployment */
    tess_loop_t *loop;             /* its loop */
    tess_redis_t *redis;           /* the loop's shared Redis connection (with Redis) */
    tess_store_t *store;           /* session store (NULL for tokens) */
    tess_store_t *timed;           /* its timing view, the strategy's store (tess_timedstore_open) */
    tess_store_t *fallback_store;  /* migration: the fallback's store */
    tess_jwt_t *jwt;               /* JWT verifier */
    tess_jwe_t *jwe;               /* JWE decrypter (a nextauth / authjs format) */
    tess_revoker_t *revoker;       /* token revocation (with Redis) */
    tess_auth_t *auth;             /* the strategy */
    tess_auth_t *fallback;         /* migration: the strategy moved away from */
    struct tess_deploy_loop *next; /* list of the deployment's loops */
};

static const wiring_t *wiring_of(tess_strategy_t s)
{
    for (size_t i = 0; i < sizeof(wirings) / sizeof(wirings[0]); ++i) {
        if (wirings[i].strategy == s)
            return &wirings[i];
    }
    return NULL;
}

static int has_redis(const tess_deploy_t *d)
{
    return d->redis_url[0] != '\0';
}

/* db / cached under a nextauth / authjs format: sessions in NextAuth's Prisma tables. */
static int nextauth_tables(const tess_deploy_t *d)
{
    return d->o.format != TESS_FORMAT_EXPRESS && d->w->store == STORE_DATABASE;
}

/* The near-cache follows the session table's writes by anyone through the database's own notifications. */
static int wants_watch(const tess_deploy_t *d)
{
    return d->w->near_cache && d->w->store == STORE_DATABASE && !d->o.no_session_triggers &&
           tess_dbwatch_supported(d->database_url);
}

/* Without Redis, JWTs are revoked through the database's table (and its in-process mirror). */
static int wants_revlist(const tess_deploy_t *d)
{
    return !has_redis(d) && d->database_url[0] != '\0' &&
           (d->w->strategy == TESS_STRATEGY_JWT || (d->fw != NULL && d->fw->strategy == TESS_STRATEGY_JWT) ||
            d->o.token_revocation);
}

/* Another process's revocation, now in the mirror: held requests of that token or user re-check. */
static void on_revlist_change(void *arg, int kind, tess_str_t id)
{
    tess_deploy_t *d = arg;
    if (d->o.on_session_key == NULL)
        return;
    if (kind == TESS_REVLIST_ANY_ROW)
        d->o.on_session_key(d->o.app_arg, TESS_KEYKIND_EPOCH, tess_strn(NULL, 0));
    else if (id.len > 0)
        d->o.on_session_key(d->o.app_arg, kind == TESS_REVLIST_CUT_ROW ? TESS_KEYKIND_CUTOFF : TESS_KEYKIND_DENY, id);
}

/* Creates the list once (blocking: start-up). */
static int ensure_revlist(tess_deploy_t *d, char *err, size_t errcap)
{
    tess_revlist_opts_t ro = {
        .database_url = d->database_url, .timeout_ms = d->o.timeout_ms, .on_change = on_revlist_change, .arg = d};
    int rc = 0;
    if (!wants_revlist(d))
        return 0;
    pthread_mutex_lock(&d->lock);
    if (d->revlist == NULL)
        rc = tess_revlist_new(&d->revlist, &ro, err, errcap);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* ---- coherence ------------------------------------------------------------------------------------------ */

static void flush_caches(tess_deploy_t *d)
{
    if (d->cache != NULL)
        tess_cache_flush(d->cache);
    if (d->rcache != NULL)
        tess_cache_flush(d->rcache);
}

static void session_key(tess_deploy_t *d, tess_key_kind_t kind, tess_str_t id)
{
    if (d->o.on_session_key != NULL && id.len > 0)
        d->o.on_session_key(d->o.app_arg, kind, id);
}

/* An invalidation from Redis (listener thread): evict what the key stands for. */
static void on_key(void *arg, tess_str_t key)
{
    tess_deploy_t *d = arg;
    tess_keyspace_t ks = {d->session_prefix, d->tessera_prefix};
    char tag[TESS_SID_MAX + 3];
    tess_str_t rest;

    switch (key.len == 0 ? TESS_KEYKIND_EPOCH : tess_keyspace_classify(&ks, key, &rest)) {
    case TESS_KEYKIND_EPOCH: /* everything (FLUSHDB), or a listener came back somewhere */
        flush_caches(d);
        if (d->o.on_app_key != NULL)
            d->o.on_app_key(d->o.app_arg, tess_strn(NULL, 0));
        break;
    case TESS_KEYKIND_APP:
        if (d->o.on_app_key != NULL && rest.len > 0)
            d->o.on_app_key(d->o.app_arg, rest);
        break;
    case TESS_KEYKIND_DENY:
        if (rest.len <= TESS_SID_MAX) {
            snprintf(tag, sizeof(tag), TESS_REVOKE_DENY_TAG "%.*s", (int)rest.len, rest.ptr);
            tess_cache_evict(d->rcache, tess_str(tag));
            session_key(d, TESS_KEYKIND_DENY, rest);
        }
        break;
    case TESS_KEYKIND_CUTOFF:
        if (rest.len <= TESS_USER_ID_MAX) {
            snprintf(tag, sizeof(tag), TESS_REVOKE_CUT_TAG "%.*s", (int)rest.len, rest.ptr);
            tess_cache_evict(d->rcache, tess_str(tag));
            if (d->cache != NULL)
                tess_cache_evict_user(d->cache, rest);
            session_key(d, TESS_KEYKIND_CUTOFF, rest);
        }
        break;
    case TESS_KEYKIND_SESSION:
        if (d->cache != NULL)
            tess_cache_evict(d->cache, rest);
        session_key(d, TESS_KEYKIND_SESSION, rest);
        break;
    case TESS_KEYKIND_USER_SET:
    case TESS_KEYKIND_OTHER:
        break;
    }
}

/*
 * The near-cache caches while every channel that reports its entries' changes is up: Redis (with Redis) and
 * the session table's watcher (when there is one). Any change of either starts it afresh: flushed.
 */
static void near_cache_update(tess_deploy_t *d)
{
    int up = (!has_redis(d) || d->redis_up) && (!wants_watch(d) || d->watch_up);
    if (d->cache == NULL)
        return;
    tess_cache_flush(d->cache);
    tess_cache_set_enabled(d->cache, up);
}

/* The Redis listener went down (stop caching: nothing is reported) or came back (start afresh). */
static void on_state(void *arg, int up)
{
    tess_deploy_t *d = arg;
    d->redis_up = up;
    if (d->rcache != NULL) {
        tess_cache_flush(d->rcache);
        tess_cache_set_enabled(d->rcache, up);
    }
    near_cache_update(d);
    if (d->o.on_coherence != NULL)
        d->o.on_coherence(d->o.app_arg, up);
}

/* The listener loop's own part (its Redis connection and store), or NULL. */
static tess_deploy_loop_t *listen_part(tess_deploy_t *d)
{
    tess_deploy_loop_t *l;
    pthread_mutex_lock(&d->lock);
    for (l = d->loops; l != NULL && l->loop != d->listen_loop; l = l->next)
        ;
    pthread_mutex_unlock(&d->lock);
    return l;
}

typedef struct forget_op {
    tess_deploy_t *d;
    size_t len;
    char sid[TESS_SID_MAX];
} forget_op_t;

/* The L2 copy is gone: a lookup that read it meanwhile may have filled the near-cache again. */
static void on_l2_forgotten(void *arg, int rc, const tess_session_t *s)
{
    forget_op_t *op = arg;
    (void)rc;
    (void)s;
    if (op->d->cache != NULL)
        tess_cache_evict(op->d->cache, tess_strn(op->sid, op->len));
    free(op);
}

static void ignore_redis(void *arg, int rc, redisReply *r)
{
    (void)arg;
    (void)rc;
    (void)r;
}

/* A write to the session table by anyone (watcher's loop): the copies of that row go, everywhere. */
static void on_watch_change(void *arg, tess_dbwatch_kind_t kind, tess_str_t sid)
{
    tess_deploy_t *d = arg;
    tess_deploy_loop_t *l = d->w->l2 && has_redis(d) ? listen_part(d) : NULL;
    forget_op_t *op;

    if (kind == TESS_DBWATCH_USER) { /* a role changed: every copy of the user's sessions carries the old one */
        if (d->cache != NULL)
            tess_cache_evict_user(d->cache, sid);
        if (l != NULL && l->redis != NULL) {
            const char *argv[] = {"INCR", d->epoch_key}; /* rare: every L2 copy goes rather than a lookup per user */
            tess__rconn_command(l->redis, ignore_redis, NULL, 2, argv, NULL);
        }
        session_key(d, TESS_KEYKIND_CUTOFF, sid);
        return;
    }
    if (kind == TESS_DBWATCH_ALL) {
        if (d->cache != NULL)
            tess_cache_flush(d->cache);
        if (l != NULL && l->redis != NULL) {
            /* Every L2 copy is older than the new epoch now (and every instance hears of the key). */
            const char *argv[] = {"INCR", d->epoch_key};
            tess__rconn_command(l->redis, ignore_redis, NULL, 2, argv, NULL);
        }
        if (d->o.on_session_key != NULL)
            d->o.on_session_key(d->o.app_arg, TESS_KEYKIND_EPOCH, tess_strn(NULL, 0));
        return;
    }
    if (d->cache != NULL)
        tess_cache_evict(d->cache, sid);
    if (l != NULL && l->store != NULL && (op = malloc(sizeof(*op))) != NULL) {
        op->d = d;
        op->len = sid.len;
        memcpy(op->sid, sid.ptr, sid.len);
        if (tess_cachedstore_forget(l->store, sid,
                                    kind == TESS_DBWATCH_GONE       ? TESS_L2_GONE
                                    : kind == TESS_DBWATCH_INSERTED ? TESS_L2_INSERTED
                                                                    : TESS_L2_CHANGED,
                                    on_l2_forgotten, op) != 0)
            free(op);
    }
    if (kind != TESS_DBWATCH_INSERTED)
        session_key(d, TESS_KEYKIND_SESSION, sid); /* held requests of that session check it again */
}

static void on_watch_state(void *arg, int up)
{
    tess_deploy_t *d = arg;
    d->watch_up = up;
    near_cache_update(d);
}

/* ---- the process-wide part ------------------------------------------------------------------------------ */

/*
 * Which strategies read a session format other than express's. The one place to change when another strategy
 * learns one (NextAuth's database sessions, the Prisma adapter's tables, for db and cached).
 */
static int format_check(const tess_deploy_opts_t *o, const wiring_t *w, const wiring_t *fw, char *err, size_t errcap)
{
    const char *f = tess_session_format_name(o->format);

    if (o->format == TESS_FORMAT_EXPRESS)
        return 0;
    if (strcmp(f, "unknown") == 0) {
        snprintf(err, errcap, "unknown session format");
        return TESS_EINVAL;
    }
    if (w->strategy == TESS_STRATEGY_REDIS) {
        snprintf(err, errcap,
                 "SESSION_FORMAT=%s with strategy redis: NextAuth and Auth.js keep no sessions in Redis "
                 "(use strategy jwt)",
                 f);
        return TESS_EINVAL;
    }
    /* db / cached: NextAuth's and Auth.js's database sessions, in the Prisma adapter's tables. */
    if (w->store == STORE_DATABASE && tess_nextauth_check_opts(&o->nextauth, err, errcap) != 0)
        return TESS_EINVAL;
    (void)fw; /* a fallback reads its own (express) sessions */
    return 0;
}

static int check_opts(const tess_deploy_opts_t *o, const wiring_t *w, const wiring_t *fw, char *err, size_t errcap)
{
    int redis = o->redis_url != NULL && o->redis_url[0] != '\0';
    const tess_store_driver_t *db = tess_store_driver_for_url(o->database_url);
    tess_keyspace_t ks = o->keys;

    if (w == NULL || (o->has_fallback && fw == NULL)) {
        snprintf(err, errcap, "unknown strategy");
        return TESS_EINVAL;
    }
    if (o->has_fallback && fw == w) {
        snprintf(err, errcap, "the fallback strategy must differ from the strategy");
        return TESS_EINVAL;
    }
    if ((w->store == STORE_REDIS || (fw != NULL && fw->store == STORE_REDIS)) && !redis) {
        snprintf(err, errcap, "strategy 'redis' needs a Redis URL");
        return TESS_EINVAL;
    }
    /* The store drivers also take Redis URLs: a database is SQLite or PostgreSQL (Redis is strategy 'redis'). */
    if ((w->store == STORE_DATABASE || (fw != NULL && fw->store == STORE_DATABASE)) &&
        (db == NULL || strcmp(db->name, "redis") == 0)) {
        snprintf(err, errcap, "unsupported database URL: expected sqlite:PATH or postgres://...");
        return TESS_EINVAL;
    }
    if (redis && tess_redis_url_check(o->redis_url, err, errcap) != 0)
        return TESS_EINVAL;
    if (format_check(o, w, fw, err, errcap) != 0)
        return TESS_EINVAL;
    if (o->secrets == NULL) {
        snprintf(err, errcap, "no secrets");
        return TESS_EINVAL;
    }
    if (tess_keyspace_check(&ks) != 0) {
        snprintf(err, errcap, "bad Redis key prefixes: 1 to %d bytes each, neither a prefix of the other",
                 TESS_KEY_PREFIX_MAX);
        return TESS_EINVAL;
    }
    if ((o->jwt_user_claim != NULL && strlen(o->jwt_user_claim) > TESS_JWT_CLAIM_NAME_MAX) ||
        (o->jwt_role_claim != NULL && strlen(o->jwt_role_claim) > TESS_JWT_CLAIM_NAME_MAX)) {
        snprintf(err, errcap, "JWT claim name longer than %d bytes", TESS_JWT_CLAIM_NAME_MAX);
        return TESS_EINVAL;
    }
    if (o->cookie_name != NULL && strlen(o->cookie_name) >= 64) {
        snprintf(err, errcap, "cookie name longer than 63 bytes");
        return TESS_EINVAL;
    }
    return 0;
}

int tess_deploy_new(tess_deploy_t **out, const tess_deploy_opts_t *opts, char *err, size_t errcap)
{
    const wiring_t *w = wiring_of(opts->strategy), *fw = opts->has_fallback ? wiring_of(opts->fallback) : NULL;
    tess_deploy_t *d = NULL;
    int rc;

    *out = NULL;
    if ((rc = check_opts(opts, w, fw, err, errcap)) != 0)
        return rc;
    if ((d = calloc(1, sizeof(*d))) == NULL)
        return TESS_ENOMEM;
    pthread_mutex_init(&d->lock, NULL);
    d->o = *opts;
    d->w = w;
    d->fw = fw;
    d->database_url = strdup(opts->database_url != NULL ? opts->database_url : "");
    d->redis_url = strdup(opts->redis_url != NULL ? opts->redis_url : "");
    if (d->database_url == NULL || d->redis_url == NULL) {
        rc = TESS_ENOMEM;
        goto out;
    }
    snprintf(d->cookie_name, sizeof(d->cookie_name), "%s", opts->cookie_name != NULL ? opts->cookie_name : "");
    snprintf(d->user_claim, sizeof(d->user_claim), "%s", opts->jwt_user_claim != NULL ? opts->jwt_user_claim : "");
    snprintf(d->role_claim, sizeof(d->role_claim), "%s", opts->jwt_role_claim != NULL ? opts->jwt_role_claim : "");
    snprintf(d->nextauth_role, sizeof(d->nextauth_role), "%s",
             opts->nextauth.role_column != NULL ? opts->nextauth.role_column : "");
    snprintf(d->nextauth_default_role, sizeof(d->nextauth_default_role), "%s",
             opts->nextauth.default_role != NULL ? opts->nextauth.default_role : "");
    d->o.nextauth.role_column = d->nextauth_role;
    d->o.nextauth.default_role = d->nextauth_default_role;
    d->o.jwt_user_claim = d->user_claim;
    d->o.jwt_role_claim = d->role_claim;
    snprintf(d->session_prefix, sizeof(d->session_prefix), "%s", tess_keyspace_session(&opts->keys));
    snprintf(d->tessera_prefix, sizeof(d->tessera_prefix), "%s", tess_keyspace_tessera(&opts->keys));
    snprintf(d->epoch_key, sizeof(d->epoch_key), "%s" TESS_KEY_EPOCH, d->tessera_prefix);
    snprintf(d->l2_prefix, sizeof(d->l2_prefix), "%s" TESS_KEY_L2, d->tessera_prefix);
    d->o.database_url = d->database_url;
    d->o.redis_url = d->redis_url;
    d->o.cookie_name = d->cookie_name;
    d->o.keys.session = d->session_prefix;
    d->o.keys.tessera = d->tessera_prefix;

    if (w->near_cache && (rc = tess_cache_new(&d->cache, &d->o.cache)) != 0) {
        snprintf(err, errcap, "cannot create the near-cache: %s", tess_strerror(rc));
        goto out;
    }
    if (has_redis(d)) {
        tess_cache_opts_t ro;
        tess_cache_opts_default(&ro);
        ro.negative_ttl_ms = ro.ttl_ms; /* "not revoked" is as good an answer as "revoked" */
        if ((rc = tess_cache_new(&d->rcache, &ro)) != 0) {
            snprintf(err, errcap, "cannot create the revocation cache: %s", tess_strerror(rc));
            goto out;
        }
        /* Nothing is cached until the coherence channel is up. */
        if (d->cache != NULL)
            tess_cache_set_enabled(d->cache, 0);
        tess_cache_set_enabled(d->rcache, 0);
    }
    if (d->cache != NULL && wants_watch(d))
        tess_cache_set_enabled(d->cache, 0); /* nor until the session table's watcher is */
    *out = d;
    d = NULL;
out:
    tess_deploy_free(d);
    return rc;
}

void tess_deploy_free(tess_deploy_t *d)
{
    if (d == NULL)
        return;
    tess_inval_free(d->inval);
    tess_dbwatch_free(d->watch);
    tess_revlist_free(d->revlist);
    tess_cache_free(d->cache);
    tess_cache_free(d->rcache);
    pthread_mutex_destroy(&d->lock);
    if (d->redis_url != NULL)
        explicit_bzero(d->redis_url, strlen(d->redis_url));
    free(d->redis_url);
    free(d->database_url);
    free(d);
}

int tess_deploy_migrate(tess_deploy_t *d, char *err, size_t errcap)
{
    tess_store_params_t p = {.url = d->database_url, .timeout_ms = d->o.timeout_ms};
    int rc;
    if ((rc = ensure_revlist(d, err, errcap)) != 0)
        return rc;
    if (nextauth_tables(d)) {
        /* The app's tables: checked, not created (a fallback's own express table still is). */
        if ((rc = tess_nextauth_migrate(&p, &d->o.nextauth, err, errcap)) != 0)
            return rc;
        if (d->fw != NULL && d->fw->store == STORE_DATABASE && (rc = tess_store_migrate_url(&p, err, errcap)) != 0)
            return rc;
    } else if ((d->w->store == STORE_DATABASE || (d->fw != NULL && d->fw->store == STORE_DATABASE)) &&
               (rc = tess_store_migrate_url(&p, err, errcap)) != 0) {
        return rc;
    }
    if (!wants_watch(d))
        return 0;
    return tess_dbwatch_migrate(d->database_url, d->o.timeout_ms, nextauth_tables(d) ? d->nextauth_role : NULL, err,
                                errcap);
}

int tess_deploy_listen(tess_deploy_t *d, tess_loop_t *loop, char *err, size_t errcap)
{
    const char *prefixes[] = {d->session_prefix, d->tessera_prefix};
    tess_inval_opts_t io = {
        .url = d->redis_url,
        .prefixes = prefixes,
        .nprefixes = 2,
        .timeout_ms = d->o.timeout_ms,
        .epoch_key = d->epoch_key,
        .on_key = on_key,
        .on_state = on_state,
        .arg = d,
    };
    tess_dbwatch_opts_t wo = {
        .database_url = d->database_url,
        .timeout_ms = d->o.timeout_ms,
        .on_change = on_watch_change,
        .on_state = on_watch_state,
        .arg = d,
    };
    int rc;

    d->listen_loop = loop;
    if (wants_watch(d) && d->watch == NULL && (rc = tess_dbwatch_open(&d->watch, loop, &wo, err, errcap)) != 0)
        return rc;
    if (!has_redis(d)) {
        rc = ensure_revlist(d, err, errcap);
        return rc != 0 || d->revlist == NULL ? rc : tess_revlist_listen(d->revlist, loop, err, errcap);
    }
    if (d->inval != NULL)
        return 0;
    return tess_inval_open(&d->inval, loop, &io, err, errcap);
}

void tess_deploy_unlisten(tess_deploy_t *d)
{
    tess_inval_free(d->inval);
    d->inval = NULL;
    tess_dbwatch_free(d->watch);
    d->watch = NULL;
    tess_revlist_unlisten(d->revlist);
}

int tess_deploy_coherent(const tess_deploy_t *d)
{
    return has_redis(d) || wants_watch(d);
}

/* Every channel the deployment's caches rely on is up (any thread). */
static int coherence_up(const tess_deploy_t *d)
{
    return (!has_redis(d) || (d->inval != NULL && tess_inval_up(d->inval))) &&
           (!wants_watch(d) || tess_dbwatch_up(d->watch));
}

/* ---- the per-loop part ---------------------------------------------------------------------------------- */

/*
 * The session store of wiring `w` on this loop (NULL for tokens); `primary`: the strategy's own (NextAuth's
 * tables under a nextauth / authjs format, and the Redis copy in front), not the fallback's.
 */
static int open_store(tess_deploy_loop_t *l, const wiring_t *w, int primary, tess_store_t **out, char *err,
                      size_t errcap)
{
    tess_deploy_t *d = l->d;
    tess_store_params_t p = {
        .loop = l->loop, .redis = l->redis, .prefix = d->session_prefix, .timeout_ms = d->o.timeout_ms};
    int rc;

    *out = NULL;
    switch (w->store) {
    case STORE_NONE:
        return 0;
    case STORE_REDIS:
        p.url = d->redis_url;
        return tess_store_open_url(out, &p, err, errcap);
    case STORE_DATABASE:
        p.url = d->database_url;
        rc = primary && nextauth_tables(d) ? tess_nextauth_open(out, &p, &d->o.nextauth, err, errcap)
                                           : tess_store_open_url(out, &p, err, errcap);
        if (rc != 0 || !primary || !w->l2 || !has_redis(d))
            return rc;
        {
            tess_l2_opts_t lo = {
                .conn = l->redis, .prefix = d->l2_prefix, .epoch_key = d->epoch_key, .ttl_ms = d->o.l2_ttl_ms};
            tess_store_t *inner = *out;
            *out = NULL;
            return tess_cachedstore_open(out, inner, l->loop, &lo, err, errcap);
        }
    }
    return TESS_EINVAL;
}

int tess_deploy_loop_open(tess_deploy_loop_t **out, tess_deploy_t *d, tess_loop_t *loop, char *err, size_t errcap)
{
    tess_jwt_opts_t jo = {
        .leeway_s = d->o.jwt_leeway_s, .max_token_len = 0, .user_claim = d->user_claim, .role_claim = d->role_claim};
    tess_auth_config_t ac = {0};
    tess_deploy_loop_t *l;
    int rc;

    *out = NULL;
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return TESS_ENOMEM;
    l->d = d;
    l->loop = loop;
    /* One Redis connection per loop, shared by the store, the L2 copy, revocation and publish. */
    if (has_redis(d)) {
        tess_revoker_opts_t rv = {.prefix = d->tessera_prefix, .cache = d->rcache};
        if ((rc = tess_redis_open(&l->redis, loop, d->redis_url, d->o.timeout_ms, err, errcap)) != 0)
            goto fail;
        rv.conn = l->redis;
        if ((rc = tess_revoker_open(&l->revoker, loop, &rv, err, errcap)) != 0)
            goto fail;
    } else if (wants_revlist(d)) {
        tess_revoker_opts_t rv = {.timeout_ms = d->o.timeout_ms};
        if ((rc = ensure_revlist(d, err, errcap)) != 0)
            goto fail;
        rv.list = d->revlist;
        if ((rc = tess_revoker_open(&l->revoker, loop, &rv, err, errcap)) != 0)
            goto fail;
    }
    if ((rc = open_store(l, d->w, 1, &l->store, err, errcap)) != 0)
        goto fail;
    if (l->store != NULL && (rc = tess_timedstore_open(&l->timed, l->store)) != 0) {
        snprintf(err, errcap, "cannot set up the session store: %s", tess_strerror(rc));
        goto fail;
    }
    if ((rc = tess_jwt_new(&l->jwt, d->o.secrets, &jo)) != 0) {
        snprintf(err, errcap, "cannot set up JWT verification: %s", tess_strerror(rc));
        goto fail;
    }
    if (d->o.format != TESS_FORMAT_EXPRESS && d->w->strategy == TESS_STRATEGY_JWT) {
        tess_jwe_opts_t eo = {.format = d->o.format,
                              .cookie_name = d->cookie_name,
                              .leeway_s = d->o.jwt_leeway_s,
                              .max_token_len = 0,
                              .user_claim = d->user_claim,
                              .role_claim = d->role_claim};
        if ((rc = tess_jwe_new(&l->jwe, d->o.secrets, &eo)) != 0) {
            snprintf(err, errcap, "cannot set up %s token decryption: %s", tess_session_format_name(d->o.format),
                     tess_strerror(rc));
            goto fail;
        }
    }
    ac.strategy = d->w->strategy;
    ac.secrets = d->o.secrets;
    ac.policy = d->o.policy;
    ac.cookie_name = tess_str(d->cookie_name);
    ac.format = nextauth_tables(d) ? d->o.format : TESS_FORMAT_EXPRESS;
    ac.store = l->timed;
    ac.cache = d->cache;
    ac.jwt = l->jwt;
    ac.jwe = l->jwe;
    ac.revoker = l->revoker;
    ac.loop = loop;
    if (d->fw != NULL) {
        tess_auth_config_t fc = ac;
        if ((rc = open_store(l, d->fw, 0, &l->fallback_store, err, errcap)) != 0)
            goto fail;
        fc.strategy = d->fw->as_fallback;
        fc.cookie_name = tess_strn(NULL, 0); /* the old strategy's own cookie */
        fc.jwe = NULL;                       /* and its own (express) format */
        fc.format = TESS_FORMAT_EXPRESS;
        fc.store = l->fallback_store;
        fc.cache = NULL;
        fc.loop = NULL;
        if ((rc = tess_auth_new(&l->fallback, &fc)) != 0) {
            snprintf(err, errcap, "cannot set up the fallback strategy: %s", tess_strerror(rc));
            goto fail;
        }
        ac.fallback = l->fallback;
    }
    if ((rc = tess_auth_new(&l->auth, &ac)) != 0) {
        snprintf(err, errcap, "cannot set up the %s strategy: %s", tess_strategy_name(ac.strategy), tess_strerror(rc));
        goto fail;
    }
    pthread_mutex_lock(&d->lock);
    l->next = d->loops;
    d->loops = l;
    pthread_mutex_unlock(&d->lock);
    *out = l;
    return 0;
fail:
    tess_deploy_loop_close(l);
    return rc;
}

void tess_deploy_loop_close(tess_deploy_loop_t *l)
{
    tess_deploy_t *d;

    if (l == NULL)
        return;
    d = l->d;
    pthread_mutex_lock(&d->lock);
    for (tess_deploy_loop_t **pp = &d->loops; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    pthread_mutex_unlock(&d->lock);
    /*
     * The shared Redis connection goes first: closing it completes its pending commands (with an error),
     * and their callbacks still find the stores, the revoker and the strategy they belong to.
     */
    tess_redis_close(l->redis);
    tess_auth_free(l->auth);
    tess_auth_free(l->fallback);
    tess_store_close(l->fallback_store);
    tess_revoker_free(l->revoker);
    tess_jwt_free(l->jwt);
    tess_jwe_free(l->jwe);
    tess_store_close(l->store);
    tess_store_close(l->timed); /* after the store: its last callbacks pass through the view */
    free(l);
}

tess_auth_t *tess_deploy_loop_auth(const tess_deploy_loop_t *l)
{
    return l->auth;
}

tess_auth_t *tess_deploy_loop_fallback(const tess_deploy_loop_t *l)
{
    return l->fallback;
}

int tess_deploy_loop_ping(tess_deploy_loop_t *l, tess_store_cb cb, void *arg)
{
    if (l->d->revlist != NULL && !tess_revlist_current(l->d->revlist)) {
        cb(arg, TESS_EUNAVAIL, NULL); /* token checks fail closed until the mirror is current */
        return 0;
    }
    if (l->store == NULL) {
        cb(arg, 0, NULL);
        return 0;
    }
    return tess_store_ping(l->store, cb, arg);
}

int tess_deploy_loop_prune(tess_deploy_loop_t *l, int64_t now_ms, int batch, tess_store_cb cb, void *arg)
{
    if (l->store == NULL) {
        cb(arg, 0, NULL);
        return 0;
    }
    return tess_store_prune(l->store, now_ms, batch, cb, arg);
}

static void ignore_reply(void *arg, int rc, redisReply *r)
{
    (void)arg;
    (void)rc;
    (void)r;
}

void tess_deploy_loop_publish(tess_deploy_loop_t *l, tess_str_t name)
{
    char key[TESS_KEY_MAX + 1];
    size_t n;
    if (l->redis == NULL || name.len == 0 || name.len > 64 ||
        tess__redis_key(tess_str(l->d->tessera_prefix), TESS_KEY_APP, name, key, sizeof(key), &n) != 0)
        return;
    /* Every instance hears of it through client tracking (the INCR always changes the key). */
    const char *argv[] = {"INCR", key};
    size_t lens[] = {4, n};
    tess__rconn_command(l->redis, ignore_reply, NULL, 2, argv, lens);
}

/* ---- counters ------------------------------------------------------------------------------------------- */

void tess_deploy_stats(tess_deploy_t *d, tess_deploy_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&d->lock);
    for (tess_deploy_loop_t *l = d->loops; l != NULL; l = l->next) {
        tess_auth_stats_t as;
        tess_auth_get_stats(l->auth, &as);
        out->auth.checks += as.checks;
        out->auth.rejected_early += as.rejected_early;
        out->auth.store_lookups += as.store_lookups;
        out->auth.touches += as.touches;
        out->auth.fallback_checks += as.fallback_checks;
        out->auth.copied_forward += as.copied_forward;
        if (l->store != NULL) {
            tess_store_stats_t ss;
            tess_store_get_stats(l->store, &ss);
            out->store.gets += ss.gets;
            out->store.writes += ss.writes;
            out->store.errors += ss.errors;
            tess_timedstore_latency(l->timed, &out->store_latency);
        }
        if (l->store != NULL && d->w->l2 && has_redis(d)) {
            tess_l2_stats_t l2;
            tess_cachedstore_stats(l->store, &l2);
            out->has_l2 = 1;
            out->l2.hits += l2.hits;
            out->l2.misses += l2.misses;
            out->l2.errors += l2.errors;
        }
    }
    pthread_mutex_unlock(&d->lock);
    for (int b = 0; b < TESS__BACKENDS; ++b) {
        tess_backend_stats_t *bs = b == TESS__BACKEND_REDIS ? &out->redis : &out->postgres;
        bs->errors = atomic_load_explicit(&tess__backends[b].errors, memory_order_relaxed);
        bs->timeouts = atomic_load_explicit(&tess__backends[b].timeouts, memory_order_relaxed);
        bs->reconnects = atomic_load_explicit(&tess__backends[b].reconnects, memory_order_relaxed);
    }
    if (d->w->store == STORE_REDIS)
        out->store_kind = "redis";
    else if (d->w->store == STORE_DATABASE)
        out->store_kind = strncmp(d->database_url, "sqlite:", 7) == 0 ? "sqlite" : "postgres";
    if (d->cache != NULL) {
        out->has_cache = 1;
        tess_cache_get_stats(d->cache, &out->cache);
        out->flight_followers = tess_cache_flight_followers(d->cache);
    }
    if (d->rcache != NULL) {
        out->has_revocation = 1;
        tess_cache_get_stats(d->rcache, &out->revocation);
    }
    out->coherence = d->inval == NULL && d->watch == NULL ? -1 : coherence_up(d);
}

/* ---- readiness ------------------------------------------------------------------------------------------ */

typedef struct ready_op {
    tess_deploy_ready_t r;   /* the answer being built */
    int pending;             /* checks outstanding, plus one while they are being started */
    tess_deploy_ready_cb cb; /* the caller's callback */
    void *arg;               /* its argument */
} ready_op_t;

static void ready_step(ready_op_t *op)
{
    if (--op->pending > 0)
        return;
    op->cb(op->arg, &op->r);
    free(op);
}

static void ready_db(void *arg, int rc, const tess_session_t *s)
{
    ready_op_t *op = arg;
    (void)s;
    if (rc != 0) {
        op->r.database = TESS_READY_DOWN;
        if (op->r.database_rc == 0)
            op->r.database_rc = rc;
    }
    ready_step(op);
}

static void ready_redis(void *arg, int rc, redisReply *reply)
{
    ready_op_t *op = arg;
    if (rc == 0 && (reply == NULL || reply->type == REDIS_REPLY_ERROR))
        rc = TESS_EIO; /* e.g. NOAUTH, LOADING */
    if (rc != 0) {
        op->r.redis = TESS_READY_DOWN;
        op->r.redis_rc = rc;
    }
    ready_step(op);
}

static void ready_ping_store(ready_op_t *op, tess_store_t *store)
{
    int rc;
    ++op->pending;
    if ((rc = tess_store_ping(store, ready_db, op)) != 0)
        ready_db(op, rc, NULL);
}

int tess_deploy_loop_ready(tess_deploy_loop_t *l, tess_deploy_ready_cb cb, void *arg)
{
    tess_deploy_t *d = l->d;
    ready_op_t *op;
    int rc;

    if ((op = calloc(1, sizeof(*op))) == NULL)
        return TESS_ENOMEM;
    op->cb = cb;
    op->arg = arg;
    op->pending = 1;
    op->r.redis_required = d->w->store == STORE_REDIS || d->w->strategy == TESS_STRATEGY_JWT ||
                           (d->fw != NULL && (d->fw->store == STORE_REDIS || d->fw->strategy == TESS_STRATEGY_JWT));
    if (d->w->store == STORE_DATABASE || (d->fw != NULL && d->fw->store == STORE_DATABASE))
        op->r.database = TESS_READY_OK; /* until a ping says otherwise */
    if (d->w->store == STORE_DATABASE)
        ready_ping_store(op, l->store);
    if (d->fw != NULL && d->fw->store == STORE_DATABASE)
        ready_ping_store(op, l->fallback_store);
    if (l->redis != NULL) {
        /* A Redis store runs on this same connection: its ping is this PING. */
        const char *argv[] = {"PING"};
        op->r.redis = TESS_READY_OK;
        ++op->pending;
        if ((rc = tess__rconn_command(l->redis, ready_redis, op, 1, argv, NULL)) != 0)
            ready_redis(op, rc, NULL);
    }
    /* Before the listeners start (or while one reconnects) nothing is cached: that reads "down". */
    if (tess_deploy_coherent(d))
        op->r.coherence = coherence_up(d) ? TESS_READY_OK : TESS_READY_DOWN;
    ready_step(op);
    return 0;
}
