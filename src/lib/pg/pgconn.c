/*
 * One libpq connection on a tess_loop_t: non-blocking connect, pipeline mode, prepared statements, a FIFO
 * of pending queries with deadlines, reconnect with backoff. See pgconn.h for the contract.
 *
 * Result stream in pipeline mode, per query (each followed by its own Sync):
 *   <result> NULL PGRES_PIPELINE_SYNC
 * The head of the FIFO keeps its result until the Sync arrives and completes then, so a callback never
 * reports work that was not committed. NULLs only separate queries; two in a row with the connection not
 * busy means there is nothing more to read.
 *
 * Re-entrancy: every entry point (io, timers, query, close) runs inside enter()/leave(). A callback may
 * queue queries or close the handle; close() inside a callback tears down at once and leave() frees the
 * struct when the outermost entry point returns. `gen` changes on every teardown so loops over the result
 * stream stop when a callback tore the connection down under them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backends.h"
#include "tessera/pgconn.h"
#include "tessera/common.h"
#include "tessera/error.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 500
#define CONNECT_TIMEOUT_MIN_MS 1000
#define MAX_PARAMS 16
#define FREE_CACHE_MAX 1024 /* finished query records kept for reuse */

enum { ST_IDLE, ST_CONNECTING, ST_CONNECTED };

typedef struct pg_query pg_query_t;
struct pg_query {
    pg_query_t *next;  /* FIFO link */
    tess_pgconn_cb cb; /* user callback; NULL for an internal PREPARE */
    void *arg;         /* its argument */
    int64_t deadline;  /* tess_mono_ms() after which it has timed out */
    PGresult *res;     /* result kept until the Sync arrives */
    int stmt;          /* statement index (for error text of a failed PREPARE) */
};

struct tess_pgconn {
    tess_loop_t *loop;                   /* borrowed */
    char *conninfo;                      /* owned copy */
    int64_t timeout_ms;                  /* per-query deadline */
    const tess_pgconn_stmt_t *stmts;     /* prepared on every connection */
    int n_stmts;                         /* entries in stmts */
    char (*names)[12];                   /* "t<index>" per statement */
    PGconn *pg;                          /* NULL while ST_IDLE */
    int state;                           /* ST_* */
    tess_io_t *io;                       /* watcher on io_fd, NULL when none */
    int io_fd;                           /* fd io watches */
    ino_t io_ino;                        /* its socket's inode: libpq may close it and get the same number back */
    int io_events;                       /* events enabled on io */
    int want_write;                      /* libpq holds unsent output */
    tess_timer_t *timer;                 /* connect deadline / oldest query's deadline */
    int timer_armed;                     /* timer is running */
    int64_t connect_deadline;            /* mono ms, while ST_CONNECTING */
    tess_timer_t *retry;                 /* reconnect after backoff */
    int64_t backoff_ms;                  /* next reconnect delay */
    pg_query_t *head, *tail;             /* pending queries, oldest first */
    size_t n_pending;                    /* entries in the FIFO */
    pg_query_t *free_list;               /* cached records */
    size_t n_free;                       /* entries in free_list */
    unsigned gen;                        /* bumped on every teardown */
    int depth;                           /* nesting of entry points */
    int closed;                          /* tess_pgconn_close was called */
    int ever_up;                         /* connected once: a call refused later is an outage's */
    char last_error[256];                /* last connection-level error, for diagnostics */
    void (*on_state)(void *arg, int up); /* see tess_pgconn_opts_t */
    void (*on_notify)(void *arg, const char *channel, const char *payload); /* idem */
    void *event_arg;                                                        /* their argument */
};

static void start_connect(tess_pgconn_t *c);
static void process_results(tess_pgconn_t *c);

/* Notices ("relation already exists, skipping") are not errors: libpq would print them to stderr. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* ---- helpers ------------------------------------------------------------------------------------------- */

static void enter(tess_pgconn_t *c)
{
    c->depth++;
}

static void free_all(tess_pgconn_t *c)
{
    while (c->free_list != NULL) {
        pg_query_t *q = c->free_list;
        c->free_list = q->next;
        free(q);
    }
    free(c->names);
    free(c->conninfo);
    free(c);
}

