/*
 * The drivers' assertion: a failed check names itself on stderr and aborts, which libFuzzer (and the replay
 * main) reports as a crash with the input kept.
 */
#ifndef TESSERA_FUZZ_CHECK_H
#define TESSERA_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define check(cond) ((cond) ? (void)0 : check_failed(#cond, __FILE__, __LINE__))

static inline void check_failed(const char *what, const char *file, int line)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    abort();
}

#endif
