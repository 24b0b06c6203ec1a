/*
 * push_load: N browser tabs waiting on pre-chats, and a poster writing one message per pre-chat per second,
 * against one tessera on loopback. One thread, epoll, HTTP/1.1 keep-alive; bounded by --seconds.
 *
 *   push_load MODE --port P --cookies FILE --tabs N --seconds S [--rate R] [--ramp S] [--connect-rate C] [--burst]
 *     MODE     poll      each tab: GET /api/prechats/{id}/meta with If-None-Match once a second (spread)
 *              longpoll  each tab: GET .../meta?wait=30 with If-None-Match, again at once after each answer
 *              sse       each tab: GET .../events, kept open
 *     FILE     one line per pre-chat: "<id> <Cookie header value>" (the tabs of a pre-chat use its cookie)
 *     R        messages per pre-chat per second (default 1; 0: nobody writes)
 *     C        open at most C connections a second during the ramp (default 0: all at once, before it); a
 *              tab polls first right after its connection is open, then at its slot of the second
 *     --burst  poll: every tab polls at the same instant of each second (the synchronized case), not spread
 *
 * poll mode also prints polls_sent (polls sent in the measured window), polls_answered (of those, answered
 * before the end: the run waits 2 s after the window for them) and poll_p50/p99/max_us (lat_* stay wake
 * latencies, none in poll mode), each poll's time
 * from its send to its whole answer; every answer must be 200 or 304; answers_all counts every answer of the
 * run, ramp included.
 *
 * After a ramp (connect, first answers) it measures for S seconds and prints one line of key=value:
 * requests (answers received), events (SSE message events), wakes (long-poll 200s), latency of a wake after
 * the post that caused it (p50/p99 in µs: answer time minus the poster's send time of the newest message of
 * that pre-chat), errors (non-2xx/304 answers, resets), and posts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PRECHATS 1000
#define BUF 65536

enum { M_POLL, M_LONGPOLL, M_SSE };

typedef struct conn {
    int fd;
    int prechat;     /* index into prechats */
    int poster;      /* 1: the poster's connection of this pre-chat */
    int busy;        /* a request is out */
    int64_t next_ns; /* poll/poster: when to send the next request */
    int64_t sent_ns; /* when the request out was sent */
    int open;        /* connected */
    char etag[40];   /* the last ETag seen */
    char *in;        /* received bytes not parsed yet */
    size_t in_len;
} conn_t;

typedef struct prechat {
    int64_t id;
    char cookie[512];
    int64_t last_post_ns; /* send time of the newest message */
} prechat_t;

static prechat_t prechats[MAX_PRECHATS];
static int nprechats, mode, port;
static int64_t measure_from, measure_to;
static uint64_t requests, events, wakes, errors, posts, polls_sent, polls_answered, answers_all;
static uint32_t *lat, *plat; /* wake latencies; poll latencies (poll mode) */
static size_t nlat, caplat, nplat, capplat;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int measuring(int64_t t)
{
    return t >= measure_from && t < measure_to;
}

static void record_latency(int p, int64_t t)
{
    int64_t d = t - prechats[p].last_post_ns;
    if (!measuring(t) || prechats[p].last_post_ns == 0 || d < 0 || d > 5000000000LL)
        return;
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 65536;
        if ((lat = realloc(lat, caplat * sizeof(*lat))) == NULL)
            abort();
    }
    lat[nlat++] = (uint32_t)(d / 1000);
}

