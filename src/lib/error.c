#include "tessera/error.h"

const char *tess_strerror(int err)
{
    switch (err) {
    case TESS_OK:
        return "success";
#define TESS__ERRNO_MSG(name, value, msg)                                                                              \
    case TESS_E##name:                                                                                                 \
        return msg;
        TESS_ERRNO_MAP(TESS__ERRNO_MSG)
#undef TESS__ERRNO_MSG
    default:
        return "unknown error";
    }
}

const char *tess_err_name(int err)
{
    switch (err) {
    case TESS_OK:
        return "OK";
#define TESS__ERRNO_NAME(name, value, msg)                                                                             \
    case TESS_E##name:                                                                                                 \
        return #name;
        TESS_ERRNO_MAP(TESS__ERRNO_NAME)
#undef TESS__ERRNO_NAME
    default:
        return "UNKNOWN";
    }
}
