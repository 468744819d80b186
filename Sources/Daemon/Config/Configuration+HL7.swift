import Foundation
import Notify

extension Configuration {
    /// `[identity]`: how a slide's file name gives the laboratory's identifiers.
    struct Identity: Sendable, Equatable {
        /// The regular expression with named groups; nil when not configured (no identity in the reports).
        var pattern: String?
        /// A name that does not match (no accession) makes the slide `failed` with `slide.no_accession`.
        var required = false
        /// FHIR `Identifier.system` of the accession.
        var accessionSystem = FHIROptions.defaultAccessionSystem
    }

    /// OBR-25/OBX-11 of the results sent.
    enum HL7ResultStatus: String, Sendable, CaseIterable {
        /// Preliminary: an algorithm's result before a pathologist signs out (the default).
        case preliminary = "P"
        /// Final.
        case final = "F"
    }

    /// `[hl7]`: results as HL7 v2.5.1 ORU^R01 over MLLP.
    struct HL7: Sendable, Equatable {
        /// `mllp://HOST:PORT` or `mllps://HOST:PORT`; nil when `url = ""` (off).
        var url: String?
        var sendingApplication = "CSMIL"
        var sendingFacility = ""
        var receivingApplication = ""
        var receivingFacility = ""
        var resultStatus = HL7ResultStatus.preliminary
        /// Seconds from sending a message to its ACK.
        var ackTimeoutSeconds = 30.0
        /// Seconds to establish a connection (TCP and TLS).
        var connectTimeoutSeconds = 10.0
        /// Plain `mllp://` to a host other than loopback.
        var allowPlain = false
        var caFile: String?
        var clientCertificate: String?
        var clientKey: String?
        var retryInitialSeconds = 5.0
        var retryMaxSeconds = 3600.0
        var retryWindowHours = 72.0
    }

    /// The keys of the two sections, for the schema.
    static let identityKeys = ["pattern", "required", "accession_system"]
    static let hl7Keys = [
        "url", "sending_application", "sending_facility", "receiving_application", "receiving_facility",
        "result_status", "ack_timeout_seconds", "connect_timeout_seconds", "allow_plain", "ca_file",
        "client_certificate", "client_key", "retry_initial_seconds", "retry_max_seconds", "retry_window_hours",
    ]
}

extension Configuration.Identity {
    /// The compiled pattern; nil when none is configured. The configuration was validated, so it compiles.
    func compiled() -> IdentityPattern? {
        pattern.flatMap { try? IdentityPattern($0) }
    }

    /// How the FHIR body names the accession.
    func fhirOptions(bundle: Bool) -> FHIROptions {
        FHIROptions(accessionSystem: accessionSystem, bundle: bundle)
    }
}

extension Configuration.HL7 {
    /// Who sends and receives, and the result status.
    var settings: HL7Settings {
        HL7Settings(
            sendingApplication: sendingApplication, sendingFacility: sendingFacility,
            receivingApplication: receivingApplication, receivingFacility: receivingFacility,
            resultStatus: resultStatus.rawValue)
    }

    /// How each message is sent.
    var clientOptions: MLLPClientOptions {
        MLLPClientOptions(
            connectTimeout: connectTimeoutSeconds, ackTimeout: ackTimeoutSeconds, allowPlain: allowPlain,
            caFile: caFile, clientCertificate: clientCertificate, clientKey: clientKey)
    }

    /// When failed sends are retried.
    var retryPolicy: RetryPolicy {
        RetryPolicy(initialDelay: retryInitialSeconds, maximumDelay: retryMaxSeconds, window: retryWindowHours * 3600)
    }
}

extension TOMLReader {
    /// Reads and checks `[identity]`.
    mutating func identity(_ table: TOMLTable) -> Configuration.Identity? {
        let pattern = string(table, "pattern", section: "identity", default: "")
        let required = boolean(table, "required", section: "identity", default: false)
        let system = string(
            table, "accession_system", section: "identity", default: FHIROptions.defaultAccessionSystem)
        if let pattern, !pattern.isEmpty {
            do {
                _ = try IdentityPattern(pattern)
            } catch {
                invalid(
                    "identity.pattern", line: TOMLReader.line(of: "pattern", in: table), error.message, fix: error.fix)
            }
        } else if required == true {
            invalid(
                "identity.required", line: TOMLReader.line(of: "required", in: table), "is true without a pattern",
                fix: "set [identity] pattern to a regular expression with an (?<accession>…) group, or required = false"
            )
        }
        if let system, URLComponents(string: system)?.scheme == nil {
            invalid(
                "identity.accession_system", line: TOMLReader.line(of: "accession_system", in: table),
                "\"\(system)\" is not an absolute URI",
                fix: "use the LIS's URI for accession numbers, e.g. \"http://lab.example.org/accession\"")
        }
        guard let pattern, let required, let system else { return nil }
        return Configuration.Identity(
            pattern: pattern.isEmpty ? nil : pattern, required: required, accessionSystem: system)
    }

