/*
 * libFuzzer driver for the stored-session parser and the Redis URL parser: tess_session_from_json (what
 * Redis and PostgreSQL hand back, possibly written by another app) and tess__redis_url_parse.
 * Even first byte: the rest is a session document; whatever parses must serialize and parse again to the same
 * modelled fields. Odd first byte: the rest is a Redis URL (NUL-terminated copy). Build: see fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis/rconn.h"
#include "tessera/error.h"
#include "tessera/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

static void fuzz_session(const char *in, size_t n)
{
    tess_session_t a, b;
    char *json = NULL;
    size_t len = 0;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    if (tess_session_from_json(&a, TESS_STR_LIT("fuzzsid"), tess_strn(in, n), 0) != 0)
        return;
    check(strcmp(a.id, "fuzzsid") == 0);
    check(tess_session_identity_valid(tess_str(a.user_id), tess_str(a.role))); /* never a header line break */
    if (tess_session_to_json(&a, &json, &len) == 0) {
        check(strlen(json) == len);
        check(tess_session_from_json(&b, TESS_STR_LIT("fuzzsid"), tess_strn(json, len), 0) == 0);
        check(strcmp(a.user_id, b.user_id) == 0 && strcmp(a.role, b.role) == 0);
        check(a.expires_ms == b.expires_ms && a.absolute_expires_ms == b.absolute_expires_ms);
        free(json);
    }
    tess_session_clear(&a);
    tess_session_clear(&b);
}

static void fuzz_url(const char *in, size_t n)
{
    tess__redis_url_t u;
    char err[256];
    char *z = malloc(n + 1);
    if (z == NULL)
        return;
    memcpy(z, in, n);
    z[n] = '\0';
    if (tess__redis_url_parse(z, &u, err, sizeof(err)) == 0) {
        check(u.port >= 1 && u.port <= 65535 && u.db >= 0);
        check((u.host[0] != '\0') != (u.path[0] != '\0'));
    }
    free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in;
    size_t n;

    if (size == 0)
        return 0;
    n = size - 1;
    /* A heap copy of the exact length: ASan sees any read past it. */
    if ((in = malloc(n > 0 ? n : 1)) == NULL)
        return 0;
    memcpy(in, data + 1, n);
    if (data[0] % 2 == 0)
        fuzz_session(in, n);
    else
        fuzz_url(in, n);
    free(in);
    return 0;
}
