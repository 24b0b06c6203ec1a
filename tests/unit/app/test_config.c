/*
 * Unit tests of the tessera serve configuration (src/app/config.c): defaults, every flag and environment
 * variable (a flag beats its variable), the refusals (TESS_ECONFIG, one line naming what was wrong), the
 * strategy rules, database URLs, the development secret file and tess_parse_int.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/config.h"
#include "tessera/encoding.h"
#include "tessera/error.h"

#include "strfill.h"
#include "tmpdir.h"

#define ARGC(argv) ((int)(sizeof(argv) / sizeof((argv)[0])))

/* Every variable config.c reads: cleared around each test so that none leaks into the next. */
static const char *const env_vars[] = {
    "TESSERA_LISTEN",
    "DATABASE_URL",
    "SESSION_STRATEGY",
    "TESSERA_THREADS",
    "REDIS_URL",
    "SESSION_PREFIX",
    "SESSION_FALLBACK",
    "BACKEND_TIMEOUT_MS",
    "CACHE_L2_TTL",
    "META_CACHE_TTL",
    "TESSERA_ENV",
    "SESSION_TTL",
    "SESSION_IDLE_TTL",
    "SESSION_TOUCH_INTERVAL",
    "TESSERA_MAX_CONNECTIONS",
    "TESSERA_MAX_CONNECTIONS_PER_ADDRESS",
    "TESSERA_HEADER_TIMEOUT_MS",
    "TESSERA_H2C",
    "TESSERA_MAX_HEADER_BYTES",
    "TESSERA_MAX_HEADERS",
    "TESSERA_MAX_BODY",
    "CACHE_MAX_ENTRIES",
    "CACHE_MAX_BYTES",
    "CACHE_TTL",
    "JWT_LEEWAY",
    "SESSION_COOKIE",
    "SESSION_SECRET",
    "NEXTAUTH_SECRET",
    "TESSERA_LOGIN_MAX_FAILURES",
    "TESSERA_LOGIN_ADDRESS_MAX_FAILURES",
    "TESSERA_LOGIN_WINDOW",
    "TESSERA_LOGIN_LOCKOUT",
    "TESSERA_LOGIN_QUEUE_PER_ADDRESS",
    "TESSERA_PASSWORD_WORKERS",
    "TESSERA_PASSWORD_QUEUE",
    "TESSERA_MAX_OPEN_PRECHATS",
    "TESSERA_MESSAGE_RATE",
    "TESSERA_MESSAGE_BURST",
};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); ++i)
        assert_int_equal(unsetenv(env_vars[i]), 0);
    return 0;
}

static void set_env(const char *name, const char *value)
{
    assert_int_equal(setenv(name, value, 1), 0);
}

typedef struct loaded {
    tess_config_t cfg; /* what tess_config_load filled (free with done()) */
    char err[512];     /* its reason */
} loaded_t;

/* Loads from `argv` (argv[0] is "serve") and the environment; returns tess_config_load's answer. */
static int load(loaded_t *l, int argc, char **argv)
{
    memset(l->err, 0, sizeof(l->err));
    return tess_config_load(&l->cfg, argc, argv, l->err, sizeof(l->err));
}

/* A load that must succeed. */
static void load_ok(loaded_t *l, int argc, char **argv)
{
    int rc = load(l, argc, argv);
    if (rc != 0)
        fail_msg("load refused (%d): %s", rc, l->err);
}

/* A load that must be refused with one line that mentions `name`. */
static void load_bad(int argc, char **argv, const char *name)
{
    loaded_t l;
    int rc = load(&l, argc, argv);
    if (rc != TESS_ECONFIG)
        fail_msg("expected TESS_ECONFIG for %s, got %d", name, rc);
    assert_true(l.err[0] != '\0');
    assert_null(strchr(l.err, '\n'));
    if (strstr(l.err, name) == NULL)
        fail_msg("the reason does not name %s: %s", name, l.err);
    tess_config_free(&l.cfg);
}

/* Loads with no flags at all. */
static int load_env(loaded_t *l)
{
    char *argv[] = {"serve"};
    return load(l, ARGC(argv), argv);
}

static void load_env_ok(loaded_t *l)
{
    char *argv[] = {"serve"};
    load_ok(l, ARGC(argv), argv);
}

/* `name=value` in the environment must be refused with a reason that names `name`. */
static void env_bad(const char *name, const char *value)
{
    char *argv[] = {"serve"};
    set_env(name, value);
    load_bad(ARGC(argv), argv, name);
    assert_int_equal(unsetenv(name), 0);
}

/* `value` must be refused both after `flag` and in the variable `var`, each reason naming its source. */
static void both_bad(const char *flag, const char *var, const char *value)
{
    char *argv[] = {"serve", (char *)flag, (char *)value};
    load_bad(ARGC(argv), argv, flag);
    env_bad(var, value);
}

