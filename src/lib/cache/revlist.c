/*
 * Token revocation in the database, read from an in-process mirror (tessera/revoke.h).
 *
 *   table     tess_revocation: one row per deny entry or cut-off, with the moment it may be forgotten.
 *             SQLite appends (seq AUTOINCREMENT: a tail "seq > last" misses nothing, SQLite has one writer);
 *             PostgreSQL upserts on (kind, key) and NOTIFYs the row in the same statement (delivered on
 *             commit, in commit order).
 *   mirror    a chained hash table under a rwlock: checks take the read lock (or nothing when it is empty),
 *             the writer and the listener the write lock. Merging is by maximum (value, expiry), so applying
 *             a row twice, or a NOTIFY and a reload in either order, gives the same mirror.
 *   current   `synced` is the monotonic time of the last moment the mirror was known to hold every committed
 *             row: SQLite, a poll that read data_version (and tailed when it moved); PostgreSQL, a heartbeat
 *             query sent after the reload on the LISTEN connection and answered. Checks fail closed when it is
 *             older than stale_ms, or 0 (never loaded, connection down, listener stopped).
 */
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "cache/revlist.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/pgconn.h"
#include "tessera/store.h"

#define CHANNEL "tessera_revocation"
#define DEFAULT_STALE_MS 1000
#define DEFAULT_MAX_ENTRIES 1000000
#define DEFAULT_PRUNE_MS 60000
#define HEARTBEAT_MS (5 * TESS_REVLIST_TAIL_MS)
/* pg_advisory_xact_lock key of this table's migration ('tess', 3). */
#define PG_MIGRATE_LOCK "SELECT pg_advisory_xact_lock(1952805747, 3)"

static const char sqlite_schema[] =
    "CREATE TABLE IF NOT EXISTS tess_revocation ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind INTEGER NOT NULL, key TEXT NOT NULL,"
    " value INTEGER NOT NULL, expires_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS tess_revocation_expires ON tess_revocation(expires_ms);";

static const char pg_schema[] = "BEGIN;" PG_MIGRATE_LOCK ";"
                                "CREATE TABLE IF NOT EXISTS tess_revocation ("
                                " kind smallint NOT NULL, key text NOT NULL,"
                                " value bigint NOT NULL, expires_ms bigint NOT NULL, PRIMARY KEY (kind, key));"
                                "CREATE INDEX IF NOT EXISTS tess_revocation_expires ON tess_revocation (expires_ms);"
                                "COMMIT;";

typedef struct entry {
    struct entry *next; /* bucket chain */
    int64_t value;      /* cut-off: its ms; deny: 0 */
    int64_t expires_ms; /* forgotten after (wall clock) */
    uint8_t kind;       /* TESS__REVLIST_* */
    uint8_t len;        /* bytes in key */
    char key[];         /* stored form, NUL-terminated */
} entry_t;

struct tess_revlist {
    pthread_rwlock_t lock;                                 /* guards the table below */
    entry_t **buckets;                                     /* nbuckets chains */
    size_t nbuckets;                                       /* a power of two */
    _Atomic size_t count;                                  /* entries (read without the lock: the empty fast path) */
    _Atomic int64_t synced;                                /* mono ms when last known current; 0: not current */
    _Atomic int overflow;                                  /* max_entries reached: fail closed */
    int64_t stale_ms;                                      /* currency bound */
    int64_t prune_ms;                                      /* pruning period */
    void (*on_change)(void *arg, int kind, tess_str_t id); /* rows from other processes (opts) */
    void *change_arg;                                      /* its argument */
    size_t max_entries;                                    /* entry bound */
    int64_t timeout_ms;                                    /* PostgreSQL query deadline */
    int pg;                                                /* PostgreSQL (else SQLite) */
    char *conninfo;                                        /* PostgreSQL conninfo, or the SQLite path; never logged */
    /* the listener (one loop) */
    tess_loop_t *loop;            /* its loop, NULL when not listening */
    tess_timer_t *timer;          /* SQLite: the poll; PostgreSQL: the heartbeat */
    int64_t next_prune_ms;        /* mono ms */
    sqlite3 *db;                  /* SQLite: the listener's own connection */
    sqlite3_stmt *version, *tail; /* PRAGMA data_version; rows after a seq */
    sqlite3_stmt *prune;          /* expired rows */
    int64_t data_version;         /* last seen */
    int64_t seq;                  /* last row mirrored */
    tess_pgconn_t *conn;          /* PostgreSQL: the LISTEN connection */
    int loaded;                   /* PostgreSQL: LISTEN in place and the table reloaded on this connection */
    int beat_pending;             /* PostgreSQL: a heartbeat is out */
    unsigned reloads;             /* PostgreSQL: loads done (the first one is the start) */
    int64_t beat_sent;            /* its send time, mono ms */
};

