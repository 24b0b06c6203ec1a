/*
 * What an appdb callback saw (src/app/appdb.h), deep-copied, for the appdb tests (include cmocka.h first).
 *
 *   appdb_rec_t r = {0};
 *   db->ops->prechat_get(db, id, appdb_rec_cb, &r);   // then wait until r.calls > 0
 *   ... r.rc, r.pc[0] ...
 *   appdb_rec_clear(&r);
 */
#ifndef TESS_TEST_APPDB_RESULT_H
#define TESS_TEST_APPDB_RESULT_H

#include <stdlib.h>
#include <string.h>

#include "app/appdb.h"

typedef struct appdb_rec {
    int calls;            /* callback invocations */
    int rc;               /* last rc */
    int have_user;        /* last result had a user */
    appdb_user_t user;    /* its copy */
    appdb_prechat_t *pc;  /* last pre-chat rows (malloc'd copy) */
    size_t n_pc;          /* their count */
    appdb_message_t *msg; /* last message rows (malloc'd copy) */
    size_t n_msg;         /* their count */
} appdb_rec_t;

/* Frees the copies and zeroes the record (the call count included). */
static void appdb_rec_clear(appdb_rec_t *r)
{
    free(r->pc);
    free(r->msg);
    memset(r, 0, sizeof(*r));
}

/* Copies `n` rows of `size` bytes; NULL for none. */
static void *appdb_rec_copy(const void *rows, size_t n, size_t size)
{
    void *p;
    if (n == 0)
        return NULL;
    assert_non_null(rows);
    assert_non_null(p = malloc(n * size));
    memcpy(p, rows, n * size);
    return p;
}

static void appdb_rec_cb(void *arg, const appdb_result_t *res)
{
    appdb_rec_t *r = arg;
    int calls = r->calls;

    assert_non_null(res);
    appdb_rec_clear(r);
    r->calls = calls + 1;
    r->rc = res->rc;
    if (res->user != NULL) {
        r->have_user = 1;
        r->user = *res->user;
    }
    assert_true(res->n_prechats <= APP_LIST_MAX);
    assert_true(res->n_messages <= APP_LIST_MAX);
    r->pc = appdb_rec_copy(res->prechats, res->n_prechats, sizeof(*res->prechats));
    r->n_pc = res->n_prechats;
    r->msg = appdb_rec_copy(res->messages, res->n_messages, sizeof(*res->messages));
    r->n_msg = res->n_messages;
}

#endif
