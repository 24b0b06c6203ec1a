/*
 * tessera's Redis key space, defined once. Two configurable prefixes:
 *
 *   <session>SID          a session document (connect-redis's shape)       the redis store
 *   <session>user:UID     the set of a user's session ids                  the redis store
 *   <tessera>l2:SID       an L2 copy ("<epoch>:<JSON>", or "!" destroyed)  the cached strategy's L2
 *   <tessera>l2:user:UID  the set of a user's L2 copies                    the cached strategy's L2
 *   <tessera>epoch        the cache epoch (bumped when a listener returns)  L2, the coherence listener
 *   <tessera>deny:JTI     a revoked token, until its acceptance ends        the revoker
 *   <tessera>nbf:UID      a user's token cut-off ("log out everywhere")     the revoker
 *   <tessera>app:NAME     the application's own change marks (tess_deploy_publish)
 *
 * The L2 copies are kept apart from the session documents: during a migration between the redis and the cached
 * strategies (SESSION_FALLBACK) both run on one Redis, and neither may read, overwrite or delete the other's.
 * The coherence listener tracks both prefixes; tess_keyspace_classify() tells what an invalidated key is (an
 * L2 copy is a TESS_KEYKIND_SESSION like a session document).
 */
#ifndef TESSERA_KEYSPACE_H
#define TESSERA_KEYSPACE_H

#include "tessera/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TESS_KEY_PREFIX_MAX 64                                /* bytes in one prefix */
#define TESS_KEY_MAX (TESS_KEY_PREFIX_MAX + 8 + TESS_SID_MAX) /* bytes in any key tessera builds */

#define TESS_KEYSPACE_SESSION_DEFAULT "session:"
#define TESS_KEYSPACE_TESSERA_DEFAULT "tessera:"
#define TESS_KEY_USER "user:"  /* after <session> */
#define TESS_KEY_EPOCH "epoch" /* after <tessera> */
#define TESS_KEY_DENY "deny:"  /* after <tessera> */
#define TESS_KEY_CUTOFF "nbf:" /* after <tessera> */
#define TESS_KEY_APP "app:"    /* after <tessera> */
#define TESS_KEY_L2 "l2:"      /* after <tessera>: L2 copies, and TESS_KEY_USER after it their user sets */
#define TESS_KEY_L2_PREFIX_MAX (TESS_KEY_PREFIX_MAX + 3) /* bytes in <tessera>l2: */

typedef struct tess_keyspace {
    const char *session; /* session prefix (NULL: TESS_KEYSPACE_SESSION_DEFAULT); borrowed */
    const char *tessera; /* tessera's own prefix (NULL: TESS_KEYSPACE_TESSERA_DEFAULT); borrowed */
} tess_keyspace_t;

typedef enum tess_key_kind {
    TESS_KEYKIND_OTHER = 0, /* not tessera's */
    TESS_KEYKIND_SESSION,   /* rest: the session id (a session document or an L2 copy) */
    TESS_KEYKIND_USER_SET,  /* rest: the user id (of the redis store or of L2) */
    TESS_KEYKIND_EPOCH,     /* rest: empty */
    TESS_KEYKIND_DENY,      /* rest: the jti */
    TESS_KEYKIND_CUTOFF,    /* rest: the user id */
    TESS_KEYKIND_APP,       /* rest: NAME */
} tess_key_kind_t;

/* The session and tessera prefixes of `ks` (defaults filled in). */
TESS_API const char *tess_keyspace_session(const tess_keyspace_t *ks);
TESS_API const char *tess_keyspace_tessera(const tess_keyspace_t *ks);
/* 0 when both prefixes are 1..TESS_KEY_PREFIX_MAX bytes and neither is a prefix of the other; else TESS_EINVAL. */
TESS_API int tess_keyspace_check(const tess_keyspace_t *ks);
/* What `key` is; `*rest` (may be NULL) gets the part after the kind's fixed part. */
TESS_API tess_key_kind_t tess_keyspace_classify(const tess_keyspace_t *ks, tess_str_t key, tess_str_t *rest);

#ifdef __cplusplus
}
#endif
#endif
