/*
 * Token revocation (tessera/revoke.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/revlist.h"
#include "redis/rconn.h"
#include "tessera/keyspace.h"
#include "tessera/error.h"
#include "tessera/revoke.h"

#define PREFIX_MAX TESS_KEY_PREFIX_MAX
#define ID_MAX 128
#define KEY_MAX (PREFIX_MAX + 8 + ID_MAX)
#define FOREVER (INT64_MAX / 4)

struct tess_revoker {
    tess_revlist_t *list;        /* the database's list (instead of Redis) */
    tess__revwriter_t *writer;   /* this loop's writes into it */
    tess__rconn_t *conn;         /* this loop's connection (Redis) */
    int owns_conn;               /* `conn` was opened here */
    tess_cache_t *cache;         /* answers (shared) */
    char prefix[PREFIX_MAX + 1]; /* key prefix */
};

typedef struct rvop {
    tess_revoker_t *r;     /* owner */
    tess_revoker_cb cb;    /* completion */
    void *arg;             /* its argument */
    int remaining;         /* replies to come */
    int rc;                /* first error */
    int denied;            /* the jti is on the deny list */
    int64_t cut_ms;        /* the user's cut-off (0 none) */
    int64_t iat_s;         /* the token's issue time */
    int64_t now_ms;        /* request clock */
    uint64_t gen_d, gen_n; /* cache generations read before asking */
    char dkey[ID_MAX + 3]; /* "d:<jti>" */
    char nkey[ID_MAX + 3]; /* "n:<uid>" */
} rvop_t;

static int64_t cut_second(int64_t cut_ms)
{
    return cut_ms / 1000;
}

static int decide(int denied, int64_t cut_ms, int64_t iat_s)
{
    if (denied)
        return TESS_EREVOKED;
    /* iat has second resolution: a token of the cut-off's second may predate it, so it goes too. */
    if (cut_ms > 0 && iat_s <= cut_second(cut_ms))
        return TESS_EREVOKED;
    return 0;
}

static void put_answer(tess_cache_t *c, const char *key, int positive, int64_t value, int64_t now_ms, uint64_t gen)
{
    tess_session_t s;
    if (c == NULL)
        return;
    if (!positive) {
        tess_cache_put(c, tess_str(key), NULL, now_ms, gen);
        return;
    }
    memset(&s, 0, sizeof(s));
    s.created_ms = value;
    s.expires_ms = s.absolute_expires_ms = FOREVER;
    tess_cache_put(c, tess_str(key), &s, now_ms, gen);
}

/* Looks an answer up: 1 known (positive sets *value), 0 unknown. */
static int cached_answer(tess_cache_t *c, const char *key, int64_t now_ms, int *positive, int64_t *value)
{
    tess_session_t s;
    int hit;
    if (c == NULL)
        return 0;
    hit = tess_cache_get(c, tess_str(key), now_ms, &s);
    if (hit == TESS_CACHE_HIT) {
        *positive = 1;
        *value = s.created_ms;
        tess_session_clear(&s);
        return 1;
    }
    if (hit == TESS_CACHE_NEGATIVE) {
        *positive = 0;
        *value = 0;
        return 1;
    }
    return 0;
}

static void on_check_reply(void *arg, int rc, redisReply *reply)
{
    rvop_t *op = arg;
    if (rc == 0 && (reply == NULL || reply->type == REDIS_REPLY_ERROR))
        rc = TESS_EIO;
    if (rc != 0 && op->rc == 0)
        op->rc = rc;
    if (rc == 0 && op->remaining == 2) {
        op->denied = reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
    } else if (rc == 0) {
        op->cut_ms = reply->type == REDIS_REPLY_STRING ? strtoll(reply->str, NULL, 10) : 0;
    }
    if (--op->remaining > 0)
        return;
    if (op->rc != 0) {
        op->cb(op->arg, op->rc == TESS_EIO ? TESS_EUNAVAIL : op->rc); /* fail closed */
    } else {
        tess_cache_t *c = op->r->cache;
        put_answer(c, op->dkey, op->denied, 1, op->now_ms, op->gen_d);
        /* No cut-off is remembered as a positive entry with value 0: it lives as long as positive ones. */
        put_answer(c, op->nkey, 1, op->cut_ms, op->now_ms, op->gen_n);
        op->cb(op->arg, decide(op->denied, op->cut_ms, op->iat_s));
    }
    free(op);
}

