/*
 * The tessera command: serve, user add|list|passwd|del, session list|revoke, check.
 * Exit codes: 0 ok, 1 failure, 2 usage.
 */
#include <getopt.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/appdb.h"
#include "app/config.h"
#include "app/passwords.h"
#include "cli/cli.h"
#include "server/serve.h"
#include "tessera/error.h"
#include "tessera/redis.h"

#define PASSWORD_MAX 1024

static void usage(FILE *out)
{
    fputs("usage: tessera <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve                         serve the pre-chat polling API (tessera serve --help)\n"
          "  user add NAME --role ROLE --password-stdin [--database URL]\n"
          "                                add a user; ROLE is visitor or agent; the password is read\n"
          "                                from standard input (one line)\n"
          "  user list [--json] [--database URL]\n"
          "                                every user: id, name, role\n"
          "  user passwd NAME --password-stdin [--database URL]\n"
          "                                a new password for NAME, read from standard input\n"
          "  user del NAME [--database URL] [--redis URL]\n"
          "                                remove NAME, ending its sessions first\n"
          "  session list --user NAME [--json] [--database URL] [--redis URL]\n"
          "                                NAME's live sessions (database, and Redis-held with --redis):\n"
          "                                handle, created, expires, store\n"
          "  session revoke ID|HANDLE|--user NAME [--database URL] [--redis URL]\n"
          "                                end one session, or log NAME out everywhere (sessions,\n"
          "                                caches, and every token issued so far)\n"
          "  check [serve options] [--json]\n"
          "                                validate the configuration as serve reads it and reach\n"
          "                                every configured backend\n"
          "  help                          this text\n"
          "\n"
          "The database defaults to DATABASE_URL, else sqlite:./tessera.db.\n",
          out);
}

/* One line of standard input as a password: 0, or 2 (a line printed). */
static int read_password(const char *cmd, char *password, size_t cap)
{
    size_t n;

    if (fgets(password, (int)cap, stdin) == NULL) {
        fprintf(stderr, "%s: no password on standard input\n", cmd);
        return 2;
    }
    n = strlen(password);
    if (n > 0 && password[n - 1] == '\n')
        password[--n] = '\0';
    if (n > 0 && password[n - 1] == '\r')
        password[--n] = '\0';
    if (n == 0 || n > PASSWORD_MAX) {
        fprintf(stderr, "%s: the password must have 1 to %d bytes\n", cmd, PASSWORD_MAX);
        return 2;
    }
    return 0;
}

/* The options of user list|passwd|del and session list. */
typedef struct cli_opts {
    const char *database; /* --database, else DATABASE_URL */
    const char *redis;    /* --redis, else REDIS_URL */
    const char *user;     /* --user */
    int json;             /* --json */
    int from_stdin;       /* --password-stdin */
    tess_config_t cfg;    /* the database part */
} cli_opts_t;

/* Parses argv (after the command's words) into `o`, expecting `npos` positional arguments; 0, 1 (--help), 2. */
static int parse_opts(const char *cmd, const char *usage_line, int argc, char **argv, int npos, cli_opts_t *o)
{
    static const struct option longopts[] = {
        {"database", required_argument, NULL, 'd'},
        {"redis", required_argument, NULL, 'r'},
        {"user", required_argument, NULL, 'u'},
        {"json", no_argument, NULL, 'j'},
        {"password-stdin", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char err[512];
    int opt;

    memset(o, 0, sizeof(*o));
    o->database = getenv("DATABASE_URL");
    o->redis = getenv("REDIS_URL");
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            o->database = optarg;
            break;
        case 'r':
            o->redis = optarg;
            break;
        case 'u':
            o->user = optarg;
            break;
        case 'j':
            o->json = 1;
            break;
        case 'p':
            o->from_stdin = 1;
            break;
        case 'h':
            printf("usage: %s\n", usage_line);
            return 1;
        default:
            fprintf(stderr, "%s: bad option '%s' (usage: %s)\n", cmd,
                    tess_config_shown(tess_cli_bad_option(argv, optind)), usage_line);
            return 2;
        }
    }
    if (argc - optind != npos) {
        fprintf(stderr, "%s: usage: %s\n", cmd, usage_line);
        return 2;
    }
    if (o->redis != NULL && *o->redis == '\0')
        o->redis = NULL;
    if (tess_config_set_database(&o->cfg, o->database != NULL && *o->database ? o->database : "sqlite:./tessera.db",
                                 err, sizeof(err)) != 0 ||
        (o->redis != NULL && tess_redis_url_check(o->redis, err, sizeof(err)) != 0)) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return 2;
    }
    return 0;
}

static int json_string(const char *s)
{
    /* Names have no quotes, backslashes or blanks (user add refuses them); control bytes are escaped. */
    putchar('"');
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned char)*s);
        else
            putchar(*s);
    }
    return putchar('"');
}

