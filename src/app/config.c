#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/config.h"
#include "tessera/encoding.h"
#include "tessera/error.h"
#include "tessera/keyspace.h"
#include "tessera/nextauth.h"
#include "tessera/redis.h"

void tess_config_usage(FILE *out)
{
    fputs("usage: tessera serve [options]\n"
          "\n"
          "Serves the pre-chat polling API.\n"
          "\n"
          "options (environment in brackets):\n"
          "  --listen HOST:PORT     address to listen on [TESSERA_LISTEN] (default 127.0.0.1:8080)\n"
          "  --metrics-listen HOST:PORT  also serve /metrics, and only it, on this address\n"
          "                         [TESSERA_METRICS_LISTEN] (default: none; the main port serves it either way)\n"
          "  --database URL         sqlite:PATH, postgres://... or a libpq key=value string [DATABASE_URL]\n"
          "                         (default sqlite:./tessera.db)\n"
          "  --strategy NAME        db | redis | jwt | cached [SESSION_STRATEGY] (default db)\n"
          "  --session-format NAME  express | nextauth | authjs [SESSION_FORMAT] (default express): what sessions\n"
          "                         look like; nextauth (NextAuth v4) and authjs (Auth.js v5) are their JWT\n"
          "                         sessions, strategy jwt: cookie next-auth.session-token / authjs.session-token\n"
          "                         (__Secure- in production), chunks joined, user from sub, 15 s leeway\n"
          "  --redis URL            redis://[user:password@]host:port[/db] or unix:///path [REDIS_URL];\n"
          "                         needed by the redis strategy\n"
          "  --threads N            event loops [TESSERA_THREADS] (default: number of cores)\n"
          "  --log-level LEVEL      error | warn | info | debug [TESSERA_LOG_LEVEL] (default info)\n"
          "  --log-format FORMAT    json (one JSON object a line) | text [TESSERA_LOG_FORMAT] (default text)\n"
          "  --access-log WHERE     off | on (a line a request on stderr) | a file to append to\n"
          "                         [TESSERA_ACCESS_LOG] (default off)\n"
          "  --allowed-origins LIST comma-separated origins (https://app.example.com) whose pages may send\n"
          "                         state-changing requests [TESSERA_ALLOWED_ORIGINS] (default: the request's\n"
          "                         own host)\n"
          "  --max-connections-per-address N  open connections from one client address (IPv6: one /64)\n"
          "                         [TESSERA_MAX_CONNECTIONS_PER_ADDRESS] (default 256; 0: no bound); past it,\n"
          "                         429. Behind a reverse proxy every connection comes from the proxy: see\n"
          "                         docs/server.md\n"
          "  --header-timeout MS    time a client has to send a request (head and body), and how long an idle\n"
          "                         keep-alive connection is kept [TESSERA_HEADER_TIMEOUT_MS] (default 5000)\n"
          "  --h2c                  accept cleartext HTTP/2 (h2c upgrade, prior knowledge) [TESSERA_H2C=1]\n"
          "                         (default off)\n"
          "  --no-session-triggers  cached: do not install nor follow the session table's triggers, through\n"
          "                         which another app's write to a session (its logout) reaches every\n"
          "                         near-cache within 1 s [TESSERA_SESSION_TRIGGERS=0] (default on)\n"
          "  -h, --help             this text\n"
          "\n"
          "environment:\n"
          "  SESSION_SECRET         comma-separated secrets; the first signs, all verify\n"
          "                         (NEXTAUTH_SECRET is used when SESSION_SECRET is unset; AUTH_SECRET, then\n"
          "                         NEXTAUTH_SECRET, for authjs). In development,\n"
          "                         without one, a secret is generated and kept in <database>.secret\n"
          "  SESSION_TTL            absolute session lifetime, seconds (default 2592000 = 30 days)\n"
          "  SESSION_IDLE_TTL       idle lifetime, seconds (default 604800 = 7 days; nextauth / authjs:\n"
          "                         2592000 = 30 days, NextAuth's maxAge)\n"
          "  SESSION_TOUCH_INTERVAL least seconds between two expiry updates of a session (default 3600;\n"
          "                         nextauth / authjs: 86400, NextAuth's updateAge)\n"
          "  SESSION_COOKIE         cookie name (default connect.sid; session-token for jwt)\n"
          "  TESSERA_ENV            production: Secure cookies, refuse to start without SESSION_SECRET, and\n"
          "                         with a secret under 32 bytes\n"
          "  TESSERA_MAX_BODY       request body limit, bytes (default 65536)\n"
          "  TESSERA_MAX_WAITERS_PER_SESSION  held long-polls and event streams of one session (default\n"
          "                         20); past it, 429\n"
          "  TESSERA_MAX_WAITERS_PER_USER     the same for all sessions of one user (default 40)\n"
          "  TESSERA_MAX_CONNECTIONS open client connections, all loops together (default 10000); past it,\n"
          "                         new connections wait in the kernel's backlog\n"
          "  TESSERA_MAX_HEADER_BYTES request line and header fields of one request, bytes (default 32768,\n"
          "                         at most 417792); past it, 431\n"
          "  TESSERA_MAX_HEADERS    header fields of one request (default 64, at most 100); past it, 431\n"
          "  CACHE_MAX_ENTRIES      near-cache entry bound (cached strategy; default 100000)\n"
          "  CACHE_MAX_BYTES        near-cache byte bound (default 67108864)\n"
          "  CACHE_TTL              near-cache entry lifetime, seconds (default 300)\n"
          "  JWT_LEEWAY             exp/nbf tolerance for JWTs, seconds (default 30)\n"
          "  NEXTAUTH_ROLE_COLUMN   NextAuth database sessions (db / cached with SESSION_FORMAT nextauth or\n"
          "                         authjs): the \"User\" column holding the role (default: none)\n"
          "  NEXTAUTH_DEFAULT_ROLE  the role of a user without one (default visitor)\n"
          "  JWT_USER_CLAIM         the JWT claim holding the user id (default userId; e.g. sub)\n"
          "  JWT_ROLE_CLAIM         the JWT claim holding the role (default role); a token without it gets the\n"
          "                         user's role from the users table\n"
          "  SESSION_PREFIX         Redis key prefix of sessions (default session:)\n"
          "  TESSERA_KEY_PREFIX     Redis key prefix of tessera's own keys: epoch, revocation, change marks,\n"
          "                         L2 copies (default tessera:)\n"
          "  SESSION_FALLBACK       migration: another strategy whose sessions keep working until they\n"
          "                         expire (copied forward when both keep sessions in stores)\n"
          "  BACKEND_TIMEOUT_MS     timeout of each Redis / PostgreSQL call, ms (default 1000)\n"
          "\n"
          "With REDIS_URL, every strategy gets token revocation and \"log out everywhere\", the meta endpoint a\n"
          "cache, and the cached strategy a Redis cache-aside (L2); all caches are kept coherent across\n"
          "instances by Redis client tracking and switched off while that channel is down.\n"
          "  CACHE_L2_TTL           Redis cache-aside copy lifetime, seconds (default 300)\n"
          "  META_CACHE_TTL         meta cache row lifetime, seconds (default 60)\n",
          out);
    tess_limits_usage(out);
}

