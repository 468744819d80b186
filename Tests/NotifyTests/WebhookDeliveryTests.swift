import Foundation
import Logging
import Sinks
import Store
import Testing

@testable import Notify

/// The outbox worker against a real HTTP server on loopback (``WebhookSink``) and a real SQLite file.
@Suite("Webhook delivery over HTTP")
struct WebhookDeliveryTests {
    static let secret = WebhookSecret(keys: [[UInt8](repeating: 42, count: 32)])

    /// A database, a sink answering with `responder`, and a worker with small backoffs and timeouts.
    final class Harness: @unchecked Sendable {
        let folder: String
        let databasePath: String
        let sink: WebhookSink
        let outbox: Outbox
        private(set) var workers: [OutboxDelivery] = []

        init(port: UInt16 = 0, startSink: Bool = true, responder: WebhookSink.Responder? = nil) throws {
            folder = try Fixtures.temporaryFolder()
            databasePath = folder + "/csmil.sqlite3"
            let database = try SQLiteDatabase(path: databasePath)
            try Outbox.installSchema(in: database)
            outbox = Outbox(database: database)
            sink = WebhookSink(port: port, secret: WebhookDeliveryTests.secret, responder: responder)
            if startSink { try sink.start() }
        }

        /// Starts a worker; `retry` defaults to 0.05 s … 0.2 s backoffs with full jitter set to its maximum.
        @discardableResult
        func startWorker(
            retry: RetryPolicy = RetryPolicy(initialDelay: 0.05, maximumDelay: 0.2, window: 60), timeout: Double = 2,
            url: String? = nil
        ) throws -> OutboxDelivery {
            let worker = OutboxDelivery(
                configuration: OutboxDelivery.Configuration(
                    store: .sqlite(path: databasePath), url: url ?? sink.url, secret: WebhookDeliveryTests.secret,
                    client: WebhookClientOptions(connectTimeout: 1, timeout: timeout, allowHTTP: true),
                    retry: retry, idlePoll: 0.5, randomFraction: { 1 }),
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            try worker.start()
            workers.append(worker)
            return worker
        }

        /// Queues the scored fixture report (event id `id`) for the webhook and wakes the workers.
        @discardableResult
        func enqueue(_ id: String = "evt_0123") throws -> WebhookPayload {
            var report = Fixtures.scored()
            report.eventID = id
            let payload = try WebhookPayload.event(report: report, timestamp: Date())
            try outbox.database.transaction {
                try outbox.enqueue(
                    OutboxMessage(payload: payload, slideKey: report.slide.fingerprint))
            }
            for worker in workers { worker.wake() }
            return payload
        }

        func row(_ id: String = "evt_0123") throws -> OutboxRow { try #require(try outbox.row(eventID: id)) }

        func stop() {
            for worker in workers { worker.stop() }
            sink.stop()
        }
    }

    /// Polls until `condition` holds or `timeout` seconds pass.
    static func eventually(_ timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return try condition()
    }

    @Test("a delivered event is signed so that an independent verifier accepts the exact bytes received")
    func signedDelivery() throws {
        let harness = try Harness()
        defer { harness.stop() }
        try harness.startWorker()
        let payload = try harness.enqueue()
        #expect(try Self.eventually { try harness.row().state == .delivered })
        let event = try #require(harness.sink.events.first)
        #expect(event.verdict == .verified)
        #expect(
            event.line.contains("evt_0123 slide.scored \"case 7 (HE).svs\" probability=0.625 label=positive verified"))
        let request = event.request
        #expect(request.body == payload.body)
        #expect(request.headers["content-type"] == "application/json")
        #expect(request.headers["webhook-id"] == "evt_0123")
        let timestamp = try #require(request.headers["webhook-timestamp"])
        #expect(abs(Double(timestamp)! - Date().timeIntervalSince1970) < 30)
        let verdict = try PythonVerifier.run(
            folder: harness.folder, secret: Self.secret, id: "evt_0123", timestamp: timestamp,
            signature: try #require(request.headers["webhook-signature"]), body: request.body)
        #expect(verdict.status == 0, "\(verdict.output)")
        #expect(try harness.row().lastStatus == 200 && harness.row().attempts == 1)
    }

    @Test("500 twice then 200: delivered once after three attempts with the same id and body")
    func retriesThenDelivers() throws {
        let harness = try Harness(responder: { request, _ in .init(status: request.number <= 2 ? 500 : 200) })
        defer { harness.stop() }
        try harness.startWorker()
        let payload = try harness.enqueue()
        #expect(try Self.eventually { try harness.row().state == .delivered })
        Thread.sleep(forTimeInterval: 0.3)  // nothing more may arrive
        let requests = harness.sink.events.map(\.request)
        #expect(requests.count == 3)
        #expect(Set(requests.map { $0.headers["webhook-id"] }) == ["evt_0123"])
        #expect(requests.allSatisfy { $0.body == payload.body })
        #expect(harness.sink.events.allSatisfy { $0.verdict == .verified })
        let row = try harness.row()
        #expect(row.attempts == 3 && row.lastStatus == 200 && row.lastError == nil)
    }

    @Test("429 with Retry-After: 2 — the next attempt comes no sooner than 2 s later")
    func honoursRetryAfter() throws {
        let harness = try Harness(responder: { request, _ in
            request.number == 1 ? .init(status: 429, headers: [("Retry-After", "2")]) : .init(status: 200)
        })
        defer { harness.stop() }
        try harness.startWorker()
        try harness.enqueue()
        #expect(try Self.eventually { try harness.row().state == .delivered })
        let requests = harness.sink.events.map(\.request)
        try #require(requests.count == 2)
        #expect(requests[1].receivedAt - requests[0].receivedAt >= 2.0)
        #expect(try harness.row().attempts == 2)
    }

    @Test("400: dead letter at once, never retried")
    func badRequestIsDead() throws {
        let harness = try Harness(responder: { _, _ in .init(status: 400) })
        defer { harness.stop() }
        try harness.startWorker()
        try harness.enqueue()
        #expect(try Self.eventually { try harness.row().state == .dead })
        Thread.sleep(forTimeInterval: 0.5)
        #expect(harness.sink.events.count == 1)
        let summary = try harness.outbox.summary()
        #expect(summary.deadLetters.map(\.eventID) == ["evt_0123"])
        #expect(summary.deadLetters.first?.lastStatus == 400)
    }

    @Test("410: the endpoint is disabled and later events to it wait; a replay sends them")
    func goneDisablesEndpoint() throws {
        let gone = LockedFlag(true)
        let harness = try Harness(responder: { _, _ in .init(status: gone.value ? 410 : 200) })
        defer { harness.stop() }
        let worker = try harness.startWorker()
        try harness.enqueue("evt_1")
        #expect(try Self.eventually { try harness.row("evt_1").state == .disabled })
        try harness.enqueue("evt_2")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(harness.sink.events.count == 1)
        #expect(try harness.outbox.summary().endpointDisabled)
        #expect(try harness.row("evt_2").state == .pending)

        gone.value = false
        #expect(try harness.outbox.requeueAllDead() == 1)
        worker.wake()
        #expect(
            try Self.eventually {
                try harness.row("evt_1").state == .delivered && harness.row("evt_2").state == .delivered
            })
        #expect(harness.sink.events.compactMap { $0.request.headers["webhook-id"] } == ["evt_1", "evt_1", "evt_2"])
    }

