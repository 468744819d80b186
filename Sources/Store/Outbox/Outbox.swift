import Foundation

/// The durable list of events still to deliver (table `outbox`, plus `outbox_endpoints` for endpoints that answered
/// 410 Gone), in the store's database beside the jobs.
///
/// A row is one event for one destination (`webhook`; others may follow): each has its own attempts, retries and
/// dead letter, and one event's rows are delivered independently. A host sending a row holds a lease on it
/// (``claimNextDue(now:holder:leaseSeconds:)``), so hosts sharing a database send each row one at a time, always
/// with the event's id.
///
/// The outbox works on a connection it is given, so the daemon can write a report row and its outbox rows in one
/// transaction: ``enqueue(_:now:)`` starts no transaction of its own. Every change is durable once the caller's
/// transaction (or the statement, outside one) commits; a crash at any moment leaves each row either pending — and
/// it is then resent with the same id and body — or recorded.
public struct Outbox {
    /// The connection it works on.
    public let database: any StoreDatabase

    /// An outbox over `database`, whose schema must be installed (``installSchema(in:)``).
    public init(database: any StoreDatabase) {
        self.database = database
    }

    /// Creates or upgrades the store's tables in `database` (idempotent): the outbox's tables are part of the
    /// store's one schema (``StoreSchema``), so a file holding only an outbox (`csmil score --notify`) can later be
    /// opened by the daemon's job store and the other way round.
    public static func installSchema(in database: any StoreDatabase) throws {
        try StoreSchema.install(in: database)
    }

    private static let columnNames = [
        "seq", "event_id", "slide_key", "event_type", "target_url", "content_type", "body", "created_at",
        "window_start", "attempts", "next_attempt_at", "last_attempt_at", "last_status", "last_error", "state",
        "delivered_at", "destination", "lease_holder", "lease_until",
    ]

    /// The columns ``row(_:)`` reads, optionally qualified by a table alias.
    private static func columns(_ alias: String = "") -> String {
        columnNames.map { alias + $0 }.joined(separator: ", ")
    }

    /// Queues a message, due at once. Idempotent on the event id and destination: when that row exists, nothing
    /// is written (the stored body and id stay as they were) and false is returned. Starts no transaction: call it
    /// inside the transaction that records the report so both commit together.
    @discardableResult
    public func enqueue(_ message: OutboxMessage, now: Double = Date().timeIntervalSince1970) throws -> Bool {
        let changed = try database.execute(
            """
            INSERT INTO outbox (event_id, destination, slide_key, event_type, target_url, content_type, body,
                                created_at, window_start, next_attempt_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8)
            ON CONFLICT (event_id, destination) DO NOTHING
            """,
            [
                .text(message.eventID), .text(message.destination), .text(message.slideKey),
                .text(message.eventType), .text(message.targetURL), .text(message.contentType),
                .blob(message.body), .real(now),
            ])
        if changed > 0 { try database.notify(.outbox) }
        return changed > 0
    }

    /// The row of an event for a destination, or nil.
    public func row(eventID: String, destination: String = OutboxMessage.webhook) throws -> OutboxRow? {
        try database.queryOne(
            "SELECT \(Self.columns()) FROM outbox WHERE event_id = $1 AND destination = $2",
            [.text(eventID), .text(destination)], row: Self.row)
    }

    /// All rows in insertion order (tests, diagnostics).
    public func rows() throws -> [OutboxRow] {
        try database.query("SELECT \(Self.columns()) FROM outbox ORDER BY seq", row: Self.row)
    }

    /// Rows that may be sent now or later: pending, the oldest pending row of their slide and destination (a
    /// slide's events go to each destination in the order they were queued), and not addressed to a disabled
    /// endpoint.
    private static let eligible = """
        o.state = 'pending'
        AND NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p.slide_key = o.slide_key AND p.destination = o.destination
                        AND p.state = 'pending' AND p.seq < o.seq)
        AND o.target_url NOT IN (SELECT url FROM outbox_endpoints)
        """

