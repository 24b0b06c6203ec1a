/*
 * Small shared types: length-carrying strings, limits, time.
 */
#ifndef TESSERA_COMMON_H
#define TESSERA_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The installed API: libtessera is built with -fvisibility=hidden, and only what carries TESS_API is exported
 * from the shared library (internal tess__ names never are).
 */
#define TESS_API __attribute__((visibility("default")))

/* A borrowed, length-carrying string: not NUL-terminated, not owned. Passed by value. */
typedef struct tess_str {
    const char *ptr; /* first byte (may be NULL when len == 0) */
    size_t len;      /* length in bytes */
} tess_str_t;

#define TESS_STR_LIT(s) ((tess_str_t){(s), sizeof(s) - 1})

static inline tess_str_t tess_str(const char *s)
{
    tess_str_t r = {s, s != NULL ? strlen(s) : 0};
    return r;
}

static inline tess_str_t tess_strn(const char *s, size_t n)
{
    tess_str_t r = {s, n};
    return r;
}

static inline int tess_str_eq(tess_str_t a, tess_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Hard limits. Inputs beyond them are rejected with TESS_ETOOBIG, never truncated. */
#define TESS_SID_MAX 128            /* session id, in bytes (ours are 43; express-session's uid-safe are 32) */
#define TESS_USER_ID_MAX 64         /* user id, in bytes */
#define TESS_ROLE_MAX 16            /* role name, in bytes */
#define TESS_JTI_MAX 64             /* JWT id, in bytes */
#define TESS_SECRET_MAX 512         /* one secret, in bytes */
#define TESS_SECRETS_MAX 16         /* secrets in a rotation list */
#define TESS_COOKIE_VALUE_MAX 4096  /* one cookie value, encoded */
#define TESS_TOKEN_MAX 4096         /* default bound on a JWT, in bytes */
#define TESS_SESSION_JSON_MAX 65536 /* a stored session document */

/* Milliseconds since the Unix epoch, wall clock (CLOCK_REALTIME). */
TESS_API int64_t tess_now_ms(void);
/* Milliseconds from a monotonic clock (CLOCK_MONOTONIC); for timeouts and intervals only. */
TESS_API int64_t tess_mono_ms(void);

#ifdef __cplusplus
}
#endif
#endif
