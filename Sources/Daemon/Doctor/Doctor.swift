import Crypto
import Foundation
import Inference
import Ingest
import Notify

/// The checks behind `csmil doctor`: libraries, CPU, and, given a configuration, its folders,
/// model files and webhook secret. Each check returns findings instead of printing, so tests can
/// look at them.
enum Doctor {
    /// The libraries csmil is linked against, with their versions as the libraries report them.
    static func libraries() -> [Finding] {
        var findings: [Finding] = [.ok("OpenSlide", "libopenslide \(OpenSlideLibrary.version)")]

        var blas = "\(BLASRuntime.configuration.trimmingCharacters(in: .whitespaces)); core \(BLASRuntime.coreName)"
        blas += ", \(BLASRuntime.threadCount) thread(s) of \(BLASRuntime.processorCount) processor(s)"
        if let path = SystemInfo.loadedLibrary("libopenblas") { blas += "; \(path)" }
        if let coreType = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] {
            blas += "; OPENBLAS_CORETYPE=\(coreType) forces the kernels"
        }
        findings.append(.ok("OpenBLAS", blas))
        var dnnl = "libdnnl \(OneDNN.version), kernels for \(OneDNN.instructionSet.name)"
        if let path = SystemInfo.loadedLibrary("libdnnl") { dnnl += "; \(path)" }
        if let cap = ProcessInfo.processInfo.environment["DNNL_MAX_CPU_ISA"] {
            dnnl += "; DNNL_MAX_CPU_ISA=\(cap) caps them"
        }
        findings.append(.ok("oneDNN", dnnl))

        let curl = CurlLibrary.loaded
        let curlDetail = "libcurl \(curl.version) with \(curl.tlsBackend ?? "no TLS backend")"
        findings.append(
            curl.supportsHTTPS
                ? .ok("libcurl", curlDetail + " (https)")
                : .problem(
                    "libcurl", curlDetail + ": cannot deliver webhooks over https",
                    fix: "install Debian's libcurl4 (OpenSSL flavour): apt-get install libcurl4-openssl-dev"))

