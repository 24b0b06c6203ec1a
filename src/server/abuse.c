/*
 * Abuse limits (abuse.h): login throttling and quotas on the shared tables of ratelimit.h.
 */
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/abuse.h"
#include "server/limits.h"
#include "server/ratelimit.h"
#include "tessera/error.h"

#define TABLE_ENTRIES 65536    /* per table: 2 MiB; a flood of more keys evicts the idlest */
#define PRECHAT_RETRY_MS 30000 /* Retry-After of a refused pre-chat: one must be closed first */

struct abuse {
    rl_table_t *users;                   /* failed logins per user name */
    rl_table_t *addrs;                   /* failed logins per client address */
    rl_table_t *messages;                /* messages per user */
    rl_fail_policy_t user_policy;        /* bounds of `users` */
    rl_fail_policy_t addr_policy;        /* bounds of `addrs` */
    int64_t message_interval_ms;         /* one message per this, sustained */
    int64_t message_burst;               /* at once */
    _Atomic uint64_t throttled_user;     /* logins refused: name locked out */
    _Atomic uint64_t throttled_addr;     /* logins refused: address locked out */
    _Atomic uint64_t queue_addr;         /* logins refused: address's password checks in flight */
    _Atomic uint64_t messages_throttled; /* messages refused */
    _Atomic uint64_t prechats_refused;   /* pre-chats refused */
};

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

int abuse_new(server_t *srv)
{
    const tess_limits_t *cfg = &srv->cfg.limits;
    abuse_t *l = calloc(1, sizeof(*l));
    int rc;

    if (l == NULL)
        return TESS_ENOMEM;
    srv->abuse = l;
    if ((rc = rl_new(&l->users, TABLE_ENTRIES)) != 0 || (rc = rl_new(&l->addrs, TABLE_ENTRIES)) != 0 ||
        (rc = rl_new(&l->messages, TABLE_ENTRIES)) != 0)
        return rc; /* abuse_free cleans up */
    l->user_policy =
        (rl_fail_policy_t){cfg->login_max_failures, cfg->login_window_s * 1000, cfg->login_lockout_s * 1000};
    l->addr_policy =
        (rl_fail_policy_t){cfg->login_addr_max_failures, cfg->login_window_s * 1000, cfg->login_lockout_s * 1000};
    l->message_interval_ms = 60000 / cfg->message_rate > 0 ? 60000 / cfg->message_rate : 1;
    l->message_burst = cfg->message_burst;
    return 0;
}

void abuse_free(server_t *srv)
{
    abuse_t *l = srv->abuse;
    if (l == NULL)
        return;
    rl_free(l->users);
    rl_free(l->addrs);
    rl_free(l->messages);
    free(l);
    srv->abuse = NULL;
}

uint64_t abuse_addr_key(server_t *srv, h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    addr_key_t key; /* IPv4 (also v4-mapped) or an IPv6 /64, as the connection limit counts them */

    memset(&ss, 0, sizeof(ss));
    if (req->conn->callbacks->get_peername != NULL)
        len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (len == 0 || addr_key_of((struct sockaddr *)&ss, len, &key) != 0)
        memset(&key, 0, sizeof(key)); /* no address (a Unix socket): one shared key */
    return rl_key(srv->abuse->addrs, key.b, sizeof(key.b));
}

void send_error_retry(tess_req_t *r, int status, const char *code, const char *message, int64_t wait_ms)
{
    char v[24];
    int64_t s = (wait_ms + 999) / 1000;
    int n = snprintf(v, sizeof(v), "%lld", (long long)(s > 0 ? s : 1));
    add_header(r, "retry-after", v, (size_t)n);
    send_error(r, status, code, message);
}

int abuse_login_begin(tess_req_t *r, tess_str_t username, login_keys_t *keys)
{
    server_t *srv = r->th->srv;
    abuse_t *l = srv->abuse;
    int64_t now = tess_mono_ms(), wait;

    keys->user = rl_key(l->users, username.ptr, username.len);
    keys->addr = abuse_addr_key(srv, r->req);
    if ((wait = rl_fail_take(l->addrs, keys->addr, &l->addr_policy, now)) > 0) {
        count(&l->throttled_addr);
    } else if ((wait = rl_fail_take(l->users, keys->user, &l->user_policy, now)) > 0) {
        rl_fail_give(l->addrs, keys->addr, &l->addr_policy); /* not tried */
        count(&l->throttled_user);
    }
    if (wait > 0) {
        /* The same answer whether or not the user exists, and whichever bound was reached. */
        send_error_retry(r, 429, "too_many_attempts", "too many failed logins; retry later", wait);
        return -1;
    }
    return 0;
}

void abuse_login_succeeded(server_t *srv, const login_keys_t *keys)
{
    rl_fail_clear(srv->abuse->users, keys->user);
    rl_fail_give(srv->abuse->addrs, keys->addr, &srv->abuse->addr_policy);
}

void abuse_login_abandoned(server_t *srv, const login_keys_t *keys)
{
    rl_fail_give(srv->abuse->users, keys->user, &srv->abuse->user_policy);
    rl_fail_give(srv->abuse->addrs, keys->addr, &srv->abuse->addr_policy);
}

void abuse_count_queue_refusal(server_t *srv)
{
    count(&srv->abuse->queue_addr);
}

int abuse_message_take(tess_req_t *r)
{
    abuse_t *l = r->th->srv->abuse;
    int64_t wait = rl_rate_take(l->messages, rl_key(l->messages, r->user_id, strlen(r->user_id)),
                                l->message_interval_ms, l->message_burst, tess_mono_ms());
    if (wait == 0)
        return 0;
    count(&l->messages_throttled);
    send_error_retry(r, 429, "too_many_messages", "too many messages; slow down", wait);
    return -1;
}

void abuse_prechat_refused(tess_req_t *r)
{
    count(&r->th->srv->abuse->prechats_refused);
    send_error_retry(r, 429, "too_many_prechats", "too many open pre-chats; close one first", PRECHAT_RETRY_MS);
}

void abuse_get_stats(server_t *srv, abuse_stats_t *out)
{
    abuse_t *l = srv->abuse;
    out->login_throttled_user = atomic_load_explicit(&l->throttled_user, memory_order_relaxed);
    out->login_throttled_addr = atomic_load_explicit(&l->throttled_addr, memory_order_relaxed);
    out->login_queue_addr = atomic_load_explicit(&l->queue_addr, memory_order_relaxed);
    out->messages_throttled = atomic_load_explicit(&l->messages_throttled, memory_order_relaxed);
    out->prechats_refused = atomic_load_explicit(&l->prechats_refused, memory_order_relaxed);
    out->evictions = rl_evictions(l->users) + rl_evictions(l->addrs) + rl_evictions(l->messages);
}
