/// One connection to the store's database — a SQLite file (``SQLiteDatabase``) or a PostgreSQL server
/// (``PostgresConnection``) — as the job store, the outbox and the host registry use it. The store's logic is
/// written once against this protocol; what differs between the two lives in ``SQLDialect`` and in one migration
/// list per backend (``StoreSchema``).
///
/// SQL passed here numbers its parameters `$1 … $n` (PostgreSQL's form; SQLite reads them as `?1 … ?n`) and uses the
/// SQL both understand. A connection is used from one thread at a time; each thread opens its own.
public protocol StoreDatabase: AnyObject {
    /// Which SQL the connection speaks.
    var dialect: SQLDialect { get }
    /// What errors and logs name: the file, or the URL without a password.
    var location: String { get }
    /// Whether a transaction is open on this connection.
    var isInTransaction: Bool { get }

    /// Runs one statement with parameters, ignoring any rows; returns the number of rows it changed.
    @discardableResult
    func execute(_ sql: String, _ values: [DatabaseValue]) throws -> Int

    /// Runs a query and maps each row.
    func query<Row>(_ sql: String, _ values: [DatabaseValue], row: (any DatabaseRow) throws -> Row) throws -> [Row]

    /// Runs `body` in a transaction — committed when it returns, rolled back when it throws — or, inside an open
    /// one, in a savepoint, so callers compose. A read-only transaction sees one snapshot and takes no write lock.
    func transaction<Result>(readOnly: Bool, _ body: () throws -> Result) throws -> Result
}

extension StoreDatabase {
    /// Runs one statement without parameters.
    @discardableResult
    public func execute(_ sql: String) throws -> Int { try execute(sql, []) }

    /// Runs a query and maps each row.
    public func query<Row>(_ sql: String, row: (any DatabaseRow) throws -> Row) throws -> [Row] {
        try query(sql, [], row: row)
    }

    /// Runs a query and maps its first row; nil when there is none.
    public func queryOne<Row>(
        _ sql: String, _ values: [DatabaseValue] = [], row: (any DatabaseRow) throws -> Row
    ) throws -> Row? {
        try query(sql, values, row: row).first
    }

    /// A read-write transaction (see ``transaction(readOnly:_:)``).
    @discardableResult
    public func transaction<Result>(_ body: () throws -> Result) throws -> Result {
        try transaction(readOnly: false, body)
    }
}

/// One result row: columns by 0-based index. NULL reads as 0, "" or [] from the non-optional accessors.
public protocol DatabaseRow {
    /// Whether the column is NULL.
    func isNull(_ index: Int) -> Bool
    /// The column as an integer.
    func int64(_ index: Int) -> Int64
    /// The column as a double.
    func double(_ index: Int) -> Double
    /// The column as text.
    func string(_ index: Int) -> String
    /// The column's bytes.
    func blob(_ index: Int) -> [UInt8]
}

extension DatabaseRow {
    /// The column as an `Int`.
    public func int(_ index: Int) -> Int { Int(int64(index)) }
    /// The column as an optional integer (nil for NULL).
    public func optionalInt64(_ index: Int) -> Int64? { isNull(index) ? nil : int64(index) }
    /// The column as an optional double (nil for NULL).
    public func optionalDouble(_ index: Int) -> Double? { isNull(index) ? nil : double(index) }
    /// The column as optional text (nil for NULL).
    public func optionalString(_ index: Int) -> String? { isNull(index) ? nil : string(index) }
}

/// The SQL that differs between the backends, in the few places the store needs it.
public enum SQLDialect: String, Sendable {
    case sqlite
    case postgresql

    /// Appended to the `SELECT` of a claim: PostgreSQL locks the chosen row and skips rows another host is
    /// claiming at this moment; SQLite has one writer at a time (`BEGIN IMMEDIATE`) and needs nothing.
    public var skipLocked: String {
        switch self {
        case .sqlite: ""
        case .postgresql: "FOR UPDATE SKIP LOCKED"
        }
    }
}

extension StoreDatabase {
    /// Makes writers that take the same `key` wait for each other until the end of the transaction: PostgreSQL's
    /// `pg_advisory_xact_lock` (it works through PgBouncer in transaction mode, unlike a session lock). SQLite
    /// writers are one at a time already.
    public func lock(_ key: String) throws {
        guard dialect == .postgresql else { return }
        try execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [.text(key)])
    }

    /// Tells listening hosts that `channel` has news, when the transaction commits (PostgreSQL `NOTIFY`); nothing
    /// for SQLite, whose one host wakes its own workers.
    public func notify(_ channel: StoreChannel) throws {
        guard dialect == .postgresql else { return }
        try execute("SELECT pg_notify($1, '')", [.text(channel.rawValue)])
    }
}

/// What a `NOTIFY` is about; idle hosts `LISTEN` on these to look at once instead of at their next poll.
public enum StoreChannel: String, Sendable, CaseIterable {
    /// A job became due (settled, released, put back for a retry).
    case jobs = "csmil_jobs"
    /// An outbox row became due (queued, replayed).
    case outbox = "csmil_outbox"
}
