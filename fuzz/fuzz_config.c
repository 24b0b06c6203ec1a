/*
 * libFuzzer driver for the configuration parsers (src/app/config.c, tessera/redis.h): the command line of
 * `tessera serve` with the addresses and URLs it takes, and the integer parser every option and handler uses.
 * First byte % 3:
 *   0  the rest, split at NUL bytes, is argv after "serve" (at most 16 words; words that could ask for
 *      --help are skipped): tess_config_load answers 0 with a complete configuration, or TESS_ECONFIG with a
 *      one-line reason that never repeats a Redis URL (it may hold a password);
 *   1  the rest is a database URL (tess_config_set_database) and a Redis URL (tess_redis_url_check,
 *      tess__redis_url_parse: the public check and the parser agree), split at the first NUL;
 *   2  the rest is a decimal (tess_parse_int): accepted only inside the range, printed back the same.
 * The environment is cleared first: the input is all tess_config_load reads. Build and run: see fuzz/README.md.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "app/config.h"
#include "redis/rconn.h"
#include "tessera/error.h"
#include "tessera/redis.h"

#define ARGS_MAX 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Changes the password of a "scheme://user:PASSWORD@host" in `s` (wherever it is in it: "--redis=..." too)
 * to another of the same shape: each letter and digit moved by one, the rest (and %XX escapes) kept. Returns 1 when it
 * changed something. A reason that repeats no password is the same for both.
 */
static int other_password(char *s)
{
    char *scheme = strstr(s, "://"), *auth, *end, *at, *colon;
    int changed = 0;
    if (scheme == NULL)
        return 0;
    /* as tess__redis_url_parse reads it: the authority ends at the first '/', the user info at its last '@' */
    auth = scheme + 3;
    end = auth + strcspn(auth, "/");
    if ((at = memrchr(auth, '@', (size_t)(end - auth))) == NULL ||
        (colon = memchr(auth, ':', (size_t)(at - auth))) == NULL)
        return 0;
    for (char *p = colon + 1; p < at; ++p) {
        if (*p == '%') { /* an escape is kept as it is: what it decodes to may decide validity */
            p += at - p > 2 ? 2 : at - p - 1;
            continue;
        }
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) {
            *p = *p == 'z' ? 'a' : *p == 'Z' ? 'A' : *p == '9' ? '0' : (char)(*p + 1);
            changed = 1;
        }
    }
    return changed;
}

static void fuzz_argv(char *in, size_t n)
{
    char *argv[ARGS_MAX + 2];
    int argc = 0;
    char err[512];
    tess_config_t cfg;
    int rc;

    argv[argc++] = "serve";
    for (char *p = in; p <= in + n && argc <= ARGS_MAX; p += strlen(p) + 1) {
        /* -h (alone or in a cluster), --help and its abbreviations print the usage to stdout */
        size_t name = strcspn(p, "=");
        if ((p[0] == '-' && p[1] != '-' && strchr(p, 'h') != NULL) || (name > 2 && strncmp(p, "--help", name) == 0))
            return;
        argv[argc++] = p;
    }
    argv[argc] = NULL;
    err[0] = '\0';
    rc = tess_config_load(&cfg, argc, argv, err, sizeof(err));
    check(rc == 0 || rc == TESS_ECONFIG);
    if (rc == 0) {
        check(cfg.listen_port >= 1 && cfg.listen_host[0] != '\0' && cfg.database_url[0] != '\0');
        check(cfg.postgres == (cfg.sqlite_path[0] == '\0'));
        check(cfg.threads >= 1 && cfg.max_body > 0);
        if (cfg.redis_url[0] != '\0')
            check(tess_redis_url_check(cfg.redis_url, err, sizeof(err)) == 0);
    } else {
        check(err[0] != '\0' && strchr(err, '\n') == NULL && strlen(err) < sizeof(err));
    }
    tess_config_free(&cfg);
    /* a refusal never repeats a password, wherever on the command line it was */
    if (rc != 0) {
        char *other[ARGS_MAX + 2], err2[512];
        int changed = 0;
        for (int i = 0; i < argc; ++i) {
            other[i] = strdup(argv[i]);
            check(other[i] != NULL);
            changed |= other_password(other[i]);
        }
        other[argc] = NULL;
        if (changed) {
            err2[0] = '\0';
            check(tess_config_load(&cfg, argc, other, err2, sizeof(err2)) == rc && strcmp(err, err2) == 0);
            tess_config_free(&cfg);
        }
        for (int i = 0; i < argc; ++i)
            free(other[i]);
    }
}

static void fuzz_urls(char *in, size_t n)
{
    char err[256], err2[256];
    tess_config_t *cfg = calloc(1, sizeof(*cfg));
    const char *redis = in + strlen(in) + 1 <= in + n ? in + strlen(in) + 1 : "";
    tess__redis_url_t u;
    int rc, rc2;

    check(cfg != NULL);
    rc = tess_config_set_database(cfg, in, err, sizeof(err));
    check(rc == 0 || rc == TESS_ECONFIG);
    if (rc == 0)
        check(strcmp(cfg->database_url, in) == 0 && cfg->postgres == (cfg->sqlite_path[0] == '\0'));
    else
        check(err[0] != '\0' && strchr(err, '\n') == NULL);
    free(cfg);

    err[0] = err2[0] = '\0';
    rc = tess_redis_url_check(redis, err, sizeof(err));
    rc2 = tess__redis_url_parse(redis, &u, err2, sizeof(err2));
    check((rc == 0) == (rc2 == 0));
    if (rc2 == 0) {
        check(u.port >= 1 && u.port <= 65535 && u.db >= 0);
        check((u.host[0] != '\0') != (u.path[0] != '\0'));
    } else {
        char *other = strdup(redis), err3[256];
        check(other != NULL);
        check(err[0] != '\0' && strchr(err, '\n') == NULL);
        /* the reason never holds the password */
        if (other_password(other))
            check(tess_redis_url_check(other, err3, sizeof(err3)) == rc && strcmp(err, err3) == 0);
        free(other);
    }
}

static void fuzz_int(const char *in)
{
    static const int64_t ranges[][2] = {
        {1, 60}, {0, INT64_MAX / 2}, {1, INT64_MAX}, {INT64_MIN, INT64_MAX}, {1, 65535}};
    for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); ++r) {
        int64_t v = 0;
        if (tess_parse_int(in, ranges[r][0], ranges[r][1], &v) == 0) {
            char back[32];
            const char *p = in + (in[0] == '+');
            check(v >= ranges[r][0] && v <= ranges[r][1]);
            /* the same number: the input less a '+' sign and leading zeros */
            snprintf(back, sizeof(back), "%" PRId64, v);
            if (*p == '-' && v != 0) {
                check(back[0] == '-');
                for (++p; *p == '0' && p[1] != '\0'; ++p)
                    ;
                check(strcmp(p, back + 1) == 0);
            } else {
                p += *p == '-';
                while (*p == '0' && p[1] != '\0')
                    ++p;
                check(strcmp(p, back) == 0);
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int cleared;
    char *in;
    size_t n;

    if (size == 0 || size > 4096)
        return 0;
    if (!cleared) {
        clearenv(); /* what tess_config_load reads comes from the input only */
        cleared = 1;
    }
    if ((in = fuzz_rest(data, size, 1, &n)) == NULL) /* NUL-terminated */
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_argv(in, n);
        break;
    case 1:
        fuzz_urls(in, n);
        break;
    case 2:
        fuzz_int(in);
        break;
    }
    free(in);
    return 0;
}