    /// Reads and checks `[hl7]`; paths are resolved against `base`.
    mutating func hl7(_ table: TOMLTable, base: String) -> Configuration.HL7? {
        let defaults = Configuration.HL7()
        let url = string(table, "url", section: "hl7", default: "")
        let sendingApplication = string(
            table, "sending_application", section: "hl7", default: defaults.sendingApplication)
        let sendingFacility = string(table, "sending_facility", section: "hl7", default: "")
        let receivingApplication = string(table, "receiving_application", section: "hl7", default: "")
        let receivingFacility = string(table, "receiving_facility", section: "hl7", default: "")
        let resultStatus = choice(
            table, "result_status", section: "hl7", default: Configuration.HL7ResultStatus.preliminary)
        let ackTimeout = number(table, "ack_timeout_seconds", section: "hl7", default: defaults.ackTimeoutSeconds)
        let connectTimeout = number(
            table, "connect_timeout_seconds", section: "hl7", default: defaults.connectTimeoutSeconds)
        let allowPlain = boolean(table, "allow_plain", section: "hl7", default: false)
        let caFile = string(table, "ca_file", section: "hl7", default: "")
        let clientCertificate = string(table, "client_certificate", section: "hl7", default: "")
        let clientKey = string(table, "client_key", section: "hl7", default: "")
        let retryInitial = number(table, "retry_initial_seconds", section: "hl7", default: 5)
        let retryMax = number(table, "retry_max_seconds", section: "hl7", default: 3600)
        let retryWindow = number(table, "retry_window_hours", section: "hl7", default: 72)

        if let url, !url.isEmpty {
            let line = TOMLReader.line(of: "url", in: table)
            do {
                let endpoint = try MLLPClient.Endpoint(url: url)
                if !endpoint.tls && !endpoint.isLoopback && allowPlain != true {
                    invalid(
                        "hl7.url", line: line, "plain mllp:// sends results unencrypted to \(endpoint.host)",
                        fix: "use mllps:// (TLS), or set allow_plain = true on a network you trust")
                }
            } catch {
                invalid("hl7.url", line: line, "\"\(url)\" \(error.message)", fix: error.fix)
            }
        }
        for (key, value) in [
            ("sending_application", sendingApplication), ("sending_facility", sendingFacility),
            ("receiving_application", receivingApplication), ("receiving_facility", receivingFacility),
        ] {
            if let value, value.unicodeScalars.contains(where: { $0.value < 0x20 }) {
                invalid(
                    "hl7.\(key)", line: TOMLReader.line(of: key, in: table), "contains a control character",
                    fix: "use the name the LIS interface expects, e.g. \"CSMIL\"")
            }
        }
        for (key, value) in [
            ("ack_timeout_seconds", ackTimeout), ("connect_timeout_seconds", connectTimeout),
            ("retry_initial_seconds", retryInitial), ("retry_max_seconds", retryMax),
            ("retry_window_hours", retryWindow),
        ] {
            if let value, value <= 0 {
                invalid(
                    "hl7.\(key)", line: TOMLReader.line(of: key, in: table), "must be greater than 0 (is \(value))",
                    fix: "use a positive number (defaults: ACK 30 s, connect 10 s, retry 5 s, 3600 s, 72 h)")
            }
        }
        if let retryInitial, let retryMax, retryInitial > 0, retryMax < retryInitial {
            invalid(
                "hl7.retry_max_seconds", line: TOMLReader.line(of: "retry_max_seconds", in: table),
                "is smaller than retry_initial_seconds (\(retryMax) < \(retryInitial))",
                fix: "make retry_max_seconds at least retry_initial_seconds")
        }
        if let clientKey, !clientKey.isEmpty, clientCertificate?.isEmpty ?? true {
            invalid(
                "hl7.client_key", line: TOMLReader.line(of: "client_key", in: table),
                "is set without client_certificate",
                fix: "set client_certificate to the PEM certificate, or remove client_key")
        }
        guard let url, let sendingApplication, let sendingFacility, let receivingApplication, let receivingFacility,
            let resultStatus, let ackTimeout, let connectTimeout, let allowPlain, let caFile, let clientCertificate,
            let clientKey, let retryInitial, let retryMax, let retryWindow
        else { return nil }
        let path = { (text: String) in text.isEmpty ? nil : Configuration.resolve(text, base: base) }
        return Configuration.HL7(
            url: url.isEmpty ? nil : url, sendingApplication: sendingApplication, sendingFacility: sendingFacility,
            receivingApplication: receivingApplication, receivingFacility: receivingFacility,
            resultStatus: resultStatus, ackTimeoutSeconds: ackTimeout, connectTimeoutSeconds: connectTimeout,
            allowPlain: allowPlain, caFile: path(caFile), clientCertificate: path(clientCertificate),
            clientKey: path(clientKey), retryInitialSeconds: retryInitial, retryMaxSeconds: retryMax,
            retryWindowHours: retryWindow)
    }
}
