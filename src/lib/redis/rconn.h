/*
 * One Redis connection driven by hiredis's async API on a tess_loop_t, with what the stores need around
 * it: URL parsing, AUTH and SELECT on every (re)connect, a timeout on every command, reconnection with
 * capped backoff, and fail-fast while down.
 *
 * Contract of tess__rconn_command(): returns 0 and calls `cb` exactly once (with the reply, or with NULL and
 * TESS_EUNAVAIL / TESS_ETIMEOUT), possibly before returning when the connection is down (while a connection
 * attempt is under way the command waits for it, within its timeout); or returns a
 * negative TESS_E* without calling `cb`. Replies are borrowed for the duration of the callback.
 * A connection belongs to its loop's thread.
 */
#ifndef TESSERA_LIB_REDIS_RCONN_H
#define TESSERA_LIB_REDIS_RCONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/common.h"
#include "tessera/loop.h"

typedef struct tess__redis_url {
    char host[256];     /* TCP host ("" for a unix socket) */
    int port;           /* TCP port */
    char path[256];     /* unix socket path ("" for TCP) */
    char user[128];     /* ACL user ("" for none) */
    char password[256]; /* password ("" for none); never logged */
    int db;             /* SELECT index */
} tess__redis_url_t;

/*
 * Parses redis://[user:password@]host[:port][/db] and unix:///path[?db=N]. Returns 0 or TESS_EINVAL with a
 * reason (never containing the password) in `err`.
 */
int tess__redis_url_parse(const char *url, tess__redis_url_t *out, char *err, size_t errcap);

/* The public tess_redis_t (tessera/redis.h) is this type. */
typedef struct tess_redis tess__rconn_t;
typedef void (*tess__rconn_cb)(void *arg, int rc, redisReply *reply);
/* Connection state changes: up = 1 when usable, 0 when lost. */
typedef void (*tess__rconn_state_cb)(void *arg, int up);

/* Opens (connecting asynchronously). `state_cb` may be NULL. Returns 0, TESS_EINVAL, TESS_ENOMEM. */
int tess__rconn_new(tess__rconn_t **out, tess_loop_t *loop, const tess__redis_url_t *url, int64_t timeout_ms,
                    tess__rconn_state_cb state_cb, void *state_arg);
/* Closes; pending commands complete with TESS_EUNAVAIL first. */
void tess__rconn_free(tess__rconn_t *c);
/* 1 when connected and authenticated. */
int tess__rconn_up(const tess__rconn_t *c);
/* Sends one command (binary-safe argv). */
int tess__rconn_command(tess__rconn_t *c, tess__rconn_cb cb, void *arg, int argc, const char **argv,
                        const size_t *argvlen);
/*
 * SUBSCRIBE to `channel`: `cb` runs for the confirmation and for every message (reply borrowed), and once
 * more with NULL and TESS_EUNAVAIL when the connection ends (the subscription is gone then; subscribe again
 * after the next "up"). No timeout applies. A connection with a subscription must not be used for ordinary
 * commands (RESP2). Returns 0, or TESS_EUNAVAIL when down (no callback).
 */
int tess__rconn_subscribe(tess__rconn_t *c, const char *channel, tess__rconn_cb cb, void *arg);
/*
 * The connection a Redis user (store, L2, revoker) runs on: `shared` when given (borrowed: *owned = 0), else
 * one opened from `url` with `timeout_ms` (*owned = 1: the user closes it with tess__rconn_free). Returns 0,
 * TESS_EINVAL (bad URL, reason in `err`, never the password), TESS_ENOMEM.
 */
int tess__rconn_borrow_or_open(tess__rconn_t **out, int *owned, tess__rconn_t *shared, tess_loop_t *loop,
                               const char *url, int64_t timeout_ms, char *err, size_t errcap);
/* Builds "<prefix><infix><id>" NUL-terminated into `out`. Returns 0, or TESS_ETOOBIG when it does not fit. */
int tess__redis_key(tess_str_t prefix, const char *infix, tess_str_t id, char *out, size_t cap, size_t *len);

/* Commands sent but not answered yet. */
size_t tess__rconn_pending(const tess__rconn_t *c);

#endif
