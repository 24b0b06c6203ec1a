/*
 * The L2 composite store (tessera/redis.h, tess_cachedstore_open): Redis cache-aside in front of a store.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/rconn.h"
#include "tessera/keyspace.h"
#include "tessera/error.h"
#include "tessera/redis.h"

#define PREFIX_MAX TESS_KEY_L2_PREFIX_MAX
#define KEY_MAX (PREFIX_MAX + 8 + TESS_SID_MAX)

/* Write back a copy unless one (or a tombstone) is there; index it under its user. */
static const char populate_script[] = "if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then\n"
                                      "  redis.call('SADD', KEYS[2], ARGV[3])\n"
                                      "  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then\n"
                                      "    redis.call('PEXPIRE', KEYS[2], ARGV[2])\n"
                                      "  end\n"
                                      "end\n"
                                      "return 1";

/* Tombstones for every session of a user. */
static const char tombstone_user_script[] = "local ids = redis.call('SMEMBERS', KEYS[1])\n"
                                            "for _, id in ipairs(ids) do\n"
                                            "  redis.call('SET', ARGV[1] .. id, '!', 'PX', ARGV[2])\n"
                                            "end\n"
                                            "redis.call('DEL', KEYS[1])\n"
                                            "return #ids";

/* Drop a copy whose expiry is stale, but keep a tombstone (a touch racing a logout must not undo it). */
static const char drop_copy_script[] = "if redis.call('GET', KEYS[1]) ~= '!' then redis.call('DEL', KEYS[1]) end\n"
                                       "return 1";

typedef struct cached_store {
    tess_store_t super;             /* base; first member */
    tess_store_t *inner;            /* source of truth (owned) */
    tess__rconn_t *conn;            /* this loop's Redis connection */
    int owns_conn;                  /* `conn` was opened here (closed with the store) */
    char prefix[PREFIX_MAX + 1];    /* key prefix */
    size_t prefix_len;              /* its length */
    char epoch_key[PREFIX_MAX + 1]; /* epoch key */
    int64_t ttl_ms;                 /* copy lifetime */
    struct {
        _Atomic uint64_t hits, misses, errors; /* as tess_l2_stats_t; read from any thread */
    } l2;
} cached_store_t;

/* One operation in flight. */
typedef struct cop {
    cached_store_t *s;          /* owner */
    tess_store_cb cb;           /* completion */
    void *arg;                  /* its argument */
    int remaining;              /* Redis replies still to come (get) */
    int redis_rc;               /* first Redis error */
    char *value;                /* GET's value */
    size_t value_len;           /* its length */
    int64_t epoch;              /* current epoch as read */
    int epoch_known;            /* the epoch was read */
    int whole_user;             /* destroy_user: `sid` holds the user id */
    size_t sid_len;             /* bytes in sid */
    char sid[TESS_SID_MAX + 1]; /* the id (or the user id for destroy_user) */
} cop_t;

static cop_t *cop_new(cached_store_t *s, tess_str_t id, tess_store_cb cb, void *arg)
{
    cop_t *op;
    if (id.len > TESS_SID_MAX || (op = calloc(1, sizeof(*op))) == NULL)
        return NULL;
    op->s = s;
    op->cb = cb;
    op->arg = arg;
    memcpy(op->sid, id.ptr, id.len);
    op->sid_len = id.len;
    return op;
}

static void cop_free(cop_t *op)
{
    free(op->value);
    free(op);
}

/* `out` has KEY_MAX + 1 bytes; ids are bounded by TESS_SID_MAX, so the key always fits. */
static size_t make_key(cached_store_t *s, const char *infix, tess_str_t id, char *out)
{
    size_t n = 0;
    tess__redis_key(tess_strn(s->prefix, s->prefix_len), infix, id, out, KEY_MAX + 1, &n);
    return n;
}

static void ignore_reply(void *arg, int rc, redisReply *r)
{
    cached_store_t *s = arg;
    if (rc != 0 || r == NULL || r->type == REDIS_REPLY_ERROR)
        atomic_fetch_add_explicit(&s->l2.errors, 1, memory_order_relaxed);
}

