/*
 * Allowed origins (RFC 6454): TESSERA_ALLOWED_ORIGINS, and the match of a request's Origin header against it
 * or, when it is empty, against the request's own host.
 *
 * An origin is "scheme://host[:port]" with scheme http or https; compared normalized: scheme and host in
 * lower case, the port only when it is not the scheme's default (http 80, https 443). Nothing else is an
 * origin: no path (not even "/"), userinfo, query, wildcard or "null". Everything here is pure.
 */
#ifndef TESSERA_APP_ORIGINS_H
#define TESSERA_APP_ORIGINS_H

#include <stddef.h>

#include "tessera/common.h"

#define APP_ORIGINS_MAX 16 /* entries in TESSERA_ALLOWED_ORIGINS */
#define APP_ORIGIN_MAX 255 /* bytes of one origin */

typedef struct app_origins {
    size_t count;                                     /* entries; 0: the request's own host */
    char origin[APP_ORIGINS_MAX][APP_ORIGIN_MAX + 1]; /* each normalized, e.g. "https://chat.example.com" */
} app_origins_t;

/*
 * Normalizes origin `in` into `out` (NUL-terminated; `cap` of APP_ORIGIN_MAX + 1 is enough). Returns its
 * length, or -1 when `in` is not an http(s) origin of at most APP_ORIGIN_MAX bytes.
 */
int app_origin_normalize(tess_str_t in, char *out, size_t cap);

/*
 * Parses a comma-separated list (blanks around the commas allowed; NULL or "" is the empty list) into `o`.
 * Returns 0, or -1 with a one-line reason in `err` naming `from` (the variable or flag).
 */
int app_origins_parse(app_origins_t *o, const char *list, const char *from, char *err, size_t errcap);

/*
 * 1 when `origin` (an Origin header's value) is allowed: equal to an entry of `o`; with an empty `o`, the
 * same host and port as `authority` (the request's Host header or HTTP/2 :authority). The scheme cannot be
 * compared there (behind a proxy that ends TLS the request arrives over http): list the origins to pin it.
 * 0 for anything else, "null" and malformed values included.
 */
int app_origin_allowed(const app_origins_t *o, tess_str_t origin, tess_str_t authority);

#endif
