#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "redis/rconn.h"
#include "tessera/redis.h"
#include "tessera/encoding.h"
#include "tessera/error.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 500 /* a returning server is used again within this much */

typedef struct rcmd {
    struct rcmd *next;   /* FIFO link (replies come in order) */
    tess__rconn_t *conn; /* owner */
    tess__rconn_cb cb;   /* completion; NULL for internal commands (AUTH, SELECT) */
    void *arg;           /* its argument */
    int64_t deadline;    /* monotonic ms */
} rcmd_t;

struct tess_redis {
    tess_loop_t *loop;             /* the loop */
    tess__redis_url_t url;         /* where to */
    int64_t timeout_ms;            /* per command and per connect */
    redisAsyncContext *ac;         /* NULL while disconnected */
    tess_io_t *io;                 /* watcher of ac's fd */
    int events;                    /* enabled io events */
    int up;                        /* connected and usable */
    int refusal_logged;            /* a refused AUTH/SELECT was reported (until the next success) */
    int timed_out;                 /* the connection is being dropped for a timeout */
    int64_t connect_deadline;      /* monotonic ms, while connecting */
    int64_t backoff_ms;            /* next reconnect delay */
    tess_timer_t *reconnect;       /* fires a reconnect */
    tess_timer_t *watchdog;        /* checks deadlines */
    rcmd_t *head, *tail;           /* pending commands, oldest first */
    size_t npending;               /* their count */
    tess__rconn_state_cb state_cb; /* state changes */
    void *state_arg;               /* its argument */
};

/* ---- URL ----------------------------------------------------------------------------------------------- */

/* Parses 1..max_digits decimal digits (nothing else: no sign, no blank) in [min, max]. */
static int parse_num(const char *p, size_t n, int64_t min, int64_t max, int64_t *out)
{
    int64_t v = 0;
    if (n == 0 || n > 9)
        return -1;
    for (size_t i = 0; i < n; ++i) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int copy_decoded(const char *p, size_t n, char *out, size_t cap)
{
    size_t len;
    return tess_url_decode(tess_strn(p, n), out, cap, &len) == 0 && strlen(out) == len ? 0 : -1;
}

int tess__redis_url_parse(const char *url, tess__redis_url_t *out, char *err, size_t errcap)
{
    const char *p, *at, *slash, *hostend, *colon;
    int64_t v;

    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(url, "unix://", 7) == 0) {
        const char *q = strchr(url + 7, '?');
        size_t n = q != NULL ? (size_t)(q - url - 7) : strlen(url + 7);
        if (n == 0 || n >= sizeof(out->path) || url[7] != '/') {
            snprintf(err, errcap, "bad Redis URL: expected unix:///path/to/socket");
            return TESS_EINVAL;
        }
        memcpy(out->path, url + 7, n);
        if (q != NULL) {
            if (strncmp(q, "?db=", 4) != 0) {
                snprintf(err, errcap, "bad Redis URL: only ?db=N may follow a unix socket path");
                return TESS_EINVAL;
            }
            if (parse_num(q + 4, strlen(q + 4), 0, 1000000, &v) != 0) {
                snprintf(err, errcap, "bad Redis URL: db must be a number");
                return TESS_EINVAL;
            }
            out->db = (int)v;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errcap, "bad Redis URL: expected redis://[user:password@]host:port[/db] or unix:///path");
        return TESS_EINVAL;
    }
    p = url + 8;
    slash = strchr(p, '/');
    hostend = slash != NULL ? slash : p + strlen(p);
    at = memrchr(p, '@', (size_t)(hostend - p));
    if (at != NULL) {
        const char *c = memchr(p, ':', (size_t)(at - p));
        if (c != NULL) {
            if (copy_decoded(p, (size_t)(c - p), out->user, sizeof(out->user)) != 0 ||
                copy_decoded(c + 1, (size_t)(at - c - 1), out->password, sizeof(out->password)) != 0) {
                snprintf(err, errcap, "bad Redis URL: malformed credentials");
                return TESS_EINVAL;
            }
        } else if (copy_decoded(p, (size_t)(at - p), out->password, sizeof(out->password)) != 0) {
            snprintf(err, errcap, "bad Redis URL: malformed credentials");
            return TESS_EINVAL;
        }
        p = at + 1;
    }
    if (*p == '[') { /* [v6addr]:port */
        const char *close = memchr(p, ']', (size_t)(hostend - p));
        if (close == NULL || close == p + 1 || (size_t)(close - p - 1) >= sizeof(out->host)) {
            snprintf(err, errcap, "bad Redis URL: malformed host");
            return TESS_EINVAL;
        }
        memcpy(out->host, p + 1, (size_t)(close - p - 1));
        colon = close + 1 < hostend && close[1] == ':' ? close + 1 : NULL;
        if (colon == NULL && close + 1 != hostend) {
            snprintf(err, errcap, "bad Redis URL: malformed host");
            return TESS_EINVAL;
        }
    } else {
        colon = memchr(p, ':', (size_t)(hostend - p));
        size_t n = (size_t)((colon != NULL ? colon : hostend) - p);
        if (n == 0 || n >= sizeof(out->host)) {
            snprintf(err, errcap, "bad Redis URL: missing or overlong host");
            return TESS_EINVAL;
        }
        memcpy(out->host, p, n);
    }
    if (colon != NULL) {
        if (parse_num(colon + 1, (size_t)(hostend - colon - 1), 1, 65535, &v) != 0) {
            snprintf(err, errcap, "bad Redis URL: bad port");
            return TESS_EINVAL;
        }
        out->port = (int)v;
    }
    if (slash != NULL && slash[1] != '\0') {
        if (parse_num(slash + 1, strlen(slash + 1), 0, 1000000, &v) != 0) {
            snprintf(err, errcap, "bad Redis URL: db must be a number");
            return TESS_EINVAL;
        }
        out->db = (int)v;
    }
    return 0;
}

