// Thin C module for libpq, PostgreSQL's client library (Debian: libpq-dev). Nothing to wrap: the functions the
// store uses (PQconnectdbParams, PQexecParams, PQexec, PQconsumeInput, PQnotifies, …) import into Swift as they are.
#ifndef CSMIL_CLIBPQ_SHIM_H
#define CSMIL_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