static void test_defaults(void **state)
{
    tess_session_policy_t policy;
    tess_cache_opts_t cache;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    loaded_t l;
    (void)state;

    load_env_ok(&l);
    tess_session_policy_default(&policy);
    tess_cache_opts_default(&cache);
    assert_string_equal(l.cfg.listen_host, "127.0.0.1");
    assert_int_equal(l.cfg.listen_port, 8080);
    assert_string_equal(l.cfg.database_url, "sqlite:./tessera.db");
    assert_string_equal(l.cfg.sqlite_path, "./tessera.db");
    assert_int_equal(l.cfg.postgres, 0);
    assert_string_equal(l.cfg.redis_url, "");
    assert_string_equal(l.cfg.session_prefix, "session:");
    assert_int_equal(l.cfg.backend_timeout_ms, 1000);
    assert_int_equal(l.cfg.strategy, TESS_STRATEGY_DB);
    assert_int_equal(l.cfg.has_fallback, 0);
    assert_null(l.cfg.secrets);
    assert_int_equal(l.cfg.secret_generated, 0);
    assert_int_equal(l.cfg.policy.ttl_s, policy.ttl_s);
    assert_int_equal(l.cfg.policy.idle_s, policy.idle_s);
    assert_int_equal(l.cfg.policy.touch_interval_s, policy.touch_interval_s);
    assert_string_equal(l.cfg.cookie_name, "");
    assert_int_equal(l.cfg.production, 0);
    assert_int_equal(l.cfg.threads, ncpu > 0 ? ncpu : 1);
    assert_int_equal(l.cfg.max_body, 65536);
    assert_int_equal(l.cfg.max_connections, 10000);
    assert_int_equal(l.cfg.max_conns_per_addr, 256);
    assert_int_equal(l.cfg.header_timeout_ms, 5000);
    assert_int_equal(l.cfg.h2c, 0);
    assert_int_equal(l.cfg.max_header_bytes, 32768);
    assert_int_equal(l.cfg.max_headers, 64);
    assert_int_equal(l.cfg.cache.max_entries, cache.max_entries);
    assert_int_equal(l.cfg.cache.max_bytes, cache.max_bytes);
    assert_int_equal(l.cfg.cache.ttl_ms, cache.ttl_ms);
    assert_int_equal(l.cfg.cache.negative_ttl_ms, cache.negative_ttl_ms);
    assert_int_equal(l.cfg.l2_ttl_ms, 300000);
    assert_int_equal(l.cfg.meta_ttl_ms, 60000);
    assert_int_equal(l.cfg.jwt_leeway_s, 30);
    tess_config_free(&l.cfg);
}

static void test_usage_documents_every_option(void **state)
{
    static const char *const flags[] = {"--listen", "--database",       "--strategy",
                                        "--redis",  "--threads",        "--max-connections-per-address",
                                        "--h2c",    "--header-timeout", "--help"};
    char text[8192];
    size_t n;
    FILE *f = tmpfile();
    (void)state;

    assert_non_null(f);
    tess_config_usage(f);
    rewind(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    assert_true(n > 0 && n < sizeof(text) - 1);
    text[n] = '\0';
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); ++i)
        if (strstr(text, flags[i]) == NULL)
            fail_msg("usage does not mention %s", flags[i]);
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); ++i)
        if (strstr(text, env_vars[i]) == NULL)
            fail_msg("usage does not mention %s", env_vars[i]);
}

/* Loads with stdout sent to a file; `out` gets what was printed. */
static int load_capturing_stdout(loaded_t *l, int argc, char **argv, char *out, size_t cap)
{
    FILE *f = tmpfile();
    int saved, rc;
    size_t n;

    assert_non_null(f);
    fflush(stdout);
    assert_true((saved = dup(STDOUT_FILENO)) >= 0);
    assert_int_equal(dup2(fileno(f), STDOUT_FILENO), STDOUT_FILENO);
    rc = load(l, argc, argv);
    fflush(stdout);
    assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
    close(saved);
    rewind(f);
    n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
    return rc;
}

static void test_help(void **state)
{
    char *long_help[] = {"serve", "--listen", "127.0.0.1:1", "--help"};
    char *short_help[] = {"serve", "-h"};
    char out[8192];
    loaded_t l;
    (void)state;

    assert_int_equal(load_capturing_stdout(&l, ARGC(long_help), long_help, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "usage: tessera serve"));
    tess_config_free(&l.cfg);
    assert_int_equal(load_capturing_stdout(&l, ARGC(short_help), short_help, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "usage: tessera serve"));
    tess_config_free(&l.cfg);
}

/* A flag cluster stopped half-way ("-hx" answers --help at 'h') must not leak into the next load. */
static void test_getopt_state_reset(void **state)
{
    char *cluster[] = {"serve", "-hx"};
    char out[8192];
    loaded_t l;
    (void)state;

    assert_int_equal(load_capturing_stdout(&l, ARGC(cluster), cluster, out, sizeof(out)), 1);
    tess_config_free(&l.cfg);
    load_env_ok(&l);
    tess_config_free(&l.cfg);
}

