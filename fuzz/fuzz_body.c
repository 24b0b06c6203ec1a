/*
 * libFuzzer driver for the JSON request bodies (request.c): json_body_parse (cJSON, trailing garbage,
 * json_has_nul_escape, json_members_unique and their bounds), then every route's field extraction
 * (json_string_member, with utf8_valid) as the handlers call it. First byte % 2:
 *   0  the rest is a body: whatever is accepted is one object with no \u0000 escape, no repeated member name,
 *      at most 64 members and 16 levels (checked by independent scans); each route's fields, when accepted,
 *      are 1..max bytes of UTF-8 without NUL, and refused with 413 exactly when too long;
 *   1  the rest is raw bytes: utf8_valid against a validator written from the Unicode standard's table of
 *      well-formed byte sequences (Table 3-7).
 * Build and run: see fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "app/appdb.h"
#include "server/request.h"

#define BODY_MAX 65536    /* TESSERA_MAX_BODY's default */
#define PASSWORD_MAX 1024 /* auth.c */
#define MEMBERS_MAX 64    /* request.c */
#define DEPTH_MAX 16      /* request.c */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Unicode Table 3-7: the length of the well-formed sequence at `p`, 0 if none. */
static size_t ref_seq_len(const unsigned char *p, size_t n)
{
    static const struct {
        unsigned char lo[4], hi[4];
        size_t len;
    } rows[] = {
        {{0x00}, {0x7F}, 1},
        {{0xC2, 0x80}, {0xDF, 0xBF}, 2},
        {{0xE0, 0xA0, 0x80}, {0xE0, 0xBF, 0xBF}, 3},
        {{0xE1, 0x80, 0x80}, {0xEC, 0xBF, 0xBF}, 3},
        {{0xED, 0x80, 0x80}, {0xED, 0x9F, 0xBF}, 3},
        {{0xEE, 0x80, 0x80}, {0xEF, 0xBF, 0xBF}, 3},
        {{0xF0, 0x90, 0x80, 0x80}, {0xF0, 0xBF, 0xBF, 0xBF}, 4},
        {{0xF1, 0x80, 0x80, 0x80}, {0xF3, 0xBF, 0xBF, 0xBF}, 4},
        {{0xF4, 0x80, 0x80, 0x80}, {0xF4, 0x8F, 0xBF, 0xBF}, 4},
    };
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        size_t k;
        if (rows[r].len > n)
            continue;
        for (k = 0; k < rows[r].len && p[k] >= rows[r].lo[k] && p[k] <= rows[r].hi[k]; k++)
            ;
        if (k == rows[r].len)
            return k;
    }
    return 0;
}

static int ref_utf8(const unsigned char *p, size_t n)
{
    for (size_t i = 0, k; i < n; i += k) {
        if ((k = ref_seq_len(p + i, n - i)) == 0)
            return 0;
    }
    return 1;
}

/* A JSON text's strings, scanned with the grammar's states: 1 when one holds the escape \u0000. */
static int ref_nul_escape(const char *p, size_t n)
{
    enum { OUT, IN, ESC } st = OUT;
    for (size_t i = 0; i < n; ++i) {
        switch (st) {
        case OUT:
            st = p[i] == '"' ? IN : OUT;
            break;
        case IN:
            st = p[i] == '\\' ? ESC : p[i] == '"' ? OUT : IN;
            break;
        case ESC:
            if (p[i] == 'u' && n - i > 4 && memcmp(p + i + 1, "0000", 4) == 0)
                return 1;
            st = IN;
            break;
        }
    }
    return 0;
}

/* Every object in `v` (at `depth`) has members whose names first occur at themselves; bounded. */
static int ref_unique(const cJSON *v, int depth)
{
    int n = 0;
    if (depth > DEPTH_MAX)
        return 0;
    for (const cJSON *c = v->child; c != NULL; c = c->next) {
        if (++n > MEMBERS_MAX || !ref_unique(c, depth + 1))
            return 0;
        if (cJSON_IsObject(v) && cJSON_GetObjectItemCaseSensitive(v, c->string) != c)
            return 0;
    }
    return 1;
}

static void field(const cJSON *body, const char *name, size_t max)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    char msg[128];
    tess_str_t out;
    int status = json_string_member(body, name, max, &out, msg, sizeof(msg));
    int is_str = cJSON_IsString(v) && v->valuestring != NULL;
    size_t n = is_str ? strlen(v->valuestring) : 0;

    check(status == 0 || status == 400 || status == 413);
    check(memchr(msg, '\0', sizeof(msg)) != NULL || status == 0);
    if (status == 0) {
        check(is_str && out.ptr == v->valuestring && out.len == n && n >= 1 && n <= max);
        check(ref_utf8((const unsigned char *)out.ptr, out.len));
    } else {
        check(out.ptr == NULL && out.len == 0);
        check(status == 413 ? is_str && n > max
                            : !is_str || n == 0 || !ref_utf8((const unsigned char *)v->valuestring, n));
    }
}

static void fuzz_body(const char *in, size_t n)
{
    cJSON *body = (cJSON *)1;
    const char *code = NULL, *message = NULL;
    int status = json_body_parse(tess_strn(in, n), BODY_MAX, &body, &code, &message);

    check(status == 0 || status == 400 || status == 413);
    if (status != 0) {
        check(body == NULL && code != NULL && message != NULL);
        check((status == 413) == (n > BODY_MAX));
        if (status == 400 && n > 0) {
            /* refused: cJSON does not take it as one object, or one of the body rules does */
            const char *end = NULL;
            cJSON *v = cJSON_ParseWithLengthOpts(in, n, &end, 0);
            size_t at = v != NULL ? (size_t)(end - in) : n;
            while (at < n && (in[at] == ' ' || in[at] == '\t' || in[at] == '\r' || in[at] == '\n'))
                ++at;
            if (v != NULL && cJSON_IsObject(v) && at == n)
                check(ref_nul_escape(in, n) || !ref_unique(v, 0));
            cJSON_Delete(v);
        }
        return;
    }
    check(body != NULL && cJSON_IsObject(body));
    check(!ref_nul_escape(in, n) && ref_unique(body, 0));
    /* the fields of POST /api/auth/login, /api/prechats and /api/prechats/{id}/messages */
    field(body, "username", APP_NAME_MAX);
    field(body, "password", PASSWORD_MAX);
    field(body, "topic", APP_TOPIC_MAX);
    field(body, "body", APP_BODY_MAX);
    cJSON_Delete(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in;
    size_t n;

    if (size == 0)
        return 0;
    if ((in = fuzz_rest(data, size, 0, &n)) == NULL)
        return 0;
    if (data[0] % 2 == 0) {
        fuzz_body(in, n);
    } else {
        check(utf8_valid((const unsigned char *)in, n) == ref_utf8((const unsigned char *)in, n));
        check(json_has_nul_escape(tess_strn(in, n)) == ref_nul_escape(in, n));
    }
    free(in);
    return 0;
}
