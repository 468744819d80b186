import Foundation
import Store
import Testing

@testable import Notify

/// How a transport's answer is judged into what the outbox records (`DeliveryOutcome` + `RetryPolicy` →
/// `OutboxAttempt`), on a real outbox file.
@Suite("Outbox records delivery outcomes")
struct OutboxRecordTests {
    func makeOutbox() throws -> Outbox {
        let database = try SQLiteDatabase(path: Fixtures.temporaryFolder() + "/csmil.sqlite3")
        try Outbox.installSchema(in: database)
        return Outbox(database: database)
    }

    static func message(_ id: String) -> OutboxMessage {
        OutboxMessage(
            eventID: id, slideKey: "sha256:aa", eventType: "slide.scored", destination: OutboxMessage.webhook,
            contentType: "application/json", body: Array("{}".utf8))
    }

    @Test("a retryable failure is scheduled by the policy's full jitter: due at now + cap × fraction")
    func retryScheduled() throws {
        let outbox = try makeOutbox()
        try outbox.enqueue(Self.message("evt_1"), now: 0)
        let policy = RetryPolicy(initialDelay: 100, maximumDelay: 100, window: 1000)
        let state = try outbox.record(
            .retry(reason: "HTTP 503", status: 503, retryAfter: nil),
            for: try #require(try outbox.row(eventID: "evt_1")), policy: policy, randomFraction: 0.5, now: 5)
        #expect(state == .pending)
        let row = try #require(try outbox.row(eventID: "evt_1"))
        #expect(row.nextAttemptAt == 55 && row.attempts == 1 && row.lastStatus == 503 && row.lastError == "HTTP 503")
    }

    @Test("retrying past the window turns the event into a dead letter with the reason")
    func windowExhausted() throws {
        let outbox = try makeOutbox()
        try outbox.enqueue(Self.message("evt_1"), now: 0)
        let state = try outbox.record(
            .retry(reason: "timeout: Operation timed out", status: nil, retryAfter: nil),
            for: try #require(try outbox.row(eventID: "evt_1")), policy: RetryPolicy(window: 60), randomFraction: 1,
            now: 58)
        #expect(state == .dead)
        let row = try #require(try outbox.row(eventID: "evt_1"))
        #expect(row.lastError?.hasPrefix("gave up after 1 attempts") == true)
        #expect(row.lastError?.hasSuffix("timeout: Operation timed out") == true)
    }

    @Test("a refusal is a dead letter and a 410 disables the endpoint, each with the receiver's status")
    func refusals() throws {
        let outbox = try makeOutbox()
        try outbox.enqueue(Self.message("evt_400"), now: 0)
        #expect(
            try outbox.record(
                .deadLetter(status: 400, reason: "HTTP 400: bad field"),
                for: try #require(try outbox.row(eventID: "evt_400")), policy: RetryPolicy(), randomFraction: 0, now: 1)
                == .dead)
        #expect(try outbox.row(eventID: "evt_400")?.lastStatus == 400)
        try outbox.enqueue(Self.message("evt_410"), now: 2)
        #expect(
            try outbox.record(
                .endpointGone(status: 410, reason: "HTTP 410"), for: try #require(try outbox.row(eventID: "evt_410")),
                policy: RetryPolicy(), randomFraction: 0, now: 3, url: "https://lis.example.org/in") == .disabled)
        #expect(try outbox.summary(now: 4).disabledEndpoints.map(\.url) == ["https://lis.example.org/in"])
    }
}