/* ---- loop adapter ---------------------------------------------------------------------------------------- */

static void set_events(tess__rconn_t *c, int events)
{
    c->events = events;
    if (c->io != NULL)
        c->loop->ops->io_set(c->io, events);
}

static void ev_add_read(void *p)
{
    tess__rconn_t *c = p;
    set_events(c, c->events | TESS_IO_READ);
}

static void ev_del_read(void *p)
{
    tess__rconn_t *c = p;
    set_events(c, c->events & ~TESS_IO_READ);
}

static void ev_add_write(void *p)
{
    tess__rconn_t *c = p;
    set_events(c, c->events | TESS_IO_WRITE);
}

static void ev_del_write(void *p)
{
    tess__rconn_t *c = p;
    set_events(c, c->events & ~TESS_IO_WRITE);
}

static void ev_cleanup(void *p)
{
    tess__rconn_t *c = p;
    c->loop->ops->io_free(c->io);
    c->io = NULL;
    c->events = 0;
}

static void on_io(void *arg, int events)
{
    tess__rconn_t *c = arg;
    redisAsyncContext *ac = c->ac;
    if (ac == NULL)
        return;
    if (events & TESS_IO_READ)
        redisAsyncHandleRead(ac);
    /* The read may have ended the connection (c->ac cleared by the disconnect callback). */
    if ((events & TESS_IO_WRITE) && c->ac == ac)
        redisAsyncHandleWrite(ac);
}

/* ---- connection life ----------------------------------------------------------------------------------- */

static void connect_now(tess__rconn_t *c);

static void set_up(tess__rconn_t *c, int up)
{
    if (c->up == up)
        return;
    c->up = up;
    if (c->state_cb != NULL)
        c->state_cb(c->state_arg, up);
}

static void schedule_reconnect(tess__rconn_t *c)
{
    c->loop->ops->timer_start(c->reconnect, (uint64_t)c->backoff_ms);
    c->backoff_ms *= 2;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    tess__rconn_t *c = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns, without a disconnect callback. */
        c->ac = NULL;
        set_up(c, 0);
        tess__backend_count(&tess__backends[TESS__BACKEND_REDIS].errors);
        schedule_reconnect(c);
        return;
    }
    c->backoff_ms = BACKOFF_MIN_MS;
    set_up(c, 1);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    tess__rconn_t *c = ac->data;
    (void)status;
    if (c == NULL)
        return;
    if (c->ac == ac)
        c->ac = NULL;
    set_up(c, 0);
    tess__backend_count(&tess__backends[TESS__BACKEND_REDIS].errors); /* the connection was lost */
    schedule_reconnect(c);
}