/* ---- keys ----------------------------------------------------------------------------------------------------- */

int tess__revlist_key(tess_str_t id, char out[TESS__REVLIST_KEY_MAX + 1])
{
    uint8_t md[32];
    unsigned int n = 0;
    int plain = id.len > 0 && id.len <= TESS__REVLIST_KEY_MAX;

    out[0] = '\0';
    if (id.len == 0)
        return -1;
    for (size_t i = 0; plain && i < id.len; i++)
        plain = (unsigned char)id.ptr[i] > 0x20 && (unsigned char)id.ptr[i] < 0x7f;
    if (plain && !(id.len > 2 && id.ptr[0] == 'k' && id.ptr[1] == ':')) {
        memcpy(out, id.ptr, id.len);
        out[id.len] = '\0';
        return 0;
    }
    /* Anything else (and anything that looks like our own digest form) by its digest. Rare: one-shot. */
    if (EVP_Digest(id.ptr, id.len, md, &n, EVP_sha256(), NULL) != 1)
        return -1;
    memcpy(out, "k:", 2);
    out[2 + tess_base64url_encode(md, sizeof(md), out + 2)] = '\0';
    return 0;
}

/* ---- the mirror ----------------------------------------------------------------------------------------------- */

static uint64_t hash(int kind, const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    return h;
}

/* Under either lock. */
static entry_t *find(tess_revlist_t *l, int kind, const char *key, size_t len)
{
    for (entry_t *e = l->buckets[hash(kind, key, len) & (l->nbuckets - 1)]; e != NULL; e = e->next) {
        if (e->kind == kind && e->len == len && memcmp(e->key, key, len) == 0)
            return e;
    }
    return NULL;
}

/* Under the write lock: doubles the buckets when the load passes 1 (best effort: stays as is on ENOMEM). */
static void grow(tess_revlist_t *l)
{
    size_t n = l->nbuckets * 2;
    entry_t **b;

    if (atomic_load_explicit(&l->count, memory_order_relaxed) < l->nbuckets || (b = calloc(n, sizeof(*b))) == NULL)
        return;
    for (size_t i = 0; i < l->nbuckets; i++) {
        for (entry_t *e = l->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            size_t k = hash(e->kind, e->key, e->len) & (n - 1);
            e->next = b[k];
            b[k] = e;
        }
    }
    free(l->buckets);
    l->buckets = b;
    l->nbuckets = n;
}

/* Merges one row into the mirror (by maximum). An entry that cannot be held makes the mirror fail closed. */
static void apply(tess_revlist_t *l, int kind, const char *key, size_t len, int64_t value, int64_t expires_ms)
{
    entry_t *e;

    if (len == 0 || len > TESS__REVLIST_KEY_MAX || (kind != TESS__REVLIST_DENY && kind != TESS__REVLIST_CUT))
        return;
    pthread_rwlock_wrlock(&l->lock);
    if ((e = find(l, kind, key, len)) != NULL) {
        if (value > e->value)
            e->value = value;
        if (expires_ms > e->expires_ms)
            e->expires_ms = expires_ms;
    } else if (atomic_load_explicit(&l->count, memory_order_relaxed) >= l->max_entries ||
               (e = malloc(sizeof(*e) + len + 1)) == NULL) {
        atomic_store_explicit(&l->overflow, 1, memory_order_relaxed); /* a revocation we cannot honour */
    } else {
        size_t k = hash(kind, key, len) & (l->nbuckets - 1);
        e->value = value;
        e->expires_ms = expires_ms;
        e->kind = (uint8_t)kind;
        e->len = (uint8_t)len;
        memcpy(e->key, key, len);
        e->key[len] = '\0';
        e->next = l->buckets[k];
        l->buckets[k] = e;
        atomic_fetch_add_explicit(&l->count, 1, memory_order_release);
        grow(l);
    }
    pthread_rwlock_unlock(&l->lock);
}