/* Returns 1 when the handle is gone (closed and freed): the caller must not touch it any more. */
static int leave(tess_pgconn_t *c)
{
    if (--c->depth == 0 && c->closed) {
        free_all(c);
        return 1;
    }
    return 0;
}

void tess_pgconn_error_line(char *dst, size_t cap, const char *what, const char *detail)
{
    size_t n = 0;
    const char *parts[3] = {what, what != NULL && detail != NULL ? ": " : NULL, detail};

    if (cap == 0)
        return;
    for (size_t i = 0; i < 3; i++) {
        for (const char *p = parts[i]; p != NULL && *p != '\0' && n + 1 < cap; p++) {
            if (*p == '\n' || *p == '\r' || *p == '\t') {
                if (n > 0 && dst[n - 1] != ' ')
                    dst[n++] = ' ';
            } else {
                dst[n++] = *p;
            }
        }
    }
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = '\0';
}

static void set_error(tess_pgconn_t *c, const char *what, const char *detail)
{
    tess_pgconn_error_line(c->last_error, sizeof(c->last_error), what, detail);
}

static pg_query_t *query_alloc(tess_pgconn_t *c)
{
    pg_query_t *q = c->free_list;
    if (q != NULL) {
        c->free_list = q->next;
        c->n_free--;
    } else if ((q = malloc(sizeof(*q))) == NULL) {
        return NULL;
    }
    memset(q, 0, sizeof(*q));
    return q;
}

static void query_free(tess_pgconn_t *c, pg_query_t *q)
{
    if (q->res != NULL)
        PQclear(q->res);
    if (c->n_free < FREE_CACHE_MAX) {
        q->next = c->free_list;
        c->free_list = q;
        c->n_free++;
    } else {
        free(q);
    }
}

int tess_pgconn_map_error(const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (state == NULL || strlen(state) != 5)
        return TESS_EUNAVAIL; /* libpq-made error: the connection failed */
    if (strncmp(state, "23", 2) == 0)
        return TESS_EEXISTS; /* integrity constraint (unique, foreign key, check) */
    if (strncmp(state, "22", 2) == 0)
        return TESS_EBADFMT; /* data exception: the input, not the server (e.g. bad encoding) */
    if (strcmp(state, "57014") == 0)
        return TESS_ETIMEOUT; /* query_canceled (statement_timeout) */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 || strncmp(state, "53", 2) == 0 ||
        strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return TESS_EUNAVAIL; /* connection, shutdown, resources, serialization/deadlock: retry later */
    return TESS_EIO;
}

/* Completes one detached query. */
static void complete(tess_pgconn_t *c, pg_query_t *q, int rc, const PGresult *res)
{
    if (!c->closed && (rc == TESS_EUNAVAIL || rc == TESS_ETIMEOUT))
        tess__backend_count(&tess__backends[TESS__BACKEND_POSTGRES].errors);
    if (q->cb != NULL) {
        q->cb(q->arg, rc, res);
    } else if (rc != 0 && rc != TESS_EUNAVAIL && rc != TESS_ETIMEOUT) {
        char what[64];
        snprintf(what, sizeof(what), "preparing statement %d", q->stmt);
        set_error(c, what, res != NULL ? PQresultErrorMessage(res) : NULL);
    }
    query_free(c, q);
}

/* ---- io and timers ------------------------------------------------------------------------------------- */

static void on_io(void *arg, int events);
static void on_timer(void *arg);

/*
 * Enables `events`. `force` re-enables even when unchanged: a loop may implement write interest as one shot
 * (h2o's does), so it is re-armed each time libpq still holds output.
 */
static void io_update(tess_pgconn_t *c, int events, int force)
{
    if (c->io != NULL && (force || events != c->io_events)) {
        c->io_events = events;
        c->loop->ops->io_set(c->io, events);
    }
}

/*
 * Watches PQsocket(c->pg). The socket may change during a connection attempt (next address, SSL fallback),
 * possibly under the same fd number, so it is identified by its inode too. Returns 0 or a TESS_E*.
 */
