/*
 * The Redis session store (tessera/redis.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/rconn.h"
#include "tessera/keyspace.h"
#include "tessera/error.h"
#include "tessera/redis.h"

#define PREFIX_MAX TESS_KEY_PREFIX_MAX

/* SET the session, add it to its user's index, and keep the index alive as long as its longest member. */
static const char set_script[] = "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
                                 "redis.call('SADD', KEYS[2], ARGV[3])\n"
                                 "local t = redis.call('PTTL', KEYS[2])\n"
                                 "if t < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end\n"
                                 "return 1";

/* DEL the session and take it out of its user's index. */
static const char destroy_script[] = "local v = redis.call('GET', KEYS[1])\n"
                                     "redis.call('DEL', KEYS[1])\n"
                                     "if v then\n"
                                     "  local ok, s = pcall(cjson.decode, v)\n"
                                     "  if ok and type(s) == 'table' and s.userId ~= nil then\n"
                                     "    local uid = s.userId\n"
                                     "    if type(uid) == 'number' then uid = string.format('%d', uid) end\n"
                                     "    redis.call('SREM', ARGV[1] .. 'user:' .. tostring(uid), ARGV[2])\n"
                                     "  end\n"
                                     "end\n"
                                     "return 1";

/* DEL every session of a user, then the index. */
static const char destroy_user_script[] = "local ids = redis.call('SMEMBERS', KEYS[1])\n"
                                          "for _, id in ipairs(ids) do redis.call('DEL', ARGV[1] .. id) end\n"
                                          "redis.call('DEL', KEYS[1])\n"
                                          "return #ids";

typedef struct redis_store {
    tess_store_t super;          /* base; first member */
    tess__rconn_t *conn;         /* this loop's connection */
    int owns_conn;               /* `conn` was opened here (closed with the store) */
    char prefix[PREFIX_MAX + 1]; /* key prefix */
    size_t prefix_len;           /* its length */
} redis_store_t;

/* One store operation in flight; a get spans two replies (GET, PTTL). */
typedef struct rop {
    redis_store_t *store;       /* owner */
    tess_store_cb cb;           /* completion */
    void *arg;                  /* its argument */
    int remaining;              /* replies still to come */
    int rc;                     /* first error seen */
    char sid[TESS_SID_MAX + 1]; /* the id (get) */
    size_t sid_len;             /* its length */
    char *json;                 /* GET's value (get) */
    size_t json_len;            /* its length */
    int64_t pttl;               /* PTTL's answer (get) */
} rop_t;

static rop_t *rop_new(redis_store_t *s, tess_store_cb cb, void *arg, int remaining)
{
    rop_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->store = s;
    op->cb = cb;
    op->arg = arg;
    op->remaining = remaining;
    return op;
}

static void rop_finish(rop_t *op, int rc, const tess_session_t *sess)
{
    if (rc != 0 && rc != TESS_ENOTFOUND)
        tess_store_count(&op->store->super.stats.errors);
    op->cb(op->arg, rc, sess);
    free(op->json);
    free(op);
}

static int reply_error(int rc, redisReply *r)
{
    if (rc != 0)
        return rc;
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        return TESS_EIO;
    return 0;
}

static int build_key(redis_store_t *s, const char *infix, tess_str_t id, char *out, size_t cap, size_t *len)
{
    return tess__redis_key(tess_strn(s->prefix, s->prefix_len), infix, id, out, cap, len);
}

/* ---- get ------------------------------------------------------------------------------------------------- */

static void get_step(void *arg, int rc, redisReply *r)
{
    rop_t *op = arg;
    tess_session_t sess;

    rc = reply_error(rc, r);
    if (op->rc == 0 && rc != 0)
        op->rc = rc;
    if (rc == 0 && op->remaining == 2) { /* GET */
        if (r->type == REDIS_REPLY_STRING) {
            if ((op->json = malloc(r->len + 1)) == NULL) {
                op->rc = TESS_ENOMEM;
            } else {
                memcpy(op->json, r->str, r->len);
                op->json[r->len] = '\0';
                op->json_len = r->len;
            }
        } else if (r->type != REDIS_REPLY_NIL) {
            op->rc = TESS_EIO;
        }
    } else if (rc == 0) { /* PTTL */
        op->pttl = r->type == REDIS_REPLY_INTEGER ? r->integer : -2;
    }
    if (--op->remaining > 0)
        return;
    if (op->rc != 0) {
        rop_finish(op, op->rc, NULL);
        return;
    }
    if (op->json == NULL || op->pttl == -2) {
        rop_finish(op, TESS_ENOTFOUND, NULL);
        return;
    }
    memset(&sess, 0, sizeof(sess));
    /* The key's TTL is the truth (touch moves it without rewriting the value); -1 means none: trust the JSON. */
    rc = tess_session_from_json(&sess, tess_strn(op->sid, op->sid_len), tess_strn(op->json, op->json_len),
                                op->pttl >= 0 ? tess_now_ms() + op->pttl : 0);
    if (rc != 0) {
        rop_finish(op, rc == TESS_ENOMEM ? rc : TESS_ENOTFOUND, NULL); /* an unreadable document is no session */
    } else if (tess_session_expired(&sess, tess_now_ms())) {
        rop_finish(op, TESS_ENOTFOUND, NULL);
    } else {
        rop_finish(op, 0, &sess);
    }
    tess_session_clear(&sess);
}