static void prune_mirror(tess_revlist_t *l, int64_t now_ms)
{
    pthread_rwlock_wrlock(&l->lock);
    for (size_t i = 0; i < l->nbuckets; i++) {
        for (entry_t **pp = &l->buckets[i]; *pp != NULL;) {
            entry_t *e = *pp;
            if (e->expires_ms < now_ms) {
                *pp = e->next;
                free(e);
                atomic_fetch_sub_explicit(&l->count, 1, memory_order_relaxed);
            } else {
                pp = &e->next;
            }
        }
    }
    pthread_rwlock_unlock(&l->lock);
}

int tess_revlist_current(tess_revlist_t *l)
{
    int64_t synced = atomic_load_explicit(&l->synced, memory_order_acquire);
    return synced != 0 && !atomic_load_explicit(&l->overflow, memory_order_relaxed) &&
           tess_mono_ms() - synced <= l->stale_ms;
}

size_t tess_revlist_size(tess_revlist_t *l)
{
    return atomic_load_explicit(&l->count, memory_order_relaxed);
}

int tess__revlist_check(tess_revlist_t *l, tess_str_t id, tess_str_t uid, int64_t iat_s, int64_t now_ms)
{
    const entry_t *d, *n;
    int rc = 0;

    if (!tess_revlist_current(l))
        return TESS_EUNAVAIL;
    if (atomic_load_explicit(&l->count, memory_order_acquire) == 0)
        return 0; /* nothing revoked anywhere: no lock */
    pthread_rwlock_rdlock(&l->lock);
    d = find(l, TESS__REVLIST_DENY, id.ptr, id.len);
    n = find(l, TESS__REVLIST_CUT, uid.ptr, uid.len);
    if (d != NULL && d->expires_ms >= now_ms)
        rc = TESS_EREVOKED;
    /* iat has second resolution: a token of the cut-off's second may predate it, so it goes too. */
    else if (n != NULL && n->expires_ms >= now_ms && iat_s <= n->value / 1000)
        rc = TESS_EREVOKED;
    pthread_rwlock_unlock(&l->lock);
    return rc;
}

/* Tells the holder of long-lived requests about a row from elsewhere (after it is in the mirror). */
static void report(tess_revlist_t *l, int kind, const char *key, size_t len)
{
    if (l->on_change == NULL)
        return;
    if (kind == TESS__REVLIST_ANY || len == 0 || (len > 2 && key[0] == 'k' && key[1] == ':'))
        l->on_change(l->change_arg, TESS_REVLIST_ANY_ROW, tess_strn(NULL, 0)); /* stored by digest */
    else
        l->on_change(l->change_arg, kind == TESS__REVLIST_CUT ? TESS_REVLIST_CUT_ROW : TESS_REVLIST_DENY_ROW,
                     tess_strn(key, len));
}

static void mark_synced(tess_revlist_t *l, int64_t at_mono)
{
    atomic_store_explicit(&l->synced, at_mono > 0 ? at_mono : 1, memory_order_release);
}

/* ---- SQLite --------------------------------------------------------------------------------------------------- */

/* Mirrors rows of `st` (seq, kind, key, value, expires_ms), reporting them when `tell`; 0, or -1 on failure. */
static int sqlite_rows(tess_revlist_t *l, sqlite3_stmt *st, int tell)
{
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        const char *key = (const char *)sqlite3_column_text(st, 2);
        if (key != NULL) {
            size_t len = (size_t)sqlite3_column_bytes(st, 2);
            apply(l, sqlite3_column_int(st, 1), key, len, sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4));
            if (tell)
                report(l, sqlite3_column_int(st, 1), key, len);
        }
        if (seq > l->seq)
            l->seq = seq;
    }
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : -1;
}

static int sqlite_version(tess_revlist_t *l, int64_t *v)
{
    int ok = sqlite3_step(l->version) == SQLITE_ROW;
    if (ok)
        *v = sqlite3_column_int64(l->version, 0);
    sqlite3_reset(l->version);
    return ok ? 0 : -1;
}

static void sqlite_prune(tess_revlist_t *l, int64_t now_ms)
{
    sqlite3_bind_int64(l->prune, 1, now_ms);
    sqlite3_step(l->prune); /* best effort: busy means another process is writing (or pruning) */
    sqlite3_reset(l->prune);
}

