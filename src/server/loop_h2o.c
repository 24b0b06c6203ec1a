/*
 * tess_loop_ops for h2o's evloop: what the Redis and PostgreSQL stores are driven by.
 *
 * A watched fd is dup()ed into an h2o socket opened with H2O_SOCKET_FLAG_DONT_READ, so h2o only reports
 * readiness and never reads from, writes to or closes the client library's own descriptor.
 * A timer is an h2o_timeout_t of its own (h2o 2.2 timeouts have one fixed duration each).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
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

/*
 * post(): a mutex-guarded FIFO and an eventfd. Not h2o_multithread: its queue reads the eventfd through an
 * h2o socket buffer whose recycler is the thread-local one of the thread that created the queue (here the
 * main thread, for every loop), so all loops would push and pop one unsynchronized free list (TSan: a read()
 * on one loop into a chunk allocated by another). h2o only watches our eventfd; we read it ourselves.
 */
struct tess_h2o_post {
    struct tess_h2o_post *next; /* FIFO link */
    tess_timer_cb fn;           /* what to run */
    void *arg;                  /* its argument */
};

/* Takes every post (all of them, in order); runs them outside the lock, as a post may post again. */
static void run_posts(tess_h2o_loop_t *l)
{
    struct tess_h2o_post *m;

    pthread_mutex_lock(&l->posts_mu);
    m = l->posts_head;
    l->posts_head = l->posts_tail = NULL;
    pthread_mutex_unlock(&l->posts_mu);
    while (m != NULL) {
        struct tess_h2o_post *next = m->next;
        m->fn(m->arg);
        free(m);
        m = next;
    }
}

static void on_wake(h2o_socket_t *sock, const char *err)
{
    tess_h2o_loop_t *l = sock->data;
    uint64_t n;
    (void)err;
    /* Drain first: a post that lands after the drain finds the list empty again and writes once more. */
    while (read(l->wake_fd, &n, sizeof(n)) < 0 && errno == EINTR)
        ;
    run_posts(l);
}

static void post(tess_loop_t *loop, tess_timer_cb fn, void *arg)
{
    tess_h2o_loop_t *l = (tess_h2o_loop_t *)loop;
    struct tess_h2o_post *m = calloc(1, sizeof(*m));
    uint64_t one = 1;
    int was_empty;

    if (m == NULL)
        h2o_fatal("out of memory");
    m->fn = fn;
    m->arg = arg;
    pthread_mutex_lock(&l->posts_mu);
    was_empty = l->posts_head == NULL;
    if (l->posts_tail != NULL)
        l->posts_tail->next = m;
    else
        l->posts_head = m;
    l->posts_tail = m;
    pthread_mutex_unlock(&l->posts_mu);
    /* Only the post that made the list non-empty wakes the loop; the loop takes the whole list. */
    if (was_empty)
        while (write(l->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
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
    int dupfd;

    l->super.ops = &h2o_loop_ops;
    l->loop = loop;
    l->posts_head = l->posts_tail = NULL;
    pthread_mutex_init(&l->posts_mu, NULL);
    if ((l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 || (dupfd = dup(l->wake_fd)) < 0)
        h2o_fatal("eventfd/dup for posts failed"); /* as h2o_multithread_create_queue does (abort) */
    l->wake = h2o_evloop_socket_create(loop, dupfd, H2O_SOCKET_FLAG_DONT_READ);
    l->wake->data = l;
    h2o_socket_read_start(l->wake, on_wake);
}

void tess_h2o_loop_dispose(tess_h2o_loop_t *l)
{
    if (l->wake == NULL)
        return;
    run_posts(l);
    h2o_socket_read_stop(l->wake);
    h2o_socket_close(l->wake); /* closes the dup only */
    l->wake = NULL;
    close(l->wake_fd);
    l->wake_fd = -1;
    pthread_mutex_destroy(&l->posts_mu);
}
