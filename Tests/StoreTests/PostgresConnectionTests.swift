import Dispatch
import Errors
import Foundation
import StoreTesting
import Synchronization
import Testing

@testable import Store

/// The libpq wrapper against a real server: values round-trip exactly, errors name the URL (never the password)
/// and say what to do, a restarted server is reconnected to, the schema is migrated once by hosts starting
/// together, and the store works through PgBouncer in transaction mode.
@Suite("PostgreSQL connection")
struct PostgresConnectionTests {
    @Test("integers, doubles, text and bytes come back exactly as they went in")
    func values() throws {
        let server = try PostgresTestServer.shared
        let database = try server.connect(database: try server.makeDatabase())
        try database.execute("CREATE TABLE v (n serial, i bigint, d double precision, t text, b bytea)")
        let doubles = [0.1, 1e-300, -2.5e300, 1_767_225_600.123456, 0, -0.0, .greatestFiniteMagnitude]
        let texts = ["", "Crohn's disease", "é ü 中文 🙂", "a'b\"c\\d$1?", String(repeating: "x", count: 5000)]
        let blobs: [[UInt8]] = [[], [0], [0, 255, 1, 128], Array(0...255)]
        for (index, double) in doubles.enumerated() {
            try database.execute(
                "INSERT INTO v (i, d, t, b) VALUES ($1, $2, $3, $4)",
                [
                    .integer(index == 0 ? Int64.min : Int64.max - Int64(index)), .real(double),
                    .text(texts[index % texts.count]), .blob(blobs[index % blobs.count]),
                ])
        }
        try database.execute("INSERT INTO v (i, d, t, b) VALUES ($1, $2, $3, $4)", [.null, .null, .null, .null])
        let rows = try database.query("SELECT i, d, t, b FROM v ORDER BY n", []) {
            [
                $0.optionalInt64(0).map { "\($0)" }, $0.optionalDouble(1).map { "\($0.bitPattern)" },
                $0.optionalString(2), $0.isNull(3) ? nil : "\($0.blob(3))",
            ]
        }
        let expected: [[String?]] =
            doubles.enumerated().map { index, double in
                [
                    "\(index == 0 ? Int64.min : Int64.max - Int64(index))", "\(double.bitPattern)",
                    texts[index % texts.count], "\(blobs[index % blobs.count])",
                ]
            } + [[nil, nil, nil, nil]]
        #expect(rows == expected)
    }