static void on_sqlite_tick(void *arg)
{
    tess_revlist_t *l = arg;
    int64_t t0 = tess_mono_ms(), v = l->data_version;

    if (sqlite_version(l, &v) == 0) {
        if (v == l->data_version) {
            mark_synced(l, t0);
        } else {
            sqlite3_bind_int64(l->tail, 1, l->seq);
            if (sqlite_rows(l, l->tail, 1) == 0) { /* another connection committed: read what it added */
                l->data_version = v;
                mark_synced(l, t0);
            }
        }
    }
    if (t0 >= l->next_prune_ms) {
        l->next_prune_ms = t0 + l->prune_ms;
        prune_mirror(l, tess_now_ms());
        sqlite_prune(l, tess_now_ms());
    }
    l->loop->ops->timer_start(l->timer, TESS_REVLIST_TAIL_MS);
}

/* The listener's connection: prepared statements and a full load. `loop` may be NULL (load only). */
static int sqlite_open(tess_revlist_t *l, char *err, size_t errcap)
{
    sqlite3_stmt *all = NULL;
    char *msg = NULL;
    int64_t t0 = tess_mono_ms();
    int rc;

    if ((rc = tess_sqlite_connect(&l->db, l->conninfo, err, errcap)) != 0)
        return rc;
    rc = TESS_EIO;
    if (sqlite3_exec(l->db, sqlite_schema, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_prepare_v2(l->db, "PRAGMA data_version", -1, &l->version, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(l->db,
                           "SELECT seq, kind, key, value, expires_ms FROM tess_revocation WHERE seq > ?1 ORDER BY seq",
                           -1, &l->tail, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(l->db, "DELETE FROM tess_revocation WHERE expires_ms < ?1", -1, &l->prune, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(l->db,
                           "SELECT seq, kind, key, value, expires_ms FROM tess_revocation WHERE expires_ms >= ?1"
                           " UNION ALL SELECT max(seq), -1, NULL, 0, 0 FROM tess_revocation",
                           -1, &all, NULL) != SQLITE_OK) {
        snprintf(err, errcap, "revocation table: %s", msg != NULL ? msg : sqlite3_errmsg(l->db));
        goto out;
    }
    /* The version first: a commit after it is seen by the first poll (and re-read: merging is idempotent). */
    if (sqlite_version(l, &l->data_version) != 0 || sqlite3_exec(l->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errcap, "revocation table: %s", sqlite3_errmsg(l->db));
        goto out;
    }
    sqlite3_bind_int64(all, 1, tess_now_ms());
    rc = sqlite_rows(l, all, 0) == 0 ? 0 : TESS_EIO;
    sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL);
    if (rc != 0) {
        snprintf(err, errcap, "revocation table: %s", sqlite3_errmsg(l->db));
        goto out;
    }
    mark_synced(l, t0);
out:
    sqlite3_free(msg);
    sqlite3_finalize(all);
    return rc;
}

/* ---- PostgreSQL: the listener --------------------------------------------------------------------------------- */

enum { PQ_LISTEN, PQ_LOAD, PQ_PRUNE, PQ_BEAT };
static const tess_pgconn_stmt_t listen_stmts[] = {
    [PQ_LISTEN] = {"LISTEN " CHANNEL, 0},
    [PQ_LOAD] = {"SELECT kind, key, value, expires_ms FROM tess_revocation WHERE expires_ms >= $1::bigint", 1},
    [PQ_PRUNE] = {"DELETE FROM tess_revocation WHERE expires_ms < $1::bigint", 1},
    [PQ_BEAT] = {"SELECT 1 AS tessera_revocation_heartbeat", 0},
};

static int64_t parse_i64(const char *s, char **end)
{
    return strtoll(s, end, 10);
}

static void on_pg_loaded(void *arg, int rc, const PGresult *res)
{
    tess_revlist_t *l = arg;
    if (rc != 0 || res == NULL)
        return; /* retried with the next connection (pgconn reconnects after an error) */
    for (int i = 0; i < PQntuples(res); i++) {
        const char *key = PQgetvalue(res, i, 1);
        apply(l, atoi(PQgetvalue(res, i, 0)), key, (size_t)PQgetlength(res, i, 1),
              parse_i64(PQgetvalue(res, i, 2), NULL), parse_i64(PQgetvalue(res, i, 3), NULL));
    }
    l->loaded = 1;
    mark_synced(l, l->beat_sent);
    if (l->reloads++ > 0)
        report(l, TESS__REVLIST_ANY, NULL, 0); /* after a reconnection: what was missed is in now */
}

static void on_pg_listening(void *arg, int rc, const PGresult *res)
{
    tess_revlist_t *l = arg;
    tess_pgconn_param_t p;
    (void)res;
    if (rc != 0)
        return;
    /* Only now can no NOTIFY be missed: every row committed before the load is in it, every later one comes. */
    l->beat_sent = tess_mono_ms();
    tess_pgconn_param_i64(&p, tess_now_ms());
    tess_pgconn_query(l->conn, PQ_LOAD, &p, 1, on_pg_loaded, l);
}

static void on_pg_state(void *arg, int up)
{
    tess_revlist_t *l = arg;
    l->loaded = 0;
    l->beat_pending = 0;
    atomic_store_explicit(&l->synced, 0, memory_order_release); /* NOTIFYs may be missed from here on */
    if (up)
        tess_pgconn_query(l->conn, PQ_LISTEN, NULL, 0, on_pg_listening, l);
}

/* "<kind> <value> <expires_ms> <key>" */
static void on_pg_notify(void *arg, const char *channel, const char *payload)
{
    tess_revlist_t *l = arg;
    char *p;
    int kind;
    int64_t value, expires;

    if (strcmp(channel, CHANNEL) != 0)
        return;
    kind = (int)parse_i64(payload, &p);
    if (*p++ != ' ')
        return;
    value = parse_i64(p, &p);
    if (*p++ != ' ')
        return;
    expires = parse_i64(p, &p);
    if (*p++ != ' ')
        return;
    apply(l, kind, p, strlen(p), value, expires);
    report(l, kind, p, strlen(p));
}

static void on_pg_beat(void *arg, int rc, const PGresult *res)
{
    tess_revlist_t *l = arg;
    (void)res;
    l->beat_pending = 0;
    /* Answered on the LISTEN connection: every NOTIFY committed before it was sent has been read. */
    if (rc == 0 && l->loaded)
        mark_synced(l, l->beat_sent);
}

static void ignore_pg(void *arg, int rc, const PGresult *res)
{
    (void)arg;
    (void)rc;
    (void)res;
}

static void on_pg_tick(void *arg)
{
    tess_revlist_t *l = arg;
    int64_t t0 = tess_mono_ms();
    tess_pgconn_param_t p;

    if (l->loaded && !l->beat_pending && tess_pgconn_connected(l->conn)) {
        l->beat_pending = 1;
        l->beat_sent = t0;
        tess_pgconn_query(l->conn, PQ_BEAT, NULL, 0, on_pg_beat, l);
    }
    if (t0 >= l->next_prune_ms) {
        l->next_prune_ms = t0 + l->prune_ms;
        prune_mirror(l, tess_now_ms());
        if (l->loaded) {
            tess_pgconn_param_i64(&p, tess_now_ms());
            tess_pgconn_query(l->conn, PQ_PRUNE, &p, 1, ignore_pg, NULL);
        }
    }
    l->loop->ops->timer_start(l->timer, HEARTBEAT_MS);
}

static int pg_migrate(const char *conninfo, char *err, size_t errcap)
{
    PGconn *pg = tess_pgconn_connect_sync(conninfo, err, errcap);
    int rc;
    if (pg == NULL)
        return TESS_EUNAVAIL;
    rc = tess_pgconn_exec_sync(pg, pg_schema, err, errcap);
    PQfinish(pg);
    return rc;
}

/* ---- the list --------------------------------------------------------------------------------------------------- */

/* "sqlite:PATH" (also sqlite://PATH, sqlite:///abs): the path; NULL otherwise. */
static const char *sqlite_path(const char *url)
{
    if (strncmp(url, "sqlite:", 7) != 0)
        return NULL;
    url += 7;
    return strncmp(url, "//", 2) == 0 ? url + 2 : url;
}

static int is_pg_url(const char *url)
{
    return strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0 ||
           (strchr(url, '=') != NULL && strncmp(url, "sqlite:", 7) != 0 && strncmp(url, "redis", 5) != 0);
}

int tess_revlist_new(tess_revlist_t **out, const tess_revlist_opts_t *opts, char *err, size_t errcap)
{
    const char *url = opts->database_url != NULL ? opts->database_url : "";
    const char *path = sqlite_path(url);
    tess_revlist_t *l;
    int rc;

    *out = NULL;
    if ((path == NULL || *path == '\0') && !is_pg_url(url)) {
        snprintf(err, errcap, "token revocation needs a database: sqlite:PATH or postgres://...");
        return TESS_EINVAL;
    }
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return TESS_ENOMEM;
    pthread_rwlock_init(&l->lock, NULL);
    l->nbuckets = 1024;
    l->stale_ms = opts->stale_ms > 0 ? opts->stale_ms : DEFAULT_STALE_MS;
    l->max_entries = opts->max_entries > 0 ? opts->max_entries : DEFAULT_MAX_ENTRIES;
    l->prune_ms = opts->prune_ms > 0 ? opts->prune_ms : DEFAULT_PRUNE_MS;
    l->on_change = opts->on_change;
    l->change_arg = opts->arg;
    l->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 1000;
    l->pg = path == NULL;
    l->buckets = calloc(l->nbuckets, sizeof(*l->buckets));
    l->conninfo = strdup(l->pg ? url : path);
    if (l->buckets == NULL || l->conninfo == NULL) {
        rc = TESS_ENOMEM;
        goto fail;
    }
    if ((rc = l->pg ? pg_migrate(l->conninfo, err, errcap) : sqlite_open(l, err, errcap)) != 0)
        goto fail;
    *out = l;
    return 0;
fail:
    tess_revlist_free(l);
    return rc;
}

int tess_revlist_listen(tess_revlist_t *l, tess_loop_t *loop, char *err, size_t errcap)
{
    if (l->loop != NULL)
        return 0;
    l->loop = loop;
    l->next_prune_ms = tess_mono_ms() + l->prune_ms;
    if ((l->timer = loop->ops->timer_new(loop, l->pg ? on_pg_tick : on_sqlite_tick, l)) == NULL) {
        l->loop = NULL;
        return TESS_ENOMEM;
    }
    if (l->pg) {
        tess_pgconn_opts_t po = {
            .conninfo = l->conninfo,
            .timeout_ms = l->timeout_ms,
            .stmts = listen_stmts,
            .n_stmts = sizeof(listen_stmts) / sizeof(listen_stmts[0]),
            .name = "revocation",
            .on_state = on_pg_state,
            .on_notify = on_pg_notify,
            .event_arg = l,
        };
        int rc = tess_pgconn_open(&l->conn, loop, &po, err, errcap);
        if (rc != 0) {
            tess_revlist_unlisten(l);
            return rc;
        }
    }
    loop->ops->timer_start(l->timer, l->pg ? HEARTBEAT_MS : TESS_REVLIST_TAIL_MS);
    return 0;
}

void tess_revlist_unlisten(tess_revlist_t *l)
{
    if (l == NULL || l->loop == NULL)
        return;
    atomic_store_explicit(&l->synced, 0, memory_order_release);
    if (l->conn != NULL) {
        tess_pgconn_t *c = l->conn;
        l->conn = NULL;
        tess_pgconn_close(c);
    }
    if (l->timer != NULL)
        l->loop->ops->timer_free(l->timer);
    l->timer = NULL;
    l->loop = NULL;
    l->loaded = 0;
}

void tess_revlist_free(tess_revlist_t *l)
{
    if (l == NULL)
        return;
    tess_revlist_unlisten(l);
    sqlite3_finalize(l->version);
    sqlite3_finalize(l->tail);
    sqlite3_finalize(l->prune);
    sqlite3_close(l->db);
    for (size_t i = 0; l->buckets != NULL && i < l->nbuckets; i++) {
        for (entry_t *e = l->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(l->buckets);
    if (l->conninfo != NULL)
        explicit_bzero(l->conninfo, strlen(l->conninfo));
    free(l->conninfo);
    pthread_rwlock_destroy(&l->lock);
    free(l);
}

/* ---- the writers ---------------------------------------------------------------------------------------------- */

struct tess__revwriter {
    tess_revlist_t *l;    /* the list */
    sqlite3 *db;          /* SQLite: this loop's connection */
    sqlite3_stmt *insert; /* its statement */
    tess_pgconn_t *conn;  /* PostgreSQL: this loop's connection */
};

typedef struct put_op {
    tess__revwriter_t *w;                /* the writer */
    tess_revoker_cb cb;                  /* completion */
    void *arg;                           /* its argument */
    int kind;                            /* the row */
    int64_t value, expires_ms;           /* the row */
    char key[TESS__REVLIST_KEY_MAX + 1]; /* the row */
} put_op_t;

static const tess_pgconn_stmt_t write_stmts[] = {
    {"INSERT INTO tess_revocation AS t (kind, key, value, expires_ms) VALUES ($1::bigint, $2, $3::bigint, $4::bigint)"
     " ON CONFLICT (kind, key) DO UPDATE SET value = greatest(t.value, excluded.value),"
     " expires_ms = greatest(t.expires_ms, excluded.expires_ms)"
     " RETURNING pg_notify('" CHANNEL "', t.kind || ' ' || t.value || ' ' || t.expires_ms || ' ' || t.key)",
     4},
};

int tess__revwriter_open(tess__revwriter_t **out, tess_revlist_t *l, tess_loop_t *loop, int64_t timeout_ms, char *err,
                         size_t errcap)
{
    tess__revwriter_t *w;
    int rc;

    *out = NULL;
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return TESS_ENOMEM;
    w->l = l;
    if (l->pg) {
        tess_pgconn_opts_t po = {
            .conninfo = l->conninfo,
            .timeout_ms = timeout_ms > 0 ? timeout_ms : l->timeout_ms,
            .stmts = write_stmts,
            .n_stmts = 1,
            .name = "revocation",
        };
        rc = tess_pgconn_open(&w->conn, loop, &po, err, errcap);
    } else if ((rc = tess_sqlite_connect(&w->db, l->conninfo, err, errcap)) == 0 &&
               sqlite3_prepare_v2(w->db,
                                  "INSERT INTO tess_revocation(kind, key, value, expires_ms) VALUES (?1, ?2, ?3, ?4)",
                                  -1, &w->insert, NULL) != SQLITE_OK) {
        snprintf(err, errcap, "revocation table: %s", sqlite3_errmsg(w->db));
        rc = TESS_EIO;
    }
    if (rc != 0) {
        tess__revwriter_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

static void on_pg_put(void *arg, int rc, const PGresult *res)
{
    put_op_t *op = arg;
    (void)res;
    if (rc == 0)
        apply(op->w->l, op->kind, op->key, strlen(op->key), op->value, op->expires_ms);
    op->cb(op->arg, rc == 0 ? 0 : rc == TESS_ETIMEOUT ? rc : TESS_EUNAVAIL);
    free(op);
}

void tess__revwriter_put(tess__revwriter_t *w, int kind, const char *key, int64_t value, int64_t expires_ms,
                         tess_revoker_cb cb, void *arg)
{
    size_t len = strlen(key);

    if (w->db != NULL) {
        int src;
        sqlite3_bind_int(w->insert, 1, kind);
        sqlite3_bind_text(w->insert, 2, key, (int)len, SQLITE_STATIC);
        sqlite3_bind_int64(w->insert, 3, value);
        sqlite3_bind_int64(w->insert, 4, expires_ms);
        src = sqlite3_step(w->insert);
        sqlite3_reset(w->insert);
        sqlite3_clear_bindings(w->insert);
        if (src != SQLITE_DONE) {
            cb(arg, TESS_EUNAVAIL);
            return;
        }
        apply(w->l, kind, key, len, value, expires_ms);
        cb(arg, 0);
        return;
    }
    put_op_t *op = malloc(sizeof(*op));
    tess_pgconn_param_t p[4];
    if (op == NULL) {
        cb(arg, TESS_ENOMEM);
        return;
    }
    op->w = w;
    op->cb = cb;
    op->arg = arg;
    op->kind = kind;
    op->value = value;
    op->expires_ms = expires_ms;
    memcpy(op->key, key, len + 1);
    tess_pgconn_param_i64(&p[0], kind);
    tess_pgconn_param_str(&p[1], op->key, len);
    tess_pgconn_param_i64(&p[2], value);
    tess_pgconn_param_i64(&p[3], expires_ms);
    if (tess_pgconn_query(w->conn, 0, p, 4, on_pg_put, op) != 0) {
        free(op);
        cb(arg, TESS_EINVAL);
    }
}

void tess__revwriter_free(tess__revwriter_t *w)
{
    if (w == NULL)
        return;
    tess_pgconn_close(w->conn);
    sqlite3_finalize(w->insert);
    sqlite3_close(w->db);
    free(w);
}