static void test_listen(void **state)
{
    char *flag[] = {"serve", "--listen", "[::1]:7000"};
    char *flag_eq[] = {"serve", "--listen=0.0.0.0:1"};
    loaded_t l;
    (void)state;

    set_env("TESSERA_LISTEN", "10.1.2.3:65535");
    load_env_ok(&l);
    assert_string_equal(l.cfg.listen_host, "10.1.2.3");
    assert_int_equal(l.cfg.listen_port, 65535);
    tess_config_free(&l.cfg);

    load_ok(&l, ARGC(flag), flag); /* the flag beats the variable */
    assert_string_equal(l.cfg.listen_host, "::1");
    assert_int_equal(l.cfg.listen_port, 7000);
    tess_config_free(&l.cfg);

    load_ok(&l, ARGC(flag_eq), flag_eq);
    assert_string_equal(l.cfg.listen_host, "0.0.0.0");
    assert_int_equal(l.cfg.listen_port, 1);
    tess_config_free(&l.cfg);
}

static void test_listen_bad(void **state)
{
    static const char *const bad[] = {"nope",  "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                                      ":8080", "[]:80",      "host:80x",    "[::1]"};
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        both_bad("--listen", "TESSERA_LISTEN", bad[i]);
}

static void test_database(void **state)
{
    char *flag[] = {"serve", "--database", "postgres://app@127.0.0.1/app"};
    loaded_t l;
    (void)state;

    set_env("DATABASE_URL", "sqlite:/var/lib/tessera/app.db");
    load_env_ok(&l);
    assert_string_equal(l.cfg.database_url, "sqlite:/var/lib/tessera/app.db");
    assert_string_equal(l.cfg.sqlite_path, "/var/lib/tessera/app.db");
    assert_int_equal(l.cfg.postgres, 0);
    tess_config_free(&l.cfg);

    load_ok(&l, ARGC(flag), flag);
    assert_string_equal(l.cfg.database_url, "postgres://app@127.0.0.1/app");
    assert_string_equal(l.cfg.sqlite_path, "");
    assert_int_equal(l.cfg.postgres, 1);
    tess_config_free(&l.cfg);
}

/* tess_config_set_database with `url` must accept it, giving `sqlite_path` ("" for PostgreSQL). */
static void url_ok(tess_config_t *cfg, const char *url, const char *sqlite_path)
{
    char err[256] = "";
    if (tess_config_set_database(cfg, url, err, sizeof(err)) != 0)
        fail_msg("'%s' refused: %s", url, err);
    assert_string_equal(cfg->database_url, url);
    assert_string_equal(cfg->sqlite_path, sqlite_path);
    assert_int_equal(cfg->postgres, sqlite_path[0] == '\0');
}

static void test_database_url_forms(void **state)
{
    tess_config_t cfg;
    (void)state;

    memset(&cfg, 0, sizeof(cfg));
    url_ok(&cfg, "sqlite:rel/app.db", "rel/app.db");
    url_ok(&cfg, "sqlite:///abs/app.db", "/abs/app.db");
    url_ok(&cfg, "sqlite://rel.db", "rel.db");
    url_ok(&cfg, "postgres://u:pw@10.0.0.1:5432/app?sslmode=disable", "");
    url_ok(&cfg, "postgresql://u@10.0.0.1/app", "");
    url_ok(&cfg, "host=/run/postgresql dbname=app user=u", "");
    /* The same configuration moved back to SQLite is not PostgreSQL any more. */
    url_ok(&cfg, "sqlite:again.db", "again.db");
}

static void test_database_url_bad(void **state)
{
    static const char *const bad[] = {"sqlite:", "sqlite://", "mysql://u:Hidden-Pw@h/x", "app.db", "http://h/x"};
    char *empty_flag[] = {"serve", "--database", ""};
    char longurl[1100];
    tess_config_t cfg;
    char err[256];
    (void)state;

    memset(&cfg, 0, sizeof(cfg));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        err[0] = '\0';
        assert_int_equal(tess_config_set_database(&cfg, bad[i], err, sizeof(err)), TESS_ECONFIG);
        assert_true(err[0] != '\0');
        assert_null(strstr(err, "Hidden-Pw")); /* a URL may carry a password: never echoed */
        both_bad("--database", "DATABASE_URL", bad[i]);
    }
    memcpy(strfill(longurl, 'a', sizeof(longurl) - 1), "sqlite:", 7);
    assert_int_equal(tess_config_set_database(&cfg, longurl, err, sizeof(err)), TESS_ECONFIG);
    assert_non_null(strstr(err, "too long"));
    load_bad(ARGC(empty_flag), empty_flag, "--database");
}

static void test_strategy(void **state)
{
    char *flag[] = {"serve", "--strategy", "cached"};
    loaded_t l;
    (void)state;

    set_env("SESSION_STRATEGY", "jwt");
    load_env_ok(&l);
    assert_int_equal(l.cfg.strategy, TESS_STRATEGY_JWT);
    tess_config_free(&l.cfg);
    load_ok(&l, ARGC(flag), flag);
    assert_int_equal(l.cfg.strategy, TESS_STRATEGY_CACHED);
    tess_config_free(&l.cfg);
    set_env("SESSION_STRATEGY", "");
    load_env_ok(&l); /* empty is unset */
    assert_int_equal(l.cfg.strategy, TESS_STRATEGY_DB);
    tess_config_free(&l.cfg);
}

