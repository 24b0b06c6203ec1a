/*
 * libFuzzer driver for the request line as tessera reads it: the route table (route_find, router.c) and the
 * query string (query_find, request.c) with every parameter a handler reads and the check it applies.
 * Input: "METHOD PATH[?QUERY]" (the first space splits; no space: GET). Checked:
 *   - route_find: a route matches only its own method (HEAD: GET), with a positive id exactly when the route
 *     has one, and the path is the route's shape around that id printed back in decimal; otherwise 404 or
 *     405, and 405 comes with an Allow list of known methods;
 *   - query_find: against a reference written from the URL standard's form splitting (first "name=" pair
 *     wins), into an output buffer of the exact capacity (ASan sees a write past it).
 * Build and run: see fuzz/README.md.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "app/appdb.h"
#include "app/config.h"
#include "server/push.h"
#include "server/router.h"
#include "tessera/encoding.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_route(tess_str_t method, tess_str_t path)
{
    int64_t id = -1;
    int status = 0;
    const char *why = NULL;
    char allow[64];
    const route_t *rt = route_find(method, path, &id, &status, &why, allow, sizeof(allow));

    if (rt == NULL) {
        check(id == 0 && why != NULL && (status == 404 || status == 405));
        check(status == 404 ? allow[0] == '\0'
                            : strcmp(allow, "GET") == 0 || strcmp(allow, "POST") == 0 ||
                                  strcmp(allow, "GET, POST") == 0 || strcmp(allow, "POST, GET") == 0);
        return;
    }
    check(tess_str_eq(method, tess_str(rt->method)) ||
          (tess_str_eq(method, TESS_STR_LIT("HEAD")) && strcmp(rt->method, "GET") == 0));
    if (rt->suffix == NULL) {
        check(id == 0 && tess_str_eq(path, tess_str(rt->prefix)));
    } else {
        char shape[128];
        check(id > 0 && id <= INT64_C(999999999999999999));
        int n = snprintf(shape, sizeof(shape), "%s%" PRId64 "%s", rt->prefix, id, rt->suffix);
        check(n > 0 && (size_t)n < sizeof(shape) && tess_str_eq(path, tess_strn(shape, (size_t)n)));
    }
}

/* The reference: split at '&', the first pair whose bytes before its first '=' are `name` gives the value. */
static int ref_find(tess_str_t q, const char *name, tess_str_t *value)
{
    size_t start = 0, nl = strlen(name);
    if (q.len == 0)
        return 0;
    while (start <= q.len) {
        size_t end = start;
        while (end < q.len && q.ptr[end] != '&')
            ++end;
        const char *eq = memchr(q.ptr + start, '=', end - start);
        if (eq != NULL && (size_t)(eq - (q.ptr + start)) == nl && memcmp(q.ptr + start, name, nl) == 0) {
            *value = tess_strn(eq + 1, (size_t)(q.ptr + end - eq - 1));
            return 1;
        }
        start = end + 1;
    }
    return 0;
}

/* One parameter as a handler reads it: query_find into `cap` bytes, then the handler's integer range. */
static void fuzz_param(tess_str_t q, const char *name, size_t cap, int64_t min, int64_t max)
{
    char *buf = malloc(cap), *ref = NULL;
    tess_str_t value;
    int rc, want;
    size_t rn = 0;

    if (buf == NULL)
        return;
    rc = query_find(q, name, buf, cap);
    want = q.len > QUERY_MAX ? -1 : ref_find(q, name, &value);
    if (want == 1) {
        /* percent-decoded (decodeURIComponent), no NUL, fits with its terminator */
        ref = malloc(value.len + 1);
        check(ref != NULL);
        if (tess_url_decode(value, ref, value.len + 1, &rn) != 0 || memchr(ref, '\0', rn) != NULL || rn >= cap)
            want = -1;
    }
    check(rc == want);
    if (rc == 1) {
        check(strlen(buf) == rn && memcmp(buf, ref, rn) == 0);
        if (min <= max) {
            int64_t v = min - 1;
            if (tess_parse_int(buf, min, max, &v) == 0)
                check(v >= min && v <= max);
        }
    }
    free(ref);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size > 0 ? size : 1);
    const char *sp, *qm;
    tess_str_t method, path, query;

    if (in == NULL)
        return 0;
    memcpy(in, data, size); /* a heap copy of the exact length: ASan sees any read past it */
    sp = memchr(in, ' ', size);
    method = sp != NULL ? tess_strn(in, (size_t)(sp - in)) : TESS_STR_LIT("GET");
    path = sp != NULL ? tess_strn(sp + 1, size - (size_t)(sp - in) - 1) : tess_strn(in, size);
    qm = memchr(path.ptr, '?', path.len);
    query = qm != NULL ? tess_strn(qm + 1, path.len - (size_t)(qm - path.ptr) - 1) : tess_strn(NULL, 0);
    if (qm != NULL)
        path.len = (size_t)(qm - path.ptr);

    fuzz_route(method, path);
    /* every parameter a handler reads, with its buffer and its range */
    fuzz_param(query, "wait", 16, 1, WAIT_MAX_S);
    fuzz_param(query, "after", 32, 0, INT64_MAX / 2);
    fuzz_param(query, "limit", 32, 1, APP_LIST_MAX);
    fuzz_param(query, "status", 16, 1, 0);
    fuzz_param(query, "everywhere", 8, 1, 0);
    free(in);
    return 0;
}
