// Thin C module for libpng (Debian: libpng-dev), used through its "simplified API"
// (png_image_*), which has no variadic functions and no setjmp error handling to wrap.
#ifndef CSMIL_CPNG_SHIM_H
#define CSMIL_CPNG_SHIM_H
#include <png.h>

/// The byte size of an image buffer for `image` with a row stride of `stride` components
/// (`PNG_IMAGE_BUFFER_SIZE`, a macro Swift cannot call).
static inline size_t csmil_png_image_buffer_size(const png_image *image, png_int_32 stride) {
    return PNG_IMAGE_BUFFER_SIZE(*image, stride);
}

/// Whether `image` reported a failure (`PNG_IMAGE_FAILED`).
static inline int csmil_png_image_failed(const png_image *image) {
    return PNG_IMAGE_FAILED(*image);
}
#endif
