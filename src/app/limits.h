/*
 * Abuse limits of tessera serve: login throttling, the password workers, per-visitor and per-user quotas.
 * Each is a flag and an environment variable (the flag wins), an integer in a documented range.
 */
#ifndef TESSERA_APP_LIMITS_H
#define TESSERA_APP_LIMITS_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct tess_limits {
    int64_t login_max_failures;      /* failed logins of one user name per window before a lock-out */
    int64_t login_addr_max_failures; /* the same for one client address (IPv6: its /64) */
    int64_t login_window_s;          /* the window failures are counted in, seconds */
    int64_t login_lockout_s;         /* how long a user name or address is refused once locked, seconds */
    int64_t login_queue_per_addr;    /* password checks of one client address queued or running at once */
    int64_t password_workers;        /* argon2 worker threads */
    int64_t password_queue;          /* password checks waiting for a worker, all clients together */
    int64_t max_open_prechats;       /* pre-chats one visitor has open (waiting or active) */
    int64_t message_rate;            /* messages one user may post per minute, sustained */
    int64_t message_burst;           /* ... and at once */
    int64_t agent_max_chats;         /* active pre-chats one agent holds at once (409 on the join beyond) */
    int64_t prechat_idle_timeout_s;  /* an active pre-chat without a message this long is closed; 0 off */
    int64_t prechat_wait_timeout_s;  /* a pre-chat waiting this long is offered to leave a message; 0 off */
    int64_t prechat_wait_close_s;    /* ... and closed this long after creation, unless it has a left message */
} tess_limits_t;

#define TESS_LIMITS_COUNT 14 /* settings in tess_limits_t */

/* Fills `opts[0..TESS_LIMITS_COUNT)` with the long options; option i returns `first_val + i`. */
void tess_limits_options(struct option *opts, int first_val);
/*
 * Sets every limit: `flags[i]` (the value of option i, or NULL), else its environment variable, else its
 * default. Returns 0, or -1 with a one-line reason in `err` (naming the flag or the variable).
 */
int tess_limits_load(tess_limits_t *l, const char *const flags[TESS_LIMITS_COUNT], char *err, size_t errcap);
/* The usage lines of the limits. */
void tess_limits_usage(FILE *out);

#endif
