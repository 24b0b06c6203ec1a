/*
 * Requests by route and status class, per thread, and the access log: both fed by one h2o logger that h2o
 * calls once per finished request (whatever answered it: a handler, a long-poll, h2o's own error replies).
 *
 * The counters are the loop's own (httpstats_t in server_thread_t), C11 atomics written relaxed by that loop
 * and summed by /metrics on read: no lock, no allocation, no system call per request. The access log, when on,
 * writes one line (one write(2)) per request.
 */
#ifndef TESSERA_SERVER_HTTPSTATS_H
#define TESSERA_SERVER_HTTPSTATS_H

#include <stdatomic.h>

#include <h2o.h>

#define HTTPSTATS_ROUTES 48 /* room for the router's table (router.c) plus one for every other path */
#define HTTPSTATS_CLASSES 5 /* 1xx..5xx */

typedef struct httpstats {
    atomic_uint_fast64_t n[HTTPSTATS_ROUTES][HTTPSTATS_CLASSES]; /* requests answered, by route and class */
} httpstats_t;

typedef struct server server_t;

/*
 * Registers the logger on `path`. `access_log`: "off" (or ""), "on" (stderr, through log.h) or a file path,
 * opened for appending here. Returns 0, or -1 with a reason in `err`.
 */
int httpstats_register(server_t *srv, h2o_pathconf_t *path, const char *access_log, char *err, size_t errcap);
/* Closes the access log file, if one was opened. */
void httpstats_close(void);

/* Appends the tessera_http_requests_total family (every thread summed) to buf; returns the new length. */
size_t httpstats_metrics(server_t *srv, char *buf, size_t len, size_t cap);

#endif