static void test_strategy_bad(void **state)
{
    (void)state;
    both_bad("--strategy", "SESSION_STRATEGY", "memcached");
    both_bad("--strategy", "SESSION_STRATEGY", "DB"); /* names are lower case */
}

static void test_redis(void **state)
{
    char *flag[] = {"serve", "--redis", "redis://10.0.0.2:6380/1", "--strategy", "redis"};
    char *none[] = {"serve", "--strategy", "redis"};
    char longurl[1100];
    loaded_t l;
    (void)state;

    load_bad(ARGC(none), none, "REDIS_URL");
    set_env("SESSION_STRATEGY", "redis");
    load_bad(1, none, "REDIS_URL");

    set_env("REDIS_URL", "redis://10.0.0.1:6379");
    load_env_ok(&l);
    assert_int_equal(l.cfg.strategy, TESS_STRATEGY_REDIS);
    assert_string_equal(l.cfg.redis_url, "redis://10.0.0.1:6379");
    tess_config_free(&l.cfg);
    load_ok(&l, ARGC(flag), flag); /* the flag beats the variable */
    assert_string_equal(l.cfg.redis_url, "redis://10.0.0.2:6380/1");
    tess_config_free(&l.cfg);
    assert_int_equal(unsetenv("SESSION_STRATEGY"), 0);

    /* A bad URL is refused without showing its password. */
    set_env("REDIS_URL", "redis://u:Hidden-Pw@10.0.0.1:notaport");
    load_bad(1, none, "REDIS_URL");
    assert_int_equal(load_env(&l), TESS_ECONFIG);
    assert_null(strstr(l.err, "Hidden-Pw"));
    tess_config_free(&l.cfg);
    assert_int_equal(unsetenv("REDIS_URL"), 0);

    memcpy(strfill(longurl, 'a', sizeof(longurl) - 1), "redis://", 8);
    both_bad("--redis", "REDIS_URL", longurl);
}

static void test_fallback(void **state)
{
    char *redis_flag[] = {"serve", "--redis", "redis://10.0.0.1"};
    loaded_t l;
    (void)state;

    set_env("SESSION_FALLBACK", "jwt");
    load_env_ok(&l);
    assert_int_equal(l.cfg.strategy, TESS_STRATEGY_DB);
    assert_int_equal(l.cfg.has_fallback, 1);
    assert_int_equal(l.cfg.fallback, TESS_STRATEGY_JWT);
    tess_config_free(&l.cfg);

    set_env("SESSION_STRATEGY", "jwt"); /* a fallback must be another strategy */
    load_bad(1, redis_flag, "SESSION_FALLBACK");
    assert_int_equal(unsetenv("SESSION_STRATEGY"), 0);

    env_bad("SESSION_FALLBACK", "nope");
    set_env("SESSION_FALLBACK", "redis");
    load_bad(1, redis_flag, "REDIS_URL");
    load_ok(&l, ARGC(redis_flag), redis_flag);
    assert_int_equal(l.cfg.fallback, TESS_STRATEGY_REDIS);
    assert_int_equal(l.cfg.has_fallback, 1);
    tess_config_free(&l.cfg);
}

