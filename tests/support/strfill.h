/*
 * Strings of a given length for bound tests.
 */
#ifndef TESS_TEST_STRFILL_H
#define TESS_TEST_STRFILL_H

#include <stddef.h>
#include <string.h>

/* Writes `n` copies of `c` and a NUL into `buf` (at least n + 1 bytes); returns `buf`. */
static char *strfill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

#endif