#define PRODUCTION_SECRET_MIN 32 /* bytes in each production secret */

int tess_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    /* strtoll would also skip leading blanks (" 5"), and it refuses trailing ones: refuse both. */
    if (s == NULL || !(isdigit((unsigned char)s[0]) || s[0] == '-' || s[0] == '+'))
        return TESS_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return TESS_EINVAL;
    *out = v;
    return 0;
}

/*
 * A value as a refusal may repeat it: one that could carry a password ("user:pw@host") is not shown, nor one
 * with a control character (the reason is one line).
 */
const char *tess_config_shown(const char *arg)
{
    if (strchr(arg, '@') != NULL)
        return "(not shown: it may hold a password)";
    for (const unsigned char *p = (const unsigned char *)arg; *p != '\0'; ++p) {
        if (*p < 0x20 || *p == 0x7f)
            return "(not shown: it holds control characters)";
    }
    return arg;
}

/* `from` names where `s` came from (the flag or the variable), for the reason. */
static int parse_hostport(char *hostbuf, size_t hostcap, uint16_t *portp, const char *s, const char *from, char *err,
                          size_t errcap)
{
    const char *colon = strrchr(s, ':');
    const char *host = s;
    size_t hostlen;
    int64_t port;

    if (colon == NULL || tess_parse_int(colon + 1, 1, 65535, &port) != 0) {
        snprintf(err, errcap, "bad %s '%s': expected HOST:PORT", from, tess_config_shown(s));
        return TESS_ECONFIG;
    }
    hostlen = (size_t)(colon - s);
    if (hostlen >= 2 && host[0] == '[' && host[hostlen - 1] == ']') {
        ++host;
        hostlen -= 2;
    }
    if (hostlen == 0 || hostlen >= hostcap) {
        snprintf(err, errcap, "bad %s '%s': expected HOST:PORT", from, tess_config_shown(s));
        return TESS_ECONFIG;
    }
    memcpy(hostbuf, host, hostlen);
    hostbuf[hostlen] = '\0';
    *portp = (uint16_t)port;
    return 0;
}

static int parse_listen(tess_config_t *cfg, const char *s, const char *from, char *err, size_t errcap)
{
    return parse_hostport(cfg->listen_host, sizeof(cfg->listen_host), &cfg->listen_port, s, from, err, errcap);
}

