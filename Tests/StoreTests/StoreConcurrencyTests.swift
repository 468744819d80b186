import Dispatch
import Foundation
import Synchronization
import Testing

@testable import Store

/// Several hosts on one store, as connections on threads of their own: a job is claimed once, a file settled by
/// every host at once becomes one job, an outbox row is sent by one host at a time. Both backends.
@Suite("Store with several hosts")
struct StoreConcurrencyTests {
    static let scored = JobResult(status: "scored", probability: 0.5, label: "x")
    static let webhook = [OutboxMessage.webhook: "https://lis/in"]

    @Test("hosts claiming at the same moment take different jobs, and every job once", arguments: StoreBackend.allCases)
    func claimsAreExclusive(backend: StoreBackend) throws {
        let fixture = try backend.makeFixture()
        let store = try fixture.open()
        for index in 0..<24 {
            _ = try store.recordSettled(
                path: fixture.slide("s\(index).svs"), fingerprint: "sha256:\(index)", size: 1, modified: 1, now: 10)
        }
        let claimed = Mutex<[Int64: String]>([:])
        let duplicates = Mutex<[Int64]>([])
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { host in
            do {
                let connection = try fixture.open()
                while let job = try connection.claimNext(now: 20, leaseSeconds: 60, holder: "host-\(host)") {
                    claimed.withLock { all in
                        if all[job.id] != nil { duplicates.withLock { $0.append(job.id) } }
                        all[job.id] = "host-\(host)"
                    }
                }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(duplicates.withLock { $0 }.isEmpty, "a job claimed twice")
        #expect(claimed.withLock { $0.count } == 24)
        let holders = try store.database.query(
            "SELECT id, lease_holder FROM jobs WHERE state = 'processing'"
        ) { ($0.int64(0), $0.string(1)) }
        #expect(Dictionary(uniqueKeysWithValues: holders) == claimed.withLock { $0 }, "the store agrees on the holders")
        #expect(try store.database.queryOne("SELECT COUNT(*) FROM job_attempts") { $0.int(0) } == 24)
    }

    @Test(
        "three hosts settling the same file at once make one job; the others find it known",
        arguments: StoreBackend.allCases)
    func settleOnce(backend: StoreBackend) throws {
        let fixture = try backend.makeFixture()
        for round in 0..<5 {
            let outcomes = Mutex<[SettleOutcome]>([])
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 3) { _ in
                do {
                    let connection = try fixture.open()
                    try connection.recordDiscovered(path: fixture.slide("r\(round).svs"), size: 1, modified: 1, now: 1)
                    let outcome = try connection.recordSettled(
                        path: fixture.slide("r\(round).svs"), fingerprint: "sha256:r\(round)", size: 5, modified: 2,
                        now: 2)
                    outcomes.withLock { $0.append(outcome) }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.withLock { $0 }.isEmpty)
            let all = outcomes.withLock { $0 }
            let queued = all.filter { if case .queued = $0 { true } else { false } }
            #expect(queued.count == 1, "round \(round): \(all)")
            #expect(Set(all.map(\.job.id)).count == 1)
        }
        let store = try fixture.open()
        #expect(try store.database.queryOne("SELECT COUNT(*) FROM jobs") { $0.int(0) } == 5, "no stray rows")
        #expect(try store.summary(now: 3).counts.settled == 5)
    }

    @Test(
        "an outbox row is sent by one host at a time; a lease that runs out lets another host send it",
        arguments: StoreBackend.allCases)
    func outboxLeases(backend: StoreBackend) throws {
        let fixture = try backend.makeFixture()
        let a = Outbox(database: try fixture.connect())
        let b = Outbox(database: try fixture.connect())
        for index in 0..<3 {
            try a.enqueue(
                OutboxMessage(
                    eventID: "evt_\(index)", slideKey: "sha256:\(index)", eventType: "slide.scored",
                    destination: OutboxMessage.webhook, contentType: "application/json", body: [UInt8(index)]),
                now: 0)
        }
        let first = try #require(try a.claimNextDue(now: 1, destinations: Self.webhook, holder: "a", leaseSeconds: 30))
        #expect(first.leaseHolder == "a" && first.leaseUntil == 31)
        let second = try #require(try b.claimNextDue(now: 1, destinations: Self.webhook, holder: "b", leaseSeconds: 30))
        #expect(second.message.eventID != first.message.eventID)
        _ = try #require(try b.claimNextDue(now: 1, destinations: Self.webhook, holder: "b", leaseSeconds: 30))
        #expect(
            try b.claimNextDue(now: 2, destinations: Self.webhook, holder: "b", leaseSeconds: 30) == nil,
            "every row is being sent")
        #expect(try a.nextDueTime(destinations: Self.webhook) == 31)

        // Host a dies mid-send: after its lease, b sends the same event (same id, same body).
        let retaken = try #require(
            try b.claimNextDue(now: 31, destinations: Self.webhook, holder: "b", leaseSeconds: 30))
        #expect(retaken.message == first.message && retaken.leaseHolder == "b")
        try b.record(OutboxAttempt(.delivered, status: 200), for: retaken, now: 32)
        #expect(try b.row(eventID: first.message.eventID)?.state == .delivered)
        #expect(try b.row(eventID: first.message.eventID)?.leaseHolder == nil)
        // a's late record of the same row changes nothing: the row is no longer pending.
        try a.record(OutboxAttempt(.retry(at: 100), status: 503, error: "HTTP 503"), for: first, now: 33)
        let row = try #require(try a.row(eventID: first.message.eventID))
        #expect(row.state == .delivered && row.attempts == 1)
        // A send cut short by shutdown gives the row back at once.
        try b.releaseClaim(second)
        #expect(
            try a.claimNextDue(now: 34, destinations: Self.webhook, holder: "a", leaseSeconds: 30)?.message.eventID
                == second.message.eventID)
    }

    @Test(
        "one event, two destinations: one row each, retried and delivered apart; the job is delivered with the last",
        arguments: StoreBackend.allCases)
    func destinations(backend: StoreBackend) throws {
        let fixture = try backend.makeFixture()
        let store = try fixture.open()
        let job = try store.recordSettled(
            path: fixture.slide("a.svs"), fingerprint: "sha256:a", size: 1, modified: 1, now: 1
        ).job
        _ = try store.claimNext(now: 2, leaseSeconds: 60)
        let message = OutboxMessage(
            eventID: "evt_a", slideKey: "sha256:a", eventType: "slide.scored", destination: OutboxMessage.webhook,
            contentType: "application/json", body: [1])
        var hl7 = message
        hl7.destination = OutboxMessage.hl7
        try store.complete(
            jobID: job.id, eventID: "evt_a", reportDirectory: "/r/a", result: Self.scored, outbox: [message, hl7],
            now: 3)
        let outbox = Outbox(database: store.database)
        #expect(try outbox.rows().map(\.message.destination) == ["webhook", "hl7"])
        try outbox.record(
            OutboxAttempt(.delivered, status: 200), for: try #require(try outbox.row(eventID: "evt_a")), now: 4)
        #expect(try store.job(id: job.id)?.state == .reported, "the hl7 row is still pending")
        try outbox.record(
            OutboxAttempt(.delivered, status: 200),
            for: try #require(try outbox.row(eventID: "evt_a", destination: "hl7")),
            now: 5)
        #expect(try store.job(id: job.id)?.state == .delivered)
    }
}
