import Errors
import Foundation
import Logging
import Store

/// The worker that empties the outbox: on a thread of its own (libcurl and the database client block), it claims
/// the next due row (a lease: hosts sharing a database send each row one at a time), looks up its destination in the
/// configuration in force now (URL and transport), sends the stored bytes — a webhook POST signed with this
/// attempt's timestamp (`webhook-id` is always the event id), or an HL7 message over MLLP (MSH-10 is always the
/// event id) — and records the outcome durably before it takes the next one. An outcome that cannot be recorded
/// (the database is down) is kept and recorded when the database is back, not sent again.
///
/// It sleeps until the earliest pending row falls due, until ``wake()`` (call it after committing an enqueue), or
/// at most ``Configuration/idlePoll`` seconds (rows queued by another process). ``stop()`` aborts a transfer in
/// flight without recording it — the row stays pending and is resent, with the same id and body, next time; a
/// crash or `kill -9` has the same effect.
public final class OutboxDelivery: @unchecked Sendable {
    /// Where one destination's rows go now, and how.
    public struct Destination: Sendable {
        /// How the bytes travel.
        public enum Transport: Sendable {
            /// A signed HTTP POST (Standard Webhooks).
            case webhook(secret: WebhookSecret, client: WebhookClientOptions)
            /// An HL7 message over MLLP, answered by an ACK.
            case hl7(MLLPClientOptions)
        }

        /// The URL in force: `https://…` for a webhook, `mllp(s)://…` for HL7.
        public var url: String
        public var transport: Transport
        /// When failed attempts are retried.
        public var retry: RetryPolicy

        /// A destination.
        public init(url: String, transport: Transport, retry: RetryPolicy = RetryPolicy()) {
            self.url = url
            self.transport = transport
            self.retry = retry
        }
    }

    /// What the worker needs; ``reconfigure(_:)`` replaces it (a SIGHUP reload) from the next attempt on — queued
    /// rows, and dead letters replayed later, go to the URLs configured then.
    public struct Configuration: Sendable {
        /// The store holding the outbox; the worker opens its own connection.
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
            store: StoreLocation, host: String = "local", destinations: [String: Destination],
            idlePoll: Double = 30, randomFraction: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
        ) {
            self.store = store
            self.host = host
            self.destinations = destinations
            self.idlePoll = idlePoll
            self.randomFraction = randomFraction
        }

        /// A configuration with the webhook at `url` as its one destination.
        public init(
            store: StoreLocation, host: String = "local", url: String, secret: WebhookSecret,
            client: WebhookClientOptions = WebhookClientOptions(), retry: RetryPolicy = RetryPolicy(),
            idlePoll: Double = 30, randomFraction: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
        ) {
            self.init(
                store: store, host: host,
                destinations: [
                    OutboxMessage.webhook: Destination(
                        url: url, transport: .webhook(secret: secret, client: client), retry: retry)
                ], idlePoll: idlePoll, randomFraction: randomFraction)
        }

        /// Destination name → URL, as ``Outbox/claimNextDue(now:destinations:holder:leaseSeconds:)`` takes them.
        var urls: [String: String] { destinations.mapValues(\.url) }

