import Foundation

/// The durable list of events still to deliver (table `outbox`, plus `outbox_endpoints` for endpoints that answered
/// 410 Gone), in the store's database beside the jobs.
///
/// A row names a destination (`webhook`, `hl7`), not a URL: where and how it is sent is looked up in the
/// configuration in force when it is sent, so a changed URL applies to what is queued and to replayed dead letters.
/// One event has one row per destination, each with its own attempts, retries and dead letter. A host sending a row
/// holds a lease on it (``claimNextDue(now:destinations:holder:leaseSeconds:)``), so hosts sharing a database send
/// each row one at a time, always with the event's id.
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
        "seq", "event_id", "slide_key", "event_type", "destination", "content_type", "body", "created_at",
        "window_start", "attempts", "next_attempt_at", "last_attempt_at", "last_status", "last_error", "state",
        "delivered_at", "lease_holder", "lease_until",
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
            INSERT INTO outbox (event_id, slide_key, event_type, destination, content_type, body, created_at,
                                window_start, next_attempt_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)
            ON CONFLICT (event_id, destination) DO NOTHING
            """,
            [
                .text(message.eventID), .text(message.slideKey), .text(message.eventType),
                .text(message.destination), .text(message.contentType), .blob(message.body), .real(now),
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

    /// The rows of an event, one per destination, in queue order.
    public func rows(eventID: String) throws -> [OutboxRow] {
        try database.query(
            "SELECT \(Self.columns()) FROM outbox WHERE event_id = $1 ORDER BY seq", [.text(eventID)], row: Self.row)
    }

    /// All rows in insertion order (tests, diagnostics).
    public func rows() throws -> [OutboxRow] {
        try database.query("SELECT \(Self.columns()) FROM outbox ORDER BY seq", row: Self.row)
    }

    /// The newest `limit` rows, newest first (`csmil outbox list`).
    public func recentRows(limit: Int) throws -> [OutboxRow] {
        try database.query(
            "SELECT \(Self.columns()) FROM outbox ORDER BY seq DESC LIMIT \(max(0, limit))", row: Self.row)
    }

    /// Rows that may be sent now or later: pending, the oldest pending row of their slide and destination (a
    /// slide's events go to each destination in the order they were queued), for one of `count` active
    /// destinations bound as the parameters from `$first` on.
    private static func eligible(first: Int, count: Int) -> String {
        let list = count == 0 ? "NULL" : (first..<(first + count)).map { "$\($0)" }.joined(separator: ", ")
        return """
            o.state = 'pending' AND o.destination IN (\(list))
            AND NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p.slide_key = o.slide_key AND p.destination = o.destination
                            AND p.state = 'pending' AND p.seq < o.seq)
            """
    }

    /// The destinations of `destinations` (name → the URL configured now) whose URL no 410 disabled.
    private func active(_ destinations: [String: String]) throws -> [String] {
        let disabled = Set(
            try database.query("SELECT destination, url FROM outbox_endpoints") { [$0.string(0), $0.string(1)] })
        return destinations.keys.sorted().filter { !disabled.contains([$0, destinations[$0] ?? ""]) }
    }

    /// The next row due at `now` for one of `destinations` (name → the URL configured now) that no host is sending:
    /// earliest due first, then in queue order. Rows for other destinations wait (nothing is configured for them
    /// now). It is not claimed (tests, diagnostics); senders use ``claimNextDue(now:destinations:holder:leaseSeconds:)``.
    public func nextDue(
        now: Double = Date().timeIntervalSince1970, destinations: [String: String]
    ) throws -> OutboxRow? {
        let active = try active(destinations)
        return try database.queryOne(
            """
            SELECT \(Self.columns("o."))
            FROM outbox AS o
            WHERE \(Self.eligible(first: 2, count: active.count)) AND o.next_attempt_at <= $1
              AND (o.lease_until IS NULL OR o.lease_until <= $1)
            ORDER BY o.next_attempt_at, o.seq LIMIT 1
            """, [.real(now)] + active.map { .text($0) }, row: Self.row)
    }

    /// Takes the next row due at `now` for one of `destinations` for sending by `holder`: it is leased to it until
    /// `now + leaseSeconds` (longer than one attempt takes), so no other host sends it meanwhile; a host that dies
    /// mid-send leaves the lease to expire and the row is sent again, with the same id. Rows another host is
    /// claiming at this moment are skipped (`FOR UPDATE SKIP LOCKED`). Nil when nothing is due.
    public func claimNextDue(
        now: Double = Date().timeIntervalSince1970, destinations: [String: String], holder: String,
        leaseSeconds: Double
    ) throws -> OutboxRow? {
        let active = try active(destinations)
        return try database.transaction { () throws -> OutboxRow? in
            guard
                let sequence = try database.queryOne(
                    """
                    SELECT o.seq FROM outbox AS o
                    WHERE \(Self.eligible(first: 2, count: active.count)) AND o.next_attempt_at <= $1
                      AND (o.lease_until IS NULL OR o.lease_until <= $1)
                    ORDER BY o.next_attempt_at, o.seq LIMIT 1 \(database.dialect.skipLocked)
                    """, [.real(now)] + active.map { .text($0) }, row: { $0.int64(0) })
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

    /// Gives back every row `holder` claimed for sending (a process of this host died mid-send, e.g. `kill -9`):
    /// due again at once instead of when the claim runs out, which may be long (twice the destination's timeouts).
    /// Only for a caller that knows no other process of `holder` is sending (it holds the state folder's lock).
    /// Returns how many rows there were.
    @discardableResult
    public func releaseClaims(holder: String) throws -> Int {
        let count = try database.execute(
            "UPDATE outbox SET lease_holder = NULL, lease_until = NULL WHERE lease_holder = $1 AND state = 'pending'",
            [.text(holder)])
        if count > 0 { try database.notify(.outbox) }
        return count
    }

    /// When the earliest eligible row of `destinations` falls due (or its sender's lease runs out); nil when nothing
    /// is waiting.
    public func nextDueTime(destinations: [String: String]) throws -> Double? {
        let active = try active(destinations)
        return try database.queryOne(
            """
            SELECT MIN(CASE WHEN o.lease_until > o.next_attempt_at THEN o.lease_until ELSE o.next_attempt_at END)
            FROM outbox AS o WHERE \(Self.eligible(first: 1, count: active.count))
            """, active.map { .text($0) }
        ) {
            $0.optionalDouble(0)
        } ?? nil
    }

    /// Records what an attempt on `row` came to (Notify judges the transport's answer into an ``OutboxAttempt``)
    /// and returns the row's new state: one more attempt, the status and error, the next due time of a retry; a
    /// dead letter; a disabled endpoint (410), which holds the row's destination at `url` (the URL the attempt went
    /// to) until an operator replays. The sender's lease ends.
    ///
    /// When the row is delivered and it was its event's last undelivered row (every destination), the event's job
    /// (if a job reported it) becomes delivered in the same transaction: the delivery and the job's state are never
    /// apart.
    @discardableResult
    public func record(
        _ attempt: OutboxAttempt, for row: OutboxRow, now: Double = Date().timeIntervalSince1970, url: String = ""
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
                    INSERT INTO outbox_endpoints (destination, url, disabled_at, status, reason)
                    VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (destination, url) DO NOTHING
                    """,
                    [
                        .text(row.message.destination), .text(url), .real(now),
                        .optional(attempt.status.map { .int($0) }), .optional(attempt.error.map { .text($0) }),
                    ])
            case .retry, .dead:
                break
            }
        }
        return state
    }

    /// Puts a dead (or endpoint-disabled) event back in the queue — its rows for every destination, or for
    /// `destination` only — due at once with a fresh retry window, and re-enables those destinations. Ids and
    /// bodies are unchanged; they go where the configuration in force says when they are sent. Returns how many
    /// rows were requeued.
    @discardableResult
    public func requeue(
        eventID: String, destination: String? = nil, now: Double = Date().timeIntervalSince1970
    ) throws -> Int {
        try database.transaction { () throws -> Int in
            var count = 0
            for row in try rows(eventID: eventID)
            where (row.state == .dead || row.state == .disabled)
                && (destination == nil || row.message.destination == destination)
            {
                try database.execute(
                    """
                    UPDATE outbox SET state = 'pending', next_attempt_at = $1, window_start = $1, lease_holder = NULL,
                                      lease_until = NULL
                    WHERE seq = $2
                    """, [.real(now), .integer(row.sequence)])
                try database.execute(
                    "DELETE FROM outbox_endpoints WHERE destination = $1", [.text(row.message.destination)])
                count += 1
            }
            if count > 0 { try database.notify(.outbox) }
            return count
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
            SELECT event_id, slide_key, state, attempts, last_status, last_error, created_at, last_attempt_at,
                   destination
            FROM outbox WHERE state IN ('dead', 'disabled') ORDER BY seq LIMIT $1
            """, [.int(deadLetterLimit)]
        ) {
            OutboxSummary.DeadLetter(
                eventID: $0.string(0), slideKey: $0.string(1), state: OutboxState(rawValue: $0.string(2)) ?? .dead,
                attempts: $0.int(3), lastStatus: $0.optionalInt64(4).map(Int.init), reason: $0.optionalString(5),
                createdAt: $0.double(6), lastAttemptAt: $0.optionalDouble(7), destination: $0.string(8))
        }
        let endpoints = try database.query(
            "SELECT url, disabled_at, status, reason, destination FROM outbox_endpoints ORDER BY destination, url"
        ) {
            OutboxSummary.DisabledEndpoint(
                url: $0.string(0), since: $0.double(1), status: $0.optionalInt64(2).map(Int.init),
                reason: $0.optionalString(3), destination: $0.string(4))
        }
        let destinations = try database.query(
            """
            SELECT destination, SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END),
                   SUM(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END),
                   SUM(CASE WHEN state IN ('dead', 'disabled') THEN 1 ELSE 0 END),
                   MIN(CASE WHEN state = 'pending' THEN created_at END)
            FROM outbox GROUP BY destination ORDER BY destination
            """
        ) {
            OutboxSummary.Destination(
                name: $0.string(0), backlog: $0.int(1), delivered: $0.int(2), deadCount: $0.int(3),
                oldestUndeliveredAge: $0.optionalDouble(4).map { max(0, now - $0) })
        }
        return OutboxSummary(
            backlog: count(.pending), delivered: count(.delivered), deadCount: count(.dead) + count(.disabled),
            oldestUndeliveredAge: oldest.map { max(0, now - $0) }, deadLetters: dead, disabledEndpoints: endpoints,
            destinations: destinations)
    }

    private static func row(_ statement: any DatabaseRow) -> OutboxRow {
        OutboxRow(
            sequence: statement.int64(0),
            message: OutboxMessage(
                eventID: statement.string(1), slideKey: statement.string(2), eventType: statement.string(3),
                destination: statement.string(4), contentType: statement.string(5), body: statement.blob(6)),
            createdAt: statement.double(7), windowStart: statement.double(8), attempts: statement.int(9),
            nextAttemptAt: statement.double(10), lastAttemptAt: statement.optionalDouble(11),
            lastStatus: statement.optionalInt64(12).map(Int.init), lastError: statement.optionalString(13),
            state: OutboxState(rawValue: statement.string(14)) ?? .pending, deliveredAt: statement.optionalDouble(15),
            leaseHolder: statement.optionalString(16), leaseUntil: statement.optionalDouble(17))
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
        /// The destination it was for (`webhook`, `hl7`).
        public var destination: String = OutboxMessage.webhook

        enum CodingKeys: String, CodingKey {
            case state, attempts, reason, destination
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
        /// The destination whose URL it is.
        public var destination: String = OutboxMessage.webhook
    }

    /// One destination's part of the outbox.
    public struct Destination: Sendable, Equatable, Codable {
        /// `webhook` or `hl7`.
        public var name: String
        public var backlog: Int
        public var delivered: Int
        public var deadCount: Int
        public var oldestUndeliveredAge: Double?

        enum CodingKeys: String, CodingKey {
            case name, backlog, delivered
            case deadCount = "dead_count"
            case oldestUndeliveredAge = "oldest_undelivered_age_seconds"
        }
    }

    /// Events waiting to be delivered (pending rows, all destinations).
    public var backlog: Int
    /// Rows delivered.
    public var delivered: Int
    /// Rows dead or held by a disabled endpoint.
    public var deadCount: Int
    /// Seconds since the oldest pending row was queued; nil when none is pending.
    public var oldestUndeliveredAge: Double?
    /// The dead letters (the first ones, in queue order).
    public var deadLetters: [DeadLetter]
    /// Endpoints disabled by a 410.
    public var disabledEndpoints: [DisabledEndpoint]
    /// The same counts per destination.
    public var destinations: [Destination] = []

    /// Whether any endpoint is disabled.
    public var endpointDisabled: Bool { !disabledEndpoints.isEmpty }

    enum CodingKeys: String, CodingKey {
        case backlog, delivered, destinations
        case deadCount = "dead_count"
        case oldestUndeliveredAge = "oldest_undelivered_age_seconds"
        case deadLetters = "dead_letters"
        case disabledEndpoints = "disabled_endpoints"
    }
}
