import Foundation
import Testing

@testable import Store

@Suite("Outbox")
struct OutboxTests {
    func makeOutbox(_ backend: StoreBackend) throws -> Outbox {
        Outbox(database: try backend.makeFixture().connect())
    }

    static func message(_ id: String, slide: String = "sha256:aa", body: String = "{}") -> OutboxMessage {
        OutboxMessage(
            eventID: id, slideKey: slide, eventType: "slide.scored", targetURL: "https://lis.example.org/in",
            contentType: "application/json", body: Array(body.utf8))
    }

    @Test(
        "enqueue joins the caller's transaction: rolled back with it, committed with it",
        arguments: StoreBackend.allCases)
    func enqueueInsideTransaction(backend: StoreBackend) throws {
        struct Abort: Error {}
        let outbox = try makeOutbox(backend)
        let database = outbox.database
        try database.execute("CREATE TABLE reports (event_id TEXT PRIMARY KEY)")
        #expect(throws: Abort.self) {
            try database.transaction {
                try database.execute("INSERT INTO reports VALUES ('evt_1')")
                try outbox.enqueue(Self.message("evt_1"))
                throw Abort()
            }
        }
        #expect(try outbox.rows().isEmpty)
        try database.transaction {
            try database.execute("INSERT INTO reports VALUES ('evt_1')")
            #expect(try outbox.enqueue(Self.message("evt_1")))
        }
        #expect(try outbox.rows().map(\.message.eventID) == ["evt_1"])
    }

    @Test("enqueue is idempotent on the event id: no second row, the first body kept", arguments: StoreBackend.allCases)
    func idempotent(backend: StoreBackend) throws {
        let outbox = try makeOutbox(backend)
        #expect(try outbox.enqueue(Self.message("evt_1", body: "first"), now: 10))
        #expect(try !outbox.enqueue(Self.message("evt_1", body: "second"), now: 20))
        let rows = try outbox.rows()
        #expect(rows.count == 1)
        #expect(rows[0].message.body == Array("first".utf8))
        #expect(rows[0].createdAt == 10)
        #expect(rows[0].state == .pending && rows[0].attempts == 0 && rows[0].nextAttemptAt == 10)
    }

    @Test("a slide's events go out in queue order; other slides are not held up", arguments: StoreBackend.allCases)
    func perSlideOrder(backend: StoreBackend) throws {
        let outbox = try makeOutbox(backend)
        try outbox.enqueue(Self.message("a1", slide: "A"), now: 0)
        try outbox.enqueue(Self.message("b1", slide: "B"), now: 1)
        try outbox.enqueue(Self.message("a2", slide: "A"), now: 2)
        let first = try #require(try outbox.nextDue(now: 5))
        #expect(first.message.eventID == "a1")
        // a1 fails and waits 50 s: a2 must wait behind it, b1 goes.
        try outbox.record(OutboxAttempt(.retry(at: 55), status: 503, error: "HTTP 503"), for: first, now: 5)
        #expect(try outbox.nextDue(now: 6)?.message.eventID == "b1")
        try outbox.record(
            OutboxAttempt(.delivered, status: 200), for: try #require(try outbox.nextDue(now: 6)), now: 6)
        #expect(try outbox.nextDue(now: 7) == nil)
        #expect(try outbox.nextDueTime() == 55)
        #expect(try outbox.nextDue(now: 55)?.message.eventID == "a1")
    }

    @Test(
        "dead letters and a disabled endpoint show in the summary and are replayed with the same id and body",
        arguments: StoreBackend.allCases)
    func deadLettersAndReplay(backend: StoreBackend) throws {
        let outbox = try makeOutbox(backend)
        try outbox.enqueue(Self.message("evt_400", slide: "A", body: "x"), now: 0)
        try outbox.enqueue(Self.message("evt_410", slide: "B", body: "y"), now: 0)
        try outbox.enqueue(Self.message("evt_next", slide: "C"), now: 0)
        try outbox.record(
            OutboxAttempt(.dead, status: 400, error: "HTTP 400: bad field"),
            for: try #require(try outbox.row(eventID: "evt_400")), now: 1)
        try outbox.record(
            OutboxAttempt(.endpointGone, status: 410, error: "HTTP 410"),
            for: try #require(try outbox.row(eventID: "evt_410")), now: 2)
        // Nothing more goes to the gone endpoint.
        #expect(try outbox.nextDue(now: 3) == nil)
        var summary = try outbox.summary(now: 100)
        #expect(summary.backlog == 1)
        #expect(summary.oldestUndeliveredAge == 100)
        #expect(summary.deadLetters.map(\.eventID) == ["evt_400", "evt_410"])
        #expect(summary.deadLetters[0].reason == "HTTP 400: bad field" && summary.deadLetters[0].lastStatus == 400)
        #expect(summary.endpointDisabled)
        #expect(summary.disabledEndpoints.first?.url == "https://lis.example.org/in")

        #expect(try outbox.requeue(eventID: "evt_400", now: 200))
        #expect(try !outbox.requeue(eventID: "evt_400", now: 200))  // pending now, not dead
        #expect(try !outbox.requeue(eventID: "evt_unknown", now: 200))
        let replayed = try #require(try outbox.row(eventID: "evt_400"))
        #expect(replayed.state == .pending && replayed.windowStart == 200 && replayed.message.body == Array("x".utf8))
        #expect(try outbox.requeueAllDead(now: 300) == 1)
        summary = try outbox.summary(now: 300)
        #expect(summary.backlog == 3 && summary.deadLetters.isEmpty && !summary.endpointDisabled)
        let json = try JSONEncoder().encode(summary)
        #expect(String(decoding: json, as: UTF8.self).contains("\"oldest_undelivered_age_seconds\":300"))
    }
}
