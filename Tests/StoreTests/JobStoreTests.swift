import Foundation
import Testing

@testable import Store

/// The job store on a real SQLite file in a temporary folder: states, slide identity by fingerprint, the queue,
/// leases after a crash, atomic report + outbox, backoff, and a damaged file.
@Suite("Job store")
struct JobStoreTests {
    /// A temporary folder holding `csmil.sqlite3` (the SQLite-only tests); removed when the test ends.
    final class Folder {
        let url: URL
        var databasePath: String { url.appendingPathComponent("csmil.sqlite3").path }

        init() throws { url = URL(fileURLWithPath: try StoreTestSupport.temporaryFolder()) }
        deinit { try? FileManager.default.removeItem(at: url) }

        func open() throws -> JobStore { try JobStore(path: databasePath) }

        /// A slide path inside the folder (the store never opens it).
        func slide(_ name: String) -> String { url.appendingPathComponent("incoming/\(name)").path }
    }

    static func message(_ eventID: String, fingerprint: String = "sha256:aa") -> OutboxMessage {
        OutboxMessage(
            eventID: eventID, slideKey: fingerprint, eventType: "slide.scored", destination: OutboxMessage.webhook,
            contentType: "application/json", body: Array(#"{"type":"slide.scored"}"#.utf8))
    }

    /// An event id as the daemon derives it from a fingerprint (the store only keeps it).
    static func eventID(fingerprint: String) -> String { "evt_" + fingerprint.replacingOccurrences(of: ":", with: "_") }

    static let scored = JobResult(status: "scored", probability: 0.82, label: "Crohn's disease")

    /// Settles `path` with `fingerprint` and returns the queued job (failing the test otherwise).
    @discardableResult
    static func queue(
        _ store: JobStore, _ path: String, _ fingerprint: String, size: Int64 = 1000, modified: Double = 100,
        now: Double = 1000
    ) throws -> Job {
        let outcome = try store.recordSettled(
            path: path, fingerprint: fingerprint, size: size, modified: modified, now: now)
        guard case .queued(let job) = outcome else {
            Issue.record("expected queued, got \(outcome)")
            return outcome.job
        }
        return job
    }

    static func outboxCount(_ store: JobStore) throws -> Int {
        try store.database.queryOne("SELECT COUNT(*) FROM outbox") { $0.int(0) } ?? -1
    }

    static func jobCount(_ store: JobStore) throws -> Int {
        try store.database.queryOne("SELECT COUNT(*) FROM jobs") { $0.int(0) } ?? -1
    }

    @Test("a slide walks discovered → settled → processing → reported → delivered", arguments: StoreBackend.allCases)
    func lifecycle(backend: StoreBackend) throws {
        let folder = try backend.makeFixture()
        let store = try folder.open()
        let path = folder.slide("a.svs")

        try store.recordDiscovered(path: path, size: 10, modified: 50, now: 1000)
        try store.recordDiscovered(path: path, size: 10, modified: 50, now: 1001)  // idempotent
        try store.recordDiscovered(path: path, size: 20, modified: 60, now: 1002)  // still growing: same row
        let discovered = try store.database.query(
            "SELECT id, state, size, fingerprint FROM jobs"
        ) { ($0.int64(0), $0.string(1), $0.int64(2), $0.optionalString(3)) }
        #expect(discovered.count == 1)
        #expect(discovered.first?.1 == "discovered")
        #expect(discovered.first?.2 == 20)
        #expect(discovered.first?.3 == nil)

        let settled = try Self.queue(store, path, "sha256:aa", size: 30, modified: 70, now: 1010)
        #expect(settled.id == discovered.first?.0, "the discovered row becomes the job")
        #expect(settled.state == .settled)
        #expect(settled.fingerprint == "sha256:aa")
        #expect(settled.size == 30 && settled.modified == 70)
        #expect(settled.attempts == 0)
        #expect(settled.nextAttemptAt == 1010)
        #expect(try Self.jobCount(store) == 1)

        let claimed = try #require(try store.claimNext(now: 1011, leaseSeconds: 600))
        #expect(claimed.id == settled.id)
        #expect(claimed.state == .processing)
        #expect(claimed.attempts == 1)
        #expect(claimed.leaseUntil == 1611)
        #expect(try store.claimNext(now: 1012, leaseSeconds: 600) == nil, "one job, claimed once")

        try store.renewLease(jobID: claimed.id, now: 1100, leaseSeconds: 600)
        #expect(try store.job(id: claimed.id)?.leaseUntil == 1700)

        let eventID = Self.eventID(fingerprint: "sha256:aa")
        try store.complete(
            jobID: claimed.id, eventID: eventID, reportDirectory: "/reports/a", result: Self.scored,
            outbox: [Self.message(eventID)], now: 1200)
        let reported = try #require(try store.job(id: claimed.id))
        #expect(reported.state == .reported)
        #expect(reported.eventID == eventID)
        #expect(reported.reportDirectory == "/reports/a")
        #expect(reported.result == Self.scored)
        #expect(reported.leaseUntil == nil)
        #expect(reported.finishedAt == 1200)
        #expect(try Outbox(database: store.database).row(eventID: eventID)?.state == .pending)

        let outbox = Outbox(database: store.database)
        try outbox.record(
            OutboxAttempt(.retry(at: 1260), status: 503, error: "HTTP 503"),
            for: try #require(try outbox.row(eventID: eventID)), now: 1250)
        #expect(try store.job(id: claimed.id)?.state == .reported, "not delivered until the outbox says so")
        try outbox.record(
            OutboxAttempt(.delivered, status: 200), for: try #require(try outbox.row(eventID: eventID)), now: 1300)
        let delivered = try #require(try store.job(id: claimed.id))
        #expect(delivered.state == .delivered, "in the transaction that recorded the delivery")
        #expect(throws: JobStoreError.self) { try store.renewLease(jobID: claimed.id, now: 1400, leaseSeconds: 1) }
    }

    @Test("the same content under another name is recognised, not queued twice", arguments: StoreBackend.allCases)
    func sameFingerprintOtherPath(backend: StoreBackend) throws {
        let folder = try backend.makeFixture()
        let store = try folder.open()
        let original = try Self.queue(store, folder.slide("a.svs"), "sha256:aa")
        try store.recordDiscovered(path: folder.slide("copy.svs"), size: 1000, modified: 200, now: 1001)

        let copy = try store.recordSettled(
            path: folder.slide("copy.svs"), fingerprint: "sha256:aa", size: 1000, modified: 200, now: 1002)
        #expect(copy == .alreadyKnown(original))
        #expect(try store.paths(jobID: original.id) == [folder.slide("a.svs"), folder.slide("copy.svs")])
        #expect(try Self.jobCount(store) == 1, "the copy's discovered row is dropped")

        // Also once the job is reported: a rename after scoring is still the same slide.
        let claimed = try #require(try store.claimNext(now: 1003, leaseSeconds: 60))
        try store.complete(
            jobID: claimed.id, eventID: "evt_a", reportDirectory: "/r/a", result: Self.scored, outbox: [],
            now: 1004)
        let renamed = try store.recordSettled(
            path: folder.slide("renamed.svs"), fingerprint: "sha256:aa", size: 1000, modified: 100, now: 1005)
        guard case .alreadyKnown(let job) = renamed else {
            Issue.record("expected alreadyKnown, got \(renamed)")
            return
        }
        #expect(job.id == original.id && job.state == .reported)
        #expect(try store.claimNext(now: 5000, leaseSeconds: 60) == nil)
        #expect(try store.known(path: folder.slide("renamed.svs"), size: 1000, modified: 100)?.id == original.id)
        #expect(try store.known(path: folder.slide("renamed.svs"), size: 1000, modified: 101) == nil)
        // A rescan of a settled file with the same size and mtime adds no discovered row.
        try store.recordDiscovered(path: folder.slide("a.svs"), size: 1000, modified: 100, now: 1006)
        #expect(try Self.jobCount(store) == 1)
    }

    @Test("new content at a known path is a new version; the earlier job is kept", arguments: StoreBackend.allCases)
    func changedFileIsNewVersion(backend: StoreBackend) throws {
        let folder = try backend.makeFixture()
        let store = try folder.open()
        let path = folder.slide("a.svs")
        let first = try Self.queue(store, path, "sha256:v1")
        let claimed = try #require(try store.claimNext(now: 1001, leaseSeconds: 60))
        try store.complete(
            jobID: claimed.id, eventID: "evt_v1", reportDirectory: "/r/1", result: Self.scored, outbox: [],
            now: 1002)

        let outcome = try store.recordSettled(
            path: path, fingerprint: "sha256:v2", size: 2000, modified: 300, now: 1003)
        guard case .newVersion(let second) = outcome else {
            Issue.record("expected newVersion, got \(outcome)")
            return
        }
        #expect(second.id != first.id)
        #expect(second.state == .settled && second.fingerprint == "sha256:v2")
        #expect(try store.job(id: first.id)?.state == .reported)
        #expect(try store.job(id: first.id)?.eventID == "evt_v1")
        // Changed back to the first content: known.
        let back = try store.recordSettled(path: path, fingerprint: "sha256:v1", size: 1000, modified: 400, now: 1004)
        #expect(back.job.id == first.id)
        if case .alreadyKnown = back {} else { Issue.record("expected alreadyKnown, got \(back)") }
    }

    @Test(
        "a file that is not a slide is recorded once, never retried unless it changes", arguments: StoreBackend.allCases
    )
    func rejectedOnce(backend: StoreBackend) throws {
        let folder = try backend.makeFixture()
        let store = try folder.open()
        let path = folder.slide("notes.txt")
        try store.recordDiscovered(path: path, size: 5, modified: 10, now: 1000)
        for now in [1001.0, 1002, 1003] {
            try store.recordRejected(
                path: path, size: 5, modified: 10, code: "slide.unsupported", message: "not a slide", now: now)
        }
        let failed = try store.database.query("SELECT \(JobStore.columns()) FROM jobs", row: JobStore.job)
        #expect(failed.count == 1)
        #expect(failed.first?.state == .failed)
        #expect(failed.first?.fingerprint == nil)
        #expect(failed.first?.lastErrorCode == "slide.unsupported")
        #expect(failed.first?.finishedAt == 1001)
        #expect(try store.known(path: path, size: 5, modified: 10)?.state == .failed)
        try store.recordDiscovered(path: path, size: 5, modified: 10, now: 1004)
        #expect(try Self.jobCount(store) == 1, "a rescan of the unchanged file adds nothing")
        #expect(try store.claimNext(now: 9999, leaseSeconds: 60) == nil)

        // It changed and is still not a slide: the one record is updated.
        try store.recordRejected(
            path: path, size: 6, modified: 11, code: "slide.unsupported", message: "still not", now: 1005)
        #expect(try Self.jobCount(store) == 1)
        #expect(try store.known(path: path, size: 5, modified: 10) == nil)
        #expect(try store.known(path: path, size: 6, modified: 11)?.lastErrorMessage == "still not")

        // It became a slide: queued, and the stale record goes.
        try Self.queue(store, path, "sha256:now-a-slide", size: 7, modified: 12, now: 1006)
        #expect(try Self.jobCount(store) == 1)
        #expect(try store.summary(now: 1007).failures.isEmpty)
    }

    @Test("claimNext takes due jobs oldest first and leaves jobs not yet due", arguments: StoreBackend.allCases)
    func claimOrder(backend: StoreBackend) throws {
        let folder = try backend.makeFixture()
        let store = try folder.open()
        let a = try Self.queue(store, folder.slide("a.svs"), "sha256:a", now: 10)
        let b = try Self.queue(store, folder.slide("b.svs"), "sha256:b", now: 20)
        let c = try Self.queue(store, folder.slide("c.svs"), "sha256:c", now: 20)
        #expect(try store.claimNext(now: 5, leaseSeconds: 60) == nil, "nothing is due before it settled")
        #expect(try store.claimNext(now: 15, leaseSeconds: 60)?.id == a.id)
        #expect(try store.claimNext(now: 15, leaseSeconds: 60) == nil, "b and c are due at 20")
        #expect(try store.claimNext(now: 20, leaseSeconds: 60)?.id == b.id)
        // b fails transiently: due again later, after c.
        guard
            case .retryAt(let due) = try store.retryLater(
                jobID: b.id, code: "disk.full", message: "no space", now: 21, randomFraction: 0.5)
        else {
            Issue.record("expected a retry")
            return
        }
        #expect(due == 21 + 15)
        #expect(try store.claimNext(now: 22, leaseSeconds: 60)?.id == c.id)
        #expect(try store.claimNext(now: 23, leaseSeconds: 60) == nil)
        let again = try #require(try store.claimNext(now: due, leaseSeconds: 60))
        #expect(again.id == b.id && again.attempts == 2)
    }

    @Test(
        "a crash leaves the job processing until its lease expires; completing twice keeps one event",
        arguments: StoreBackend.allCases)
    func crashAndReclaim(backend: StoreBackend) throws {
        let folder = try backend.makeFixture()
        let eventID = Self.eventID(fingerprint: "sha256:aa")
        var jobID: Int64 = 0
        do {
            let store = try folder.open()
            jobID = try Self.queue(store, folder.slide("a.svs"), "sha256:aa").id
            _ = try #require(try store.claimNext(now: 1000, leaseSeconds: 600))
            // The daemon dies here: the connection goes without completing.
        }
        let store = try folder.open()
        let left = try #require(try store.job(id: jobID))
        #expect(left.state == .processing && left.leaseUntil == 1600)
        #expect(try store.claimNext(now: 1599, leaseSeconds: 600) == nil, "the lease still holds")
        #expect(try store.summary(now: 1599).processing.first?.leaseExpired == false)
        #expect(try store.summary(now: 1600).processing.first?.leaseExpired == true)

        let reclaimed = try #require(try store.claimNext(now: 1600, leaseSeconds: 600))
        #expect(reclaimed.id == jobID)
        #expect(reclaimed.fingerprint == "sha256:aa")
        #expect(reclaimed.attempts == 2)
        #expect(reclaimed.leaseUntil == 2200)

        for now in [1700.0, 1701] {
            try store.complete(
                jobID: jobID, eventID: eventID, reportDirectory: "/r/a", result: Self.scored,
                outbox: [Self.message(eventID)], now: now)
        }
        #expect(try Self.outboxCount(store) == 1)
        #expect(try store.job(id: jobID)?.eventID == eventID)
        #expect(try store.job(id: jobID)?.finishedAt == 1700, "the second completion changes nothing")
        let error = try #require(throws: JobStoreError.self) {
            try store.complete(
                jobID: jobID, eventID: "evt_other", reportDirectory: "/r/b", result: Self.scored,
                outbox: [Self.message("evt_other")], now: 1702)
        }
        #expect(error.code == .eventIDConflict)
        #expect(try Self.outboxCount(store) == 1)
        #expect(try store.job(id: jobID)?.eventID == eventID)
    }

    @Test("a transaction abandoned half-way leaves nothing written", arguments: StoreBackend.allCases)
    func abandonedTransaction(backend: StoreBackend) throws {
        struct Abandon: Error {}
        let folder = try backend.makeFixture()
        do {
            let store = try folder.open()
            #expect(throws: Abandon.self) {
                try store.database.transaction {
                    try Self.queue(store, folder.slide("a.svs"), "sha256:aa")
                    try Outbox(database: store.database).enqueue(Self.message("evt_a"))
                    throw Abandon()
                }
            }
            #expect(try Self.jobCount(store) == 0)
            #expect(try Self.outboxCount(store) == 0)

            // And a transaction still open when the connection goes (a crash mid-write) is rolled back.
            try store.database.execute(folder.begin)
            try Self.queue(store, folder.slide("b.svs"), "sha256:bb")
        }
        let store = try folder.open()
        #expect(try Self.jobCount(store) == 0)
        #expect(try store.jobs(fingerprint: "sha256:bb").isEmpty)
    }

    @Test(
        "complete() commits the job's state and its outbox row together, or neither", arguments: StoreBackend.allCases)
    func completeIsAtomic(backend: StoreBackend) throws {
        let folder = try backend.makeFixture()
        let store = try folder.open()
        let job = try Self.queue(store, folder.slide("a.svs"), "sha256:aa")
        _ = try store.claimNext(now: 1001, leaseSeconds: 60)

        // The outbox insert fails (as a full disk would): the job must stay processing.
        try folder.refuse("INSERT", on: "outbox", in: store.database)
        #expect(throws: (any Error).self) {
            try store.complete(
                jobID: job.id, eventID: "evt_a", reportDirectory: "/r/a", result: Self.scored,
                outbox: [Self.message("evt_a")], now: 1002)
        }
        #expect(try store.job(id: job.id)?.state == .processing)
        #expect(try store.job(id: job.id)?.eventID == nil)
        #expect(try Self.outboxCount(store) == 0)

        try folder.allow("outbox", in: store.database)
        try store.complete(
            jobID: job.id, eventID: "evt_a", reportDirectory: "/r/a", result: Self.scored,
            outbox: [Self.message("evt_a")], now: 1003)
        // Another connection sees both.
        let other = try folder.connect()
        #expect(
            try other.queryOne("SELECT state, event_id FROM jobs") { [$0.string(0), $0.string(1)] } == [
                "reported", "evt_a",
            ])
        #expect(try Outbox(database: other).row(eventID: "evt_a") != nil)

        // A mismatched event and a job that is not processing are refused.
        let second = try Self.queue(store, folder.slide("b.svs"), "sha256:bb")
        #expect(throws: JobStoreError.self) {
            try store.complete(
                jobID: second.id, eventID: "evt_b", reportDirectory: "/r/b", result: Self.scored, outbox: [],
                now: 1004)
        }
        _ = try store.claimNext(now: 1005, leaseSeconds: 60)
        let mismatch = try #require(throws: JobStoreError.self) {
            try store.complete(
                jobID: second.id, eventID: "evt_b", reportDirectory: "/r/b", result: Self.scored,
                outbox: [Self.message("evt_x")], now: 1006)
        }
        #expect(mismatch.code == .eventIDConflict)
        let taken = try #require(throws: JobStoreError.self) {
            try store.complete(
                jobID: second.id, eventID: "evt_a", reportDirectory: "/r/b", result: Self.scored, outbox: [],
                now: 1006)
        }
        #expect(taken.code == .eventIDConflict)
        #expect(try store.job(id: second.id)?.state == .processing)
        let unknown = try #require(throws: JobStoreError.self) {
            try store.complete(
                jobID: 999, eventID: "evt_z", reportDirectory: "/r/z", result: Self.scored, outbox: [], now: 1007)
        }
        #expect(unknown.code == .unknownJob)
    }

    @Test(
        "retryLater backs off with full jitter up to the cap, then gives up with the reason",
        arguments: StoreBackend.allCases)
    func retryBackoff(backend: StoreBackend) throws {
        let folder = try backend.makeFixture()
        let store = try folder.open()
        let job = try Self.queue(store, folder.slide("a.svs"), "sha256:aa", now: 0)

        var now = 0.0
        var dues: [Double] = []
        for _ in 0..<2 {
            let claimed = try #require(try store.claimNext(now: now, leaseSeconds: 60))
            let decision = try store.retryLater(
                jobID: claimed.id, code: "work.unwritable", message: "cannot write /var/lib/csmil/work", now: now,
                randomFraction: 0.999_999)
            guard case .retryAt(let due) = decision else {
                Issue.record("expected a retry, got \(decision)")
                return
            }
            dues.append(due - now)
            let queued = try #require(try store.job(id: job.id))
            #expect(queued.state == .settled && queued.lastErrorCode == "work.unwritable")
            #expect(try store.claimNext(now: due - 0.001, leaseSeconds: 60) == nil, "not before it is due")
            now = due
        }
        #expect(abs(dues[0] - 30) < 0.01 && abs(dues[1] - 60) < 0.01, "ceilings 30 s, then 60 s: \(dues)")

        let last = try #require(try store.claimNext(now: now, leaseSeconds: 60))
        #expect(last.attempts == 3)
        #expect(
            try store.retryLater(jobID: last.id, code: "work.unwritable", message: "cannot write", now: now)
                == .gaveUp)
        let failed = try #require(try store.job(id: job.id))
        #expect(failed.state == .failed)
        #expect(failed.lastErrorCode == "work.unwritable")
        #expect(failed.lastErrorMessage == "gave up after 3 attempts: cannot write")
        #expect(try store.claimNext(now: now + 1e6, leaseSeconds: 60) == nil)

        // The ceiling is capped at an hour, and a zero jitter retries at once.
        let other = try Self.queue(store, folder.slide("b.svs"), "sha256:bb", now: now)
        _ = try store.database.execute("UPDATE jobs SET attempts = 11 WHERE id = $1", [.integer(other.id)])
        _ = try #require(try store.claimNext(now: now, leaseSeconds: 60))
        #expect(
            try store.retryLater(
                jobID: other.id, code: "c", message: "m", now: now, maxAttempts: 20, randomFraction: 0.5)
                == .retryAt(now + 1800))
        _ = try #require(try store.claimNext(now: now + 1800, leaseSeconds: 60))
        #expect(
            try store.retryLater(
                jobID: other.id, code: "c", message: "m", now: now, maxAttempts: 20, randomFraction: 0)
                == .retryAt(now))
    }

    @Test(
        "content that failed for good stays failed on a rescan and is queued again when dropped in again",
        arguments: StoreBackend.allCases)
    func failedContentSettledAgain(backend: StoreBackend) throws {
        let folder = try backend.makeFixture()
        let store = try folder.open()
        let path = folder.slide("a.svs")
        let job = try Self.queue(store, path, "sha256:aa", modified: 100, now: 0)
        _ = try store.claimNext(now: 0, leaseSeconds: 60)
        #expect(try store.retryLater(jobID: job.id, code: "c", message: "m", now: 0, maxAttempts: 1) == .gaveUp)

        let rescan = try store.recordSettled(path: path, fingerprint: "sha256:aa", size: 1000, modified: 100, now: 1)
        let failed = try #require(try store.job(id: job.id))
        #expect(rescan == .alreadyKnown(failed))
        let touched = try store.recordSettled(path: path, fingerprint: "sha256:aa", size: 1000, modified: 200, now: 2)
        guard case .queued(let again) = touched else {
            Issue.record("expected queued, got \(touched)")
            return
        }
        #expect(again.id != job.id && again.state == .settled)
        #expect(try store.jobs(fingerprint: "sha256:aa").map(\.state) == [.failed, .settled])
    }

    @Test(
        "discard drops a changed file back to discovered; release gives a claim back on shutdown",
        arguments: StoreBackend.allCases)
    func discardAndRelease(backend: StoreBackend) throws {
        let folder = try backend.makeFixture()
        let store = try folder.open()
        let path = folder.slide("a.svs")
        let job = try Self.queue(store, path, "sha256:v1", now: 10)
        _ = try #require(try store.claimNext(now: 10, leaseSeconds: 60))
        try store.recordDiscovered(path: path, size: 1500, modified: 150, now: 11)  // the watcher saw it change
        try store.discard(jobID: job.id, now: 12)
        let dropped = try #require(try store.job(id: job.id))
        #expect(dropped.state == .discovered)
        #expect(dropped.fingerprint == nil && dropped.attempts == 0 && dropped.leaseUntil == nil)
        #expect(try Self.jobCount(store) == 1, "one discovered row for the path")
        #expect(try store.jobs(fingerprint: "sha256:v1").isEmpty)
        #expect(try store.claimNext(now: 100, leaseSeconds: 60) == nil)

        let requeued = try Self.queue(store, path, "sha256:v2", size: 2000, modified: 200, now: 20)
        #expect(requeued.id == job.id && requeued.fingerprint == "sha256:v2")
        #expect(try store.paths(jobID: job.id) == [path])

        // Clean shutdown mid-slide: back in the queue, the claim not counted, due at once.
        let claimed = try #require(try store.claimNext(now: 30, leaseSeconds: 60))
        #expect(claimed.attempts == 1)
        #expect(try store.release(jobID: claimed.id, now: 31))
        let released = try #require(try store.job(id: claimed.id))
        #expect(released.state == .settled && released.attempts == 0 && released.leaseUntil == nil)
        #expect(try #require(released.nextAttemptAt) <= 31)
        #expect(try store.release(jobID: claimed.id, now: 32) == false, "not processing: nothing to release")
        #expect(try store.claimNext(now: 31, leaseSeconds: 60)?.id == claimed.id)
        #expect(throws: JobStoreError.self) { try store.discard(jobID: 12345, now: 40) }
    }

    @Test(
        "requeue: a delivered job goes back to the queue with its lease and result cleared, found by name; the same event id is delivered at once; a record without content is forgotten",
        arguments: StoreBackend.allCases)
    func requeue(backend: StoreBackend) throws {
        let folder = try backend.makeFixture()
        let store = try folder.open()
        let path = folder.slide("case_1.svs")
        let job = try Self.queue(store, path, "sha256:aa", now: 10)
        let claimed = try #require(try store.claimNext(now: 11, leaseSeconds: 60, holder: "scanner-1"))
        let eventID = Self.eventID(fingerprint: "sha256:aa")
        try store.complete(
            jobID: claimed.id, eventID: eventID, reportDirectory: "/reports/a", result: Self.scored,
            outbox: [Self.message(eventID)], now: 12)
        let outbox = Outbox(database: store.database)
        try outbox.record(
            OutboxAttempt(.delivered, status: 200), for: try #require(try outbox.row(eventID: eventID)), now: 13)
        #expect(try store.job(id: job.id)?.state == .delivered)

        // Found by its file name, path, fingerprint and event id; LIKE's wildcards in a name match nothing.
        #expect(try store.jobs(named: "case_1.svs").map(\.id) == [job.id])
        #expect(try store.jobs(named: path).map(\.id) == [job.id])
        #expect(try store.jobs(named: "sha256:aa").map(\.id) == [job.id])
        #expect(try store.jobs(named: eventID).map(\.id) == [job.id])
        #expect(try store.jobs(named: "case%.svs").isEmpty)
        #expect(try store.jobs(named: "case_1_svs").isEmpty)

        guard case .queued(let queued) = try store.requeue(jobID: job.id, now: 20) else {
            Issue.record("expected queued")
            return
        }
        #expect(queued.state == .settled && queued.attempts == 0 && queued.nextAttemptAt == 20)
        #expect(queued.eventID == nil && queued.reportDirectory == nil && queued.result == nil)
        #expect(queued.leaseUntil == nil && queued.leaseHolder == nil && queued.leaseToken == nil)
        #expect(queued.fingerprint == "sha256:aa" && queued.path == path)

        // Scored again with the same model: the outbox knows the id, so the job is delivered at once, not resent.
        let again = try #require(try store.claimNext(now: 21, leaseSeconds: 60, holder: "scanner-2"))
        #expect(again.id == job.id && again.leaseHolder == "scanner-2")
        #expect(throws: JobStoreError.self) { try store.requeue(jobID: job.id, now: 22) }
        try store.complete(
            jobID: again.id, eventID: eventID, reportDirectory: "/reports/a2", result: Self.scored,
            outbox: [Self.message(eventID)], now: 23)
        #expect(try store.job(id: job.id)?.state == .delivered)
        #expect(try outbox.rows(eventID: eventID).count == 1)

        // Not a slide: a failed record without content; requeued, it is forgotten (the watcher reads it again).
        let text = folder.slide("notes.txt")
        try store.recordRejected(path: text, size: 5, modified: 1, code: "slide.unsupported", message: "no", now: 30)
        let failed = try store.failedJobs()
        #expect(failed.map(\.path) == [text])
        #expect(try store.requeue(jobID: try #require(failed.first).id, now: 31) == .forgotten(path: text))
        #expect(try store.failedJobs().isEmpty)
        #expect(try store.jobs(named: "notes.txt").isEmpty)
    }

    @Test(
        "a job becomes delivered in the transaction that records its event's delivery, and only then",
        arguments: StoreBackend.allCases)
    func deliveredWithTheOutboxRow(backend: StoreBackend) throws {
        let folder = try backend.makeFixture()
        let store = try folder.open()
        var ids: [Int64] = []
        for (index, name) in ["a", "b", "c"].enumerated() {
            let job = try Self.queue(store, folder.slide("\(name).svs"), "sha256:\(name)")
            _ = try store.claimNext(now: 1001, leaseSeconds: 60)
            let outbox = name == "c" ? [] : [Self.message("evt_\(name)", fingerprint: "sha256:\(name)")]
            try store.complete(
                jobID: job.id, eventID: "evt_\(name)", reportDirectory: "/r/\(name)", result: Self.scored,
                outbox: outbox, now: 1002 + Double(index))
            ids.append(job.id)
        }
        let outbox = Outbox(database: store.database)
        try outbox.record(
            OutboxAttempt(.dead, status: 400, error: "HTTP 400"), for: try #require(try outbox.row(eventID: "evt_b")),
            now: 1050)
        try outbox.record(
            OutboxAttempt(.delivered, status: 200), for: try #require(try outbox.row(eventID: "evt_a")), now: 1100)
        #expect(try ids.map { try store.job(id: $0)?.state } == [.delivered, .reported, .reported])
        #expect(
            try store.database.queryOne("SELECT delivered_at FROM jobs WHERE id = $1", [.integer(ids[0])]) {
                $0.double(0)
            } == 1100)
        var summary = try store.summary(now: 1102)
        #expect(summary.counts.delivered == 1 && summary.counts.reported == 2)
        #expect(summary.outbox.backlog == 0 && summary.outbox.delivered == 1 && summary.outbox.deadCount == 1)

        // A dead letter replayed and delivered later: delivered then.
        #expect(try outbox.requeue(eventID: "evt_b", now: 1200) == 1)
        try outbox.record(
            OutboxAttempt(.delivered, status: 204), for: try #require(try outbox.row(eventID: "evt_b")), now: 1201)
        summary = try store.summary(now: 1202)
        #expect(summary.counts.delivered == 2 && summary.counts.reported == 1)
        #expect(summary.recent.map(\.state) == [.reported, .delivered, .delivered], "newest first: c, b, a")

        // The outbox update and the job's are one transaction: when the job update fails, the row stays pending.
        let d = try Self.queue(store, folder.slide("d.svs"), "sha256:d")
        _ = try store.claimNext(now: 1300, leaseSeconds: 60)
        try store.complete(
            jobID: d.id, eventID: "evt_d", reportDirectory: "/r/d", result: Self.scored,
            outbox: [Self.message("evt_d", fingerprint: "sha256:d")], now: 1301)
        try folder.refuse("UPDATE OF state", on: "jobs", in: store.database)
        #expect(throws: (any Error).self) {
            try outbox.record(
                OutboxAttempt(.delivered, status: 200), for: try #require(try outbox.row(eventID: "evt_d")), now: 1302)
        }
        #expect(try outbox.row(eventID: "evt_d")?.state == .pending)
        #expect(try store.job(id: d.id)?.state == .reported)
    }

    @Test("a damaged database file is refused with store.corrupt naming the file and the fix (SQLite)")
    func corruptFile() throws {
        let folder = try Folder()
        do {
            let store = try folder.open()
            for index in 0..<200 {
                try Self.queue(store, folder.slide("s\(index).svs"), "sha256:\(index)")
            }
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: folder.databasePath))

        // Garbage over the whole file, and garbage over every page but the header.
        let garbage = Data((0..<data.count).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) })
        var pages = data
        pages.replaceSubrange(4096..<data.count, with: garbage[4096..<data.count])
        for (name, bytes) in [("garbage.sqlite3", garbage), ("pages.sqlite3", pages)] {
            let copy = folder.url.appendingPathComponent(name).path
            try bytes.write(to: URL(fileURLWithPath: copy))
            let error = try #require(throws: JobStoreError.self) { try JobStore(path: copy) }
            #expect(error.code == .corrupt, "\(name): \(error)")
            #expect(error.location == copy)
            #expect(error.description.contains(copy))
            #expect(error.fix.contains("move"))
        }
        // The original is fine.
        #expect(try folder.open().summary(now: 0).counts.settled == 200)
    }

    @Test(
        "summary shows counts, the queue in order, work in progress, pending files, results and failures",
        arguments: StoreBackend.allCases)
    func summaryContents(backend: StoreBackend) throws {
        let folder = try backend.makeFixture()
        let store = try folder.open()
        try store.recordDiscovered(path: folder.slide("writing.svs"), size: 5, modified: 1, now: 900)
        try store.recordRejected(
            path: folder.slide("notes.txt"), size: 5, modified: 1, code: "slide.unsupported",
            message: "notes.txt is not a slide", now: 901)
        let scored = try Self.queue(store, folder.slide("scored.svs"), "sha256:s", now: 1000)
        let broken = try Self.queue(store, folder.slide("broken.svs"), "sha256:b", now: 1001)
        let busy = try Self.queue(store, folder.slide("busy.svs"), "sha256:p", now: 1002)
        let later = try Self.queue(store, folder.slide("later.svs"), "sha256:l", now: 1004)
        let first = try Self.queue(store, folder.slide("first.svs"), "sha256:f", now: 1003)
        for (job, result) in [
            (scored, Self.scored),
            (
                broken,
                JobResult(status: "failed", errorCode: "slide.corrupt", errorMessage: "broken.svs cannot be read")
            ),
        ] {
            #expect(try store.claimNext(now: 1010, leaseSeconds: 60)?.id == job.id)
            try store.complete(
                jobID: job.id, eventID: "evt_\(job.id)", reportDirectory: "/r/\(job.id)", result: result,
                outbox: [Self.message("evt_\(job.id)", fingerprint: job.fingerprint ?? "")], now: 1010 + Double(job.id))
        }
        #expect(try store.claimNext(now: 1020, leaseSeconds: 60)?.id == busy.id)

        let summary = try store.summary(now: 1030, recent: 10)
        #expect(
            summary.counts
                == JobSummary.Counts(
                    discovered: 1, settled: 2, processing: 1, reported: 2, delivered: 0, failed: 1))
        #expect(summary.queue.map(\.id) == [first.id, later.id])
        #expect(summary.queue.first?.name == "first.svs")
        #expect(summary.processing.map(\.name) == ["busy.svs"])
        #expect(summary.processing.first?.leaseUntil == 1080)
        #expect(summary.discovered.map(\.name) == ["writing.svs"])
        #expect(summary.recent.map(\.name) == ["broken.svs", "scored.svs"])
        let result = try #require(summary.recent.last)
        #expect(result.status == "scored" && result.probability == 0.82 && result.label == "Crohn's disease")
        #expect(result.eventID == "evt_\(scored.id)" && result.finishedAt == 1010 + Double(scored.id))
        #expect(summary.recent.first?.errorCode == "slide.corrupt")
        #expect(summary.failures.map(\.code) == ["slide.unsupported"])
        #expect(summary.failures.first?.message == "notes.txt is not a slide")
        #expect(summary.outbox.backlog == 2)
        #expect(try store.summary(now: 1030, recent: 1).recent.count == 1)

        // It is Codable with snake_case keys, and round-trips.
        let json = try JSONEncoder().encode(summary)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains("\"event_id\"") && text.contains("\"due_at\"") && text.contains("\"generated_at\""))
        #expect(try JSONDecoder().decode(JobSummary.self, from: json) == summary)
    }
}