void tess_revoker_check(tess_revoker_t *r, tess_str_t jti, tess_str_t uid, int64_t iat_s, int64_t now_ms,
                        tess_revoker_cb cb, void *arg)
{
    char dkey[ID_MAX + 3], nkey[ID_MAX + 3], rdkey[KEY_MAX + 1], rnkey[KEY_MAX + 1];
    int dknown, nknown, dpos = 0, npos = 0;
    int64_t dval = 0, nval = 0;
    rvop_t *op;

    if (jti.len == 0 || jti.len > ID_MAX || uid.len == 0 || uid.len > ID_MAX) {
        cb(arg, TESS_EREVOKED); /* a token we cannot look up is not honoured */
        return;
    }
    if (r->list != NULL) {
        char dk[TESS__REVLIST_KEY_MAX + 1], nk[TESS__REVLIST_KEY_MAX + 1];
        if (tess__revlist_key(jti, dk) != 0 || tess__revlist_key(uid, nk) != 0) {
            cb(arg, TESS_EREVOKED);
            return;
        }
        cb(arg, tess__revlist_check(r->list, tess_str(dk), tess_str(nk), iat_s, now_ms));
        return;
    }
    snprintf(dkey, sizeof(dkey), TESS_REVOKE_DENY_TAG "%.*s", (int)jti.len, jti.ptr);
    snprintf(nkey, sizeof(nkey), TESS_REVOKE_CUT_TAG "%.*s", (int)uid.len, uid.ptr);
    dknown = cached_answer(r->cache, dkey, now_ms, &dpos, &dval);
    nknown = cached_answer(r->cache, nkey, now_ms, &npos, &nval);
    if (dknown && nknown) {
        cb(arg, decide(dpos, npos ? nval : 0, iat_s));
        return;
    }
    if ((op = calloc(1, sizeof(*op))) == NULL) {
        cb(arg, TESS_ENOMEM);
        return;
    }
    op->r = r;
    op->cb = cb;
    op->arg = arg;
    op->remaining = 2;
    op->iat_s = iat_s;
    op->now_ms = now_ms;
    memcpy(op->dkey, dkey, sizeof(dkey));
    memcpy(op->nkey, nkey, sizeof(nkey));
    if (r->cache != NULL) {
        op->gen_d = tess_cache_gen(r->cache, tess_str(dkey));
        op->gen_n = tess_cache_gen(r->cache, tess_str(nkey));
    }
    size_t rdlen, rnlen;
    tess__redis_key(tess_str(r->prefix), TESS_KEY_DENY, jti, rdkey, sizeof(rdkey), &rdlen);
    tess__redis_key(tess_str(r->prefix), TESS_KEY_CUTOFF, uid, rnkey, sizeof(rnkey), &rnlen);
    const char *a1[] = {"EXISTS", rdkey}, *a2[] = {"GET", rnkey};
    size_t l1[] = {6, strlen(rdkey)}, l2[] = {3, strlen(rnkey)};
    /* EXISTS answers 0/1 as an integer: map 0 to "not denied". */
    tess__rconn_command(r->conn, on_check_reply, op, 2, a1, l1);
    tess__rconn_command(r->conn, on_check_reply, op, 2, a2, l2);
}

typedef struct rvwrite {
    tess_revoker_cb cb; /* completion */
    void *arg;          /* its argument */
} rvwrite_t;

static void on_write(void *arg, int rc, redisReply *reply)
{
    rvwrite_t *w = arg;
    if (rc == 0 && (reply == NULL || reply->type == REDIS_REPLY_ERROR))
        rc = TESS_EUNAVAIL;
    w->cb(w->arg, rc);
    free(w);
}

