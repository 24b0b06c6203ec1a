/*
 * The store drivers by URL: one row per driver; a new store adds its driver here and nowhere else.
 */
#include <stdio.h>

#include "tessera/error.h"
#include "tessera/store.h"

extern const tess_store_driver_t tess__sqlite_driver;
extern const tess_store_driver_t tess__postgres_driver;
extern const tess_store_driver_t tess__redis_driver;

static const tess_store_driver_t *const drivers[] = {&tess__sqlite_driver, &tess__postgres_driver, &tess__redis_driver};

const tess_store_driver_t *tess_store_driver_for_url(const char *url)
{
    for (size_t i = 0; url != NULL && i < sizeof(drivers) / sizeof(drivers[0]); ++i) {
        if (drivers[i]->accepts(url))
            return drivers[i];
    }
    return NULL;
}

static const tess_store_driver_t *driver_or_err(const tess_store_params_t *p, char *err, size_t errcap)
{
    const tess_store_driver_t *d = tess_store_driver_for_url(p->url);
    if (d == NULL)
        snprintf(err, errcap, "unsupported store URL: expected sqlite:PATH, postgres://..., redis://... or unix://...");
    return d;
}

int tess_store_migrate_url(const tess_store_params_t *p, char *err, size_t errcap)
{
    const tess_store_driver_t *d = driver_or_err(p, err, errcap);
    if (d == NULL)
        return TESS_EINVAL;
    return d->migrate != NULL ? d->migrate(p, err, errcap) : 0;
}

int tess_store_open_url(tess_store_t **out, const tess_store_params_t *p, char *err, size_t errcap)
{
    const tess_store_driver_t *d = driver_or_err(p, err, errcap);
    *out = NULL;
    if (d == NULL)
        return TESS_EINVAL;
    return d->open(out, p, err, errcap);
}
