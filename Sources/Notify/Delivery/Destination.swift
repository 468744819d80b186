import Foundation
import Store
import Synchronization

/// Carries one outbox message to a URL and judges the answer: a signed HTTP POST through libcurl for the webhook
/// (``WebhookTransport``), an HL7 message over MLLP for `[hl7]` (``MLLPTransport``). Delivery tests that are about
/// scheduling, not the wire, use a transport of their own.
///
/// ``OutboxDelivery`` calls it from its dedicated thread (the task's executor preference), so an implementation may
/// block in C calls. Cancelling the calling task must abort a transfer in flight; the answer is then nil (nothing
/// is known, nothing is recorded: the row stays pending and is sent again, with the same id and body).
public protocol DeliveryTransport: Sendable {
    /// Sends `message` to `url` and says how it went; nil when the task was cancelled during the transfer.
    func deliver(_ message: OutboxMessage, to url: String, now: Double) async -> DeliveryOutcome?
}

/// One place results go, as configured now: the name outbox rows are routed by (``OutboxMessage/destination``:
/// `webhook`, `hl7`), the URL in force, when failed attempts are retried, and the transport that carries the
/// messages. Rows name a destination, not a URL, so a changed URL applies to what is queued and to dead letters
/// replayed later.
public struct Destination: Sendable {
    /// The destination's name (``OutboxMessage/webhook``, ``OutboxMessage/hl7``).
    public var name: String
    /// The URL in force: `https://…` for a webhook, `mllp(s)://…` for HL7.
    public var url: String
    /// When failed attempts are retried.
    public var retry: RetryPolicy
    /// Carries the messages.
    public var transport: any DeliveryTransport

    public init(name: String, url: String, retry: RetryPolicy = RetryPolicy(), transport: any DeliveryTransport) {
        self.name = name
        self.url = url
        self.retry = retry
        self.transport = transport
    }

    /// The webhook (`[webhook]`): bodies POSTed to `url`, signed with `secret`.
    public static func webhook(
        url: String, secret: WebhookSecret, options: WebhookClientOptions, retry: RetryPolicy = RetryPolicy()
    ) throws(WebhookClientError) -> Destination {
        Destination(
            name: OutboxMessage.webhook, url: url, retry: retry,
            transport: try WebhookTransport(secret: secret, options: options))
    }

    /// HL7 v2 over MLLP (`[hl7]`): each message sent to `url` and answered by an ACK.
    public static func hl7(url: String, options: MLLPClientOptions, retry: RetryPolicy = RetryPolicy()) -> Destination {
        Destination(name: OutboxMessage.hl7, url: url, retry: retry, transport: MLLPTransport(options: options))
    }
}

/// Set by the thread that cancels a delivery, read by libcurl's callbacks during the transfer.
final class CancelFlag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