/* ---- get ------------------------------------------------------------------------------------------------- */

static void populate(cached_store_t *s, const tess_session_t *sess, int64_t epoch)
{
    char key[KEY_MAX + 1], idx[PREFIX_MAX + 8 + TESS_USER_ID_MAX + 1], ttl[24], *json = NULL, *value = NULL;
    size_t keylen, idxlen, jsonlen, vlen;
    int64_t remaining = sess->expires_ms - tess_now_ms();

    if (remaining <= 0 || strlen(sess->user_id) == 0)
        return;
    if (tess_session_to_json(sess, &json, &jsonlen) != 0)
        return;
    if ((value = malloc(jsonlen + 24)) == NULL)
        goto out;
    vlen = (size_t)snprintf(value, jsonlen + 24, "%" PRId64 ":", epoch);
    memcpy(value + vlen, json, jsonlen);
    vlen += jsonlen;
    keylen = make_key(s, "", tess_str(sess->id), key);
    idxlen = make_key(s, TESS_KEY_USER, tess_str(sess->user_id), idx);
    snprintf(ttl, sizeof(ttl), "%" PRId64, remaining < s->ttl_ms ? remaining : s->ttl_ms);
    const char *argv[] = {"EVAL", populate_script, "2", key, idx, value, ttl, sess->id};
    size_t lens[] = {4, sizeof(populate_script) - 1, 1, keylen, idxlen, vlen, strlen(ttl), strlen(sess->id)};
    tess__rconn_command(s->conn, ignore_reply, s, 8, argv, lens);
out:
    free(value);
    free(json);
}

static void on_inner_get(void *arg, int rc, const tess_session_t *sess)
{
    cop_t *op = arg;
    /* Write back only when Redis answered "no copy" and the epoch is known: never from an outage. */
    if (rc == 0 && sess != NULL && op->redis_rc == 0 && op->epoch_known)
        populate(op->s, sess, op->epoch);
    op->cb(op->arg, rc, sess);
    cop_free(op);
}

static void go_inner_get(cop_t *op)
{
    int rc;
    atomic_fetch_add_explicit(&op->s->l2.misses, 1, memory_order_relaxed);
    if ((rc = tess_store_get(op->s->inner, tess_strn(op->sid, op->sid_len), on_inner_get, op)) != 0) {
        op->cb(op->arg, rc, NULL);
        cop_free(op);
    }
}

/* Parses "<epoch>:<json>" into a session when the stamp is current. Returns 0 or a TESS_E*. */
static int parse_copy(cop_t *op, tess_session_t *out)
{
    char *colon = memchr(op->value, ':', op->value_len);
    int64_t stamp = 0;
    if (colon == NULL || colon == op->value)
        return TESS_EBADFMT;
    for (char *p = op->value; p < colon; ++p) {
        if (*p < '0' || *p > '9' || stamp > INT64_MAX / 10 - 10)
            return TESS_EBADFMT;
        stamp = stamp * 10 + (*p - '0');
    }
    if (!op->epoch_known || stamp != op->epoch)
        return TESS_ECONFLICT; /* written before the last outage: not trusted */
    return tess_session_from_json(out, tess_strn(op->sid, op->sid_len),
                                  tess_strn(colon + 1, op->value_len - (size_t)(colon + 1 - op->value)), 0);
}

