/*
 * libFuzzer driver for the Redis key space (tessera/keyspace.h) and the application's change names
 * (meta_name_id, poll.c): what the coherence listener hears is classified, and an application key's name
 * may evict a meta cache entry.
 * Input: "SESSION_PREFIX\0TESSERA_PREFIX\0KEY" (fewer NULs: the default prefixes; an empty prefix: its
 * default). Checked: tess_keyspace_check; for valid prefixes, the kind and `rest` rebuild the key exactly
 * (prefix + the kind's fixed part + rest), `rest` lies inside the key, and an OTHER key is not the session
 * prefix's and, when it is the tessera prefix's, has none of its kinds' fixed parts (the L2 copies and their
 * user sets, under <tessera>l2:, are session kinds); for an application key,
 * meta_name_id accepts only "meta:" + the id in canonical decimal. Build and run: see fuzz/README.md.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "server/poll.h"
#include "tessera/keyspace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int starts(tess_str_t s, const char *p)
{
    size_t n = strlen(p);
    return s.len >= n && memcmp(s.ptr, p, n) == 0;
}

static void fuzz_key(const tess_keyspace_t *ks, tess_str_t key)
{
    const char *sp = tess_keyspace_session(ks), *tp = tess_keyspace_tessera(ks), *fixed = NULL, *prefix = NULL;
    tess_str_t rest = TESS_STR_LIT("unset");
    tess_key_kind_t kind = tess_keyspace_classify(ks, key, &rest);
    char l2[TESS_KEY_L2_PREFIX_MAX + 1], *re;
    size_t n;

    snprintf(l2, sizeof(l2), "%s%s", tp, TESS_KEY_L2); /* the cached strategy's L2 copies and user sets */

    check(tess_keyspace_classify(ks, key, NULL) == kind);
    switch (kind) {
    case TESS_KEYKIND_OTHER:
        check(rest.len == 0 && !starts(key, sp));
        if (starts(key, tp)) { /* one of tessera's, of no kind we know */
            tess_str_t r = tess_strn(key.ptr + strlen(tp), key.len - strlen(tp));
            check(!tess_str_eq(r, TESS_STR_LIT(TESS_KEY_EPOCH)) && !starts(r, TESS_KEY_DENY) &&
                  !starts(r, TESS_KEY_CUTOFF) && !starts(r, TESS_KEY_APP) && !starts(r, TESS_KEY_L2));
        }
        return;
    case TESS_KEYKIND_SESSION:
        prefix = starts(key, l2) ? l2 : sp, fixed = "";
        break;
    case TESS_KEYKIND_USER_SET:
        prefix = starts(key, l2) ? l2 : sp, fixed = TESS_KEY_USER;
        break;
    case TESS_KEYKIND_EPOCH:
        prefix = tp, fixed = TESS_KEY_EPOCH;
        break;
    case TESS_KEYKIND_DENY:
        prefix = tp, fixed = TESS_KEY_DENY;
        break;
    case TESS_KEYKIND_CUTOFF:
        prefix = tp, fixed = TESS_KEY_CUTOFF;
        break;
    case TESS_KEYKIND_APP:
        prefix = tp, fixed = TESS_KEY_APP;
        break;
    default:
        abort();
    }
    check(rest.len == 0 || (rest.ptr >= key.ptr && rest.ptr + rest.len == key.ptr + key.len));
    n = strlen(prefix) + strlen(fixed) + rest.len;
    re = malloc(n + 1);
    check(re != NULL);
    snprintf(re, n + 1, "%s%s", prefix, fixed);
    if (rest.len > 0)
        memcpy(re + strlen(prefix) + strlen(fixed), rest.ptr, rest.len);
    check(n == key.len && memcmp(re, key.ptr, n) == 0);
    free(re);
    if (kind == TESS_KEYKIND_SESSION)
        check(!starts(rest, TESS_KEY_USER));
    if (kind == TESS_KEYKIND_APP) {
        int64_t id = 0;
        char canon[32];
        if (meta_name_id(rest, &id)) {
            int m = snprintf(canon, sizeof(canon), "meta:%" PRId64, id);
            check(id > 0 && tess_str_eq(rest, tess_strn(canon, (size_t)m)));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    char *sp = NULL, *tp = NULL;
    tess_keyspace_t ks = {NULL, NULL};
    tess_str_t key;

    if (in == NULL)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    key = tess_strn(in, size);
    if ((sp = memchr(in, '\0', size)) != NULL && (tp = memchr(sp + 1, '\0', size - (size_t)(sp - in) - 1)) != NULL) {
        ks.session = in[0] != '\0' ? in : NULL;
        ks.tessera = sp[1] != '\0' ? sp + 1 : NULL;
        key = tess_strn(tp + 1, size - (size_t)(tp + 1 - in));
        /* the key in a heap block of its exact length: ASan sees any read past it */
        char *exact = malloc(key.len > 0 ? key.len : 1);
        if (exact == NULL) {
            free(in);
            return 0;
        }
        memcpy(exact, key.ptr, key.len);
        key.ptr = exact;
    }
    if (tess_keyspace_check(&ks) == 0) {
        size_t sl = strlen(tess_keyspace_session(&ks)), tl = strlen(tess_keyspace_tessera(&ks));
        check(sl >= 1 && sl <= TESS_KEY_PREFIX_MAX && tl >= 1 && tl <= TESS_KEY_PREFIX_MAX);
        check(strncmp(tess_keyspace_session(&ks), tess_keyspace_tessera(&ks), sl < tl ? sl : tl) != 0);
        fuzz_key(&ks, key);
    }
    if (key.ptr != in)
        free((char *)key.ptr);
    free(in);
    return 0;
}