static int op_get(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg)
{
    redis_store_t *s = (redis_store_t *)store;
    char key[PREFIX_MAX + TESS_SID_MAX + 8];
    size_t keylen;
    rop_t *op;

    if (sid.len == 0 || sid.len > TESS_SID_MAX)
        return TESS_EINVAL;
    if (build_key(s, "", sid, key, sizeof(key), &keylen) != 0)
        return TESS_ETOOBIG;
    if ((op = rop_new(s, cb, arg, 2)) == NULL)
        return TESS_ENOMEM;
    memcpy(op->sid, sid.ptr, sid.len);
    op->sid_len = sid.len;
    tess_store_count(&store->stats.gets);
    const char *get_argv[2] = {"GET", key}, *pttl_argv[2] = {"PTTL", key};
    size_t lens[2] = {3, keylen}, plens[2] = {4, keylen};
    /* Both go out in one write and come back in one read: one round trip. */
    tess__rconn_command(s->conn, get_step, op, 2, get_argv, lens);
    tess__rconn_command(s->conn, get_step, op, 2, pttl_argv, plens);
    return 0;
}

/* ---- writes ---------------------------------------------------------------------------------------------- */

static void write_done(void *arg, int rc, redisReply *r)
{
    rop_t *op = arg;
    rop_finish(op, reply_error(rc, r), NULL);
}

static void touch_done(void *arg, int rc, redisReply *r)
{
    rop_t *op = arg;
    rc = reply_error(rc, r);
    if (rc == 0 && (r->type != REDIS_REPLY_INTEGER || r->integer == 0))
        rc = TESS_ENOTFOUND; /* PEXPIRE on a missing key does nothing: no resurrection */
    rop_finish(op, rc, NULL);
}

static int op_set(tess_store_t *store, const tess_session_t *sess, tess_store_cb cb, void *arg)
{
    redis_store_t *s = (redis_store_t *)store;
    char key[PREFIX_MAX + TESS_SID_MAX + 8], idx[PREFIX_MAX + TESS_USER_ID_MAX + 8], ttl[24], abs_ttl[24];
    size_t keylen, idxlen, jsonlen;
    int64_t now = tess_now_ms();
    char *json = NULL;
    rop_t *op;
    int rc;

    if (sess->expires_ms <= now)
        return TESS_EINVAL;
    if (build_key(s, "", tess_str(sess->id), key, sizeof(key), &keylen) != 0 ||
        build_key(s, TESS_KEY_USER, tess_str(sess->user_id), idx, sizeof(idx), &idxlen) != 0)
        return TESS_ETOOBIG;
    if ((rc = tess_session_to_json(sess, &json, &jsonlen)) != 0)
        return rc;
    if ((op = rop_new(s, cb, arg, 1)) == NULL) {
        free(json);
        return TESS_ENOMEM;
    }
    snprintf(ttl, sizeof(ttl), "%" PRId64, sess->expires_ms - now);
    int64_t abs_end = sess->absolute_expires_ms > sess->expires_ms ? sess->absolute_expires_ms : sess->expires_ms;
    snprintf(abs_ttl, sizeof(abs_ttl), "%" PRId64, abs_end - now);
    const char *argv[] = {"EVAL", set_script, "2", key, idx, json, ttl, sess->id, abs_ttl};
    size_t lens[] = {
        4, sizeof(set_script) - 1, 1, keylen, idxlen, jsonlen, strlen(ttl), strlen(sess->id), strlen(abs_ttl)};
    tess_store_count(&store->stats.writes);
    tess__rconn_command(s->conn, write_done, op, 9, argv, lens);
    free(json);
    return 0;
}

static int op_touch(tess_store_t *store, tess_str_t sid, int64_t expires_ms, tess_store_cb cb, void *arg)
{
    redis_store_t *s = (redis_store_t *)store;
    char key[PREFIX_MAX + TESS_SID_MAX + 8], ms[24];
    size_t keylen;
    int64_t ttl = expires_ms - tess_now_ms();
    rop_t *op;

    if (sid.len == 0 || sid.len > TESS_SID_MAX || build_key(s, "", sid, key, sizeof(key), &keylen) != 0)
        return TESS_EINVAL;
    if ((op = rop_new(s, cb, arg, 1)) == NULL)
        return TESS_ENOMEM;
    snprintf(ms, sizeof(ms), "%" PRId64, ttl > 1 ? ttl : 1);
    const char *argv[] = {"PEXPIRE", key, ms};
    size_t lens[] = {7, keylen, strlen(ms)};
    tess_store_count(&store->stats.writes);
    tess__rconn_command(s->conn, touch_done, op, 3, argv, lens);
    return 0;
}