static int io_attach(tess_pgconn_t *c)
{
    int fd = PQsocket(c->pg);
    struct stat st;

    st.st_ino = 0;
    if (fd >= 0 && fstat(fd, &st) != 0)
        return TESS_EUNAVAIL;
    if (c->io != NULL && c->io_fd == fd && c->io_ino == st.st_ino)
        return 0;
    if (c->io != NULL) {
        c->loop->ops->io_free(c->io);
        c->io = NULL;
    }
    if (fd < 0)
        return TESS_EUNAVAIL;
    if ((c->io = c->loop->ops->io_new(c->loop, fd, on_io, c)) == NULL)
        return TESS_ENOMEM;
    c->io_fd = fd;
    c->io_ino = st.st_ino;
    c->io_events = 0;
    return 0;
}

/* Arms the deadline timer for the connect attempt or the oldest pending query, unless already running. */
static void timer_arm(tess_pgconn_t *c)
{
    int64_t deadline, now;

    if (c->timer_armed || c->timer == NULL)
        return;
    if (c->state == ST_CONNECTING)
        deadline = c->connect_deadline;
    else if (c->state == ST_CONNECTED && c->head != NULL)
        deadline = c->head->deadline;
    else
        return;
    now = tess_mono_ms();
    c->timer_armed = 1;
    c->loop->ops->timer_start(c->timer, deadline > now ? (uint64_t)(deadline - now) : 0);
}

static void schedule_reconnect(tess_pgconn_t *c)
{
    if (c->closed || c->retry == NULL)
        return;
    c->loop->ops->timer_start(c->retry, (uint64_t)c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/*
 * Drops the connection: every pending query completes with `rc`; reconnects with backoff unless closed.
 * Must run inside enter()/leave().
 */
static void teardown(tess_pgconn_t *c, int rc)
{
    pg_query_t *q = c->head;
    int was_up = c->state == ST_CONNECTED;

    if (!c->closed)
        tess__backend_count(&tess__backends[TESS__BACKEND_POSTGRES].errors); /* the connection failed or was lost */
    c->head = c->tail = NULL;
    c->n_pending = 0;
    c->gen++;
    if (c->io != NULL) {
        c->loop->ops->io_free(c->io);
        c->io = NULL;
    }
    c->io_events = 0;
    c->want_write = 0;
    if (c->pg != NULL) {
        PQfinish(c->pg); /* non-blocking mode: the Terminate message is sent only if the socket takes it */
        c->pg = NULL;
    }
    c->state = ST_IDLE;
    schedule_reconnect(c);
    while (q != NULL) {
        pg_query_t *next = q->next;
        complete(c, q, rc, NULL);
        q = next;
    }
    if (was_up && c->on_state != NULL && !c->closed)
        c->on_state(c->event_arg, 0);
}

static void lost(tess_pgconn_t *c, const char *what)
{
    set_error(c, what, c->pg != NULL ? PQerrorMessage(c->pg) : NULL);
    teardown(c, TESS_EUNAVAIL);
}

/* Sends what libpq buffered; tracks write interest. Returns 0, or -1 after a teardown. */
static int flush(tess_pgconn_t *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        lost(c, "sending to server");
        return -1;
    }
    c->want_write = r == 1;
    io_update(c, TESS_IO_READ | (c->want_write ? TESS_IO_WRITE : 0), c->want_write);
    return 0;
}

/* ---- connecting ---------------------------------------------------------------------------------------- */

/* Queues one query on the live connection. Returns 0, or TESS_EUNAVAIL when libpq refused it. */
static int send_prepared(tess_pgconn_t *c, pg_query_t *q, const tess_pgconn_param_t *params, int nparams)
{
    const char *values[MAX_PARAMS];
    int lengths[MAX_PARAMS], formats[MAX_PARAMS];

    for (int i = 0; i < nparams; ++i) {
        values[i] = params[i].ptr;
        lengths[i] = params[i].len;
        formats[i] = 1;
    }
    if (!PQsendQueryPrepared(c->pg, c->names[q->stmt], nparams, values, lengths, formats, 0) || !PQpipelineSync(c->pg))
        return TESS_EUNAVAIL;
    return 0;
}

static void append(tess_pgconn_t *c, pg_query_t *q)
{
    q->next = NULL;
    if (c->tail != NULL)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    c->n_pending++;
}

static void connected(tess_pgconn_t *c)
{
    int64_t deadline = tess_mono_ms() + c->timeout_ms;

    if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
        lost(c, "entering pipeline mode");
        return;
    }
    c->state = ST_CONNECTED;
    c->ever_up = 1;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->last_error[0] = '\0';
    c->timer_armed = 0;
    c->loop->ops->timer_stop(c->timer);
    /* Prepares go first in the pipeline: any query queued after them finds its statement. */
    for (int i = 0; i < c->n_stmts; ++i) {
        pg_query_t *q = query_alloc(c);
        if (q == NULL) {
            set_error(c, "out of memory", NULL);
            teardown(c, TESS_EUNAVAIL);
            return;
        }
        q->stmt = i;
        q->deadline = deadline;
        append(c, q);
        if (!PQsendPrepare(c->pg, c->names[i], c->stmts[i].sql, c->stmts[i].nparams, NULL) || !PQpipelineSync(c->pg)) {
            lost(c, "sending PREPARE");
            return;
        }
    }
    if (flush(c) == 0)
        timer_arm(c);
    if (c->state == ST_CONNECTED && c->on_state != NULL)
        c->on_state(c->event_arg, 1);
}