/* The metrics listener: its own port (the same one would share the main listener's SO_REUSEPORT group). */
static int parse_metrics_listen(tess_config_t *cfg, const char *s, const char *from, char *err, size_t errcap)
{
    if (s == NULL || *s == '\0')
        return 0;
    if (parse_hostport(cfg->metrics_host, sizeof(cfg->metrics_host), &cfg->metrics_port, s, from, err, errcap) != 0)
        return TESS_ECONFIG;
    if (cfg->metrics_port == cfg->listen_port) {
        snprintf(err, errcap, "bad %s '%s': its port must differ from the --listen port %u", from, tess_config_shown(s),
                 (unsigned)cfg->listen_port);
        return TESS_ECONFIG;
    }
    return 0;
}

int tess_config_set_database(tess_config_t *cfg, const char *s, char *err, size_t errcap)
{
    if (strlen(s) >= sizeof(cfg->database_url)) {
        snprintf(err, errcap, "database URL too long");
        return TESS_ECONFIG;
    }
    snprintf(cfg->database_url, sizeof(cfg->database_url), "%s", s);
    if (strncmp(s, "sqlite:", 7) == 0) {
        const char *path = s + 7;
        if (strncmp(path, "//", 2) == 0) /* sqlite:///abs/path or sqlite://rel */
            path += 2;
        if (*path == '\0') {
            snprintf(err, errcap, "bad database URL '%s': expected sqlite:PATH", tess_config_shown(s));
            return TESS_ECONFIG;
        }
        snprintf(cfg->sqlite_path, sizeof(cfg->sqlite_path), "%s", path);
        cfg->postgres = 0;
        return 0;
    }
    if (strncmp(s, "postgres://", 11) == 0 || strncmp(s, "postgresql://", 13) == 0 || strchr(s, '=') != NULL) {
        cfg->postgres = 1;
        cfg->sqlite_path[0] = '\0';
        return 0;
    }
    /* Never echo the URL: it may carry a password. */
    snprintf(err, errcap, "unsupported database URL: expected sqlite:PATH, postgres://... or key=value");
    return TESS_ECONFIG;
}

/* Prefixes the reason in `err` with where the bad value came from: "--redis: bad Redis URL: ...". */
static void blame(const char *from, char *err, size_t errcap)
{
    char reason[512];
    snprintf(reason, sizeof(reason), "%s", err);
    snprintf(err, errcap, "%s: %s", from, reason);
}

static int env_int(const char *name, int64_t min, int64_t max, int64_t *out, char *err, size_t errcap)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return 0;
    if (tess_parse_int(v, min, max, out) != 0) {
        snprintf(err, errcap, "bad %s '%s': expected an integer in [%lld, %lld]", name, tess_config_shown(v),
                 (long long)min, (long long)max);
        return TESS_ECONFIG;
    }
    return 0;
}

/* A Redis key prefix from `value` (NULL or "": `def`): 1..64 bytes, no blanks. 0, or -1 with a reason. */
static int key_prefix(char *out, size_t cap, const char *name, const char *value, const char *def, char *err,
                      size_t errcap)
{
    if (value == NULL || *value == '\0')
        value = def;
    if (strlen(value) >= cap || strcspn(value, " \t\r\n") != strlen(value)) {
        snprintf(err, errcap, "bad %s: at most 64 bytes, no blanks", name);
        return -1;
    }
    snprintf(out, cap, "%s", value);
    return 0;
}

/* An integer setting from a flag or variable `from` (NULL or "": keeps *out). 0, or -1 with a reason. */
static int int_setting(const char *value, const char *from, int64_t min, int64_t max, int64_t *out, char *err,
                       size_t errcap)
{
    if (value == NULL || *value == '\0')
        return 0;
    if (tess_parse_int(value, min, max, out) != 0) {
        snprintf(err, errcap, "bad %s '%s': expected an integer in [%lld, %lld]", from, tess_config_shown(value),
                 (long long)min, (long long)max);
        return -1;
    }
    return 0;
}

/*
 * The connection and request-head limits. 417792 and 100 are h2o 2.2's own bounds (H2O_MAX_REQLEN,
 * H2O_MAX_HEADERS): past them h2o refuses the request itself, with a fixed text answer.
 */
