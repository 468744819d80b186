import Foundation
import Inference
import Logging

extension Configuration {
    /// Where the systemd unit and the documentation expect the configuration.
    static let defaultPath = "/etc/csmil/csmil.toml"

    /// The sections and keys a configuration file may contain.
    static let schema: [(section: String, keys: [String])] = [
        ("watch", ["directory", "settle_seconds", "polling", "ignore", "rescan_seconds", "poll_seconds"]),
        ("output", ["directory"]),
        ("state", ["directory", "database", "database_password_file", "host_name", "lease_seconds"]),
        ("model", ["directory"]),
        (
            "webhook",
            [
                "url", "secret_file", "format", "allow_http", "retry_initial_seconds", "retry_max_seconds",
                "retry_window_hours", "connect_timeout_seconds", "timeout_seconds", "ca_file", "client_certificate",
                "client_key", "proxy", "fhir_bundle",
            ]
        ),
        ("identity", Configuration.identityKeys),
        ("hl7", Configuration.hl7Keys),
        ("log", ["level"]),
        ("ingest", ["assume_mpp"]),
        ("pipeline", ["max_concurrent_slides", "threads", "batch", "precision", "bf16_recheck_margin"]),
        ("qc", Configuration.qcKeys),
    ]

    /// The most slides `[pipeline] max_concurrent_slides` may score at once.
    static let maximumConcurrentSlides: Int64 = 16

    /// The largest `[ingest] assume_mpp` accepted, µm per pixel (a 1x scan).
    static let maximumAssumedMPP = 10.0

    /// Reads and validates the configuration file at `path`.
    static func load(path: String) throws(ConfigurationError) -> Configuration {
        let text = try TOMLReader.read(
            path: path, what: "the configuration file",
            fix: "pass --config with the path of a readable csmil.toml (see etc/csmil.toml)")
        return try parse(text, path: path)
    }