/* Hands every NOTIFY libpq has read to on_notify. */
static void deliver_notifies(tess_pgconn_t *c)
{
    PGnotify *n;
    unsigned gen = c->gen;
    while (c->gen == gen && !c->closed && c->pg != NULL && (n = PQnotifies(c->pg)) != NULL) {
        if (c->on_notify != NULL)
            c->on_notify(c->event_arg, n->relname, n->extra != NULL ? n->extra : "");
        PQfreemem(n);
    }
}

static void connect_poll(tess_pgconn_t *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->pg);

    switch (st) {
    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:
        if (io_attach(c) != 0) {
            lost(c, "watching the connection");
            return;
        }
        io_update(c, st == PGRES_POLLING_READING ? TESS_IO_READ : TESS_IO_WRITE, 1);
        return;
    case PGRES_POLLING_OK:
        if (io_attach(c) != 0) {
            lost(c, "watching the connection");
            return;
        }
        connected(c);
        return;
    default:
        lost(c, "connecting");
        return;
    }
}

static void start_connect(tess_pgconn_t *c)
{
    if (c->closed || c->state != ST_IDLE)
        return;
    c->pg = PQconnectStart(c->conninfo);
    if (c->pg == NULL) {
        set_error(c, "connecting", "out of memory");
        schedule_reconnect(c);
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        lost(c, "connecting");
        return;
    }
    PQsetNoticeProcessor(c->pg, quiet_notice, NULL);
    c->state = ST_CONNECTING;
    c->connect_deadline =
        tess_mono_ms() + (c->timeout_ms > CONNECT_TIMEOUT_MIN_MS ? c->timeout_ms : CONNECT_TIMEOUT_MIN_MS);
    c->timer_armed = 0;
    timer_arm(c);
    /* libpq: behave as if the first poll had answered PGRES_POLLING_WRITING. */
    if (io_attach(c) != 0) {
        lost(c, "watching the connection");
        return;
    }
    io_update(c, TESS_IO_WRITE, 1);
}

/* ---- results ------------------------------------------------------------------------------------------- */

static void process_results(tess_pgconn_t *c)
{
    unsigned gen = c->gen;
    int nulls = 0;

    while (c->gen == gen && !c->closed && !PQisBusy(c->pg)) {
        PGresult *res = PQgetResult(c->pg);
        pg_query_t *q = c->head;
        ExecStatusType st;

        if (res == NULL) {
            if (++nulls >= 2 || q == NULL)
                break; /* nothing more until more input arrives */
            continue;
        }
        nulls = 0;
        st = PQresultStatus(res);
        if (q == NULL) { /* unsolicited (e.g. a FATAL before the server closes): the status check sees it */
            PQclear(res);
            continue;
        }
        if (st == PGRES_PIPELINE_SYNC) {
            int rc = 0;
            PQclear(res);
            c->head = q->next;
            if (c->head == NULL)
                c->tail = NULL;
            c->n_pending--;
            if (q->res == NULL)
                rc = TESS_EIO; /* a Sync without a result: cannot happen with one statement per Sync */
            else if (PQresultStatus(q->res) != PGRES_TUPLES_OK && PQresultStatus(q->res) != PGRES_COMMAND_OK)
                rc = tess_pgconn_map_error(q->res);
            complete(c, q, rc, q->res);
            continue;
        }
        /* Keep the first error, else the latest result. */
        if (q->res == NULL) {
            q->res = res;
        } else if (PQresultStatus(q->res) == PGRES_TUPLES_OK || PQresultStatus(q->res) == PGRES_COMMAND_OK) {
            PQclear(q->res);
            q->res = res;
        } else {
            PQclear(res);
        }
    }
    if (c->gen == gen && !c->closed && PQstatus(c->pg) == CONNECTION_BAD)
        lost(c, "connection lost");
}