static void on_l2_reply(void *arg, int rc, redisReply *r)
{
    cop_t *op = arg;
    tess_session_t sess;

    if (rc == 0 && (r == NULL || r->type == REDIS_REPLY_ERROR))
        rc = TESS_EIO;
    if (rc != 0 && op->redis_rc == 0)
        op->redis_rc = rc;
    if (rc == 0 && op->remaining == 2) { /* GET <key> */
        if (r->type == REDIS_REPLY_STRING && (op->value = malloc(r->len + 1)) != NULL) {
            memcpy(op->value, r->str, r->len);
            op->value[r->len] = '\0';
            op->value_len = r->len;
        }
    } else if (rc == 0) { /* GET <epoch> */
        op->epoch_known = 1;
        if (r->type == REDIS_REPLY_STRING) {
            char *end;
            op->epoch = strtoll(r->str, &end, 10);
            if (*end != '\0')
                op->epoch_known = 0;
        } else if (r->type != REDIS_REPLY_NIL) {
            op->epoch_known = 0;
        }
    }
    if (--op->remaining > 0)
        return;
    if (op->redis_rc != 0) {
        atomic_fetch_add_explicit(&op->s->l2.errors, 1, memory_order_relaxed);
        go_inner_get(op); /* the cache is out: the source of truth answers (slower, not 503) */
        return;
    }
    if (op->value != NULL && op->value_len == 1 && op->value[0] == '!') {
        atomic_fetch_add_explicit(&op->s->l2.hits, 1, memory_order_relaxed);
        op->cb(op->arg, TESS_ENOTFOUND, NULL); /* tombstone: destroyed */
        cop_free(op);
        return;
    }
    if (op->value != NULL) {
        memset(&sess, 0, sizeof(sess));
        if (parse_copy(op, &sess) == 0 && !tess_session_expired(&sess, tess_now_ms())) {
            atomic_fetch_add_explicit(&op->s->l2.hits, 1, memory_order_relaxed);
            op->cb(op->arg, 0, &sess);
            tess_session_clear(&sess);
            cop_free(op);
            return;
        }
        tess_session_clear(&sess);
        /* A stale or unreadable copy: drop it so the write-back (NX) can replace it. */
        char key[KEY_MAX + 1];
        size_t keylen = make_key(op->s, "", tess_strn(op->sid, op->sid_len), key);
        const char *argv[] = {"DEL", key};
        size_t lens[] = {3, keylen};
        tess__rconn_command(op->s->conn, ignore_reply, op->s, 2, argv, lens);
    }
    go_inner_get(op);
}

static int op_get(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg)
{
    cached_store_t *s = (cached_store_t *)store;
    char key[KEY_MAX + 1];
    size_t keylen;
    cop_t *op;

    if (sid.len == 0 || sid.len > TESS_SID_MAX)
        return TESS_EINVAL;
    if ((op = cop_new(s, sid, cb, arg)) == NULL)
        return TESS_ENOMEM;
    tess_store_count(&store->stats.gets);
    op->remaining = 2;
    keylen = make_key(s, "", sid, key);
    const char *a1[] = {"GET", key}, *a2[] = {"GET", s->epoch_key};
    size_t l1[] = {3, keylen}, l2[] = {3, strlen(s->epoch_key)};
    tess__rconn_command(s->conn, on_l2_reply, op, 2, a1, l1);
    tess__rconn_command(s->conn, on_l2_reply, op, 2, a2, l2);
    return 0;
}

/* ---- writes ---------------------------------------------------------------------------------------------- */

static int op_set(tess_store_t *store, const tess_session_t *sess, tess_store_cb cb, void *arg)
{
    cached_store_t *s = (cached_store_t *)store;
    tess_store_count(&store->stats.writes);
    return tess_store_set(s->inner, sess, cb, arg);
}

static void on_inner_touch(void *arg, int rc, const tess_session_t *sess)
{
    cop_t *op = arg;
    char key[KEY_MAX + 1];
    size_t keylen = make_key(op->s, "", tess_strn(op->sid, op->sid_len), key);
    /* The copy's expiry is now stale: drop it (and let every near-cache hear of it). */
    const char *argv[] = {"EVAL", drop_copy_script, "1", key};
    size_t lens[] = {4, sizeof(drop_copy_script) - 1, 1, keylen};
    tess__rconn_command(op->s->conn, ignore_reply, op->s, 4, argv, lens);
    op->cb(op->arg, rc, sess);
    cop_free(op);
}

static int op_touch(tess_store_t *store, tess_str_t sid, int64_t expires_ms, tess_store_cb cb, void *arg)
{
    cached_store_t *s = (cached_store_t *)store;
    cop_t *op;
    int rc;
    if ((op = cop_new(s, sid, cb, arg)) == NULL)
        return TESS_ENOMEM;
    tess_store_count(&store->stats.writes);
    if ((rc = tess_store_touch(s->inner, sid, expires_ms, on_inner_touch, op)) != 0)
        cop_free(op);
    return rc;
}