static void unlink_head(tess__rconn_t *c, rcmd_t *cmd)
{
    /* Replies arrive in order: the command answered is always the oldest. */
    if (c->head == cmd) {
        c->head = cmd->next;
        if (c->head == NULL)
            c->tail = NULL;
    } else {
        rcmd_t *p = c->head;
        while (p != NULL && p->next != cmd)
            p = p->next;
        if (p != NULL) {
            p->next = cmd->next;
            if (c->tail == cmd)
                c->tail = p;
        }
    }
    --c->npending;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rcmd_t *cmd = privdata;
    tess__rconn_t *c = cmd->conn;
    redisReply *reply = r;
    int rc = 0;
    (void)ac;

    unlink_head(c, cmd);
    if (reply == NULL) {
        rc = c->timed_out ? TESS_ETIMEOUT : TESS_EUNAVAIL;
        tess__backend_count(&tess__backends[TESS__BACKEND_REDIS].errors);
    }
    if (cmd->cb != NULL) {
        cmd->cb(cmd->arg, rc, reply);
    } else if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        /* AUTH or SELECT refused: this connection is useless; drop it and retry later (said once per outage). */
        if (!c->refusal_logged)
            fprintf(stderr, "tessera: redis refused connection setup: %.*s\n", (int)reply->len, reply->str);
        c->refusal_logged = 1;
        set_up(c, 0);
        redisAsyncDisconnect(ac);
    } else if (reply != NULL) {
        c->refusal_logged = 0; /* set-up accepted: a later refusal is news again */
    }
    free(cmd);
}

static rcmd_t *cmd_new(tess__rconn_t *c, tess__rconn_cb cb, void *arg)
{
    rcmd_t *cmd = calloc(1, sizeof(*cmd));
    if (cmd == NULL)
        return NULL;
    cmd->conn = c;
    cmd->cb = cb;
    cmd->arg = arg;
    cmd->deadline = tess_mono_ms() + c->timeout_ms;
    if (c->tail != NULL)
        c->tail->next = cmd;
    else
        c->head = cmd;
    c->tail = cmd;
    ++c->npending;
    if (c->npending == 1)
        c->loop->ops->timer_start(c->watchdog, (uint64_t)c->timeout_ms);
    return cmd;
}

static int send_argv(tess__rconn_t *c, tess__rconn_cb cb, void *arg, int argc, const char **argv, const size_t *argvlen)
{
    rcmd_t *cmd = cmd_new(c, cb, arg);
    if (cmd == NULL)
        return TESS_ENOMEM;
    if (redisAsyncCommandArgv(c->ac, on_reply, cmd, argc, argv, argvlen) != REDIS_OK) {
        unlink_head(c, cmd);
        free(cmd);
        return TESS_EUNAVAIL;
    }
    return 0;
}

static void connect_now(tess__rconn_t *c)
{
    redisAsyncContext *ac;

    ac = c->url.path[0] != '\0' ? redisAsyncConnectUnix(c->url.path) : redisAsyncConnect(c->url.host, c->url.port);
    if (ac == NULL || ac->err) {
        if (ac != NULL)
            redisAsyncFree(ac);
        tess__backend_count(&tess__backends[TESS__BACKEND_REDIS].errors);
        schedule_reconnect(c);
        return;
    }
    ac->data = c;
    c->ac = ac;
    c->timed_out = 0;
    if ((c->io = c->loop->ops->io_new(c->loop, ac->c.fd, on_io, c)) == NULL) {
        c->ac = NULL;
        redisAsyncFree(ac);
        schedule_reconnect(c);
        return;
    }
    ac->ev.data = c;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* hiredis waits for writability to learn that the connect finished. */
    ev_add_write(c);
    c->connect_deadline = tess_mono_ms() + c->timeout_ms;
    c->loop->ops->timer_start(c->watchdog, (uint64_t)c->timeout_ms);
    /* AUTH and SELECT go first on the wire, ahead of anything the stores send. */
    if (c->url.password[0] != '\0') {
        const char *argv[3] = {"AUTH", c->url.user[0] ? c->url.user : c->url.password, c->url.password};
        send_argv(c, NULL, NULL, c->url.user[0] ? 3 : 2, argv, NULL);
    }
    if (c->url.db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", c->url.db);
        const char *argv[2] = {"SELECT", db};
        send_argv(c, NULL, NULL, 2, argv, NULL);
    }
}

static void on_reconnect(void *arg)
{
    tess__rconn_t *c = arg;
    if (c->ac == NULL) {
        tess__backend_count(&tess__backends[TESS__BACKEND_REDIS].reconnects);
        connect_now(c);
    }
}

