/*
 * The command line's pieces (src/cli): each command parses its own options; exit codes 0 ok, 1 failure,
 * 2 usage.
 */
#ifndef TESSERA_CLI_H
#define TESSERA_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "app/config.h"

#define TESS_CLI_HANDLE_LEN 16 /* hex digits of a session handle */

typedef struct tess_cli_session_row {
    char sid[256];                        /* the session id (secret: never printed) */
    char handle[TESS_CLI_HANDLE_LEN + 1]; /* its handle */
    int64_t created_ms;                   /* createdAt, 0 when unknown */
    int64_t expires_ms;                   /* expiry */
    const char *where;                    /* "database" or "redis" (static) */
} tess_cli_session_row_t;

typedef struct tess_cli_sessions {
    tess_cli_session_row_t *rows; /* the rows */
    size_t n, cap;                /* used, allocated */
} tess_cli_sessions_t;

/* The handle of session id `sid`: the first 16 hex digits of its SHA-256. */
void tess_cli_handle(const char *sid, char out[TESS_CLI_HANDLE_LEN + 1]);
/*
 * The live sessions of user id `uid` (NULL: of everyone) in the configured database's session table.
 * Returns 0 (no table: none), TESS_EUNAVAIL, TESS_EIO, TESS_ENOMEM, with a reason in `err`.
 */
int tess_cli_sessions_load(tess_cli_sessions_t *out, const tess_config_t *cfg, const char *uid, char *err,
                           size_t errcap);
/*
 * Appends the redis strategy's sessions of user `uid` (the <prefix>user:<uid> set, tessera/keyspace.h; prefix
 * NULL: the default) held by the Redis at `url`. Returns 0, TESS_EINVAL, TESS_EUNAVAIL, TESS_EIO, TESS_ENOMEM.
 */
int tess_cli_sessions_load_redis(tess_cli_sessions_t *out, const char *url, const char *prefix, const char *uid,
                                 char *err, size_t errcap);
void tess_cli_sessions_free(tess_cli_sessions_t *s);
void tess_cli_sessions_print(const tess_cli_sessions_t *s, const char *user, int json);

/*
 * Ends sessions as a running server would: every session and token of user `user` (sid NULL), or the one
 * session `sid`. Prints a line on success; a one-line reason prefixed by `cmd` otherwise. Returns 0 or 1.
 */
int tess_cli_revoke(const char *cmd, const char *database, const char *redis, const char *user, const char *sid);
/* The user id of NAME, in `uid`: 0, 1 (no such user, or the database failed: a line printed). */
int tess_cli_user_id(const char *cmd, const tess_config_t *cfg, const char *name, char *uid, size_t cap);

int tess_cli_session_revoke(int argc, char **argv);
int tess_cli_session_list(int argc, char **argv);
int tess_cli_check(int argc, char **argv);

/*
 * The argument getopt_long() just refused, for the error line: "-W" for an unknown short option (even in a
 * cluster such as "-Wabc", whose optind has not moved on), else the refused word (--bogus, --user without
 * its value).
 */
const char *tess_cli_bad_option(char **argv, int optind_now);

#endif
