import Errors
import Foundation
import Logging
import Store
import Synchronization
import Threads

/// Empties the outbox: claims the next due row (a lease: hosts sharing a database send each row one at a time),
/// looks up the destination it names in the configuration in force now (URL, retry policy, transport), hands it to
/// that transport — a webhook POST signed with this attempt's timestamp (`webhook-id` is always the event id), or an
/// HL7 message over MLLP (MSH-10 is always the event id) — and records the outcome durably before it takes the next
/// one. An outcome the database cannot take (it is away) is kept and recorded when the database is back, before
/// anything is sent again.
///
/// An ordinary async service: ``run()`` sleeps until the earliest pending row falls due, until ``wake()`` (call it
/// after committing an enqueue), or at most ``Configuration/idlePoll`` seconds (rows queued by another process or
/// host). Stopping is cancelling the task that runs it: a transfer in flight is aborted without being recorded — the
/// row's claim is given back, it stays pending and is resent, with the same id and body, next time; a crash or
/// `kill -9` has the same effect once the claim's lease has run out.
///
/// The database clients and libcurl block, so ``run()`` runs its code on a ``DedicatedThread`` of its own (executor
/// preference); the waits in between are async and hold no thread.
public final class OutboxDelivery: Sendable {
    /// What the worker needs; ``reconfigure(_:)`` replaces it (a SIGHUP reload) from the next attempt on — queued
    /// rows, and dead letters replayed later, go to the URLs configured then.
    public struct Configuration: Sendable {
        /// The store holding the outbox (the SQLite file, or the shared PostgreSQL database); the worker opens its
        /// own connection.
        public var store: StoreLocation
        /// This host's name: the holder of the rows it sends.
        public var host: String
        /// The destinations configured now, by name (``OutboxMessage/webhook``, ``OutboxMessage/hl7``). Rows for a
        /// destination that is not here wait.
        public var destinations: [String: Destination]
        /// The longest sleep between looks at the outbox, in seconds.
        public var idlePoll: Double
        /// The jitter source: uniform in 0..<1.
        public var randomFraction: @Sendable () -> Double

        /// A configuration.
        public init(
            store: StoreLocation, host: String = "local", destinations: [Destination], idlePoll: Double = 30,
            randomFraction: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
        ) {
            self.store = store
            self.host = host
            self.destinations = Dictionary(destinations.map { ($0.name, $0) }) { _, last in last }
            self.idlePoll = idlePoll
            self.randomFraction = randomFraction
        }

        /// Destination name → URL, as ``Outbox/claimNextDue(now:destinations:holder:leaseSeconds:)`` takes them.
        var urls: [String: String] { destinations.mapValues(\.url) }

        /// How long a host holds a row it sends: longer than one attempt can take (its transport's timeouts), so no
        /// other host sends it meanwhile, yet short enough that a row left by a host that died is sent again soon.
        var leaseSeconds: Double { 2 * (destinations.values.map(\.transport.longestAttempt).max() ?? 0) + 30 }
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

    /// Delivers until the task is cancelled. Throws only when a local SQLite file cannot be opened at the start (a
    /// shared database may be away for a while: that, and every later failure, is logged and retried with backoff).
    public func run() async throws {
        try await DedicatedThread.withThread(name: "csmil-outbox") {
            let first = configuration.withLock { $0.store }
            var database: (any StoreDatabase)? = nil
            if case .sqlite = first { database = try open(first) }
            var openedStore = first
            // An outcome the database did not take (it was unreachable): recorded before anything is sent again.
            var unrecorded: (row: OutboxRow, destination: Destination, outcome: DeliveryOutcome, now: Double)?
            var failures = 0
            while !Task.isCancelled {
                let configuration = self.configuration.withLock { $0 }
                do {
                    if database == nil || openedStore != configuration.store {
                        database = try open(configuration.store)
                        openedStore = configuration.store
                    }
                    guard let database else { continue }
                    let outbox = Outbox(database: database)
                    if let pending = unrecorded {
                        try record(
                            pending.outcome, for: pending.row, destination: pending.destination, outbox: outbox,
                            configuration: configuration, now: pending.now)
                        unrecorded = nil
                    }
                    if failures > 0 {
                        logger.notice("outbox delivery resumed", metadata: ["database": "\(configuration.store)"])
                        failures = 0
                    }
                    if let row = try outbox.claimNextDue(
                        destinations: configuration.urls, holder: configuration.host,
                        leaseSeconds: configuration.leaseSeconds)
                    {
                        // claimNextDue takes rows of configured destinations only.
                        guard let destination = configuration.destinations[row.message.destination] else {
                            try outbox.releaseClaim(row)
                            continue
                        }
                        guard let (outcome, now) = await send(row, to: destination) else {
                            try? outbox.releaseClaim(row)
                            continue
                        }
                        unrecorded = (row, destination, outcome, now)
                        try record(
                            outcome, for: row, destination: destination, outbox: outbox,
                            configuration: configuration, now: now)
                        unrecorded = nil
                        continue
                    }
                    let next = try outbox.nextDueTime(destinations: configuration.urls)
                    let now = Date().timeIntervalSince1970
                    await signal.wait(for: .seconds(max(0, min(next ?? .infinity, now + configuration.idlePoll) - now)))
                } catch {
                    // Backoff while the database is away: 1, 2, 4 … 30 s.
                    failures += 1
                    let delay = min(30, pow(2, Double(min(failures - 1, 5))))
                    logger.error(
                        "outbox delivery failed; retrying",
                        metadata: [
                            "database": "\(configuration.store)", "retry_in_seconds": "\(Int(delay))",
                            "unrecorded_event": "\(unrecorded?.row.message.eventID ?? "")",
                        ].merging(.error(error)) { $1 })
                    database = nil
                    await signal.wait(for: .seconds(delay))
                }
            }
        }
    }

    /// A connection to `store`, with the outbox tables installed when missing.
    private func open(_ store: StoreLocation) throws -> any StoreDatabase {
        let database = try store.open(applicationName: "csmil outbox")
        try Outbox.installSchema(in: database)
        return database
    }

    /// Sends one row to its destination; nil when the task was cancelled during the transfer (nothing is known).
    private func send(_ row: OutboxRow, to destination: Destination) async -> (DeliveryOutcome, Double)? {
        let message = row.message
        guard
            let outcome = await destination.transport.deliver(
                message, to: destination.url, now: Date().timeIntervalSince1970)
        else {
            logger.info(
                "\(destination.name) delivery interrupted by shutdown; it stays queued",
                metadata: ["event": "\(message.eventID)"])
            return nil
        }
        return (outcome, Date().timeIntervalSince1970)
    }

    /// Records the outcome of an attempt on `row` and logs it.
    private func record(
        _ outcome: DeliveryOutcome, for row: OutboxRow, destination: Destination, outbox: Outbox,
        configuration: Configuration, now: Double
    ) throws {
        let message = row.message
        let kind = destination.name
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
                "\(kind) endpoint answered 410 Gone; delivery to it is stopped until csmil outbox retry",
                metadata: metadata)
        }
    }
}
