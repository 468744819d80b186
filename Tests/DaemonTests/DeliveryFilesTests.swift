import Foundation
import Notify
import Store
import TestJudges
import Testing

@testable import Daemon

/// `csmil doctor` and `csmil watch` on what would make every delivery fail (issue 14, item 5): TLS files of
/// `[webhook]` and `[hl7]` that are missing or hold the wrong thing, a proxy scheme libcurl lacks, a damaged job
/// store; and a webhook secret every user can read, which the daemon warns about at start and `csmil status` shows.
/// The certificates and keys are real, made by the openssl command (``TestCertificates``; scripts/setup installs it).
@Suite("delivery files: doctor's problems are the daemon's refusals", .serialized)
struct DeliveryFilesTests {
    /// The installation's configuration with `[webhook]` over https, `webhook` lines added to that section and
    /// `more` after it.
    static func configure(_ installation: Installation, webhook: String, more: String = "") throws {
        let text = Installation.configText
            .replacingOccurrences(of: "http://127.0.0.1:9/hook", with: "https://127.0.0.1:9/hook")
            .replacingOccurrences(of: "allow_http = true", with: "allow_http = false\n" + webhook)
        try TestSupport.write(text + "\n" + more, to: installation.config)
    }

    /// The 1-based line of the first line of the file that starts with `prefix`.
    static func line(of prefix: String, in file: URL) throws -> Int? {
        let lines = try String(contentsOf: file, encoding: .utf8).split(
            separator: "\n", omittingEmptySubsequences: false)
        return lines.firstIndex { $0.hasPrefix(prefix) }.map { $0 + 1 }
    }

    @Test("real CA, client certificate and key pass doctor and the start check, from two files or from one")
    func healthyFiles() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let pki = try TestCertificates()
        defer { try? FileManager.default.removeItem(atPath: pki.folder) }
        try Self.configure(
            installation,
            webhook: "ca_file = \"\(pki.caCertificate)\"\nclient_certificate = \"\(pki.clientCertificate)\"\n"
                + "client_key = \"\(pki.clientKey)\"\nproxy = \"socks5h://127.0.0.1:1080\"")
        // (Doctor.configuration includes these findings; csmil doctor is run on the binary in the tests below.)
        let findings = Doctor.deliveryFiles(try Configuration.load(path: installation.config.path))
        #expect(findings.filter { $0.severity == .problem }.isEmpty, "\(findings)")
        let ca = try #require(findings.first { $0.subject == "[webhook] ca_file" })
        #expect(ca.severity == .ok && ca.detail.contains("1 CA certificate"), "\(ca)")
        let client = try #require(findings.first { $0.subject == "[webhook] client_certificate" })
        #expect(client.severity == .ok && client.detail.contains(pki.clientKey), "\(client)")
        try Configuration.load(path: installation.config.path).checkDeliveryFiles()

