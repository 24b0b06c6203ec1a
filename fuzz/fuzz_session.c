/*
 * libFuzzer driver for the stored-session parser and the Redis URL parser: tess_session_from_json (what
 * Redis and PostgreSQL hand back, possibly written by another app) and tess__redis_url_parse.
 * First byte % 3:
 *   0  a connect-redis document (the expiry is the document's cookie.expires); whatever parses must
 *      serialize and parse again to the same modelled fields, and again after a touch moved its expiry;
 *      and the in-place reader (session_flat.c) and the cJSON path agree on it: the same answer, the same
 *      fields, extra_json the same JSON value;
 *   1  a Redis URL (NUL-terminated copy);
 *   2  a connect-pg-simple row: 8 bytes of the expire column (ms, little-endian; as the store reads it)
 *      then the sess document; the column, when positive, is the expiry.
 * Build and run: see fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "session_flat.h"
#include "redis/rconn.h"
#include "tessera/error.h"
#include "tessera/session.h"

#define NOW_MS INT64_C(1700000000000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The document read by tess_session_from_json (the in-place reader first) and by the cJSON path alone. */
static void fuzz_paths_agree(const char *in, size_t n, int64_t hint)
{
    tess_session_t a, b;
    int ra = tess_session_from_json(&a, TESS_STR_LIT("fuzzsid"), tess_strn(in, n), hint);
    int rb = tess__session_from_json_cjson(&b, TESS_STR_LIT("fuzzsid"), tess_strn(in, n), hint);

    if (ra == TESS_ENOMEM || rb == TESS_ENOMEM)
        goto out;
    check(ra == rb);
    if (ra == 0) {
        check(strcmp(a.id, b.id) == 0 && strcmp(a.user_id, b.user_id) == 0 && strcmp(a.role, b.role) == 0);
        check(a.expires_ms == b.expires_ms && a.absolute_expires_ms == b.absolute_expires_ms);
        check(a.created_ms == b.created_ms && a.max_age_ms == b.max_age_ms);
        check((a.extra_json == NULL) == (b.extra_json == NULL));
        if (a.extra_json != NULL) {
            /* Both printed by cJSON: one form per value, repeated members included (cJSON_Compare would
               match a repeated member against the first of its name). */
            cJSON *x = cJSON_Parse(a.extra_json), *y = cJSON_Parse(b.extra_json);
            char *px = x != NULL ? cJSON_PrintUnformatted(x) : NULL, *py = y != NULL ? cJSON_PrintUnformatted(y) : NULL;
            check(px != NULL && py != NULL && strcmp(px, py) == 0);
            free(px);
            free(py);
            cJSON_Delete(x);
            cJSON_Delete(y);
        }
    }
out:
    tess_session_clear(&a);
    tess_session_clear(&b);
}

static void fuzz_session(const char *in, size_t n, int64_t hint)
{
    static const tess_session_t zero;
    tess_session_t a, b;
    char *json = NULL;
    size_t len = 0;
    int rc;

    fuzz_paths_agree(in, n, hint);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    rc = tess_session_from_json(&a, TESS_STR_LIT("fuzzsid"), tess_strn(in, n), hint);
    check(rc == 0 || rc == TESS_EBADFMT || rc == TESS_ETOOBIG || rc == TESS_ENOMEM);
    if (rc != 0) {
        check(memcmp(&a, &zero, sizeof(a)) == 0); /* left zeroed: nothing to clear */
        return;
    }
    check(strcmp(a.id, "fuzzsid") == 0 && a.user_id[0] != '\0');
    if (hint > 0)
        check(a.expires_ms == hint);                                           /* the store's column is the truth */
    check(tess_session_identity_valid(tess_str(a.user_id), tess_str(a.role))); /* never a header line break */
    if (tess_session_to_json(&a, &json, &len) == 0) {
        check(strlen(json) == len);
        check(tess_session_from_json(&b, TESS_STR_LIT("fuzzsid"), tess_strn(json, len), hint) == 0);
        check(strcmp(a.user_id, b.user_id) == 0 && strcmp(a.role, b.role) == 0);
        check(a.expires_ms == b.expires_ms && a.absolute_expires_ms == b.absolute_expires_ms);
        free(json);
    }
    tess_session_clear(&b);
    /* a touch moves the expiry; what is written then must read back with it (the column moves too) */
    tess_session_policy_t policy;
    int64_t moved = 0;
    tess_session_policy_default(&policy);
    if (tess_session_needs_touch(&a, &policy, NOW_MS, &moved)) {
        check(moved > a.expires_ms);
        a.expires_ms = moved;
        if (tess_session_to_json(&a, &json, &len) == 0) {
            check(tess_session_from_json(&b, TESS_STR_LIT("fuzzsid"), tess_strn(json, len), hint > 0 ? moved : 0) == 0);
            check(b.expires_ms == moved);
            free(json);
        }
        tess_session_clear(&b);
    }
    tess_session_clear(&a);
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
    if ((in = fuzz_rest(data, size, 0, &n)) == NULL)
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_session(in, n, 0);
        break;
    case 1:
        fuzz_url(in, n);
        break;
    case 2: {
        uint64_t col = 0;
        if (n < 8)
            break;
        for (int i = 7; i >= 0; --i)
            col = col << 8 | (uint8_t)in[i];
        fuzz_session(in + 8, n - 8, (int64_t)col);
        break;
    }
    }
    free(in);
    return 0;
}
