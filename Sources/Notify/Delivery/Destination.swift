import Foundation
import Store

/// Carries one outbox message to where it goes and judges the answer: for the webhook, a signed HTTP POST through
/// libcurl (``WebhookTransport``). Delivery tests that are about scheduling, not the wire, use a transport of their
/// own.
///
/// ``OutboxDelivery`` calls it from its dedicated thread (the task's executor preference), so an implementation may
/// block in C calls. Cancelling the calling task must abort a transfer in flight; the answer is then nil (nothing
/// is known, nothing is recorded: the row stays pending and is sent again, with the same id and body).
public protocol DeliveryTransport: Sendable {
    /// Sends `message` and says how it went; nil when the task was cancelled during the transfer.
    func deliver(_ message: OutboxMessage, now: Double) async -> DeliveryOutcome?
}

/// One place results go: the name outbox rows are routed by, how a report becomes a message for it, and the
/// transport that carries the message. Today there is one, ``webhookName``.
public struct Destination: Sendable {
    /// The destination's name (`webhook`).
    public var name: String
    /// Turns a report into the message stored in the outbox (the body is fixed at enqueue time and never
    /// re-encoded, so every attempt sends the same bytes).
    public var encode: @Sendable (_ report: SlideReport, _ timestamp: Date) throws -> OutboxMessage
    /// Carries the messages.
    public var transport: any DeliveryTransport

    public init(
        name: String, encode: @escaping @Sendable (SlideReport, Date) throws -> OutboxMessage,
        transport: any DeliveryTransport
    ) {
        self.name = name
        self.encode = encode
        self.transport = transport
    }

    /// The name of the webhook destination (`[webhook]`).
    public static let webhookName = "webhook"

    /// The webhook: `format` bodies POSTed to `url`, signed with `secret`.
    public static func webhook(
        url: String, format: WebhookPayload.Format, secret: WebhookSecret, options: WebhookClientOptions
    ) throws(WebhookClientError) -> Destination {
        Destination(
            name: webhookName,
            encode: { report, timestamp in
                OutboxMessage(
                    payload: try WebhookPayload.make(format, report: report, timestamp: timestamp),
                    slideKey: report.slide.fingerprint, targetURL: url)
            },
            transport: try WebhookTransport(secret: secret, options: options))
    }
}
