/*
 * poll()-based tess_loop_t for tests. Watchers and timers live in two lists; freed entries are marked dead
 * and swept when no iteration is running, so callbacks may free anything (themselves included).
 */
#include <poll.h>
#include <stdlib.h>

#include "tessera/pollloop.h"
#include "tessera/common.h"

struct tess_io {
    struct tess_io *next;   /* list link */
    tess_poll_loop_t *loop; /* owner */
    int fd;                 /* watched fd (not owned) */
    int events;             /* TESS_IO_* enabled */
    int dead;               /* freed, awaiting sweep */
    tess_io_cb cb;          /* readiness callback */
    void *arg;              /* its argument */
};

struct tess_timer {
    struct tess_timer *next; /* list link */
    tess_poll_loop_t *loop;  /* owner */
    int armed;               /* running */
    int dead;                /* freed, awaiting sweep */
    uint64_t seq;            /* bumped on each start (a restart inside a callback is a new shot) */
    int64_t due;             /* tess_mono_ms() deadline */
    tess_timer_cb cb;        /* expiry callback */
    void *arg;               /* its argument */
};

struct tess_poll_loop {
    tess_loop_t base;       /* first member */
    struct tess_io *ios;    /* watchers */
    struct tess_timer *tms; /* timers */
    int running;            /* inside tess_poll_loop_run_once */
};

static tess_io_t *io_new(tess_loop_t *loop, int fd, tess_io_cb cb, void *arg)
{
    tess_poll_loop_t *l = (tess_poll_loop_t *)loop;
    tess_io_t *io = calloc(1, sizeof(*io));
    if (io == NULL)
        return NULL;
    io->loop = l;
    io->fd = fd;
    io->cb = cb;
    io->arg = arg;
    io->next = l->ios;
    l->ios = io;
    return io;
}

static void io_set(tess_io_t *io, int events)
{
    io->events = events;
}

static void sweep(tess_poll_loop_t *l)
{
    for (tess_io_t **pp = &l->ios; *pp != NULL;) {
        tess_io_t *io = *pp;
        if (io->dead) {
            *pp = io->next;
            free(io);
        } else {
            pp = &io->next;
        }
    }
    for (tess_timer_t **pp = &l->tms; *pp != NULL;) {
        tess_timer_t *t = *pp;
        if (t->dead) {
            *pp = t->next;
            free(t);
        } else {
            pp = &t->next;
        }
    }
}

static void io_free(tess_io_t *io)
{
    if (io == NULL)
        return;
    io->dead = 1;
    io->events = 0;
    if (!io->loop->running)
        sweep(io->loop);
}

static tess_timer_t *timer_new(tess_loop_t *loop, tess_timer_cb cb, void *arg)
{
    tess_poll_loop_t *l = (tess_poll_loop_t *)loop;
    tess_timer_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->loop = l;
    t->cb = cb;
    t->arg = arg;
    t->next = l->tms;
    l->tms = t;
    return t;
}

static void timer_start(tess_timer_t *t, uint64_t ms)
{
    t->armed = 1;
    t->seq++;
    t->due = tess_mono_ms() + (int64_t)ms;
}

static void timer_stop(tess_timer_t *t)
{
    t->armed = 0;
}

static void timer_free(tess_timer_t *t)
{
    if (t == NULL)
        return;
    t->dead = 1;
    t->armed = 0;
    if (!t->loop->running)
        sweep(t->loop);
}

static const tess_loop_ops_t poll_ops = {
    .io_new = io_new,
    .io_set = io_set,
    .io_free = io_free,
    .timer_new = timer_new,
    .timer_start = timer_start,
    .timer_stop = timer_stop,
    .timer_free = timer_free,
};

tess_poll_loop_t *tess_poll_loop_new(void)
{
    tess_poll_loop_t *l = calloc(1, sizeof(*l));
    if (l != NULL)
        l->base.ops = &poll_ops;
    return l;
}

tess_loop_t *tess_poll_loop_base(tess_poll_loop_t *l)
{
    return &l->base;
}

void tess_poll_loop_free(tess_poll_loop_t *l)
{
    if (l == NULL)
        return;
    for (tess_io_t *io = l->ios; io != NULL; io = io->next)
        io->dead = 1;
    for (tess_timer_t *t = l->tms; t != NULL; t = t->next)
        t->dead = 1;
    sweep(l);
    free(l);
}

int tess_poll_loop_live_ios(const tess_poll_loop_t *l)
{
    int n = 0;
    for (const tess_io_t *io = l->ios; io != NULL; io = io->next)
        n += !io->dead;
    return n;
}

int tess_poll_loop_armed_timers(const tess_poll_loop_t *l)
{
    int n = 0;
    for (const tess_timer_t *t = l->tms; t != NULL; t = t->next)
        n += !t->dead && t->armed;
    return n;
}

void tess_poll_loop_run_once(tess_poll_loop_t *l, int max_wait_ms)
{
    struct pollfd fds[64];
    tess_io_t *who[64];
    struct {
        tess_timer_t *t;
        uint64_t seq;
    } due[64];
    int nfds = 0, ndue = 0, wait = max_wait_ms;
    int64_t now = tess_mono_ms();

    l->running++;
    for (tess_io_t *io = l->ios; io != NULL && nfds < 64; io = io->next) {
        if (io->dead || io->events == 0)
            continue;
        fds[nfds].fd = io->fd;
        fds[nfds].events =
            (short)(((io->events & TESS_IO_READ) ? POLLIN : 0) | ((io->events & TESS_IO_WRITE) ? POLLOUT : 0));
        fds[nfds].revents = 0;
        who[nfds++] = io;
    }
    for (tess_timer_t *t = l->tms; t != NULL; t = t->next) {
        if (!t->dead && t->armed) {
            int64_t left = t->due - now;
            if (left < 0)
                left = 0;
            if (left < wait)
                wait = (int)left;
        }
    }
    if (poll(fds, (nfds_t)nfds, wait < 0 ? 0 : wait) > 0) {
        for (int i = 0; i < nfds; ++i) {
            tess_io_t *io = who[i];
            int ev = 0;
            if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
                ev |= TESS_IO_READ;
            if (fds[i].revents & (POLLOUT | POLLHUP | POLLERR))
                ev |= TESS_IO_WRITE;
            ev &= io->events; /* what is still wanted (an earlier callback may have changed it) */
            if (ev != 0 && !io->dead)
                io->cb(io->arg, ev);
        }
    }
    now = tess_mono_ms();
    for (tess_timer_t *t = l->tms; t != NULL && ndue < 64; t = t->next) {
        if (!t->dead && t->armed && t->due <= now) {
            due[ndue].t = t;
            due[ndue++].seq = t->seq;
        }
    }
    for (int i = 0; i < ndue; ++i) {
        tess_timer_t *t = due[i].t;
        if (!t->dead && t->armed && t->seq == due[i].seq) {
            t->armed = 0;
            t->cb(t->arg);
        }
    }
    if (--l->running == 0)
        sweep(l);
}

int tess_poll_loop_run_until(tess_poll_loop_t *l, int (*pred)(void *arg), void *arg, int64_t timeout_ms)
{
    int64_t deadline = tess_mono_ms() + timeout_ms;

    for (;;) {
        int64_t left;
        if (pred != NULL && pred(arg))
            return 1;
        left = deadline - tess_mono_ms();
        if (left <= 0)
            return pred != NULL ? pred(arg) != 0 : 1;
        tess_poll_loop_run_once(l, left > 50 ? 50 : (int)left);
    }
}
