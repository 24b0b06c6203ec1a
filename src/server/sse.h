/*
 * Server-Sent Events (the text/event-stream format of the WHATWG HTML standard, section 9.2): the bytes of one
 * event, and the resume point a reconnecting client sends. Pure functions, shared by push.c and the fuzz driver.
 */
#ifndef TESSERA_SERVER_SSE_H
#define TESSERA_SERVER_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "tessera/common.h"

#define SSE_ID_MAX 31 /* bytes in a Last-Event-ID we accept */

/* Where sse_event() puts its bytes (in order, possibly in several pieces). */
typedef void (*sse_write_fn)(void *ctx, const char *p, size_t n);

/*
 * Writes one event: "id: <id>\n" when id >= 0, "event: <event>\n" when `event` is not NULL (a name without CR
 * or LF), then `data` as one "data: " line per line of it (split at LF, CR and CRLF, which a client joins
 * back with LF), then the blank line that dispatches the event.
 */
void sse_event(sse_write_fn write, void *ctx, int64_t id, const char *event, const char *data, size_t n);

/*
 * A Last-Event-ID value: the message id to resume after (what an "id:" line of ours said). Returns 0 with
 * `*after`, or -1 when `value` is not 1..SSE_ID_MAX ASCII digits (no sign, no blank, no NUL) of a number up
 * to INT64_MAX / 2.
 */
int sse_last_event_id(tess_str_t value, int64_t *after);

#endif
