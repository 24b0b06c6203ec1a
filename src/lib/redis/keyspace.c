#include <string.h>

#include "tessera/error.h"
#include "tessera/keyspace.h"

const char *tess_keyspace_session(const tess_keyspace_t *ks)
{
    return ks != NULL && ks->session != NULL ? ks->session : TESS_KEYSPACE_SESSION_DEFAULT;
}

const char *tess_keyspace_tessera(const tess_keyspace_t *ks)
{
    return ks != NULL && ks->tessera != NULL ? ks->tessera : TESS_KEYSPACE_TESSERA_DEFAULT;
}

int tess_keyspace_check(const tess_keyspace_t *ks)
{
    const char *s = tess_keyspace_session(ks), *t = tess_keyspace_tessera(ks);
    size_t sl = strlen(s), tl = strlen(t);
    if (sl == 0 || tl == 0 || sl > TESS_KEY_PREFIX_MAX || tl > TESS_KEY_PREFIX_MAX)
        return TESS_EINVAL;
    /* One prefix inside the other would make a session id look like one of tessera's keys, or back. */
    if (strncmp(s, t, sl < tl ? sl : tl) == 0)
        return TESS_EINVAL;
    return 0;
}

/* 1 when `k` starts with `p`, with the remainder in `*rest`. */
static int strip(tess_str_t k, const char *p, tess_str_t *rest)
{
    size_t n = strlen(p);
    if (k.len < n || memcmp(k.ptr, p, n) != 0)
        return 0;
    *rest = tess_strn(k.ptr + n, k.len - n);
    return 1;
}

tess_key_kind_t tess_keyspace_classify(const tess_keyspace_t *ks, tess_str_t key, tess_str_t *rest)
{
    tess_str_t r, dummy;
    tess_key_kind_t kind = TESS_KEYKIND_OTHER;

    if (rest == NULL)
        rest = &dummy;
    *rest = tess_strn(NULL, 0);
    if (strip(key, tess_keyspace_tessera(ks), &r)) {
        tess_str_t l2;
        if (r.len == strlen(TESS_KEY_EPOCH) && memcmp(r.ptr, TESS_KEY_EPOCH, r.len) == 0)
            return TESS_KEYKIND_EPOCH;
        if (strip(r, TESS_KEY_L2, &l2)) { /* an L2 copy or its user set: as under the session prefix */
            if (strip(l2, TESS_KEY_USER, rest))
                return TESS_KEYKIND_USER_SET;
            *rest = l2;
            return TESS_KEYKIND_SESSION;
        }
        if (strip(r, TESS_KEY_DENY, rest))
            kind = TESS_KEYKIND_DENY;
        else if (strip(r, TESS_KEY_CUTOFF, rest))
            kind = TESS_KEYKIND_CUTOFF;
        else if (strip(r, TESS_KEY_APP, rest))
            kind = TESS_KEYKIND_APP;
        return kind;
    }
    if (strip(key, tess_keyspace_session(ks), &r)) {
        if (strip(r, TESS_KEY_USER, rest))
            return TESS_KEYKIND_USER_SET;
        *rest = r;
        return TESS_KEYKIND_SESSION;
    }
    return kind;
}
