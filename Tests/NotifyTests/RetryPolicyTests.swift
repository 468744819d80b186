import Foundation
import Testing

@testable import Notify

@Suite("Retry policy and outcomes")
struct RetryPolicyTests {
    let policy = RetryPolicy()  // 5 s, 1 h, 72 h

    @Test("the backoff cap doubles from retry_initial_seconds and stops at retry_max_seconds")
    func caps() {
        #expect(policy.cap(afterFailures: 1) == 5)
        #expect(policy.cap(afterFailures: 2) == 10)
        #expect(policy.cap(afterFailures: 5) == 80)
        #expect(policy.cap(afterFailures: 11) == 3600)
        #expect(policy.cap(afterFailures: 100_000) == 3600)
    }

    @Test("full jitter: the delay is the random fraction of the cap")
    func fullJitter() {
        #expect(
            policy.decide(failures: 3, windowStart: 0, now: 100, retryAfter: nil, randomFraction: 0) == .retry(at: 100))
        #expect(
            policy.decide(failures: 3, windowStart: 0, now: 100, retryAfter: nil, randomFraction: 0.5)
                == .retry(at: 110))
        #expect(
            policy.decide(failures: 3, windowStart: 0, now: 100, retryAfter: nil, randomFraction: 1) == .retry(at: 120))
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let fraction = Double.random(in: 0..<1, using: &generator)
            guard
                case .retry(let at) = policy.decide(
                    failures: 4, windowStart: 0, now: 0, retryAfter: nil, randomFraction: fraction)
            else {
                Issue.record("gave up inside the window")
                return
            }
            #expect(at >= 0 && at <= 40)
        }
    }

    @Test("Retry-After is honoured: the next attempt is never earlier than it")
    func retryAfter() {
        #expect(policy.decide(failures: 1, windowStart: 0, now: 50, retryAfter: 2, randomFraction: 0) == .retry(at: 52))
        #expect(policy.decide(failures: 1, windowStart: 0, now: 50, retryAfter: 2, randomFraction: 1) == .retry(at: 55))
        // Longer than retry_max_seconds: still honoured.
        #expect(
            policy.decide(failures: 1, windowStart: 0, now: 0, retryAfter: 7200, randomFraction: 0) == .retry(at: 7200))
    }

    @Test("after retry_window_hours the event gives up (dead letter)")
    func window() {
        let window = 72.0 * 3600
        #expect(
            policy.decide(failures: 40, windowStart: 0, now: window - 3600, retryAfter: nil, randomFraction: 1)
                == .retry(at: window))
        #expect(
            policy.decide(failures: 40, windowStart: 0, now: window - 10, retryAfter: nil, randomFraction: 1) == .giveUp
        )
        #expect(
            policy.decide(failures: 40, windowStart: 0, now: window + 1, retryAfter: nil, randomFraction: 0) == .giveUp)
        #expect(policy.decide(failures: 1, windowStart: 0, now: 10, retryAfter: window, randomFraction: 0) == .giveUp)
    }

    @Test("Retry-After parses delay seconds and the three HTTP-date forms")
    func parseRetryAfter() throws {
        #expect(RetryAfter(header: "2") == .seconds(2))
        #expect(RetryAfter(header: " 120 ") == .seconds(120))
        let expected = Date(timeIntervalSince1970: 1_445_412_480)  // Wed, 21 Oct 2015 07:28:00 GMT
        #expect(RetryAfter(header: "Wed, 21 Oct 2015 07:28:00 GMT") == .date(expected))
        #expect(RetryAfter(header: "Wednesday, 21-Oct-15 07:28:00 GMT") == .date(expected))
        #expect(RetryAfter(header: "Wed Oct 21 07:28:00 2015") == .date(expected))
        #expect(RetryAfter(header: "soon") == nil)
        #expect(RetryAfter(header: "-5") == nil)
        #expect(RetryAfter(header: "") == nil)
        #expect(RetryAfter.date(expected).delay(now: 1_445_412_470) == 10)
        #expect(RetryAfter.date(expected).delay(now: 1_445_412_490) == 0)
    }

    @Test(
        "2xx delivers; timeouts, connection errors, 408, 429, 5xx and temporary redirects retry; 410 disables; other 4xx and permanent redirects dead-letter"
    )
    func classification() {
        func outcome(_ status: Int, _ retryAfter: RetryAfter? = nil) -> DeliveryOutcome? {
            DeliveryOutcome(.response(status: status, retryAfter: retryAfter, body: ""), now: 0)
        }
        #expect(outcome(200) == .delivered(status: 200))
        #expect(outcome(204) == .delivered(status: 204))
        for status in [408, 429, 500, 502, 503, 504] {
            guard case .retry(_, let code, _) = outcome(status) else {
                Issue.record("\(status) should be retried")
                continue
            }
            #expect(code == status)
        }
        #expect(outcome(429, .seconds(2)) == .retry(reason: "HTTP 429", status: 429, retryAfter: 2))
        #expect(outcome(410) == .endpointGone(status: 410, reason: "HTTP 410"))
        for status in [400, 401, 403, 404, 413, 422] {
            #expect(outcome(status) == .deadLetter(status: status, reason: "HTTP \(status)"))
        }
        // Redirects are never followed: a temporary one is a temporary failure, a permanent one needs the URL changed.
        for status in [302, 303, 307] {
            #expect(
                outcome(status, .seconds(5))
                    == .retry(
                        reason: "HTTP \(status) (a temporary redirect, not followed; retried)", status: status,
                        retryAfter: 5))
        }
        for status in [301, 308] {
            guard case .deadLetter(status, let reason) = outcome(status) else {
                Issue.record("\(status) should be a dead letter")
                continue
            }
            #expect(reason.contains("set [webhook] url"))
        }
        #expect(
            DeliveryOutcome(.transportFailure(timedOut: true, message: "Operation timed out"), now: 0)
                == .retry(reason: "timeout: Operation timed out", status: nil, retryAfter: nil))
        #expect(DeliveryOutcome(.cancelled, now: 0) == nil)
    }
}