    /// Parses and validates configuration text; relative paths are resolved against the folder of `path`.
    static func parse(_ text: String, path: String) throws(ConfigurationError) -> Configuration {
        let root = try TOMLReader.parse(text, path: path)
        var reader = TOMLReader()
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
        reader.rejectUnknownKeys(in: root, section: nil, known: schema.map(\.section))

        var sections: [String: TOMLTable] = [:]
        for (section, keys) in schema {
            guard let table = reader.table(root, section) else { continue }
            reader.rejectUnknownKeys(in: table, section: section, known: keys)
            sections[section] = table
        }
        let empty = TOMLTable(line: 1, entries: [])
        let watch = sections["watch"] ?? empty
        let output = sections["output"] ?? empty
        let state = sections["state"] ?? empty
        let model = sections["model"] ?? empty
        let webhook = sections["webhook"] ?? empty
        let log = sections["log"] ?? empty
        let ingest = sections["ingest"] ?? empty
        let pipeline = sections["pipeline"] ?? empty
        let quality = reader.qualitySettings(sections["qc"] ?? empty)
        let identity = reader.identity(sections["identity"] ?? empty)
        let hl7 = reader.hl7(sections["hl7"] ?? empty, base: base)

        let watchDirectory = reader.directory(watch, section: "watch", base: base, default: nil)
        let settle = reader.number(watch, "settle_seconds", section: "watch", default: 30)
        if let settle, settle < 0 {
            reader.invalid(
                "watch.settle_seconds", line: TOMLReader.line(of: "settle_seconds", in: watch),
                "must not be negative (is \(settle))", fix: "use the seconds a slide must stay unchanged, e.g. 30")
        }
        let polling = reader.choice(watch, "polling", section: "watch", default: PollingMode.auto)
        let ignore = reader.strings(watch, "ignore", section: "watch", default: Self.defaultIgnore)
        if let ignore, ignore.contains(where: \.isEmpty) {
            reader.invalid(
                "watch.ignore", line: TOMLReader.line(of: "ignore", in: watch), "contains an empty pattern",
                fix: "remove the \"\" entry; patterns are globs such as \"*.tmp\" or \".*\"")
        }
        let rescanSeconds = reader.number(watch, "rescan_seconds", section: "watch", default: 600)
        let pollSeconds = reader.number(watch, "poll_seconds", section: "watch", default: 5)
        for (key, value, example) in [("rescan_seconds", rescanSeconds, "600"), ("poll_seconds", pollSeconds, "5")] {
            if let value, value <= 0 {
                reader.invalid(
                    "watch.\(key)", line: TOMLReader.line(of: key, in: watch),
                    "must be greater than 0 (is \(value))", fix: "use a positive number of seconds, e.g. \(example)")
            }
        }
        let outputDirectory = reader.directory(output, section: "output", base: base, default: "/var/lib/csmil/reports")
        let stateDirectory = reader.directory(state, section: "state", base: base, default: "/var/lib/csmil/state")
        let shared = reader.sharedStore(state, base: base)
        let modelDirectory = reader.directory(model, section: "model", base: base, default: nil)

        var url = reader.string(webhook, "url", section: "webhook", default: "")
        let secret = reader.string(webhook, "secret_file", section: "webhook", default: "")
        let format = reader.choice(webhook, "format", section: "webhook", default: WebhookFormat.event)
        let allowHTTP = reader.boolean(webhook, "allow_http", section: "webhook", default: false)
        let retryInitial = reader.number(webhook, "retry_initial_seconds", section: "webhook", default: 5)
        let retryMax = reader.number(webhook, "retry_max_seconds", section: "webhook", default: 3600)
        let retryWindow = reader.number(webhook, "retry_window_hours", section: "webhook", default: 72)
        let connectTimeout = reader.number(webhook, "connect_timeout_seconds", section: "webhook", default: 10)
        let timeout = reader.number(webhook, "timeout_seconds", section: "webhook", default: 30)
        let caFile = reader.string(webhook, "ca_file", section: "webhook", default: "")
        let clientCertificate = reader.string(webhook, "client_certificate", section: "webhook", default: "")
        let clientKey = reader.string(webhook, "client_key", section: "webhook", default: "")
        let proxy = reader.string(webhook, "proxy", section: "webhook", default: "")
        let fhirBundle = reader.boolean(webhook, "fhir_bundle", section: "webhook", default: false)
        let level = reader.choice(log, "level", section: "log", default: Logger.Level.info)
        let assumeMPP = reader.number(ingest, "assume_mpp", section: "ingest", default: 0)
        if let assumeMPP, assumeMPP < 0 || assumeMPP > Self.maximumAssumedMPP {
            reader.invalid(
                "ingest.assume_mpp", line: TOMLReader.line(of: "assume_mpp", in: ingest),
                "must be 0 (none) or a resolution in µm per pixel above 0 and at most \(Self.maximumAssumedMPP) "
                    + "(is \(assumeMPP))",
                fix: "use 0.5 for 20x scans, 0.25 for 40x, or 0 to refuse slides without resolution metadata")
        }

        let concurrent = reader.integer(pipeline, "max_concurrent_slides", section: "pipeline", default: 1)
        if let concurrent, concurrent < 1 || concurrent > Self.maximumConcurrentSlides {
            reader.invalid(
                "pipeline.max_concurrent_slides", line: TOMLReader.line(of: "max_concurrent_slides", in: pipeline),
                "must be between 1 and \(Self.maximumConcurrentSlides) (is \(concurrent))",
                fix: "use 1 (one slide at a time uses every core) or a few on a machine with many cores and memory")
        }
        let threads = reader.integer(pipeline, "threads", section: "pipeline", default: 0)
        if let threads, threads < 0 || threads > 256 {
            reader.invalid(
                "pipeline.threads", line: TOMLReader.line(of: "threads", in: pipeline),
                "must be between 0 and 256 (is \(threads))",
                fix: "use 0 to share the machine's cores among the slides, or a number of threads per slide")
        }
        let batch = reader.integer(pipeline, "batch", section: "pipeline", default: 0)
        if let batch, batch < 0 || batch > 256 {
            reader.invalid(
                "pipeline.batch", line: TOMLReader.line(of: "batch", in: pipeline),
                "must be between 0 and 256 (is \(batch))",
                fix: "use 0 for 4 tiles per thread, or a number of tiles per batch")
        }
        // Whether this CPU runs the precision is checked when the model is loaded (csmil watch, score), and told by
        // csmil doctor: the file itself may be valid for another machine.
        let precision = reader.choice(pipeline, "precision", section: "pipeline", default: Precision.fp32)
        let recheckMargin = reader.number(
            pipeline, "bf16_recheck_margin", section: "pipeline", default: Configuration.Pipeline.defaultRecheckMargin)
        if let recheckMargin, !(0...0.5).contains(recheckMargin) {
            reader.invalid(
                "pipeline.bf16_recheck_margin", line: TOMLReader.line(of: "bf16_recheck_margin", in: pipeline),
                "must be between 0 and 0.5 (is \(recheckMargin))",
                fix: "use 0.05 (bf16 slides within 0.05 of the threshold are scored again at fp32), or 0 for never")
        }

        if let text = url, !text.isEmpty {
            reader.checkWebhookURL(text, allowHTTP: allowHTTP ?? false, line: TOMLReader.line(of: "url", in: webhook))
            if secret?.isEmpty ?? false {
                reader.invalid(
                    "webhook.secret_file", line: webhook.line, "is required when [webhook] url is set",
                    fix: "point secret_file at a file holding \"whsec_\" + a base64 key (mode 0600), or set url = \"\"")
            }
        } else {
            url = nil
        }
        for (key, value) in [
            ("retry_initial_seconds", retryInitial), ("retry_max_seconds", retryMax),
            ("retry_window_hours", retryWindow), ("connect_timeout_seconds", connectTimeout),
            ("timeout_seconds", timeout),
        ] {
            if let value, value <= 0 {
                reader.invalid(
                    "webhook.\(key)", line: TOMLReader.line(of: key, in: webhook),
                    "must be greater than 0 (is \(value))",
                    fix: "use a positive number (defaults: retry 5 s, 3600 s, 72 h; timeouts 10 s and 30 s)")
            }
        }
        if let retryInitial, let retryMax, retryInitial > 0, retryMax < retryInitial {
            reader.invalid(
                "webhook.retry_max_seconds", line: TOMLReader.line(of: "retry_max_seconds", in: webhook),
                "is smaller than retry_initial_seconds (\(retryMax) < \(retryInitial))",
                fix: "make retry_max_seconds at least retry_initial_seconds")
        }
        if let clientKey, !clientKey.isEmpty, clientCertificate?.isEmpty ?? true {
            reader.invalid(
                "webhook.client_key", line: TOMLReader.line(of: "client_key", in: webhook),
                "is set without client_certificate",
                fix: "set client_certificate to the PEM certificate, or remove client_key")
        }
        if let proxy, !proxy.isEmpty, URLComponents(string: proxy)?.host?.isEmpty ?? true {
            reader.invalid(
                "webhook.proxy", line: TOMLReader.line(of: "proxy", in: webhook),
                "\"\(proxy)\" is not a proxy URL", fix: "write http://proxy.example.org:3128, or \"\" for none")
        } else if let proxy, !proxy.isEmpty, let scheme = URLComponents(string: proxy)?.scheme?.lowercased(),
            !Configuration.proxySchemes.contains(scheme)
        {
            // libcurl would refuse the scheme at every delivery (CURLE_UNSUPPORTED_PROTOCOL), retried for 72 h.
            reader.invalid(
                "webhook.proxy", line: TOMLReader.line(of: "proxy", in: webhook),
                "\"\(proxy)\": libcurl has no \(scheme):// proxies",
                fix: "use one of " + Configuration.proxySchemes.map { $0 + "://" }.joined(separator: ", "))
        }
        if let watchDirectory {
            for (section, directory, table) in [("output", outputDirectory, output), ("state", stateDirectory, state)] {
                guard let directory else { continue }
                if directory == watchDirectory || directory.hasPrefix(watchDirectory + "/") {
                    reader.invalid(
                        "\(section).directory", line: TOMLReader.line(of: "directory", in: table),
                        "\(directory) is inside the watched folder \(watchDirectory), so csmil would watch its own files",
                        fix: "put [\(section)] directory outside [watch] directory")
                }
            }
        }

        guard reader.problems.isEmpty, let watchDirectory, let settle, let polling, let ignore, let rescanSeconds,
            let pollSeconds, let outputDirectory,
            let stateDirectory, let modelDirectory, let secret, let format, let allowHTTP, let retryInitial,
            let retryMax, let retryWindow, let level, let assumeMPP, let connectTimeout, let timeout, let caFile,
            let clientCertificate, let clientKey, let proxy, let fhirBundle, let identity, let hl7, let quality,
            let shared
        else {
            throw ConfigurationError(file: path, problems: reader.problems)
        }
        return Configuration(
            sourcePath: path,
            watch: Watch(
                directory: watchDirectory, settleSeconds: settle, polling: polling, ignore: ignore,
                rescanSeconds: rescanSeconds, pollSeconds: pollSeconds),
            output: Output(directory: outputDirectory),
            state: State(
                directory: stateDirectory, database: shared.database, databasePasswordFile: shared.passwordFile,
                hostName: shared.hostName, leaseSeconds: shared.leaseSeconds),
            model: Model(directory: modelDirectory),
            webhook: Webhook(
                url: url, secretFile: secret.isEmpty ? nil : Self.resolve(secret, base: base), format: format,
                allowHTTP: allowHTTP, retryInitialSeconds: retryInitial, retryMaxSeconds: retryMax,
                retryWindowHours: retryWindow, connectTimeoutSeconds: connectTimeout, timeoutSeconds: timeout,
                caFile: caFile.isEmpty ? nil : Self.resolve(caFile, base: base),
                clientCertificate: clientCertificate.isEmpty ? nil : Self.resolve(clientCertificate, base: base),
                clientKey: clientKey.isEmpty ? nil : Self.resolve(clientKey, base: base),
                proxy: proxy.isEmpty ? nil : proxy, fhirBundle: fhirBundle),
            log: Log(level: level),
            ingest: Ingest(assumeMPP: assumeMPP > 0 ? assumeMPP : nil),
            pipeline: Pipeline(
                maxConcurrentSlides: Int(concurrent ?? 1), threads: (threads ?? 0) > 0 ? Int(threads ?? 0) : nil,
                batch: (batch ?? 0) > 0 ? Int(batch ?? 0) : nil, precision: precision ?? .fp32,
                bf16RecheckMargin: recheckMargin ?? Configuration.Pipeline.defaultRecheckMargin),
            identity: identity, hl7: hl7, qc: quality
        )
    }

