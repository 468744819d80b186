import CSQLite
import Foundation

/// One connection to a SQLite database file (`sqlite3_open_v2`), owned here: `deinit` closes it.
///
/// Opened for durability: write-ahead log (`journal_mode=WAL`), `synchronous=FULL` (a committed transaction
/// survives a power cut), a busy timeout so that another connection's short write waits instead of failing, and
/// foreign keys on. A connection is used from one thread at a time; each thread that needs the file (the daemon's
/// job store, the outbox delivery worker, `csmil outbox retry`) opens its own. Every failure is a ``SQLiteError``
/// naming the file.
///
/// It is the store's embedded backend (``StoreDatabase``): SQL may number its parameters `$1 … $n` as PostgreSQL
/// does; they are read as SQLite's `?1 … ?n`.
public final class SQLiteDatabase: StoreDatabase {
    /// The database file.
    public let path: String
    let handle: OpaquePointer

    /// Opens (creating when missing) the database at `path`.
    ///
    /// - Parameter busyTimeout: how long a statement waits for another connection's lock, in seconds.
    public init(path: String, busyTimeout: Double = 10) throws(SQLiteError) {
        self.path = path
        var connection: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        let result = sqlite3_open_v2(path, &connection, flags, nil)
        guard result == SQLITE_OK, let connection else {
            let error = SQLiteError.sqlite(result, "open the database", path: path, handle: connection)
            sqlite3_close_v2(connection)
            throw error
        }
        handle = connection
        sqlite3_extended_result_codes(handle, 1)
        sqlite3_busy_timeout(handle, Int32(max(0, min(busyTimeout * 1000, Double(Int32.max)))))
        let mode = try pragma("journal_mode=WAL")
        guard mode?.lowercased() == "wal" else {
            throw SQLiteError(
                code: .cannotOpen, path: path,
                message: "could not switch to write-ahead logging (journal_mode is \(mode ?? "unknown"))",
                fix: "put [state] directory on a local file system (not NFS or SMB)")
        }
        try execute("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON")
    }

    deinit { sqlite3_close_v2(handle) }

    public var dialect: SQLDialect { .sqlite }

    public var location: String { path }

    /// The first column of `PRAGMA name` as text.
    private func pragma(_ name: String) throws(SQLiteError) -> String? {
        let statement = try prepare("PRAGMA \(name)")
        guard try statement.step() else { return nil }
        return statement.string(0)
    }

    /// Runs one or more SQL statements without parameters or results (`sqlite3_exec`).
    public func execute(_ sql: String) throws(SQLiteError) {
        var message: UnsafeMutablePointer<CChar>?
        let result = sqlite3_exec(handle, sql, nil, nil, &message)
        defer { sqlite3_free(message) }
        guard result == SQLITE_OK else {
            throw SQLiteError.sqlite(
                result, "run \"\(SQLiteStatement.abbreviated(sql))\"", path: path, handle: handle)
        }
    }

    /// Runs one statement with parameters, ignoring any rows; returns the number of rows it changed.
    @discardableResult
    public func execute(_ sql: String, _ values: [DatabaseValue]) throws(SQLiteError) -> Int {
        let statement = try prepare(sql)
        try statement.bind(values)
        while try statement.step() {}
        return changes
    }

    /// Prepares a statement (`sqlite3_prepare_v2`).
    public func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        try SQLiteStatement(database: self, sql: sql)
    }

    /// Runs a query and maps each row.
    public func query<Row>(
        _ sql: String, _ values: [DatabaseValue], row: (any DatabaseRow) throws -> Row
    ) throws -> [Row] {
        let statement = try prepare(sql)
        try statement.bind(values)
        var rows: [Row] = []
        while try statement.step() { rows.append(try row(statement)) }
        return rows
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE (`sqlite3_changes`).
    public var changes: Int { Int(sqlite3_changes(handle)) }

    /// The rowid of the last inserted row (`sqlite3_last_insert_rowid`).
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Whether a transaction is open on this connection (`sqlite3_get_autocommit` is 0).
    public var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Runs `body` in a transaction: `BEGIN IMMEDIATE` (the write lock is taken at once, so the transaction cannot
    /// fail half-way for another writer), or `BEGIN DEFERRED` when `readOnly` (a snapshot without the write lock);
    /// `COMMIT` when it returns, `ROLLBACK` when it throws. Inside an open transaction it becomes a savepoint, so
    /// callers compose: the outer transaction decides what is committed.
    public func transaction<Result>(readOnly: Bool, _ body: () throws -> Result) throws -> Result {
        if isInTransaction {
            let name = "csmil_\(UInt32.random(in: 0...UInt32.max))"
            try execute("SAVEPOINT \(name)")
            do {
                let result = try body()
                try execute("RELEASE \(name)")
                return result
            } catch {
                try? execute("ROLLBACK TO \(name); RELEASE \(name)")
                throw error
            }
        }
        try execute(readOnly ? "BEGIN DEFERRED" : "BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            if isInTransaction { try? execute("ROLLBACK") }
            throw error
        }
    }

    /// Runs `PRAGMA integrity_check`; throws a ``SQLiteError/Code/corrupt`` error listing what it found.
    public func checkIntegrity() throws(SQLiteError) {
        let statement = try prepare("PRAGMA integrity_check")
        var findings: [String] = []
        while try statement.step() { findings.append(statement.string(0)) }
        guard findings != ["ok"] else { return }
        throw SQLiteError(
            code: .corrupt, path: path,
            message: "the integrity check found: " + findings.prefix(5).joined(separator: "; "),
            fix: "stop csmil, move the file aside (keep it for inspection) and restore it from a backup")
    }

    /// The schema version the file records (`PRAGMA user_version`).
    public func userVersion() throws(SQLiteError) -> Int {
        Int(try pragma("user_version") ?? "0") ?? 0
    }

    /// A schema change: the SQL (or code) that takes the database from one version to the next.
    public typealias Migration = @Sendable (SQLiteDatabase) throws -> Void

    /// Brings the whole file to version `migrations.count` with `PRAGMA user_version`: migration `i` takes it from
    /// version `i` to `i + 1`, each in its own transaction with the version bump. A file newer than this build
    /// is refused.
    public func migrate(_ migrations: [Migration]) throws {
        let current = try userVersion()
        guard current <= migrations.count else {
            throw SQLiteError(
                code: .tooNew, path: path,
                message: "the database is at schema version \(current); this csmil knows up to \(migrations.count)",
                fix: "run the csmil version that wrote it, or move the file aside to start an empty store")
        }
        for version in current..<migrations.count {
            try transaction {
                // Another connection (csmil status while the daemon starts) may have taken this step meanwhile.
                guard try userVersion() == version else { return }
                try migrations[version](self)
                try execute("PRAGMA user_version = \(version + 1)")
            }
        }
    }
}
