/*
 * A private temporary directory for a test, removed with everything in it (include cmocka.h first).
 *
 *   tmpdir_t t;
 *   tmpdir_make(&t);                     // /tmp/tess-test-XXXXXX
 *   tmpdir_path(&t, "x.db", buf, cap);   // <dir>/x.db
 *   tmpdir_remove(&t);
 */
#ifndef TESS_TEST_TMPDIR_H
#define TESS_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tmpdir {
    char dir[64]; /* absolute path, no trailing slash */
} tmpdir_t;

static void tmpdir_make(tmpdir_t *t)
{
    snprintf(t->dir, sizeof(t->dir), "%s", "/tmp/tess-test-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
}

/* `<dir>/<name>` into `out`. */
static const char *tmpdir_path(const tmpdir_t *t, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", t->dir, name);
    assert_true(n > 0 && (size_t)n < cap);
    return out;
}

static int tmpdir_unlink_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tmpdir_remove(tmpdir_t *t)
{
    assert_int_equal(nftw(t->dir, tmpdir_unlink_one, 8, FTW_DEPTH | FTW_PHYS), 0);
}

#endif