    /// The next row due at `now` that no host is sending: earliest due first, then in queue order. It is not
    /// claimed (tests, `csmil status`); senders use ``claimNextDue(now:holder:leaseSeconds:)``.
    public func nextDue(now: Double = Date().timeIntervalSince1970) throws -> OutboxRow? {
        try database.queryOne(
            """
            SELECT \(Self.columns("o."))
            FROM outbox AS o
            WHERE \(Self.eligible) AND o.next_attempt_at <= $1 AND (o.lease_until IS NULL OR o.lease_until <= $1)
            ORDER BY o.next_attempt_at, o.seq LIMIT 1
            """, [.real(now)], row: Self.row)
    }

    /// Takes the next row due at `now` for sending by `holder`: it is leased to it until `now + leaseSeconds`
    /// (longer than one attempt takes), so no other host sends it meanwhile; a host that dies mid-send leaves the
    /// lease to expire and the row is sent again, with the same id. Rows another host is claiming at this moment are
    /// skipped (`FOR UPDATE SKIP LOCKED`). Nil when nothing is due.
    public func claimNextDue(
        now: Double = Date().timeIntervalSince1970, holder: String, leaseSeconds: Double
    ) throws -> OutboxRow? {
        try database.transaction { () throws -> OutboxRow? in
            guard
                let sequence = try database.queryOne(
                    """
                    SELECT o.seq FROM outbox AS o
                    WHERE \(Self.eligible) AND o.next_attempt_at <= $1
                      AND (o.lease_until IS NULL OR o.lease_until <= $1)
                    ORDER BY o.next_attempt_at, o.seq LIMIT 1 \(database.dialect.skipLocked)
                    """, [.real(now)], row: { $0.int64(0) })
            else { return nil }
            return try database.queryOne(
                """
                UPDATE outbox SET lease_holder = $1, lease_until = $2 WHERE seq = $3
                RETURNING \(Self.columns())
                """, [.text(holder), .real(now + leaseSeconds), .integer(sequence)], row: Self.row)
        }
    }

    /// Gives back a row claimed for sending without an outcome (shutdown aborted the transfer): due again at once.
    public func releaseClaim(_ row: OutboxRow) throws {
        try database.execute(
            "UPDATE outbox SET lease_holder = NULL, lease_until = NULL WHERE seq = $1 AND state = 'pending'",
            [.integer(row.sequence)])
    }

    /// When the earliest eligible row falls due (or its sender's lease runs out); nil when nothing is waiting.
    public func nextDueTime() throws -> Double? {
        try database.queryOne(
            """
            SELECT MIN(CASE WHEN o.lease_until > o.next_attempt_at THEN o.lease_until ELSE o.next_attempt_at END)
            FROM outbox AS o WHERE \(Self.eligible)
            """
        ) {
            $0.optionalDouble(0)
        } ?? nil
    }

    /// Records what an attempt on `row` came to (Notify judges the transport's answer into an ``OutboxAttempt``)
    /// and returns the row's new state: one more attempt, the status and error, the next due time of a retry; a
    /// dead letter; a disabled endpoint (410), which holds every row addressed to it. The sender's lease ends.
    ///
    /// When the row is delivered and it was its event's last undelivered row, the event's job (if a job reported
    /// it) becomes delivered in the same transaction: the delivery and the job's state are never apart.
    @discardableResult
    public func record(
        _ attempt: OutboxAttempt, for row: OutboxRow, now: Double = Date().timeIntervalSince1970
    ) throws -> OutboxState {
        let state: OutboxState
        var nextAttempt = row.nextAttemptAt
        var deliveredAt: Double?
        switch attempt.result {
        case .delivered:
            state = .delivered
            deliveredAt = now
        case .retry(let at):
            state = .pending
            nextAttempt = at
        case .dead:
            state = .dead
        case .endpointGone:
            state = .disabled
        }
        try database.transaction {
            try database.execute(
                """
                UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_attempt_at = $2,
                                  last_status = $3, last_error = $4, state = $5, delivered_at = $6,
                                  lease_holder = NULL, lease_until = NULL
                WHERE seq = $7 AND state = 'pending'
                """,
                [
                    .real(nextAttempt), .real(now), .optional(attempt.status.map { .int($0) }),
                    .optional(attempt.error.map { .text($0) }), .text(state.rawValue),
                    .optional(deliveredAt.map { .real($0) }), .integer(row.sequence),
                ])
            switch attempt.result {
            case .delivered:
                try JobStore.recordDelivered(eventID: row.message.eventID, now: now, in: database)
            case .endpointGone:
                try database.execute(
                    """
                    INSERT INTO outbox_endpoints (url, disabled_at, status, reason) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (url) DO NOTHING
                    """,
                    [
                        .text(row.message.targetURL), .real(now), .optional(attempt.status.map { .int($0) }),
                        .optional(attempt.error.map { .text($0) }),
                    ])
            case .retry, .dead:
                break
            }
        }
        return state
    }