    /// The proxy schemes libcurl takes (`CURLOPT_PROXY`).
    static let proxySchemes = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"]

    /// `path` made absolute against `base` and normalised ("a/../b" → "b").
    static func resolve(_ path: String, base: String) -> String {
        URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: base, isDirectory: true)).standardizedFileURL.path
    }
}

extension TOMLReader {
    /// The `directory` key of a section as an absolute path; empty strings are refused.
    fileprivate mutating func directory(
        _ table: TOMLTable, section: String, base: String, default fallback: String?
    )
        -> String?
    {
        guard let path = string(table, "directory", section: section, default: fallback) else { return nil }
        guard !path.isEmpty else {
            invalid(
                "\(section).directory", line: TOMLReader.line(of: "directory", in: table), "is empty",
                fix: "set it to a folder path")
            return nil
        }
        return Configuration.resolve(path, base: base)
    }

    /// Refuses webhook URLs that cannot be delivered to safely.
    fileprivate mutating func checkWebhookURL(_ text: String, allowHTTP: Bool, line: Int?) {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            let host = components.host, !host.isEmpty
        else {
            invalid("webhook.url", line: line, "\"\(text)\" is not an absolute URL", fix: "write https://host/path")
            return
        }
        switch scheme {
        case "https": break
        case "http" where allowHTTP: break
        case "http":
            invalid(
                "webhook.url", line: line, "plain http sends results unencrypted",
                fix: "use https, or set allow_http = true for a loopback test receiver")
        default:
            invalid("webhook.url", line: line, "scheme \"\(scheme)\" is not supported", fix: "use an https:// URL")
        }
        if components.user != nil || components.password != nil {
            invalid(
                "webhook.url", line: line, "contains credentials, which would end up in logs",
                fix: "remove user:password from the URL; deliveries are authenticated by the signature")
        }
    }
}