/* Drops the connection: every pending command completes with an error, reconnect follows. */
static void drop(tess__rconn_t *c, int timed_out)
{
    redisAsyncContext *ac = c->ac;
    if (ac == NULL)
        return;
    c->timed_out = timed_out;
    if (timed_out)
        tess__backend_count(&tess__backends[TESS__BACKEND_REDIS].timeouts);
    c->ac = NULL;
    ac->data = NULL; /* the reconnect is scheduled here, not by the disconnect callback */
    set_up(c, 0);
    redisAsyncFree(ac); /* calls every pending callback with NULL, then cleanup */
    c->timed_out = 0;
    schedule_reconnect(c);
}

static void on_watchdog(void *arg)
{
    tess__rconn_t *c = arg;
    int64_t now = tess_mono_ms();

    if (c->ac != NULL && !c->up && now >= c->connect_deadline) {
        drop(c, 1);
        return;
    }
    if (c->head != NULL && now >= c->head->deadline) {
        drop(c, 1);
        return;
    }
    if (c->head != NULL)
        c->loop->ops->timer_start(c->watchdog, (uint64_t)(c->head->deadline - now));
    else if (c->ac != NULL && !c->up)
        c->loop->ops->timer_start(c->watchdog, (uint64_t)(c->connect_deadline - now));
}

int tess__rconn_new(tess__rconn_t **out, tess_loop_t *loop, const tess__redis_url_t *url, int64_t timeout_ms,
                    tess__rconn_state_cb state_cb, void *state_arg)
{
    tess__rconn_t *c;

    *out = NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return TESS_ENOMEM;
    c->loop = loop;
    c->url = *url;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->state_cb = state_cb;
    c->state_arg = state_arg;
    if ((c->reconnect = loop->ops->timer_new(loop, on_reconnect, c)) == NULL ||
        (c->watchdog = loop->ops->timer_new(loop, on_watchdog, c)) == NULL) {
        tess__rconn_free(c);
        return TESS_ENOMEM;
    }
    connect_now(c);
    *out = c;
    return 0;
}

void tess__rconn_free(tess__rconn_t *c)
{
    if (c == NULL)
        return;
    c->state_cb = NULL;
    if (c->ac != NULL) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        ac->data = NULL; /* no reconnect from the disconnect callback */
        redisAsyncFree(ac);
    }
    if (c->reconnect != NULL)
        c->loop->ops->timer_free(c->reconnect);
    if (c->watchdog != NULL)
        c->loop->ops->timer_free(c->watchdog);
    free(c);
}

int tess__rconn_up(const tess__rconn_t *c)
{
    return c->up && c->ac != NULL;
}

size_t tess__rconn_pending(const tess__rconn_t *c)
{
    return c->npending;
}

typedef struct rsub {
    tess__rconn_t *conn; /* owner */
    tess__rconn_cb cb;   /* message callback */
    void *arg;           /* its argument */
} rsub_t;

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rsub_t *sub = privdata;
    (void)ac;
    if (r == NULL) {
        /* The connection is ending: the last call for this subscription. */
        sub->cb(sub->arg, TESS_EUNAVAIL, NULL);
        free(sub);
        return;
    }
    sub->cb(sub->arg, 0, r);
}

int tess__rconn_subscribe(tess__rconn_t *c, const char *channel, tess__rconn_cb cb, void *arg)
{
    rsub_t *sub;
    const char *argv[2] = {"SUBSCRIBE", channel};

    if (!tess__rconn_up(c))
        return TESS_EUNAVAIL;
    if ((sub = calloc(1, sizeof(*sub))) == NULL)
        return TESS_ENOMEM;
    sub->conn = c;
    sub->cb = cb;
    sub->arg = arg;
    if (redisAsyncCommandArgv(c->ac, on_sub_reply, sub, 2, argv, NULL) != REDIS_OK) {
        free(sub);
        return TESS_EUNAVAIL;
    }
    return 0;
}

int tess__rconn_command(tess__rconn_t *c, tess__rconn_cb cb, void *arg, int argc, const char **argv,
                        const size_t *argvlen)
{
    if (c->ac == NULL) {
        tess__backend_count(&tess__backends[TESS__BACKEND_REDIS].errors);
        cb(arg, TESS_EUNAVAIL, NULL); /* fail fast while down: the caller answers 503 at once */
        return 0;
    }
    /* Up, or connecting: hiredis sends it once connected; the watchdog bounds the wait either way. */
    if (send_argv(c, cb, arg, argc, argv, argvlen) != 0) {
        tess__backend_count(&tess__backends[TESS__BACKEND_REDIS].errors);
        cb(arg, TESS_EUNAVAIL, NULL);
        return 0;
    }
    return 0;
}

