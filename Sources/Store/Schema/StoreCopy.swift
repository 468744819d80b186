/// Copies a store's state — jobs, the paths they were seen at, attempts, the outbox with its dead letters, disabled
/// endpoints — into another, empty store, in one transaction on the target: `csmil store migrate`, for a lab that
/// outgrows one host and moves its SQLite state to PostgreSQL (or back). Ids are kept, so event ids, job ids and the
/// outbox's order are the same afterwards; the target's id sequences continue after them. Hosts are not copied:
/// they describe running processes, which register themselves.
public enum StoreCopy {
    /// How many rows of each table were copied.
    public struct Counts: Sendable, Equatable, CustomStringConvertible {
        public var tables: [(String, Int)]

        public static func == (lhs: Counts, rhs: Counts) -> Bool {
            lhs.tables.map(\.0) == rhs.tables.map(\.0) && lhs.tables.map(\.1) == rhs.tables.map(\.1)
        }

        public var description: String {
            tables.map { "\($0.1) \($0.0)" }.joined(separator: ", ")
        }
    }

    /// Copies everything from `source` into `target`. Both get the current schema first (a source of an earlier
    /// version is migrated; a newer one is refused).
    ///
    /// - Throws: ``JobStoreError`` `store.target_not_empty` when the target already holds jobs or events; database
    ///   errors of either side.
    @discardableResult
    public static func copy(from source: any StoreDatabase, to target: any StoreDatabase) throws -> Counts {
        try StoreSchema.install(in: source)
        try StoreSchema.install(in: target)
        return try target.transaction { () throws -> Counts in
            for table in StoreSchema.tables {
                let rows = try target.queryOne("SELECT COUNT(*) FROM \(table.name)") { $0.int(0) } ?? 0
                guard rows == 0 else {
                    throw JobStoreError(
                        code: .targetNotEmpty, location: target.location,
                        message: "the target already holds \(rows) row(s) in \(table.name); nothing was copied",
                        fix: "copy into a new, empty database (createdb), or drop its csmil tables first")
                }
            }
            var counts: [(String, Int)] = []
            for table in StoreSchema.tables {
                let names = table.columns.map(\.0)
                let rows = try source.query(
                    "SELECT \(names.joined(separator: ", ")) FROM \(table.name) ORDER BY \(table.key)", []
                ) { row in values(row, table.columns) }
                let placeholders = (1...names.count).map { "$\($0)" }.joined(separator: ", ")
                let insert =
                    "INSERT INTO \(table.name) (\(names.joined(separator: ", "))) VALUES (\(placeholders))"
                for row in rows { try target.execute(insert, row) }
                counts.append((table.name, rows.count))
            }
            if target.dialect == .postgresql {
                // Identity columns continue after the copied ids.
                for (table, column) in [("jobs", "id"), ("job_attempts", "id"), ("outbox", "seq")] {
                    try target.execute(
                        """
                        SELECT setval(pg_get_serial_sequence('\(table)', '\(column)'),
                                      COALESCE((SELECT MAX(\(column)) FROM \(table)), 0) + 1, false)
                        """)
                }
            }
            return Counts(tables: counts)
        }
    }

    /// Every row of every copied table, as typed values in key order: what a round trip must keep.
    public static func dump(_ database: any StoreDatabase) throws -> [String: [[DatabaseValue]]] {
        var tables: [String: [[DatabaseValue]]] = [:]
        for table in StoreSchema.tables {
            tables[table.name] = try database.query(
                "SELECT \(table.columns.map(\.0).joined(separator: ", ")) FROM \(table.name) ORDER BY \(table.key)",
                []
            ) { values($0, table.columns) }
        }
        return tables
    }

    private static func values(_ row: any DatabaseRow, _ columns: [(String, StoreSchema.ColumnType)]) -> [DatabaseValue]
    {
        columns.enumerated().map { index, column in
            if row.isNull(index) { return .null }
            switch column.1 {
            case .integer: return .integer(row.int64(index))
            case .real: return .real(row.double(index))
            case .text: return .text(row.string(index))
            case .blob: return .blob(row.blob(index))
            }
        }
    }
}
