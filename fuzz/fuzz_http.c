/*
 * libFuzzer driver for the HTTP caching and event-stream parsers: If-None-Match (etag_matches, poll.c),
 * Last-Event-ID (sse_last_event_id) and the event-stream framing (sse_event, sse.c) of what the stream sends
 * (message_json, prechats.c). First byte % 4:
 *   0  the rest, split at LF, is a list of If-None-Match header values; compared with a parser written from
 *      RFC 9110's grammar (If-None-Match = "*" / #entity-tag): where every value is well-formed the answers
 *      agree (weak comparison); otherwise a match needs "*" or our tag in some value;
 *   1  the rest is a Last-Event-ID value: accepted exactly when it is 1..31 ASCII digits of at most
 *      INT64_MAX / 2, with that value;
 *   2  8 bytes of id, 1 byte of event name, then data: sse_event's bytes, read back by an event-stream parser
 *      written from the WHATWG HTML standard (9.2.6), are exactly one event with that id, type and data
 *      (line breaks read back as LF);
 *   3  a message (ids, time, role, body of valid UTF-8): its JSON as the stream frames it reads back (SSE,
 *      then JSON) to the same body and ids.
 * Build and run: see fuzz/README.md.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "server/poll.h"
#include "server/request.h"
#include "server/sse.h"

#define OUR_TAG "\"0123456789abcdef\"" /* a tag as render() makes them */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- If-None-Match ------------------------------------------------------------------------------------ */

static int ows(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * RFC 9110 8.8.3 and 5.6.1: "*", or a list of [W/] DQUOTE *etagc DQUOTE separated by commas with optional
 * blanks (empty elements allowed). Returns 1 when well-formed, with `*match` set when "*" or a tag whose
 * opaque part equals ours; 0 when malformed.
 */
static int ref_inm(const char *p, size_t n, int *match)
{
    size_t i = 0, b = 0, e = n;
    while (b < n && ows(p[b]))
        ++b;
    while (e > b && ows(p[e - 1]))
        --e;
    if (e - b == 1 && p[b] == '*') {
        *match = 1;
        return 1;
    }
    for (i = 0; i < n;) {
        while (i < n && (ows(p[i]) || p[i] == ','))
            ++i;
        if (i == n)
            break;
        if (n - i >= 2 && p[i] == 'W' && p[i + 1] == '/')
            i += 2;
        if (i == n || p[i] != '"')
            return 0;
        size_t start = i++;
        while (i < n && p[i] != '"') {
            unsigned char c = (unsigned char)p[i];
            if (!(c == 0x21 || (c >= 0x23 && c <= 0x7E) || c >= 0x80))
                return 0;
            ++i;
        }
        if (i == n)
            return 0;
        ++i;
        if (i - start == strlen(OUR_TAG) && memcmp(p + start, OUR_TAG, i - start) == 0)
            *match = 1;
        while (i < n && ows(p[i]))
            ++i;
        if (i < n && p[i] != ',')
            return 0;
    }
    return 1;
}

static void fuzz_inm(const char *in, size_t n)
{
    h2o_mem_pool_t pool;
    h2o_headers_t headers = {NULL, 0, 0};
    int wellformed = 1, want = 0, loose = 0;
    const char *p = in, *end = in + n;

    h2o_mem_init_pool(&pool);
    while (p <= end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl != NULL ? nl : end) - p);
        /* each value in a heap block of its exact length: ASan sees any read past it */
        char *v = h2o_mem_alloc_pool(&pool, len > 0 ? len : 1);
        memcpy(v, p, len);
        h2o_add_header(&pool, &headers, H2O_TOKEN_IF_NONE_MATCH, NULL, v, len);
        wellformed &= ref_inm(v, len, &want);
        loose |= memchr(v, '*', len) != NULL || memmem(v, len, OUR_TAG, strlen(OUR_TAG)) != NULL;
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    int got = etag_matches(&headers, TESS_STR_LIT(OUR_TAG));
    check(got == 0 || got == 1);
    if (wellformed)
        check(got == want);
    if (got)
        check(loose);
    h2o_mem_clear_pool(&pool);
}

