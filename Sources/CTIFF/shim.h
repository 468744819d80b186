// Thin C module for libtiff (Debian: libtiff-dev), used by SyntheticSlides to write pyramidal tiled TIFF and by
// Ingest to route the messages of the libtiff inside OpenSlide to the logger.
// TIFFSetField and TIFFGetField are variadic, which Swift cannot call: these typed wrappers pass
// each tag's value the way libtiff's va_arg reads it.
#ifndef CSMIL_CTIFF_SHIM_H
#define CSMIL_CTIFF_SHIM_H
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <tiffio.h>

/// The last error libtiff reported for one handle (see `csmil_tiff_open`).
typedef struct {
    char message[512];
} csmil_tiff_error;

/// Records a libtiff error in the handle's `csmil_tiff_error` instead of printing it.
static inline int csmil_tiff_record_error(TIFF *tiff, void *user_data, const char *module, const char *format,
                                          va_list arguments) {
    (void)tiff;
    csmil_tiff_error *error = (csmil_tiff_error *)user_data;
    int used = snprintf(error->message, sizeof error->message, "%s: ", module ? module : "libtiff");
    if (used < 0 || (size_t)used >= sizeof error->message) used = 0;
    vsnprintf(error->message + used, sizeof error->message - (size_t)used, format, arguments);
    return 1;
}

/// Drops a libtiff warning (unknown tags and the like), which would otherwise go to stderr.
static inline int csmil_tiff_ignore_warning(TIFF *tiff, void *user_data, const char *module, const char *format,
                                            va_list arguments) {
    (void)tiff; (void)user_data; (void)module; (void)format; (void)arguments;
    return 1;
}

/// `TIFFOpenExt` with errors recorded in `error` (which must outlive the handle) and warnings dropped.
static inline TIFF *csmil_tiff_open(const char *path, const char *mode, csmil_tiff_error *error) {
    TIFFOpenOptions *options = TIFFOpenOptionsAlloc();
    if (!options) return NULL;
    TIFFOpenOptionsSetErrorHandlerExtR(options, csmil_tiff_record_error, error);
    TIFFOpenOptionsSetWarningHandlerExtR(options, csmil_tiff_ignore_warning, NULL);
    TIFF *tiff = TIFFOpenExt(path, mode, options);
    TIFFOpenOptionsFree(options);
    return tiff;
}

/// `TIFFSetField` for a tag libtiff reads as `uint32_t` (ImageWidth, TileWidth, RowsPerStrip…).
static inline int csmil_tiff_set_u32(TIFF *tiff, uint32_t tag, uint32_t value) {
    return TIFFSetField(tiff, tag, value);
}

/// `TIFFSetField` for a tag libtiff reads as a promoted `uint16_t` or `int` (Compression,
/// Photometric, PlanarConfig, SamplesPerPixel, BitsPerSample, ResolutionUnit, and the JPEG
/// codec's pseudo-tags JPEGQuality, JPEGColorMode, JPEGTablesMode).
static inline int csmil_tiff_set_int(TIFF *tiff, uint32_t tag, int value) {
    return TIFFSetField(tiff, tag, value);
}

/// `TIFFSetField` for a tag that takes two `uint16_t` values (YCbCrSubsampling).
static inline int csmil_tiff_set_u16_pair(TIFF *tiff, uint32_t tag, uint16_t first, uint16_t second) {
    return TIFFSetField(tiff, tag, first, second);
}

/// `TIFFSetField` for a RATIONAL tag, which libtiff reads as a `double` (XResolution, YResolution).
static inline int csmil_tiff_set_double(TIFF *tiff, uint32_t tag, double value) {
    return TIFFSetField(tiff, tag, value);
}

/// `TIFFSetField` for an ASCII tag (ImageDescription, Software).
static inline int csmil_tiff_set_string(TIFF *tiff, uint32_t tag, const char *value) {
    return TIFFSetField(tiff, tag, value);
}

/// `TIFFSetField` for a counted byte array (JPEGTables).
static inline int csmil_tiff_set_bytes(TIFF *tiff, uint32_t tag, uint32_t count, const void *bytes) {
    return TIFFSetField(tiff, tag, count, bytes);
}

/// `TIFFGetField` for a counted byte array (JPEGTables); the bytes belong to `tiff`.
static inline int csmil_tiff_get_bytes(TIFF *tiff, uint32_t tag, uint32_t *count, const void **bytes) {
    return TIFFGetField(tiff, tag, count, bytes);
}

/// Where libtiff's process-wide messages go (see `csmil_tiff_route_messages`): `is_error` 1 for errors, 0 for
/// warnings; `module` may be NULL; `message` is formatted.
typedef void (*csmil_tiff_message_sink)(int is_error, const char *module, const char *message);

/// The sink set by `csmil_tiff_route_messages` (one per module that calls it: Ingest).
static csmil_tiff_message_sink csmil_tiff_sink = NULL;

static inline void csmil_tiff_forward(int is_error, const char *module, const char *format, va_list arguments) {
    char message[1024];
    vsnprintf(message, sizeof message, format, arguments);
    if (csmil_tiff_sink) csmil_tiff_sink(is_error, module, message);
}

static inline void csmil_tiff_global_error(const char *module, const char *format, va_list arguments) {
    csmil_tiff_forward(1, module, format, arguments);
}

static inline void csmil_tiff_global_warning(const char *module, const char *format, va_list arguments) {
    csmil_tiff_forward(0, module, format, arguments);
}

/// `TIFFSetErrorHandler` and `TIFFSetWarningHandler`: libtiff's messages for handles opened without handlers of
/// their own (OpenSlide's) go to `sink` instead of stderr.
static inline void csmil_tiff_route_messages(csmil_tiff_message_sink sink) {
    csmil_tiff_sink = sink;
    TIFFSetErrorHandler(csmil_tiff_global_error);
    TIFFSetWarningHandler(csmil_tiff_global_warning);
}

/// `TIFFGetField` for a tag libtiff returns as `uint32_t`.
static inline int csmil_tiff_get_u32(TIFF *tiff, uint32_t tag, uint32_t *value) {
    return TIFFGetField(tiff, tag, value);
}
#endif
