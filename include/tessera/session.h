/*
 * The session model.
 *
 * A session has an absolute expiry (created + ttl, default 30 days, never extended) and a rolling idle
 * expiry (last touch + idle ttl). The store keeps `expires_ms` = min(idle expiry, absolute expiry): that is
 * connect-redis's key TTL and connect-pg-simple's `expire` column. Polling never writes: a session is touched
 * in its store at most once per touch interval (tess_session_needs_touch()).
 *
 * Stored form (connect-redis / connect-pg-simple `sess` JSON):
 *   {"cookie":{"originalMaxAge":<idle ms>,"expires":"<ISO>","secure":false,"httpOnly":true,"path":"/",
 *              "sameSite":"lax"},
 *    "userId":"<id>","role":"<role>","createdAt":<ms>,"absoluteExpiresAt":<ms>, ...app fields kept as-is}
 */
#ifndef TESSERA_SESSION_H
#define TESSERA_SESSION_H

#include "tessera/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tess_session {
    char id[TESS_SID_MAX + 1];          /* session id (unsigned) */
    char user_id[TESS_USER_ID_MAX + 1]; /* owner */
    char role[TESS_ROLE_MAX + 1];       /* "visitor", "agent", ... ("" when the document has none) */
    int64_t created_ms;                 /* creation, ms since epoch */
    int64_t absolute_expires_ms;        /* hard end of life, ms since epoch */
    int64_t expires_ms;                 /* current expiry in the store: min(idle, absolute) */
    int64_t max_age_ms;                 /* rolling window a touch extends by: cookie.originalMaxAge (ours: idle) */
    char *extra_json;                   /* app fields not modelled above, a JSON object text or NULL; owned */
} tess_session_t;

/* Lifetimes, all in seconds. */
typedef struct tess_session_policy {
    int64_t ttl_s;            /* absolute lifetime (default 30 days) */
    int64_t idle_s;           /* rolling idle lifetime (default 7 days; capped by ttl_s) */
    int64_t touch_interval_s; /* least time between two touches of one session (default 1 hour) */
} tess_session_policy_t;

/* Fills the defaults above. */
TESS_API void tess_session_policy_default(tess_session_policy_t *p);

/*
 * The identity rule, applied wherever a session's identity is made: a stored document (tess_session_from_json,
 * every store), a token's claims (the jwt strategy's check), a login (tess_session_init). `user_id`: 1 to
 * TESS_USER_ID_MAX bytes; `role`: 0 to TESS_ROLE_MAX bytes; both well-formed UTF-8 without control characters
 * (U+0000-U+001F, U+007F-U+009F) and without spaces. These values reach HTTP headers (X-Session-User), JSON,
 * Redis keys and logs: a CR or LF would split a header line, a blank would be trimmed into another name.
 * Returns 1 when both fit the rule, else 0. Pure; safe from any thread.
 */
TESS_API int tess_session_identity_valid(tess_str_t user_id, tess_str_t role);

/*
 * Initializes `s` for a new session of `user_id`/`role` at `now_ms`, with a fresh CSPRNG id.
 * Returns 0, TESS_EINVAL (an empty role, a user id or role outside tess_session_identity_valid(),
 * p->ttl_s <= 0), TESS_EIO (CSPRNG failure). idle_s <= 0 means "as long as ttl_s".
 */
TESS_API int tess_session_init(tess_session_t *s, const tess_session_policy_t *p, tess_str_t user_id, tess_str_t role,
                               int64_t now_ms);
/* Frees what `s` owns (extra_json) and zeroes it. The struct itself is the caller's. */
TESS_API void tess_session_clear(tess_session_t *s);
/* Deep copy; returns 0 or TESS_ENOMEM. `dst` must be cleared afterwards. */
TESS_API int tess_session_copy(tess_session_t *dst, const tess_session_t *src);

/* 1 when the session has expired at `now_ms` (idle or absolute). */
TESS_API int tess_session_expired(const tess_session_t *s, int64_t now_ms);
/*
 * 1 when a touch is due: the last touch (expires - window, or creation) is at least touch_interval ago and the
 * expiry can still move (absolute expiry not reached). The window is the session's max_age_ms when set (a
 * document's own originalMaxAge), else the policy's idle lifetime; new expiry = min(now + window, absolute).
 * Writes the new expiry to `*new_expires_ms`.
 */
TESS_API int tess_session_needs_touch(const tess_session_t *s, const tess_session_policy_t *p, int64_t now_ms,
                                      int64_t *new_expires_ms);

/*
 * Serializes to the stored JSON form (see above). Returns a malloc'd NUL-terminated string (free()) in
 * `*out`, or TESS_ENOMEM; TESS_EBADFMT when extra_json is set but is not a JSON object text.
 * role, createdAt and absoluteExpiresAt are omitted when empty/0. extra_json may carry "cookie" (a
 * document's own cookie attributes, written back with "expires" replaced) and a numeric "userId" (written
 * back as a number while it still matches user_id): from_json keeps them so express documents round-trip.
 */
TESS_API int tess_session_to_json(const tess_session_t *s, char **out, size_t *outlen);
/*
 * Parses a stored document for session `sid`. Accepts documents written by express-session apps: userId
 * as string or integer, role optional, createdAt optional (absent: cookie.expires - originalMaxAge),
 * absoluteExpiresAt optional (absent: no absolute bound: the app that made the session governs its life, and
 * tessera's touches extend it by its own originalMaxAge, as express-session does), unknown fields kept in
 * extra_json. `expire_ms_hint` (> 0) overrides cookie.expires
 * (the store's own expiry column/TTL is the truth). Rejects trailing garbage, nesting over 32 levels and
 * documents over TESS_SESSION_JSON_MAX. Returns 0, TESS_EBADFMT, TESS_ETOOBIG, TESS_ENOMEM.
 * TESS_EBADFMT also for a document without a userId (an anonymous session), without any expiry (no
 * cookie.expires and no hint), with an expiry after 9999-12-31T23:59:59.999Z (cookie.expires could not
 * hold it), or whose userId or role breaks tess_session_identity_valid() (reported on stderr in one line,
 * without the values; see src/lib/identity.h). On failure `s` is left zeroed (nothing to clear).
 */
TESS_API int tess_session_from_json(tess_session_t *s, tess_str_t sid, tess_str_t json, int64_t expire_ms_hint);

#ifdef __cplusplus
}
#endif
#endif