static int user_list(int argc, char **argv)
{
    static const char cmd[] = "tessera user list";
    cli_opts_t o;
    appdb_user_t *users = NULL;
    char err[512] = "";
    size_t n = 0, i;
    sqlite3 *db = NULL;
    int rc;

    if ((rc = parse_opts(cmd, "tessera user list [--json] [--database URL]", argc, argv, 0, &o)) != 0)
        return rc == 1 ? 0 : rc;
    if (o.cfg.postgres) {
        rc = appdb_pg_user_list(o.cfg.database_url, &users, &n, err, sizeof(err));
    } else if ((rc = appdb_sqlite_connect(&db, o.cfg.sqlite_path, err, sizeof(err))) == 0) {
        rc = appdb_sqlite_user_list(db, &users, &n, err, sizeof(err));
    }
    sqlite3_close(db);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return 1;
    }
    if (o.json) {
        fputs("{\"users\":[", stdout);
        for (i = 0; i < n; i++) {
            printf("%s{\"id\":%lld,\"name\":", i ? "," : "", (long long)users[i].id);
            json_string(users[i].name);
            fputs(",\"role\":", stdout);
            json_string(users[i].role);
            putchar('}');
        }
        fputs("]}\n", stdout);
    } else {
        printf("%-8s  %-7s  %s\n", "ID", "ROLE", "NAME");
        for (i = 0; i < n; i++)
            printf("%-8lld  %-7s  %s\n", (long long)users[i].id, users[i].role, users[i].name);
    }
    free(users);
    return 0;
}

static int user_passwd(int argc, char **argv)
{
    static const char cmd[] = "tessera user passwd";
    char password[PASSWORD_MAX + 2], hash[256], err[512] = "";
    cli_opts_t o;
    sqlite3 *db = NULL;
    int rc, code = 1;

    if ((rc = parse_opts(cmd, "tessera user passwd NAME --password-stdin [--database URL]", argc, argv, 1, &o)) != 0)
        return rc == 1 ? 0 : rc;
    if (!o.from_stdin) {
        fprintf(stderr, "%s: --password-stdin is required (passwords never go on the command line)\n", cmd);
        return 2;
    }
    if ((rc = read_password(cmd, password, sizeof(password))) != 0)
        return rc;
    if (sodium_init() < 0 || app_pw_hash(password, hash, sizeof(hash)) != 0) {
        fprintf(stderr, "%s: cannot hash the password\n", cmd);
        goto out;
    }
    if (o.cfg.postgres) {
        rc = appdb_pg_user_passwd(o.cfg.database_url, argv[optind], hash, err, sizeof(err));
    } else if ((rc = appdb_sqlite_connect(&db, o.cfg.sqlite_path, err, sizeof(err))) == 0) {
        rc = appdb_sqlite_user_passwd(db, argv[optind], hash, err, sizeof(err));
    }
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        goto out;
    }
    printf("changed the password of %s\n", argv[optind]);
    code = 0;
out:
    sodium_memzero(password, sizeof(password));
    sqlite3_close(db);
    return code;
}

static int user_del(int argc, char **argv)
{
    static const char cmd[] = "tessera user del";
    char err[512] = "";
    cli_opts_t o;
    sqlite3 *db = NULL;
    int rc;

    if ((rc = parse_opts(cmd, "tessera user del NAME [--database URL] [--redis URL]", argc, argv, 1, &o)) != 0)
        return rc == 1 ? 0 : rc;
    const char *name = argv[optind];
    char uid[24];
    if (tess_cli_user_id(cmd, &o.cfg, name, uid, sizeof(uid)) != 0)
        return 1;
    /* Sessions first: a user removed with live sessions would have them answer for a missing row. */
    if (tess_cli_revoke(cmd, o.database, o.redis, name, NULL) != 0)
        return 1;
    if (o.cfg.postgres) {
        rc = appdb_pg_user_del(o.cfg.database_url, name, err, sizeof(err));
    } else if ((rc = appdb_sqlite_connect(&db, o.cfg.sqlite_path, err, sizeof(err))) == 0) {
        rc = appdb_sqlite_user_del(db, name, err, sizeof(err));
    }
    sqlite3_close(db);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return 1;
    }
    printf("deleted user %s\n", name);
    return 0;
}

