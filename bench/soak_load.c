/*
 * soak_load: mixed pre-chat traffic against one tessera on loopback, at a fixed request rate or as fast as
 * it answers. One thread, epoll, HTTP/1.1 keep-alive; bounded by --seconds. Used by bench/soak.
 *
 *   soak_load --port P --users FILE --seconds S (--rate R | --max) [--conns C] [--streams K]
 *             [--stream-seconds T] [--login-rate L] [--progress N] [--mix P,S,L,W]
 *     FILE   one line per user: "<name> <password> <pre-chat id> <Cookie header value>"; the cookie is a
 *            session of that user that stays logged in, the pre-chat one the user opened
 *     R      requests a second over the C keep-alive connections (open loop: sent on schedule, whether or not
 *            the previous answers came back, as far as an idle connection allows); --max: each connection
 *            sends again as soon as it is answered (closed loop), which measures the maximum
 *
 * The C connections send, chosen at random per request (per mille): 880 polls of GET /api/prechats/{id}/meta
 * with the If-None-Match of the last answer of that connection (304 or 200), 50 GET /api/auth/session,
 * 40 GET .../messages?after=<newest id seen - 20>, 30 POST .../messages (--mix: other per mille, summing to
 * 1000). Besides them, at L a second (a fixed rate: a login costs an argon2id verification on the server's
 * password workers, which do not scale with the rate), one connection runs a session's life: POST
 * /api/auth/login, a poll with the new session, POST /api/auth/logout, then GET /api/auth/session with the
 * logged-out cookie, which must be 401. K event streams (GET .../events) stay open T seconds each, are closed
 * by the client and reopened with Last-Event-ID.
 *
 * Every answer is checked: a status other than the expected one, a connection closed under a request, a
 * request unanswered after 10 s, a stream that ends by itself or a 200 for a logged-out session is an error
 * (the first 20 are printed on stderr). Every N seconds (default 10) a progress line goes to stderr; at the
 * end (or on SIGTERM/SIGINT) one line of key=value to stdout: requests, rate, errors (and by kind), the counts
 * per request kind, answers 503 and other 5xx,
 * events, latency p50/p99/max in µs, and late (scheduled sends that left more than 100 ms late: the rate was
 * not reached).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_USERS 1000
#define BUF 65536
#define REQ_TIMEOUT_NS 10000000000LL
#define LATE_NS 100000000LL

enum kind { K_POLL, K_SESSION, K_LIST, K_POST, K_LOGIN, K_CHURN_POLL, K_LOGOUT, K_AFTER_LOGOUT, K_STREAM, K_N };
static const char *kind_name[K_N] = {"polls",  "sessions", "lists",        "posts",  "logins",
                                     "cpolls", "logouts",  "afterlogouts", "streams"};
enum role { R_MIX, R_CHURN, R_STREAM };

typedef struct user {
    char name[64], password[64];
    int64_t prechat;
    char cookie[1024];
    int64_t newest; /* newest message id seen in this pre-chat */
} user_t;

typedef struct conn {
    int fd;
    int role;
    int kind;      /* of the request out (busy) */
    int busy;      /* a request is out */
    int user;      /* index into users */
    int64_t sent;  /* mono ns the request out was sent */
    int64_t next;  /* churn: next life; stream: when to close it */
    char etag[48]; /* mix: the last ETag seen (one connection polls many pre-chats: per user below) */
    char churn_cookie[1024];
    int64_t last_event;
    char *in;
    size_t in_len;
    int answered; /* answers read on this connection since it was opened */
    struct conn *next_idle;
} conn_t;

static user_t users[MAX_USERS];
static char user_etag[MAX_USERS][48];
static int nusers, port, max_mode;
static int mix[4] = {880, 50, 40, 30}; /* per mille: polls, sessions, lists, posts (--mix) */
static int64_t t_start, t_end;
static volatile sig_atomic_t stopping;
static uint64_t st_503, st_5xx; /* answers 503, and other 5xx */
static uint64_t requests, errors, err_status, err_io, err_timeout, err_loggedout, late, events, count[K_N], p304;
/*
 * Requests sent on a keep-alive connection just as the server closed it for idleness (no byte of an answer,
 * the connection had answered before): what RFC 9112 9.3.1 lets a client retry, and what browsers retry. Not
 * an error; reported apart.
 */
