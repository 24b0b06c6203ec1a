/*
 * Micro-benchmark: ns per tess_auth_check of the jwt strategy (cookie lookup, tess_jwt_verify, and the
 * revocation check), without a revoker and with the database's list (tessera/revoke.h: the in-process mirror
 * of a SQLite table), empty and holding 100,000 entries; for a token with a jti and for the note's token
 * (no jti, no role: its id is the SHA-256 of the token). Interleaved rounds, best round reported.
 *
 *   cmake -S bench -B build-bench && cmake --build build-bench && build-bench/bench_jwt_check
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tessera/auth.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/pollloop.h"
#include "tessera/revoke.h"

#define ROUNDS 7
#define ITERS 200000
#define ENTRIES 100000
#define CASES 6

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what, int rc, const char *err)
{
    fprintf(stderr, "bench_jwt_check: %s: %s %s\n", what, tess_strerror(rc), err != NULL ? err : "");
    exit(1);
}

static void on_check(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    (void)s;
    (void)cookie;
    *(int *)arg = rc;
}

static tess_auth_t *auth_with(tess_secrets_t *secrets, tess_jwt_t *jwt, tess_revoker_t *rev)
{
    tess_auth_config_t ac = {.strategy = TESS_STRATEGY_JWT, .secrets = secrets, .jwt = jwt, .revoker = rev};
    tess_auth_t *a;
    int rc = tess_auth_new(&a, &ac);
    if (rc != 0)
        die("auth", rc, NULL);
    return a;
}

/* A revoker over a fresh list of `path` (holding what the table holds); stale_ms large: nobody polls here. */
static tess_revoker_t *revoker_on(tess_poll_loop_t *loop, const char *url, tess_revlist_t **list)
{
    tess_revlist_opts_t lo = {.database_url = url, .stale_ms = 3600 * 1000};
    tess_revoker_opts_t ro = {0};
    tess_revoker_t *r;
    char err[256] = "";
    int rc;
    if ((rc = tess_revlist_new(list, &lo, err, sizeof(err))) != 0)
        die("revlist", rc, err);
    ro.list = *list;
    if ((rc = tess_revoker_open(&r, tess_poll_loop_base(loop), &ro, err, sizeof(err))) != 0)
        die("revoker", rc, err);
    return r;
}

