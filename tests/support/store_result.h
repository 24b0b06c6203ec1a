/*
 * What a store callback saw, for the store unit tests (include cmocka.h first).
 */
#ifndef TESS_TEST_STORE_RESULT_H
#define TESS_TEST_STORE_RESULT_H

#include "tessera/store.h"

typedef struct result {
    int calls;           /* callback invocations */
    int rc;              /* last rc */
    tess_session_t sess; /* last session (copied) */
} result_t;

static void on_result(void *arg, int rc, const tess_session_t *sess)
{
    result_t *r = arg;
    r->calls++;
    r->rc = rc;
    tess_session_clear(&r->sess);
    if (sess != NULL)
        assert_int_equal(tess_session_copy(&r->sess, sess), 0);
}

#endif
