/*
 * libFuzzer driver for the origin parsers (src/app/origins.c): what a browser's Origin header, a Host header
 * and TESSERA_ALLOWED_ORIGINS hand tessera. First byte % 3: 0, the rest is one origin: whatever normalizes is
 * printable, normalizes to itself, and is allowed when listed; 1, the rest is "origin\nauthority": the own-host
 * match; 2, the rest is a list (NUL-terminated copy). Build: see fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app/origins.h"
#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_one(const char *in, size_t n)
{
    char a[APP_ORIGIN_MAX + 1], b[APP_ORIGIN_MAX + 1];
    app_origins_t list;
    char err[256];
    int na = app_origin_normalize(tess_strn(in, n), a, sizeof(a));

    if (na < 0)
        return;
    check((size_t)na == strlen(a) && (size_t)na <= n + 1);
    for (int i = 0; i < na; ++i)
        check(a[i] > 0x20 && a[i] < 0x7f && a[i] != ',' && !(a[i] >= 'A' && a[i] <= 'Z'));
    check(app_origin_normalize(tess_strn(a, (size_t)na), b, sizeof(b)) == na && strcmp(a, b) == 0);
    check(app_origins_parse(&list, a, "X", err, sizeof(err)) == 0 && list.count == 1);
    check(app_origin_allowed(&list, tess_strn(in, n), TESS_STR_LIT("unrelated.example")));
}

static void fuzz_own_host(const char *in, size_t n)
{
    static const app_origins_t none;
    const char *nl = memchr(in, '\n', n);
    if (nl == NULL)
        return;
    if (app_origin_allowed(&none, tess_strn(in, (size_t)(nl - in)), tess_strn(nl + 1, n - (size_t)(nl + 1 - in)))) {
        char o[APP_ORIGIN_MAX + 1];
        check(app_origin_normalize(tess_strn(in, (size_t)(nl - in)), o, sizeof(o)) >= 0);
    }
}

static void fuzz_list(const char *in, size_t n)
{
    app_origins_t list;
    char err[256];
    char *z = malloc(n + 1);
    if (z == NULL)
        return;
    memcpy(z, in, n);
    z[n] = '\0';
    if (app_origins_parse(&list, z, "X", err, sizeof(err)) == 0) {
        check(list.count <= APP_ORIGINS_MAX);
        for (size_t i = 0; i < list.count; ++i)
            check(app_origin_allowed(&list, tess_str(list.origin[i]), TESS_STR_LIT("")));
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
    if (data[0] % 3 == 0)
        fuzz_one(in, n);
    else if (data[0] % 3 == 1)
        fuzz_own_host(in, n);
    else
        fuzz_list(in, n);
    free(in);
    return 0;
}
