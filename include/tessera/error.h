/*
 * tessera error convention.
 *
 * Every fallible function returns 0 (TESS_OK) or a negative TESS_E* code.
 * Codes, names and messages come from the one X-macro table below.
 * Detail for humans, where a function offers it, goes to a buffer the caller owns.
 */
#ifndef TESSERA_ERROR_H
#define TESSERA_ERROR_H

#include "tessera/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TESS_ERRNO_MAP(X)                                                                                              \
    X(NOMEM, -1, "out of memory")                                                                                      \
    X(INVAL, -2, "invalid argument")                                                                                   \
    X(NOTFOUND, -3, "not found")                                                                                       \
    X(EXPIRED, -4, "expired")                                                                                          \
    X(BADSIG, -5, "bad signature")                                                                                     \
    X(TOOBIG, -6, "too large")                                                                                         \
    X(UNAVAIL, -7, "backend unavailable")                                                                              \
    X(TIMEOUT, -8, "timed out")                                                                                        \
    X(IO, -9, "input/output error")                                                                                    \
    X(EXISTS, -10, "already exists")                                                                                   \
    X(DENIED, -11, "permission denied")                                                                                \
    X(BADFMT, -12, "malformed input")                                                                                  \
    X(CONFIG, -13, "bad configuration")                                                                                \
    X(REVOKED, -14, "revoked")                                                                                         \
    X(NOSPACE, -15, "output buffer too small")                                                                         \
    X(CONFLICT, -16, "conflicting state")

enum {
    TESS_OK = 0,
#define TESS__ERRNO_ENUM(name, value, msg) TESS_E##name = (value),
    TESS_ERRNO_MAP(TESS__ERRNO_ENUM)
#undef TESS__ERRNO_ENUM
};

/* Human message for a code ("unknown error" for codes outside the table). Never NULL. */
TESS_API const char *tess_strerror(int err);
/* Symbolic name of a code without the prefix, e.g. "NOTFOUND"; "OK" for 0; "UNKNOWN" otherwise. Never NULL. */
TESS_API const char *tess_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
