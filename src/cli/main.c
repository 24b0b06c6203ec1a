/*
 * The tessera command: serve, user add.
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
#include "server/serve.h"
#include "tessera/error.h"

#define PASSWORD_MAX 1024

int tess_cli_session_revoke(int argc, char **argv);

static void usage(FILE *out)
{
    fputs("usage: tessera <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve                         serve the pre-chat polling API (tessera serve --help)\n"
          "  user add NAME --role ROLE --password-stdin [--database URL]\n"
          "                                add a user; ROLE is visitor or agent; the password is read\n"
          "                                from standard input (one line)\n"
          "  session revoke --user NAME [--database URL] [--redis URL]\n"
          "                                log NAME out everywhere (sessions, caches, and with Redis\n"
          "                                every token issued so far)\n"
          "  help                          this text\n"
          "\n"
          "The database defaults to DATABASE_URL, else sqlite:./tessera.db.\n",
          out);
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
            fprintf(stderr, "tessera user add: bad option '%s' (see tessera help)\n", argv[optind - 1]);
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
    if (strcmp(argv[1], "session") == 0 && argc >= 3 && strcmp(argv[2], "revoke") == 0)
        return tess_cli_session_revoke(argc - 2, argv + 2);
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "tessera: unknown command '%s' (see tessera help)\n", argv[1]);
    return 2;
}
