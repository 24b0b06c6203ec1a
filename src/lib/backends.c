/*
 * Process-wide backend counters (backends.h).
 */
#include "backends.h"

tess__backend_counters_t tess__backends[TESS__BACKENDS];