/* ---- Last-Event-ID ---------------------------------------------------------------------------------------- */

static void fuzz_last_event_id(const char *in, size_t n)
{
    int64_t got = -1, want = 0;
    int ok = n >= 1 && n <= 31;
    for (size_t i = 0; ok && i < n; ++i) {
        if (in[i] < '0' || in[i] > '9' || want > (INT64_MAX / 2 - (in[i] - '0')) / 10)
            ok = 0;
        else
            want = want * 10 + (in[i] - '0');
    }
    int rc = sse_last_event_id(tess_strn(in, n), &got);
    check((rc == 0) == ok);
    if (ok)
        check(got == want);
}

/* ---- the event stream ------------------------------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static void buf_put(buf_t *b, const char *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        check(b->p != NULL);
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void sink(void *ctx, const char *p, size_t n)
{
    buf_put(ctx, p, n);
}

typedef struct event {
    int count;   /* events dispatched */
    buf_t type;  /* the last one's */
    buf_t data;  /* the last one's */
    buf_t id;    /* the last event ID */
    int has_id;  /* an id field was seen */
    int pending; /* fields after the last dispatch */
} event_t;

/* The WHATWG event-stream interpretation (9.2.6), on a whole stream. */
static void sse_parse(const char *s, size_t n, event_t *ev)
{
    buf_t data = {0}, type = {0};
    size_t i = 0;
    memset(ev, 0, sizeof(*ev));
    while (i < n) {
        size_t b = i, e;
        while (i < n && s[i] != '\n' && s[i] != '\r')
            ++i;
        if (i == n) {
            ev->pending = 1; /* a line without its end: never processed */
            break;
        }
        e = i;
        i += s[i] == '\r' && i + 1 < n && s[i + 1] == '\n' ? 2 : 1;
        if (e == b) {
            /* dispatch */
            if (data.len > 0) {
                ev->count++;
                ev->data.len = ev->type.len = 0;
                buf_put(&ev->data, data.p, data.len - 1); /* less the last LF */
                if (type.len > 0)
                    buf_put(&ev->type, type.p, type.len);
                else
                    buf_put(&ev->type, "message", 7);
            }
            data.len = type.len = 0;
            ev->pending = 0;
            continue;
        }
        ev->pending = 1;
        if (s[b] == ':')
            continue;
        const char *colon = memchr(s + b, ':', e - b);
        size_t fl = colon != NULL ? (size_t)(colon - (s + b)) : e - b;
        const char *v = colon != NULL ? colon + 1 : s + e;
        if (v < s + e && *v == ' ')
            ++v;
        size_t vl = (size_t)(s + e - v);
        if (fl == 5 && memcmp(s + b, "event", 5) == 0) {
            type.len = 0;
            buf_put(&type, v, vl);
        } else if (fl == 4 && memcmp(s + b, "data", 4) == 0) {
            buf_put(&data, v, vl);
            buf_put(&data, "\n", 1);
        } else if (fl == 2 && memcmp(s + b, "id", 2) == 0 && memchr(v, '\0', vl) == NULL) {
            ev->id.len = 0;
            buf_put(&ev->id, v, vl);
            ev->has_id = 1;
        }
    }
    free(data.p);
    free(type.p);
}

static void event_free(event_t *ev)
{
    free(ev->type.p);
    free(ev->data.p);
    free(ev->id.p);
}