static int connection_limits(tess_config_t *cfg, const char *per_addr, const char *per_addr_from,
                             const char *header_timeout, const char *header_timeout_from, int h2c_flag, char *err,
                             size_t errcap)
{
    const char *h2c = getenv("TESSERA_H2C");
    int64_t v;

    v = 256;
    if (int_setting(per_addr, per_addr_from, 0, 1000000, &v, err, errcap) != 0)
        return -1;
    cfg->max_conns_per_addr = (int)v;
    v = 5000;
    if (int_setting(header_timeout, header_timeout_from, 100, 600000, &v, err, errcap) != 0)
        return -1;
    cfg->header_timeout_ms = v;
    v = 32768;
    if (int_setting(getenv("TESSERA_MAX_HEADER_BYTES"), "TESSERA_MAX_HEADER_BYTES", 1024, 417792, &v, err, errcap) != 0)
        return -1;
    cfg->max_header_bytes = (size_t)v;
    v = 64;
    if (int_setting(getenv("TESSERA_MAX_HEADERS"), "TESSERA_MAX_HEADERS", 1, 100, &v, err, errcap) != 0)
        return -1;
    cfg->max_headers = (int)v;
    if (h2c != NULL && *h2c != '\0' && strcmp(h2c, "0") != 0 && strcmp(h2c, "1") != 0) {
        snprintf(err, errcap, "bad TESSERA_H2C '%s': expected 0 or 1", tess_config_shown(h2c));
        return -1;
    }
    cfg->h2c = h2c_flag || (h2c != NULL && strcmp(h2c, "1") == 0);
    return 0;
}
#define LIMIT_OPT 1000 /* getopt value of the first limit option (app/limits.h) */

/* A JWT claim name from variable `name` (unset or "": `def`): 1..64 printable bytes, no quote, backslash or
 * blank, none of the registered claims tessera reads itself. 0, or -1 with a reason. */
static int jwt_claim(char *out, size_t cap, const char *name, const char *def, char *err, size_t errcap)
{
    const char *v = getenv(name);
    size_t n;
    if (v == NULL || *v == '\0')
        v = def;
    n = strlen(v);
    for (size_t i = 0; i < n; ++i) {
        if (v[i] <= 0x20 || v[i] >= 0x7f || v[i] == '"' || v[i] == '\\')
            n = cap; /* refused below */
    }
    if (n >= cap || strcmp(v, "iat") == 0 || strcmp(v, "exp") == 0 || strcmp(v, "nbf") == 0 || strcmp(v, "jti") == 0) {
        snprintf(err, errcap, "bad %s: a claim name of 1 to %zu printable characters, not iat, exp, nbf or jti", name,
                 cap - 1);
        return -1;
    }
    memcpy(out, v, n + 1);
    return 0;
}

/* The log level, format and access log; 0, or -1 with the reason naming the flag or variable. */
static int parse_logging(tess_config_t *cfg, const char *level, const char *level_from, const char *format,
                         const char *format_from, const char *access, const char *access_from, char *err, size_t errcap)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    cfg->log_level = 2;
    if (level != NULL && *level != '\0') {
        cfg->log_level = -1;
        for (int i = 0; i < 4; ++i)
            if (strcmp(level, levels[i]) == 0)
                cfg->log_level = i;
        if (cfg->log_level < 0) {
            snprintf(err, errcap, "bad %s '%s': expected error, warn, info or debug", level_from,
                     tess_config_shown(level));
            return -1;
        }
    }
    if (format != NULL && *format != '\0' && strcmp(format, "json") != 0 && strcmp(format, "text") != 0) {
        snprintf(err, errcap, "bad %s '%s': expected json or text", format_from, tess_config_shown(format));
        return -1;
    }
    cfg->log_json = format != NULL && strcmp(format, "json") == 0;
    if (access == NULL || *access == '\0')
        access = "off";
    if (strlen(access) >= sizeof(cfg->access_log)) {
        snprintf(err, errcap, "bad %s: a path of at most %zu bytes", access_from, sizeof(cfg->access_log) - 1);
        return -1;
    }
    if (strcmp(access, "off") != 0 && strcmp(access, "on") != 0 && access[0] != '/' && access[0] != '.') {
        snprintf(err, errcap, "bad %s '%s': expected off, on or a file path (starting with / or .)", access_from,
                 tess_config_shown(access));
        return -1;
    }
    memcpy(cfg->access_log, access, strlen(access) + 1);
    return 0;
}