static void on_inner_destroy(void *arg, int rc, const tess_session_t *sess)
{
    cop_t *op = arg;
    op->cb(op->arg, rc, sess);
    cop_free(op);
}

static void on_tombstone(void *arg, int rc, redisReply *r)
{
    cop_t *op = arg;
    int irc;
    if (rc != 0 || r == NULL || r->type == REDIS_REPLY_ERROR)
        atomic_fetch_add_explicit(&op->s->l2.errors, 1,
                                  memory_order_relaxed); /* best effort: see the header on outages */
    if (op->whole_user)
        irc = tess_store_destroy_user(op->s->inner, tess_strn(op->sid, op->sid_len), on_inner_destroy, op);
    else
        irc = tess_store_destroy(op->s->inner, tess_strn(op->sid, op->sid_len), on_inner_destroy, op);
    if (irc != 0) {
        op->cb(op->arg, irc, NULL);
        cop_free(op);
    }
}

/* A tombstone for `sid` for the copies' lifetime: no lookup writes a copy back over it (SET NX). */
static void tombstone(cached_store_t *s, tess_str_t sid, tess__rconn_cb cb, void *arg)
{
    char key[KEY_MAX + 1], ttl[24];
    size_t keylen = make_key(s, "", sid, key);
    snprintf(ttl, sizeof(ttl), "%" PRId64, s->ttl_ms);
    const char *argv[] = {"SET", key, "!", "PX", ttl};
    size_t lens[] = {3, keylen, 1, 2, strlen(ttl)};
    tess__rconn_command(s->conn, cb, arg, 5, argv, lens);
}

static int op_destroy(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg)
{
    cached_store_t *s = (cached_store_t *)store;
    cop_t *op;

    if (sid.len == 0 || sid.len > TESS_SID_MAX)
        return TESS_EINVAL;
    if ((op = cop_new(s, sid, cb, arg)) == NULL)
        return TESS_ENOMEM;
    tess_store_count(&store->stats.writes);
    tombstone(s, sid, on_tombstone, op);
    return 0;
}

static int op_destroy_user(tess_store_t *store, tess_str_t uid, tess_store_cb cb, void *arg)
{
    cached_store_t *s = (cached_store_t *)store;
    char idx[PREFIX_MAX + 8 + TESS_USER_ID_MAX + 1], ttl[24];
    size_t idxlen;
    cop_t *op;

    if (uid.len == 0 || uid.len > TESS_USER_ID_MAX)
        return TESS_EINVAL;
    if ((op = cop_new(s, uid, cb, arg)) == NULL)
        return TESS_ENOMEM;
    op->whole_user = 1;
    tess_store_count(&store->stats.writes);
    idxlen = make_key(s, TESS_KEY_USER, uid, idx);
    snprintf(ttl, sizeof(ttl), "%" PRId64, s->ttl_ms);
    const char *argv[] = {"EVAL", tombstone_user_script, "1", idx, s->prefix, ttl};
    size_t lens[] = {4, sizeof(tombstone_user_script) - 1, 1, idxlen, s->prefix_len, strlen(ttl)};
    tess__rconn_command(s->conn, on_tombstone, op, 6, argv, lens);
    return 0;
}

static int op_ping(tess_store_t *store, tess_store_cb cb, void *arg)
{
    /* Readiness is the source of truth's: the cache being down is not an outage. */
    return tess_store_ping(((cached_store_t *)store)->inner, cb, arg);
}

static void op_close(tess_store_t *store)
{
    cached_store_t *s = (cached_store_t *)store;
    if (s->owns_conn)
        tess__rconn_free(s->conn);
    tess_store_close(s->inner);
    free(s);
}

/* Expired rows live in `inner`; their copies expire in Redis by themselves. */
static int op_prune(tess_store_t *store, int64_t now_ms, int batch, tess_store_cb cb, void *arg)
{
    return tess_store_prune(((cached_store_t *)store)->inner, now_ms, batch, cb, arg);
}

