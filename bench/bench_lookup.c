/*
 * Library-level session lookups: what one tess_auth_check() of a seeded session costs per strategy and store,
 * without HTTP. bench/run seeds the store and hands over the cookies; one lookup at a time on a poll loop
 * (the latency of one lookup, not the throughput of a pipelined loop), cookies taken in the file's (shuffled)
 * order and wrapping around.
 *
 *   bench_lookup --strategy db|redis|jwt|cached --secret S --cookies FILE --lookups N [--store URL]
 *   bench_lookup --memory N
 *   bench_lookup --mint N --format nextauth|authjs --secret S --user UID
 *
 * --format (jwt): NextAuth v4 / Auth.js v5 JWE sessions instead of HS256; (db, cached): NextAuth's database
 * sessions in the Prisma adapter's tables ("role" the role column), the cookie holding the raw token.
 * --mint: prints N cookies ("<cookie name>=<JWE>", one a line) of user UID, each with its own jti, iat spread
 * over the last hour and exp 30 days later, as the format's encode() writes them (bench/run seeds the JWE
 * configurations with it).
 *
 * --memory: N sessions (the shape of a login's: 43-byte id, numeric user id, role "visitor") put into one
 * near-cache; prints RSS before and after, the cache's own accounted bytes, and bytes per entry.
 *
 * cached: the near-cache is filled by one pass over every cookie first (those lookups are reported apart, as
 * "warm"), then the N measured lookups are hits. Prints one JSON line: lookups, failures (by error name: each
 * one must be explained), p50/p90/p99/max ns, mean ns, CPU ns per lookup (this process; for redis and db the
 * store's own CPU is bench/run's to count). Exit 1 on a set-up error; failed lookups are reported, not fatal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tessera/auth.h"
#include "tessera/cache.h"
#include "tessera/cookie.h"
#include "tessera/nextauth.h"
#include "tessera/error.h"
#include "tessera/jwe.h"
#include "tessera/jwt.h"
#include "tessera/pollloop.h"
#include "tessera/session.h"
#include "tessera/store.h"

#define MAX_FAIL_KINDS 8

typedef struct lookup {
    int done; /* the callback ran */
    int rc;   /* its result */
} lookup_t;

static int64_t ns_now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t ms_now(void)
{
    return ns_now(CLOCK_REALTIME) / 1000000;
}

static void die(const char *what, int rc, const char *err)
{
    fprintf(stderr, "bench_lookup: %s: %s %s\n", what, rc != 0 ? tess_strerror(rc) : "", err != NULL ? err : "");
    exit(1);
}

static void on_check(void *arg, int rc, const tess_session_t *s, tess_str_t cookie)
{
    lookup_t *l = arg;
    (void)cookie;
    l->rc = rc == 0 && s == NULL ? TESS_ENOTFOUND : rc;
    l->done = 1;
}

static int is_done(void *arg)
{
    return ((lookup_t *)arg)->done;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The cookie file: one Cookie header value a line. */
static char **read_cookies(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    char line[8192], **v = NULL;
    size_t cap = 0;
    *n = 0;
    if (f == NULL)
        die("cookies", 0, path);
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t len = strcspn(line, "\r\n");
        if (len == 0)
            continue;
        line[len] = '\0';
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            if ((v = realloc(v, cap * sizeof(*v))) == NULL)
                die("cookies", TESS_ENOMEM, NULL);
        }
        if ((v[(*n)++] = strdup(line)) == NULL)
            die("cookies", TESS_ENOMEM, NULL);
    }
    fclose(f);
    if (*n == 0)
        die("cookies", 0, "empty file");
    return v;
}

typedef struct fails {
    int rc[MAX_FAIL_KINDS];
    long count[MAX_FAIL_KINDS];
    int kinds;
    long total;
} fails_t;

static void count_fail(fails_t *f, int rc)
{
    int i;
    f->total++;
    for (i = 0; i < f->kinds; i++)
        if (f->rc[i] == rc)
            break;
    if (i == f->kinds) {
        if (f->kinds == MAX_FAIL_KINDS)
            i = MAX_FAIL_KINDS - 1;
        else
            f->rc[f->kinds++] = rc;
    }
    f->count[i]++;
}

