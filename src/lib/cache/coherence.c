/*
 * The invalidation listener (tessera/coherence.h): a subscriber connection and a tracking connection.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/rconn.h"
#include "tessera/coherence.h"
#include "tessera/error.h"

#define PREFIXES_MAX 16
#define PREFIX_LEN_MAX 128
#define HEARTBEAT_MS 200 /* how often the tracking connection is probed */
#define LIVENESS_MS 500  /* longest wait for any answer before the channel counts as down */

struct tess_inval {
    tess_loop_t *loop;                           /* the loop */
    tess__rconn_t *sub;                          /* subscriber connection */
    tess__rconn_t *trk;                          /* tracking connection */
    long long sub_id;                            /* CLIENT ID of `sub` (0 unknown) */
    int subscribed;                              /* the subscription is confirmed */
    int tracking;                                /* CLIENT TRACKING answered OK for the current sub_id */
    atomic_int up;                               /* reported state; tess_inval_up reads it from any thread */
    size_t nprefixes;                            /* tracked prefixes */
    char prefixes[PREFIXES_MAX][PREFIX_LEN_MAX]; /* their text */
    char epoch_key[PREFIX_LEN_MAX];              /* INCR'ed on every (re)connection ("" none) */
    tess_inval_opts_t opts;                      /* callbacks */
    uint64_t sub_epoch; /* bumped when the subscriber connection changes: its stale replies are ignored */
    uint64_t trk_epoch; /* bumped when either connection changes (tracking redirects to the subscriber) */
    tess_timer_t *hb;   /* heartbeat: a paused Redis closes no connection */
    int hb_outstanding; /* a PING is waiting for its answer */
};

static void report(tess_inval_t *inv)
{
    int up = inv->subscribed && inv->tracking && tess__rconn_up(inv->sub) && tess__rconn_up(inv->trk);
    if (up == atomic_load_explicit(&inv->up, memory_order_relaxed))
        return;
    atomic_store_explicit(&inv->up, up, memory_order_relaxed);
    inv->opts.on_state(inv->opts.arg, up);
}

/*
 * Replies carry (inv, which connection, its epoch): one from before a reconnect must not flip the current
 * state, and a change of one connection must not discard the other's replies (the subscriber's CLIENT ID
 * answer stays good when only the tracking connection reconnected).
 */
typedef struct ictx {
    tess_inval_t *inv; /* owner */
    uint64_t epoch;    /* epoch when sent */
    int sub;           /* a subscriber-connection command (else tracking) */
} ictx_t;

static int ictx_current(const ictx_t *x)
{
    return x->epoch == (x->sub ? x->inv->sub_epoch : x->inv->trk_epoch);
}

static ictx_t *ictx_new(tess_inval_t *inv, int sub)
{
    ictx_t *x = malloc(sizeof(*x));
    if (x != NULL) {
        x->inv = inv;
        x->sub = sub;
        x->epoch = sub ? inv->sub_epoch : inv->trk_epoch;
    }
    return x;
}

static void on_epoch(void *arg, int rc, redisReply *r)
{
    ictx_t *x = arg;
    tess_inval_t *inv = x->inv;
    int current = ictx_current(x);
    free(x);
    if (!current)
        return;
    inv->tracking = rc == 0 && r != NULL && r->type == REDIS_REPLY_INTEGER;
    report(inv);
}

static void on_tracking(void *arg, int rc, redisReply *r)
{
    ictx_t *x = arg;
    tess_inval_t *inv = x->inv;
    int current = ictx_current(x);
    free(x);
    if (!current)
        return;
    x = NULL;
    if (rc != 0 || r == NULL || r->type == REDIS_REPLY_ERROR) {
        if (r != NULL && r->type == REDIS_REPLY_ERROR)
            fprintf(stderr, "tessera: CLIENT TRACKING refused: %.*s\n", (int)r->len, r->str);
        inv->tracking = 0;
        report(inv);
        return;
    }
    if (inv->epoch_key[0] != '\0') {
        /* Copies written to the cache before this (re)connection may predate a missed invalidation. */
        const char *argv[2] = {"INCR", inv->epoch_key};
        if ((x = ictx_new(inv, 0)) != NULL)
            tess__rconn_command(inv->trk, on_epoch, x, 2, argv, NULL);
        return;
    }
    inv->tracking = 1;
    report(inv);
}

