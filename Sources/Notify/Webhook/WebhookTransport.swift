import Foundation
import Store
import Synchronization

/// The webhook's ``DeliveryTransport``: signs each attempt with its own timestamp (Standard Webhooks; `webhook-id`
/// is always the event id), POSTs the stored bytes with ``WebhookClient`` (libcurl) and judges the answer
/// (``DeliveryOutcome``). One easy handle, reused so that a keep-alive connection to the receiver is reused too.
public final class WebhookTransport: DeliveryTransport {
    private let signer: WebhookSigner
    /// The handle is used by one transfer at a time; the lock says so to the compiler.
    private let client: Mutex<WebhookClient>
    public let longestAttempt: Double

    public init(secret: WebhookSecret, options: WebhookClientOptions) throws(WebhookClientError) {
        signer = WebhookSigner(secret: secret)
        client = Mutex(try WebhookClient(options: options))
        longestAttempt = options.connectTimeout + options.timeout
    }

    public func deliver(_ message: OutboxMessage, to url: String, now: Double) async -> DeliveryOutcome? {
        let headers = signer.headers(id: message.eventID, timestamp: Int64(now), body: message.body)
        let cancelled = CancelFlag()
        let response = await withTaskCancellationHandler {
            client.withLock { client in
                client.post(
                    url: url, contentType: message.contentType, headers: headers, body: message.body,
                    isCancelled: { cancelled.isSet })
            }
        } onCancel: {
            cancelled.set()
        }
        return DeliveryOutcome(response, now: Date().timeIntervalSince1970)
    }
}
