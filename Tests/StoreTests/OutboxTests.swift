import Foundation
import Testing

@testable import Store

@Suite("Outbox")
struct OutboxTests {
    func makeOutbox(_ backend: StoreBackend) throws -> Outbox {
        Outbox(database: try backend.makeFixture().connect())
    }

    static let url = "https://lis.example.org/in"
    static let webhookOnly = [OutboxMessage.webhook: url]

    static func message(
        _ id: String, slide: String = "sha256:aa", body: String = "{}", destination: String = OutboxMessage.webhook
    ) -> OutboxMessage {
        OutboxMessage(
            eventID: id, slideKey: slide, eventType: "slide.scored", destination: destination,
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
        let first = try #require(try outbox.nextDue(now: 5, destinations: Self.webhookOnly))
        #expect(first.message.eventID == "a1")
        // a1 fails and waits 50 s: a2 must wait behind it, b1 goes.
        try outbox.record(OutboxAttempt(.retry(at: 55), status: 503, error: "HTTP 503"), for: first, now: 5)
        #expect(try outbox.nextDue(now: 6, destinations: Self.webhookOnly)?.message.eventID == "b1")
        try outbox.record(
            OutboxAttempt(.delivered, status: 200),
            for: try #require(try outbox.nextDue(now: 6, destinations: Self.webhookOnly)), now: 6)
        #expect(try outbox.nextDue(now: 7, destinations: Self.webhookOnly) == nil)
        #expect(try outbox.nextDueTime(destinations: Self.webhookOnly) == 55)
        #expect(try outbox.nextDue(now: 55, destinations: Self.webhookOnly)?.message.eventID == "a1")
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
            for: try #require(try outbox.row(eventID: "evt_410")), now: 2, url: Self.url)
        // Nothing more goes to the gone endpoint.
        #expect(try outbox.nextDue(now: 3, destinations: Self.webhookOnly) == nil)
        var summary = try outbox.summary(now: 100)
        #expect(summary.backlog == 1)
        #expect(summary.oldestUndeliveredAge == 100)
        #expect(summary.deadLetters.map(\.eventID) == ["evt_400", "evt_410"])
        #expect(summary.deadLetters[0].reason == "HTTP 400: bad field" && summary.deadLetters[0].lastStatus == 400)
        #expect(summary.endpointDisabled)
        #expect(summary.disabledEndpoints.first?.url == "https://lis.example.org/in")

        #expect(try outbox.requeue(eventID: "evt_400", now: 200) == 1)
        #expect(try outbox.requeue(eventID: "evt_400", now: 200) == 0)  // pending now, not dead
        #expect(try outbox.requeue(eventID: "evt_unknown", now: 200) == 0)
        let replayed = try #require(try outbox.row(eventID: "evt_400"))
        #expect(replayed.state == .pending && replayed.windowStart == 200 && replayed.message.body == Array("x".utf8))
        #expect(try outbox.requeueAllDead(now: 300) == 1)
        summary = try outbox.summary(now: 300)
        #expect(summary.backlog == 3 && summary.deadLetters.isEmpty && !summary.endpointDisabled)
        let json = try JSONEncoder().encode(summary)
        #expect(String(decoding: json, as: UTF8.self).contains("\"oldest_undelivered_age_seconds\":300"))
    }

    @Test(
        "each destination has its own row, order and dead letter; rows wait while their destination is off",
        arguments: StoreBackend.allCases)
    func destinations(backend: StoreBackend) throws {
        let outbox = try makeOutbox(backend)
        try outbox.enqueue(Self.message("e1", slide: "A"), now: 0)
        try outbox.enqueue(Self.message("e1", slide: "A", destination: OutboxMessage.hl7), now: 0)
        try outbox.enqueue(Self.message("e2", slide: "A", destination: OutboxMessage.hl7), now: 1)
        #expect(try outbox.rows(eventID: "e1").map(\.message.destination) == ["webhook", "hl7"])
        // The HL7 row of e1 is refused for good: e2's HL7 row goes next; the webhook row is not affected.
        let hl7Row = try #require(try outbox.row(eventID: "e1", destination: OutboxMessage.hl7))
        try outbox.record(OutboxAttempt(.dead, error: "ACK AR: unknown accession"), for: hl7Row, now: 2)
        #expect(try outbox.nextDue(now: 3, destinations: [OutboxMessage.hl7: "mllp://x"])?.message.eventID == "e2")
        #expect(try outbox.nextDue(now: 3, destinations: Self.webhookOnly)?.message.eventID == "e1")
        // Without any configured destination nothing is due.
        #expect(try outbox.nextDue(now: 3, destinations: [:]) == nil)
        let summary = try outbox.summary(now: 10)
        #expect(summary.destinations.map(\.name) == ["hl7", "webhook"])
        #expect(summary.destinations[0].deadCount == 1 && summary.destinations[0].backlog == 1)
        #expect(summary.deadLetters.first?.destination == "hl7")
        #expect(summary.deadLetters.first?.reason == "ACK AR: unknown accession")
        // Replaying one destination leaves the others alone.
        #expect(try outbox.requeue(eventID: "e1", destination: OutboxMessage.webhook, now: 20) == 0)
        #expect(try outbox.requeue(eventID: "e1", destination: OutboxMessage.hl7, now: 20) == 1)
    }

    @Test(
        "a 410 disables the URL it came from: a new URL for the destination gets the queued rows",
        arguments: StoreBackend.allCases)
    func goneEndpointFollowsTheURL(backend: StoreBackend) throws {
        let outbox = try makeOutbox(backend)
        try outbox.enqueue(Self.message("g1", slide: "A"), now: 0)
        try outbox.enqueue(Self.message("g2", slide: "B"), now: 0)
        try outbox.record(
            OutboxAttempt(.endpointGone, status: 410, error: "HTTP 410"),
            for: try #require(try outbox.row(eventID: "g1")), now: 1, url: "https://old.example.org/in")
        #expect(try outbox.nextDue(now: 2, destinations: [OutboxMessage.webhook: "https://old.example.org/in"]) == nil)
        #expect(
            try outbox.nextDue(now: 2, destinations: [OutboxMessage.webhook: "https://new.example.org/in"])?.message
                .eventID == "g2")
    }

    @Test("an outbox of schema 2 (rows with a target URL) is migrated: its rows become webhook rows, ids kept")
    func migratesTargetURLRows() throws {
        let database = try SQLiteDatabase(path: StoreTestSupport.temporaryFolder() + "/csmil.sqlite3")
        try database.migrate(Array(StoreSchema.sqlite.prefix(2)))
        try database.execute(
            """
            INSERT INTO outbox (event_id, slide_key, event_type, target_url, content_type, body, created_at,
                                window_start, next_attempt_at, state, last_error)
            VALUES ('evt_old', 'sha256:aa', 'slide.scored', 'https://old.example.org/in', 'application/json',
                    X'7B7D', 5, 5, 5, 'dead', 'HTTP 400')
            """)
        try database.execute(
            "INSERT INTO outbox_endpoints (url, disabled_at, status, reason) VALUES ('https://gone', 1, 410, 'x')")
        try Outbox.installSchema(in: database)
        let outbox = Outbox(database: database)
        let row = try #require(try outbox.row(eventID: "evt_old"))
        #expect(row.message.destination == OutboxMessage.webhook && row.state == .dead)
        #expect(row.message.body == Array("{}".utf8) && row.lastError == "HTTP 400")
        #expect(try outbox.summary().disabledEndpoints.map(\.url) == ["https://gone"])
        // Replayed, it goes wherever the webhook points now.
        #expect(try outbox.requeue(eventID: "evt_old", now: 10) == 1)
        #expect(
            try outbox.nextDue(now: 10, destinations: [OutboxMessage.webhook: "https://new.example.org/in"])?.message
                .eventID == "evt_old")
        // A second enqueue of the same event for HL7 is a second row.
        #expect(try outbox.enqueue(Self.message("evt_old", destination: OutboxMessage.hl7)))
    }
}
