/*
 * The loopback TCP roof of bench/run: round trips of a 128-byte message over keep-alive connections, with no
 * HTTP and no work, one thread and epoll on each side (the shape of tessera's loop and of wrk).
 *
 *   pingpong server PORT                  echoes every message (until SIGTERM)
 *   pingpong client PORT CONNS SECONDS    prints "PINGPONG round_trips=N seconds=S rps=R errors=E"
 *
 * Each client connection has one message in flight, as a wrk connection has one request in flight.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG 128
#define MAX_CONNS 4096

typedef struct conn {
    int fd;      /* the socket */
    size_t have; /* bytes of the current message received */
} conn_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "pingpong: %s: %s\n", what, strerror(errno));
    exit(1);
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static _Noreturn void server(int port)
{
    struct sockaddr_in a = loopback(port);
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0), ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN}, evs[256];
    char buf[MSG * 4];
    if (lfd < 0 || ep < 0)
        die("socket");
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 1024) != 0)
        die("bind");
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    printf("listening %d\n", port);
    fflush(stdout);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c = accept(lfd, NULL, NULL);
                if (c < 0)
                    continue;
                nodelay(c);
                ev.data.fd = c;
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                continue;
            }
            ssize_t r = read(fd, buf, sizeof(buf));
            if (r <= 0) {
                close(fd);
                continue;
            }
            if (write(fd, buf, (size_t)r) != r)
                close(fd);
        }
    }
}

static int client(int port, int nconns, double seconds)
{
    static conn_t conns[MAX_CONNS];
    struct sockaddr_in a = loopback(port);
    struct epoll_event ev = {.events = EPOLLIN}, evs[256];
    char msg[MSG], buf[MSG];
    long trips = 0, errors = 0;
    int ep = epoll_create1(0);
    memset(msg, 'x', sizeof(msg));
    if (nconns < 1 || nconns > MAX_CONNS || ep < 0)
        die("arguments");
    for (int i = 0; i < nconns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            die("connect");
        nodelay(fd);
        conns[i].fd = fd;
        ev.data.ptr = &conns[i];
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        if (write(fd, msg, MSG) != MSG)
            die("write");
    }
    double t0 = now_s(), end = t0 + seconds;
    while (now_s() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            ssize_t r = read(c->fd, buf, MSG - c->have);
            if (r <= 0) {
                errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                continue;
            }
            c->have += (size_t)r;
            if (c->have == MSG) {
                c->have = 0;
                trips++;
                if (write(c->fd, msg, MSG) != MSG)
                    errors++;
            }
        }
    }
    double dt = now_s() - t0;
    printf("PINGPONG round_trips=%ld seconds=%.3f rps=%.0f errors=%ld\n", trips, dt, trips / dt, errors);
    return errors != 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "server") == 0)
        server(atoi(argv[2]));
    if (argc == 5 && strcmp(argv[1], "client") == 0)
        return client(atoi(argv[2]), atoi(argv[3]), atof(argv[4]));
    fprintf(stderr, "usage: pingpong server PORT | pingpong client PORT CONNS SECONDS\n");
    return 2;
}
