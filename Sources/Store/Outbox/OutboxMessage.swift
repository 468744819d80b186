/// One event to deliver to one destination: what the outbox stores when a report is committed.
public struct OutboxMessage: Sendable, Equatable {
    /// The destination name of webhook deliveries (`[webhook]`).
    public static let webhook = "webhook"
    /// The destination name of HL7 v2 messages over MLLP (`[hl7]`).
    public static let hl7 = "hl7"

    /// The report's event id: unique in the outbox, the `webhook-id` of every attempt.
    public var eventID: String
    /// The slide's identity (its fingerprint): events of one slide are delivered in the order they were queued.
    public var slideKey: String
    /// `slide.scored` or `slide.failed`.
    public var eventType: String
    /// Which destination it goes to (``webhook``, ``hl7``): the URL and transport are those configured for it when
    /// it is sent.
    public var destination: String
    /// The `Content-Type` of the body.
    public var contentType: String
    /// The exact bytes sent and signed.
    public var body: [UInt8]

    /// Makes a message.
    public init(
        eventID: String, slideKey: String, eventType: String, destination: String, contentType: String,
        body: [UInt8]
    ) {
        self.eventID = eventID
        self.slideKey = slideKey
        self.eventType = eventType
        self.destination = destination
        self.contentType = contentType
        self.body = body
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