static void test_threads(void **state)
{
    char *flag[] = {"serve", "--threads", "3"};
    loaded_t l;
    (void)state;

    set_env("TESSERA_THREADS", "256");
    load_env_ok(&l);
    assert_int_equal(l.cfg.threads, 256);
    tess_config_free(&l.cfg);
    load_ok(&l, ARGC(flag), flag);
    assert_int_equal(l.cfg.threads, 3);
    tess_config_free(&l.cfg);
    assert_int_equal(unsetenv("TESSERA_THREADS"), 0);

    static const char *const bad[] = {"0", "257", "many", "-1", "2x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        both_bad("--threads", "TESSERA_THREADS", bad[i]);
}

/* The connection settings: each flag beats its variable; TESSERA_H2C takes 0 or 1. */
static void test_connection_flags(void **state)
{
    char *flags[] = {"serve", "--max-connections-per-address", "7", "--header-timeout", "250", "--h2c"};
    loaded_t l;
    (void)state;

    set_env("TESSERA_MAX_CONNECTIONS_PER_ADDRESS", "9");
    set_env("TESSERA_HEADER_TIMEOUT_MS", "900");
    set_env("TESSERA_H2C", "0");
    load_env_ok(&l);
    assert_int_equal(l.cfg.max_conns_per_addr, 9);
    assert_int_equal(l.cfg.header_timeout_ms, 900);
    assert_int_equal(l.cfg.h2c, 0);
    tess_config_free(&l.cfg);
    load_ok(&l, ARGC(flags), flags);
    assert_int_equal(l.cfg.max_conns_per_addr, 7);
    assert_int_equal(l.cfg.header_timeout_ms, 250);
    assert_int_equal(l.cfg.h2c, 1);
    tess_config_free(&l.cfg);
    set_env("TESSERA_H2C", "1");
    load_env_ok(&l);
    assert_int_equal(l.cfg.h2c, 1);
    tess_config_free(&l.cfg);
    assert_int_equal(unsetenv("TESSERA_MAX_CONNECTIONS_PER_ADDRESS"), 0);
    assert_int_equal(unsetenv("TESSERA_HEADER_TIMEOUT_MS"), 0);

    env_bad("TESSERA_H2C", "yes");
    env_bad("TESSERA_H2C", "2");
    both_bad("--max-connections-per-address", "TESSERA_MAX_CONNECTIONS_PER_ADDRESS", "-1");
    both_bad("--max-connections-per-address", "TESSERA_MAX_CONNECTIONS_PER_ADDRESS", "lots");
    both_bad("--header-timeout", "TESSERA_HEADER_TIMEOUT_MS", "99");
    both_bad("--header-timeout", "TESSERA_HEADER_TIMEOUT_MS", "5s");
}

static void test_command_line_refusals(void **state)
{
    char *unknown[] = {"serve", "--no-such-flag"};
    char *missing[] = {"serve", "--listen"};
    char *extra[] = {"serve", "stray-argument"};
    char *cluster[] = {"serve", "-zq"};
    (void)state;

    load_bad(ARGC(unknown), unknown, "--no-such-flag");
    load_bad(ARGC(missing), missing, "--listen");
    load_bad(ARGC(extra), extra, "stray-argument");
    load_bad(ARGC(cluster), cluster, "'-z'");
}

/* The integer variables: name, bounds, and what the configuration holds for the upper bound. */
typedef struct int_var {
    const char *name;
    int64_t min, max;
    int64_t at_max; /* the field for value `max` (SESSION_IDLE_TTL is capped by SESSION_TTL) */
} int_var_t;

#define TEN_YEARS (10LL * 365 * 86400)

static const int_var_t int_vars[] = {
    {"BACKEND_TIMEOUT_MS", 10, 60000, 60000},
    {"CACHE_L2_TTL", 1, 86400, 86400},
    {"META_CACHE_TTL", 1, 3600, 3600},
    {"SESSION_TTL", 60, TEN_YEARS, TEN_YEARS},
    {"SESSION_IDLE_TTL", 60, TEN_YEARS, 30 * 86400},
    {"SESSION_TOUCH_INTERVAL", 0, TEN_YEARS, TEN_YEARS},
    {"TESSERA_MAX_CONNECTIONS", 1, 1000000, 1000000},
    {"TESSERA_MAX_CONNECTIONS_PER_ADDRESS", 0, 1000000, 1000000},
    {"TESSERA_HEADER_TIMEOUT_MS", 100, 600000, 600000},
    {"TESSERA_MAX_HEADER_BYTES", 1024, 417792, 417792},
    {"TESSERA_MAX_HEADERS", 1, 100, 100},
    {"TESSERA_MAX_BODY", 1024, 16 * 1024 * 1024, 16 * 1024 * 1024},
    {"CACHE_MAX_ENTRIES", 16, 100000000, 100000000},
    {"CACHE_MAX_BYTES", 65536, 1LL << 40, 1LL << 40},
    {"CACHE_TTL", 1, 86400, 86400},
    {"JWT_LEEWAY", 0, 3600, 3600},
};

/* The field a variable sets, in the variable's unit. */
static int64_t int_field(const tess_config_t *c, const char *name)
{
    if (strcmp(name, "BACKEND_TIMEOUT_MS") == 0)
        return c->backend_timeout_ms;
    if (strcmp(name, "CACHE_L2_TTL") == 0)
        return c->l2_ttl_ms / 1000;
    if (strcmp(name, "META_CACHE_TTL") == 0)
        return c->meta_ttl_ms / 1000;
    if (strcmp(name, "SESSION_TTL") == 0)
        return c->policy.ttl_s;
    if (strcmp(name, "SESSION_IDLE_TTL") == 0)
        return c->policy.idle_s;
    if (strcmp(name, "SESSION_TOUCH_INTERVAL") == 0)
        return c->policy.touch_interval_s;
    if (strcmp(name, "TESSERA_MAX_CONNECTIONS") == 0)
        return c->max_connections;
    if (strcmp(name, "TESSERA_MAX_CONNECTIONS_PER_ADDRESS") == 0)
        return c->max_conns_per_addr;
    if (strcmp(name, "TESSERA_HEADER_TIMEOUT_MS") == 0)
        return c->header_timeout_ms;
    if (strcmp(name, "TESSERA_MAX_HEADER_BYTES") == 0)
        return (int64_t)c->max_header_bytes;
    if (strcmp(name, "TESSERA_MAX_HEADERS") == 0)
        return c->max_headers;
    if (strcmp(name, "TESSERA_MAX_BODY") == 0)
        return (int64_t)c->max_body;
    if (strcmp(name, "CACHE_MAX_ENTRIES") == 0)
        return (int64_t)c->cache.max_entries;
    if (strcmp(name, "CACHE_MAX_BYTES") == 0)
        return (int64_t)c->cache.max_bytes;
    if (strcmp(name, "CACHE_TTL") == 0)
        return c->cache.ttl_ms / 1000;
    if (strcmp(name, "JWT_LEEWAY") == 0)
        return c->jwt_leeway_s;
    fail_msg("no field for %s", name);
    return 0;
}

/* `name=value` must load and set the field to `want`. */
static void env_int_ok(const char *name, int64_t value, int64_t want)
{
    char text[32];
    loaded_t l;
    snprintf(text, sizeof(text), "%lld", (long long)value);
    set_env(name, text);
    load_env_ok(&l);
    if (int_field(&l.cfg, name) != want)
        fail_msg("%s=%s gave %lld, expected %lld", name, text, (long long)int_field(&l.cfg, name), (long long)want);
    tess_config_free(&l.cfg);
    assert_int_equal(unsetenv(name), 0);
}

static void test_integer_variables(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(int_vars) / sizeof(int_vars[0]); ++i) {
        const int_var_t *v = &int_vars[i];
        char below[32], above[32];

        env_int_ok(v->name, v->min, v->min);
        env_int_ok(v->name, v->max, v->at_max);
        snprintf(below, sizeof(below), "%lld", (long long)(v->min - 1));
        snprintf(above, sizeof(above), "%lld", (long long)(v->max + 1));
        env_bad(v->name, below);
        env_bad(v->name, above);
        env_bad(v->name, "12x");
        env_bad(v->name, "99999999999999999999");
    }
}