static uint64_t keepalive_races;
static uint32_t *lat;
static size_t nlat, caplat;
static int reported;
static conn_t *idle;
static int ep;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

/* Counts the answer's status class; every status reaches here once. */
static void count_status(int status)
{
    if (status == 503)
        st_503++;
    else if (status >= 500)
        st_5xx++;
}

static void fail(uint64_t *kind_counter, const char *fmt, ...)
{
    va_list ap;
    errors++;
    (*kind_counter)++;
    if (reported++ >= 20)
        return;
    fprintf(stderr, "soak_load: error: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void record_latency(int64_t d)
{
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 1 << 20;
        if ((lat = realloc(lat, caplat * sizeof(*lat))) == NULL)
            abort();
    }
    lat[nlat++] = d / 1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(d / 1000);
}

static int open_fd(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->busy = 0;
    c->in_len = 0;
    c->answered = 0;
}

/* (Re)connects c; 0 or -1 (counted as an I/O error). */
static int conn_open(conn_t *c)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if ((c->fd = open_fd()) < 0) {
        fail(&err_io, "connect: %s", strerror(errno));
        return -1;
    }
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void make_idle(conn_t *c)
{
    if (c->role == R_MIX) {
        c->next_idle = idle;
        idle = c;
    }
}

static void send_raw(conn_t *c, int kind, const char *req, size_t n)
{
    if (c->fd < 0 && conn_open(c) != 0)
        return; /* the connection is retried on the next send */
    c->kind = kind;
    c->busy = 1;
    c->sent = now_ns();
    count[kind]++;
    while (n > 0) {
        ssize_t w = write(c->fd, req, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) { /* the socket buffer of a request this small is never full: the connection is gone */
            fail(&err_io, "write (%s): %s", kind_name[kind], w < 0 ? strerror(errno) : "closed");
            conn_close(c);
            return;
        }
        req += w;
        n -= (size_t)w;
    }
}

static void send_get(conn_t *c, int kind, const char *path, const char *cookie, const char *extra)
{
    char req[2048];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: soak\r\nCookie: %s\r\n%s\r\n", path, cookie, extra);
    send_raw(c, kind, req, (size_t)n);
}

static void send_post(conn_t *c, int kind, const char *path, const char *cookie, const char *body)
{
    char req[2048];
    int n = snprintf(req, sizeof(req),
                     "POST %s HTTP/1.1\r\nHost: soak\r\n%s%s%sContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     path, cookie ? "Cookie: " : "", cookie ? cookie : "", cookie ? "\r\n" : "", strlen(body), body);
    send_raw(c, kind, req, (size_t)n);
}

static void send_mix(conn_t *c)
{
    int r = rand() % 1000, u = rand() % nusers;
    char path[128], extra[96] = "";
    c->user = u;
    if (r < mix[0]) {
        snprintf(path, sizeof(path), "/api/prechats/%lld/meta", (long long)users[u].prechat);
        if (user_etag[u][0])
            snprintf(extra, sizeof(extra), "If-None-Match: %s\r\n", user_etag[u]);
        send_get(c, K_POLL, path, users[u].cookie, extra);
    } else if (r < mix[0] + mix[1]) {
        send_get(c, K_SESSION, "/api/auth/session", users[u].cookie, "");
    } else if (r < mix[0] + mix[1] + mix[2]) {
        int64_t after = users[u].newest > 20 ? users[u].newest - 20 : 0;
        snprintf(path, sizeof(path), "/api/prechats/%lld/messages?after=%lld&limit=20", (long long)users[u].prechat,
                 (long long)after);
        send_get(c, K_LIST, path, users[u].cookie, "");
    } else {
        snprintf(path, sizeof(path), "/api/prechats/%lld/messages", (long long)users[u].prechat);
        send_post(c, K_POST, path, users[u].cookie, "{\"body\":\"soak message\"}");
    }
}

static void send_stream(conn_t *c, int64_t t, int64_t hold_ns)
{
    char path[128], extra[64] = "";
    snprintf(path, sizeof(path), "/api/prechats/%lld/events", (long long)users[c->user].prechat);
    if (c->last_event > 0)
        snprintf(extra, sizeof(extra), "Last-Event-ID: %lld\r\n", (long long)c->last_event);
    send_get(c, K_STREAM, path, users[c->user].cookie, extra);
    c->next = t + hold_ns;
}

/* Header value of name (case-insensitive) in the head [h, h+n); copies at most cap-1 bytes; 0 if absent. */
static int header(const char *h, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = h, *end = h + n;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *ve = eol;
            while (v < ve && *v == ' ')
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            size_t len = (size_t)(ve - v) < cap - 1 ? (size_t)(ve - v) : cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}

static int64_t json_id(const char *body, size_t n)
{
    const char *p = memmem(body, n, "\"id\":", 5);
    return p != NULL ? strtoll(p + 5, NULL, 10) : 0;
}

static void churn_next(conn_t *c, int status, const char *head, size_t hn, int64_t t)
{
    user_t *u = &users[c->user];
    char path[128], v[1024];
    switch (c->kind) {
    case K_LOGIN:
        if (status != 200 || !header(head, hn, "set-cookie", v, sizeof(v))) {
            fail(&err_status, "login %s: %d", u->name, status);
            c->next = t + 1000000000LL;
            return;
        }
        v[strcspn(v, ";")] = '\0';
        snprintf(c->churn_cookie, sizeof(c->churn_cookie), "%s", v);
        snprintf(path, sizeof(path), "/api/prechats/%lld/meta", (long long)u->prechat);
        send_get(c, K_CHURN_POLL, path, c->churn_cookie, "");
        return;
    case K_CHURN_POLL:
        if (status != 200)
            fail(&err_status, "poll with a new session: %d", status);
        send_post(c, K_LOGOUT, "/api/auth/logout", c->churn_cookie, "");
        return;
    case K_LOGOUT:
        if (status != 204)
            fail(&err_status, "logout: %d", status);
        send_get(c, K_AFTER_LOGOUT, "/api/auth/session", c->churn_cookie, "");
        return;
    case K_AFTER_LOGOUT:
        if (status == 200)
            fail(&err_loggedout, "a logged-out session answered 200");
        else if (status != 401)
            fail(&err_status, "session after logout: %d", status);
        return; /* the next life starts on its schedule */
    }
}

/* One complete answer on a mix or churn connection: [head, head+hn) and the body [body, body+bn). */
static void on_answer(conn_t *c, int status, const char *head, size_t hn, const char *body, size_t bn, int64_t t)
{
    int kind = c->kind;
    char etag[48];
    requests++;
    count_status(status);
    record_latency(t - c->sent);
    c->busy = 0;
    c->answered++;
    if (c->role == R_CHURN) {
        churn_next(c, status, head, hn, t);
        return;
    }
    user_t *u = &users[c->user];
    switch (kind) {
    case K_POLL:
        if (status == 304) {
            p304++;
        } else if (status == 200 && header(head, hn, "etag", etag, sizeof(etag))) {
            memcpy(user_etag[c->user], etag, sizeof(etag));
        } else {
            fail(&err_status, "poll %lld: %d %.*s", (long long)u->prechat, status, (int)(bn > 200 ? 200 : bn), body);
        }
        break;
    case K_SESSION:
    case K_LIST:
        if (status != 200)
            fail(&err_status, "%s: %d %.*s", kind_name[kind], status, (int)(bn > 200 ? 200 : bn), body);
        break;
    case K_POST:
        if (status != 201) {
            fail(&err_status, "post: %d %.*s", status, (int)(bn > 200 ? 200 : bn), body);
        } else {
            int64_t id = json_id(body, bn);
            if (id > u->newest)
                u->newest = id;
        }
        break;
    }
    make_idle(c);
}

/* Parses what c->in holds: complete answers (Content-Length or none) or, on a stream, its events. */
static void on_input(conn_t *c, int64_t t)
{
    for (;;) {
        char *end;
        if (c->role == R_STREAM && c->kind == K_STREAM && !c->busy) {
            /* the stream's body (chunked; chunk sizes are lines of their own and match nothing below) */
            char *s = c->in, *stop = c->in + c->in_len, *nl;
            while ((nl = memchr(s, '\n', (size_t)(stop - s))) != NULL) {
                if (nl - s > 4 && memcmp(s, "id: ", 4) == 0)
                    c->last_event = strtoll(s + 4, NULL, 10);
                else if (nl - s >= 14 && memcmp(s, "event: message", 14) == 0)
                    events++;
                s = nl + 1;
            }
            memmove(c->in, s, (size_t)(stop - s));
            c->in_len = (size_t)(stop - s);
            return;
        }
        if ((end = memmem(c->in, c->in_len, "\r\n\r\n", 4)) == NULL)
            return;
        size_t head = (size_t)(end - c->in) + 4, body = 0;
        int status = c->in_len > 12 ? atoi(c->in + 9) : 0;
        char v[32];
        if (c->role == R_STREAM) {
            requests++;
            count_status(status);
            record_latency(t - c->sent);
            c->busy = 0;
            if (status != 200)
                fail(&err_status, "stream: %d", status);
            memmove(c->in, c->in + head, c->in_len - head);
            c->in_len -= head;
            continue;
        }
        if (header(c->in, head, "content-length", v, sizeof(v)))
            body = (size_t)strtoul(v, NULL, 10);
        if (head + body > BUF) {
            int was_busy = c->busy;
            fail(&err_io, "an answer of %zu bytes", head + body);
            conn_close(c);
            if (was_busy)
                make_idle(c);
            return;
        }
        if (c->in_len < head + body)
            return;
        if (!c->busy) {
            fail(&err_io, "an answer nobody asked for: %d", status);
        } else {
            on_answer(c, status, c->in, head, c->in + head, body, t);
        }
        memmove(c->in, c->in + head + body, c->in_len - head - body);
        c->in_len -= head + body;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr, "usage: soak_load --port P --users FILE --seconds S (--rate R | --max) [--conns C] [--streams K] "
                    "[--stream-seconds T] [--login-rate L] [--progress N] [--mix P,S,L,W]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *users_file = NULL;
    int seconds = 0, nconns = 64, nstreams = 20, stream_secs = 20, progress = 10;
    double rate = 0, login_rate = 1;
    char line[2048];
    struct rlimit rl;
    FILE *f;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--max") == 0) {
            max_mode = 1;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--port") == 0)
            port = atoi(v);
        else if (strcmp(a, "--users") == 0)
            users_file = v;
        else if (strcmp(a, "--seconds") == 0)
            seconds = atoi(v);
        else if (strcmp(a, "--rate") == 0)
            rate = atof(v);
        else if (strcmp(a, "--conns") == 0)
            nconns = atoi(v);
        else if (strcmp(a, "--streams") == 0)
            nstreams = atoi(v);
        else if (strcmp(a, "--stream-seconds") == 0)
            stream_secs = atoi(v);
        else if (strcmp(a, "--login-rate") == 0)
            login_rate = atof(v);
        else if (strcmp(a, "--progress") == 0)
            progress = atoi(v);
        else if (strcmp(a, "--mix") == 0) {
            if (sscanf(v, "%d,%d,%d,%d", &mix[0], &mix[1], &mix[2], &mix[3]) != 4 || mix[0] < 0 || mix[1] < 0 ||
                mix[2] < 0 || mix[3] < 0 || mix[0] + mix[1] + mix[2] + mix[3] != 1000)
                usage();
        } else
            usage();
    }
    if (port <= 0 || seconds <= 0 || (!max_mode && rate <= 0) || nconns <= 0 || nstreams < 0 || stream_secs <= 0 ||
        login_rate < 0 || users_file == NULL || progress <= 0)
        usage();
    if ((f = fopen(users_file, "r")) == NULL) {
        fprintf(stderr, "soak_load: %s: %s\n", users_file, strerror(errno));
        return 2;
    }
    while (nusers < MAX_USERS && fgets(line, sizeof(line), f) != NULL) {
        user_t *u = &users[nusers];
        int off = 0;
        line[strcspn(line, "\r\n")] = '\0';
        long long id;
        if (sscanf(line, "%63s %63s %lld %n", u->name, u->password, &id, &off) != 3 || off == 0 || line[off] == '\0')
            continue;
        u->prechat = id;
        snprintf(u->cookie, sizeof(u->cookie), "%s", line + off);
        nusers++;
    }
    fclose(f);
    if (nusers == 0) {
        fprintf(stderr, "soak_load: no users in %s\n", users_file);
        return 2;
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    srand(12345);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal); /* ends the run early, with its summary */
    signal(SIGINT, on_signal);

    int total = nconns + 1 + nstreams;
    conn_t *conns = calloc((size_t)total, sizeof(*conns));
    if (conns == NULL || (ep = epoll_create1(0)) < 0)
        return 1;
    t_start = now_ns();
    t_end = t_start + (int64_t)seconds * 1000000000LL;
    for (int i = 0; i < total; i++) {
        conn_t *c = &conns[i];
        c->fd = -1;
        c->role = i < nconns ? R_MIX : i == nconns ? R_CHURN : R_STREAM;
        if ((c->in = malloc(BUF)) == NULL)
            return 1;
        if (conn_open(c) != 0) {
            fprintf(stderr, "soak_load: cannot connect to port %d\n", port);
            return 1;
        }
        if (c->role == R_MIX)
            make_idle(c);
        else if (c->role == R_CHURN)
            c->next = t_start;
        else {
            c->user = (i - nconns - 1) % nusers;
            c->next = t_start + (int64_t)(i - nconns - 1) * 1000000000LL * stream_secs / (nstreams ? nstreams : 1);
        }
    }
    /* the streams start spread over one hold time, so that their reopenings are spread too */
    for (int i = nconns + 1; i < total; i++) {
        conn_t *c = &conns[i];
        int64_t first = c->next;
        send_stream(c, t_start, first - t_start + (int64_t)stream_secs * 1000000000LL);
    }

    int64_t period = rate > 0 ? (int64_t)(1e9 / rate) : 0, due = t_start, last_progress = t_start;
    int64_t churn_period = login_rate > 0 ? (int64_t)(1e9 / login_rate) : INT64_MAX;
    uint64_t last_requests = 0, last_errors = 0;
    struct epoll_event evs[512];
    for (;;) {
        int64_t t = now_ns();
        if (t >= t_end || stopping)
            break;
        /* mixed requests: on schedule (open loop) or on every idle connection (--max) */
        while (idle != NULL && (max_mode || due <= t)) {
            conn_t *c = idle;
            idle = c->next_idle;
            if (!max_mode) {
                if (t - due > LATE_NS)
                    late++;
                due += period;
            }
            send_mix(c);
            if (!c->busy) {
                make_idle(c); /* the send failed (counted): the connection is reopened on its next turn */
                break;
            }
        }
        /* churn and streams: on their own schedules; timeouts of every connection */
        for (int i = nconns; i < total; i++) {
            conn_t *c = &conns[i];
            if (c->role == R_CHURN && !c->busy && c->next <= t && churn_period != INT64_MAX) {
                c->user = rand() % nusers;
                char body[256];
                snprintf(body, sizeof(body), "{\"username\":\"%s\",\"password\":\"%s\"}", users[c->user].name,
                         users[c->user].password);
                send_post(c, K_LOGIN, "/api/auth/login", NULL, body);
                c->next += churn_period;
                if (c->next < t)
                    c->next = t + churn_period; /* a life longer than the period: no catching up */
            } else if (c->role == R_STREAM && c->next <= t) {
                conn_close(c); /* the client ends the stream; a new connection resumes it */
                send_stream(c, t, (int64_t)stream_secs * 1000000000LL);
            }
        }
        for (int i = 0; i < total; i++) {
            conn_t *c = &conns[i];
            if (c->busy && c->fd >= 0 && t - c->sent > REQ_TIMEOUT_NS) {
                fail(&err_timeout, "%s unanswered after 10 s", kind_name[c->kind]);
                conn_close(c);
                make_idle(c);
            }
        }
        if (t >= last_progress + (int64_t)progress * 1000000000LL) {
            /* the window [from, to] in seconds since the start, exactly: a caller can tell a clean one */
            fprintf(stderr, "soak_load: from=%.3fs to=%.3fs requests/s=%.0f errors=%llu events=%llu late=%llu\n",
                    (double)(last_progress - t_start) / 1e9, (double)(t - t_start) / 1e9,
                    (double)(requests - last_requests) * 1e9 / (double)(t - last_progress),
                    (unsigned long long)(errors - last_errors), (unsigned long long)events, (unsigned long long)late);
            last_requests = requests;
            last_errors = errors;
            last_progress = t;
        }
        /* at least 1 ms: the sends due meanwhile go out together (no spinning on a shared machine) */
        int timeout_ms = max_mode || idle == NULL ? 5 : (int)((due - t) / 1000000);
        if (timeout_ms < 1)
            timeout_ms = 1;
        if (timeout_ms > 5)
            timeout_ms = 5;
        int n = epoll_wait(ep, evs, 512, timeout_ms);
        t = now_ns();
        for (int k = 0; k < n; ++k) {
            conn_t *c = evs[k].data.ptr;
            if (c->fd < 0)
                continue;
            ssize_t r = read(c->fd, c->in + c->in_len, BUF - c->in_len);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0) {
                /* closed by the server: an error under a request or on a stream; an idle keep-alive
                 * connection closed is only reopened */
                if (c->busy && c->role == R_MIX && c->in_len == 0 && c->answered > 0 && c->kind != K_POST)
                    keepalive_races++; /* a GET into a connection the server was closing: retried */
                else if (c->busy || c->role == R_STREAM)
                    fail(&err_io, "%s: connection %s", kind_name[c->kind], r == 0 ? "closed" : strerror(errno));
                int was_busy = c->busy;
                conn_close(c);
                if (c->role == R_MIX && was_busy)
                    make_idle(c);
                if (c->role == R_STREAM)
                    send_stream(c, t, (int64_t)stream_secs * 1000000000LL);
                continue;
            }
            c->in_len += (size_t)r;
            on_input(c, t);
            if (c->in_len == BUF)
                c->in_len = 0; /* a stream line longer than the buffer: dropped */
        }
    }
    double secs = (double)(now_ns() - t_start) / 1e9;
    qsort(lat, nlat, sizeof(*lat), cmp_u32);
    printf("seconds=%.1f requests=%llu rate=%.0f errors=%llu err_status=%llu err_io=%llu err_timeout=%llu "
           "err_loggedout_200=%llu keepalive_races=%llu late=%llu",
           secs, (unsigned long long)requests, (double)requests / secs, (unsigned long long)errors,
           (unsigned long long)err_status, (unsigned long long)err_io, (unsigned long long)err_timeout,
           (unsigned long long)err_loggedout, (unsigned long long)keepalive_races, (unsigned long long)late);
    for (int k = 0; k < K_N; k++)
        printf(" %s=%llu", kind_name[k], (unsigned long long)count[k]);
    printf(" status_503=%llu status_5xx_other=%llu", (unsigned long long)st_503, (unsigned long long)st_5xx);
    printf(" polls_304=%llu events=%llu lat_p50_us=%u lat_p99_us=%u lat_max_us=%u\n", (unsigned long long)p304,
           (unsigned long long)events, nlat ? lat[nlat / 2] : 0, nlat ? lat[(size_t)((double)nlat * 0.99)] : 0,
           nlat ? lat[nlat - 1] : 0);
    for (int i = 0; i < total; i++)
        conn_close(&conns[i]);
    return 0;
}
