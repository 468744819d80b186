// Thin C module for libcurl (Debian: libcurl4-openssl-dev). `curl_easy_setopt` and
// `curl_easy_getinfo` are variadic, which Swift cannot call; each wrapper below fixes the
// argument type the option expects, so a wrong type is a compile error instead of a crash.
#ifndef CSMIL_CCURL_SHIM_H
#define CSMIL_CCURL_SHIM_H
#include <curl/curl.h>

/// The version data of the libcurl actually loaded (`curl_version_info(CURLVERSION_NOW)`).
static inline const curl_version_info_data *csmil_curl_version_info(void) {
    return curl_version_info(CURLVERSION_NOW);
}

/// `curl_easy_setopt` for options that take a `long` (timeouts, flags, CURLOPT_NOSIGNAL).
static inline CURLcode csmil_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

/// `curl_easy_setopt` for options that take a `curl_off_t` (CURLOPT_POSTFIELDSIZE_LARGE).
static inline CURLcode csmil_curl_setopt_off(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

/// `curl_easy_setopt` for options that take a C string (URL, CA bundle, proxy); curl copies it.
static inline CURLcode csmil_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

/// `curl_easy_setopt` for options that take an opaque pointer (CURLOPT_WRITEDATA, POSTFIELDS).
static inline CURLcode csmil_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

/// `curl_easy_setopt` for options that take a header list (CURLOPT_HTTPHEADER).
static inline CURLcode csmil_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *list) {
    return curl_easy_setopt(handle, option, list);
}

/// The signature of CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION callbacks.
typedef size_t (*csmil_curl_write_callback)(char *data, size_t size, size_t count, void *context);

/// `curl_easy_setopt` for CURLOPT_WRITEFUNCTION / CURLOPT_HEADERFUNCTION.
static inline CURLcode csmil_curl_setopt_write_function(CURL *handle, CURLoption option,
                                                        csmil_curl_write_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}

/// The signature of CURLOPT_XFERINFOFUNCTION callbacks: return non-zero to abort the transfer.
typedef int (*csmil_curl_xferinfo_callback)(void *context, curl_off_t download_total, curl_off_t download_now,
                                            curl_off_t upload_total, curl_off_t upload_now);

/// `curl_easy_setopt` for CURLOPT_XFERINFOFUNCTION (progress, and the way to cancel a transfer in flight).
static inline CURLcode csmil_curl_setopt_xferinfo_function(CURL *handle, csmil_curl_xferinfo_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

/// `curl_easy_getinfo` for `long` results (CURLINFO_RESPONSE_CODE).
static inline CURLcode csmil_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

/// `curl_easy_getinfo` for `double` results (CURLINFO_TOTAL_TIME).
static inline CURLcode csmil_curl_getinfo_double(CURL *handle, CURLINFO info, double *value) {
    return curl_easy_getinfo(handle, info, value);
}

/// `curl_easy_getinfo` for string results (CURLINFO_EFFECTIVE_URL); the string belongs to curl.
static inline CURLcode csmil_curl_getinfo_string(CURL *handle, CURLINFO info, const char **value) {
    return curl_easy_getinfo(handle, info, value);
}
/// `curl_easy_getinfo(CURLINFO_ACTIVESOCKET)`: the socket of a CURLOPT_CONNECT_ONLY connection (MLLP).
static inline CURLcode csmil_curl_getinfo_socket(CURL *handle, curl_socket_t *value) {
    return curl_easy_getinfo(handle, CURLINFO_ACTIVESOCKET, value);
}
#endif
