/*
 * Inside the database's revocation list (tessera/revoke.h, revlist.c): what the revoker (revoke.c) uses.
 *
 * Keys are stored as given when they are 1..TESS__REVLIST_KEY_MAX printable ASCII bytes without blanks, and
 * as "k:" + base64url(SHA-256(id)) otherwise (tess__revlist_key), so that any jti or user id fits a text
 * column and a NOTIFY payload.
 */
#ifndef TESS_CACHE_REVLIST_H
#define TESS_CACHE_REVLIST_H

#include <stdint.h>

#include "tessera/revoke.h"

#define TESS__REVLIST_KEY_MAX 128

enum { TESS__REVLIST_DENY = 0, TESS__REVLIST_CUT = 1, TESS__REVLIST_ANY = 2 };

/* Writes the stored form of `id` into `out` (TESS__REVLIST_KEY_MAX + 1 bytes). 0, or -1 for an empty id. */
int tess__revlist_key(tess_str_t id, char out[TESS__REVLIST_KEY_MAX + 1]);

/*
 * From the mirror, no I/O: 0 (neither the token `id` is denied nor its user cut off at or after iat_s),
 * TESS_EREVOKED, or TESS_EUNAVAIL (the mirror is not known to be current: fail closed). Keys in stored form.
 */
int tess__revlist_check(tess_revlist_t *l, tess_str_t id, tess_str_t uid, int64_t iat_s, int64_t now_ms);

/* One loop's writer: rows into the table, then into this process's mirror. */
typedef struct tess__revwriter tess__revwriter_t;
int tess__revwriter_open(tess__revwriter_t **out, tess_revlist_t *l, tess_loop_t *loop, int64_t timeout_ms, char *err,
                         size_t errcap);
/*
 * Records a deny entry (value 0) or a cut-off (value: cut_ms) for `key` (stored form) until `expires_ms`.
 * Calls `cb` exactly once (SQLite: before returning), 0 once the row is committed and mirrored.
 */
void tess__revwriter_put(tess__revwriter_t *w, int kind, const char *key, int64_t value, int64_t expires_ms,
                         tess_revoker_cb cb, void *arg);
/* Pending writes complete with TESS_EUNAVAIL first. NULL is a no-op. */
void tess__revwriter_free(tess__revwriter_t *w);

#endif
