import Foundation
import Notify
import Store

extension Configuration {
    /// Whether any destination is configured (`[webhook] url` or `[hl7] url`).
    var publishes: Bool { webhook.url != nil || hl7.url != nil }

    /// The destinations as configured now, webhook first: what each result becomes in the outbox (the webhook body,
    /// event or FHIR; the HL7 ORU^R01), where it goes and how. The webhook's secret is read from its file, so this
    /// throws when it cannot be used.
    func deliveryDestinations() throws -> [Destination] {
        try checkDeliveryFiles()
        var destinations: [Destination] = []
        if let url = webhook.url {
            destinations.append(
                try Destination.webhook(
                    url: url, format: webhook.payloadFormat, fhir: identity.fhirOptions(bundle: webhook.fhirBundle),
                    secret: try WebhookSecret.load(path: webhook.secretFile ?? ""), options: webhook.clientOptions,
                    retry: webhook.retryPolicy))
        }
        if let url = hl7.url {
            destinations.append(
                Destination.hl7(url: url, settings: hl7.settings, options: hl7.clientOptions, retry: hl7.retryPolicy))
        }
        return destinations
    }

    /// One TLS file of a destination that is on, as OpenSSL loaded it (``TLSFiles``).
    struct DeliveryFileCheck: Sendable {
        /// The dotted key, e.g. "webhook.ca_file" ("….client_key" when the key is the part that failed).
        var key: String
        var path: String
        /// What the file holds, or why it cannot be used.
        var result: Result<String, TLSFileError>
    }

    /// The TLS files (`ca_file`, `client_certificate` with `client_key`) of `[webhook]` and `[hl7]`, for each
    /// destination that has a URL, checked whenever they are set.
    func deliveryFileChecks() -> [DeliveryFileCheck] {
        var checks: [DeliveryFileCheck] = []
        let sections: [(String, String?, String?, String?, String?)] = [
            ("webhook", webhook.url, webhook.caFile, webhook.clientCertificate, webhook.clientKey),
            ("hl7", hl7.url, hl7.caFile, hl7.clientCertificate, hl7.clientKey),
        ]
        for (section, url, caFile, certificate, key) in sections where url != nil {
            if let caFile {
                let result = Result { () throws(TLSFileError) -> String in
                    let count = try TLSFiles.checkCAFile(caFile)
                    return "\(count) CA certificate\(count == 1 ? "" : "s")"
                }
                checks.append(DeliveryFileCheck(key: "\(section).ca_file", path: caFile, result: result))
            }
            if let certificate {
                let result = Result { () throws(TLSFileError) -> String in
                    try TLSFiles.checkClient(certificate: certificate, key: key)
                    return "a client certificate whose private key is " + (key.map { "in \($0)" } ?? "in the same file")
                }
                var (role, path) = ("client_certificate", certificate)
                if case .failure(let error) = result { (role, path) = (error.role.rawValue, error.file) }
                checks.append(DeliveryFileCheck(key: "\(section).\(role)", path: path, result: result))
            }
        }
        return checks
    }

    /// The deliveries' TLS files are usable; else a configuration error naming each key, file and fix, so that
    /// `csmil watch` does not start (and a reload keeps the running settings) instead of failing every delivery.
    func checkDeliveryFiles() throws(ConfigurationError) {
        let problems = deliveryFileChecks().compactMap { check -> ConfigurationError.Problem? in
            guard case .failure(let error) = check.result else { return nil }
            return ConfigurationError.Problem(
                code: .unusableFile, key: check.key, line: Self.line(of: check.key, in: sourcePath),
                message: "\(error.file) \(error.message)", fix: error.fix)
        }
        if !problems.isEmpty { throw ConfigurationError(file: sourcePath, problems: problems) }
    }

    /// The line of a dotted key ("webhook.ca_file") in the configuration file at `path`, when it can be found.
    static func line(of dottedKey: String, in path: String) -> Int? {
        let parts = dottedKey.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2, let text = try? String(contentsOfFile: path, encoding: .utf8),
            let root = try? TOMLReader.parse(text, path: path), let node = root[parts[0]],
            case .table(let table) = node.value
        else { return nil }
        return table[parts[1]]?.line
    }

    /// Destination name → the URL configured now.
    var deliveryURLs: [String: String] {
        var urls: [String: String] = [:]
        if let url = webhook.url { urls[OutboxMessage.webhook] = url }
        if let url = hl7.url { urls[OutboxMessage.hl7] = url }
        return urls
    }

    /// The delivery worker's configuration, for `destinations` (those of this configuration unless given).
    func deliveryConfiguration(
        idlePoll: Double = 30, destinations: [Destination]? = nil
    ) throws -> OutboxDelivery.Configuration {
        OutboxDelivery.Configuration(
            store: storeLocation, host: state.hostName, destinations: try destinations ?? deliveryDestinations(),
            idlePoll: idlePoll)
    }
}

extension [Destination] {
    /// The outbox rows of a report written to `folder` (nil: none was written): one per destination, time-stamped
    /// `now`.
    func messages(for report: SlideReport, folder: String?, now: Date = Date()) throws -> [OutboxMessage] {
        try map { try $0.encode(report, folder, now) }
    }
}
