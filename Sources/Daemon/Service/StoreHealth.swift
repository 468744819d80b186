import Errors
import Foundation
import Logging
import Store
import Synchronization
import Threads

/// Whether the store answers, as the daemon's parts find out: the workers, the watcher, the heartbeat. A part whose
/// call failed asks how long to wait before it tries again (full backoff 1, 2, 4 … 30 s per part); the first failure
/// of an outage is logged with the store's location (never a password) and shown in STATUS=, the return of the
/// store once, with how long it was away. Nothing is dropped meanwhile: each part keeps what it has and retries.
final class StoreHealth: Sendable {
    private struct State {
        var failures: [String: Int] = [:]
        var since: Double?
    }

    let location: String
    private let progress: DaemonProgress
    private let logger: Logger
    private let state = Mutex(State())

    init(location: String, progress: DaemonProgress, logger: Logger) {
        self.location = location
        self.progress = progress
        self.logger = logger
    }

    /// The wait after `failures` consecutive failures: 1, 2, 4, 8, 16, 30, 30 … seconds.
    static func backoff(failures: Int) -> Double {
        min(30, pow(2, Double(max(0, min(failures, 6) - 1))))
    }

    /// `part` could not use the store; returns the seconds to wait before trying again.
    func failed(_ part: String, _ error: any Error, now: Double = Date().timeIntervalSince1970) -> Double {
        let (count, first) = state.withLock { state -> (Int, Bool) in
            let first = state.since == nil
            if first { state.since = now }
            state.failures[part, default: 0] += 1
            return (state.failures[part] ?? 1, first)
        }
        let delay = Self.backoff(failures: count)
        let summary = ErrorSummary(error)
        progress.setStoreProblem("database unreachable, retrying: \(summary.text)")
        let metadata: Logger.Metadata = [
            "database": "\(location)", "part": "\(part)", "retry_in_seconds": "\(Int(delay))",
        ].merging(.error(error)) { $1 }
        if first {
            logger.error("the job store cannot be reached; csmil keeps its work and retries", metadata: metadata)
        } else if count == 1 {
            logger.warning("the job store cannot be reached", metadata: metadata)
        } else {
            logger.debug("the job store cannot be reached", metadata: metadata)
        }
        return delay
    }

    /// `part` used the store again.
    func succeeded(_ part: String, now: Double = Date().timeIntervalSince1970) {
        let recovered = state.withLock { state -> Double? in
            guard state.failures.removeValue(forKey: part) != nil, state.failures.isEmpty, let since = state.since
            else { return nil }
            state.since = nil
            return since
        }
        if let since = recovered {
            progress.setStoreProblem(nil)
            logger.notice(
                "the job store answers again",
                metadata: ["database": "\(location)", "down_seconds": "\(Int(max(0, now - since)))"])
        }
    }

    /// Runs `body` until it succeeds, waiting as ``failed(_:_:now:)`` says after each failure that may pass (the
    /// database away or busy); nil when `isStopping` becomes true first (the work is left to the next start). Other
    /// errors (a refused change) are thrown at once.
    func retrying<Result>(
        _ part: String, isStopping: () -> Bool, wait: (Double) -> Void, _ body: () throws -> Result
    ) throws -> Result? {
        while !isStopping() {
            do {
                let result = try body()
                succeeded(part)
                return result
            } catch  where Self.mayPass(error) {
                wait(failed(part, error))
            }
        }
        return nil
    }

    /// Whether an error of the store may pass by itself: the server away or restarting, a conflict between hosts,
    /// a busy SQLite file.
    static func mayPass(_ error: any Error) -> Bool {
        if let error = error as? PostgresError { return error.isTransient }
        if let error = error as? SQLiteError { return error.code == .busy || error.code == .io }
        return false
    }
}

/// A stop request that a blocking loop can wait on: ``wait(_:)`` returns early once ``stop()`` was called.
final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let wakeup = Wakeup()

    var isStopped: Bool { stopped.load(ordering: .sequentiallyConsistent) }

    func stop() {
        stopped.store(true, ordering: .sequentiallyConsistent)
        wakeup.signal()
    }

    /// Waits `seconds`, or less when stopped.
    func wait(_ seconds: Double) {
        let deadline = Date().timeIntervalSince1970 + seconds
        while !isStopped {
            let remaining = deadline - Date().timeIntervalSince1970
            if remaining <= 0 { return }
            wakeup.wait(timeout: remaining)
        }
    }
}