static void on_tracking_off(void *arg, int rc, redisReply *r)
{
    (void)rc;
    (void)r;
    free(arg);
}

/* Sends CLIENT TRACKING once both connections are ready and the subscription is confirmed. */
static void start_tracking(tess_inval_t *inv)
{
    char id[32];
    const char *argv[5 + 2 * PREFIXES_MAX];
    int argc = 0;
    ictx_t *x;

    if (!inv->subscribed || inv->sub_id == 0 || !tess__rconn_up(inv->trk) || inv->tracking)
        return;
    /* A previous REDIRECT target may still be registered on this connection: turn it off first. */
    const char *off[3] = {"CLIENT", "TRACKING", "off"};
    if ((x = ictx_new(inv, 0)) == NULL)
        return;
    tess__rconn_command(inv->trk, on_tracking_off, x, 3, off, NULL);
    snprintf(id, sizeof(id), "%lld", inv->sub_id);
    argv[argc++] = "CLIENT";
    argv[argc++] = "TRACKING";
    argv[argc++] = "on";
    argv[argc++] = "REDIRECT";
    argv[argc++] = id;
    argv[argc++] = "BCAST";
    for (size_t i = 0; i < inv->nprefixes; ++i) {
        argv[argc++] = "PREFIX";
        argv[argc++] = inv->prefixes[i];
    }
    if ((x = ictx_new(inv, 0)) == NULL)
        return;
    tess__rconn_command(inv->trk, on_tracking, x, argc, argv, NULL);
}

static void on_message(void *arg, int rc, redisReply *r)
{
    tess_inval_t *inv = arg;

    if (rc != 0 || r == NULL) {
        /* The subscriber connection ended: nothing is delivered until it is re-established. */
        if (inv->sub == NULL) /* being freed */
            return;
        inv->subscribed = 0;
        inv->tracking = 0;
        inv->sub_id = 0;
        ++inv->sub_epoch;
        ++inv->trk_epoch;
        report(inv);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(r->element[0]->str, "subscribe") == 0) {
        inv->subscribed = 1;
        start_tracking(inv);
        return;
    }
    if (strcmp(r->element[0]->str, "message") != 0)
        return;
    redisReply *payload = r->element[2];
    if (payload->type == REDIS_REPLY_NIL) {
        inv->opts.on_key(inv->opts.arg, tess_strn(NULL, 0)); /* FLUSHDB / FLUSHALL */
    } else if (payload->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < payload->elements; ++i) {
            redisReply *k = payload->element[i];
            if (k->type == REDIS_REPLY_STRING && k->len > 0)
                inv->opts.on_key(inv->opts.arg, tess_strn(k->str, k->len));
        }
    } else if (payload->type == REDIS_REPLY_STRING && payload->len > 0) {
        inv->opts.on_key(inv->opts.arg, tess_strn(payload->str, payload->len));
    }
}

static void on_client_id(void *arg, int rc, redisReply *r)
{
    ictx_t *x = arg;
    tess_inval_t *inv = x->inv;
    int current = ictx_current(x);
    free(x);
    if (!current || rc != 0 || r == NULL || r->type != REDIS_REPLY_INTEGER)
        return;
    inv->sub_id = r->integer;
    if (tess__rconn_subscribe(inv->sub, "__redis__:invalidate", on_message, inv) != 0)
        inv->sub_id = 0;
}

static void on_sub_state(void *arg, int up)
{
    tess_inval_t *inv = arg;
    ictx_t *x;
    ++inv->sub_epoch;
    ++inv->trk_epoch;
    inv->subscribed = 0;
    inv->tracking = 0;
    inv->sub_id = 0;
    report(inv);
    if (!up)
        return;
    const char *argv[2] = {"CLIENT", "ID"};
    if ((x = ictx_new(inv, 1)) != NULL)
        tess__rconn_command(inv->sub, on_client_id, x, 2, argv, NULL);
}

static void on_trk_state(void *arg, int up)
{
    tess_inval_t *inv = arg;
    ++inv->trk_epoch; /* a CLIENT TRACKING answer from the old connection means nothing now */
    inv->tracking = 0;
    report(inv);
    if (up)
        start_tracking(inv);
}

