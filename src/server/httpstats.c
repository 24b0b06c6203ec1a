/*
 * Requests by route and status class, and the access log (httpstats.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/time.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server/httpstats.h"
#include "server/log.h"
#include "server/router.h"
#include "server/server.h"

typedef struct httplogger {
    h2o_logger_t super; /* first: h2o hands this back */
    int access;         /* the access log is on */
    int fd;             /* its file, or -1 for stderr through log.h */
} httplogger_t;

static int access_fd = -1;

/* The route's index in the router's table, or route_count() for any other path. */
static size_t route_of(h2o_req_t *req)
{
    int64_t id;
    int status;
    const char *why;
    char allow[64];
    const route_t *rt = route_find(tess_strn(req->method.base, req->method.len),
                                   tess_strn(req->path_normalized.base, req->path_normalized.len), &id, &status, &why,
                                   allow, sizeof(allow));
    return rt == NULL ? route_count() : (size_t)(rt - route_at(0));
}

static int64_t usec_between(const struct timeval *a, const struct timeval *b)
{
    return ((int64_t)b->tv_sec - a->tv_sec) * 1000000 + ((int64_t)b->tv_usec - a->tv_usec);
}

static void access_line(httplogger_t *self, server_thread_t *th, h2o_req_t *req)
{
    /* The path without its query string: a query may carry a token. */
    const char *path = req->path.base != NULL ? req->path.base : "";
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    char method[16], pathbuf[1024], line[LOG_LINE_MAX];
    struct timeval end = req->timestamps.response_end_at;
    int64_t us = 0;
    size_t len;

    if (h2o_timeval_is_null(&end))
        gettimeofday(&end, NULL);
    if (!h2o_timeval_is_null(&req->timestamps.request_begin_at))
        us = usec_between(&req->timestamps.request_begin_at, &end);
    snprintf(method, sizeof(method), "%.*s", (int)(req->method.len < 15 ? req->method.len : 15), req->method.base);
    if (plen >= sizeof(pathbuf))
        plen = sizeof(pathbuf) - 1;
    memcpy(pathbuf, path, plen);
    pathbuf[plen] = '\0';
    log_field_t f[] = {
        {"method", method, 0},
        {"path", pathbuf, 0},
        {"status", NULL, req->res.status},
        {"bytes", NULL, (long long)req->bytes_sent},
        {"duration_us", NULL, (long long)us},
        {"thread", NULL, th->index},
    };
    if (self->fd < 0) {
        log_event(LOG_INFO, "access", NULL, f, sizeof(f) / sizeof(f[0]));
        return;
    }
    len = log_format_line(line, sizeof(line), log_is_json(), (long long)tess_now_ms(), LOG_INFO, "access", NULL, f,
                          sizeof(f) / sizeof(f[0]));
    if (write(self->fd, line, len) < 0) {
        /* A full disk must not stop the answers; the lost line is the cost. */
    }
}

static void on_log(h2o_logger_t *super, h2o_req_t *req)
{
    httplogger_t *self = (httplogger_t *)super;
    server_thread_t *th = tess_thread_of(req);
    int cls = req->res.status / 100;
    if (th == NULL)
        return;
    if (cls >= 1 && cls <= 5)
        atomic_fetch_add_explicit(&th->http.n[route_of(req)][cls - 1], 1, memory_order_relaxed);
    if (self->access)
        access_line(self, th, req);
}

int httpstats_register(server_t *srv, h2o_pathconf_t *path, const char *access_log, char *err, size_t errcap)
{
    httplogger_t *self;
    (void)srv;
    if (route_count() + 1 > HTTPSTATS_ROUTES) {
        snprintf(err, errcap, "internal: HTTPSTATS_ROUTES is %d, the router has %zu routes and other paths",
                 HTTPSTATS_ROUTES, route_count());
        return -1;
    }
    self = (httplogger_t *)h2o_create_logger(path, sizeof(*self));
    self->super.log_access = on_log;
    self->fd = -1;
    self->access = access_log[0] != '\0' && strcmp(access_log, "off") != 0;
    if (self->access && strcmp(access_log, "on") != 0) {
        self->fd = open(access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (self->fd < 0) {
            snprintf(err, errcap, "cannot open the access log %s: %s", access_log, strerror(errno));
            self->access = 0;
            return -1;
        }
        access_fd = self->fd;
    }
    return 0;
}

void httpstats_close(void)
{
    if (access_fd >= 0)
        close(access_fd);
    access_fd = -1;
}

size_t httpstats_metrics(server_t *srv, char *buf, size_t len, size_t cap)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    if (len < cap)
        len +=
            (size_t)snprintf(buf + len, cap - len,
                             "# HELP tessera_http_requests_total HTTP requests answered, by route and status class.\n"
                             "# TYPE tessera_http_requests_total counter\n");
    for (size_t r = 0; r <= route_count(); ++r) {
        const route_t *rt = r < route_count() ? route_at(r) : NULL;
        char route[96];
        if (rt == NULL)
            snprintf(route, sizeof(route), "other");
        else
            snprintf(route, sizeof(route), "%s%s%s", rt->prefix, rt->suffix != NULL ? "{id}" : "",
                     rt->suffix != NULL ? rt->suffix : "");
        for (int c = 0; c < HTTPSTATS_CLASSES; ++c) {
            uint64_t sum = 0;
            for (int t = 0; t < srv->cfg.threads; ++t)
                sum += atomic_load_explicit(&srv->threads[t].http.n[r][c], memory_order_relaxed);
            /* Every route's 2xx, 4xx and 5xx are always shown (a rate needs the zero); 1xx and 3xx once seen. */
            if (sum == 0 && (c == 0 || c == 2))
                continue;
            if (len < cap)
                len += (size_t)snprintf(buf + len, cap - len,
                                        "tessera_http_requests_total{method=\"%s\",route=\"%s\",code=\"%s\"} %llu\n",
                                        rt != NULL ? rt->method : "any", route, classes[c], (unsigned long long)sum);
        }
    }
    return len;
}