        var systemd = SystemInfo.loadedLibrary("libsystemd") ?? "libsystemd"
        let environment = ProcessInfo.processInfo.environment
        systemd +=
            environment["NOTIFY_SOCKET"] != nil
            ? "; running under a Type=notify unit" : "; not started by systemd (READY/STATUS notifications are skipped)"
        findings.append(.ok("libsystemd", systemd))
        return findings
    }

    /// The CPU's model and the instruction sets the numerics use.
    static func cpu(cpuinfo: String? = SystemInfo.readProcFile("/proc/cpuinfo")) -> Finding {
        guard let cpuinfo else {
            return .warning("CPU", "/proc/cpuinfo is not readable", fix: "run on Linux with /proc mounted")
        }
        let (model, flags) = SystemInfo.cpu(cpuinfo: cpuinfo)
        let present = SystemInfo.relevantCPUFlags.filter(flags.contains).map { $0.uppercased() }
        let detail =
            "\(model ?? "unknown model"), \(ProcessInfo.processInfo.activeProcessorCount) core(s); "
            + (present.isEmpty ? "no SIMD extensions found" : present.joined(separator: " "))
        if flags.contains("avx2") && flags.contains("fma") { return .ok("CPU", detail) }
        return .warning(
            "CPU", detail + ": no AVX2+FMA, so embedding runs several times slower",
            fix: "run csmil on an x86-64 CPU with AVX2 and FMA (Haswell or newer) for full speed")
    }

    /// The backbone precisions this CPU runs natively (`[pipeline] precision`), and, given the configured one,
    /// whether the daemon will start with it.
    static func precisions(configured: Precision? = nil) -> Finding {
        let native = Precision.native
        let detail = Precision.allCases.map { precision in
            precision.unsupportedReason.map { "\(precision) not native: \($0)" }
                ?? "\(precision) native (\(precision.kernelsDescription()))"
        }.joined(separator: "; ")
        if let configured, !native.contains(configured) {
            return .problem(
                "[pipeline] precision",
                "\"\(configured)\" is configured, but " + detail + "; csmil watch will refuse to start",
                fix: "set precision = \"fp32\" in [pipeline], or run csmil on a CPU with AVX512_BF16 or AMX")
        }
        return .ok(configured.map { "[pipeline] precision \($0)" } ?? "precisions", detail)
    }

    /// Everything a configuration file points at.
    static func configuration(path: String) -> [Finding] {
        let configuration: Configuration
        do {
            configuration = try Configuration.load(path: path)
        } catch {
            return findings(for: error, subject: "config")
        }
        var findings: [Finding] = [.ok("config", "\(path) is valid")]
        findings.append(directory(configuration.watch.directory, subject: "[watch] directory", writable: false))
        findings.append(directory(configuration.output.directory, subject: "[output] directory", writable: true))
        let state = directory(configuration.state.directory, subject: "[state] directory", writable: true)
        findings.append(state)
        if state.severity == .ok, let free = SystemInfo.freeBytes(at: configuration.state.directory),
            free < 10 << 30
        {
            findings.append(
                .warning(
                    "[state] directory",
                    "only \(format(bytes: free)) free; one large slide spills about 2 GB of features",
                    fix: "free space or move [state] directory to a larger file system"))
        }
        let model = directory(configuration.model.directory, subject: "[model] directory", writable: false)
        findings.append(model)
        if model.severity == .ok { findings += self.model(directory: configuration.model.directory) }
        findings += webhook(configuration.webhook)
        findings.append(precisions(configured: configuration.pipeline.precision))
        findings += identity(configuration.identity)
        findings += hl7(configuration.hl7, identity: configuration.identity)
        findings += store(configuration.state, location: configuration.storeLocation)
        findings += deliveryFiles(configuration)
        if state.severity == .ok, case .sqlite(let path) = configuration.storeLocation {
            findings.append(jobStore(path: path))
        }
        return findings
    }

    /// One problem per configuration error, placed as "file:line key".
    static func findings(for error: ConfigurationError, subject: String) -> [Finding] {
        error.problems.map { problem in
            let place = [problem.line.map { "\(error.file):\($0)" } ?? error.file, problem.key]
                .compactMap { $0 }.joined(separator: " ")
            return .problem(subject, "\(place): \(problem.message)", fix: problem.fix, code: problem.code.rawValue)
        }
    }

    /// A folder that must exist and be readable, or also writable, by the user running csmil.
    static func directory(_ path: String, subject: String, writable: Bool) -> Finding {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            let create = writable ? "mkdir -p \(path) && chown csmil: \(path)" : "mkdir -p \(path), or mount it"
            return .problem(
                subject, "\(path) does not exist", fix: "create it (\(create)) or change \(subject) in the config")
        }
        guard isDirectory.boolValue else {
            return .problem(subject, "\(path) is not a folder", fix: "point \(subject) at a folder")
        }
        let mode = writable ? R_OK | W_OK | X_OK : R_OK | X_OK
        guard access(path, mode) == 0 else {
            let needs = writable ? "readable and writable" : "readable"
            return .problem(
                subject, "\(path) is not \(needs) by this user (uid \(getuid()))",
                fix:
                    "chown csmil: \(path) (or chmod it), and run doctor as the service user: sudo -u csmil csmil doctor"
            )
        }
        return .ok(subject, path + (writable ? " (writable)" : " (readable)"))
    }

    /// The model directory: `model.toml` valid, every file present, in a known format, hashed.
    static func model(directory: String) -> [Finding] {
        let manifest: ModelManifest
        do {
            manifest = try ModelManifest.load(directory: directory)
        } catch {
            return findings(for: error, subject: "model")
        }
        var findings: [Finding] = [
            .ok(
                "model",
                "\(manifest.name): \(manifest.architecture.rawValue), \(manifest.heads.count) head(s), "
                    + "threshold \(manifest.threshold)")
        ]
        for file in manifest.files {
            let subject = "model \(file.role)"
            guard let handle = FileHandle(forReadingAtPath: file.resolvedPath) else {
                let exists = FileManager.default.fileExists(atPath: file.resolvedPath)
                findings.append(
                    .problem(
                        subject, "\(file.resolvedPath) \(exists ? "is not readable" : "does not exist")",
                        fix: exists
                            ? "make it readable by the service user (chmod 644)"
                            : "copy the file into the model directory or correct \(file.role) in model.toml"))
                continue
            }
            defer { try? handle.close() }
            do {
                let (digest, size, head) = try FileDigest.sha256(of: handle)
                guard let format = WeightFileFormat(head: head) else {
                    findings.append(
                        .problem(
                            subject, "\(file.path) is neither a torch.save zip (.pth) nor a .safetensors file",
                            fix:
                                "use the checkpoint exactly as PyTorch saved it (torch ≥ 1.6), or a .safetensors export"
                        ))
                    continue
                }
                findings.append(
                    .ok(subject, "\(file.path) \(format.rawValue), \(Self.format(bytes: size)), sha256:\(digest)"))
            } catch {
                findings.append(
                    .problem(
                        subject, "\(file.resolvedPath) could not be read: \(error)", fix: "check the disk and the file")
                )
            }
        }
        // Only when every file is there and readable: load them as the daemon will.
        if !findings.contains(where: { $0.severity == .problem }) { findings.append(weights(manifest)) }
        return findings
    }

    /// Loads every weight file as the daemon will (restricted unpickler, shape checks against the
    /// architecture), so a wrong, truncated or malicious file shows up here and not on the first slide.
    static func weights(_ manifest: ModelManifest) -> Finding {
        do {
            let model = try Model(manifest: manifest)
            return .ok(
                "model weights",
                "every tensor present with the shapes of \(manifest.architecture.rawValue) (D = \(model.featureSize)), "
                    + "\(manifest.heads.count) head(s)")
        } catch {
            return .problem("model weights", error)
        }
    }

    /// The webhook: either off, or an https URL with a well-formed secret file kept private.
    static func webhook(_ webhook: Configuration.Webhook) -> [Finding] {
        guard let url = webhook.url else {
            return [.ok("[webhook]", "url is empty: results are written as reports only, nothing is delivered")]
        }
        var findings: [Finding] = [.ok("[webhook] url", "\(url) (\(webhook.format.rawValue) format)")]
        if let secretFile = webhook.secretFile { findings.append(secret(path: secretFile)) }
        return findings
    }

    /// The signing secret: readable, not world-readable, "whsec_" + base64. Never printed.
    static func secret(path: String) -> Finding {
        let subject = "[webhook] secret_file"
        var status = stat()
        guard stat(path, &status) == 0 else {
            return .problem(
                subject, "\(path) does not exist",
                fix:
                    "write \"whsec_\" + a base64 key into it: echo whsec_$(head -c 32 /dev/urandom | base64) > \(path); chmod 600 \(path)"
            )
        }
        if status.st_mode & S_IROTH != 0 {
            return .problem(
                subject, "\(path) is readable by every user (mode \(String(status.st_mode & 0o777, radix: 8)))",
                fix: "chmod 600 \(path) (or 640 with group csmil)")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            return .problem(
                subject, "\(path) is not readable by this user (uid \(getuid()))", fix: "chown csmil: \(path)")
        }
        do {
            // The daemon's own parser: what it refuses, doctor refuses, with the same words.
            _ = try WebhookSecret(text: text, source: path)
        } catch {
            return .problem(subject, error)
        }
        return .ok(subject, "\(path) (mode \(String(status.st_mode & 0o777, radix: 8)), well-formed)")
    }

    static func format(bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}

/// The container formats a weight file may have, told apart by their first bytes.
enum WeightFileFormat: String {
    /// `torch.save` (torch ≥ 1.6): a zip archive, "PK\u{3}\u{4}".
    case torchZip = "torch.save zip"
    /// safetensors: an 8-byte little-endian header length, then a JSON header starting with "{".
    case safetensors = "safetensors"

    init?(head: [UInt8]) {
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            self = .torchZip
        } else if head.count >= 9, head[8] == UInt8(ascii: "{") {
            self = .safetensors
        } else {
            return nil
        }
    }
}