static const tess_store_ops_t cached_ops = {
    .name = "cached",
    .get = op_get,
    .set = op_set,
    .touch = op_touch,
    .destroy = op_destroy,
    .destroy_user = op_destroy_user,
    .ping = op_ping,
    .prune = op_prune,
    .close = op_close,
};

int tess_cachedstore_open(tess_store_t **out, tess_store_t *inner, tess_loop_t *loop, const tess_l2_opts_t *opts,
                          char *err, size_t errcap)
{
    cached_store_t *s = NULL;
    const char *prefix = opts->prefix != NULL ? opts->prefix : TESS_KEYSPACE_TESSERA_DEFAULT TESS_KEY_L2;
    const char *epoch = opts->epoch_key != NULL ? opts->epoch_key : TESS_KEYSPACE_TESSERA_DEFAULT TESS_KEY_EPOCH;
    int rc;

    *out = NULL;
    if (strlen(prefix) > PREFIX_MAX || strlen(epoch) > PREFIX_MAX) {
        snprintf(err, errcap, "L2 key prefix or epoch key longer than %d bytes", PREFIX_MAX);
        rc = TESS_EINVAL;
        goto out;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        rc = TESS_ENOMEM;
        goto out;
    }
    s->super.ops = &cached_ops;
    s->prefix_len = strlen(prefix);
    memcpy(s->prefix, prefix, s->prefix_len + 1);
    strcpy(s->epoch_key, epoch);
    s->ttl_ms = opts->ttl_ms > 0 ? opts->ttl_ms : 300000;
    if ((rc = tess__rconn_borrow_or_open(&s->conn, &s->owns_conn, opts->conn, loop, opts->url, opts->timeout_ms, err,
                                         errcap)) != 0)
        goto out;
    s->inner = inner;
    inner = NULL;
    *out = &s->super;
    s = NULL;
out:
    free(s);
    tess_store_close(inner);
    return rc;
}

void tess_cachedstore_stats(tess_store_t *store, tess_l2_stats_t *out)
{
    cached_store_t *s = (cached_store_t *)store;
    out->hits = atomic_load_explicit(&s->l2.hits, memory_order_relaxed);
    out->misses = atomic_load_explicit(&s->l2.misses, memory_order_relaxed);
    out->errors = atomic_load_explicit(&s->l2.errors, memory_order_relaxed);
}

static void on_forgotten(void *arg, int rc, redisReply *r)
{
    cop_t *op = arg;
    if (rc == 0 && (r == NULL || r->type == REDIS_REPLY_ERROR))
        rc = TESS_EIO;
    if (rc != 0)
        atomic_fetch_add_explicit(&op->s->l2.errors, 1, memory_order_relaxed);
    op->cb(op->arg, rc, NULL);
    cop_free(op);
}

int tess_cachedstore_forget(tess_store_t *store, tess_str_t sid, tess_l2_forget_t how, tess_store_cb cb, void *arg)
{
    cached_store_t *s = (cached_store_t *)store;
    char key[KEY_MAX + 1];
    size_t keylen;
    cop_t *op;

    if (store == NULL || store->ops != &cached_ops || sid.len == 0 || sid.len > TESS_SID_MAX || cb == NULL)
        return TESS_EINVAL;
    if ((op = cop_new(s, sid, cb, arg)) == NULL)
        return TESS_ENOMEM;
    keylen = make_key(s, "", sid, key);
    if (how == TESS_L2_GONE) {
        tombstone(s, sid, on_forgotten, op);
    } else if (how == TESS_L2_INSERTED) {
        const char *argv[] = {"DEL", key};
        size_t lens[] = {3, keylen};
        tess__rconn_command(s->conn, on_forgotten, op, 2, argv, lens);
    } else {
        const char *argv[] = {"EVAL", drop_copy_script, "1", key};
        size_t lens[] = {4, sizeof(drop_copy_script) - 1, 1, keylen};
        tess__rconn_command(s->conn, on_forgotten, op, 4, argv, lens);
    }
    return 0;
}
