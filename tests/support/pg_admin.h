/*
 * A blocking admin connection for checks in the C integration tests (a test may block; the code under test may
 * not): `admin` is opened by the test's set-up; sql() runs a statement, sql_int() a one-value query.
 */
#ifndef TESS_TEST_PG_ADMIN_H
#define TESS_TEST_PG_ADMIN_H

#include <stdint.h>
#include <stdlib.h>

#include <libpq-fe.h>

static PGconn *admin;

static void sql(const char *q)
{
    PGresult *res = PQexec(admin, q);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQerrorMessage(admin));
    PQclear(res);
}

static int64_t sql_int(const char *q)
{
    PGresult *res = PQexec(admin, q);
    int64_t v;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        fail_msg("%s: %s", q, PQerrorMessage(admin));
    v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

#endif
