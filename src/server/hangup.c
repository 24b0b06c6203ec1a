/*
 * Hang-up watches of held requests (hangup.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "server/hangup.h"

struct hangup {
    tess_loop_t *loop; /* the request's loop */
    tess_io_t *io;     /* readability of a dup of the client socket */
    int fd;            /* the client socket itself (h2o's), to peek at */
    hangup_cb cb;      /* the hang-up */
    void *arg;         /* its argument */
};

static void on_readable(void *arg, int events)
{
    hangup_t *h = arg;
    char c;
    ssize_t n;
    (void)events;
    n = recv(h->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) {
        h->loop->ops->io_set(h->io, 0); /* a pipelined request: h2o reads it after this answer */
        return;
    }
    h->loop->ops->io_set(h->io, 0);
    h->cb(h->arg); /* may free h */
}

hangup_t *hangup_watch(server_thread_t *th, h2o_req_t *req, hangup_cb cb, void *arg)
{
    tess_loop_t *loop = &th->tloop.super;
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    hangup_t *h;

    if (sock == NULL || (h = calloc(1, sizeof(*h))) == NULL)
        return NULL;
    h->loop = loop;
    h->fd = h2o_socket_get_fd(sock);
    h->cb = cb;
    h->arg = arg;
    if ((h->io = loop->ops->io_new(loop, h->fd, on_readable, h)) == NULL) {
        free(h);
        return NULL;
    }
    loop->ops->io_set(h->io, TESS_IO_READ);
    return h;
}

void hangup_free(hangup_t *h)
{
    if (h == NULL)
        return;
    h->loop->ops->io_free(h->io);
    free(h);
}