static void on_io(void *arg, int events)
{
    tess_pgconn_t *c = arg;

    enter(c);
    if (c->state == ST_CONNECTING) {
        connect_poll(c);
    } else if (c->state == ST_CONNECTED) {
        unsigned gen = c->gen;
        if ((events & TESS_IO_WRITE) != 0 || c->want_write)
            (void)flush(c);
        if (c->gen == gen && (events & TESS_IO_READ) != 0 && !PQconsumeInput(c->pg))
            lost(c, "reading from server");
        /* Also after a mere write: a send that would block makes libpq read what the server sent meanwhile,
         * and that input would not show up as readability again. */
        if (c->gen == gen)
            process_results(c);
        if (c->gen == gen)
            deliver_notifies(c);
        if (c->gen == gen && !c->closed && c->want_write)
            (void)flush(c);
        if (c->gen == gen && !c->closed)
            timer_arm(c);
    }
    leave(c);
}

static void on_timer(void *arg)
{
    tess_pgconn_t *c = arg;
    int64_t now = tess_mono_ms();

    enter(c);
    c->timer_armed = 0;
    if (c->state == ST_CONNECTING && now >= c->connect_deadline) {
        set_error(c, "connecting", "timed out");
        tess__backend_count(&tess__backends[TESS__BACKEND_POSTGRES].timeouts);
        teardown(c, TESS_EUNAVAIL);
    } else if (c->state == ST_CONNECTED && c->head != NULL && now >= c->head->deadline) {
        set_error(c, "query", "timed out");
        tess__backend_count(&tess__backends[TESS__BACKEND_POSTGRES].timeouts);
        teardown(c, TESS_ETIMEOUT);
    } else {
        timer_arm(c);
    }
    leave(c);
}

static void on_retry(void *arg)
{
    tess_pgconn_t *c = arg;
    enter(c);
    tess__backend_count(&tess__backends[TESS__BACKEND_POSTGRES].reconnects);
    start_connect(c);
    leave(c);
}

/* ---- API ----------------------------------------------------------------------------------------------- */

int tess_pgconn_open(tess_pgconn_t **out, tess_loop_t *loop, const tess_pgconn_opts_t *opts, char *err, size_t errcap)
{
    tess_pgconn_t *c = NULL;
    PQconninfoOption *parsed = NULL;
    char *perr = NULL;
    int rc = 0;

    *out = NULL;
    if (err != NULL && errcap > 0)
        err[0] = '\0';
    if (loop == NULL || opts == NULL || opts->conninfo == NULL || opts->n_stmts < 0 ||
        (opts->n_stmts > 0 && opts->stmts == NULL)) {
        rc = TESS_EINVAL;
        goto out;
    }
    if ((parsed = PQconninfoParse(opts->conninfo, &perr)) == NULL) {
        if (err != NULL)
            snprintf(err, errcap, "bad PostgreSQL connection string: %s", perr != NULL ? perr : "out of memory");
        rc = perr != NULL ? TESS_EINVAL : TESS_ENOMEM;
        goto out;
    }
    for (int i = 0; i < opts->n_stmts; ++i) {
        if (opts->stmts[i].nparams < 0 || opts->stmts[i].nparams > MAX_PARAMS) {
            rc = TESS_EINVAL;
            goto out;
        }
    }
    if ((c = calloc(1, sizeof(*c))) == NULL || (c->conninfo = strdup(opts->conninfo)) == NULL ||
        (c->names = calloc((size_t)opts->n_stmts + 1, sizeof(*c->names))) == NULL) {
        rc = TESS_ENOMEM;
        goto out;
    }
    c->loop = loop;
    c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 1000;
    c->stmts = opts->stmts;
    c->n_stmts = opts->n_stmts;
    c->on_state = opts->on_state;
    c->on_notify = opts->on_notify;
    c->event_arg = opts->event_arg;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->io_fd = -1;
    for (int i = 0; i < c->n_stmts; ++i)
        snprintf(c->names[i], sizeof(c->names[i]), "t%d", i);
    if ((c->timer = loop->ops->timer_new(loop, on_timer, c)) == NULL ||
        (c->retry = loop->ops->timer_new(loop, on_retry, c)) == NULL) {
        rc = TESS_ENOMEM;
        goto out;
    }
    enter(c);
    start_connect(c);
    leave(c);
    *out = c;
    c = NULL;
out:
    if (c != NULL) {
        if (c->timer != NULL)
            loop->ops->timer_free(c->timer);
        if (c->retry != NULL)
            loop->ops->timer_free(c->retry);
        free_all(c);
    }
    PQconninfoFree(parsed);
    PQfreemem(perr);
    return rc;
}