    @Test("errors name the URL without the password and say what to do")
    func errors() throws {
        let server = try PostgresTestServer.shared
        let name = try server.makeDatabase()
        // A wrong password.
        let wrong = try #require(throws: PostgresError.self) {
            try PostgresConnection(url: try server.url(database: name), password: "not-it")
        }
        #expect(wrong.code == .authentication, "\(wrong)")
        #expect(ErrorCodes.needsConfigurationChange(wrong), "csmil watch exits 78: a restart cannot help")
        #expect(wrong.description.contains("postgresql://csmil@127.0.0.1:\(server.port)/\(name)"))
        #expect(!wrong.description.contains("not-it"))
        // Nobody listening.
        let closed = try PostgresTestServer.freePort()
        let unreachable = try #require(throws: PostgresError.self) {
            try PostgresConnection(url: try PostgresURL("postgresql://csmil@127.0.0.1:\(closed)/x"), password: "secret")
        }
        #expect(unreachable.code == .unreachable && unreachable.isTransient)
        #expect(!ErrorCodes.needsConfigurationChange(unreachable), "a server away is retried")
        #expect(unreachable.description.contains("127.0.0.1:\(closed)") && unreachable.fix.contains("pg_isready"))
        // A password file that is not there.
        let missing = try #require(throws: PostgresError.self) {
            try StoreLocation.postgresql(url: try server.url(database: name), passwordFile: "/nonexistent/pw").open()
        }
        #expect(missing.code == .passwordFile && missing.message.contains("/nonexistent/pw"))
        #expect(ErrorCodes.needsConfigurationChange(missing))
        // A statement error names the statement.
        let database = try server.connect(database: name)
        let misuse = try #require(throws: PostgresError.self) { try database.execute("SELECT * FROM missing_table") }
        #expect(misuse.code == .misuse && misuse.sqlState == "42P01" && misuse.message.contains("missing_table"))
        // URLs: a password in the URL is refused and never shown.
        #expect(throws: PostgresURL.Problem.self) { try PostgresURL("postgresql://csmil:hunter2@db/csmil") }
        #expect(
            PostgresURL.redact("postgresql://csmil:hunter2@db:5432/csmil?sslmode=verify-full")
                == "postgresql://csmil:***@db:5432/csmil?sslmode=verify-full")
        #expect(throws: PostgresURL.Problem.self) { try PostgresURL("mysql://db/x") }
        #expect(throws: PostgresURL.Problem.self) { try PostgresURL("postgresql://db/x?sslmode=sometimes") }
    }

    @Test("a restarted server: a transaction cut in half leaves nothing, the next statement reconnects")
    func restart() throws {
        let server = try PostgresTestServer()
        let location = try server.makeStoreLocation()
        let store = try JobStore.open(location)
        _ = try store.recordSettled(path: "/in/a.svs", fingerprint: "sha256:a", size: 1, modified: 1, now: 1)
        let cut = try #require(throws: PostgresError.self) {
            try store.database.transaction {
                _ = try store.recordSettled(path: "/in/b.svs", fingerprint: "sha256:b", size: 1, modified: 1, now: 2)
                try server.stop()
                _ = try store.recordSettled(path: "/in/c.svs", fingerprint: "sha256:c", size: 1, modified: 1, now: 3)
            }
        }
        #expect(cut.code == .unreachable, "\(cut)")
        let down = try #require(throws: PostgresError.self) { try store.counts() }
        #expect(down.code == .unreachable)
        try server.start()
        #expect(try store.counts().settled == 1, "b was never committed; the connection came back by itself")
    }

    @Test("hosts starting together migrate the schema once")
    func concurrentMigration() throws {
        let server = try PostgresTestServer.shared
        let location = try server.makeStoreLocation()
        let errors = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            do { _ = try JobStore.open(location) } catch { errors.withLock { $0.append("\(error)") } }
        }
        #expect(errors.withLock { $0 }.isEmpty)
        let database = try location.open()
        #expect(try StoreSchema.version(of: database) == StoreSchema.postgresqlVersion)
        try database.execute("UPDATE csmil_schema SET version = 99")
        let newer = try #require(throws: PostgresError.self) { try JobStore.open(location) }
        #expect(newer.code == .tooNew && newer.message.contains("99"))
    }

    @Test("one list of schema steps: both backends end at the same tables and columns, all of them copied")
    func sameSchemaOnBothBackends() throws {
        let sqlite = try SQLiteDatabase(path: try StoreTestSupport.temporaryFolder() + "/csmil.sqlite3")
        try StoreSchema.install(in: sqlite)
        let postgres = try PostgresTestServer.shared.makeStoreLocation().open()
        try StoreSchema.install(in: postgres)
        #expect(try StoreSchema.version(of: sqlite) == StoreSchema.steps.count)
        #expect(try StoreSchema.version(of: postgres) == StoreSchema.steps.count)

        func columns(_ database: any StoreDatabase) throws -> [String: Set<String>] {
            let tables =
                database.dialect == .sqlite
                ? try database.query(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'", []
                ) { $0.string(0) }
                : try database.query(
                    """
                    SELECT table_name FROM information_schema.tables
                    WHERE table_schema = current_schema() AND table_name <> 'csmil_schema'
                    """, []
                ) { $0.string(0) }
            var result: [String: Set<String>] = [:]
            for table in tables {
                result[table] = Set(
                    database.dialect == .sqlite
                        ? try database.query("SELECT name FROM pragma_table_info('\(table)')", []) { $0.string(0) }
                        : try database.query(
                            """
                            SELECT column_name FROM information_schema.columns
                            WHERE table_schema = current_schema() AND table_name = $1
                            """, [.text(table)]
                        ) { $0.string(0) })
            }
            return result
        }
        let onSQLite = try columns(sqlite)
        #expect(onSQLite == (try columns(postgres)))
        // What `csmil store migrate` copies is every table but hosts, with every column.
        #expect(Set(onSQLite.keys) == Set(StoreSchema.tables.map(\.name) + ["hosts"]))
        for table in StoreSchema.tables {
            #expect(Set(table.columns.map(\.0)) == onSQLite[table.name], "\(table.name)")
        }
    }

    @Test("through PgBouncer in transaction mode: settle, claim with SKIP LOCKED, complete, deliver, status")
    func throughPgBouncer() throws {
        let server = try PostgresTestServer.shared
        let bouncer = try PgBouncerTestServer(server: server)
        let location = try bouncer.makeStoreLocation()
        let store = try JobStore.open(location)
        for index in 0..<12 {
            _ = try store.recordSettled(
                path: "/in/\(index).svs", fingerprint: "sha256:\(index)", size: 1, modified: 1, now: 1)
        }
        let claimed = Mutex<[Int64]>([])
        let errors = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 3) { host in
            do {
                let connection = try JobStore.open(location)
                while let job = try connection.claimNext(now: 2, leaseSeconds: 60, holder: "h\(host)") {
                    try connection.complete(
                        jobID: job.id, eventID: "evt_\(job.id)", reportDirectory: "/r",
                        result: JobResult(status: "scored"),
                        outbox: [
                            OutboxMessage(
                                eventID: "evt_\(job.id)", slideKey: job.fingerprint ?? "", eventType: "slide.scored",
                                destination: OutboxMessage.webhook, contentType: "application/json", body: [1])
                        ], now: 3)
                    claimed.withLock { $0.append(job.id) }
                }
                let outbox = Outbox(database: connection.database)
                while let row = try outbox.claimNextDue(
                    now: 4, destinations: [OutboxMessage.webhook: "https://lis/in"], holder: "h\(host)",
                    leaseSeconds: 60)
                {
                    try outbox.record(OutboxAttempt(.delivered, status: 200), for: row, now: 5)
                }
            } catch {
                errors.withLock { $0.append("\(error)") }
            }
        }
        #expect(errors.withLock { $0 }.isEmpty, "\(errors.withLock { $0 })")
        let all = claimed.withLock { $0 }
        #expect(all.count == 12 && Set(all).count == 12)
        let summary = try store.summary(now: 6)
        #expect(summary.counts.delivered == 12 && summary.outbox.delivered == 12 && summary.outbox.backlog == 0)
    }
}