int tess_config_load(tess_config_t *cfg, int argc, char **argv, char *err, size_t errcap)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"database", required_argument, NULL, 'd'},
        {"strategy", required_argument, NULL, 's'},
        {"session-format", required_argument, NULL, 'F'},
        {"threads", required_argument, NULL, 't'},
        {"redis", required_argument, NULL, 'r'},
        {"allowed-origins", required_argument, NULL, 'o'}, /* TESSERA_ALLOWED_ORIGINS */
        {"max-connections-per-address", required_argument, NULL, 'A'},
        {"header-timeout", required_argument, NULL, 'T'},
        {"h2c", no_argument, NULL, '2'},
        {"no-session-triggers", no_argument, NULL, 'N'},
        {"log-level", required_argument, NULL, 'L'},
        {"log-format", required_argument, NULL, 'G'},
        {"access-log", required_argument, NULL, 'a'},
        {"metrics-listen", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* longopts, then the limits' options (app/limits.h), then longopts' terminator. */
    enum { NBASE = sizeof(longopts) / sizeof(longopts[0]) - 1 };
    struct option opts[NBASE + TESS_LIMITS_COUNT + 1];
    const char *limit_flags[TESS_LIMITS_COUNT] = {NULL};
    const char *listen = getenv("TESSERA_LISTEN"), *database = getenv("DATABASE_URL");
    const char *strategy = getenv("SESSION_STRATEGY"), *threads = getenv("TESSERA_THREADS");
    const char *format = getenv("SESSION_FORMAT"), *format_from = "SESSION_FORMAT";
    const char *secret, *env, *cookie, *redis = getenv("REDIS_URL"), *prefix = getenv("SESSION_PREFIX");
    /* Where each value came from, to name it in a refusal. */
    const char *listen_from = "TESSERA_LISTEN", *database_from = "DATABASE_URL", *strategy_from = "SESSION_STRATEGY";
    const char *threads_from = "TESSERA_THREADS", *redis_from = "REDIS_URL";
    const char *origins = getenv("TESSERA_ALLOWED_ORIGINS"), *origins_from = "TESSERA_ALLOWED_ORIGINS";
    const char *per_addr = getenv("TESSERA_MAX_CONNECTIONS_PER_ADDRESS"),
               *header_timeout = getenv("TESSERA_HEADER_TIMEOUT_MS");
    const char *per_addr_from = "TESSERA_MAX_CONNECTIONS_PER_ADDRESS",
               *header_timeout_from = "TESSERA_HEADER_TIMEOUT_MS";
    const char *log_level = getenv("TESSERA_LOG_LEVEL"), *log_level_from = "TESSERA_LOG_LEVEL";
    const char *log_format = getenv("TESSERA_LOG_FORMAT"), *log_format_from = "TESSERA_LOG_FORMAT";
    const char *access_log = getenv("TESSERA_ACCESS_LOG"), *access_log_from = "TESSERA_ACCESS_LOG";
    const char *metrics_listen = getenv("TESSERA_METRICS_LISTEN"), *metrics_listen_from = "TESSERA_METRICS_LISTEN";
    int h2c_flag = 0, no_triggers_flag = 0;
    int64_t v;
    int opt;

    memset(cfg, 0, sizeof(*cfg));
    tess_session_policy_default(&cfg->policy);
    tess_cache_opts_default(&cfg->cache);
    cfg->max_body = 65536;
    cfg->jwt_leeway_s = 30;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = ncpu > 0 ? (int)ncpu : 1;

    memcpy(opts, longopts, NBASE * sizeof(longopts[0]));
    tess_limits_options(opts + NBASE, LIMIT_OPT);
    opts[NBASE + TESS_LIMITS_COUNT] = longopts[NBASE];
    optind = 0; /* glibc: a full reset; 1 would resume a cluster ("-hx") a previous call stopped inside */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt >= LIMIT_OPT && opt < LIMIT_OPT + TESS_LIMITS_COUNT) {
            limit_flags[opt - LIMIT_OPT] = optarg;
            continue;
        }
        switch (opt) {
        case 'l':
            listen = optarg;
            listen_from = "--listen";
            break;
        case 'd':
            if (*optarg == '\0') {
                snprintf(err, errcap, "--database needs a URL (sqlite:PATH or postgres://...)");
                return TESS_ECONFIG;
            }
            database = optarg;
            database_from = "--database";
            break;
        case 's':
            strategy = optarg;
            strategy_from = "--strategy";
            break;
        case 'F':
            format = optarg;
            format_from = "--session-format";
            break;
        case 't':
            threads = optarg;
            threads_from = "--threads";
            break;
        case 'r':
            redis = optarg;
            redis_from = "--redis";
            break;
        case 'o':
            origins = optarg;
            origins_from = "--allowed-origins";
            break;
        case 'A':
            per_addr = optarg;
            per_addr_from = "--max-connections-per-address";
            break;
        case 'T':
            header_timeout = optarg;
            header_timeout_from = "--header-timeout";
            break;
        case '2':
            h2c_flag = 1;
            break;
        case 'N':
            no_triggers_flag = 1;
            break;
        case 'L':
            log_level = optarg;
            log_level_from = "--log-level";
            break;
        case 'G':
            log_format = optarg;
            log_format_from = "--log-format";
            break;
        case 'a':
            access_log = optarg;
            access_log_from = "--access-log";
            break;
        case 'M':
            if (*optarg == '\0') {
                snprintf(err, errcap, "--metrics-listen needs HOST:PORT");
                return TESS_ECONFIG;
            }
            metrics_listen = optarg;
            metrics_listen_from = "--metrics-listen";
            break;
        case 'h':
            tess_config_usage(stdout);
            return 1;
        case ':':
            snprintf(err, errcap, "option %s needs a value", argv[optind - 1]);
            return TESS_ECONFIG;
        default:
            /* A short option inside a cluster ("-zq") leaves optind on its element: name the letter. */
            if (optopt > 0x20 && optopt < 0x7f)
                snprintf(err, errcap, "unknown option '-%c' (see tessera serve --help)", optopt);
            else if (optopt != 0)
                snprintf(err, errcap, "unknown option (a control character; see tessera serve --help)");
            else
                snprintf(err, errcap, "unknown option '%s' (see tessera serve --help)",
                         tess_config_shown(argv[optind - 1]));
            return TESS_ECONFIG;
        }
    }
    if (optind < argc) {
        snprintf(err, errcap, "unexpected argument '%s' (see tessera serve --help)", tess_config_shown(argv[optind]));
        return TESS_ECONFIG;
    }
    if (tess_limits_load(&cfg->limits, limit_flags, err, errcap) != 0)
        return TESS_ECONFIG;
    if (parse_logging(cfg, log_level, log_level_from, log_format, log_format_from, access_log, access_log_from, err,
                      errcap) != 0)
        return TESS_ECONFIG;
    if (parse_listen(cfg, listen != NULL && *listen ? listen : "127.0.0.1:8080", listen_from, err, errcap) != 0)
        return TESS_ECONFIG;
    if (parse_metrics_listen(cfg, metrics_listen, metrics_listen_from, err, errcap) != 0)
        return TESS_ECONFIG;
    if (tess_config_set_database(cfg, database != NULL && *database ? database : "sqlite:./tessera.db", err, errcap) !=
        0) {
        blame(database_from, err, errcap);
        return TESS_ECONFIG;
    }
    if (app_origins_parse(&cfg->origins, origins, origins_from, err, errcap) != 0)
        return TESS_ECONFIG;
    if (strategy != NULL && *strategy != '\0' && tess_strategy_parse(tess_str(strategy), &cfg->strategy) != 0) {
        snprintf(err, errcap, "bad %s '%s': expected db, redis, jwt or cached", strategy_from,
                 tess_config_shown(strategy));
        return TESS_ECONFIG;
    }
    if (format != NULL && *format != '\0' && tess_session_format_parse(tess_str(format), &cfg->format) != 0) {
        snprintf(err, errcap, "bad %s '%s': expected express, nextauth or authjs", format_from,
                 tess_config_shown(format));
        return TESS_ECONFIG;
    }
    if (cfg->format != TESS_FORMAT_EXPRESS)
        cfg->jwt_leeway_s = TESS_JWE_LEEWAY_DEFAULT; /* NextAuth's and Auth.js's clock tolerance */
    if (redis != NULL && *redis != '\0') {
        if (strlen(redis) >= sizeof(cfg->redis_url) || tess_redis_url_check(redis, err, errcap) != 0) {
            if (strlen(redis) >= sizeof(cfg->redis_url))
                snprintf(err, errcap, "Redis URL too long");
            blame(redis_from, err, errcap);
            return TESS_ECONFIG;
        }
        snprintf(cfg->redis_url, sizeof(cfg->redis_url), "%s", redis);
    }
    if ((env = getenv("SESSION_FALLBACK")) != NULL && *env != '\0') {
        if (tess_strategy_parse(tess_str(env), &cfg->fallback) != 0 || cfg->fallback == cfg->strategy) {
            snprintf(err, errcap, "bad SESSION_FALLBACK '%s': another strategy (db, redis, jwt or cached)",
                     tess_config_shown(env));
            return TESS_ECONFIG;
        }
        if (cfg->fallback == TESS_STRATEGY_REDIS && cfg->redis_url[0] == '\0') {
            snprintf(err, errcap, "SESSION_FALLBACK=redis needs REDIS_URL (or --redis)");
            return TESS_ECONFIG;
        }
        cfg->has_fallback = 1;
    }
    if (cfg->strategy == TESS_STRATEGY_REDIS && cfg->redis_url[0] == '\0') {
        snprintf(err, errcap, "strategy 'redis' needs REDIS_URL (or --redis)");
        return TESS_ECONFIG;
    }
    if (key_prefix(cfg->session_prefix, sizeof(cfg->session_prefix), "SESSION_PREFIX", prefix,
                   TESS_KEYSPACE_SESSION_DEFAULT, err, errcap) != 0 ||
        key_prefix(cfg->tessera_prefix, sizeof(cfg->tessera_prefix), "TESSERA_KEY_PREFIX", getenv("TESSERA_KEY_PREFIX"),
                   TESS_KEYSPACE_TESSERA_DEFAULT, err, errcap) != 0)
        return TESS_ECONFIG;
    {
        tess_keyspace_t ks = {cfg->session_prefix, cfg->tessera_prefix};
        if (tess_keyspace_check(&ks) != 0) {
            snprintf(err, errcap, "SESSION_PREFIX and TESSERA_KEY_PREFIX must differ, neither a prefix of the other");
            return TESS_ECONFIG;
        }
    }
    cfg->backend_timeout_ms = 1000;
    v = cfg->backend_timeout_ms;
    if (env_int("BACKEND_TIMEOUT_MS", 10, 60000, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->backend_timeout_ms = v;
    v = 300;
    if (env_int("CACHE_L2_TTL", 1, 86400, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->l2_ttl_ms = v * 1000;
    v = 60;
    if (env_int("META_CACHE_TTL", 1, 3600, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->meta_ttl_ms = v * 1000;
    if (threads != NULL && *threads != '\0') {
        if (tess_parse_int(threads, 1, 256, &v) != 0) {
            snprintf(err, errcap, "bad %s '%s': expected 1..256", threads_from, tess_config_shown(threads));
            return TESS_ECONFIG;
        }
        cfg->threads = (int)v;
    }
    if ((env = getenv("TESSERA_ENV")) != NULL && strcmp(env, "production") == 0)
        cfg->production = 1;
    if (cfg->format != TESS_FORMAT_EXPRESS) {
        /* NextAuth's session.maxAge (30 days) and updateAge (a day): its sessions and ours then agree */
        cfg->policy.idle_s = 30 * 86400;
        cfg->policy.touch_interval_s = 86400;
    }
    v = cfg->policy.ttl_s;
    if (env_int("SESSION_TTL", 60, 10LL * 365 * 86400, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->policy.ttl_s = v;
    v = cfg->policy.idle_s;
    if (env_int("SESSION_IDLE_TTL", 60, 10LL * 365 * 86400, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->policy.idle_s = v > cfg->policy.ttl_s ? cfg->policy.ttl_s : v;
    v = cfg->policy.touch_interval_s;
    if (env_int("SESSION_TOUCH_INTERVAL", 0, 10LL * 365 * 86400, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->policy.touch_interval_s = v;
    v = 10000;
    if (env_int("TESSERA_MAX_CONNECTIONS", 1, 1000000, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->max_connections = (int)v;
    if (connection_limits(cfg, per_addr, per_addr_from, header_timeout, header_timeout_from, h2c_flag, err, errcap) !=
        0)
        return TESS_ECONFIG;
    v = 1;
    if (env_int("TESSERA_SESSION_TRIGGERS", 0, 1, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->no_session_triggers = no_triggers_flag || v == 0;
    v = 20;
    if (env_int("TESSERA_MAX_WAITERS_PER_SESSION", 1, 100000, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->max_waiters_session = (int)v;
    v = 40;
    if (env_int("TESSERA_MAX_WAITERS_PER_USER", 1, 100000, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->max_waiters_user = (int)v;
    v = (int64_t)cfg->max_body;
    if (env_int("TESSERA_MAX_BODY", 1024, 16 * 1024 * 1024, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->max_body = (size_t)v;
    v = (int64_t)cfg->cache.max_entries;
    if (env_int("CACHE_MAX_ENTRIES", 16, 100000000, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->cache.max_entries = (size_t)v;
    v = (int64_t)cfg->cache.max_bytes;
    if (env_int("CACHE_MAX_BYTES", 65536, 1LL << 40, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->cache.max_bytes = (size_t)v;
    v = cfg->cache.ttl_ms / 1000;
    if (env_int("CACHE_TTL", 1, 86400, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->cache.ttl_ms = v * 1000;
    v = cfg->jwt_leeway_s;
    if (env_int("JWT_LEEWAY", 0, 3600, &v, err, errcap) != 0)
        return TESS_ECONFIG;
    cfg->jwt_leeway_s = v;
    if (jwt_claim(cfg->jwt_user_claim, sizeof(cfg->jwt_user_claim), "JWT_USER_CLAIM",
                  cfg->format == TESS_FORMAT_EXPRESS ? "userId" : "sub", err, errcap) != 0 ||
        jwt_claim(cfg->jwt_role_claim, sizeof(cfg->jwt_role_claim), "JWT_ROLE_CLAIM", "role", err, errcap) != 0)
        return TESS_ECONFIG;
    if (strcmp(cfg->jwt_user_claim, cfg->jwt_role_claim) == 0) {
        snprintf(err, errcap, "JWT_USER_CLAIM and JWT_ROLE_CLAIM must differ");
        return TESS_ECONFIG;
    }
    {
        const char *col = getenv("NEXTAUTH_ROLE_COLUMN"), *role = getenv("NEXTAUTH_DEFAULT_ROLE");
        tess_nextauth_opts_t no = {.role_column = col, .default_role = role};
        if (tess_nextauth_check_opts(&no, err, errcap) != 0)
            return TESS_ECONFIG;
        snprintf(cfg->nextauth_role_column, sizeof(cfg->nextauth_role_column), "%s", col != NULL ? col : "");
        snprintf(cfg->nextauth_default_role, sizeof(cfg->nextauth_default_role), "%s",
                 role != NULL && *role != '\0' ? role : "visitor");
    }
    if ((cookie = getenv("SESSION_COOKIE")) != NULL && *cookie != '\0') {
        size_t n = strlen(cookie);
        if (n >= sizeof(cfg->cookie_name) || strcspn(cookie, "=;, \t\r\n\"") != n) {
            snprintf(err, errcap, "bad SESSION_COOKIE: a cookie name of at most 63 token characters");
            return TESS_ECONFIG;
        }
        memcpy(cfg->cookie_name, cookie, n + 1);
    } else if (cfg->format != TESS_FORMAT_EXPRESS) {
        /* as NextAuth / Auth.js name it: __Secure- over https (production) */
        snprintf(cfg->cookie_name, sizeof(cfg->cookie_name), "%s",
                 tess_jwe_cookie_default(cfg->format, cfg->production));
    }
    secret = getenv("SESSION_SECRET");
    if ((secret == NULL || *secret == '\0') && cfg->format == TESS_FORMAT_AUTHJS)
        secret = getenv("AUTH_SECRET"); /* Auth.js v5's variable */
    if (secret == NULL || *secret == '\0')
        secret = getenv("NEXTAUTH_SECRET");
    if (secret != NULL && *secret != '\0') {
        if ((cfg->secrets = strdup(secret)) == NULL) {
            snprintf(err, errcap, "out of memory");
            return TESS_ECONFIG;
        }
    } else if (cfg->production) {
        snprintf(err, errcap, "TESSERA_ENV=production needs SESSION_SECRET (comma-separated list)");
        return TESS_ECONFIG;
    }
    if (cfg->production) {
        /* A guessable secret forges every session: production takes 256 bits or more per secret. */
        int i = 1;
        for (const char *p = cfg->secrets; *p != '\0'; ++i) {
            size_t n = strcspn(p, ",");
            if (n < PRODUCTION_SECRET_MIN) {
                snprintf(err, errcap, "TESSERA_ENV=production needs secrets of at least %d bytes; secret %d has %zu",
                         PRODUCTION_SECRET_MIN, i, n);
                return TESS_ECONFIG;
            }
            p += n;
            if (*p == ',')
                ++p;
        }
    }
    return 0;
}

int tess_config_ensure_secret(tess_config_t *cfg, char *err, size_t errcap)
{
    char path[1100], buf[256];
    uint8_t raw[32];
    ssize_t n;
    int fd;

    if (cfg->secrets != NULL)
        return 0;
    if (cfg->sqlite_path[0] == '\0') {
        snprintf(err, errcap, "SESSION_SECRET is required with a PostgreSQL database");
        return TESS_ECONFIG;
    }
    snprintf(path, sizeof(path), "%s.secret", cfg->sqlite_path);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            --n;
        if (n <= 0) {
            snprintf(err, errcap, "secret file %s is empty", path);
            return TESS_ECONFIG;
        }
        buf[n] = '\0';
        cfg->secret_generated = 2;
    } else {
        if (errno != ENOENT || tess_random_bytes(raw, sizeof(raw)) != 0) {
            snprintf(err, errcap, "cannot read or create secret file %s", path);
            return TESS_ECONFIG;
        }
        tess_base64url_encode(raw, sizeof(raw), buf);
        if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0 ||
            write(fd, buf, strlen(buf)) != (ssize_t)strlen(buf) || fsync(fd) != 0) {
            if (fd >= 0)
                close(fd);
            snprintf(err, errcap, "cannot write secret file %s: %s", path, strerror(errno));
            return TESS_ECONFIG;
        }
        close(fd);
        cfg->secret_generated = 1;
    }
    if ((cfg->secrets = strdup(buf)) == NULL) {
        snprintf(err, errcap, "out of memory");
        return TESS_ECONFIG;
    }
    return 0;
}

void tess_config_free(tess_config_t *cfg)
{
    if (cfg->secrets != NULL) {
        explicit_bzero(cfg->secrets, strlen(cfg->secrets));
        free(cfg->secrets);
        cfg->secrets = NULL;
    }
}
