import Errors
import Foundation
import Logging
import Store
import Synchronization
import Threads

/// Empties the outbox: takes the next due row, hands it to its destination's transport and records the outcome
/// durably before it takes the next one.
///
/// An ordinary async service: ``run()`` sleeps until the earliest pending row falls due, until ``wake()`` (call it
/// after committing an enqueue), or at most ``Configuration/idlePoll`` seconds (rows queued by another process).
/// Stopping is cancelling the task that runs it: a transfer in flight is aborted without being recorded — the row
/// stays pending and is resent, with the same id and body, next time; a crash or `kill -9` has the same effect.
///
/// SQLite and libcurl block, so ``run()`` runs its code on a ``DedicatedThread`` of its own (executor preference);
/// the waits in between are async and hold no thread.
public final class OutboxDelivery: Sendable {
    /// What the worker needs; ``reconfigure(_:)`` replaces it (a SIGHUP reload) from the next attempt on.
    public struct Configuration: Sendable {
        /// The SQLite file holding the outbox; the worker opens its own connection.
        public var databasePath: String
        /// Where rows go, by name. Rows do not name their destination yet, so every row goes to
        /// ``Destination/webhookName``.
        public var destinations: [String: Destination]
        /// When failed attempts are retried.
        public var retry: RetryPolicy
        /// The longest sleep between looks at the outbox, in seconds.
        public var idlePoll: Double
        /// The jitter source: uniform in 0..<1.
        public var randomFraction: @Sendable () -> Double

        /// A configuration.
        public init(
            databasePath: String, destinations: [Destination], retry: RetryPolicy = RetryPolicy(),
            idlePoll: Double = 30, randomFraction: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
        ) {
            self.databasePath = databasePath
            self.destinations = Dictionary(destinations.map { ($0.name, $0) }) { _, last in last }
            self.retry = retry
            self.idlePoll = idlePoll
            self.randomFraction = randomFraction
        }

        /// The destination of `row`.
        func destination(for row: OutboxRow) -> Destination? { destinations[Destination.webhookName] }
    }

    private let configuration: Mutex<Configuration>
    private let signal = AsyncSignal()
    private let logger: Logger

    /// Makes a worker; nothing runs before ``run()``.
    public init(configuration: Configuration, logger: Logger) {
        self.configuration = Mutex(configuration)
        self.logger = logger
    }

    /// Asks the worker to look at the outbox now (after an enqueue was committed).
    public func wake() { signal.signal() }

    /// Replaces the configuration (destinations, retry policy); the next attempt uses it.
    public func reconfigure(_ configuration: Configuration) {
        self.configuration.withLock { $0 = configuration }
        signal.signal()
    }

    /// Delivers until the task is cancelled. Throws only when the database cannot be opened at the start (later
    /// failures are logged and retried).
    public func run() async throws {
        try await DedicatedThread.withThread(name: "csmil-outbox") {
            var database = try open(configuration.withLock { $0.databasePath })
            while !Task.isCancelled {
                let configuration = self.configuration.withLock { $0 }
                do {
                    if database?.path != configuration.databasePath {
                        database = try open(configuration.databasePath)
                    }
                    guard let database else { continue }
                    let outbox = Outbox(database: database)
                    if let row = try outbox.nextDue() {
                        try await attempt(row, outbox: outbox, configuration: configuration)
                        continue
                    }
                    let next = try outbox.nextDueTime()
                    let now = Date().timeIntervalSince1970
                    await signal.wait(for: .seconds(max(0, min(next ?? .infinity, now + configuration.idlePoll) - now)))
                } catch {
                    logger.error(
                        "outbox delivery failed; retrying in 5 s",
                        metadata: ["database": "\(configuration.databasePath)"].merging(.error(error)) { $1 })
                    database = nil
                    await signal.wait(for: .seconds(5))
                }
            }
        }
    }

    /// The database at `path`, with the outbox tables installed when missing.
    private func open(_ path: String) throws -> SQLiteDatabase? {
        let database = try SQLiteDatabase(path: path)
        try Outbox.installSchema(in: database)
        return database
    }

    /// Sends one row and records the outcome; a cancelled transfer records nothing.
    private func attempt(_ row: OutboxRow, outbox: Outbox, configuration: Configuration) async throws {
        let message = row.message
        guard let destination = configuration.destination(for: row) else {
            logger.error("no destination for an outbox row; it stays queued", metadata: ["event": "\(message.eventID)"])
            await signal.wait(for: .seconds(configuration.idlePoll))
            return
        }
        guard let outcome = await destination.transport.deliver(message, now: Date().timeIntervalSince1970) else {
            logger.info(
                "webhook delivery interrupted by shutdown; it stays queued", metadata: ["event": "\(message.eventID)"])
            return
        }
        let now = Date().timeIntervalSince1970
        let state = try outbox.record(
            outcome, for: row, policy: configuration.retry, randomFraction: configuration.randomFraction(), now: now)
        var metadata: Logger.Metadata = [
            "event": "\(message.eventID)", "slide": "\(message.slideKey)", "attempt": "\(row.attempts + 1)",
            "destination": "\(destination.name)",
        ]
        switch outcome {
        case .delivered(let status):
            metadata["status"] = "\(status)"
            logger.info("webhook delivered", metadata: metadata)
        case .retry(let reason, _, _):
            metadata["reason"] = "\(reason)"
            if state == .dead {
                logger.error("webhook delivery given up after the retry window; dead letter", metadata: metadata)
            } else {
                if let next = try outbox.row(eventID: message.eventID)?.nextAttemptAt {
                    metadata["retry_in_seconds"] = "\(String(format: "%.1f", max(0, next - now)))"
                }
                logger.warning("webhook delivery failed; will retry", metadata: metadata)
            }
        case .deadLetter(let status, let reason):
            metadata["status"] = "\(status)"
            metadata["reason"] = "\(reason)"
            logger.error(
                "webhook refused by the receiver; dead letter (replay with csmil outbox retry)", metadata: metadata)
        case .endpointGone(let status, _):
            metadata["status"] = "\(status)"
            metadata["url"] = "\(message.targetURL)"
            logger.critical(
                "webhook endpoint answered 410 Gone; delivery to it is stopped until csmil outbox retry",
                metadata: metadata)
        }
    }
}
