/*
 * The pre-chat timeouts: see timeouts.h. One step in flight at a time: the next tick is armed when the
 * store has answered, so a slow store delays the sweep instead of piling steps up.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "server/poll.h"
#include "server/timeouts.h"
#include "tessera/error.h"

static void arm(server_thread_t *th)
{
    if (!th->sweep_stopped)
        h2o_timeout_link(th->loop, &th->sweep_timeout, &th->sweep_entry);
}

static void swept(void *arg, const appdb_result_t *res)
{
    server_thread_t *th = arg;
    th->sweep_busy = 0;
    if (res->rc != 0) {
        server_log("pre-chat sweep failed: %s", tess_strerror(res->rc));
    } else {
        for (size_t i = 0; i < res->n_prechats; ++i)
            meta_changed(th, res->prechats[i].id, 0); /* closed from active, or marked waiting: the queue stays */
    }
    arm(th);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    server_thread_t *th = H2O_STRUCT_FROM_MEMBER(server_thread_t, sweep_entry, entry);
    const tess_limits_t *l = &th->srv->cfg.limits;
    int64_t now = tess_now_ms();
    char note[96];
    int n, rc;

    if (th->sweep_stopped || th->sweep_busy)
        return;
    /* Whole minutes from two minutes up; a shorter timeout (a test's) is told in seconds. */
    if (l->prechat_idle_timeout_s >= 120)
        n = snprintf(note, sizeof(note), "closed after %" PRId64 " minutes without a message",
                     l->prechat_idle_timeout_s / 60);
    else
        n = snprintf(note, sizeof(note), "closed after %" PRId64 " seconds without a message",
                     l->prechat_idle_timeout_s);
    th->sweep_busy = 1;
    rc = th->appdb->ops->prechat_sweep(th->appdb,
                                       l->prechat_idle_timeout_s > 0 ? now - l->prechat_idle_timeout_s * 1000 : 0,
                                       l->prechat_wait_timeout_s > 0 ? now - l->prechat_wait_timeout_s * 1000 : 0,
                                       tess_strn(note, (size_t)n), SWEEP_BATCH, now, swept, th);
    if (rc != 0) {
        th->sweep_busy = 0;
        server_log("pre-chat sweep failed: %s", tess_strerror(rc));
        arm(th);
    }
}

void timeouts_start(server_thread_t *th)
{
    const tess_limits_t *l = &th->srv->cfg.limits;
    th->sweep_stopped = 0;
    th->sweep_busy = 0;
    if (l->prechat_idle_timeout_s == 0 && l->prechat_wait_timeout_s == 0) {
        th->sweep_stopped = 1;
        return;
    }
    h2o_timeout_init(th->loop, &th->sweep_timeout, SWEEP_INTERVAL_MS);
    th->sweep_entry.cb = on_tick;
    arm(th);
}

void timeouts_stop(server_thread_t *th)
{
    if (th->sweep_stopped)
        return;
    th->sweep_stopped = 1;
    if (h2o_timeout_is_linked(&th->sweep_entry))
        h2o_timeout_unlink(&th->sweep_entry);
}
