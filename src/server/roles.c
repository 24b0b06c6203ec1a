/*
 * Roles from the users table for tokens without a role claim (roles.h).
 */
#include <stdio.h>
#include <string.h>

#include "server/roles.h"
#include "tessera/cache.h"
#include "tessera/error.h"

/* "r:<uid>" -> the role and its NUL ("" for a user the table does not know); "x:<external id>" -> int64 uid */
static tess_cache_t *cache;

/* What a lookup carries to its answer. */
typedef struct role_lookup {
    tess_req_handler next;          /* the route's handler */
    uint64_t gen;                   /* the cache generation read before asking */
    char key[TESS_USER_ID_MAX + 3]; /* "r:<uid>" or "x:<external id>" */
} role_lookup_t;

int roles_init(void)
{
    tess_cache_opts_t o;
    tess_cache_opts_default(&o);
    o.max_entries = ROLES_MAX_ENTRIES;
    o.max_bytes = ROLES_MAX_ENTRIES * 256;
    o.ttl_ms = ROLES_TTL_MS;
    o.negative_ttl_ms = 0;
    return tess_cache_new(&cache, &o);
}

void roles_free(void)
{
    tess_cache_free(cache);
    cache = NULL;
}

static void read_role(void *arg, const void *value, size_t len)
{
    char *role = arg;
    if (len == 0 || len > TESS_ROLE_MAX + 1)
        len = 1;
    memcpy(role, value, len);
    role[len - 1] = '\0';
}

static void on_user(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = req_resume(arg);
    role_lookup_t *st;
    if (r == NULL)
        return;
    st = r->state;
    if (res->rc != 0 && res->rc != TESS_ENOTFOUND) {
        send_backend_error(r, res->rc);
        return;
    }
    snprintf(r->role, sizeof(r->role), "%s", res->user != NULL ? res->user->role : "");
    /* Dropped when a "user:<id>" event evicted the key meanwhile: the next request asks again. */
    tess_cache_put_value(cache, tess_str(st->key), r->role, strlen(r->role) + 1, tess_now_ms(), st->gen);
    st->next(r);
}

void roles_resolve(tess_req_t *r, tess_req_handler next)
{
    appdb_t *db = r->th->appdb;
    role_lookup_t *st;
    char key[32];
    ticket_t *t;

    if (r->uid <= 0 || cache == NULL) {
        next(r); /* not a users-table id: no role */
        return;
    }
    snprintf(key, sizeof(key), "r:%lld", (long long)r->uid);
    if (tess_cache_read_value(cache, tess_str(key), tess_now_ms(), read_role, r->role) == TESS_CACHE_HIT) {
        next(r);
        return;
    }
    st = req_state(r, sizeof(*st));
    st->next = next;
    st->gen = tess_cache_gen(cache, tess_str(key));
    memcpy(st->key, key, sizeof(key));
    t = req_suspend(r);
    req_started(r, t, db->ops->user_by_id(db, r->uid, on_user, t));
}

static void read_uid(void *arg, const void *value, size_t len)
{
    if (len == sizeof(int64_t))
        memcpy(arg, value, sizeof(int64_t));
}

static void on_external(void *arg, const appdb_result_t *res)
{
    tess_req_t *r = req_resume(arg);
    role_lookup_t *st;
    if (r == NULL)
        return;
    st = r->state;
    if (res->rc != 0 || res->user == NULL || res->user->id <= 0) {
        send_backend_error(r, res->rc != 0 ? res->rc : TESS_EIO);
        return;
    }
    r->uid = res->user->id;
    tess_cache_put_value(cache, tess_str(st->key), &r->uid, sizeof(r->uid), tess_now_ms(), st->gen);
    st->next(r);
}

void roles_resolve_external(tess_req_t *r, tess_req_handler next)
{
    appdb_t *db = r->th->appdb;
    role_lookup_t *st;
    char key[TESS_USER_ID_MAX + 3];
    int64_t uid = 0;
    ticket_t *t;

    snprintf(key, sizeof(key), "x:%s", r->user_id);
    if (cache == NULL || r->user_id[0] == '\0' || strlen(key) > TESS_SID_MAX) {
        next(r); /* no user to stand for: role-gated routes refuse it */
        return;
    }
    if (tess_cache_read_value(cache, tess_str(key), tess_now_ms(), read_uid, &uid) == TESS_CACHE_HIT && uid > 0) {
        r->uid = uid;
        next(r);
        return;
    }
    st = req_state(r, sizeof(*st));
    st->next = next;
    st->gen = tess_cache_gen(cache, tess_str(key));
    snprintf(st->key, sizeof(st->key), "%s", key);
    t = req_suspend(r);
    req_started(r, t,
                db->ops->user_external(db, tess_str(r->user_id), tess_str(r->role), tess_now_ms(), on_external, t));
}

void roles_on_user_event(tess_str_t id)
{
    char key[32];
    if (cache == NULL || id.len == 0 || id.len > 20)
        return;
    snprintf(key, sizeof(key), "r:%.*s", (int)id.len, id.ptr);
    tess_cache_evict(cache, tess_str(key));
}

void roles_flush(void)
{
    if (cache != NULL)
        tess_cache_flush(cache);
}