static int open_conn(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("push_load: connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static void send_all(conn_t *c, const char *req, size_t n)
{
    while (n > 0) {
        ssize_t w = write(c->fd, req, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            errors++;
            return;
        }
        req += w;
        n -= (size_t)w;
    }
}

static void send_request(conn_t *c)
{
    prechat_t *p = &prechats[c->prechat];
    char req[1024];
    int n;
    if (c->poster) {
        static const char body[] = "{\"body\":\"bench message\"}";
        n = snprintf(req, sizeof(req),
                     "POST /api/prechats/%lld/messages HTTP/1.1\r\nHost: b\r\nCookie: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     (long long)p->id, p->cookie, sizeof(body) - 1, body);
        p->last_post_ns = now_ns();
        posts++;
    } else if (mode == M_SSE) {
        n = snprintf(req, sizeof(req), "GET /api/prechats/%lld/events HTTP/1.1\r\nHost: b\r\nCookie: %s\r\n\r\n",
                     (long long)p->id, p->cookie);
    } else {
        n = snprintf(req, sizeof(req), "GET /api/prechats/%lld/meta%s HTTP/1.1\r\nHost: b\r\nCookie: %s\r\n%s%s%s\r\n",
                     (long long)p->id, mode == M_LONGPOLL ? "?wait=30" : "", p->cookie,
                     c->etag[0] ? "If-None-Match: " : "", c->etag, c->etag[0] ? "\r\n" : "");
    }
    c->busy = 1;
    c->sent_ns = now_ns();
    if (mode == M_POLL && !c->poster && measuring(c->sent_ns))
        polls_sent++;
    send_all(c, req, (size_t)n);
}

/* Parses complete responses (Content-Length or chunked SSE) from c->in. */
static void on_input(conn_t *c, int64_t t)
{
    for (;;) {
        char *end, *p;
        if (mode == M_SSE && !c->poster) {
            /* A stream: count "event: message" lines; drop what was parsed. */
            char *s = c->in, *stop = c->in + c->in_len, *nl;
            while ((nl = memchr(s, '\n', (size_t)(stop - s))) != NULL) {
                if (nl - s >= 14 && memcmp(s, "event: message", 14) == 0) {
                    if (measuring(t))
                        events++;
                    record_latency(c->prechat, t);
                } else if (nl - s >= 12 && memcmp(s, "HTTP/1.1 ", 9) == 0 && memcmp(s + 9, "200", 3) != 0) {
                    errors++;
                }
                s = nl + 1;
            }
            memmove(c->in, s, (size_t)(stop - s));
            c->in_len = (size_t)(stop - s);
            return;
        }
        if ((end = memmem(c->in, c->in_len, "\r\n\r\n", 4)) == NULL)
            return;
        size_t head = (size_t)(end - c->in) + 4, body = 0;
        int status = atoi(c->in + 9);
        if ((p = memmem(c->in, head, "Content-Length: ", 16)) != NULL ||
            (p = memmem(c->in, head, "content-length: ", 16)) != NULL)
            body = (size_t)strtoul(p + 16, NULL, 10);
        if (c->in_len < head + body)
            return;
        if ((p = memmem(c->in, head, "etag: ", 6)) != NULL || (p = memmem(c->in, head, "ETag: ", 6)) != NULL) {
            char *q = memchr(p + 6, '\r', (size_t)(end - p));
            size_t n = q != NULL ? (size_t)(q - p - 6) : 0;
            if (n > 0 && n < sizeof(c->etag)) {
                memcpy(c->etag, p + 6, n);
                c->etag[n] = '\0';
            }
        }
        answers_all++;
        if (measuring(t))
            requests++;
        if (mode == M_POLL && !c->poster && measuring(c->sent_ns)) {
            /* a poll sent in the window: counted when it is answered, however late */
            int64_t d = t - c->sent_ns;
            polls_answered++;
            if (status != 200 && status != 304)
                errors++;
            if (nplat == capplat) {
                capplat = capplat ? capplat * 2 : 65536;
                if ((plat = realloc(plat, capplat * sizeof(*plat))) == NULL)
                    abort();
            }
            plat[nplat++] = (uint32_t)(d / 1000);
        } else if (status != 200 && status != 201 && status != 304) {
            if (measuring(t))
                errors++;
        } else if (mode == M_LONGPOLL && !c->poster && status == 200 && c->etag[0]) {
            if (measuring(t))
                wakes++;
            record_latency(c->prechat, t);
        }
        memmove(c->in, c->in + head + body, c->in_len - head - body);
        c->in_len -= head + body;
        c->busy = 0;
        if (mode == M_LONGPOLL && !c->poster)
            send_request(c); /* at once: the next wait */
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *cookies = NULL;
    int tabs = 1000, seconds = 10, ramp = 5, connect_rate = 0, burst = 0, opened = 0;
    double rate = 1;
    FILE *f;
    char line[1024];
    conn_t *conns;
    int nconns, ep;
    struct rlimit rl;

    if (argc < 2) {
        fprintf(stderr, "usage: push_load poll|longpoll|sse --port P --cookies FILE --tabs N --seconds S [--rate R]\n");
        return 2;
    }
    mode = strcmp(argv[1], "poll") == 0       ? M_POLL
           : strcmp(argv[1], "longpoll") == 0 ? M_LONGPOLL
           : strcmp(argv[1], "sse") == 0      ? M_SSE
                                              : -1;
    if (mode < 0) {
        fprintf(stderr, "push_load: unknown mode %s\n", argv[1]);
        return 2;
    }
    for (int i = 2; i < argc; i += 2) {
        if (strcmp(argv[i], "--burst") == 0) {
            burst = 1;
            --i;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "push_load: %s needs a value\n", argv[i]);
            return 2;
        } else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--cookies") == 0)
            cookies = argv[i + 1];
        else if (strcmp(argv[i], "--tabs") == 0)
            tabs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--ramp") == 0)
            ramp = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--connect-rate") == 0)
            connect_rate = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "push_load: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (port <= 0 || cookies == NULL || (f = fopen(cookies, "r")) == NULL) {
        fprintf(stderr, "push_load: --port and a readable --cookies file are required\n");
        return 2;
    }
    while (nprechats < MAX_PRECHATS && fgets(line, sizeof(line), f) != NULL) {
        char *sp = strchr(line, ' ');
        if (sp == NULL)
            continue;
        line[strcspn(line, "\r\n")] = '\0';
        prechats[nprechats].id = atoll(line);
        snprintf(prechats[nprechats].cookie, sizeof(prechats[nprechats].cookie), "%s", sp + 1);
        nprechats++;
    }
    fclose(f);
    if (nprechats == 0) {
        fprintf(stderr, "push_load: no pre-chats in %s\n", cookies);
        return 2;
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    nconns = tabs + (rate > 0 ? nprechats : 0);
    if ((conns = calloc((size_t)nconns, sizeof(*conns))) == NULL || (ep = epoll_create1(0)) < 0)
        return 1;
    int64_t t0 = now_ns();
    for (int i = 0; i < nconns; ++i) {
        conn_t *c = &conns[i];
        c->in = malloc(BUF);
        c->poster = i >= tabs;
        c->prechat = c->poster ? i - tabs : i % nprechats;
        /* Spread the tabs' first requests over a second, and the posters evenly over their period (one burst
         * of all pre-chats' messages at once would measure the burst's drain time, not a wake). */
        c->next_ns = t0 + (burst ? 0 : (int64_t)((double)i / tabs * 1e9));
        if (c->poster)
            c->next_ns = t0 + (int64_t)ramp * 1000000000LL +
                         (rate > 0 ? (int64_t)((double)c->prechat / nprechats * 1e9 / rate) : 0);
        if (c->in == NULL)
            return 1;
    }
    /* Connect: all at once, or C a second (10,000 connections opened at once would all send their first
     * request in one burst, and wait behind each other). */
    while (opened < nconns) {
        int64_t t = now_ns();
        int upto = connect_rate > 0 ? (int)((double)(t - t0) / 1e9 * connect_rate) + 1 : nconns;
        for (; opened < nconns && opened < upto; ++opened) {
            conn_t *c = &conns[opened];
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            c->fd = open_conn();
            c->open = 1;
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            if (connect_rate > 0 && !c->poster && mode == M_POLL) {
                /* the first poll at once (the connect rate spreads them), or at the next whole second */
                c->next_ns = burst ? t0 + ((t - t0) / 1000000000LL + 1) * 1000000000LL : t;
            }
        }
        if (connect_rate <= 0)
            break;
        /* answer what is already out while connecting */
        struct epoll_event evs0[512];
        int n0 = epoll_wait(ep, evs0, 512, 1);
        for (int k = 0; k < n0; ++k) {
            conn_t *c = evs0[k].data.ptr;
            ssize_t r = read(c->fd, c->in + c->in_len, BUF - c->in_len);
            if (r > 0) {
                c->in_len += (size_t)r;
                on_input(c, now_ns());
            }
        }
        for (int i = 0; i < opened; ++i) {
            conn_t *c = &conns[i];
            if (mode == M_POLL && !c->poster && !c->busy && c->next_ns <= now_ns()) {
                send_request(c);
                c->next_ns += 1000000000LL;
            }
        }
    }
    measure_from = t0 + (int64_t)ramp * 1000000000LL + 500000000LL;
    measure_to = measure_from + (int64_t)seconds * 1000000000LL;

    struct epoll_event evs[512];
    while (now_ns() < measure_to + (mode == M_POLL ? 2000000000LL : 200000000LL)) {
        int64_t t = now_ns();
        /* Timed sends: poll tabs once a second; posters `rate` times a second; first requests of the rest. */
        for (int i = 0; i < nconns; ++i) {
            conn_t *c = &conns[i];
            if (c->busy || c->next_ns > t)
                continue;
            if (c->poster) {
                if (t >= measure_to)
                    continue;
                send_request(c);
                c->next_ns += (int64_t)(1e9 / rate);
            } else if (mode == M_POLL) {
                if (t >= measure_to)
                    continue; /* the window is over: only wait for the answers */
                send_request(c);
                c->next_ns += 1000000000LL;
            } else if (c->next_ns != INT64_MAX) {
                send_request(c);
                c->next_ns = INT64_MAX; /* long-polls re-issue on answers; streams stay open */
            }
        }
        int n = epoll_wait(ep, evs, 512, 5);
        t = now_ns();
        for (int k = 0; k < n; ++k) {
            conn_t *c = evs[k].data.ptr;
            ssize_t r = read(c->fd, c->in + c->in_len, BUF - c->in_len);
            if (r <= 0) {
                if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    if (measuring(t))
                        errors++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    c->open = 0;
                }
                continue;
            }
            c->in_len += (size_t)r;
            on_input(c, t);
            if (c->in_len == BUF)
                c->in_len = 0; /* a stream with nothing we parse: keep going */
        }
    }
    if (nlat > 0) /* qsort(NULL, 0, ...) is undefined */
        qsort(lat, nlat, sizeof(*lat), cmp_u32);
    if (nplat > 0)
        qsort(plat, nplat, sizeof(*plat), cmp_u32);
    printf("mode=%s tabs=%d prechats=%d seconds=%d requests=%llu events=%llu wakes=%llu posts=%llu errors=%llu "
           "lat_n=%zu lat_p50_us=%u lat_p99_us=%u polls_sent=%llu polls_answered=%llu poll_p50_us=%u poll_p99_us=%u "
           "poll_max_us=%u answers_all=%llu\n",
           argv[1], tabs, nprechats, seconds, (unsigned long long)requests, (unsigned long long)events,
           (unsigned long long)wakes, (unsigned long long)posts, (unsigned long long)errors, nlat,
           nlat ? lat[nlat / 2] : 0, nlat ? lat[(size_t)((double)nlat * 0.99)] : 0, (unsigned long long)polls_sent,
           (unsigned long long)polls_answered, nplat ? plat[nplat / 2] : 0,
           nplat ? plat[(size_t)((double)nplat * 0.99)] : 0, nplat ? plat[nplat - 1] : 0,
           (unsigned long long)answers_all);
    for (int i = 0; i < nconns; ++i) {
        if (conns[i].open)
            close(conns[i].fd);
        free(conns[i].in);
    }
    free(conns);
    free(lat);
    free(plat);
    close(ep);
    return 0;
}
