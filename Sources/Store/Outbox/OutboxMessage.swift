/// One webhook event to deliver: what the outbox stores when a report is committed.
public struct OutboxMessage: Sendable, Equatable {
    /// The report's event id: unique in the outbox, the `webhook-id` of every attempt.
    public var eventID: String
    /// The slide's identity (its fingerprint): events of one slide are delivered in the order they were queued.
    public var slideKey: String
    /// `slide.scored` or `slide.failed`.
    public var eventType: String
    /// Where it is POSTed.
    public var targetURL: String
    /// The `Content-Type` of the body.
    public var contentType: String
    /// The exact bytes sent and signed.
    public var body: [UInt8]
    /// Where it goes: one row per event and destination, each with its own retries (``webhook`` today).
    public var destination: String

    /// The destination of webhook events.
    public static let webhook = "webhook"

    /// Makes a message.
    public init(
        eventID: String, slideKey: String, eventType: String, targetURL: String, contentType: String, body: [UInt8],
        destination: String = OutboxMessage.webhook
    ) {
        self.eventID = eventID
        self.slideKey = slideKey
        self.eventType = eventType
        self.targetURL = targetURL
        self.contentType = contentType
        self.body = body
        self.destination = destination
    }

}

/// Where an outbox row stands.
public enum OutboxState: String, Sendable, Equatable, Codable, CaseIterable {
    /// Waiting for its next attempt.
    case pending
    /// A 2xx was received.
    case delivered
    /// Refused for good (a 4xx) or retried past the window: kept for an operator to replay.
    case dead
    /// The endpoint answered 410 Gone: delivery to it is stopped until an operator replays.
    case disabled
}

/// An outbox row as stored.
public struct OutboxRow: Sendable, Equatable {
    /// The insertion order.
    public var sequence: Int64
    /// The message.
    public var message: OutboxMessage
    /// When it was queued (Unix seconds).
    public var createdAt: Double
    /// When its retry window started: when it was queued, or last replayed.
    public var windowStart: Double
    /// Attempts made so far.
    public var attempts: Int
    /// When the next attempt is due (Unix seconds).
    public var nextAttemptAt: Double
    /// When the last attempt ended.
    public var lastAttemptAt: Double?
    /// The HTTP status of the last attempt; nil when there was no answer.
    public var lastStatus: Int?
    /// Why the last attempt failed.
    public var lastError: String?
    /// Where it stands.
    public var state: OutboxState
    /// When a 2xx was received.
    public var deliveredAt: Double?
    /// The host sending it now, and until when its claim holds.
    public var leaseHolder: String? = nil
    public var leaseUntil: Double? = nil
}

/// What one attempt on an outbox row came to, as the outbox records it (``Outbox/record(_:for:now:)``). The
/// transport and its retry policy decide it (Notify: `DeliveryOutcome` and `RetryPolicy`); the outbox only stores it.
public struct OutboxAttempt: Sendable, Equatable {
    /// Where the row goes next.
    public enum Result: Sendable, Equatable {
        /// The receiver took it.
        case delivered
        /// Try again at this Unix time.
        case retry(at: Double)
        /// Stop and keep it for an operator to replay (refused for good, or retried past its window).
        case dead
        /// The endpoint is gone (410): stop sending anything to it until an operator replays.
        case endpointGone
    }

    public var result: Result
    /// The receiver's status code, when it answered.
    public var status: Int?
    /// Why it was not delivered (nil when it was).
    public var error: String?

    /// Makes an attempt record.
    public init(_ result: Result, status: Int? = nil, error: String? = nil) {
        self.result = result
        self.status = status
        self.error = error
    }
}
