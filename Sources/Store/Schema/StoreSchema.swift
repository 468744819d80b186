/// The store's tables: one list of schema steps for both backends (``steps``), so a version number means the same
/// tables on SQLite (the embedded default, `PRAGMA user_version`) and on PostgreSQL (a shared server, the version
/// in `csmil_schema`). Each step has its SQL for each backend (`StoreSchema+SQLite.swift`,
/// `StoreSchema+PostgreSQL.swift`); both end at the same tables and columns, so the store's SQL runs unchanged on
/// either, and ``tables`` lists them for copying from one backend to the other. Never edit a step that has
/// shipped: add one, to both backends.
public enum StoreSchema {
    /// One schema step: what takes a database from version `i` to `i + 1` on each backend.
    struct Step: Sendable {
        /// Run on an SQLite file in the step's transaction.
        var sqlite: SQLiteDatabase.Migration
        /// Run on a PostgreSQL database in the migrating transaction; empty when the backend has nothing to do.
        var postgresql: String
    }

    /// The one list of steps.
    static let steps: [Step] = [
        // 1: jobs and the paths each slide was seen at.
        Step(sqlite: sqliteJobs, postgresql: postgresqlJobs),
        // 2: the outbox joins the one list (SQLite files of earlier builds kept its own version).
        Step(sqlite: sqliteOutbox, postgresql: postgresqlOutbox),
        // 3: outbox rows name a destination (`webhook`, `hl7`) instead of a URL.
        Step(sqlite: sqliteDestinations, postgresql: postgresqlDestinations),
        // 4: quality control (issue 16): the report's QC status and reasons on the job.
        Step(sqlite: sqliteQuality, postgresql: postgresqlQuality),
        // 5: several hosts: leases with holder and token, attempts, hosts, outbox rows leased by their sender.
        Step(sqlite: sqliteHosts, postgresql: postgresqlHosts),
    ]

    /// The SQLite side of ``steps``, in order (older files are migrated from any prefix of it).
    static var sqlite: [SQLiteDatabase.Migration] { steps.map(\.sqlite) }

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

    /// The current schema version (the same on both backends).
    public static var currentVersion: Int { steps.count }
    public static var sqliteVersion: Int { steps.count }
    public static var postgresqlVersion: Int { steps.count }

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
                ("delivered_at", .real), ("qc_status", .text), ("qc_reasons", .text),
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
                ("event_type", .text), ("content_type", .text), ("body", .blob),
                ("created_at", .real), ("window_start", .real), ("attempts", .integer), ("next_attempt_at", .real),
                ("last_attempt_at", .real), ("last_status", .integer), ("last_error", .text), ("state", .text),
                ("delivered_at", .real), ("lease_holder", .text), ("lease_until", .real),
            ]
        ),
        (
            "outbox_endpoints", "destination, url",
            [
                ("destination", .text), ("url", .text), ("disabled_at", .real), ("status", .integer),
                ("reason", .text),
            ]
        ),
    ]
}
