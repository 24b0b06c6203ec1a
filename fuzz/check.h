/*
 * The drivers' assertion: a failed check names itself on stderr and aborts, which libFuzzer (and the replay
 * main) reports as a crash with the input kept.
 */
#ifndef TESSERA_FUZZ_CHECK_H
#define TESSERA_FUZZ_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define check(cond) ((cond) ? (void)0 : check_failed(#cond, __FILE__, __LINE__))

static inline void check_failed(const char *what, const char *file, int line)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    abort();
}

/*
 * The input after its first byte (the driver's mode byte; `size` >= 1), copied into a heap block of exactly
 * its `*n` bytes (plus a NUL when `nul`): ASan reports any read past the end. NULL when out of memory.
 */
static inline char *fuzz_rest(const uint8_t *data, size_t size, int nul, size_t *n)
{
    char *in;
    *n = size - 1;
    if ((in = malloc(*n + (nul ? 1 : 0) > 0 ? *n + (nul ? 1 : 0) : 1)) == NULL)
        return NULL;
    memcpy(in, data + 1, *n);
    if (nul)
        in[*n] = '\0';
    return in;
}

#endif