int main(void)
{
    char dir[] = "/tmp/bench-jwt-check-XXXXXX", url[128], path[96], tok[1024], note[1024];
    char hdr_tok[1100], hdr_note[1100];
    tess_secrets_t *secrets = NULL;
    tess_jwt_t *jwt = NULL;
    tess_poll_loop_t *loop = tess_poll_loop_new();
    tess_revlist_t *empty_list, *full_list;
    tess_jwt_claims_t c;
    size_t n;
    int rc;

    if (mkdtemp(dir) == NULL || loop == NULL)
        die("setup", TESS_EIO, NULL);
    snprintf(path, sizeof(path), "%s/rev.db", dir);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    if ((rc = tess_secrets_parse(&secrets, tess_str("bench-secret-new"))) != 0 ||
        (rc = tess_jwt_new(&jwt, secrets, NULL)) != 0)
        die("jwt", rc, NULL);
    int64_t now_ms = tess_now_ms(), now = now_ms / 1000;
    memset(&c, 0, sizeof(c));
    strcpy(c.user_id, "1234567");
    strcpy(c.role, "user");
    if ((rc = tess_id_new(c.jti)) != 0)
        die("id", rc, NULL);
    c.iat = now;
    c.exp = now + 30 * 86400;
    if ((rc = tess_jwt_sign(jwt, &c, tok, sizeof(tok), &n)) != 0)
        die("sign", rc, NULL);
    c.jti[0] = c.role[0] = '\0'; /* the note's token: {userId, iat, exp} */
    if ((rc = tess_jwt_sign(jwt, &c, note, sizeof(note), &n)) != 0)
        die("sign", rc, NULL);
    snprintf(hdr_tok, sizeof(hdr_tok), "theme=dark; session-token=%s", tok);
    snprintf(hdr_note, sizeof(hdr_note), "theme=dark; session-token=%s", note);

    tess_revoker_t *empty_rev = revoker_on(loop, url, &empty_list);
    {
        /* ENTRIES revocations of other tokens and users, as one transaction */
        sqlite3 *db;
        sqlite3_stmt *st;
        if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "INSERT INTO tess_revocation(kind, key, value, expires_ms) VALUES (?1, ?2, ?3, ?4)",
                               -1, &st, NULL) != SQLITE_OK)
            die("populate", TESS_EIO, sqlite3_errmsg(db));
        for (int i = 0; i < ENTRIES; i++) {
            char key[64];
            int cut = i % 4 == 0;
            snprintf(key, sizeof(key), cut ? "%d" : "jti-%08d-0123456789abcdef0123456789", i + 10000000);
            sqlite3_bind_int(st, 1, cut);
            sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 3, cut ? now_ms : 0);
            sqlite3_bind_int64(st, 4, now_ms + 86400 * 1000LL);
            sqlite3_step(st);
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(db);
    }
    tess_revoker_t *full_rev = revoker_on(loop, url, &full_list);
    if (tess_revlist_size(full_list) != ENTRIES || tess_revlist_size(empty_list) != 0)
        die("mirror size", TESS_EIO, NULL);

    struct {
        const char *name;
        tess_auth_t *auth;
        const char *hdr;
    } cases[CASES] = {
        {"jti token, no revoker", auth_with(secrets, jwt, NULL), hdr_tok},
        {"jti token, mirror empty", auth_with(secrets, jwt, empty_rev), hdr_tok},
        {"jti token, mirror 100k entries", auth_with(secrets, jwt, full_rev), hdr_tok},
        {"note token, no revoker", auth_with(secrets, jwt, NULL), hdr_note},
        {"note token, mirror empty", auth_with(secrets, jwt, empty_rev), hdr_note},
        {"note token, mirror 100k entries", auth_with(secrets, jwt, full_rev), hdr_note},
    };
    double best[CASES + 1];
    for (int k = 0; k <= CASES; k++)
        best[k] = 1e18;
    volatile int sink = 0;
    char id[TESS_JWT_TOKEN_ID_MAX + 1];
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < CASES; k++) {
            int out = -1;
            double t0 = now_ns();
            for (int i = 0; i < ITERS; i++) {
                tess_auth_check(cases[k].auth, tess_str(cases[k].hdr), now_ms, on_check, &out);
                sink += out;
            }
            double d = (now_ns() - t0) / ITERS;
            if (out != 0)
                die(cases[k].name, out, "(expected an accepted token)");
            if (d < best[k])
                best[k] = d;
        }
        double t0 = now_ns();
        for (int i = 0; i < ITERS; i++)
            sink += tess_jwt_token_digest(jwt, tess_str(note), id, sizeof(id));
        double d = (now_ns() - t0) / ITERS;
        if (d < best[CASES])
            best[CASES] = d;
    }
    printf("tess_auth_check, jwt strategy; best of %d rounds x %d\n", ROUNDS, ITERS);
    for (int k = 0; k < CASES; k++)
        printf("%-36s %8.1f ns\n", cases[k].name, best[k]);
    printf("%-36s %8.1f ns\n", "tess_jwt_token_digest (note token)", best[CASES]);
    printf("(sink %d)\n", sink != 0);
    for (int k = 0; k < CASES; k++)
        tess_auth_free(cases[k].auth);
    tess_revoker_free(empty_rev);
    tess_revoker_free(full_rev);
    tess_revlist_free(empty_list);
    tess_revlist_free(full_list);
    tess_jwt_free(jwt);
    tess_secrets_free(secrets);
    tess_poll_loop_free(loop);
    unlink(path);
    snprintf(path, sizeof(path), "%s/rev.db-wal", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/rev.db-shm", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}
