// Thin C module for OpenBLAS (Debian: libopenblas-dev, the pthread flavour), not the generic
// reference BLAS: `cblas_sgemm` plus OpenBLAS's own runtime queries.
#ifndef CSMIL_COPENBLAS_SHIM_H
#define CSMIL_COPENBLAS_SHIM_H
#include <cblas.h>

/// The OpenBLAS build configuration string (`openblas_get_config`), never NULL.
static inline const char *csmil_openblas_config(void) {
    const char *config = openblas_get_config();
    return config ? config : "";
}

/// The name of the kernel set OpenBLAS chose for this CPU (`openblas_get_corename`), never NULL.
static inline const char *csmil_openblas_corename(void) {
    const char *name = openblas_get_corename();
    return name ? name : "";
}
#endif
