/*
 * Writes to the session table by anyone (another tessera, the Express or Next.js app next to it, a CLI, psql),
 * reported by the database itself, so a near-cache in front of it cannot stay stale:
 *
 *   PostgreSQL  row triggers on `session` NOTIFY channel tessera_session with "i SID" (insert), "u SID"
 *               (update), "d SID" (delete), "t" (truncate); one LISTEN connection per process, with a heartbeat
 *               so a connection that silently stopped forwarding counts as down within the call timeout.
 *   SQLite      row triggers append (seq, op, sid) to tess_session_event; the watcher polls PRAGMA
 *               data_version every TESS_DBWATCH_TAIL_MS on its own connection and reads the rows after the
 *               last seq it saw when it moved; old rows are pruned.
 *
 * tess_dbwatch_migrate() installs the triggers (idempotent, under an advisory lock on PostgreSQL). While the
 * watcher is down nothing it would report can be trusted: on_state(0); on_state(1) once it is listening again
 * (flush then, writes in between were not reported). Callbacks run on the watcher's loop.
 */
#ifndef TESS_CACHE_DBWATCH_H
#define TESS_CACHE_DBWATCH_H

#include "tessera/common.h"
#include "tessera/loop.h"

#define TESS_DBWATCH_TAIL_MS 100   /* SQLite: how often data_version is read */
#define TESS_DBWATCH_BEAT_MS 250   /* PostgreSQL: heartbeat on the LISTEN connection */
#define TESS_DBWATCH_KEEP_MS 60000 /* SQLite: event rows older than this are pruned */

typedef enum tess_dbwatch_kind {
    TESS_DBWATCH_INSERTED = 1, /* the row of `sid` was inserted (a "no such session" answer is wrong now) */
    TESS_DBWATCH_CHANGED,      /* the row of `sid` was updated */
    TESS_DBWATCH_GONE,         /* the row of `sid` was deleted */
    TESS_DBWATCH_ALL,          /* every row may have changed (truncate, a gap in the SQLite event rows) */
    TESS_DBWATCH_USER,         /* NextAuth: the role of user `sid` (a user id here) changed in "User" */
} tess_dbwatch_kind_t;

typedef struct tess_dbwatch tess_dbwatch_t;

typedef struct tess_dbwatch_opts {
    const char *database_url; /* sqlite:PATH or postgres://... (copied) */
    int64_t timeout_ms;       /* per PostgreSQL call (0: 1000) */
    void (*on_change)(void *arg, tess_dbwatch_kind_t kind, tess_str_t sid);
    void (*on_state)(void *arg, int up);
    void *arg;
} tess_dbwatch_opts_t;

/* 1 when `url` names a database the watcher can follow (SQLite, PostgreSQL). */
int tess_dbwatch_supported(const char *url);
/*
 * Installs the triggers (blocking: start-up): on tessera's `session` table (`nextauth_role_column` NULL), or on
 * NextAuth's "Session" (keyed by "sessionToken"), and with a role column ("" for none) on that column of
 * "User". Returns 0 or a TESS_E* with a one-line reason in `err`.
 */
int tess_dbwatch_migrate(const char *url, int64_t timeout_ms, const char *nextauth_role_column, char *err,
                         size_t errcap);
/* Starts watching on `loop`; reports up asynchronously. Returns 0, TESS_EINVAL, TESS_EIO, TESS_ENOMEM. */
int tess_dbwatch_open(tess_dbwatch_t **out, tess_loop_t *loop, const tess_dbwatch_opts_t *opts, char *err,
                      size_t errcap);
/* Stops (on the watcher's loop); no callback runs afterwards. NULL is a no-op. */
void tess_dbwatch_free(tess_dbwatch_t *w);
/* 1 while changes are being reported. Any thread. */
int tess_dbwatch_up(const tess_dbwatch_t *w);

#endif