/* ---- the public handle (tessera/redis.h) -------------------------------------------------------------- */

int tess_redis_open(tess_redis_t **out, tess_loop_t *loop, const char *url, int64_t timeout_ms, char *err,
                    size_t errcap)
{
    tess__redis_url_t u;
    int rc;

    *out = NULL;
    if ((rc = tess__redis_url_parse(url, &u, err, errcap)) == 0)
        rc = tess__rconn_new(out, loop, &u, timeout_ms, NULL, NULL);
    explicit_bzero(&u, sizeof(u));
    return rc;
}

void tess_redis_close(tess_redis_t *conn)
{
    tess__rconn_free(conn);
}

int tess_redis_connected(const tess_redis_t *conn)
{
    return tess__rconn_up(conn);
}

int tess_redis_command(tess_redis_t *conn, tess_redis_reply_cb cb, void *arg, int argc, const char **argv,
                       const size_t *lens)
{
    return tess__rconn_command(conn, cb, arg, argc, argv, lens);
}

/* One blocking command; NULL with the reason in `err` on an error, an error reply included. */
static redisReply *sync_command(redisContext *c, int argc, const char **argv, const char *what, char *err,
                                size_t errcap)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (r == NULL) {
        snprintf(err, errcap, "redis: %s: %s", what, c->errstr[0] ? c->errstr : "no answer");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errcap, "redis: %s refused: %.*s", what, (int)r->len, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

redisContext *tess_redis_connect_sync(const char *url, int64_t timeout_ms, char *err, size_t errcap)
{
    tess__redis_url_t u;
    struct timeval tv;
    redisContext *c = NULL;
    redisReply *r;
    char db[16];
    const char *argv[3];

    if (timeout_ms <= 0)
        timeout_ms = 1000;
    tv.tv_sec = (time_t)(timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)(timeout_ms % 1000 * 1000);
    if (tess__redis_url_parse(url, &u, err, errcap) != 0)
        return NULL;
    c = u.path[0] ? redisConnectUnixWithTimeout(u.path, tv) : redisConnectWithTimeout(u.host, u.port, tv);
    if (c == NULL || c->err) {
        snprintf(err, errcap, "redis: %s", c != NULL ? c->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(c, tv);
    if (u.password[0]) {
        argv[0] = "AUTH";
        argv[1] = u.user[0] ? u.user : u.password;
        argv[2] = u.password;
        if ((r = sync_command(c, u.user[0] ? 3 : 2, argv, "AUTH", err, errcap)) == NULL)
            goto fail;
        freeReplyObject(r);
    }
    if (u.db != 0) {
        snprintf(db, sizeof(db), "%d", u.db);
        argv[0] = "SELECT";
        argv[1] = db;
        if ((r = sync_command(c, 2, argv, "SELECT", err, errcap)) == NULL)
            goto fail;
        freeReplyObject(r);
    }
    explicit_bzero(&u, sizeof(u));
    return c;
fail:
    explicit_bzero(&u, sizeof(u));
    if (c != NULL)
        redisFree(c);
    return NULL;
}

int tess__rconn_borrow_or_open(tess__rconn_t **out, int *owned, tess__rconn_t *shared, tess_loop_t *loop,
                               const char *url, int64_t timeout_ms, char *err, size_t errcap)
{
    tess__redis_url_t u = {0};
    int rc;

    *out = NULL;
    *owned = 0;
    if (shared != NULL) {
        *out = shared;
        return 0;
    }
    if ((rc = tess__redis_url_parse(url, &u, err, errcap)) == 0 &&
        (rc = tess__rconn_new(out, loop, &u, timeout_ms, NULL, NULL)) == 0)
        *owned = 1;
    explicit_bzero(&u, sizeof(u));
    return rc;
}

int tess__redis_key(tess_str_t prefix, const char *infix, tess_str_t id, char *out, size_t cap, size_t *len)
{
    size_t il = strlen(infix), n = prefix.len + il + id.len;
    if (n + 1 > cap)
        return TESS_ETOOBIG;
    memcpy(out, prefix.ptr, prefix.len);
    memcpy(out + prefix.len, infix, il);
    memcpy(out + prefix.len + il, id.ptr, id.len);
    out[n] = '\0';
    *len = n;
    return 0;
}