    /// Puts a dead (or endpoint-disabled) event back in the queue — its rows for every destination — due at once
    /// with a fresh retry window, and re-enables their endpoints. Ids and bodies are unchanged. Returns false when
    /// the event has no dead row.
    @discardableResult
    public func requeue(eventID: String, now: Double = Date().timeIntervalSince1970) throws -> Bool {
        try database.transaction { () throws -> Bool in
            let urls = try database.query(
                "SELECT target_url FROM outbox WHERE event_id = $1 AND state IN ('dead', 'disabled')",
                [.text(eventID)]
            ) { $0.string(0) }
            guard !urls.isEmpty else { return false }
            try database.execute(
                """
                UPDATE outbox SET state = 'pending', next_attempt_at = $1, window_start = $1, lease_holder = NULL,
                                  lease_until = NULL
                WHERE event_id = $2 AND state IN ('dead', 'disabled')
                """, [.real(now), .text(eventID)])
            for url in Set(urls) {
                try database.execute("DELETE FROM outbox_endpoints WHERE url = $1", [.text(url)])
            }
            try database.notify(.outbox)
            return true
        }
    }

    /// Requeues every dead and endpoint-disabled event and re-enables every endpoint; returns how many rows.
    @discardableResult
    public func requeueAllDead(now: Double = Date().timeIntervalSince1970) throws -> Int {
        try database.transaction { () throws -> Int in
            let count = try database.execute(
                """
                UPDATE outbox SET state = 'pending', next_attempt_at = $1, window_start = $1, lease_holder = NULL,
                                  lease_until = NULL
                WHERE state IN ('dead', 'disabled')
                """, [.real(now)])
            try database.execute("DELETE FROM outbox_endpoints")
            if count > 0 { try database.notify(.outbox) }
            return count
        }
    }

    /// Lets deliveries to `url` resume after a 410 without replaying anything.
    public func enableEndpoint(url: String) throws {
        try database.execute("DELETE FROM outbox_endpoints WHERE url = $1", [.text(url)])
    }

