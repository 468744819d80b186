// Thin C module for OpenBLAS (Debian: libopenblas-dev, the pthread flavour), not the generic
// reference BLAS: `cblas_sgemm` plus OpenBLAS's own runtime queries.
#ifndef CSMIL_COPENBLAS_SHIM_H
#define CSMIL_COPENBLAS_SHIM_H
#include <cblas.h>
#include <malloc.h>

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

/// Returns the free pages of glibc's heap to the kernel (`malloc_trim(0)`). Swift's Glibc module does
/// not export <malloc.h>; the weights loader needs this one call after freeing its checkpoints.
static inline void csmil_release_free_heap(void) { malloc_trim(0); }
#endif