static void send_write(tess_revoker_t *r, tess_revoker_cb cb, void *arg, int argc, const char **argv)
{
    rvwrite_t *w = malloc(sizeof(*w));
    if (w == NULL) {
        cb(arg, TESS_ENOMEM);
        return;
    }
    w->cb = cb;
    w->arg = arg;
    tess__rconn_command(r->conn, on_write, w, argc, argv, NULL);
}

void tess_revoker_deny(tess_revoker_t *r, tess_str_t jti, int64_t until_ms, tess_revoker_cb cb, void *arg)
{
    char key[KEY_MAX + 1], ms[24];
    int64_t at = until_ms > tess_now_ms() ? until_ms : tess_now_ms() + 1000;
    if (jti.len == 0 || jti.len > ID_MAX) {
        cb(arg, TESS_EINVAL);
        return;
    }
    if (r->list != NULL) {
        if (tess__revlist_key(jti, key) != 0) {
            cb(arg, TESS_EINVAL);
            return;
        }
        tess__revwriter_put(r->writer, TESS__REVLIST_DENY, key, 0, at, cb, arg);
        return;
    }
    size_t keylen;
    tess__redis_key(tess_str(r->prefix), TESS_KEY_DENY, jti, key, sizeof(key), &keylen);
    snprintf(ms, sizeof(ms), "%" PRId64, at);
    const char *argv[] = {"SET", key, "1", "PXAT", ms};
    send_write(r, cb, arg, 5, argv);
}

void tess_revoker_cut(tess_revoker_t *r, tess_str_t uid, int64_t cut_ms, int64_t keep_ms, tess_revoker_cb cb, void *arg)
{
    char key[KEY_MAX + 1], ms[24], keep[24];
    if (uid.len == 0 || uid.len > ID_MAX) {
        cb(arg, TESS_EINVAL);
        return;
    }
    if (r->list != NULL) {
        if (tess__revlist_key(uid, key) != 0) {
            cb(arg, TESS_EINVAL);
            return;
        }
        tess__revwriter_put(r->writer, TESS__REVLIST_CUT, key, cut_ms, tess_now_ms() + (keep_ms > 0 ? keep_ms : 1000),
                            cb, arg);
        return;
    }
    size_t keylen;
    tess__redis_key(tess_str(r->prefix), TESS_KEY_CUTOFF, uid, key, sizeof(key), &keylen);
    snprintf(ms, sizeof(ms), "%" PRId64, cut_ms);
    snprintf(keep, sizeof(keep), "%" PRId64, keep_ms > 0 ? keep_ms : 1000);
    const char *argv[] = {"SET", key, ms, "PX", keep};
    send_write(r, cb, arg, 5, argv);
}

int tess_revoker_open(tess_revoker_t **out, tess_loop_t *loop, const tess_revoker_opts_t *opts, char *err,
                      size_t errcap)
{
    tess_revoker_t *r = NULL;
    const char *prefix = opts->prefix != NULL ? opts->prefix : TESS_KEYSPACE_TESSERA_DEFAULT;
    int rc;

    *out = NULL;
    if (strlen(prefix) > PREFIX_MAX) {
        snprintf(err, errcap, "revocation key prefix longer than %d bytes", PREFIX_MAX);
        return TESS_EINVAL;
    }
    if ((r = calloc(1, sizeof(*r))) == NULL) {
        rc = TESS_ENOMEM;
        goto out;
    }
    strcpy(r->prefix, prefix);
    r->cache = opts->cache;
    if (opts->list != NULL) {
        r->list = opts->list;
        if ((rc = tess__revwriter_open(&r->writer, r->list, loop, opts->timeout_ms, err, errcap)) != 0)
            goto out;
        *out = r;
        return 0;
    }
    if ((rc = tess__rconn_borrow_or_open(&r->conn, &r->owns_conn, opts->conn, loop, opts->url, opts->timeout_ms, err,
                                         errcap)) != 0)
        goto out;
    *out = r;
    r = NULL;
out:
    free(r);
    return rc;
}

void tess_revoker_free(tess_revoker_t *r)
{
    if (r == NULL)
        return;
    if (r->owns_conn)
        tess__rconn_free(r->conn);
    tess__revwriter_free(r->writer);
    free(r);
}
