/*
 * Abuse limits of tessera serve (settings in app/limits.h, tables in ratelimit.h), shared by every loop:
 *   - login throttling: failed logins are counted per user name and per client address (IPv6: its /64) in
 *     a window; reaching the bound locks the name or the address out for a while (429 + Retry-After).
 *     An attempt is counted when it starts (so concurrent guesses count too) and taken back when it was
 *     never tried (the client went away first, a backend failed); a success forgets the user name's
 *     failures and takes its attempt back from the address. The check runs before the user is looked up,
 *     the same for known and unknown names, and a refused attempt runs no argon2;
 *   - quotas: messages per user (a token bucket), open pre-chats per visitor (in the database's insert).
 *
 * Several instances: each counts in its own process (a client spreading guesses over N instances gets N
 * times the bounds); the argon2 cost per guess and the per-address queue bound still hold per instance.
 */
#ifndef TESSERA_SERVER_ABUSE_H
#define TESSERA_SERVER_ABUSE_H

#include "server/request.h"

typedef struct abuse abuse_t;

/* The keys of one login attempt. */
typedef struct login_keys {
    uint64_t user; /* keyed hash of the user name */
    uint64_t addr; /* keyed hash of the client address */
} login_keys_t;

/* Counters for /metrics (relaxed). */
typedef struct abuse_stats {
    uint64_t login_throttled_user; /* logins refused: the user name is locked out */
    uint64_t login_throttled_addr; /* logins refused: the client address is locked out */
    uint64_t login_queue_addr;     /* logins refused: the address had its bound of password checks in flight */
    uint64_t messages_throttled;   /* messages refused: the user's rate */
    uint64_t prechats_refused;     /* pre-chats refused: the visitor's open bound */
    uint64_t evictions;            /* table entries pushed out by new keys */
} abuse_stats_t;

/* Makes srv->limits from srv->cfg.limits. Returns 0 or a TESS_E* code. */
int abuse_new(server_t *srv);
void abuse_free(server_t *srv);

/* A keyed hash of the client address of `req` (IPv4 address, IPv6 /64; IPv4-mapped IPv6 as IPv4). */
uint64_t abuse_addr_key(server_t *srv, h2o_req_t *req);

/*
 * Counts a login attempt of `username` from the client of `r`, with its keys in `*keys`. Returns 0 (go on), or
 * -1 with 429 sent (the name or the address is locked out).
 */
int abuse_login_begin(tess_req_t *r, tess_str_t username, login_keys_t *keys);
/* The attempt's password was right. */
void abuse_login_succeeded(server_t *srv, const login_keys_t *keys);
/* The attempt was never tried. */
void abuse_login_abandoned(server_t *srv, const login_keys_t *keys);
/* Counts a refusal of the password queue's per-address bound (the caller answers 429). */
void abuse_count_queue_refusal(server_t *srv);

/* Counts a message of the session's user. Returns 0, or -1 with 429 sent. */
int abuse_message_take(tess_req_t *r);
/* Counts a pre-chat refused by the open bound, and answers 429. */
void abuse_prechat_refused(tess_req_t *r);

/* Answers `status` with a JSON error and `Retry-After` (seconds, at least 1) for `wait_ms`. */
void send_error_retry(tess_req_t *r, int status, const char *code, const char *message, int64_t wait_ms);

void abuse_get_stats(server_t *srv, abuse_stats_t *out);

#endif