static void test_idle_ttl_capped_by_ttl(void **state)
{
    loaded_t l;
    (void)state;

    set_env("SESSION_TTL", "3600");
    set_env("SESSION_IDLE_TTL", "7200");
    load_env_ok(&l);
    assert_int_equal(l.cfg.policy.ttl_s, 3600);
    assert_int_equal(l.cfg.policy.idle_s, 3600);
    tess_config_free(&l.cfg);
    set_env("SESSION_IDLE_TTL", "600");
    load_env_ok(&l);
    assert_int_equal(l.cfg.policy.idle_s, 600);
    tess_config_free(&l.cfg);
}

static void test_prefix_and_cookie(void **state)
{
    char name63[64], name64[65], prefix64[65], prefix65[66];
    loaded_t l;
    (void)state;

    strfill(name63, 'c', 63);
    strfill(name64, 'c', 64);
    strfill(prefix64, 'p', 64);
    strfill(prefix65, 'p', 65);

    set_env("SESSION_PREFIX", prefix64);
    set_env("SESSION_COOKIE", name63);
    load_env_ok(&l);
    assert_string_equal(l.cfg.session_prefix, prefix64);
    assert_string_equal(l.cfg.cookie_name, name63);
    tess_config_free(&l.cfg);
    clear_env(NULL);

    env_bad("SESSION_PREFIX", prefix65);
    env_bad("SESSION_PREFIX", "sess ion:");
    env_bad("SESSION_COOKIE", name64);
    env_bad("SESSION_COOKIE", "a=b");
    env_bad("SESSION_COOKIE", "a;b");
    env_bad("SESSION_COOKIE", "a b");
    env_bad("SESSION_COOKIE", "\"a\"");
}

static void test_secrets_and_production(void **state)
{
    loaded_t l;
    (void)state;

    set_env("NEXTAUTH_SECRET", "next-secret");
    load_env_ok(&l);
    assert_string_equal(l.cfg.secrets, "next-secret");
    tess_config_free(&l.cfg);
    assert_null(l.cfg.secrets);

    set_env("SESSION_SECRET", "new,old"); /* SESSION_SECRET beats NEXTAUTH_SECRET */
    load_env_ok(&l);
    assert_string_equal(l.cfg.secrets, "new,old");
    tess_config_free(&l.cfg);
    clear_env(NULL);

    set_env("TESSERA_ENV", "development");
    load_env_ok(&l);
    assert_int_equal(l.cfg.production, 0);
    tess_config_free(&l.cfg);

    env_bad("TESSERA_ENV", "production"); /* no secret */
    set_env("TESSERA_ENV", "production");
    load_bad(1, (char *[]){"serve"}, "SESSION_SECRET");
    set_env("SESSION_SECRET", "");
    load_bad(1, (char *[]){"serve"}, "SESSION_SECRET");
    set_env("SESSION_SECRET", "s3"); /* production refuses a short secret, naming which and how long */
    load_bad(1, (char *[]){"serve"}, "secret 1 has 2");
    set_env("SESSION_SECRET", "0123456789abcdef0123456789abcdef,short");
    load_bad(1, (char *[]){"serve"}, "secret 2 has 5");
    set_env("SESSION_SECRET", "0123456789abcdef0123456789abcdef,fedcba9876543210fedcba9876543210");
    load_env_ok(&l);
    assert_int_equal(l.cfg.production, 1);
    assert_string_equal(l.cfg.secrets, "0123456789abcdef0123456789abcdef,fedcba9876543210fedcba9876543210");
    tess_config_free(&l.cfg);
}

