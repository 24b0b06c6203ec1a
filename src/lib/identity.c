/*
 * The identity rule (tessera/session.h, tess_session_identity_valid) and the report of a refusal
 * (identity.h).
 *
 * A session's userId and role leave tessera in HTTP headers (X-Session-User, X-Session-Role), in JSON, in
 * Redis keys and in log lines; they come from documents and tokens that other applications may write. The
 * rule keeps every byte that could end a header line or change a reader's idea of the value out: control
 * characters (CR, LF, NUL, DEL, the C1 range including NEL) and the space (a header reader trims blanks, so
 * "alice " would become "alice").
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>

#include "identity.h"
#include "tessera/encoding.h"
#include "tessera/session.h"

#define REPORT_INTERVAL_MS 1000 /* least time between two report lines */

/* 1 when p[0..n) is well-formed UTF-8 of printable characters: no overlong form, surrogate, code point past
 * U+10FFFF, control character (U+0000-U+001F, U+007F-U+009F) or space. */
static int printable_utf8(const unsigned char *p, size_t n)
{
    for (size_t i = 0, len; i < n; i += len) {
        uint32_t cp;
        if ((len = tess_utf8_decode(p + i, n - i, &cp)) == 0 || cp <= 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return 0;
    }
    return 1;
}

static int field_valid(tess_str_t v, size_t min, size_t max)
{
    return v.len >= min && v.len <= max && (v.len == 0 || printable_utf8((const unsigned char *)v.ptr, v.len));
}

int tess_session_identity_valid(tess_str_t user_id, tess_str_t role)
{
    return field_valid(user_id, 1, TESS_USER_ID_MAX) && field_valid(role, 0, TESS_ROLE_MAX);
}

static _Atomic int64_t next_report_ms; /* monotonic time the next line may be written */
static _Atomic uint64_t unreported;    /* refusals since the last line */

void tess__identity_refused(const char *source)
{
    int64_t now = tess_mono_ms();
    int64_t due = atomic_load_explicit(&next_report_ms, memory_order_relaxed);
    uint64_t n;

    atomic_fetch_add_explicit(&unreported, 1, memory_order_relaxed);
    if (now < due || !atomic_compare_exchange_strong_explicit(&next_report_ms, &due, now + REPORT_INTERVAL_MS,
                                                              memory_order_relaxed, memory_order_relaxed))
        return; /* another line went out less than a second ago, or is going out now */
    n = atomic_exchange_explicit(&unreported, 0, memory_order_relaxed);
    fprintf(stderr,
            "tessera: session refused: %s has a userId or role that is not printable UTF-8 (no control "
            "characters or spaces, userId 1-%d bytes, role 0-%d) [%" PRIu64 " such refusals since the last line]\n",
            source, TESS_USER_ID_MAX, TESS_ROLE_MAX, n);
}