static int op_destroy(tess_store_t *store, tess_str_t sid, tess_store_cb cb, void *arg)
{
    redis_store_t *s = (redis_store_t *)store;
    char key[PREFIX_MAX + TESS_SID_MAX + 8];
    size_t keylen;
    rop_t *op;

    if (sid.len == 0 || sid.len > TESS_SID_MAX || build_key(s, "", sid, key, sizeof(key), &keylen) != 0)
        return TESS_EINVAL;
    if ((op = rop_new(s, cb, arg, 1)) == NULL)
        return TESS_ENOMEM;
    const char *argv[] = {"EVAL", destroy_script, "1", key, s->prefix, sid.ptr};
    size_t lens[] = {4, sizeof(destroy_script) - 1, 1, keylen, s->prefix_len, sid.len};
    tess_store_count(&store->stats.writes);
    tess__rconn_command(s->conn, write_done, op, 6, argv, lens);
    return 0;
}

static int op_destroy_user(tess_store_t *store, tess_str_t uid, tess_store_cb cb, void *arg)
{
    redis_store_t *s = (redis_store_t *)store;
    char idx[PREFIX_MAX + TESS_USER_ID_MAX + 8];
    size_t idxlen;
    rop_t *op;

    if (uid.len == 0 || uid.len > TESS_USER_ID_MAX || build_key(s, TESS_KEY_USER, uid, idx, sizeof(idx), &idxlen) != 0)
        return TESS_EINVAL;
    if ((op = rop_new(s, cb, arg, 1)) == NULL)
        return TESS_ENOMEM;
    const char *argv[] = {"EVAL", destroy_user_script, "1", idx, s->prefix};
    size_t lens[] = {4, sizeof(destroy_user_script) - 1, 1, idxlen, s->prefix_len};
    tess_store_count(&store->stats.writes);
    tess__rconn_command(s->conn, write_done, op, 5, argv, lens);
    return 0;
}

static void ping_done(void *arg, int rc, redisReply *r)
{
    rop_t *op = arg;
    rop_finish(op, reply_error(rc, r), NULL);
}

static int op_ping(tess_store_t *store, tess_store_cb cb, void *arg)
{
    redis_store_t *s = (redis_store_t *)store;
    rop_t *op;
    if ((op = rop_new(s, cb, arg, 1)) == NULL)
        return TESS_ENOMEM;
    const char *argv[] = {"PING"};
    tess__rconn_command(s->conn, ping_done, op, 1, argv, NULL);
    return 0;
}

static void op_close(tess_store_t *store)
{
    redis_store_t *s = (redis_store_t *)store;
    if (s->owns_conn)
        tess__rconn_free(s->conn);
    free(s);
}

static const tess_store_ops_t redis_ops = {
    .name = "redis",
    .get = op_get,
    .set = op_set,
    .touch = op_touch,
    .destroy = op_destroy,
    .destroy_user = op_destroy_user,
    .ping = op_ping,
    .close = op_close,
};

int tess_redis_url_check(const char *url, char *err, size_t errcap)
{
    tess__redis_url_t u;
    int rc = tess__redis_url_parse(url, &u, err, errcap);
    explicit_bzero(&u, sizeof(u));
    return rc;
}

int tess_redisstore_open(tess_store_t **out, tess_loop_t *loop, const tess_redis_opts_t *opts, char *err, size_t errcap)
{
    redis_store_t *s = NULL;
    const char *prefix = opts->prefix != NULL ? opts->prefix : TESS_KEYSPACE_SESSION_DEFAULT;
    int rc;

    *out = NULL;
    if (strlen(prefix) > PREFIX_MAX) {
        snprintf(err, errcap, "Redis key prefix longer than %d bytes", PREFIX_MAX);
        rc = TESS_EINVAL;
        goto out;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        rc = TESS_ENOMEM;
        goto out;
    }
    s->super.ops = &redis_ops;
    s->prefix_len = strlen(prefix);
    memcpy(s->prefix, prefix, s->prefix_len + 1);
    if ((rc = tess__rconn_borrow_or_open(&s->conn, &s->owns_conn, opts->conn, loop, opts->url, opts->timeout_ms, err,
                                         errcap)) != 0)
        goto out;
    *out = &s->super;
    s = NULL;
out:
    free(s);
    return rc;
}

int tess_redisstore_connected(tess_store_t *store)
{
    return tess__rconn_up(((redis_store_t *)store)->conn);
}

/* ---- driver --------------------------------------------------------------------------------------------- */

static int drv_accepts(const char *url)
{
    return url != NULL && (strncmp(url, "redis://", 8) == 0 || strncmp(url, "unix://", 7) == 0);
}

static int drv_open(tess_store_t **out, const tess_store_params_t *p, char *err, size_t errcap)
{
    tess_redis_opts_t ro = {.url = p->url, .conn = p->redis, .prefix = p->prefix, .timeout_ms = p->timeout_ms};
    return tess_redisstore_open(out, p->loop, &ro, err, errcap);
}

const tess_store_driver_t tess__redis_driver = {
    .name = "redis",
    .accepts = drv_accepts,
    .migrate = NULL, /* keys need no schema */
    .open = drv_open,
};
