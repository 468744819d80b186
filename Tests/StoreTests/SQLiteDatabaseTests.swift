import Foundation
import Testing

@testable import Store

@Suite("SQLiteDatabase")
struct SQLiteDatabaseTests {
    func open() throws -> SQLiteDatabase {
        try SQLiteDatabase(path: StoreTestSupport.temporaryFolder() + "/test.sqlite3")
    }

    @Test("$N parameters (the store's shared SQL) are SQLite's ?N, also out of order and repeated; quoted $ stays")
    func numberedParameters() throws {
        let database = try open()
        #expect(
            try database.queryOne("SELECT $2 || '-' || $1 || '-' || $2 || '-$1'", [.text("a"), .text("b")]) {
                $0.string(0)
            } == "b-a-b-$1")
        #expect(SQLiteStatement.numberedParameters("SELECT \"$1\", $10, ?3") == "SELECT \"$1\", ?10, ?3")
    }

    @Test("a new file is opened in WAL mode with synchronous=FULL and passes the integrity check")
    func durabilitySettings() throws {
        let database = try open()
        #expect(try database.queryOne("PRAGMA journal_mode") { $0.string(0) } == "wal")
        #expect(try database.queryOne("PRAGMA synchronous") { $0.int(0) } == 2)
        #expect(try database.queryOne("PRAGMA busy_timeout") { $0.int(0) } == 10_000)
        try database.checkIntegrity()
    }

    @Test("every storage class round-trips through typed binds and reads, including empty blobs and NULL")
    func typedRoundTrip() throws {
        let database = try open()
        try database.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)")
        let bytes: [UInt8] = [0, 1, 2, 255, 0]
        try database.execute(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
            [.integer(Int64.min), .real(0.1), .text("naïve ✓"), .blob(bytes), nil])
        try database.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [.int(7), 2.5, "", .blob([]), .data(Data([9]))])
        let rows = try database.query("SELECT i, r, s, b, n FROM t ORDER BY rowid") { row -> [DatabaseValue] in
            let statement = try #require(row as? SQLiteStatement)
            return [statement.value(0), statement.value(1), statement.value(2), statement.value(3), statement.value(4)]
        }
        #expect(rows[0] == [.integer(Int64.min), .real(0.1), .text("naïve ✓"), .blob(bytes), .null])
        #expect(rows[1] == [.integer(7), .real(2.5), .text(""), .blob([]), .blob([9])])
        let firstN = try database.queryOne("SELECT n FROM t ORDER BY rowid") { $0.optionalString(0) }
        #expect(firstN == .some(nil))
    }

    @Test("a transaction commits when its body returns and rolls back when it throws")
    func transactions() throws {
        struct Abort: Error {}
        let database = try open()
        try database.execute("CREATE TABLE t (x INTEGER)")
        try database.transaction { try database.execute("INSERT INTO t VALUES (1)") }
        #expect(throws: Abort.self) {
            try database.transaction {
                try database.execute("INSERT INTO t VALUES (2)")
                throw Abort()
            }
        }
        #expect(!database.isInTransaction)
        // Nested: the inner part rolls back alone, the outer one commits.
        try database.transaction {
            try database.execute("INSERT INTO t VALUES (3)")
            try? database.transaction {
                try database.execute("INSERT INTO t VALUES (4)")
                throw Abort()
            }
        }
        #expect(try database.query("SELECT x FROM t ORDER BY x") { $0.int(0) } == [1, 3])
    }

    @Test("a second connection sees committed rows and waits for the writer instead of failing")
    func twoConnections() throws {
        let path = try StoreTestSupport.temporaryFolder() + "/shared.sqlite3"
        let first = try SQLiteDatabase(path: path)
        let second = try SQLiteDatabase(path: path)
        try first.execute("CREATE TABLE t (x INTEGER)")
        try first.transaction { try first.execute("INSERT INTO t VALUES (1)") }
        #expect(try second.queryOne("SELECT COUNT(*) FROM t") { $0.int(0) } == 1)
    }

    @Test("user_version migrations run once, in order, and a newer file is refused")
    func userVersionMigrations() throws {
        let database = try open()
        let steps: [SQLiteDatabase.Migration] = [
            { try $0.execute("CREATE TABLE a (x)") }, { try $0.execute("CREATE TABLE b (x)") },
        ]
        try database.migrate(steps)
        try database.migrate(steps)
        #expect(try database.userVersion() == 2)
        #expect(throws: SQLiteError.self) { try database.migrate(Array(steps.prefix(1))) }
    }

    @Test("errors name the database file and SQLite's message")
    func errorsNameTheFile() throws {
        let database = try open()
        do {
            try database.execute("SELECT * FROM missing_table", [])
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .misuse)
            #expect(error.path == database.path)
            #expect(error.description.contains("no such table: missing_table"))
        }
        do {
            _ = try SQLiteDatabase(path: "/nonexistent-folder-\(UUID().uuidString)/x.sqlite3")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .cannotOpen)
            #expect(error.description.contains("/nonexistent-folder-"))
        }
        try database.execute("CREATE TABLE u (x TEXT UNIQUE)")
        try database.execute("INSERT INTO u VALUES ('a')")
        #expect(throws: SQLiteError.self) { try database.execute("INSERT INTO u VALUES ('a')", []) }
    }

    @Test("a file that is not a database is reported as corrupt")
    func notADatabase() throws {
        let path = try StoreTestSupport.temporaryFolder() + "/garbage.sqlite3"
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: path))
        do {
            _ = try SQLiteDatabase(path: path)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .corrupt)
        }
    }
}