    /// What `csmil status` shows about delivery.
    public func summary(now: Double = Date().timeIntervalSince1970, deadLetterLimit: Int = 50) throws -> OutboxSummary {
        let counts = try database.query("SELECT state, COUNT(*) FROM outbox GROUP BY state") {
            ($0.string(0), $0.int(1))
        }
        let count = { (state: OutboxState) in counts.first { $0.0 == state.rawValue }?.1 ?? 0 }
        let oldest =
            try database.queryOne("SELECT MIN(created_at) FROM outbox WHERE state = 'pending'") {
                $0.optionalDouble(0)
            } ?? nil
        let dead = try database.query(
            """
            SELECT event_id, slide_key, state, attempts, last_status, last_error, created_at, last_attempt_at
            FROM outbox WHERE state IN ('dead', 'disabled') ORDER BY seq LIMIT $1
            """, [.int(deadLetterLimit)]
        ) {
            OutboxSummary.DeadLetter(
                eventID: $0.string(0), slideKey: $0.string(1), state: OutboxState(rawValue: $0.string(2)) ?? .dead,
                attempts: $0.int(3), lastStatus: $0.optionalInt64(4).map(Int.init), reason: $0.optionalString(5),
                createdAt: $0.double(6), lastAttemptAt: $0.optionalDouble(7))
        }
        let endpoints = try database.query("SELECT url, disabled_at, status, reason FROM outbox_endpoints ORDER BY url")
        {
            OutboxSummary.DisabledEndpoint(
                url: $0.string(0), since: $0.double(1), status: $0.optionalInt64(2).map(Int.init),
                reason: $0.optionalString(3))
        }
        return OutboxSummary(
            backlog: count(.pending), delivered: count(.delivered), deadCount: count(.dead) + count(.disabled),
            oldestUndeliveredAge: oldest.map { max(0, now - $0) }, deadLetters: dead, disabledEndpoints: endpoints)
    }

    private static func row(_ statement: any DatabaseRow) -> OutboxRow {
        OutboxRow(
            sequence: statement.int64(0),
            message: OutboxMessage(
                eventID: statement.string(1), slideKey: statement.string(2), eventType: statement.string(3),
                targetURL: statement.string(4), contentType: statement.string(5), body: statement.blob(6),
                destination: statement.string(16)),
            createdAt: statement.double(7), windowStart: statement.double(8), attempts: statement.int(9),
            nextAttemptAt: statement.double(10), lastAttemptAt: statement.optionalDouble(11),
            lastStatus: statement.optionalInt64(12).map(Int.init), lastError: statement.optionalString(13),
            state: OutboxState(rawValue: statement.string(14)) ?? .pending, deliveredAt: statement.optionalDouble(15),
            leaseHolder: statement.optionalString(17), leaseUntil: statement.optionalDouble(18))
    }
}

/// The delivery part of `csmil status`.
public struct OutboxSummary: Sendable, Equatable, Codable {
    /// An event that is not being retried.
    public struct DeadLetter: Sendable, Equatable, Codable {
        public var eventID: String
        public var slideKey: String
        /// `dead` (refused or retried past the window) or `disabled` (its endpoint answered 410).
        public var state: OutboxState
        public var attempts: Int
        public var lastStatus: Int?
        /// Why it stopped.
        public var reason: String?
        public var createdAt: Double
        public var lastAttemptAt: Double?

        enum CodingKeys: String, CodingKey {
            case state, attempts, reason
            case eventID = "event_id"
            case slideKey = "slide_key"
            case lastStatus = "last_status"
            case createdAt = "created_at"
            case lastAttemptAt = "last_attempt_at"
        }
    }

    /// An endpoint that answered 410 Gone; nothing is sent to it until an operator replays.
    public struct DisabledEndpoint: Sendable, Equatable, Codable {
        public var url: String
        public var since: Double
        public var status: Int?
        public var reason: String?
    }

    /// Events waiting to be delivered (pending).
    public var backlog: Int
    /// Events delivered.
    public var delivered: Int
    /// Events dead or held by a disabled endpoint.
    public var deadCount: Int
    /// Seconds since the oldest pending event was queued; nil when none is pending.
    public var oldestUndeliveredAge: Double?
    /// The dead letters (the first ones, in queue order).
    public var deadLetters: [DeadLetter]
    /// Endpoints disabled by a 410.
    public var disabledEndpoints: [DisabledEndpoint]

    /// Whether any endpoint is disabled.
    public var endpointDisabled: Bool { !disabledEndpoints.isEmpty }

    enum CodingKeys: String, CodingKey {
        case backlog, delivered
        case deadCount = "dead_count"
        case oldestUndeliveredAge = "oldest_undelivered_age_seconds"
        case deadLetters = "dead_letters"
        case disabledEndpoints = "disabled_endpoints"
    }
}