/* Loads with `--database sqlite:<dir>/app.db` and no secret, then ensures the development secret. */
static void load_with_secret_file(const tmpdir_t *t, loaded_t *l)
{
    char path[128], url[160];
    char *argv[] = {"serve", "--database", url};
    snprintf(url, sizeof(url), "sqlite:%s", tmpdir_path(t, "app.db", path, sizeof(path)));
    load_ok(l, ARGC(argv), argv);
    assert_null(l->cfg.secrets);
    if (tess_config_ensure_secret(&l->cfg, l->err, sizeof(l->err)) != 0)
        fail_msg("ensure_secret refused: %s", l->err);
    assert_non_null(l->cfg.secrets);
}

static void test_ensure_secret(void **state)
{
    uint8_t raw[64];
    char path[128], file[256];
    size_t rawlen = 0;
    struct stat sb;
    loaded_t first, second, other;
    tmpdir_t t, t2;
    FILE *f;
    (void)state;

    tmpdir_make(&t);
    load_with_secret_file(&t, &first);
    assert_int_equal(first.cfg.secret_generated, 1);
    tmpdir_path(&t, "app.db.secret", path, sizeof(path));
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_non_null(f = fopen(path, "r"));
    assert_non_null(fgets(file, sizeof(file), f));
    fclose(f);
    assert_string_equal(file, first.cfg.secrets);
    assert_int_equal(tess_base64url_decode(tess_str(first.cfg.secrets), raw, sizeof(raw), &rawlen), 0);
    assert_int_equal(rawlen, 32); /* 256 bits */

    load_with_secret_file(&t, &second); /* a restart reads the same secret */
    assert_int_equal(second.cfg.secret_generated, 2);
    assert_string_equal(second.cfg.secrets, first.cfg.secrets);

    tmpdir_make(&t2); /* another database gets another secret */
    load_with_secret_file(&t2, &other);
    assert_string_not_equal(other.cfg.secrets, first.cfg.secrets);

    tess_config_free(&first.cfg);
    tess_config_free(&second.cfg);
    tess_config_free(&other.cfg);
    tmpdir_remove(&t);
    tmpdir_remove(&t2);
}

static void test_ensure_secret_other_cases(void **state)
{
    char path[128], url[160];
    char *argv[] = {"serve", "--database", url};
    char *pg[] = {"serve", "--database", "postgres://u@127.0.0.1/app"};
    loaded_t l;
    tmpdir_t t;
    FILE *f;
    (void)state;

    tmpdir_make(&t);
    snprintf(url, sizeof(url), "sqlite:%s", tmpdir_path(&t, "app.db", path, sizeof(path)));

    /* A configured secret is kept and no file is written. */
    set_env("SESSION_SECRET", "configured");
    load_ok(&l, ARGC(argv), argv);
    assert_int_equal(tess_config_ensure_secret(&l.cfg, l.err, sizeof(l.err)), 0);
    assert_string_equal(l.cfg.secrets, "configured");
    assert_int_equal(l.cfg.secret_generated, 0);
    assert_int_equal(access(tmpdir_path(&t, "app.db.secret", path, sizeof(path)), F_OK), -1);
    tess_config_free(&l.cfg);
    assert_int_equal(unsetenv("SESSION_SECRET"), 0);

    /* PostgreSQL has no file to keep it next to. */
    load_ok(&l, ARGC(pg), pg);
    assert_int_equal(tess_config_ensure_secret(&l.cfg, l.err, sizeof(l.err)), TESS_ECONFIG);
    assert_non_null(strstr(l.err, "SESSION_SECRET"));
    assert_null(l.cfg.secrets);
    tess_config_free(&l.cfg);

    /* A hand-written file: its trailing newline is not part of the secret; an empty one is refused. */
    assert_non_null(f = fopen(path, "w"));
    fputs("hand-written\r\n", f);
    fclose(f);
    load_ok(&l, ARGC(argv), argv);
    assert_int_equal(tess_config_ensure_secret(&l.cfg, l.err, sizeof(l.err)), 0);
    assert_string_equal(l.cfg.secrets, "hand-written");
    assert_int_equal(l.cfg.secret_generated, 2);
    tess_config_free(&l.cfg);
    assert_non_null(f = fopen(path, "w"));
    fputs("\n", f);
    fclose(f);
    load_ok(&l, ARGC(argv), argv);
    assert_int_equal(tess_config_ensure_secret(&l.cfg, l.err, sizeof(l.err)), TESS_ECONFIG);
    assert_non_null(strstr(l.err, "empty"));
    assert_null(l.cfg.secrets);
    tess_config_free(&l.cfg);

    tmpdir_remove(&t);
}

