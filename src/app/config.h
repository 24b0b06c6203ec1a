/*
 * tessera serve configuration: flags override environment, environment overrides defaults.
 */
#ifndef TESSERA_SERVER_CONFIG_H
#define TESSERA_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "app/origins.h"
#include "app/limits.h"
#include "tessera/auth.h"
#include "tessera/cache.h"

typedef struct tess_config {
    char listen_host[256];         /* numeric address to bind */
    uint16_t listen_port;          /* port to bind */
    char metrics_host[256];        /* --metrics-listen / TESSERA_METRICS_LISTEN: /metrics alone here too */
    uint16_t metrics_port;         /* its port; 0: no metrics listener */
    char database_url[1024];       /* "sqlite:PATH" (default sqlite:./tessera.db) */
    char sqlite_path[1024];        /* PATH of a sqlite: URL ("" for PostgreSQL) */
    int postgres;                  /* database_url is a PostgreSQL URI or conninfo */
    char redis_url[1024];          /* REDIS_URL / --redis ("" for none); may hold a password: never logged */
    char session_prefix[65];       /* Redis key prefix of sessions (default "session:") */
    char tessera_prefix[65];       /* Redis key prefix of tessera's own keys (default "tessera:") */
    int64_t backend_timeout_ms;    /* per Redis / PostgreSQL call (default 1000) */
    tess_strategy_t strategy;      /* session strategy */
    tess_session_format_t format;  /* SESSION_FORMAT: express (default), nextauth, authjs */
    int has_fallback;              /* SESSION_FALLBACK is set */
    tess_strategy_t fallback;      /* migration: the strategy whose sessions keep working until they expire */
    char *secrets;                 /* comma-separated secret list (owned); never logged */
    int secret_generated;          /* development secret file: 1 created now, 2 read; 0 not used */
    tess_session_policy_t policy;  /* session lifetimes */
    char cookie_name[64];          /* "" for the strategy's default */
    int production;                /* TESSERA_ENV=production: Secure cookies, secret required */
    int threads;                   /* event loops */
    size_t max_body;               /* request body bound, bytes */
    int max_connections;           /* open client connections, all loops together */
    int max_conns_per_addr;        /* open connections from one client address (0: no bound) */
    int64_t header_timeout_ms;     /* a request's head and body must arrive within this (also idle keep-alive) */
    int no_session_triggers;       /* cached: the session table's triggers neither installed nor followed */
    int h2c;                       /* cleartext HTTP/2 (h2c upgrade and prior knowledge) accepted */
    size_t max_header_bytes;       /* request line and header fields of one request, bytes */
    int max_headers;               /* header fields of one request */
    int max_waiters_session;       /* long-polls and streams held for one session */
    int max_waiters_user;          /* the same for one user */
    tess_cache_opts_t cache;       /* near-cache bounds for the cached strategy */
    int64_t l2_ttl_ms;             /* Redis cache-aside copy lifetime (cached strategy with Redis) */
    int64_t meta_ttl_ms;           /* meta cache row lifetime (with Redis) */
    int64_t jwt_leeway_s;          /* JWT exp/nbf tolerance */
    app_origins_t origins;         /* TESSERA_ALLOWED_ORIGINS; empty: the request's own host */
    tess_limits_t limits;          /* login throttling, password workers, quotas (app/limits.h) */
    char jwt_user_claim[65];       /* JWT_USER_CLAIM: the user id claim (default "userId"; "sub" for nextauth/authjs) */
    char jwt_role_claim[65];       /* JWT_ROLE_CLAIM: the role claim (default "role"); absent: the users table */
    char nextauth_role_column[64]; /* NEXTAUTH_ROLE_COLUMN: the "User" column holding the role ("" none) */
    char nextauth_default_role[TESS_ROLE_MAX + 1]; /* NEXTAUTH_DEFAULT_ROLE (default visitor) */
    int log_level;         /* --log-level / TESSERA_LOG_LEVEL: 0 error, 1 warn, 2 info (default), 3 debug */
    int log_json;          /* --log-format / TESSERA_LOG_FORMAT: 1 json, 0 text (default) */
    char access_log[1024]; /* --access-log / TESSERA_ACCESS_LOG: "off" (default), "on" (stderr), a path */
} tess_config_t;

/*
 * Fills `cfg` from argv (after "serve") and the environment. Returns 0; 1 when --help was asked (usage
 * printed to stdout); TESS_ECONFIG with a one-line reason in `err`.
 */
int tess_config_load(tess_config_t *cfg, int argc, char **argv, char *err, size_t errcap);
/*
 * Development only: when no secret was configured, reads the secret kept next to the database
 * (`<sqlite path>.secret`), creating it (0600, 256 random bits) on first start. Returns 0 or TESS_ECONFIG.
 */
int tess_config_ensure_secret(tess_config_t *cfg, char *err, size_t errcap);
/* Sets database_url (and sqlite_path) from a URL. Returns 0 or TESS_ECONFIG with a reason in `err`. */
int tess_config_set_database(tess_config_t *cfg, const char *url, char *err, size_t errcap);
void tess_config_free(tess_config_t *cfg);
void tess_config_usage(FILE *out);

/* Parses a decimal integer in [min, max]. Returns 0 or TESS_EINVAL. */
int tess_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* `arg` as a refusal may repeat it, or a placeholder when it may hold a password ('@') or a control
 * character (a refusal is one line). */
const char *tess_config_shown(const char *arg);

#endif
