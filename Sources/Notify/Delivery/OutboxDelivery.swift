import Errors
import Foundation
import Logging
import Store
import Synchronization
import Threads

/// Empties the outbox: takes the next due row, looks up the destination it names in the configuration in force now
/// (URL, retry policy, transport), hands it to that transport — a webhook POST signed with this attempt's timestamp
/// (`webhook-id` is always the event id), or an HL7 message over MLLP (MSH-10 is always the event id) — and records
/// the outcome durably before it takes the next one.
///
/// An ordinary async service: ``run()`` sleeps until the earliest pending row falls due, until ``wake()`` (call it
/// after committing an enqueue), or at most ``Configuration/idlePoll`` seconds (rows queued by another process).
/// Stopping is cancelling the task that runs it: a transfer in flight is aborted without being recorded — the row
/// stays pending and is resent, with the same id and body, next time; a crash or `kill -9` has the same effect.
///
/// SQLite and libcurl block, so ``run()`` runs its code on a ``DedicatedThread`` of its own (executor preference);
/// the waits in between are async and hold no thread.
public final class OutboxDelivery: Sendable {
    /// What the worker needs; ``reconfigure(_:)`` replaces it (a SIGHUP reload) from the next attempt on — queued
    /// rows, and dead letters replayed later, go to the URLs configured then.
    public struct Configuration: Sendable {
        /// The SQLite file holding the outbox; the worker opens its own connection.
        public var databasePath: String
        /// The destinations configured now, by name (``OutboxMessage/webhook``, ``OutboxMessage/hl7``). Rows for a
        /// destination that is not here wait.
        public var destinations: [String: Destination]
        /// The longest sleep between looks at the outbox, in seconds.
        public var idlePoll: Double
        /// The jitter source: uniform in 0..<1.
        public var randomFraction: @Sendable () -> Double

        /// A configuration.
        public init(
            databasePath: String, destinations: [Destination], idlePoll: Double = 30,
            randomFraction: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
        ) {
            self.databasePath = databasePath
            self.destinations = Dictionary(destinations.map { ($0.name, $0) }) { _, last in last }
            self.idlePoll = idlePoll
            self.randomFraction = randomFraction
        }

        /// Destination name → URL, as ``Outbox/nextDue(now:destinations:)`` takes them.
        var urls: [String: String] { destinations.mapValues(\.url) }

        /// The destination `row` names; nil when it is not configured now (``Outbox/nextDue(now:destinations:)``
        /// hands out no such rows).
        func destination(for row: OutboxRow) -> Destination? { destinations[row.message.destination] }
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

    /// Replaces the configuration (destinations: URLs, retry policies, transports); the next attempt uses it.
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
                    if let row = try outbox.nextDue(destinations: configuration.urls) {
                        try await attempt(row, outbox: outbox, configuration: configuration)
                        continue
                    }
                    let next = try outbox.nextDueTime(destinations: configuration.urls)
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
        let kind = destination.name
        guard
            let outcome = await destination.transport.deliver(
                message, to: destination.url, now: Date().timeIntervalSince1970)
        else {
            logger.info(
                "\(kind) delivery interrupted by shutdown; it stays queued", metadata: ["event": "\(message.eventID)"])
            return
        }
        let now = Date().timeIntervalSince1970
        let state = try outbox.record(
            outcome, for: row, policy: destination.retry, randomFraction: configuration.randomFraction(), now: now,
            url: destination.url)
        var metadata: Logger.Metadata = [
            "event": "\(message.eventID)", "slide": "\(message.slideKey)", "attempt": "\(row.attempts + 1)",
            "destination": "\(kind)",
        ]
        switch outcome {
        case .delivered(let status):
            if let status { metadata["status"] = "\(status)" }
            logger.info("\(kind) delivered", metadata: metadata)
        case .retry(let reason, _, _):
            metadata["reason"] = "\(reason)"
            if state == .dead {
                logger.error("\(kind) delivery given up after the retry window; dead letter", metadata: metadata)
            } else {
                if let next = try outbox.row(eventID: message.eventID, destination: kind)?.nextAttemptAt {
                    metadata["retry_in_seconds"] = "\(String(format: "%.1f", max(0, next - now)))"
                }
                logger.warning("\(kind) delivery failed; will retry", metadata: metadata)
            }
        case .deadLetter(let status, let reason):
            if let status { metadata["status"] = "\(status)" }
            metadata["reason"] = "\(reason)"
            logger.error(
                "\(kind) refused by the receiver; dead letter (replay with csmil outbox retry)", metadata: metadata)
        case .endpointGone(let status, _):
            metadata["status"] = "\(status)"
            metadata["url"] = "\(destination.url)"
            logger.critical(
                "webhook endpoint answered 410 Gone; delivery to it is stopped until csmil outbox retry",
                metadata: metadata)
        }
    }
}
