/*
 * Signed session cookies, byte-compatible with express-session / cookie-signature:
 *   cookie value = encodeURIComponent("s:" + sid + "." + base64(HMAC-SHA256(secret, sid)) without '=')
 * and a secret rotation list: the first secret signs, every secret verifies.
 *
 * tess_secrets_t is immutable once built and may be shared by all threads.
 */
#ifndef TESSERA_COOKIE_H
#define TESSERA_COOKIE_H

#include "tessera/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tess_secrets tess_secrets_t;

/*
 * Parses a comma-separated secret list ("new,old,older"). Surrounding blanks of each entry are trimmed.
 * Returns 0 and a list to free with tess_secrets_free(); TESS_EINVAL for an empty list or an empty entry;
 * TESS_ETOOBIG for more than TESS_SECRETS_MAX entries or an entry over TESS_SECRET_MAX bytes; TESS_ENOMEM.
 */
TESS_API int tess_secrets_parse(tess_secrets_t **out, tess_str_t list);
TESS_API void tess_secrets_free(tess_secrets_t *secrets);
TESS_API size_t tess_secrets_count(const tess_secrets_t *secrets);
/* The i-th secret (0 signs). Borrowed from the list. */
TESS_API tess_str_t tess_secrets_get(const tess_secrets_t *secrets, size_t i);

/* Longest encoded cookie value tess_cookie_sign() can produce for a TESS_SID_MAX id. */
#define TESS_SIGNED_COOKIE_MAX (3 * (2 + TESS_SID_MAX + 1 + 43) + 1)

/*
 * Signs `sid` with the first secret and URL-encodes the result ("s%3A<sid>.<sig>" with '+' '/' escaped).
 * Writes a NUL-terminated value to `out`. Returns 0, TESS_EINVAL (sid empty or over TESS_SID_MAX),
 * TESS_ENOSPACE.
 */
TESS_API int tess_cookie_sign(const tess_secrets_t *secrets, tess_str_t sid, char *out, size_t cap, size_t *outlen);

/*
 * Verifies a cookie value as sent by the browser (URL-encoded or not). Checks the "s:" prefix and the
 * signature against every secret, in constant time, before anything else looks at the id.
 * On success writes the NUL-terminated session id to `sid_out` (cap >= TESS_SID_MAX + 1) and returns 0.
 * Returns TESS_ETOOBIG (value over TESS_COOKIE_VALUE_MAX), TESS_EBADFMT (not a signed value, or the id
 * is not a valid session id), TESS_EBADSIG (no secret verifies).
 * Order: size, URL decoding (a malformed escape is TESS_EBADFMT), "s:", the last '.', the id's length
 * (1..TESS_SID_MAX, else TESS_EBADFMT), the signature (secrets in order, stopping at the first that
 * verifies; each comparison constant-time), and only then the id's alphabet (tess_id_valid). So an id
 * that express-session accepts but that is not base64url (it needed URL encoding) is TESS_EBADFMT.
 * Also TESS_EINVAL (NULL secrets or sid_out), TESS_ENOSPACE (cap too small for the id).
 */
TESS_API int tess_cookie_unsign(const tess_secrets_t *secrets, tess_str_t value, char *sid_out, size_t cap,
                                size_t *sid_len);

/*
 * Finds cookie `name` in a Cookie request header ("a=1; b=2"). The first match wins; surrounding blanks
 * and a pair of double quotes around the value are removed. Returns 0 with `*value` borrowed from
 * `header`, or TESS_ENOTFOUND.
 */
TESS_API int tess_cookie_find(tess_str_t header, tess_str_t name, tess_str_t *value);

/* Most chunks tess_cookie_find_chunked() joins (NextAuth splits a value every 3,933 bytes). */
#define TESS_COOKIE_CHUNKS_MAX 16

/*
 * Finds cookie `name` as NextAuth's SessionStore writes it: the cookie itself, or when it is absent its chunks
 * `<name>.0`, `<name>.1`, ... (each as tess_cookie_find() finds it), joined in order into `buf` up to the first
 * missing index. Returns 0 with `*value` (borrowed from `header`, or `buf` for chunks) and `*chunks` (0 for the
 * plain cookie, else how many were joined); TESS_ENOTFOUND; TESS_ETOOBIG when the joined value would exceed
 * `cap` or more than TESS_COOKIE_CHUNKS_MAX chunks are present; TESS_EINVAL (a name over 63 bytes).
 */
TESS_API int tess_cookie_find_chunked(tess_str_t header, tess_str_t name, char *buf, size_t cap, tess_str_t *value,
                                      size_t *chunks);

/* Attributes of a Set-Cookie header. */
typedef struct tess_set_cookie {
    tess_str_t name;       /* cookie name */
    tess_str_t value;      /* already encoded value */
    int64_t max_age_s;     /* Max-Age (and Expires); 0 clears the cookie; negative: session cookie */
    int64_t now_ms;        /* wall clock used for Expires */
    int secure;            /* add Secure */
    int http_only;         /* add HttpOnly */
    const char *same_site; /* "Lax", "Strict", "None" or NULL */
    const char *path;      /* Path, NULL for "/" */
} tess_set_cookie_t;

/*
 * Formats a Set-Cookie header value: "name=value; Max-Age=N; Path=/; Expires=<date>; HttpOnly; Secure;
 * SameSite=X" (the npm cookie package's order). Max-Age 0 sets Expires to the epoch. Returns 0,
 * TESS_ENOSPACE, or TESS_EINVAL (empty name, '=' in the name, a control byte or ';' in name, value, path or
 * same_site, or an expiry past year 9999). `out` NUL-terminated ("" on error).
 */
TESS_API int tess_set_cookie_format(const tess_set_cookie_t *c, char *out, size_t cap, size_t *outlen);

/*
 * Formats an HTTP / ISO-8601 date of `ms`: "Wed, 21 Oct 2015 07:28:00 GMT" (cap >= 30). Returns the length
 * (29), or 0 when cap is short or `ms` is outside years 1970..9999.
 */
TESS_API size_t tess_http_date(int64_t ms, char *out, size_t cap);
/*
 * "2015-10-21T07:28:00.000Z" (cap >= 25), as JavaScript's Date.prototype.toISOString, including its
 * expanded years outside 0..9999 ("+275760-09-13T00:00:00.000Z", cap >= 28). Returns the length, or 0
 * when cap is short or |ms| > 8.64e15 (where toISOString throws).
 */
TESS_API size_t tess_iso_date(int64_t ms, char *out, size_t cap);
/*
 * Parses the ISO-8601 UTC form above (four-digit years; fraction optional, 1..9 digits, the first three
 * are the milliseconds; 'Z' required). Returns 0 or TESS_EBADFMT.
 */
TESS_API int tess_iso_date_parse(tess_str_t s, int64_t *ms);

#ifdef __cplusplus
}
#endif
#endif