int tess_cli_session_list(int argc, char **argv)
{
    static const char cmd[] = "tessera session list";
    char err[512] = "", uid[24];
    tess_cli_sessions_t list;
    cli_opts_t o;
    int rc;

    if ((rc = parse_opts(cmd, "tessera session list --user NAME [--json] [--database URL] [--redis URL]", argc, argv, 0,
                         &o)) != 0)
        return rc == 1 ? 0 : rc;
    if (o.user == NULL || *o.user == '\0') {
        fprintf(stderr, "%s: --user NAME is required\n", cmd);
        return 2;
    }
    if (tess_cli_user_id(cmd, &o.cfg, o.user, uid, sizeof(uid)) != 0)
        return 1;
    if (tess_cli_sessions_load(&list, &o.cfg, uid, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        return 1;
    }
    if (o.redis != NULL &&
        tess_cli_sessions_load_redis(&list, o.redis, getenv("SESSION_PREFIX"), uid, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", cmd, err);
        tess_cli_sessions_free(&list);
        return 1;
    }
    tess_cli_sessions_print(&list, o.user, o.json);
    tess_cli_sessions_free(&list);
    return 0;
}

static int user_add(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"role", required_argument, NULL, 'r'},
        {"password-stdin", no_argument, NULL, 'p'},
        {"database", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *role = NULL, *database = getenv("DATABASE_URL"), *name;
    char password[PASSWORD_MAX + 2], hash[256], err[512] = "";
    tess_config_t cfg;
    sqlite3 *db = NULL;
    int opt, from_stdin = 0, rc, code = 1;
    size_t n;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'r':
            role = optarg;
            break;
        case 'p':
            from_stdin = 1;
            break;
        case 'd':
            database = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "tessera user add: bad option '%s' (see tessera help)\n",
                    tess_cli_bad_option(argv, optind));
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "tessera user add: expected one user NAME (see tessera help)\n");
        return 2;
    }
    name = argv[optind];
    n = strlen(name);
    if (n == 0 || n > APP_NAME_MAX || strcspn(name, " \t\r\n\"\\/") != n) {
        fprintf(stderr, "tessera user add: a user name has 1 to %d characters, without blanks, quotes or slashes\n",
                APP_NAME_MAX);
        return 2;
    }
    if (strncmp(name, "ext:", 4) == 0) {
        fprintf(stderr, "tessera user add: names starting with \"ext:\" stand for another app's users\n");
        return 2;
    }
    if (role == NULL || (strcmp(role, "visitor") != 0 && strcmp(role, "agent") != 0)) {
        fprintf(stderr, "tessera user add: --role must be visitor or agent\n");
        return 2;
    }
    if (!from_stdin) {
        fprintf(stderr, "tessera user add: --password-stdin is required (passwords never go on the command line)\n");
        return 2;
    }
    memset(&cfg, 0, sizeof(cfg));
    if (tess_config_set_database(&cfg, database != NULL && *database ? database : "sqlite:./tessera.db", err,
                                 sizeof(err)) != 0) {
        fprintf(stderr, "tessera user add: %s\n", err);
        return 2;
    }
    if (fgets(password, sizeof(password), stdin) == NULL) {
        fprintf(stderr, "tessera user add: no password on standard input\n");
        return 2;
    }
    n = strlen(password);
    if (n > 0 && password[n - 1] == '\n')
        password[--n] = '\0';
    if (n > 0 && password[n - 1] == '\r')
        password[--n] = '\0';
    if (n == 0 || n > PASSWORD_MAX || strlen(password) != n) {
        fprintf(stderr, "tessera user add: the password must have 1 to %d bytes\n", PASSWORD_MAX);
        goto out;
    }
    if (sodium_init() < 0 || app_pw_hash(password, hash, sizeof(hash)) != 0) {
        fprintf(stderr, "tessera user add: cannot hash the password\n");
        goto out;
    }
    if (cfg.postgres) {
        rc = appdb_pg_user_add(cfg.database_url, name, role, hash, tess_now_ms(), err, sizeof(err));
    } else if (appdb_sqlite_connect(&db, cfg.sqlite_path, err, sizeof(err)) != 0) {
        fprintf(stderr, "tessera user add: %s\n", err);
        goto out;
    } else {
        rc = appdb_sqlite_user_add(db, name, role, hash, tess_now_ms(), err, sizeof(err));
    }
    if (rc != 0) {
        fprintf(stderr, "tessera user add: %s\n", err);
        goto out;
    }
    printf("added %s user %s\n", role, name);
    code = 0;
out:
    sodium_memzero(password, sizeof(password));
    sqlite3_close(db);
    return code;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "serve") == 0)
        return tess_serve_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "user") == 0 && argc >= 3 && strcmp(argv[2], "add") == 0)
        return user_add(argc - 2, argv + 2);
    if (strcmp(argv[1], "user") == 0 && argc >= 3 && strcmp(argv[2], "list") == 0)
        return user_list(argc - 2, argv + 2);
    if (strcmp(argv[1], "user") == 0 && argc >= 3 && strcmp(argv[2], "passwd") == 0)
        return user_passwd(argc - 2, argv + 2);
    if (strcmp(argv[1], "user") == 0 && argc >= 3 && strcmp(argv[2], "del") == 0)
        return user_del(argc - 2, argv + 2);
    if (strcmp(argv[1], "session") == 0 && argc >= 3 && strcmp(argv[2], "revoke") == 0)
        return tess_cli_session_revoke(argc - 2, argv + 2);
    if (strcmp(argv[1], "session") == 0 && argc >= 3 && strcmp(argv[2], "list") == 0)
        return tess_cli_session_list(argc - 2, argv + 2);
    if (strcmp(argv[1], "check") == 0)
        return tess_cli_check(argc - 1, argv + 1);
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "tessera: unknown command '%s' (see tessera help)\n", argv[1]);
    return 2;
}
