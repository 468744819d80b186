import Foundation

/// What one HTTP attempt gave, before it is judged: a response, a transport failure, or a cancelled transfer.
public enum WebhookResponse: Sendable, Equatable {
    /// The server answered with `status`; `retryAfter` is its `Retry-After` header when it sent a valid one,
    /// `body` the start of its answer (for the operator; at most 512 bytes).
    case response(status: Int, retryAfter: RetryAfter?, body: String)
    /// No answer: a timeout, a refused or reset connection, a TLS failure, a DNS failure.
    case transportFailure(timedOut: Bool, message: String)
    /// The transfer was aborted because the worker is stopping; nothing is known and nothing is recorded.
    case cancelled
}

/// A `Retry-After` header: a delay in seconds or an HTTP-date (RFC 9110 §10.2.3).
public enum RetryAfter: Sendable, Equatable {
    /// `Retry-After: 120`.
    case seconds(Double)
    /// `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`.
    case date(Date)

    /// Parses a header value; nil when it is neither form.
    public init?(header: String) {
        let value = header.trimmingCharacters(in: .whitespaces)
        if !value.isEmpty, value.allSatisfy(\.isASCII), value.allSatisfy(\.isNumber), let seconds = Double(value) {
            self = .seconds(seconds)
            return
        }
        // IMF-fixdate, then the obsolete RFC 850 and asctime forms a recipient must accept.
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            if let date = formatter.date(from: value) {
                self = .date(date)
                return
            }
        }
        return nil
    }

    /// Seconds from `now` until the server wants the next attempt (0 when the date has passed).
    public func delay(now: Double) -> Double {
        switch self {
        case .seconds(let seconds): return max(0, seconds)
        case .date(let date): return max(0, date.timeIntervalSince1970 - now)
        }
    }
}

/// How an attempt is judged (daemon spec, Webhook): only a 2xx delivers; timeouts, connection errors, 408, 429 and
/// 5xx are retried; 410 means the endpoint is gone; any other status (other 4xx, and 1xx/3xx since redirects are
/// not followed) sends the event to the dead-letter list at once.
public enum DeliveryOutcome: Sendable, Equatable {
    /// The receiver took it (`status` is the HTTP status; nil for an HL7 ACK).
    case delivered(status: Int?)
    /// Try again later, not before `retryAfter` seconds from now when the server said so.
    case retry(reason: String, status: Int?, retryAfter: Double?)
    /// The receiver refused it for good: stop, keep it for an operator to replay (`status` nil for an HL7 AR).
    case deadLetter(status: Int?, reason: String)
    /// 410 Gone: the endpoint was removed; stop sending to it until an operator re-enables it.
    case endpointGone(status: Int, reason: String)

    /// Judges a response; nil for a cancelled transfer (nothing to record).
    public init?(_ response: WebhookResponse, now: Double) {
        switch response {
        case .cancelled:
            return nil
        case .transportFailure(let timedOut, let message):
            self = .retry(reason: timedOut ? "timeout: \(message)" : message, status: nil, retryAfter: nil)
        case .response(let status, let retryAfter, let body):
            let detail = body.isEmpty ? "HTTP \(status)" : "HTTP \(status): \(body)"
            switch status {
            case 200..<300:
                self = .delivered(status: status)
            case 408, 429, 500..<600:
                self = .retry(reason: detail, status: status, retryAfter: retryAfter?.delay(now: now))
            case 302, 303, 307:
                // A temporary redirect (the receiver moved for now: maintenance, a load balancer): redirects are not
                // followed (the signed body must reach the configured URL), so it is a temporary failure.
                self = .retry(
                    reason: detail + " (a temporary redirect, not followed; retried)", status: status,
                    retryAfter: retryAfter?.delay(now: now))
            case 301, 308:
                self = .deadLetter(
                    status: status,
                    reason: detail + " (moved permanently, not followed: set [webhook] url to the new address)")
            case 410:
                self = .endpointGone(status: status, reason: detail)
            default:
                self = .deadLetter(status: status, reason: detail)
            }
        }
    }
}