        /// How long a host holds a row it sends: longer than one attempt can take (its timeouts), so no other host
        /// sends it meanwhile, yet short enough that a row left by a host that died is sent again soon.
        var leaseSeconds: Double {
            let attempt =
                destinations.values.map { destination -> Double in
                    switch destination.transport {
                    case .webhook(_, let client): client.connectTimeout + client.timeout
                    case .hl7(let options): options.connectTimeout + options.ackTimeout
                    }
                }.max() ?? 0
            return 2 * attempt + 30
        }
    }

    private let condition = NSCondition()
    private var configuration: Configuration
    private var running = false
    private var stopping = false
    private var finished = false
    private var wakeRequested = false
    private var finishWaiters: [CheckedContinuation<Void, Never>] = []
    private let logger: Logger

    /// Makes a worker; nothing runs before ``start()``.
    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Opens the database (installing the outbox tables when missing) and starts the worker thread.
    public func start() throws {
        let store = withLock { configuration.store }
        // Fail here, to the caller, when the local file cannot be opened (a shared database may be away for a
        // while: the thread opens its own connection and retries).
        if case .sqlite = store { try Outbox.installSchema(in: store.open(applicationName: "csmil outbox")) }
        try withLock {
            guard !running else {
                throw WebhookClientError(message: "the outbox delivery worker is already running", fix: "start it once")
            }
            running = true
        }
        let thread = Thread { [self] in
            self.work()
        }
        thread.name = "csmil-outbox"
        thread.start()
    }

    /// Asks the worker to look at the outbox now (after an enqueue was committed).
    public func wake() {
        withLock {
            wakeRequested = true
            condition.broadcast()
        }
    }

    /// Replaces the configuration (secret, timeouts, retry policy); the next attempt uses it.
    public func reconfigure(_ configuration: Configuration) {
        withLock {
            self.configuration = configuration
            condition.broadcast()
        }
    }

    /// Stops the worker and waits until its thread has ended (a transfer in flight is aborted within about a
    /// second and left pending). Safe to call more than once, and before ``start()``.
    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while running && !finished { condition.wait() }
        condition.unlock()
    }

    /// Runs the worker until the calling task is cancelled (for a service group), then stops it.
    public func run() async throws {
        try start()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = withLock {
                    if finished { return true }
                    finishWaiters.append(continuation)
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            self.requestStop()
        }
    }

    private func requestStop() {
        withLock {
            stopping = true
            condition.broadcast()
        }
    }

    private var isStopping: Bool { withLock { stopping } }

    private func work() {
        var clients = Clients()
        var database: (any StoreDatabase)?
        var openedStore: StoreLocation?
        // An outcome the database did not take (it was unreachable): recorded before anything is sent again.
        var unrecorded: (row: OutboxRow, destination: Destination, outcome: DeliveryOutcome, now: Double)?
        var failures = 0
        defer {
            let waiters = withLock {
                finished = true
                condition.broadcast()
                let waiters = finishWaiters
                finishWaiters = []
                return waiters
            }
            for waiter in waiters { waiter.resume() }
        }
        while !isStopping {
            let configuration = withLock {
                wakeRequested = false
                return self.configuration
            }
            do {
                if database == nil || openedStore != configuration.store {
                    database = try configuration.store.open(applicationName: "csmil outbox")
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
                    guard let (outcome, now) = try send(row, destination: destination, clients: &clients) else {
                        try? outbox.releaseClaim(row)
                        return
                    }
                    unrecorded = (row, destination, outcome, now)
                    try record(
                        outcome, for: row, destination: destination, outbox: outbox, configuration: configuration,
                        now: now)
                    unrecorded = nil
                    continue
                }
                let next = try outbox.nextDueTime(destinations: configuration.urls)
                sleep(until: min(next ?? .infinity, Date().timeIntervalSince1970 + configuration.idlePoll))
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
                sleep(until: Date().timeIntervalSince1970 + delay)
            }
        }
    }

    /// The transports' clients, made when first needed and kept while their options stay the same (a webhook's
    /// keep-alive connection, an MLLP connection).
    private struct Clients {
        var webhook: WebhookClient?
        var mllp: MLLPClient?

        mutating func webhook(_ options: WebhookClientOptions) throws -> WebhookClient {
            if let webhook, webhook.options == options { return webhook }
            let client = try WebhookClient(options: options)
            webhook = client
            return client
        }

        mutating func mllp(_ options: MLLPClientOptions) -> MLLPClient {
            if let mllp, mllp.options == options { return mllp }
            let client = MLLPClient(options: options)
            mllp = client
            return client
        }
    }

    /// Sends one row to its destination; nil when the attempt was cancelled by ``stop()``.
    private func send(
        _ row: OutboxRow, destination: Destination, clients: inout Clients
    ) throws -> (DeliveryOutcome, Double)? {
        let message = row.message
        let outcome: DeliveryOutcome?
        let now: Double
        switch destination.transport {
        case .webhook(let secret, let options):
            let timestamp = Int64(Date().timeIntervalSince1970)
            let response = try clients.webhook(options).post(
                url: destination.url, contentType: message.contentType,
                headers: WebhookSigner(secret: secret).headers(
                    id: message.eventID, timestamp: timestamp, body: message.body),
                body: message.body, isCancelled: { [self] in isStopping })
            now = Date().timeIntervalSince1970
            outcome = DeliveryOutcome(response, now: now)
        case .hl7(let options):
            let response = clients.mllp(options).send(
                message.body, to: destination.url, isCancelled: { [self] in isStopping })
            now = Date().timeIntervalSince1970
            outcome = response.outcome(forControlID: message.eventID)
        }
        guard let outcome else {
            logger.info(
                "\(message.destination) delivery interrupted by shutdown; it stays queued",
                metadata: ["event": "\(message.eventID)"])
            return nil
        }
        return (outcome, now)
    }

    /// Records the outcome of an attempt on `row` and logs it.
    private func record(
        _ outcome: DeliveryOutcome, for row: OutboxRow, destination: Destination, outbox: Outbox,
        configuration: Configuration, now: Double
    ) throws {
        let message = row.message
        let kind = message.destination
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

    private func sleep(until deadline: Double) {
        condition.lock()
        defer { condition.unlock() }
        while !stopping && !wakeRequested {
            let remaining = deadline - Date().timeIntervalSince1970
            if remaining <= 0 { return }
            _ = condition.wait(until: Date(timeIntervalSinceNow: min(remaining, 3600)))
        }
    }

    private func withLock<Result>(_ body: () throws -> Result) rethrows -> Result {
        condition.lock()
        defer { condition.unlock() }
        return try body()
    }
}
