/*
 * tess_loop_ops for h2o's evloop: what the Redis and PostgreSQL stores are driven by.
 *
 * A watched fd is dup()ed into an h2o socket opened with H2O_SOCKET_FLAG_DONT_READ, so h2o only reports
 * readiness and never reads from, writes to or closes the client library's own descriptor.
 * A timer is an h2o_timeout_t of its own (h2o 2.2 timeouts have one fixed duration each).
 */
#include <stdlib.h>
#include <unistd.h>

#include "server/loop_h2o.h"

struct tess_io {
    h2o_socket_t *sock; /* h2o's socket on a dup of the fd */
    tess_io_cb cb;      /* readiness callback */
    void *arg;          /* its argument */
    int events;         /* enabled events */
    int write_armed;    /* h2o_socket_notify_write() is outstanding */
};

struct tess_timer {
    h2o_evloop_t *loop;        /* owning loop */
    h2o_timeout_t timeout;     /* h2o timeout of `ms` */
    h2o_timeout_entry_t entry; /* linked while armed */
    uint64_t ms;               /* duration of `timeout`, 0 before first use */
    tess_timer_cb cb;          /* expiry callback */
    void *arg;                 /* its argument */
};

static h2o_evloop_t *evloop_of(tess_loop_t *loop)
{
    return ((tess_h2o_loop_t *)loop)->loop;
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    tess_io_t *io = sock->data;
    (void)err;
    if (io != NULL && (io->events & TESS_IO_READ) != 0)
        io->cb(io->arg, TESS_IO_READ);
}

static void on_writable(h2o_socket_t *sock, const char *err)
{
    tess_io_t *io = sock->data;
    (void)err;
    if (io == NULL)
        return;
    io->write_armed = 0;
    if ((io->events & TESS_IO_WRITE) != 0)
        io->cb(io->arg, TESS_IO_WRITE);
}

static tess_io_t *io_new(tess_loop_t *loop, int fd, tess_io_cb cb, void *arg)
{
    tess_io_t *io = calloc(1, sizeof(*io));
    int dupfd;

    if (io == NULL)
        return NULL;
    if ((dupfd = dup(fd)) < 0) {
        free(io);
        return NULL;
    }
    io->sock = h2o_evloop_socket_create(evloop_of(loop), dupfd, H2O_SOCKET_FLAG_DONT_READ);
    io->sock->data = io;
    io->cb = cb;
    io->arg = arg;
    return io;
}

static void io_set(tess_io_t *io, int events)
{
    int was = io->events;
    io->events = events;
    if ((events & TESS_IO_READ) && !(was & TESS_IO_READ))
        h2o_socket_read_start(io->sock, on_readable);
    else if (!(events & TESS_IO_READ) && (was & TESS_IO_READ))
        h2o_socket_read_stop(io->sock);
    /* Write interest is one-shot in h2o: arm it when wanted and not armed; a disarm just ignores the shot. */
    if ((events & TESS_IO_WRITE) && !io->write_armed) {
        io->write_armed = 1;
        h2o_socket_notify_write(io->sock, on_writable);
    }
}

static void io_free(tess_io_t *io)
{
    if (io == NULL)
        return;
    io->sock->data = NULL;
    if (io->events & TESS_IO_READ)
        h2o_socket_read_stop(io->sock);
    h2o_socket_close(io->sock); /* closes the dup only */
    free(io);
}

static void on_timeout(h2o_timeout_entry_t *entry)
{
    tess_timer_t *t = H2O_STRUCT_FROM_MEMBER(tess_timer_t, entry, entry);
    t->cb(t->arg);
}

static tess_timer_t *timer_new(tess_loop_t *loop, tess_timer_cb cb, void *arg)
{
    tess_timer_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->loop = evloop_of(loop);
    t->entry.cb = on_timeout;
    t->cb = cb;
    t->arg = arg;
    return t;
}

static void timer_stop(tess_timer_t *t)
{
    if (h2o_timeout_is_linked(&t->entry))
        h2o_timeout_unlink(&t->entry);
}

static void timer_start(tess_timer_t *t, uint64_t ms)
{
    timer_stop(t);
    if (ms == 0)
        ms = 1;
    if (t->ms != ms) {
        if (t->ms != 0)
            h2o_timeout_dispose(t->loop, &t->timeout);
        h2o_timeout_init(t->loop, &t->timeout, ms);
        t->ms = ms;
    }
    h2o_timeout_link(t->loop, &t->timeout, &t->entry);
}

static void timer_free(tess_timer_t *t)
{
    if (t == NULL)
        return;
    timer_stop(t);
    if (t->ms != 0)
        h2o_timeout_dispose(t->loop, &t->timeout);
    free(t);
}

typedef struct post_msg {
    h2o_multithread_message_t super; /* first member */
    tess_timer_cb fn;                /* what to run */
    void *arg;                       /* its argument */
} post_msg_t;

static void on_posts(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        post_msg_t *m = H2O_STRUCT_FROM_MEMBER(post_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        m->fn(m->arg);
        free(m);
    }
}

static void post(tess_loop_t *loop, tess_timer_cb fn, void *arg)
{
    tess_h2o_loop_t *l = (tess_h2o_loop_t *)loop;
    post_msg_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        h2o_fatal("out of memory");
    m->fn = fn;
    m->arg = arg;
    h2o_multithread_send_message(&l->receiver, &m->super);
}

static const tess_loop_ops_t h2o_loop_ops = {
    .io_new = io_new,
    .io_set = io_set,
    .io_free = io_free,
    .timer_new = timer_new,
    .timer_start = timer_start,
    .timer_stop = timer_stop,
    .timer_free = timer_free,
    .post = post,
};

void tess_h2o_loop_init(tess_h2o_loop_t *l, h2o_evloop_t *loop)
{
    l->super.ops = &h2o_loop_ops;
    l->loop = loop;
    l->queue = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(l->queue, &l->receiver, on_posts);
}

void tess_h2o_loop_dispose(tess_h2o_loop_t *l)
{
    if (l->queue == NULL)
        return;
    h2o_multithread_unregister_receiver(l->queue, &l->receiver);
    h2o_multithread_destroy_queue(l->queue);
    l->queue = NULL;
}
