/*
 * Abuse limits: one table of settings (flag, variable, range, default), read by tess_limits_load.
 */
#include <stdio.h>
#include <stdlib.h>

#include "app/config.h"
#include "app/limits.h"

typedef struct setting {
    const char *flag; /* long option, without "--" */
    const char *env;  /* environment variable */
    int64_t min, max; /* accepted range */
    int64_t def;      /* default */
    size_t off;       /* field in tess_limits_t */
    const char *help; /* usage text */
} setting_t;

#define F(field) offsetof(tess_limits_t, field)

static const setting_t settings[TESS_LIMITS_COUNT] = {
    {"login-max-failures", "TESSERA_LOGIN_MAX_FAILURES", 1, 1000000, 10, F(login_max_failures),
     "failed logins of one user name per window; then it is locked out"},
    {"login-address-max-failures", "TESSERA_LOGIN_ADDRESS_MAX_FAILURES", 1, 1000000, 100, F(login_addr_max_failures),
     "failed logins from one client address (IPv6: its /64) per window"},
    {"login-window", "TESSERA_LOGIN_WINDOW", 1, 7 * 86400, 900, F(login_window_s),
     "seconds in which failed logins are counted"},
    {"login-lockout", "TESSERA_LOGIN_LOCKOUT", 1, 7 * 86400, 900, F(login_lockout_s),
     "seconds a locked-out user name or address is refused (429)"},
    {"login-queue-per-address", "TESSERA_LOGIN_QUEUE_PER_ADDRESS", 1, 65536, 16, F(login_queue_per_addr),
     "password checks of one client address queued or running (429 beyond)"},
    {"password-workers", "TESSERA_PASSWORD_WORKERS", 1, 256, 2, F(password_workers),
     "argon2 threads (each check takes ~50 ms and 64 MiB)"},
    {"password-queue", "TESSERA_PASSWORD_QUEUE", 1, 65536, 256, F(password_queue),
     "password checks waiting for a thread (503 beyond)"},
    {"max-open-prechats", "TESSERA_MAX_OPEN_PRECHATS", 1, 100000, 3, F(max_open_prechats),
     "pre-chats one visitor has open (429 beyond)"},
    {"message-rate", "TESSERA_MESSAGE_RATE", 1, 6000000, 60, F(message_rate),
     "messages one user may post per minute (429 beyond)"},
    {"message-burst", "TESSERA_MESSAGE_BURST", 1, 100000, 20, F(message_burst), "messages one user may post at once"},
    {"agent-max-chats", "TESSERA_AGENT_MAX_CHATS", 1, 100000, 5, F(agent_max_chats),
     "active pre-chats one agent holds at once (409 agent_at_capacity beyond)"},
    {"prechat-idle-timeout", "TESSERA_PRECHAT_IDLE_TIMEOUT", 0, 30 * 86400, 1800, F(prechat_idle_timeout_s),
     "seconds an active pre-chat may go without a message before it is closed (0: never)"},
    {"prechat-wait-timeout", "TESSERA_PRECHAT_WAIT_TIMEOUT", 0, 30 * 86400, 600, F(prechat_wait_timeout_s),
     "seconds of waiting after which the visitor is offered to leave a message (0: never)"},
    {"prechat-wait-close", "TESSERA_PRECHAT_WAIT_CLOSE", 0, 30 * 86400, 3600, F(prechat_wait_close_s),
     "seconds of waiting (never joined, no left message) after which the pre-chat is closed (0: never;"
     " above prechat-wait-timeout)"},
};

void tess_limits_options(struct option *opts, int first_val)
{
    for (int i = 0; i < TESS_LIMITS_COUNT; ++i)
        opts[i] = (struct option){settings[i].flag, required_argument, NULL, first_val + i};
}

int tess_limits_load(tess_limits_t *l, const char *const flags[TESS_LIMITS_COUNT], char *err, size_t errcap)
{
    for (int i = 0; i < TESS_LIMITS_COUNT; ++i) {
        const setting_t *s = &settings[i];
        const char *v = flags[i], *from = NULL;
        int64_t *field = (int64_t *)((char *)l + s->off);
        *field = s->def;
        if (v != NULL) {
            from = s->flag;
        } else if ((v = getenv(s->env)) != NULL && *v != '\0') {
            from = s->env;
        } else {
            continue;
        }
        if (tess_parse_int(v, s->min, s->max, field) != 0) {
            snprintf(err, errcap, "bad %s%s '%s': expected an integer in [%lld, %lld]", from == s->flag ? "--" : "",
                     from, tess_config_shown(v), (long long)s->min, (long long)s->max);
            return -1;
        }
    }
    if (l->prechat_wait_close_s > 0 && l->prechat_wait_timeout_s > 0 &&
        l->prechat_wait_close_s <= l->prechat_wait_timeout_s) {
        snprintf(err, errcap, "prechat-wait-close (%lld) must be greater than prechat-wait-timeout (%lld), or 0",
                 (long long)l->prechat_wait_close_s, (long long)l->prechat_wait_timeout_s);
        return -1;
    }
    return 0;
}

void tess_limits_usage(FILE *out)
{
    fputs("\nabuse limits (flag, environment in brackets, default):\n", out);
    for (int i = 0; i < TESS_LIMITS_COUNT; ++i)
        fprintf(out, "  --%s N [%s] (%lld)\n      %s\n", settings[i].flag, settings[i].env, (long long)settings[i].def,
                settings[i].help);
}