        // The key appended to the certificate's file, client_key unset: libcurl reads the key from there.
        let combined = pki.folder + "/client-with-key.pem"
        let both =
            try String(contentsOfFile: pki.clientCertificate, encoding: .utf8)
            + String(contentsOfFile: pki.clientKey, encoding: .utf8)
        try TestSupport.write(both, to: URL(fileURLWithPath: combined))
        // Two CAs in one bundle are counted as two.
        let bundle = pki.folder + "/bundle.pem"
        let cas =
            try String(contentsOfFile: pki.caCertificate, encoding: .utf8)
            + String(contentsOfFile: pki.otherCACertificate, encoding: .utf8)
        try TestSupport.write(cas, to: URL(fileURLWithPath: bundle))
        try Self.configure(
            installation, webhook: "ca_file = \"\(bundle)\"\nclient_certificate = \"\(combined)\"")
        let fromOne = Doctor.deliveryFiles(try Configuration.load(path: installation.config.path))
        #expect(fromOne.filter { $0.severity == .problem }.isEmpty, "\(fromOne)")
        #expect(fromOne.contains { $0.subject == "[webhook] ca_file" && $0.detail.contains("2 CA certificates") })
        #expect(fromOne.contains { $0.subject == "[webhook] client_certificate" && $0.detail.contains("same file") })
    }

    /// One broken file: the lines put in `[webhook]` (or an `[hl7]` section), the dotted key refused, the TLS code,
    /// words of the message.
    struct Case {
        var lines: String
        var key: String
        var code: String
        var words: String
    }

    static let cases: [Case] = [
        Case(
            lines: "ca_file = \"{root}/missing-ca.pem\"", key: "webhook.ca_file", code: "tls.file_missing",
            words: "does not exist"),
        Case(lines: "ca_file = \"{root}\"", key: "webhook.ca_file", code: "tls.file_missing", words: "is a folder"),
        Case(
            lines: "ca_file = \"{pki}/client.key\"", key: "webhook.ca_file", code: "tls.no_certificate",
            words: "holds no PEM certificate"),
        Case(
            lines: "ca_file = \"{pki}/garbage.pem\"", key: "webhook.ca_file", code: "tls.no_certificate",
            words: "holds no PEM certificate"),
        Case(
            lines: "client_certificate = \"{pki}/client.key\"\nclient_key = \"{pki}/client.key\"",
            key: "webhook.client_certificate", code: "tls.no_certificate", words: "holds no PEM certificate"),
        Case(
            lines: "client_certificate = \"{pki}/client.pem\"\nclient_key = \"{pki}/client.pem\"",
            key: "webhook.client_key",
            code: "tls.no_private_key", words: "holds no PEM private key"),
        Case(
            lines: "client_certificate = \"{pki}/client.pem\"", key: "webhook.client_key", code: "tls.no_private_key",
            words: "client_key is not set"),
        Case(
            lines: "client_certificate = \"{pki}/client.pem\"\nclient_key = \"{pki}/encrypted.key\"",
            key: "webhook.client_key",
            code: "tls.encrypted_key", words: "encrypted private key"),
        Case(
            lines: "client_certificate = \"{pki}/client.pem\"\nclient_key = \"{pki}/other-ca.key\"",
            key: "webhook.client_key",
            code: "tls.key_mismatch", words: "is not the private key of the client certificate"),
        Case(
            lines: "[hl7]\nca_file = \"{pki}/client.key\"", key: "hl7.ca_file", code: "tls.no_certificate",
            words: "holds no PEM certificate"),
        Case(
            lines: "[hl7]\nclient_certificate = \"{pki}/client.pem\"\nclient_key = \"{pki}/server.key\"",
            key: "hl7.client_key", code: "tls.key_mismatch", words: "is not the private key"),
    ]

    @Test(
        "each unusable TLS file is a doctor problem and a start refusal naming the key, its line, the file and the fix")
    func unusableFiles() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = folder.appendingPathComponent("csmil.toml")
        let pki = try TestCertificates()
        defer { try? FileManager.default.removeItem(atPath: pki.folder) }
        try TestSupport.write(
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
            to: URL(fileURLWithPath: pki.folder + "/garbage.pem"))
        let encrypted = try #require(
            try TestSupport.tool(
                "openssl",
                ["pkey", "-in", pki.clientKey, "-out", pki.folder + "/encrypted.key", "-aes256", "-passout", "pass:x"]),
            "the openssl command is required (scripts/setup installs it)")
        try #require(encrypted.status == 0, "\(encrypted.stderr)")

        for item in Self.cases {
            let text = item.lines.replacingOccurrences(of: "{pki}", with: pki.folder)
                .replacingOccurrences(of: "{root}", with: folder.path)
            var document = Installation.configText
                .replacingOccurrences(of: "http://127.0.0.1:9/hook", with: "https://127.0.0.1:9/hook")
                .replacingOccurrences(of: "allow_http = true", with: "allow_http = false")
            if text.hasPrefix("[hl7]") {
                document +=
                    "\n\n[identity]\npattern = '(?<accession>S[0-9]+)'\n\n"
                    + text.replacingOccurrences(of: "[hl7]\n", with: "[hl7]\nurl = \"mllps://127.0.0.1:9\"\n")
            } else {
                document += "\n" + text
            }
            try TestSupport.write(document + "\n", to: config)
            let section = String(item.key.split(separator: ".")[0])
            let name = String(item.key.split(separator: ".")[1])
            let configuration = try Configuration.load(path: config.path)

            // csmil doctor: a problem with the TLS code, the file's words and a fix; nothing else about the files.
            let problems = Doctor.deliveryFiles(configuration).filter { $0.severity == .problem }
            let problem = try #require(problems.first { $0.subject == "[\(section)] \(name)" }, "\(item): \(problems)")
            #expect(problem.code == item.code, "\(item): \(problem)")
            #expect(
                problem.detail.contains(item.words) && problem.detail.contains("csmil watch will refuse"), "\(problem)")
            #expect(problem.fix?.isEmpty == false)
            #expect(problems.count == 1, "only this file is wrong: \(problems)")

            // The start check (csmil watch, reload, outbox deliver, score --notify): a configuration error naming
            // the configuration file, the key with its line, the file and the same fix.
            let error = try #require(throws: ConfigurationError.self) { try configuration.checkDeliveryFiles() }
            #expect(error.file == config.path)
            let refused = try #require(error.problems.first)
            #expect(error.problems.count == 1 && refused.code == .unusableFile && refused.key == item.key, "\(error)")
            #expect(refused.line == (try Self.line(of: name + " =", in: config)), "\(item): \(error)")
            #expect(refused.message.contains(item.words) && refused.fix == problem.fix, "\(error)")
            #expect(throws: ConfigurationError.self) { try configuration.deliveryDestinations() }
        }
    }

    /// A TCP listener on loopback that accepts each connection and closes it: enough for curl to load its TLS files
    /// (libcurl does that once connected, before the handshake) and then fail the handshake.
    final class ClosingListener: @unchecked Sendable {
        let descriptor: Int32
        let port: UInt16
        private let thread: Thread

        init() throws {
            let listening = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                    bind(listening, address, length) == 0 && listen(listening, 64) == 0
                        && getsockname(listening, address, &length) == 0
                }
            }
            try #require(bound, "cannot listen on 127.0.0.1: errno \(errno)")
            descriptor = listening
            port = UInt16(bigEndian: address.sin_port)
            thread = Thread {
                while true {
                    let connection = accept(listening, nil, nil)
                    if connection < 0 { return }
                    close(connection)
                }
            }
            thread.start()
        }

        func stop() { shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    @Test(
        "OpenSSL's verdict on each file is libcurl's: curl (the same libcurl) refuses exactly the files the check refuses"
    )
    func curlAgrees() throws {
        let pki = try TestCertificates()
        defer { try? FileManager.default.removeItem(atPath: pki.folder) }
        let folder = pki.folder
        try TestSupport.write(
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
            to: URL(fileURLWithPath: folder + "/garbage.pem"))
        let both =
            try String(contentsOfFile: pki.clientCertificate, encoding: .utf8)
            + String(contentsOfFile: pki.clientKey, encoding: .utf8)
        try TestSupport.write(both, to: URL(fileURLWithPath: folder + "/client-with-key.pem"))
        let openssl = try #require(
            try TestSupport.tool(
                "openssl",
                ["pkey", "-in", pki.clientKey, "-out", folder + "/encrypted.key", "-aes256", "-passout", "pass:x"]))
        try #require(openssl.status == 0, "\(openssl.stderr)")
        let rsa = try #require(
            try TestSupport.tool(
                "openssl",
                [
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", folder + "/rsa.key", "-out",
                    folder + "/rsa.pem", "-days", "2", "-subj", "/CN=csmil test rsa",
                ]))
        try #require(rsa.status == 0, "\(rsa.stderr)")
        let listener = try ClosingListener()
        defer { listener.stop() }

        // (ca_file, client_certificate, client_key), relative to the PKI folder.
        let combinations: [(String?, String?, String?)] = [
            ("ca.pem", nil, nil), ("client.key", nil, nil), ("garbage.pem", nil, nil), ("missing.pem", nil, nil),
            (nil, "client.pem", "client.key"), (nil, "client-with-key.pem", nil), (nil, "rsa.pem", "rsa.key"),
            (nil, "client.pem", nil), (nil, "client.pem", "client.pem"), (nil, "client.pem", "encrypted.key"),
            (nil, "client.pem", "other-ca.key"), (nil, "client.pem", "rsa.key"), (nil, "client.key", "client.key"),
        ]
        var accepted = 0
        for (ca, certificate, key) in combinations {
            let path = { (name: String?) in name.map { folder + "/" + $0 } }
            var ours = true
            do {
                if let ca = path(ca) { _ = try TLSFiles.checkCAFile(ca) }
                if let certificate = path(certificate) {
                    try TLSFiles.checkClient(certificate: certificate, key: path(key))
                }
            } catch {
                ours = false
            }
            // --pass "": an encrypted key fails instead of curl asking a terminal for its password.
            var arguments = ["-sS", "--pass", "", "https://127.0.0.1:\(listener.port)/"]
            if let ca = path(ca) { arguments += ["--cacert", ca] }
            if let certificate = path(certificate) { arguments += ["--cert", certificate] }
            if let key = path(key) { arguments += ["--key", key] }
            let curl = try #require(
                try TestSupport.tool("curl", arguments), "the curl command is required (scripts/setup installs it)")
            // 58 CURLE_SSL_CERTPROBLEM, 77 CURLE_SSL_CACERT_BADFILE: curl could not use a file. Anything else: it
            // used them and went on to the handshake, which the listener breaks off.
            let curlAccepted = curl.status != 58 && curl.status != 77
            #expect(ours == curlAccepted, "\((ca, certificate, key)): ours \(ours), curl \(curl.status) \(curl.stderr)")
            if curlAccepted { accepted += 1 }
        }
        #expect(accepted == 4, "the healthy combinations reached the handshake")
    }

    @Test("a damaged job store is a doctor problem naming the file and how to start afresh; a sound one passes")
    func jobStore() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let store = installation.root.appendingPathComponent("state/csmil.sqlite3")
        let absent = Doctor.jobStore(path: store.path)
        #expect(absent.severity == .ok && absent.detail.contains("does not exist yet"), "\(absent)")
        #expect(!FileManager.default.fileExists(atPath: store.path), "doctor must not create the store")

        _ = try JobStore(path: store.path)
        let sound = Doctor.jobStore(path: store.path)
        #expect(sound.severity == .ok && sound.detail.contains("integrity check passed"), "\(sound)")

        try FileManager.default.removeItem(at: store)
        try Data(repeating: 0x42, count: 8192).write(to: store)
        let problem = Doctor.jobStore(path: store.path)
        #expect(problem.severity == .problem && problem.code == "store.corrupt", "\(problem)")
        #expect(problem.detail.contains(store.path))
        #expect(problem.fix?.contains("move \(store.path)") == true, "\(problem)")
        let doctor = try TestSupport.csmil("doctor", "--config", installation.config.path)
        #expect(
            doctor.status == 1 && doctor.stdout.contains("problem job store") && doctor.stdout.contains(store.path),
            "\(doctor.stdout)")
    }

    @Test(
        "csmil watch refuses a missing ca_file before READY; a world-readable secret is warned at start and in status; a reload to a bad ca_file keeps the running settings"
    )
    func refusalWarningAndReload() throws {
        let setup = try WatchDaemonTests.Setup()
        defer { setup.cleanUp() }
        let config = setup.installation.config.path
        let good = try String(contentsOf: setup.installation.config, encoding: .utf8)
        let missing = setup.installation.root.appendingPathComponent("missing-ca.pem").path
        let bad = good + "\nca_file = \"\(missing)\"\n"
        try TestSupport.write(bad, to: setup.installation.config)

        // Started as systemd would; it must exit before READY=1 (a daemon that started instead is stopped here, and
        // the test fails on READY=1 rather than hanging).
        let refused = try setup.start()
        while refused.isRunning && !setup.notify.drain().contains(where: { $0.contains("READY=1") }) {}
        #expect(!refused.isRunning, "csmil watch started with a missing ca_file; log:\n\(setup.log())")
        if refused.isRunning { _ = WatchDaemonTests.stop(refused) }
        refused.waitUntilExit()
        #expect(refused.terminationStatus == WatchCommand.configurationExitStatus, "log:\n\(setup.log())")
        let stderr = setup.log()
        #expect(
            stderr.contains(config) && stderr.contains("webhook.ca_file")
                && stderr.contains("\(missing) does not exist")
                && stderr.contains("point ca_file at"), "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: setup.state.appendingPathComponent("csmil.sqlite3").path))
        let doctor = try TestSupport.csmil("doctor", "--config", config)
        #expect(doctor.status == 1 && doctor.stdout.contains("\(missing) does not exist"), "\(doctor.stdout)")

        try TestSupport.write(good, to: setup.installation.config)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: setup.installation.secret.path)
        let process = try setup.start(run: 1)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60), "log:\n\(setup.log(1))")
        #expect(setup.log(1).contains("the webhook secret is not private"), "log:\n\(setup.log(1))")
        let status = try TestSupport.csmil("status", "--config", config)
        #expect(
            status.stdout.contains(
                "warning: [webhook] secret_file \(setup.installation.secret.path) is readable by every user (mode 644)"),
            "\(status.stdout)")
        let json = try TestSupport.csmil("status", "--config", config, "--json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect((object["warnings"] as? [String])?.count == 1, "\(json.stdout)")

        // SIGHUP with the missing CA file: the delivery settings are not reloaded, the daemon keeps running and
        // delivering with the old ones; csmil status says what is wrong with the file now configured.
        try bad.write(to: setup.installation.config, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        let deadline = Date().addingTimeInterval(30)
        while !setup.log(1).contains("delivery settings not reloaded") && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(setup.log(1).contains("delivery settings not reloaded"), "log:\n\(setup.log(1))")
        #expect(setup.log(1).contains("webhook.ca_file"), "log:\n\(setup.log(1))")
        let afterReload = try TestSupport.csmil("status", "--config", config)
        #expect(
            afterReload.stdout.contains("warning: webhook.ca_file: \(missing) does not exist"), "\(afterReload.stdout)")
        try setup.drop("after-reload.svs", seed: 5)
        #expect(setup.waitForEvents(1, timeout: 120).count == 1, "log:\n\(setup.log(1))")
        #expect(WatchDaemonTests.stop(process))
    }
}