    @Test("a server that accepts and never answers: the attempt times out and is retried")
    func timeoutIsRetried() throws {
        let harness = try Harness(responder: { request, _ in request.number == 1 ? .never : .init(status: 200) })
        defer { harness.stop() }
        let started = Date()
        try harness.startWorker(timeout: 0.5)
        try harness.enqueue()
        #expect(try Self.eventually { try harness.row().state == .delivered })
        #expect(Date().timeIntervalSince(started) >= 0.5)
        #expect(harness.sink.events.count == 2)
        #expect(harness.sink.events.first?.status == 0)
        #expect(try harness.row().attempts == 2)
    }

    @Test("the reason of a timed-out attempt is recorded while it waits")
    func timeoutReasonRecorded() throws {
        let harness = try Harness(responder: { _, _ in .never })
        defer { harness.stop() }
        try harness.startWorker(retry: RetryPolicy(initialDelay: 30, maximumDelay: 30, window: 600), timeout: 0.3)
        try harness.enqueue()
        #expect(try Self.eventually { try harness.row().attempts == 1 })
        let row = try harness.row()
        #expect(row.state == .pending && row.lastStatus == nil)
        #expect(row.lastError?.hasPrefix("timeout:") == true)
    }

    @Test("connection refused for a while, then the receiver comes up: delivered")
    func refusedThenUp() throws {
        // Find a free port, then leave it closed.
        let probe = WebhookSink(secret: Self.secret)
        try probe.start()
        let port = probe.port
        probe.stop()
        let harness = try Harness(port: port, startSink: false)
        defer { harness.stop() }
        try harness.startWorker()
        try harness.enqueue()
        #expect(try Self.eventually { try harness.row().attempts >= 2 })
        let refused = try harness.row()
        #expect(refused.state == .pending && refused.lastStatus == nil && refused.lastError != nil)
        try harness.sink.start()
        #expect(try Self.eventually { try harness.row().state == .delivered })
        #expect(harness.sink.events.count == 1)
        #expect(harness.sink.events.first?.request.headers["webhook-id"] == "evt_0123")
    }

