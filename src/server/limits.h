/*
 * HTTP limits: the bound on a request's head (431), the bound on connections per client address (shared by
 * every loop), JSON bodies for the error answers h2o makes itself, and h2o's timeouts and HTTP/2 switch.
 *
 * What h2o 2.2 refuses before any of this runs (see docs/server.md): a head it cannot parse, over 100 header
 * fields or over 417,792 bytes gets a fixed text/plain 400 written straight to the socket; a request not
 * complete within the header timeout is closed without an answer.
 */
#ifndef TESSERA_SERVER_LIMITS_H
#define TESSERA_SERVER_LIMITS_H

#include <stdint.h>
#include <sys/socket.h>

#include "server/request.h"

/* Where a connection comes from, for the per-address bound: an IPv4 address, or the /64 of an IPv6 one. */
typedef struct addr_key {
    uint8_t b[16]; /* IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d); IPv6 with the low 64 bits zeroed */
} addr_key_t;

/* Open connections per client address; thread-safe (one mutex), shared by every loop. */
typedef struct addr_limit addr_limit_t;

/*
 * A table for at most `max_conns` open connections (which bounds its distinct addresses), each address
 * allowed `per_addr` of them. Returns 0 with `*out` (free with addr_limit_free), or TESS_ENOMEM.
 */
int addr_limit_new(addr_limit_t **out, int per_addr, int max_conns);
void addr_limit_free(addr_limit_t *t);

/* The key of peer address `sa`. Returns 0, or -1 for a family without one (a Unix socket). */
int addr_key_of(const struct sockaddr *sa, socklen_t len, addr_key_t *key);

/* Counts a connection from `key`. Returns 0, or -1 (nothing counted) when `key` already has per_addr. */
int addr_limit_acquire(addr_limit_t *t, const addr_key_t *key);
/* Uncounts a connection that addr_limit_acquire counted. */
void addr_limit_release(addr_limit_t *t, const addr_key_t *key);
/* Connections counted for `key` now. */
int addr_limit_count(addr_limit_t *t, const addr_key_t *key);
/* Connections refused so far (for /metrics). */
uint64_t addr_limit_refused(addr_limit_t *t);

/*
 * For a connection just accepted: counts it against its address. Returns 1 counted (`*key` filled: release
 * it when the connection closes), 0 admitted without counting (no bound, or no address), or -1 refused: the
 * connection has been answered with a fixed 429 JSON and closed.
 */
int addr_limit_admit(addr_limit_t *t, h2o_socket_t *sock, addr_key_t *key);

/*
 * Applies the configuration to h2o before the contexts exist: the header timeout (HTTP/1 request and idle
 * keep-alive, HTTP/2 idle), cleartext HTTP/2 on or off, and the filter that gives h2o's own error answers
 * (bad framing 400, 413, 417) a JSON body on `host`.
 */
void limits_configure(server_t *srv, h2o_hostconf_t *host);

/*
 * The request-head bound: at most cfg.max_headers header fields and cfg.max_header_bytes bytes of request
 * line and fields. Returns 0, or -1 with 431 sent (and the connection closed after it).
 */
int limits_check_head(tess_req_t *r);

#endif
