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
        for (size_t i = 0; i < res->n_prechats; ++i) {
            const appdb_prechat_t *p = &res->prechats[i];
            /* Closed from the queue: the ones behind it move up. Closed from active, or marked: the queue stays. */
            meta_changed(th, p->id, strcmp(p->status, "closed") == 0 && p->agent_id == 0);
        }
    }
    arm(th);
}

/* "closed after N minutes without `what`": whole minutes from two minutes up, a shorter timeout (a test's) in
 * seconds. */
static tess_str_t timeout_note(char *buf, size_t cap, int64_t s, const char *what)
{
    int n;
    if (s >= 120)
        n = snprintf(buf, cap, "closed after %" PRId64 " minutes without %s", s / 60, what);
    else
        n = snprintf(buf, cap, "closed after %" PRId64 " seconds without %s", s, what);
    return tess_strn(buf, n > 0 && (size_t)n < cap ? (size_t)n : 0);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    server_thread_t *th = H2O_STRUCT_FROM_MEMBER(server_thread_t, sweep_entry, entry);
    const tess_limits_t *l = &th->srv->cfg.limits;
    int64_t now = tess_now_ms();
    char idle_note[96], wait_note[96];
    appdb_sweep_t sw;
    int rc;

    if (th->sweep_stopped || th->sweep_busy)
        return;
    sw.idle_before_ms = l->prechat_idle_timeout_s > 0 ? now - l->prechat_idle_timeout_s * 1000 : 0;
    sw.close_before_ms = l->prechat_wait_close_s > 0 ? now - l->prechat_wait_close_s * 1000 : 0;
    sw.wait_before_ms = l->prechat_wait_timeout_s > 0 ? now - l->prechat_wait_timeout_s * 1000 : 0;
    sw.idle_note = timeout_note(idle_note, sizeof(idle_note), l->prechat_idle_timeout_s, "a message");
    sw.wait_note = timeout_note(wait_note, sizeof(wait_note), l->prechat_wait_close_s, "an agent");
    sw.limit = SWEEP_BATCH;
    th->sweep_busy = 1;
    rc = th->appdb->ops->prechat_sweep(th->appdb, &sw, now, swept, th);
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
    if (l->prechat_idle_timeout_s == 0 && l->prechat_wait_timeout_s == 0 && l->prechat_wait_close_s == 0) {
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
