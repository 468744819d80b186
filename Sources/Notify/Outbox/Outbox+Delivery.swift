import Foundation
import Store

extension DeliveryOutcome {
    /// What this outcome of an attempt on `row` comes to in the outbox: a 2xx delivers; a retry is scheduled by
    /// `policy` with the jitter `randomFraction` (uniform in 0..<1), or becomes a dead letter once the row's window
    /// is over; a refusal is a dead letter; a 410 disables the endpoint.
    public func attempt(for row: OutboxRow, policy: RetryPolicy, randomFraction: Double, now: Double) -> OutboxAttempt {
        switch self {
        case .delivered(let status):
            return OutboxAttempt(.delivered, status: status)
        case .retry(let reason, let status, let retryAfter):
            let failures = row.attempts + 1
            switch policy.decide(
                failures: failures, windowStart: row.windowStart, now: now, retryAfter: retryAfter,
                randomFraction: randomFraction)
            {
            case .retry(let at):
                return OutboxAttempt(.retry(at: at), status: status, error: reason)
            case .giveUp:
                let hours = String(format: "%.1f", (now - row.windowStart) / 3600)
                return OutboxAttempt(
                    .dead, status: status, error: "gave up after \(failures) attempts over \(hours) h; last: \(reason)")
            }
        case .deadLetter(let status, let reason):
            return OutboxAttempt(.dead, status: status, error: reason)
        case .endpointGone(let status, let reason):
            return OutboxAttempt(.endpointGone, status: status, error: reason)
        }
    }
}

extension Outbox {
    /// Records the outcome of an attempt on `row` and returns the row's new state (see
    /// ``DeliveryOutcome/attempt(for:policy:randomFraction:now:)``).
    @discardableResult
    public func record(
        _ outcome: DeliveryOutcome, for row: OutboxRow, policy: RetryPolicy, randomFraction: Double,
        now: Double = Date().timeIntervalSince1970, url: String = ""
    ) throws -> OutboxState {
        try record(
            outcome.attempt(for: row, policy: policy, randomFraction: randomFraction, now: now), for: row, now: now,
            url: url)
    }
}

extension OutboxMessage {
    /// A webhook message carrying a payload built by ``WebhookPayload``.
    public init(payload: WebhookPayload, slideKey: String) {
        self.init(
            eventID: payload.eventID, slideKey: slideKey, eventType: payload.type, destination: Self.webhook,
            contentType: payload.contentType, body: payload.body)
    }

    /// An HL7 message (``HL7ResultMessage``) for `report`; its MSH-10 is the event id.
    public init(hl7 message: HL7Message, report: SlideReport) {
        self.init(
            eventID: report.eventID, slideKey: report.slide.fingerprint,
            eventType: WebhookPayload.eventType(of: report), destination: Self.hl7,
            contentType: HL7ResultMessage.contentType, body: message.bytes)
    }
}
