import Foundation
import Testing

@testable import Store

/// State folders written by earlier csmil builds open and migrate on start, with their data.
@Suite("Store schema (SQLite)")
struct StoreSchemaTests {
    /// The outbox tables as builds before the Store target made them, under their own component version.
    static let outboxVersion1 = """
        CREATE TABLE csmil_schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            slide_key TEXT NOT NULL,
            event_type TEXT NOT NULL,
            target_url TEXT NOT NULL,
            content_type TEXT NOT NULL,
            body BLOB NOT NULL,
            created_at REAL NOT NULL,
            window_start REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            last_attempt_at REAL,
            last_status INTEGER,
            last_error TEXT,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead', 'disabled')),
            delivered_at REAL
        );
        CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
        CREATE INDEX outbox_slide ON outbox (slide_key, state, seq);
        CREATE TABLE outbox_endpoints (url TEXT PRIMARY KEY, disabled_at REAL NOT NULL, status INTEGER, reason TEXT);
        INSERT INTO csmil_schema_versions VALUES ('outbox', 1);
        """

    static func outboxRow(_ eventID: String, state: String, deliveredAt: Double?) -> String {
        """
        INSERT INTO outbox (event_id, slide_key, event_type, target_url, content_type, body, created_at, window_start,
                            next_attempt_at, state, delivered_at)
        VALUES ('\(eventID)', 'sha256:\(eventID)', 'slide.scored', 'https://lis/in', 'application/json', X'7B7D',
                10, 10, 10, '\(state)', \(deliveredAt.map { "\($0)" } ?? "NULL"));
        """
    }

    @Test("a state folder of the previous build (jobs v1 + outbox component v1) migrates with its jobs and events")
    func previousBuild() throws {
        let path = try StoreTestSupport.temporaryFolder() + "/csmil.sqlite3"
        do {
            let old = try SQLiteDatabase(path: path)
            try old.migrate(Array(StoreSchema.sqlite.prefix(1)))
            try old.execute(Self.outboxVersion1)
            for (index, (event, outboxState)) in [("evt_a", "delivered"), ("evt_b", "pending")].enumerated() {
                try old.execute(
                    """
                    INSERT INTO jobs (path, fingerprint, size, modified, state, event_id, result_status, created_at,
                                      updated_at, finished_at)
                    VALUES ('/in/\(event).svs', 'sha256:\(event)', 1, 1, 'reported', '\(event)', 'scored', 1, 1,
                            \(index + 2))
                    """)
                try old.execute(
                    Self.outboxRow(event, state: outboxState, deliveredAt: outboxState == "delivered" ? 42 : nil))
            }
            #expect(try old.userVersion() == 1)
        }
        let store = try JobStore(path: path)
        #expect(try StoreSchema.version(of: store.database) == StoreSchema.sqliteVersion)
        #expect(
            try store.database.queryOne(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'csmil_schema_versions'"
            ) { $0.int(0) } == 0, "one version mechanism left")
        let jobs = try store.database.query("SELECT event_id, state, delivered_at FROM jobs ORDER BY id") {
            "\($0.string(0)) \($0.string(1)) \($0.optionalDouble(2).map { "\($0)" } ?? "-")"
        }
        #expect(
            jobs == ["evt_a delivered 42.0", "evt_b reported -"], "the delivery recorded before the upgrade counts")
        let outbox = Outbox(database: store.database)
        #expect(try outbox.rows().map(\.message.eventID) == ["evt_a", "evt_b"])
        #expect(
            try outbox.nextDue(now: 100, destinations: [OutboxMessage.webhook: "https://lis.example.org/in"])?.message
                .eventID == "evt_b", "the pending event is still sent")
        // Opening again changes nothing.
        _ = try JobStore(path: path)
        #expect(try store.summary(now: 100).counts.delivered == 1)
    }

    @Test("a file holding only an outbox (csmil score --notify) gets the job tables and keeps its events")
    func outboxOnly() throws {
        let path = try StoreTestSupport.temporaryFolder() + "/csmil.sqlite3"
        do {
            let old = try SQLiteDatabase(path: path)
            try old.execute(Self.outboxVersion1)
            try old.execute(Self.outboxRow("evt_x", state: "pending", deliveredAt: nil))
        }
        let store = try JobStore(path: path)
        #expect(try store.summary(now: 20).outbox.backlog == 1)
        #expect(try store.summary(now: 20).counts == JobSummary.Counts())
    }

    @Test("outbox tables newer than this build are refused, naming the file")
    func newerOutboxRefused() throws {
        let path = try StoreTestSupport.temporaryFolder() + "/csmil.sqlite3"
        do {
            let old = try SQLiteDatabase(path: path)
            try old.migrate(Array(StoreSchema.sqlite.prefix(1)))
            try old.execute(Self.outboxVersion1 + "UPDATE csmil_schema_versions SET version = 2;")
        }
        let error = try #require(throws: JobStoreError.self) { try JobStore(path: path) }
        #expect(error.code == .tooNew && error.location == path)
        #expect(try SQLiteDatabase(path: path).userVersion() == 1, "nothing was changed")
    }

    @Test("the live-fingerprint index covers exactly the lifecycle's live states")
    func liveIndexMatchesLifecycle() throws {
        let store = try JobStore(path: try StoreTestSupport.temporaryFolder() + "/csmil.sqlite3")
        let sql = try #require(
            try store.database.queryOne("SELECT sql FROM sqlite_master WHERE name = 'jobs_live_fingerprint'") {
                $0.string(0)
            })
        #expect(sql.contains("state IN (\(JobLifecycle.sql(JobState.live)))"), "\(sql)")
    }
}