int tess_pgconn_query(tess_pgconn_t *c, int stmt, const tess_pgconn_param_t *params, int nparams, tess_pgconn_cb cb,
                      void *arg)
{
    pg_query_t *q;

    if (c == NULL || c->closed || cb == NULL || stmt < 0 || stmt >= c->n_stmts || nparams != c->stmts[stmt].nparams)
        return TESS_EINVAL;
    if (c->state != ST_CONNECTED) {
        if (c->ever_up || c->state != ST_CONNECTING) /* not the first connect still under way */
            tess__backend_count(&tess__backends[TESS__BACKEND_POSTGRES].errors);
        cb(arg, TESS_EUNAVAIL, NULL); /* `c` may be gone now: touch nothing */
        return 0;
    }
    if ((q = query_alloc(c)) == NULL) {
        cb(arg, TESS_ENOMEM, NULL);
        return 0;
    }
    q->cb = cb;
    q->arg = arg;
    q->stmt = stmt;
    q->deadline = tess_mono_ms() + c->timeout_ms;
    enter(c);
    append(c, q);
    if (send_prepared(c, q, params, nparams) != 0)
        lost(c, "sending query");
    else if (flush(c) == 0)
        timer_arm(c);
    leave(c);
    return 0;
}

int tess_pgconn_connected(const tess_pgconn_t *c)
{
    return c != NULL && c->state == ST_CONNECTED;
}

size_t tess_pgconn_pending(const tess_pgconn_t *c)
{
    return c != NULL ? c->n_pending : 0;
}

const char *tess_pgconn_last_error(const tess_pgconn_t *c)
{
    return c != NULL ? c->last_error : "";
}

void tess_pgconn_close(tess_pgconn_t *c)
{
    if (c == NULL || c->closed)
        return;
    enter(c);
    c->closed = 1;
    c->loop->ops->timer_free(c->retry);
    c->retry = NULL;
    c->loop->ops->timer_free(c->timer);
    c->timer = NULL;
    teardown(c, TESS_EUNAVAIL);
    leave(c);
}

/* ---- synchronous helpers (start-up / CLI only) ---------------------------------------------------------- */

PGconn *tess_pgconn_connect_sync(const char *conninfo, char *err, size_t errcap)
{
    const char *keys[] = {"connect_timeout", "dbname", NULL};
    const char *vals[] = {"5", conninfo, NULL};
    PGconn *pg;

    /* expand_dbname: `dbname` holds the whole conninfo, whose own connect_timeout (if any) wins. */
    pg = PQconnectdbParams(keys, vals, 1);
    if (pg == NULL) {
        snprintf(err, errcap, "connecting to PostgreSQL: out of memory");
        return NULL;
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        tess_pgconn_error_line(err, errcap, "connecting to PostgreSQL", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    PQsetNoticeProcessor(pg, quiet_notice, NULL);
    return pg;
}

int tess_pgconn_exec_sync(PGconn *pg, const char *sql, char *err, size_t errcap)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = res != NULL ? tess_pgconn_map_error(res) : TESS_ENOMEM;
        if (rc == TESS_EUNAVAIL && PQstatus(pg) == CONNECTION_OK && PQresultErrorField(res, PG_DIAG_SQLSTATE) == NULL)
            rc = TESS_EIO;
        tess_pgconn_error_line(err, errcap, NULL, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(pg));
    }
    PQclear(res);
    return rc;
}
