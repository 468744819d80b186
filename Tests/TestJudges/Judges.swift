import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The independent judges of the HL7, FHIR and webhook output: Python programs in `tools/` — on the PyPI `hl7` and
/// `fhir.resources` packages, in a virtual environment the tests create once under `.build/judges-venv` (Debian's
/// python3 and python3-venv; pip from PyPI), serialised across test processes by a lock file — and the Standard
/// Webhooks signature check on Python's standard library. Shared by the Notify and Daemon tests.
public enum Judges {
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url.path
            }
        }
        fatalError("Package.swift not found above \(#filePath)")
    }()

    /// The venv's python, with the judges' packages installed (made on first use).
    static let python: Result<String, JudgeError> = {
        let folder = packageRoot + "/.build/judges-venv"
        let python = folder + "/bin/python"
        let requirements = packageRoot + "/tools/judges-requirements.txt"
        let stamp = folder + "/installed-requirements.txt"
        let lock = open(packageRoot + "/.build/judges-venv.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        if lock >= 0 { flock(lock, LOCK_EX) }
        defer { if lock >= 0 { close(lock) } }
        let wanted = (try? String(contentsOfFile: requirements, encoding: .utf8)) ?? ""
        if (try? String(contentsOfFile: stamp, encoding: .utf8)) == wanted { return .success(python) }
        try? FileManager.default.removeItem(atPath: folder)
        for arguments in [
            ["/usr/bin/python3", "-m", "venv", folder],
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", requirements],
        ] {
            let (status, output) = run(arguments)
            guard status == 0 else {
                return .failure(JudgeError(message: "\(arguments.joined(separator: " ")) failed: \(output)"))
            }
        }
        try? wanted.write(toFile: stamp, atomically: true, encoding: .utf8)
        return .success(python)
    }()

    /// The venv's python, or an error naming why it could not be made.
    public static func pythonPath() throws -> String {
        switch python {
        case .success(let path): return path
        case .failure(let error): throw error
        }
    }

    /// Runs a program to completion; its status and combined output.
    public static func run(_ arguments: [String]) -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// A fresh empty folder under one per-process folder that is removed when the process exits.
    public static func temporaryFolder() throws -> String {
        let path = scratchRoot + "/" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static let scratchRoot: String = {
        let root = NSTemporaryDirectory() + "csmil-judges-" + UUID().uuidString
        atexit { try? FileManager.default.removeItem(atPath: Judges.scratchRoot) }
        return root
    }()

    /// A JSON object, or an error showing the text.
    static func jsonObject(_ text: Substring) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw JudgeError(message: "not a JSON object: \(text)")
        }
        return object
    }

    /// `tools/fhir_validate.py` on FHIR bodies: one parsed JSON result per body (`ok`, `resources`, `problems`).
    public static func validateFHIR(_ bodies: [[UInt8]]) throws -> [[String: Any]] {
        let folder = try temporaryFolder()
        var paths: [String] = []
        for (index, body) in bodies.enumerated() {
            let path = folder + "/body-\(index).json"
            try Data(body).write(to: URL(fileURLWithPath: path))
            paths.append(path)
        }
        let (_, output) = run([try pythonPath(), packageRoot + "/tools/fhir_validate.py"] + paths)
        return try output.split(separator: "\n").map(jsonObject)
    }

    /// `tools/verify_webhook_signature.py` (Python's hmac, independent of swift-crypto) on the Standard Webhooks
    /// headers and body bytes a receiver got; its exit status (0: verified) and output.
    public static func verifyWebhookSignature(
        secretFile: String, id: String, timestamp: String, signature: String, body: [UInt8]
    ) throws -> (status: Int32, output: String) {
        let bodyPath = try temporaryFolder() + "/webhook.body"
        try Data(body).write(to: URL(fileURLWithPath: bodyPath))
        guard
            let python = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else {
            throw JudgeError(
                message: "python3 is required for the independent signature check (scripts/setup installs it)")
        }
        return run([
            python, packageRoot + "/tools/verify_webhook_signature.py", "--secret-file", secretFile, "--id", id,
            "--timestamp", timestamp, "--signature", signature, bodyPath,
        ])
    }

    /// `tools/hl7_receiver.py` running as a process: the MLLP receiver built on the `hl7` package.
    public final class HL7Receiver {
        let process = Process()
        public let folder: String
        public let log: String
        public let port: Int

        /// Starts the receiver (on `port`, 0 for any) and waits until it listens. `acks` is the answer to each
        /// message in turn (AA, AE, AR, SILENT, CLOSE; AA after the list). With `tls` it speaks MLLP over TLS with
        /// that certificate and key, and asks for a client certificate signed by `clientCA` when one is given.
        public init(
            acks: [String] = [], port: Int = 0, tls: (cert: String, key: String, clientCA: String?)? = nil
        )
            throws
        {
            folder = try Judges.temporaryFolder()
            log = folder + "/messages.jsonl"
            let portFile = folder + "/port"
            process.executableURL = URL(fileURLWithPath: try Judges.pythonPath())
            var arguments = [
                Judges.packageRoot + "/tools/hl7_receiver.py", "--port-file", portFile, "--log", log, "--acks",
                acks.joined(separator: ","), "--port", String(port),
            ]
            if let tls {
                arguments += ["--tls-cert", tls.cert, "--tls-key", tls.key]
                if let ca = tls.clientCA { arguments += ["--client-ca", ca] }
            }
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            let errors = folder + "/stderr"
            _ = FileManager.default.createFile(atPath: errors, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: errors)
            try process.run()
            // Waits for the event "listening" (the port file appears), or for the process to end.
            while !FileManager.default.fileExists(atPath: portFile) {
                guard process.isRunning else {
                    let text = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
                    throw JudgeError(message: "hl7_receiver.py ended before listening: \(text)")
                }
                Thread.sleep(forTimeInterval: 0.05)
            }
            self.port = Int(try String(contentsOfFile: portFile, encoding: .utf8)) ?? 0
        }

        deinit { stop() }

        public var url: String { "mllp://127.0.0.1:\(port)" }

        public func stop() {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }

        /// The messages received so far, as the judge parsed them.
        public func messages() throws -> [[String: Any]] {
            guard let text = try? String(contentsOfFile: log, encoding: .utf8) else { return [] }
            // Only whole lines: the receiver may be writing the next one right now.
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            lines.removeLast()
            return try lines.filter { !$0.isEmpty }.map(Judges.jsonObject)
        }

        /// Waits until the receiver has logged at least `count` messages (each line is written when a message has
        /// arrived, before it is answered), or until it ended or `sender` says the sender is gone (a process that
        /// exited); the messages logged by then.
        public func waitForMessages(_ count: Int, while sender: () -> Bool = { true }) throws -> [[String: Any]] {
            while true {
                let logged = try messages()
                if logged.count >= count || !process.isRunning || !sender() { return try messages() }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    /// A parsed message's fields of the `occurrence`th segment `id`: field n (1-based) → components, as the judge
    /// read them.
    public static func fields(_ message: [String: Any], _ id: String, occurrence: Int = 1) -> [[String]] {
        let segments = (message["segments"] as? [[String: Any]] ?? []).filter { $0["id"] as? String == id }
        guard occurrence <= segments.count else { return [] }
        return segments[occurrence - 1]["fields"] as? [[String]] ?? []
    }

    /// Component `component` of field `field` of segment `id` as the judge read it; "" when absent.
    public static func value(_ message: [String: Any], _ id: String, _ field: Int, _ component: Int = 1) -> String {
        let fields = fields(message, id)
        guard field >= 1, field <= fields.count, component >= 1, component <= fields[field - 1].count else {
            return ""
        }
        return fields[field - 1][component - 1]
    }

    /// OBX-3's code → OBX-5 (components joined by `^`) for every OBX row, as the judge read them.
    public static func observations(_ message: [String: Any]) -> [String: [String]] {
        var observations: [String: [String]] = [:]
        var occurrence = 1
        while case let fields = fields(message, "OBX", occurrence: occurrence), !fields.isEmpty {
            observations[fields.count >= 3 ? fields[2].first ?? "" : "", default: []].append(
                fields.count >= 5 ? fields[4].joined(separator: "^") : "")
            occurrence += 1
        }
        return observations
    }
}

public struct JudgeError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}
