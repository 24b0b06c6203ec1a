/* The stored session document read in place (session_flat.c): tess_session_from_json's fast path. */
#ifndef TESS_SESSION_FLAT_H
#define TESS_SESSION_FLAT_H

#include <stdint.h>

#include "tessera/session.h"

typedef struct tess__flat {
    int64_t cookie_expires; /* cookie.expires in ms (0: none) */
    int64_t max_age;        /* cookie.originalMaxAge (-1: none or null) */
    int have_cookie;        /* "cookie" was an object */
    int cookie_default;     /* ... exactly the one tess_session_to_json writes by default */
    int cookie_other;       /* ... with members beyond the known ones */
    char *extra;            /* the members kept verbatim, as one object (NULL: none); the caller owns it */
    size_t extra_len;       /* its length */
    size_t extra_cap;       /* its allocation */
} tess__flat_t;

/*
 * Reads a plain session document: s->user_id, s->role, s->created_ms and s->absolute_expires_ms, and into
 * `f` the cookie's fields and extra_json's text. Returns 1 when it did; 0 when it declines (the document is
 * not plain, or the model refuses it: the caller reads it with cJSON, `s` and `f` back to zero); or
 * TESS_ENOMEM.
 */
int tess__session_flat_read(tess_session_t *s, tess_str_t json, tess__flat_t *f);

/*
 * tess_session_from_json's cJSON path alone, with every rule and error report: what the flat path declines
 * goes here, and fuzz/fuzz_session.c checks that both paths agree.
 */
int tess__session_from_json_cjson(tess_session_t *s, tess_str_t sid, tess_str_t json, int64_t expire_ms_hint);

#endif