/* Frames one event and reads it back: its data as a client sees it is returned in `*back` (free it). */
static void roundtrip(int64_t id, const char *type, const char *data, size_t n, buf_t *back)
{
    buf_t out = {0}, want = {0};
    event_t ev;
    char ids[32];

    sse_event(sink, &out, id, type, data, n);
    sse_parse(out.p, out.len, &ev);
    /* what the client must read: the data with every line break (CRLF, CR, LF) as LF */
    for (size_t i = 0; i < n; ++i) {
        if (data[i] == '\r') {
            buf_put(&want, "\n", 1);
            i += i + 1 < n && data[i + 1] == '\n';
        } else {
            buf_put(&want, data + i, 1);
        }
    }
    check(ev.count == 1 && !ev.pending);
    check(ev.data.len == want.len && (want.len == 0 || memcmp(ev.data.p, want.p, want.len) == 0));
    type = type != NULL ? type : "message";
    check(ev.type.len == strlen(type) && memcmp(ev.type.p, type, ev.type.len) == 0);
    if (id >= 0) {
        int m = snprintf(ids, sizeof(ids), "%" PRId64, id);
        check(ev.has_id && ev.id.len == (size_t)m && memcmp(ev.id.p, ids, (size_t)m) == 0);
    } else {
        check(!ev.has_id);
    }
    *back = ev.data;
    ev.data.p = NULL;
    event_free(&ev);
    free(want.p);
    free(out.p);
}

static int64_t int64_at(const char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = v << 8 | (uint8_t)p[i];
    return (int64_t)v;
}

static void fuzz_frame(const char *in, size_t n)
{
    static const char *types[] = {NULL, "message", "meta", "x"};
    buf_t back;
    if (n < 9)
        return;
    roundtrip(int64_at(in), types[(uint8_t)in[8] % 4], in + 9, n - 9, &back);
    free(back.p);
}

static void fuzz_message(const char *in, size_t n)
{
    static const char *roles[] = {"visitor", "agent", "", "a\"b\\c"};
    appdb_message_t m;
    buf_t back;
    char *json;
    cJSON *o;

    if (n < 25)
        return;
    memset(&m, 0, sizeof(m));
    /* cJSON prints numbers with 15 significant digits (exact below 10^15): ids stay below 2^49 */
    m.id = int64_at(in) & ((INT64_C(1) << 49) - 1);
    m.prechat_id = int64_at(in + 8) & ((INT64_C(1) << 49) - 1);
    m.created_ms = int64_at(in + 16) % (INT64_C(253402300800000)); /* before year 10000 */
    snprintf(m.sender_role, sizeof(m.sender_role), "%s", roles[(uint8_t)in[24] % 4]);
    in += 25, n -= 25;
    /* a body as the API accepts it (json_string_member): 1..APP_BODY_MAX bytes of UTF-8 without NUL */
    if (n == 0 || n > APP_BODY_MAX || memchr(in, '\0', n) != NULL || !utf8_valid((const unsigned char *)in, n))
        return;
    memcpy(m.body, in, n);
    m.body[n] = '\0';
    json = cJSON_PrintUnformatted(o = message_json(&m));
    cJSON_Delete(o);
    check(json != NULL);
    roundtrip(m.id, "message", json, strlen(json), &back);
    check(back.len == strlen(json) && memcmp(back.p, json, back.len) == 0); /* JSON has no raw line break */
    o = cJSON_ParseWithLength(back.p, back.len);
    check(o != NULL);
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(o, "body");
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(o, "id");
    check(cJSON_IsString(body) && strcmp(body->valuestring, m.body) == 0);
    check(cJSON_IsNumber(idv) && (int64_t)idv->valuedouble == m.id);
    cJSON_Delete(o);
    free(back.p);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in;
    size_t n;

    if (size == 0)
        return 0;
    if ((in = fuzz_rest(data, size, 0, &n)) == NULL)
        return 0;
    switch (data[0] % 4) {
    case 0:
        fuzz_inm(in, n);
        break;
    case 1:
        fuzz_last_event_id(in, n);
        break;
    case 2:
        fuzz_frame(in, n);
        break;
    case 3:
        fuzz_message(in, n);
        break;
    }
    free(in);
    return 0;
}