static void on_pong(void *arg, int rc, redisReply *r)
{
    tess_inval_t *inv = arg;
    (void)rc;
    (void)r;
    /* A missing answer ends the connection through its timeout, which reports the listener down. */
    inv->hb_outstanding = 0;
}

static void on_heartbeat(void *arg)
{
    tess_inval_t *inv = arg;
    if (atomic_load_explicit(&inv->up, memory_order_relaxed) && !inv->hb_outstanding) {
        const char *argv[1] = {"PING"};
        inv->hb_outstanding = 1;
        tess__rconn_command(inv->trk, on_pong, inv, 1, argv, NULL);
    }
    inv->loop->ops->timer_start(inv->hb, HEARTBEAT_MS);
}

int tess_inval_open(tess_inval_t **out, tess_loop_t *loop, const tess_inval_opts_t *opts, char *err, size_t errcap)
{
    tess__redis_url_t url;
    tess_inval_t *inv = NULL;
    int rc;

    *out = NULL;
    if (opts->nprefixes == 0 || opts->nprefixes > PREFIXES_MAX || opts->on_key == NULL || opts->on_state == NULL) {
        snprintf(err, errcap, "invalidation listener: 1 to %d prefixes and both callbacks are required", PREFIXES_MAX);
        return TESS_EINVAL;
    }
    if ((rc = tess__redis_url_parse(opts->url, &url, err, errcap)) != 0)
        return rc;
    if ((inv = calloc(1, sizeof(*inv))) == NULL) {
        rc = TESS_ENOMEM;
        goto out;
    }
    inv->loop = loop;
    inv->opts = *opts;
    inv->opts.url = NULL;
    inv->opts.prefixes = NULL;
    for (size_t i = 0; i < opts->nprefixes; ++i) {
        if (strlen(opts->prefixes[i]) == 0 || strlen(opts->prefixes[i]) >= PREFIX_LEN_MAX) {
            snprintf(err, errcap, "invalidation listener: bad prefix");
            rc = TESS_EINVAL;
            goto out;
        }
        strcpy(inv->prefixes[i], opts->prefixes[i]);
    }
    inv->nprefixes = opts->nprefixes;
    if (opts->epoch_key != NULL) {
        if (strlen(opts->epoch_key) >= PREFIX_LEN_MAX) {
            snprintf(err, errcap, "invalidation listener: epoch key too long");
            rc = TESS_EINVAL;
            goto out;
        }
        strcpy(inv->epoch_key, opts->epoch_key);
    }
    inv->opts.epoch_key = NULL;
    /*
     * Short timeouts here: a paused or unreachable Redis closes no connection, and the caches must be off
     * before a logout elsewhere can be acknowledged (that takes at least the stores' own timeout).
     */
    int64_t t = opts->timeout_ms > 0 && opts->timeout_ms < LIVENESS_MS ? opts->timeout_ms : LIVENESS_MS;
    if ((rc = tess__rconn_new(&inv->sub, loop, &url, t, on_sub_state, inv)) != 0 ||
        (rc = tess__rconn_new(&inv->trk, loop, &url, t, on_trk_state, inv)) != 0)
        goto out;
    if ((inv->hb = loop->ops->timer_new(loop, on_heartbeat, inv)) == NULL) {
        rc = TESS_ENOMEM;
        goto out;
    }
    loop->ops->timer_start(inv->hb, HEARTBEAT_MS);
    *out = inv;
    inv = NULL;
out:
    explicit_bzero(&url, sizeof(url));
    tess_inval_free(inv);
    return rc;
}

void tess_inval_free(tess_inval_t *inv)
{
    if (inv == NULL)
        return;
    tess__rconn_t *sub = inv->sub, *trk = inv->trk;
    inv->opts.on_state = NULL;
    inv->sub = NULL;
    ++inv->sub_epoch;
    ++inv->trk_epoch;
    /* Freeing runs pending callbacks (with errors); they must see a listener that reports nothing. */
    atomic_store_explicit(&inv->up, 0, memory_order_relaxed);
    if (inv->hb != NULL)
        inv->loop->ops->timer_free(inv->hb);
    tess__rconn_free(trk);
    tess__rconn_free(sub);
    free(inv);
}

/* Any thread: the metrics read the loop's state as a gauge, so relaxed is enough (it publishes no data). */
int tess_inval_up(const tess_inval_t *inv)
{
    return atomic_load_explicit(&inv->up, memory_order_relaxed);
}
