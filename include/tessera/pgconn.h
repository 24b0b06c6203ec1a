/*
 * One libpq connection driven on a tess_loop_t (installed: the application builds its own queries on it).
 *
 * - Connects without blocking (PQconnectStart/PQconnectPoll on the loop), enters pipeline mode and prepares
 *   the caller's statement table once per connection, before any query can use it.
 * - Every query is PQsendQueryPrepared + PQpipelineSync: each query is its own implicit transaction, so a
 *   failing query never aborts or rolls back its neighbours, and a callback runs only once the query's
 *   Sync has come back (its work is committed).
 * - Queries complete in FIFO order. Each has a deadline (now + timeout_ms); when the oldest pending query
 *   passes it, the connection is torn down (that query and every later one complete with TESS_ETIMEOUT)
 *   and a reconnect is scheduled.
 * - A lost connection completes every pending query with TESS_EUNAVAIL and reconnects with backoff
 *   (50 ms, doubling, capped at 500 ms). While not connected, new queries complete at once with
 *   TESS_EUNAVAIL (the callback runs before tess_pgconn_query returns).
 * - tess_pgconn_close completes pending queries with TESS_EUNAVAIL; no callback runs after it returns.
 *
 * Not thread-safe: a connection belongs to its loop's thread. Callbacks may issue new queries and may
 * close the connection.
 *
 * Only blocking part: libpq resolves a host *name* (not an address) with getaddrinfo() inside
 * PQconnectPoll; give an IP address (host=127.0.0.1 or hostaddr=) or a socket directory to stay
 * non-blocking.
 */
#ifndef TESSERA_PGCONN_H
#define TESSERA_PGCONN_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/common.h"
#include "tessera/loop.h"

typedef struct tess_pgconn tess_pgconn_t;

/* A statement prepared on every (re)connection as "t<index>". Tables are static and outlive the conn. */
typedef struct tess_pgconn_stmt {
    const char *sql; /* text with $1..$n; integer parameters should be cast ($1::bigint): see params below */
    int nparams;     /* number of parameters */
} tess_pgconn_stmt_t;

/*
 * One parameter, always sent in binary format: a string's bytes as they are (no NUL needed), an integer as
 * 8 bytes in network order (the statement must make its type bigint, e.g. `$2::bigint`).
 * Use tess_pgconn_param_str / tess_pgconn_param_i64 to fill one. The bytes are copied by tess_pgconn_query.
 */
typedef struct tess_pgconn_param {
    const char *ptr; /* bytes; NULL with len -1 for SQL NULL */
    int len;         /* length in bytes */
    char i8[8];      /* storage for an int8 (ptr points here) */
} tess_pgconn_param_t;

static inline void tess_pgconn_param_str(tess_pgconn_param_t *p, const char *ptr, size_t len)
{
    p->ptr = ptr != NULL ? ptr : "";
    p->len = (int)len;
}

static inline void tess_pgconn_param_i64(tess_pgconn_param_t *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; --i) {
        p->i8[i] = (char)(u & 0xff);
        u >>= 8;
    }
    p->ptr = p->i8;
    p->len = 8;
}

/*
 * Completion: rc 0 with `res` a PGRES_TUPLES_OK / PGRES_COMMAND_OK result (text format), or a negative
 * TESS_E* with `res` the error result when the server answered with one (else NULL): TESS_EEXISTS for an
 * integrity-constraint violation (SQLSTATE class 23), TESS_EBADFMT for a data exception (class 22: bad
 * encoding, value out of range: the input's fault), TESS_ETIMEOUT (deadline passed, or the server
 * cancelled the statement), TESS_EUNAVAIL (no connection, connection lost, server shutting down),
 * TESS_EIO (any other error). `res` is borrowed for the duration of the call.
 */
typedef void (*tess_pgconn_cb)(void *arg, int rc, const PGresult *res);

typedef struct tess_pgconn_opts {
    const char *conninfo;            /* libpq URI or key=value string; copied */
    int64_t timeout_ms;              /* per-query deadline; also bounds a connection attempt (at least 1 s) */
    const tess_pgconn_stmt_t *stmts; /* statements to prepare on every connection (borrowed, static) */
    int n_stmts;                     /* entries in stmts */
    const char *name;                /* for log lines ("pgstore", "appdb"); borrowed, static */
    /*
     * Optional. on_state(arg, 1) once a connection is usable (its statements queued: a LISTEN issued from
     * here is in place before any notification of that connection), on_state(arg, 0) when it is lost (any
     * LISTEN with it). on_notify(arg, channel, payload) for each NOTIFY received (borrowed strings).
     * Both run on the loop; they may issue queries but must not close the connection.
     */
    void (*on_state)(void *arg, int up);
    void (*on_notify)(void *arg, const char *channel, const char *payload);
    void *event_arg; /* their argument */
} tess_pgconn_opts_t;

/*
 * Makes a connection handle on `loop` (borrowed) and starts connecting. Returns 0, TESS_EINVAL (conninfo
 * does not parse; reason in err), TESS_ENOMEM. The handle is usable at once.
 */
TESS_API int tess_pgconn_open(tess_pgconn_t **out, tess_loop_t *loop, const tess_pgconn_opts_t *opts, char *err,
                              size_t errcap);

/*
 * Queues statement `stmt` with `nparams` parameters. Returns 0 (the callback runs exactly once, possibly
 * before this returns: TESS_EUNAVAIL when not connected) or TESS_EINVAL (bad statement index or parameter
 * count; no callback).
 */
TESS_API int tess_pgconn_query(tess_pgconn_t *c, int stmt, const tess_pgconn_param_t *params, int nparams,
                               tess_pgconn_cb cb, void *arg);

/* 1 when connected (pipeline mode entered, statements sent). */
TESS_API int tess_pgconn_connected(const tess_pgconn_t *c);

/* Queries sent and not yet completed. */
TESS_API size_t tess_pgconn_pending(const tess_pgconn_t *c);

/* The last connection-level error ("connecting: ...", "query: timed out"); "" after a good connect. */
TESS_API const char *tess_pgconn_last_error(const tess_pgconn_t *c);

/* Completes pending queries with TESS_EUNAVAIL, disconnects and frees. Safe from a callback. NULL is a no-op. */
TESS_API void tess_pgconn_close(tess_pgconn_t *c);

/*
 * Maps an error result (or NULL: connection-level failure) to a TESS_E* as described for tess_pgconn_cb.
 */
TESS_API int tess_pgconn_map_error(const PGresult *res);

/*
 * Writes "<what>: <detail>" into dst (what or detail may be NULL) as one line: libpq's messages span lines
 * ("...failed: Connection refused\n\tIs the server running...?\n"); each run of line breaks and tabs becomes
 * one space and trailing white space goes. Always NUL-terminates when cap > 0.
 */
TESS_API void tess_pgconn_error_line(char *dst, size_t cap, const char *what, const char *detail);

/*
 * Synchronous helpers for start-up and the command line only (they block: never call them on a loop).
 * tess_pgconn_connect_sync connects with a `connect_timeout` of a few seconds; returns NULL with a reason in
 * err. tess_pgconn_exec_sync runs `sql` (no parameters, may hold several statements) and returns 0 or the
 * mapped TESS_E* with the server's message in err.
 */
PGconn *tess_pgconn_connect_sync(const char *conninfo, char *err, size_t errcap);
TESS_API int tess_pgconn_exec_sync(PGconn *pg, const char *sql, char *err, size_t errcap);

#endif