/* `s` must parse in [min, max] to `want`. */
static void int_ok(const char *s, int64_t min, int64_t max, int64_t want)
{
    int64_t v = -12345;
    if (tess_parse_int(s, min, max, &v) != 0)
        fail_msg("'%s' refused in [%lld, %lld]", s, (long long)min, (long long)max);
    assert_int_equal(v, want);
}

/* `s` must be refused in [min, max], leaving the output alone. */
static void int_bad(const char *s, int64_t min, int64_t max)
{
    int64_t v = -12345;
    if (tess_parse_int(s, min, max, &v) != TESS_EINVAL)
        fail_msg("'%s' accepted in [%lld, %lld] as %lld", s ? s : "(null)", (long long)min, (long long)max,
                 (long long)v);
    assert_int_equal(v, -12345);
}

/* The abuse limits (app/limits.h): defaults, variables, flags (a flag beats its variable), refusals. */
static void test_limits(void **state)
{
    loaded_t l;
    (void)state;

    load_env_ok(&l);
    assert_int_equal(l.cfg.limits.login_max_failures, 10);
    assert_int_equal(l.cfg.limits.login_addr_max_failures, 100);
    assert_int_equal(l.cfg.limits.login_window_s, 900);
    assert_int_equal(l.cfg.limits.login_lockout_s, 900);
    assert_int_equal(l.cfg.limits.login_queue_per_addr, 16);
    assert_int_equal(l.cfg.limits.password_workers, 2);
    assert_int_equal(l.cfg.limits.password_queue, 256);
    assert_int_equal(l.cfg.limits.max_open_prechats, 3);
    assert_int_equal(l.cfg.limits.message_rate, 60);
    assert_int_equal(l.cfg.limits.message_burst, 20);
    tess_config_free(&l.cfg);

    set_env("TESSERA_LOGIN_MAX_FAILURES", "5");
    set_env("TESSERA_MESSAGE_BURST", "7");
    {
        char *argv[] = {"serve", "--login-max-failures", "3", "--password-workers=4", "--max-open-prechats", "1"};
        load_ok(&l, ARGC(argv), argv);
    }
    assert_int_equal(l.cfg.limits.login_max_failures, 3); /* the flag wins */
    assert_int_equal(l.cfg.limits.message_burst, 7);
    assert_int_equal(l.cfg.limits.password_workers, 4);
    assert_int_equal(l.cfg.limits.max_open_prechats, 1);
    tess_config_free(&l.cfg);

    both_bad("--login-max-failures", "TESSERA_LOGIN_MAX_FAILURES", "0");
    both_bad("--login-window", "TESSERA_LOGIN_WINDOW", "15m");
    both_bad("--login-lockout", "TESSERA_LOGIN_LOCKOUT", "604801");
    both_bad("--password-workers", "TESSERA_PASSWORD_WORKERS", "257");
    both_bad("--password-queue", "TESSERA_PASSWORD_QUEUE", "-1");
    both_bad("--message-rate", "TESSERA_MESSAGE_RATE", " 5");
    {
        char *argv[] = {"serve", "--message-burst"};
        load_bad(ARGC(argv), argv, "--message-burst");
    }
}

static void test_parse_int(void **state)
{
    (void)state;
    /* bounds are inclusive */
    int_ok("0", 0, 10, 0);
    int_ok("10", 0, 10, 10);
    int_bad("11", 0, 10);
    int_bad("-1", 0, 10);
    /* signs */
    int_ok("-10", -10, 10, -10);
    int_ok("+7", -10, 10, 7);
    int_bad("-11", -10, 10);
    int_bad("-", -10, 10);
    int_bad("+", -10, 10);
    int_bad("--1", -10, 10);
    /* the whole range, and one past it either way */
    int_ok("9223372036854775807", INT64_MIN, INT64_MAX, INT64_MAX);
    int_ok("-9223372036854775808", INT64_MIN, INT64_MAX, INT64_MIN);
    int_bad("9223372036854775808", INT64_MIN, INT64_MAX);
    int_bad("-9223372036854775809", INT64_MIN, INT64_MAX);
    int_bad("99999999999999999999999", INT64_MIN, INT64_MAX);
    /* garbage */
    int_bad(NULL, 0, 10);
    int_bad("", 0, 10);
    int_bad("abc", 0, 10);
    int_bad("5abc", 0, 10);
    int_bad("1.5", 0, 10);
    int_bad("0x5", 0, 10);
    int_bad("5 ", 0, 10);
    int_bad(" 5", 0, 10);
    int_bad("\t5", 0, 10);
    int_bad("\n5", 0, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_usage_documents_every_option, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_help, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_getopt_state_reset, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_listen, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_listen_bad, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_database, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_database_url_forms, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_database_url_bad, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_strategy, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_strategy_bad, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_redis, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_fallback, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_threads, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_connection_flags, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_command_line_refusals, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_integer_variables, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_idle_ttl_capped_by_ttl, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_prefix_and_cookie, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_secrets_and_production, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_ensure_secret, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_ensure_secret_other_cases, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_limits, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_parse_int, clear_env, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
