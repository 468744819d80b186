import Foundation
import Store
import StoreTesting

/// The backends every store test runs against: the same suite, two databases (the issue's "one suite, two
/// backends"). PostgreSQL is a real server the tests start (``PostgresTestServer``), one per test process, with a
/// fresh database per test.
enum StoreBackend: String, CaseIterable, CustomStringConvertible, Sendable {
    case sqlite
    case postgresql

    var description: String { rawValue }

    /// A fresh, empty store of this backend.
    func makeFixture() throws -> StoreFixture {
        switch self {
        case .sqlite:
            let folder = try StoreTestSupport.temporaryFolder()
            return StoreFixture(backend: self, location: .sqlite(path: folder + "/csmil.sqlite3"), folder: folder)
        case .postgresql:
            return StoreFixture(
                backend: self, location: try PostgresTestServer.shared.makeStoreLocation(),
                folder: try StoreTestSupport.temporaryFolder())
        }
    }
}

/// One test's store: where it is, and new connections to it (each host, thread or process opens its own).
struct StoreFixture: Sendable {
    let backend: StoreBackend
    let location: StoreLocation
    /// A scratch folder (slide paths are made up inside it; the store never opens them).
    let folder: String

    /// A job store on a new connection.
    func open() throws -> JobStore { try JobStore.open(location, applicationName: "csmil tests") }

    /// A new connection with the schema installed.
    func connect() throws -> any StoreDatabase {
        let database = try location.open(applicationName: "csmil tests")
        try StoreSchema.install(in: database)
        return database
    }

    /// A slide path (the store never opens it).
    func slide(_ name: String) -> String { folder + "/incoming/" + name }

    /// Makes the database refuse `operation` (`INSERT`, `UPDATE OF state`) on `table` until ``allow(_:on:)``: as
    /// a full disk or a failing constraint would, in the middle of a transaction.
    func refuse(_ operation: String, on table: String, in database: any StoreDatabase) throws {
        switch backend {
        case .sqlite:
            try database.execute(
                "CREATE TEMP TRIGGER refuse_\(table) BEFORE \(operation) ON \(table) BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        case .postgresql:
            try database.execute(
                """
                CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql
                AS 'BEGIN RAISE EXCEPTION ''refused''; END'
                """)
            try database.execute(
                "CREATE TRIGGER refuse_\(table) BEFORE \(operation) ON \(table) FOR EACH ROW EXECUTE FUNCTION refuse()")
        }
    }

    /// Lifts ``refuse(_:on:in:)``.
    func allow(_ table: String, in database: any StoreDatabase) throws {
        switch backend {
        case .sqlite: try database.execute("DROP TRIGGER refuse_\(table)")
        case .postgresql: try database.execute("DROP TRIGGER refuse_\(table) ON \(table)")
        }
    }

    /// The statement that opens a transaction by hand (tests that leave one open).
    var begin: String { backend == .sqlite ? "BEGIN IMMEDIATE" : "BEGIN" }
}
