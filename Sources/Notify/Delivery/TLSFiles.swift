import COpenSSL
import Errors
import Foundation

/// Checks the TLS files of a destination (`ca_file`, `client_certificate`, `client_key` of `[webhook]` and `[hl7]`)
/// before any delivery is tried: a missing or wrong file fails every attempt, and retrying it for 72 hours helps
/// nobody. `csmil doctor` reports what these find, and `csmil watch` refuses to start on it.
///
/// The files are loaded by OpenSSL with the calls libcurl makes for the same options (libcurl's OpenSSL flavour is
/// what csmil delivers with, webhook and MLLP alike): a CA bundle into a certificate store
/// (`SSL_CTX_load_verify_file`), the client certificate chain (`SSL_CTX_use_certificate_chain_file`), its PEM private
/// key (`SSL_CTX_use_PrivateKey_file`, from the certificate's file when no key file is set) and whether the key
/// belongs to the certificate (`SSL_CTX_check_private_key`). So the judge is the library that will read the files,
/// not a second parser that might accept what OpenSSL refuses or the other way round.
public enum TLSFiles {
    /// The setting a file was given by.
    public enum Role: String, Sendable {
        case caFile = "ca_file"
        case clientCertificate = "client_certificate"
        case clientKey = "client_key"
    }

    /// The OpenSSL the checks ran with, e.g. "OpenSSL 3.0.19 27 Jan 2026".
    public static var openSSLVersion: String { String(cString: csmil_tls_version()) }

    /// A CA bundle: returns how many certificates it holds (at least one).
    public static func checkCAFile(_ path: String) throws(TLSFileError) -> Int {
        try readable(path, role: .caFile)
        let check = csmil_tls_check_ca_file(path)
        guard check.ok == 1 else {
            throw TLSFileError(
                code: .noCertificate, role: .caFile, file: path,
                message: "holds no PEM certificate OpenSSL can load (\(reason(check)))",
                fix: "point ca_file at the PEM bundle (-----BEGIN CERTIFICATE-----) of the CA that signed the "
                    + "receiver's certificate; a DER file converts with openssl x509 -inform DER -in CA.der -out "
                    + "CA.pem")
        }
        return Int(check.count)
    }

    /// A client certificate and its private key (`key` nil: the key is in the certificate's file): both load and
    /// the key is the certificate's.
    public static func checkClient(certificate: String, key: String?) throws(TLSFileError) {
        try readable(certificate, role: .clientCertificate)
        if let key { try readable(key, role: .clientKey) }
        var check = csmil_tls_check()
        let step = csmil_tls_check_client(certificate, key, &check)
        let keyFile = key ?? certificate
        switch step {
        case csmil_tls_client_ok:
            return
        case csmil_tls_client_certificate:
            throw TLSFileError(
                code: .noCertificate, role: .clientCertificate, file: certificate,
                message: "holds no PEM certificate OpenSSL can load (\(reason(check)))",
                fix: "point client_certificate at the PEM client certificate (-----BEGIN CERTIFICATE-----); a DER "
                    + "file converts with openssl x509 -inform DER -in CERT.der -out CERT.pem")
        case csmil_tls_client_key where check.password_asked != 0:
            throw TLSFileError(
                code: .encryptedKey, role: .clientKey, file: keyFile,
                message: "holds an encrypted private key, and csmil has no setting for its password",
                fix: "write the key unencrypted to a file only csmil can read (openssl pkey -in \(keyFile) -out "
                    + "client.key && chmod 600 client.key) and point client_key at it")
        case csmil_tls_client_key:
            throw TLSFileError(
                code: .noPrivateKey, role: .clientKey, file: keyFile,
                message: key == nil
                    ? "holds no PEM private key, and client_key is not set (\(reason(check)))"
                    : "holds no PEM private key OpenSSL can load (\(reason(check)))",
                fix: key == nil
                    ? "set client_key to the PEM private key of the client certificate"
                    : "point client_key at the PEM private key (-----BEGIN PRIVATE KEY-----) of the client certificate")
        default:
            throw TLSFileError(
                code: .keyMismatch, role: .clientKey, file: keyFile,
                message: "is not the private key of the client certificate \(certificate) (\(reason(check)))",
                fix: "point client_key at the key the certificate was made with (openssl x509 -noout -pubkey -in "
                    + "CERT and openssl pkey -pubout -in KEY print the same)")
        }
    }

    /// A regular file this user can open: told apart here, with the fix, before OpenSSL says "system lib".
    static func readable(_ path: String, role: Role) throws(TLSFileError) {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw TLSFileError(
                code: .missing, role: role, file: path, message: "does not exist",
                fix: "point \(role.rawValue) at the PEM file, or set it to \"\"")
        }
        guard status.st_mode & S_IFMT != S_IFDIR else {
            throw TLSFileError(
                code: .missing, role: role, file: path, message: "is a folder",
                fix: "point \(role.rawValue) at a PEM file in it")
        }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            throw TLSFileError(
                code: .unreadable, role: role, file: path,
                message: "cannot be read by this user (uid \(getuid())): \(reason)",
                fix: "make it readable by the user csmil runs as: chown csmil: \(path) (or chgrp csmil and chmod 640)")
        }
        close(descriptor)
    }

    private static func reason(_ check: csmil_tls_check) -> String {
        var check = check
        let text = withUnsafeBytes(of: &check.reason) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        return "OpenSSL: " + text
    }
}

/// A TLS file of a destination that OpenSSL, and so every delivery, cannot use.
public struct TLSFileError: CSMILError, Sendable, Equatable {
    public enum Code: String, ErrorCode {
        /// The file does not exist (or is a folder).
        case missing = "tls.file_missing"
        /// The file exists but this user cannot read it.
        case unreadable = "tls.file_unreadable"
        /// No certificate in a CA bundle or client certificate file.
        case noCertificate = "tls.no_certificate"
        /// No private key in the key file.
        case noPrivateKey = "tls.no_private_key"
        /// The private key is encrypted; csmil has no password setting.
        case encryptedKey = "tls.encrypted_key"
        /// The private key is not the client certificate's.
        case keyMismatch = "tls.key_mismatch"
    }

    public var code: Code
    /// The setting the file was given by.
    public var role: TLSFiles.Role
    /// The file.
    public var file: String
    public var message: String
    public var fix: String

    public var subject: String { file }
}
