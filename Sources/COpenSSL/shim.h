// Thin C module for OpenSSL (Debian: libssl-dev), the library Debian's libcurl (OpenSSL flavour) loads the TLS
// files with. The checks below make the calls libcurl makes when it sets up a connection (CURLOPT_CAINFO,
// CURLOPT_SSLCERT, CURLOPT_SSLKEY, all PEM): so a file these accept, a delivery accepts, and a file they refuse
// would fail every delivery. OpenSSL's stack macros and callbacks are awkward from Swift; they stay in here.
#ifndef CSMIL_COPENSSL_SHIM_H
#define CSMIL_COPENSSL_SHIM_H
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <string.h>

/// What a check found: 1 when the file is usable, else 0 with OpenSSL's reason (`reason`), and whether OpenSSL
/// asked for a password (an encrypted key: csmil has no key-password setting, libcurl would ask the terminal).
typedef struct {
    int ok;
    int password_asked;
    int count;
    char reason[256];
} csmil_tls_check;

/// The password callback: no password, and a note that one was asked for. Without it OpenSSL would prompt on the
/// terminal.
static int csmil_tls_no_password(char *buffer, int size, int writing, void *context) {
    (void)buffer;
    (void)size;
    (void)writing;
    if (context) ((csmil_tls_check *)context)->password_asked = 1;
    return -1;
}

/// OpenSSL's error queue as text into `check->reason`, oldest first, each reason once ("bad base64 decode; PEM
/// lib"); clears the queue.
static inline void csmil_tls_take_error(csmil_tls_check *check) {
    size_t used = 0;
    unsigned long error;
    check->reason[0] = 0;
    while ((error = ERR_get_error()) != 0) {
        const char *reason = ERR_reason_error_string(error);
        if (!reason || strstr(check->reason, reason)) continue;
        int written = snprintf(check->reason + used, sizeof check->reason - used, "%s%s", used ? "; " : "", reason);
        if (written < 0 || (size_t)written >= sizeof check->reason - used) break;
        used += (size_t)written;
    }
    if (!check->reason[0]) snprintf(check->reason, sizeof check->reason, "no details from OpenSSL");
    ERR_clear_error();
}

/// Whether OpenSSL's last error says that a key is not the certificate's (it checks that when the key is loaded
/// after the certificate, before `SSL_CTX_check_private_key` is reached).
static inline int csmil_tls_last_error_is_mismatch(void) {
    unsigned long error = ERR_peek_last_error();
    return ERR_GET_LIB(error) == ERR_LIB_X509
        && (ERR_GET_REASON(error) == X509_R_KEY_VALUES_MISMATCH || ERR_GET_REASON(error) == X509_R_KEY_TYPE_MISMATCH);
}

static inline SSL_CTX *csmil_tls_context(csmil_tls_check *check) {
    memset(check, 0, sizeof *check);
    ERR_clear_error();
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (!context) {
        csmil_tls_take_error(check);
        return NULL;
    }
    SSL_CTX_set_default_passwd_cb(context, csmil_tls_no_password);
    SSL_CTX_set_default_passwd_cb_userdata(context, check);
    return context;
}

/// CURLOPT_CAINFO: the bundle of CA certificates to trust, loaded into a certificate store as libcurl does
/// (`SSL_CTX_load_verify_file`). `count` is the number of certificates in the store.
static inline csmil_tls_check csmil_tls_check_ca_file(const char *path) {
    csmil_tls_check check;
    SSL_CTX *context = csmil_tls_context(&check);
    if (!context) return check;
    if (SSL_CTX_load_verify_file(context, path) == 1) {
        STACK_OF(X509_OBJECT) *objects = X509_STORE_get0_objects(SSL_CTX_get_cert_store(context));
        int certificates = 0;
        for (int index = 0; index < sk_X509_OBJECT_num(objects); index++) {
            if (X509_OBJECT_get_type(sk_X509_OBJECT_value(objects, index)) == X509_LU_X509) certificates++;
        }
        check.count = certificates;
        check.ok = certificates > 0;
        if (!check.ok) snprintf(check.reason, sizeof check.reason, "no certificate in it (only CRLs)");
    } else {
        csmil_tls_take_error(&check);
    }
    ERR_clear_error();
    SSL_CTX_free(context);
    return check;
}

/// Which step of the client-certificate check failed.
typedef enum {
    csmil_tls_client_ok = 0,
    /// `SSL_CTX_use_certificate_chain_file`: no PEM certificate in the certificate file.
    csmil_tls_client_certificate = 1,
    /// `SSL_CTX_use_PrivateKey_file`: no (unencrypted) PEM private key in the key file.
    csmil_tls_client_key = 2,
    /// The key is not the certificate's (found while loading it, or by `SSL_CTX_check_private_key`).
    csmil_tls_client_mismatch = 3,
} csmil_tls_client_step;

/// CURLOPT_SSLCERT and CURLOPT_SSLKEY (the key file defaults to the certificate's, as in libcurl): the chain file,
/// the private key, and that the key belongs to the certificate. Returns the step that failed; `check` says why.
static inline csmil_tls_client_step csmil_tls_check_client(const char *certificate, const char *key,
                                                          csmil_tls_check *check) {
    SSL_CTX *context = csmil_tls_context(check);
    if (!context) return csmil_tls_client_certificate;
    csmil_tls_client_step step = csmil_tls_client_ok;
    if (SSL_CTX_use_certificate_chain_file(context, certificate) != 1) {
        step = csmil_tls_client_certificate;
    } else if (SSL_CTX_use_PrivateKey_file(context, key ? key : certificate, SSL_FILETYPE_PEM) != 1) {
        step = csmil_tls_last_error_is_mismatch() ? csmil_tls_client_mismatch : csmil_tls_client_key;
    } else if (SSL_CTX_check_private_key(context) != 1) {
        step = csmil_tls_client_mismatch;
    }
    if (step == csmil_tls_client_ok) {
        check->ok = 1;
        check->count = 1;
    } else {
        csmil_tls_take_error(check);
        // A key of another type (RSA for an EC certificate) goes to another certificate slot, which holds no
        // certificate: OpenSSL says "no certificate assigned".
        if (step == csmil_tls_client_mismatch && strstr(check->reason, "no certificate assigned"))
            snprintf(check->reason, sizeof check->reason, "the key is of another type than the certificate's");
    }
    ERR_clear_error();
    SSL_CTX_free(context);
    return step;
}

/// The OpenSSL version loaded, e.g. "OpenSSL 3.0.19 27 Jan 2026".
static inline const char *csmil_tls_version(void) { return OpenSSL_version(OPENSSL_VERSION); }
#endif
