/// The store's tables, one migration list per backend: ``sqlite`` (the embedded default, `PRAGMA user_version`) and
/// ``postgresql`` (a shared server, the version in `csmil_schema`). Both lists end at the same tables and columns,
/// so the store's SQL runs unchanged on either; ``tables`` lists them for copying from one backend to the other.
public enum StoreSchema {
    /// Brings `database` to the current schema (idempotent). A database written by a newer csmil is refused
    /// (`sqlite.schema_too_new`, `postgres.schema_too_new`).
    public static func install(in database: any StoreDatabase) throws {
        switch database {
        case let database as SQLiteDatabase:
            try database.migrate(sqlite)
        case let database as PostgresConnection:
            try migrate(database)
        default:
            preconditionFailure("no schema for \(type(of: database))")
        }
    }

    /// The current schema version of each backend.
    public static var sqliteVersion: Int { sqlite.count }
    public static var postgresqlVersion: Int { postgresql.count }

    /// The version `database` is at now (0 for an empty one).
    public static func version(of database: any StoreDatabase) throws -> Int {
        switch database.dialect {
        case .sqlite:
            return try database.queryOne("PRAGMA user_version") { $0.int(0) } ?? 0
        case .postgresql:
            let exists = try database.queryOne("SELECT to_regclass('csmil_schema') IS NOT NULL") { $0.int64(0) == 1 }
            guard exists == true else { return 0 }
            return try database.queryOne("SELECT version FROM csmil_schema") { $0.int(0) } ?? 0
        }
    }

    /// The version this build writes for `dialect`.
    public static func currentVersion(_ dialect: SQLDialect) -> Int {
        switch dialect {
        case .sqlite: sqliteVersion
        case .postgresql: postgresqlVersion
        }
    }

    /// The kind of value a column holds, for copying rows between backends.
    public enum ColumnType: Sendable { case integer, real, text, blob }

    /// The tables that hold a lab's state (hosts are not copied: they describe running processes), parents first,
    /// with their columns.
    public static let tables: [(name: String, key: String, columns: [(String, ColumnType)])] = [
        (
            "jobs", "id",
            [
                ("id", .integer), ("path", .text), ("fingerprint", .text), ("size", .integer), ("modified", .real),
                ("state", .text), ("attempts", .integer), ("next_attempt_at", .real), ("lease_until", .real),
                ("lease_holder", .text), ("lease_token", .text), ("event_id", .text), ("report_directory", .text),
                ("result_status", .text), ("probability", .real), ("label", .text), ("result_error_code", .text),
                ("result_error_message", .text), ("last_error_code", .text), ("last_error_message", .text),
                ("created_at", .real), ("updated_at", .real), ("started_at", .real), ("finished_at", .real),
                ("delivered_at", .real),
            ]
        ),
        (
            "job_paths", "job_id, path",
            [
                ("job_id", .integer), ("path", .text), ("size", .integer), ("modified", .real),
                ("first_seen_at", .real), ("last_seen_at", .real),
            ]
        ),
        (
            "job_attempts", "id",
            [
                ("id", .integer), ("job_id", .integer), ("attempt", .integer), ("host", .text), ("lease_token", .text),
                ("started_at", .real), ("ended_at", .real), ("outcome", .text),
            ]
        ),
        (
            "outbox", "seq",
            [
                ("seq", .integer), ("event_id", .text), ("destination", .text), ("slide_key", .text),
                ("event_type", .text), ("target_url", .text), ("content_type", .text), ("body", .blob),
                ("created_at", .real), ("window_start", .real), ("attempts", .integer), ("next_attempt_at", .real),
                ("last_attempt_at", .real), ("last_status", .integer), ("last_error", .text), ("state", .text),
                ("delivered_at", .real), ("lease_holder", .text), ("lease_until", .real),
            ]
        ),
        (
            "outbox_endpoints", "url",
            [("url", .text), ("disabled_at", .real), ("status", .integer), ("reason", .text)]
        ),
    ]
}
