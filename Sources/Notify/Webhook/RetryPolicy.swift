/// When to try a failed delivery again: full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff
/// And Jitter"), never earlier than the receiver's `Retry-After`, and giving up once the retry window has passed.
///
/// After the n-th failed attempt the delay is uniform in `0 … min(maximumDelay, initialDelay · 2ⁿ⁻¹)`. Pure: the
/// random fraction and the clock are arguments, so tests choose them.
public struct RetryPolicy: Sendable, Equatable {
    /// The backoff cap after the first failure, in seconds (`retry_initial_seconds`, 5).
    public var initialDelay: Double
    /// The largest backoff cap, in seconds (`retry_max_seconds`, 3600).
    public var maximumDelay: Double
    /// How long after the event was queued (or replayed) retries go on, in seconds (`retry_window_hours`, 72 h).
    public var window: Double

    /// A policy; the defaults are the daemon spec's (5 s, 1 h, 72 h).
    public init(initialDelay: Double = 5, maximumDelay: Double = 3600, window: Double = 72 * 3600) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.window = window
    }

    /// What to do after a failed attempt.
    public enum Decision: Sendable, Equatable {
        /// Try again at this Unix time.
        case retry(at: Double)
        /// The window is over: dead letter.
        case giveUp
    }

    /// The backoff cap after `failures` failed attempts (1 for the first).
    public func cap(afterFailures failures: Int) -> Double {
        let exponent = Double(max(0, failures - 1))
        // 2^exponent overflows to +inf for huge counts, which min() then caps.
        return min(maximumDelay, initialDelay * pow2(exponent))
    }

    /// Decides the next attempt after `failures` failed attempts of an event whose window started at `windowStart`.
    ///
    /// - Parameters:
    ///   - retryAfter: the receiver's `Retry-After` in seconds from `now`, when it sent one; the next attempt is
    ///     never earlier than that.
    ///   - randomFraction: uniform in `0 ..< 1` (the jitter).
    public func decide(
        failures: Int, windowStart: Double, now: Double, retryAfter: Double?, randomFraction: Double
    ) -> Decision {
        let fraction = min(max(randomFraction, 0), 1)
        var delay = cap(afterFailures: failures) * fraction
        if let retryAfter, retryAfter > delay { delay = retryAfter }
        let next = now + delay
        guard next <= windowStart + window else { return .giveUp }
        return .retry(at: next)
    }

    private func pow2(_ exponent: Double) -> Double {
        exponent >= 1024 ? .infinity : Double(sign: .plus, exponent: Int(exponent), significand: 1)
    }
}
