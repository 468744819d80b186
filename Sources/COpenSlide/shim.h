// Thin C module for libopenslide (Debian: libopenslide-dev). The OpenSlide C API has no
// variadic functions, so no wrappers are needed; Ingest wraps the handles in Swift types.
#ifndef CSMIL_COPENSLIDE_SHIM_H
#define CSMIL_COPENSLIDE_SHIM_H
#include <openslide.h>
#endif