/* One lookup, run to completion on the loop; returns its wall time in ns. */
static int64_t one(tess_auth_t *auth, tess_poll_loop_t *loop, const char *cookie, fails_t *f)
{
    lookup_t l = {0, 0};
    int64_t t0 = ns_now(CLOCK_MONOTONIC);
    tess_auth_check(auth, tess_str(cookie), ms_now(), on_check, &l);
    if (!l.done && tess_poll_loop_run_until(loop, is_done, &l, 5000) != 0 && !l.done)
        l.rc = TESS_ETIMEOUT;
    if (l.rc != 0)
        count_fail(f, l.rc);
    return ns_now(CLOCK_MONOTONIC) - t0;
}

static void print_fails(const char *name, const fails_t *f)
{
    printf(",\"%s\":{", name);
    for (int i = 0; i < f->kinds; i++)
        printf("%s\"%s\":%ld", i ? "," : "", tess_err_name(f->rc[i]), f->count[i]);
    printf("}");
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* The near-cache's memory per session: N entries shaped as a login's. */
static int memory(long n)
{
    tess_cache_opts_t co;
    tess_cache_t *cache;
    tess_session_policy_t pol;
    tess_session_t s;
    int64_t now = ms_now();
    int rc;
    tess_cache_opts_default(&co);
    co.max_entries = (size_t)n * 2 + 16; /* room in every shard: nothing evicted */
    co.max_bytes = (size_t)1 << 40;
    co.ttl_ms = 3600 * 1000;
    tess_session_policy_default(&pol);
    long before = rss_kb();
    if ((rc = tess_cache_new(&cache, &co)) != 0)
        die("cache", rc, NULL);
    for (long i = 0; i < n; i++) {
        char uid[24];
        snprintf(uid, sizeof(uid), "%ld", 1000000 + i);
        if ((rc = tess_session_init(&s, &pol, tess_str(uid), tess_str("visitor"), now)) != 0)
            die("session", rc, NULL);
        if ((rc = tess_cache_put(cache, tess_str(s.id), &s, now, tess_cache_gen(cache, tess_str(s.id)))) != 0)
            die("put", rc, NULL);
        tess_session_clear(&s);
    }
    long after = rss_kb();
    tess_cache_stats_t cs;
    tess_cache_get_stats(cache, &cs);
    printf("{\"entries\":%zu,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,\"accounted_bytes\":%zu,"
           "\"bytes_per_entry\":%.1f,\"accounted_per_entry\":%.1f,\"session_struct_bytes\":%zu,"
           "\"payload_bytes\":%zu}\n",
           cs.entries, before, after, cs.bytes, cs.entries ? (after - before) * 1024.0 / (double)cs.entries : 0.0,
           cs.entries ? (double)cs.bytes / (double)cs.entries : 0.0, sizeof(tess_session_t),
           (size_t)43 + 7 + 7 + 3 * sizeof(int64_t) + sizeof(int64_t));
    tess_cache_free(cache);
    return cs.entries == (size_t)n ? 0 : 1;
}

static tess_jwe_t *jwe_for(const char *format, const tess_secrets_t *secrets)
{
    tess_jwe_opts_t jo = {.leeway_s = -1};
    tess_jwe_t *jwe;
    int rc;
    if (tess_session_format_parse(tess_str(format), &jo.format) != 0 || jo.format == TESS_FORMAT_EXPRESS)
        die("format", TESS_EINVAL, format);
    if ((rc = tess_jwe_new(&jwe, secrets, &jo)) != 0)
        die("jwe", rc, NULL);
    return jwe;
}

static int mint(long n, const char *format, const char *secret, const char *user)
{
    tess_secrets_t *secrets = NULL;
    tess_jwe_t *jwe;
    char tok[8192];
    size_t len;
    int rc;
    int64_t now = ms_now() / 1000;
    if ((rc = tess_secrets_parse(&secrets, tess_str(secret))) != 0)
        die("secret", rc, NULL);
    jwe = jwe_for(format, secrets);
    tess_str_t name = tess_jwe_cookie_name(jwe);
    for (long i = 0; i < n; i++) {
        tess_jwt_claims_t cl;
        memset(&cl, 0, sizeof(cl));
        snprintf(cl.user_id, sizeof(cl.user_id), "%s", user);
        snprintf(cl.jti, sizeof(cl.jti), "bench-%ld-%lld", i, (long long)now);
        cl.iat = now - i % 3600;
        cl.exp = cl.iat + 30 * 86400;
        if ((rc = tess_jwe_encrypt(jwe, &cl, tok, sizeof(tok), &len)) != 0)
            die("encrypt", rc, NULL);
        printf("%.*s=%s\n", (int)name.len, name.ptr, tok);
    }
    tess_jwe_free(jwe);
    tess_secrets_free(secrets);
    return 0;
}

int main(int argc, char **argv)
{
    const char *format = NULL;
    if (argc == 3 && strcmp(argv[1], "--memory") == 0)
        return memory(strtol(argv[2], NULL, 10));
    if (argc == 9 && strcmp(argv[1], "--mint") == 0 && strcmp(argv[3], "--format") == 0 &&
        strcmp(argv[5], "--secret") == 0 && strcmp(argv[7], "--user") == 0)
        return mint(strtol(argv[2], NULL, 10), argv[4], argv[6], argv[8]);
    const char *strategy = NULL, *secret = NULL, *cookies_path = NULL, *url = NULL;
    long lookups = 100000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--strategy") == 0)
            strategy = argv[i + 1];
        else if (strcmp(argv[i], "--secret") == 0)
            secret = argv[i + 1];
        else if (strcmp(argv[i], "--cookies") == 0)
            cookies_path = argv[i + 1];
        else if (strcmp(argv[i], "--store") == 0)
            url = argv[i + 1];
        else if (strcmp(argv[i], "--format") == 0)
            format = argv[i + 1];
        else if (strcmp(argv[i], "--lookups") == 0)
            lookups = strtol(argv[i + 1], NULL, 10);
        else
            die("usage", 0, argv[i]);
    }
    if (strategy == NULL || secret == NULL || cookies_path == NULL || lookups <= 0)
        die("usage", 0, "bench_lookup --strategy S --secret S --cookies FILE --lookups N [--store URL]");

    tess_strategy_t st;
    int rc;
    char err[256] = "";
    if (tess_strategy_parse(tess_str(strategy), &st) != 0)
        die("strategy", TESS_EINVAL, strategy);
    size_t n;
    char **cookies = read_cookies(cookies_path, &n);
    tess_poll_loop_t *loop = tess_poll_loop_new();
    tess_secrets_t *secrets = NULL;
    tess_jwt_t *jwt = NULL;
    tess_jwe_t *jwe = NULL;
    tess_store_t *store = NULL;
    tess_cache_t *cache = NULL;
    tess_auth_t *auth = NULL;
    if (loop == NULL)
        die("loop", TESS_ENOMEM, NULL);
    if ((rc = tess_secrets_parse(&secrets, tess_str(secret))) != 0)
        die("secret", rc, NULL);
    tess_auth_config_t ac = {.strategy = st, .secrets = secrets, .loop = tess_poll_loop_base(loop)};
    tess_session_policy_default(&ac.policy);
    if (st == TESS_STRATEGY_JWT) {
        if ((rc = tess_jwt_new(&jwt, secrets, NULL)) != 0)
            die("jwt", rc, NULL);
        ac.jwt = jwt;
        if (format != NULL && strcmp(format, "express") != 0) {
            ac.jwe = jwe = jwe_for(format, secrets);
            ac.format = tess_jwe_format(jwe);
        }
    } else {
        tess_store_params_t sp = {.url = url, .loop = tess_poll_loop_base(loop)};
        if (url == NULL)
            die("usage", 0, "--store URL is needed by this strategy");
        if (format != NULL && strcmp(format, "express") != 0) {
            /* NextAuth's database sessions: the Prisma tables, the raw token in the format's cookie, and the
             * format's sliding (maxAge 30 days, updateAge a day), as `tessera serve` sets them up */
            tess_nextauth_opts_t no = {.role_column = "role", .max_age_ms = TESS_NEXTAUTH_MAX_AGE_MS};
            if (tess_session_format_parse(tess_str(format), &ac.format) != 0)
                die("format", TESS_EINVAL, format);
            if ((rc = tess_nextauth_open(&store, &sp, &no, err, sizeof(err))) != 0)
                die("store", rc, err);
            ac.cookie_name = tess_str(tess_jwe_cookie_default(ac.format, 0));
            ac.policy.idle_s = TESS_NEXTAUTH_MAX_AGE_MS / 1000;
            ac.policy.touch_interval_s = 86400;
        } else if ((rc = tess_store_open_url(&store, &sp, err, sizeof(err))) != 0) {
            die("store", rc, err);
        }
        ac.store = store;
    }
    if (st == TESS_STRATEGY_CACHED) {
        tess_cache_opts_t co;
        tess_cache_opts_default(&co);
        co.max_entries = n * 2 > co.max_entries ? n * 2 : co.max_entries;
        co.max_bytes = (size_t)1 << 30;
        if ((rc = tess_cache_new(&cache, &co)) != 0)
            die("cache", rc, NULL);
        ac.cache = cache;
    }
    if ((rc = tess_auth_new(&auth, &ac)) != 0)
        die("auth", rc, NULL);

    /* Connect (redis, postgres: the store connects on the loop and answers TESS_EUNAVAIL until then), */
    fails_t warm_fails = {{0}, {0}, 0, 0}, fails = {{0}, {0}, 0, 0};
    int64_t deadline = ns_now(CLOCK_MONOTONIC) + 10 * (int64_t)1000000000;
    for (;;) {
        fails_t f = {{0}, {0}, 0, 0};
        one(auth, loop, cookies[0], &f);
        if (f.total == 0)
            break;
        if (f.rc[0] != TESS_EUNAVAIL || ns_now(CLOCK_MONOTONIC) > deadline)
            die("first lookup", f.rc[0], "(the store is not reachable, or the seeded session is refused)");
        tess_poll_loop_run_once(loop, 10);
    }
    /* then, for cached, fill the near-cache: one lookup of every cookie. */
    int64_t warm_ns = 0;
    long warm = st == TESS_STRATEGY_CACHED ? (long)n : (n < 100 ? (long)n : 100);
    for (long i = 0; i < warm; i++)
        warm_ns += one(auth, loop, cookies[i % n], &warm_fails);

    int64_t *lat = malloc((size_t)lookups * sizeof(*lat));
    if (lat == NULL)
        die("latencies", TESS_ENOMEM, NULL);
    int64_t cpu0 = ns_now(CLOCK_PROCESS_CPUTIME_ID), t0 = ns_now(CLOCK_MONOTONIC);
    for (long i = 0; i < lookups; i++)
        lat[i] = one(auth, loop, cookies[(size_t)i % n], &fails);
    int64_t wall = ns_now(CLOCK_MONOTONIC) - t0, cpu = ns_now(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    qsort(lat, (size_t)lookups, sizeof(*lat), cmp_i64);

    tess_cache_stats_t cs = {0};
    if (cache != NULL)
        tess_cache_get_stats(cache, &cs);
    printf("{\"strategy\":\"%s\",\"sessions\":%zu,\"lookups\":%ld,\"failures\":%ld,\"warm_lookups\":%ld,"
           "\"warm_failures\":%ld,\"warm_mean_ns\":%.0f,\"mean_ns\":%.0f,\"p50_ns\":%lld,\"p90_ns\":%lld,"
           "\"p99_ns\":%lld,\"max_ns\":%lld,\"cpu_ns\":%.0f,\"cache_hits\":%llu,\"cache_entries\":%zu",
           strategy, n, lookups, fails.total, warm, warm_fails.total, warm ? (double)warm_ns / warm : 0.0,
           (double)wall / lookups, (long long)lat[lookups / 2], (long long)lat[lookups * 9 / 10],
           (long long)lat[lookups * 99 / 100], (long long)lat[lookups - 1], (double)cpu / lookups,
           (unsigned long long)cs.hits, cs.entries);
    print_fails("failure_kinds", &fails);
    print_fails("warm_failure_kinds", &warm_fails);
    printf("}\n");

    free(lat);
    tess_auth_free(auth);
    if (store != NULL)
        tess_store_close(store);
    /* let a closing store's last callbacks run */
    for (int i = 0; i < 10 && tess_poll_loop_live_ios(loop) > 0; i++)
        tess_poll_loop_run_once(loop, 10);
    tess_cache_free(cache);
    tess_jwt_free(jwt);
    tess_jwe_free(jwe);
    tess_secrets_free(secrets);
    tess_poll_loop_free(loop);
    for (size_t i = 0; i < n; i++)
        free(cookies[i]);
    free(cookies);
    return 0;
}
