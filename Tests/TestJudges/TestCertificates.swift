import Foundation

/// A small PKI made by the `openssl` command for TLS tests on loopback: a CA, a server certificate for `127.0.0.1`
/// and `localhost` signed by it, a client certificate (mutual TLS) signed by it, and a second, unrelated CA that
/// signed nothing here (the "wrong CA"). EC P-256 keys, valid for two days; PEM files in a temporary folder.
public struct TestCertificates: Sendable {
    public let folder: String
    public var caCertificate: String { folder + "/ca.pem" }
    public var serverCertificate: String { folder + "/server.pem" }
    public var serverKey: String { folder + "/server.key" }
    public var clientCertificate: String { folder + "/client.pem" }
    public var clientKey: String { folder + "/client.key" }
    /// A CA that did not sign the server's certificate.
    public var otherCACertificate: String { folder + "/other-ca.pem" }

    /// Makes the files; fails naming the openssl command that failed.
    public init() throws {
        folder = try Judges.temporaryFolder()
        let openssl = try Self.openssl()
        func run(_ arguments: [String]) throws {
            let (status, output) = Judges.run([openssl] + arguments)
            guard status == 0 else {
                throw JudgeError(message: "openssl \(arguments.joined(separator: " ")) failed: \(output)")
            }
        }
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for ca in ["ca", "other-ca"] {
            try run(
                ["req", "-x509"] + curve + [
                    "-keyout", "\(folder)/\(ca).key", "-out", "\(folder)/\(ca).pem", "-days", "2", "-subj",
                    "/CN=csmil test \(ca)", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ])
        }
        for (name, extensions) in [
            ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            try Data(extensions.utf8).write(to: URL(fileURLWithPath: "\(folder)/\(name).ext"))
            try run(
                ["req", "-new"] + curve + [
                    "-keyout", "\(folder)/\(name).key", "-out", "\(folder)/\(name).csr", "-subj",
                    "/CN=csmil test \(name)",
                ])
            try run([
                "x509", "-req", "-in", "\(folder)/\(name).csr", "-CA", caCertificate, "-CAkey", "\(folder)/ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "\(folder)/\(name).ext", "-out", "\(folder)/\(name).pem",
            ])
        }
    }

    static func openssl() throws -> String {
        for directory in ["/usr/bin", "/usr/local/bin", "/bin"]
        where FileManager.default.isExecutableFile(
            atPath: directory + "/openssl")
        {
            return directory + "/openssl"
        }
        throw JudgeError(message: "the openssl command is required for the TLS tests (scripts/setup installs it)")
    }
}
