import Foundation
import Notify
import Store

/// What each result becomes in the outbox: one row per configured destination — the webhook body (event or FHIR)
/// and the HL7 ORU^R01 — built once from the report when it is committed.
struct Publishing: Sendable, Equatable {
    /// The webhook body format; nil when `[webhook] url` is empty.
    var webhook: WebhookPayload.Format?
    /// How FHIR bodies are built.
    var fhir = FHIROptions()
    /// The HL7 message settings; nil when `[hl7] url` is empty.
    var hl7: HL7Settings?

    /// Nothing is published.
    static let none = Publishing()

    /// What `configuration` publishes.
    init(_ configuration: Configuration) {
        if configuration.webhook.url != nil { webhook = configuration.webhook.payloadFormat }
        fhir = configuration.identity.fhirOptions(bundle: configuration.webhook.fhirBundle)
        if configuration.hl7.url != nil { hl7 = configuration.hl7.settings }
    }

    init(webhook: WebhookPayload.Format? = nil, fhir: FHIROptions = FHIROptions(), hl7: HL7Settings? = nil) {
        self.webhook = webhook
        self.fhir = fhir
        self.hl7 = hl7
    }

    /// Whether any destination is on.
    var isOn: Bool { webhook != nil || hl7 != nil }

    /// The outbox rows for a report written to `folder`, time-stamped `now`.
    func messages(for report: SlideReport, folder: String?, now: Date = Date()) throws -> [OutboxMessage] {
        var messages: [OutboxMessage] = []
        if let webhook {
            let payload = try WebhookPayload.make(webhook, report: report, timestamp: now, fhir: fhir)
            messages.append(OutboxMessage(payload: payload, slideKey: report.slide.fingerprint))
        }
        if let hl7 {
            let message = HL7ResultMessage.make(
                report: report, settings: hl7, reportPath: folder.map { $0 + "/" + ReportWriter.reportFileName },
                timestamp: now)
            messages.append(OutboxMessage(hl7: message, report: report))
        }
        return messages
    }
}

extension Configuration {
    /// The delivery worker's destinations as configured now (the webhook's secret is read from its file).
    func deliveryDestinations() throws -> [String: OutboxDelivery.Destination] {
        var destinations: [String: OutboxDelivery.Destination] = [:]
        if let url = webhook.url {
            destinations[OutboxMessage.webhook] = OutboxDelivery.Destination(
                url: url,
                transport: .webhook(
                    secret: try WebhookSecret.load(path: webhook.secretFile ?? ""), client: webhook.clientOptions),
                retry: webhook.retryPolicy)
        }
        if let url = hl7.url {
            destinations[OutboxMessage.hl7] = OutboxDelivery.Destination(
                url: url, transport: .hl7(hl7.clientOptions), retry: hl7.retryPolicy)
        }
        return destinations
    }

    /// Destination name → the URL configured now.
    var deliveryURLs: [String: String] {
        var urls: [String: String] = [:]
        if let url = webhook.url { urls[OutboxMessage.webhook] = url }
        if let url = hl7.url { urls[OutboxMessage.hl7] = url }
        return urls
    }

    /// The delivery worker's configuration.
    func deliveryConfiguration(idlePoll: Double = 30) throws -> OutboxDelivery.Configuration {
        OutboxDelivery.Configuration(
            store: storeLocation, host: state.hostName, destinations: try deliveryDestinations(), idlePoll: idlePoll)
    }
}
