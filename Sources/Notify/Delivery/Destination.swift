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
    /// The longest one attempt can take, in seconds (its connect and answer timeouts): a host holds a row it sends
    /// somewhat longer than this, so that no other host sends it meanwhile (``OutboxDelivery``).
    var longestAttempt: Double { get }
}

/// One place results go, as configured now — the one description of a destination: the name outbox rows are routed
/// by (``OutboxMessage/destination``: `webhook`, `hl7`), how a report becomes its message, the URL in force, when
/// failed attempts are retried, and the transport that carries the messages. Rows name a destination, not a URL,
/// so a changed URL applies to what is queued and to dead letters replayed later.
public struct Destination: Sendable {
    /// Turns a report into this destination's outbox message: the report, its folder (nil when none was written),
    /// the time of the event.
    public typealias Encoder =
        @Sendable (_ report: SlideReport, _ folder: String?, _ timestamp: Date) throws ->
        OutboxMessage

    /// The destination's name (``OutboxMessage/webhook``, ``OutboxMessage/hl7``).
    public var name: String
    /// The URL in force: `https://…` for a webhook, `mllp(s)://…` for HL7.
    public var url: String
    /// When failed attempts are retried.
    public var retry: RetryPolicy
    /// Builds the message once, when the report is committed (every attempt sends these bytes; nothing is
    /// re-encoded).
    public var encode: Encoder
    /// Carries the messages.
    public var transport: any DeliveryTransport

    public init(
        name: String, url: String, retry: RetryPolicy = RetryPolicy(), encode: @escaping Encoder,
        transport: any DeliveryTransport
    ) {
        self.name = name
        self.url = url
        self.retry = retry
        self.encode = encode
        self.transport = transport
    }

    /// The webhook (`[webhook]`): `format` bodies (the event, or FHIR built with `fhir`) POSTed to `url`, signed
    /// with `secret`.
    public static func webhook(
        url: String, format: WebhookPayload.Format, fhir: FHIROptions = FHIROptions(), secret: WebhookSecret,
        options: WebhookClientOptions, retry: RetryPolicy = RetryPolicy()
    ) throws(WebhookClientError) -> Destination {
        Destination(
            name: OutboxMessage.webhook, url: url, retry: retry,
            encode: { report, _, timestamp in
                OutboxMessage(
                    payload: try WebhookPayload.make(format, report: report, timestamp: timestamp, fhir: fhir),
                    slideKey: report.slide.fingerprint)
            },
            transport: try WebhookTransport(secret: secret, options: options))
    }

    /// HL7 v2 over MLLP (`[hl7]`): an ORU^R01 built with `settings` (naming the report file in the folder), sent to
    /// `url` and answered by an ACK.
    public static func hl7(
        url: String, settings: HL7Settings, options: MLLPClientOptions, retry: RetryPolicy = RetryPolicy()
    ) -> Destination {
        Destination(
            name: OutboxMessage.hl7, url: url, retry: retry,
            encode: { report, folder, timestamp in
                OutboxMessage(
                    hl7: HL7ResultMessage.make(
                        report: report, settings: settings,
                        reportPath: folder.map { $0 + "/" + ReportWriter.reportFileName }, timestamp: timestamp),
                    report: report)
            },
            transport: MLLPTransport(options: options))
    }
}

/// Set by the thread that cancels a delivery, read by libcurl's callbacks during the transfer.
final class CancelFlag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
