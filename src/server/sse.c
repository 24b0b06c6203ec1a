/*
 * Server-Sent Events framing (sse.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "server/sse.h"

void sse_event(sse_write_fn write, void *ctx, int64_t id, const char *event, const char *data, size_t n)
{
    char head[32];
    size_t i = 0;

    if (id >= 0)
        write(ctx, head, (size_t)snprintf(head, sizeof(head), "id: %" PRId64 "\n", id));
    if (event != NULL) {
        write(ctx, "event: ", 7);
        write(ctx, event, strlen(event));
        write(ctx, "\n", 1);
    }
    /* A raw line break would end the field early (and a blank line the event): one data line per line. */
    do {
        size_t len = 0;
        while (i + len < n && data[i + len] != '\n' && data[i + len] != '\r')
            ++len;
        write(ctx, "data: ", 6);
        write(ctx, data + i, len);
        write(ctx, "\n", 1);
        i += len;
        if (i < n)
            i += data[i] == '\r' && i + 1 < n && data[i + 1] == '\n' ? 2 : 1;
        else
            break;
    } while (1);
    write(ctx, "\n", 1);
}

int sse_last_event_id(tess_str_t value, int64_t *after)
{
    int64_t v = 0;
    if (value.len == 0 || value.len > SSE_ID_MAX)
        return -1;
    /* Digits only, read over the value's length: "+5", "-0" and "5\0junk" are not ids we sent. */
    for (size_t i = 0; i < value.len; ++i) {
        unsigned d = (unsigned)(unsigned char)value.ptr[i] - '0';
        if (d > 9 || v > (INT64_MAX / 2 - (int64_t)d) / 10)
            return -1;
        v = v * 10 + (int64_t)d;
    }
    *after = v;
    return 0;
}
