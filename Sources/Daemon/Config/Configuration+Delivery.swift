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
