import Foundation
import Store
import Synchronization

/// The HL7 destination's ``DeliveryTransport``: sends the stored message over MLLP with ``MLLPClient`` (libcurl)
/// and judges the ACK (MSH-10 of the message is the event id, MSA-2 of the answer must name it). One client, so
/// that its connection is kept between messages.
public final class MLLPTransport: DeliveryTransport {
    /// The client is used by one send at a time; the lock says so to the compiler.
    private let client: Mutex<MLLPClient>
    public let longestAttempt: Double

    public init(options: MLLPClientOptions) {
        client = Mutex(MLLPClient(options: options))
        longestAttempt = options.connectTimeout + options.ackTimeout
    }

    public func deliver(_ message: OutboxMessage, to url: String, now: Double) async -> DeliveryOutcome? {
        let cancelled = CancelFlag()
        let response = await withTaskCancellationHandler {
            client.withLock { client in
                client.send(message.body, to: url, isCancelled: { cancelled.isSet })
            }
        } onCancel: {
            cancelled.set()
        }
        return response.outcome(forControlID: message.eventID)
    }
}
