/*
 * The pre-chat page (web.c): the files of web/, compiled into the binary at build time
 * (cmake/embed_web.cmake), served at GET / (index.html) and GET /static/<name>.
 *
 * Embedded rather than read from a directory: the page cannot go missing or out of step with the server
 * that serves its API, no file-system path is ever built from a request, and `tessera serve` needs no option
 * to find it. A request is served only when its path, exactly as sent (before any '?'), is an asset's path;
 * anything else (`..`, `%2e%2e`, `//`, a NUL) goes on to the route table and gets its 404 JSON.
 */
#ifndef TESSERA_SERVER_WEB_H
#define TESSERA_SERVER_WEB_H

#include <stddef.h>

typedef struct web_asset {
    const char *path;          /* "/" or "/static/<name>" */
    const char *type;          /* Content-Type */
    const unsigned char *data; /* the bytes (static) */
    size_t len;                /* their number */
    const char *etag;          /* strong tag with its quotes: 64 bits of the file's SHA-256 */
} web_asset_t;

extern const web_asset_t web_assets[]; /* generated */
extern const size_t web_assets_count;  /* generated */

/* The asset whose path is exactly `path` (`n` bytes), or NULL. */
const web_asset_t *web_find(const char *path, size_t n);

struct tess_req;
/*
 * In the router, before the route table: answers a request for an asset (GET/HEAD: 200 or 304 on
 * If-None-Match; another method: 405) with the page's security headers. Returns 1 when it answered, 0 when
 * the path is not an asset's.
 */
int web_try(struct tess_req *r);

#endif
