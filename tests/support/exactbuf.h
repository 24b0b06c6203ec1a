/*
 * Inputs in heap blocks of exactly their length, without a terminating NUL, so that a parser reading one byte
 * past its input trips AddressSanitizer (a string literal or a stack buffer would hide the overread).
 *
 *   exactbuf_t b;
 *   tess_str_t s = exactbuf_set(&b, "GET", 3);   // malloc(3), no NUL
 *   ... parse(s) ...
 *   char *out = exactbuf_alloc(&o, 8);           // an output block of 8 bytes, filled with 'x'
 *   exactbuf_free(&b);                           // also done by the next exactbuf_set
 *
 * Include cmocka.h first.
 */
#ifndef TESS_TEST_EXACTBUF_H
#define TESS_TEST_EXACTBUF_H

#include <stdlib.h>
#include <string.h>

#include "tessera/common.h"

typedef struct exactbuf {
    char *p; /* the block (NULL: none) */
} exactbuf_t;

static inline void exactbuf_free(exactbuf_t *b)
{
    free(b->p);
    b->p = NULL;
}

/* A copy of the `n` bytes at `src` in a block of exactly `n` bytes (1 for n == 0, never read). */
static inline tess_str_t exactbuf_set(exactbuf_t *b, const void *src, size_t n)
{
    exactbuf_free(b);
    b->p = malloc(n > 0 ? n : 1);
    assert_non_null(b->p);
    if (n > 0)
        memcpy(b->p, src, n);
    return tess_strn(b->p, n);
}

/* A block of exactly `n` bytes (n > 0) filled with 'x', for an output buffer; returns it. */
static inline char *exactbuf_alloc(exactbuf_t *b, size_t n)
{
    exactbuf_free(b);
    assert_true(n > 0);
    b->p = malloc(n);
    assert_non_null(b->p);
    memset(b->p, 'x', n);
    return b->p;
}

/* The same for a C string (its bytes, not its NUL). */
static inline tess_str_t exactbuf_str(exactbuf_t *b, const char *s)
{
    return exactbuf_set(b, s, strlen(s));
}

#endif