    @Test("a worker stopped in the middle of a send leaves the event pending; the next one sends the same id and body")
    func interruptedSendIsResent() throws {
        let harness = try Harness(responder: { request, _ in request.number == 1 ? .never : .init(status: 200) })
        defer { harness.stop() }
        let first = try harness.startWorker(timeout: 20)
        let payload = try harness.enqueue()
        #expect(Self.eventually { harness.sink.events.count == 1 })
        let stopping = Date()
        first.stop()
        #expect(Date().timeIntervalSince(stopping) < 5)
        var row = try harness.row()
        #expect(row.state == .pending && row.attempts == 0)

        // A fresh worker on a fresh connection, as after a restart.
        try harness.startWorker()
        #expect(try Self.eventually { try harness.row().state == .delivered })
        row = try harness.row()
        let requests = harness.sink.events.map(\.request)
        #expect(requests.count == 2)
        #expect(requests.allSatisfy { $0.headers["webhook-id"] == "evt_0123" && $0.body == payload.body })
        #expect(row.message.body == payload.body && row.attempts == 1)
    }

    @Test("the client refuses plain http unless allowed, and never follows redirects; a 307 is retried, a 308 is not")
    func clientRules() throws {
        let harness = try Harness(responder: { request, _ in
            .init(status: request.number == 1 ? 307 : 308, headers: [("Location", "http://127.0.0.1:1/")])
        })
        defer { harness.stop() }
        let strict = try WebhookClient(options: WebhookClientOptions(timeout: 2))
        guard
            case .transportFailure(false, let message) = strict.post(
                url: harness.sink.url, contentType: "application/json", headers: [], body: [1])
        else {
            Issue.record("plain http should be refused")
            return
        }
        #expect(message.contains("allow_http"))
        #expect(harness.sink.events.isEmpty)
        let loose = try WebhookClient(options: WebhookClientOptions(timeout: 2, allowHTTP: true))
        let response = loose.post(url: harness.sink.url, contentType: "application/json", headers: [], body: [1])
        #expect(response == .response(status: 307, retryAfter: nil, body: ""))
        guard case .retry(_, 307, nil) = DeliveryOutcome(response, now: 0) else {
            Issue.record("a 307 is a temporary failure: \(String(describing: DeliveryOutcome(response, now: 0)))")
            return
        }
        let permanent = loose.post(url: harness.sink.url, contentType: "application/json", headers: [], body: [1])
        #expect(permanent == .response(status: 308, retryAfter: nil, body: ""))
        guard case .deadLetter(308, _) = DeliveryOutcome(permanent, now: 0) else {
            Issue.record("a 308 is a dead letter")
            return
        }
        #expect(harness.sink.events.count == 2, "each request reached the receiver once: no redirect was followed")
    }

    @Test("the sink rejects a bad signature and a stale timestamp with 401")
    func sinkRejects() throws {
        let harness = try Harness()
        defer { harness.stop() }
        let client = try WebhookClient(options: WebhookClientOptions(timeout: 2, allowHTTP: true))
        let body = Array("{}".utf8)
        let now = Int64(Date().timeIntervalSince1970)
        let wrong = WebhookSigner(secret: WebhookSecret(keys: [[UInt8](repeating: 1, count: 32)]))
        let right = WebhookSigner(secret: Self.secret)
        let cases: [(Int64, WebhookSigner)] = [
            (now, wrong), (now - 301, right), (now + 400, right), (now - 200, right),
        ]
        var statuses: [Int] = []
        for (timestamp, signer) in cases {
            let response = client.post(
                url: harness.sink.url, contentType: "application/json",
                headers: signer.headers(id: "evt_x", timestamp: timestamp, body: body), body: body)
            if case .response(let status, _, _) = response { statuses.append(status) }
        }
        #expect(statuses == [401, 401, 401, 200])
        #expect(harness.sink.events.map(\.line).first?.contains("rejected (bad signature)") == true)
    }
}

/// A flag shared with a responder closure.
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Bool
    init(_ value: Bool) { stored = value }
    var value: Bool {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
