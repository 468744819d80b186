import Foundation
import StoreTesting
import Testing

@testable import Store

/// `csmil store migrate`'s copy: a SQLite state with every kind of row → PostgreSQL → a new SQLite file, and every
/// row comes back the same.
@Suite("Store copy between backends")
struct StoreCopyTests {
    /// A SQLite store holding jobs in every state, aliases, attempts (one taken over), outbox rows pending,
    /// delivered and dead, and a disabled endpoint.
    static func filledStore() throws -> (JobStore, String) {
        let path = try StoreTestSupport.temporaryFolder() + "/csmil.sqlite3"
        let store = try JobStore(path: path)
        let outbox = Outbox(database: store.database)
        try store.recordDiscovered(path: "/in/writing.svs", size: 5, modified: 1.25, now: 100)
        try store.recordRejected(
            path: "/in/notes.txt", size: 3, modified: 2, code: "slide.unsupported", message: "no", now: 101)
        for index in 0..<4 {
            _ = try store.recordSettled(
                path: "/in/s\(index).svs", fingerprint: "sha256:\(index)", size: Int64(1000 + index),
                modified: 10.5 + Double(index), now: 102 + Double(index))
        }
        _ = try store.recordSettled(
            path: "/in/copy-of-s0.svs", fingerprint: "sha256:0", size: 1000, modified: 10.5, now: 110)
        _ = try store.claimNext(now: 120, leaseSeconds: 5, holder: "old-host")
        let taken = try #require(try store.claimNext(now: 130, leaseSeconds: 60, holder: "new-host"))
        let body = Array("{\"é\":\"ü\",\"zero\":\"\u{0}\"}".utf8) + [0, 255, 1]
        try store.complete(
            jobID: taken.id, eventID: "evt_0", reportDirectory: "/r/0",
            result: JobResult(status: "scored", probability: 0.1 + 0.2, label: "Crohn's disease"),
            outbox: [
                OutboxMessage(
                    eventID: "evt_0", slideKey: "sha256:0", eventType: "slide.scored",
                    destination: OutboxMessage.webhook, contentType: "application/json", body: body)
            ], now: 131.000_001)
        for (index, attempt) in [
            (1, OutboxAttempt(.dead, status: 400, error: "HTTP 400: bad")),
            (2, OutboxAttempt(.endpointGone, status: 410, error: "HTTP 410")),
        ] {
            let job = try #require(try store.claimNext(now: 140, leaseSeconds: 60, holder: "new-host"))
            try store.complete(
                jobID: job.id, eventID: "evt_\(index)", reportDirectory: "/r/\(index)",
                result: JobResult(status: "failed", errorCode: "slide.corrupt", errorMessage: "broken"),
                outbox: [
                    OutboxMessage(
                        eventID: "evt_\(index)", slideKey: "sha256:\(index)", eventType: "slide.failed",
                        destination: index == 2 ? OutboxMessage.hl7 : OutboxMessage.webhook,
                        contentType: "application/json", body: [UInt8(index)])
                ], now: 141)
            try outbox.record(
                attempt,
                for: try #require(
                    try outbox.row(eventID: "evt_\(index)", destination: index == 2 ? OutboxMessage.hl7 : "webhook")),
                now: 142, url: index == 2 ? "mllp://gone:2575" : "https://lis/in")
        }
        try outbox.record(
            OutboxAttempt(.delivered, status: 200), for: try #require(try outbox.row(eventID: "evt_0")), now: 150)
        return (store, path)
    }

    @Test("SQLite → PostgreSQL → SQLite keeps every row of every table, ids, bytes and times exactly")
    func roundTrip() throws {
        let (store, _) = try Self.filledStore()
        let original = try StoreCopy.dump(store.database)
        #expect(original["jobs"]?.count == 6 && original["outbox"]?.count == 3 && original["job_attempts"]?.count == 4)

        let postgres = try PostgresTestServer.shared.makeStoreLocation().open()
        let counts = try StoreCopy.copy(from: store.database, to: postgres)
        #expect(counts.description == "6 jobs, 6 job_paths, 4 job_attempts, 3 outbox, 1 outbox_endpoints")
        #expect(try StoreCopy.dump(postgres) == original)

        let back = try SQLiteDatabase(path: try StoreTestSupport.temporaryFolder() + "/back.sqlite3")
        try StoreCopy.copy(from: postgres, to: back)
        #expect(try StoreCopy.dump(back) == original)

        // The copy works as a store: new ids continue after the copied ones, the summary is the same.
        let shared = try JobStore(database: postgres)
        #expect(try shared.summary(now: 200).counts == store.summary(now: 200).counts)
        let next = try shared.recordSettled(
            path: "/in/new.svs", fingerprint: "sha256:new", size: 1, modified: 1, now: 201)
        #expect(next.job.id == 7)
        #expect(try Outbox(database: postgres).requeue(eventID: "evt_1", now: 202) == 1)
    }

    @Test("a target that already holds jobs is refused and left as it was")
    func targetNotEmpty() throws {
        let (store, _) = try Self.filledStore()
        let target = try PostgresTestServer.shared.makeStoreLocation().open()
        try StoreCopy.copy(from: store.database, to: target)
        let error = try #require(throws: JobStoreError.self) { try StoreCopy.copy(from: store.database, to: target) }
        #expect(error.code == .targetNotEmpty && error.location.contains("postgresql://"))
        #expect(try StoreCopy.dump(target) == StoreCopy.dump(store.database))
    }
}
