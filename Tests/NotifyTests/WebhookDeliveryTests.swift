import Foundation
import Logging
import Sinks
import Store
import Synchronization
import Testing

@testable import Notify

/// The outbox worker against a real HTTP server on loopback (``WebhookSink``) and a real SQLite file.
@Suite("Webhook delivery over HTTP", .timeLimit(.minutes(10)))
struct WebhookDeliveryTests {
    static let secret = WebhookSecret(keys: [[UInt8](repeating: 42, count: 32)])

    /// A database, a sink answering with `responder`, and workers with small backoffs and timeouts.
    ///
    /// `@unchecked Sendable`: the tests touch `workers` from their own task only, one step at a time.
    final class Harness: @unchecked Sendable {
        let folder: String
        let databasePath: String
        let sink: WebhookSink
        let outbox: Outbox
        private(set) var workers: [(delivery: OutboxDelivery, task: Task<Void, any Error>)] = []

        init(port: UInt16 = 0, startSink: Bool = true, responder: WebhookSink.Responder? = nil) throws {
            folder = try Fixtures.temporaryFolder()
            databasePath = folder + "/csmil.sqlite3"
            let database = try SQLiteDatabase(path: databasePath)
            try Outbox.installSchema(in: database)
            outbox = Outbox(database: database)
            // Markers (``settle(url:)``) are always taken, whatever the test's responder says.
            let answer = responder.map { responder in
                { @Sendable (request: WebhookSink.Request, verdict: WebhookSink.Verdict) -> WebhookSink.Reply in
                    request.headers["webhook-id"]?.hasPrefix("evt_marker") == true
                        ? .init(status: 200) : responder(request, verdict)
                }
            }
            sink = WebhookSink(port: port, secret: WebhookDeliveryTests.secret, responder: answer)
            if startSink { try sink.start() }
        }

        /// Runs `body` with a harness and stops its workers and sink afterwards, whatever happened.
        static func with(
            port: UInt16 = 0, startSink: Bool = true, responder: WebhookSink.Responder? = nil,
            _ body: (Harness) async throws -> Void
        ) async throws {
            let harness = try Harness(port: port, startSink: startSink, responder: responder)
            do {
                try await body(harness)
            } catch {
                await harness.stop()
                throw error
            }
            await harness.stop()
        }

        /// The webhook's event body (``Destination/webhook(url:format:fhir:secret:options:retry:)`` with `.event`).
        static let encodeEvent: Destination.Encoder = { report, _, timestamp in
            OutboxMessage(
                payload: try WebhookPayload.event(report: report, timestamp: timestamp),
                slideKey: report.slide.fingerprint)
        }

        /// The destination name of the markers (``settle()``): a second destination, at another URL of the sink.
        static let markerDestination = "marker"

        /// Starts a worker delivering through `transport` (the real webhook transport by default) to `url` (the
        /// sink by default), and the markers to another URL of the sink; `retry` defaults to 0.05 s … 0.2 s backoffs
        /// with full jitter set to its maximum and an hour's window, and requests to 30 s, so that a loaded machine
        /// neither gives up nor times out where a test does not mean it to.
        @discardableResult
        func startWorker(
            retry: RetryPolicy = RetryPolicy(initialDelay: 0.05, maximumDelay: 0.2, window: 3600), timeout: Double = 30,
            idlePoll: Double = 0.5, url: String? = nil, transport: (any DeliveryTransport)? = nil
        ) throws -> OutboxDelivery {
            let transport =
                try transport
                ?? WebhookTransport(
                    secret: WebhookDeliveryTests.secret,
                    options: WebhookClientOptions(connectTimeout: 10, timeout: timeout, allowHTTP: true))
            let delivery = OutboxDelivery(
                configuration: OutboxDelivery.Configuration(
                    store: .sqlite(path: databasePath),
                    destinations: [
                        Destination(
                            name: OutboxMessage.webhook, url: url ?? sink.url, retry: retry, encode: Self.encodeEvent,
                            transport: transport),
                        Destination(
                            name: Self.markerDestination, url: sink.url + "marker", retry: retry,
                            encode: Self.encodeEvent, transport: transport),
                    ], idlePoll: idlePoll, randomFraction: { 1 }),
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            workers.append((delivery, Task { try await delivery.run() }))
            return delivery
        }

        /// Queues the scored fixture report (event id `id`, of the fixture's slide unless `slideKey` says otherwise)
        /// for the webhook (or `destination`) and wakes the workers.
        @discardableResult
        func enqueue(
            _ id: String = "evt_0123", destination: String = OutboxMessage.webhook, slideKey: String? = nil
        ) throws -> OutboxMessage {
            var report = Fixtures.scored()
            report.eventID = id
            if let slideKey { report.slide.fingerprint = slideKey }
            var message = try Self.encodeEvent(report, nil, Date())
            message.destination = destination
            try outbox.database.transaction {
                try outbox.enqueue(message)
            }
            for worker in workers { worker.delivery.wake() }
            return message
        }

        func row(_ id: String = "evt_0123") throws -> OutboxRow { try #require(try outbox.row(eventID: id)) }

        /// Requests the sink received for event `id`.
        func requests(_ id: String = "evt_0123") -> [WebhookSink.Request] {
            sink.events.map(\.request).filter { $0.headers["webhook-id"] == id }
        }

        /// Proves that nothing more happens to the rows queued so far: a marker event of another slide, queued now
        /// for the marker destination (another URL of the sink), is delivered after every row already due, so once
        /// it is delivered every attempt due before it has been made.
        func settle() async throws {
            let marker = "evt_marker_\(UUID().uuidString.prefix(8))"
            try enqueue(marker, destination: Self.markerDestination, slideKey: "sha256:" + marker)
            #expect(
                try await WebhookDeliveryTests.eventually {
                    try self.outbox.row(eventID: marker, destination: Self.markerDestination)?.state == .delivered
                })
        }

        /// Stops worker `index` by cancelling its task, and waits until it has ended.
        func stopWorker(_ index: Int) async {
            workers[index].task.cancel()
            _ = await workers[index].task.result
        }

        func stop() async {
            for index in workers.indices { await stopWorker(index) }
            sink.stop()
        }
    }

    /// Looks again every 20 ms until `condition` holds: waiting for an event, with no deadline of its own (on a
    /// loaded machine the worker may get no thread for a while); the suite's time limit ends a test that hangs.
    static func eventually(_ condition: () throws -> Bool) async rethrows -> Bool {
        while try !condition() { try? await Task.sleep(for: .milliseconds(20)) }
        return true
    }

    @Test("a delivered event is signed so that an independent verifier accepts the exact bytes received")
    func signedDelivery() async throws {
        try await Harness.with { harness in
            try harness.startWorker()
            let payload = try harness.enqueue()
            #expect(try await Self.eventually { try harness.row().state == .delivered })
            let event = try #require(harness.sink.events.first)
            #expect(event.verdict == .verified)
            #expect(
                event.line.contains(
                    "evt_0123 slide.scored \"case 7 (HE).svs\" probability=0.625 label=positive verified"))
            let request = event.request
            #expect(request.body == payload.body)
            #expect(request.headers["content-type"] == "application/json")
            #expect(request.headers["webhook-id"] == "evt_0123")
            let timestamp = try #require(request.headers["webhook-timestamp"])
            #expect(abs(Double(timestamp)! - Date().timeIntervalSince1970) < 300, "within the receivers' window")
            let verdict = try PythonVerifier.run(
                folder: harness.folder, secret: Self.secret, id: "evt_0123", timestamp: timestamp,
                signature: try #require(request.headers["webhook-signature"]), body: request.body)
            #expect(verdict.status == 0, "\(verdict.output)")
            #expect(try harness.row().lastStatus == 200 && harness.row().attempts == 1)
        }
    }

    @Test("500 twice then 200: delivered once after three attempts with the same id and body")
    func retriesThenDelivers() async throws {
        try await Harness.with(responder: { request, _ in .init(status: request.number <= 2 ? 500 : 200) }) {
            harness in
            try harness.startWorker()
            let payload = try harness.enqueue()
            #expect(try await Self.eventually { try harness.row().state == .delivered })
            try await harness.settle()  // nothing more may arrive for it
            let requests = harness.requests()
            #expect(requests.count == 3)
            #expect(requests.allSatisfy { $0.body == payload.body })
            #expect(harness.sink.events.allSatisfy { $0.verdict == .verified })
            let row = try harness.row()
            #expect(row.attempts == 3 && row.lastStatus == 200 && row.lastError == nil)
        }
    }

    @Test("429 with Retry-After: 2 — the next attempt comes no sooner than 2 s later")
    func honoursRetryAfter() async throws {
        try await Harness.with(responder: { request, _ in
            request.number == 1 ? .init(status: 429, headers: [("Retry-After", "2")]) : .init(status: 200)
        }) { harness in
            try harness.startWorker()
            try harness.enqueue()
            #expect(try await Self.eventually { try harness.row().state == .delivered })
            let requests = harness.requests()
            try #require(requests.count == 2)
            #expect(requests[1].receivedAt - requests[0].receivedAt >= 2.0)
            #expect(try harness.row().attempts == 2)
        }
    }

    @Test("400: dead letter at once, never retried")
    func badRequestIsDead() async throws {
        try await Harness.with(responder: { _, _ in .init(status: 400) }) { harness in
            try harness.startWorker()
            try harness.enqueue()
            #expect(try await Self.eventually { try harness.row().state == .dead })
            try await harness.settle()
            #expect(harness.requests().count == 1)
            let summary = try harness.outbox.summary()
            #expect(summary.deadLetters.map(\.eventID) == ["evt_0123"])
            #expect(summary.deadLetters.first?.lastStatus == 400)
        }
    }

    @Test("410: the endpoint is disabled and later events to it wait; a replay sends them")
    func goneDisablesEndpoint() async throws {
        let gone = LockedFlag(true)
        try await Harness.with(responder: { _, _ in .init(status: gone.value ? 410 : 200) }) { harness in
            let worker = try harness.startWorker()
            try harness.enqueue("evt_1")
            #expect(try await Self.eventually { try harness.row("evt_1").state == .disabled })
            try harness.enqueue("evt_2")
            try await harness.settle()  // another endpoint still works
            #expect(harness.requests("evt_2").isEmpty)
            #expect(try harness.outbox.summary().endpointDisabled)
            #expect(try harness.row("evt_2").state == .pending)

            gone.value = false
            #expect(try harness.outbox.requeueAllDead() == 1)
            worker.wake()
            #expect(
                try await Self.eventually {
                    try harness.row("evt_1").state == .delivered && harness.row("evt_2").state == .delivered
                })
            let ids = harness.sink.events.compactMap { $0.request.headers["webhook-id"] }
            #expect(ids.filter { !$0.hasPrefix("evt_marker") } == ["evt_1", "evt_1", "evt_2"])
        }
    }

    @Test("a server that accepts and never answers: the attempt times out and is retried")
    func timeoutIsRetried() async throws {
        try await Harness.with(responder: { request, _ in request.number == 1 ? .never : .init(status: 200) }) {
            harness in
            let started = Date()
            try harness.startWorker(timeout: 0.5)
            try harness.enqueue()
            #expect(try await Self.eventually { try harness.row().state == .delivered })
            #expect(Date().timeIntervalSince(started) >= 0.5)
            // The first request is never answered; a loaded machine may time out a later one too.
            let count = harness.sink.events.count
            #expect(count >= 2)
            #expect(harness.sink.events.first?.status == 0)
            #expect(try harness.row().attempts == count)
        }
    }

    @Test("the reason of a timed-out attempt is recorded while it waits")
    func timeoutReasonRecorded() async throws {
        try await Harness.with(responder: { _, _ in .never }) { harness in
            try harness.startWorker(retry: RetryPolicy(initialDelay: 30, maximumDelay: 30, window: 600), timeout: 0.3)
            try harness.enqueue()
            #expect(try await Self.eventually { try harness.row().attempts == 1 })
            let row = try harness.row()
            #expect(row.state == .pending && row.lastStatus == nil)
            #expect(row.lastError?.hasPrefix("timeout:") == true)
        }
    }

    @Test("connection refused for a while, then the receiver comes up: delivered")
    func refusedThenUp() async throws {
        // Find a free port, then leave it closed.
        let probe = WebhookSink(secret: Self.secret)
        try probe.start()
        let port = probe.port
        probe.stop()
        try await Harness.with(port: port, startSink: false) { harness in
            try harness.startWorker()
            try harness.enqueue()
            #expect(try await Self.eventually { try harness.row().attempts >= 2 })
            let refused = try harness.row()
            #expect(refused.state == .pending && refused.lastStatus == nil && refused.lastError != nil)
            try harness.sink.start()
            #expect(try await Self.eventually { try harness.row().state == .delivered })
            #expect(harness.sink.events.count == 1)
            #expect(harness.sink.events.first?.request.headers["webhook-id"] == "evt_0123")
        }
    }

    @Test(
        "a worker cancelled in the middle of a send leaves the event pending; the next one sends the same id and body")
    func interruptedSendIsResent() async throws {
        try await Harness.with(responder: { request, _ in request.number == 1 ? .never : .init(status: 200) }) {
            harness in
            try harness.startWorker(timeout: 600)
            let payload = try harness.enqueue()
            #expect(await Self.eventually { harness.sink.events.count == 1 })
            // Cancelling ends the worker only if it aborts the transfer: the request would run for 600 s otherwise.
            await harness.stopWorker(0)
            var row = try harness.row()
            #expect(row.state == .pending && row.attempts == 0)

            // A fresh worker on a fresh connection, as after a restart.
            try harness.startWorker()
            #expect(try await Self.eventually { try harness.row().state == .delivered })
            row = try harness.row()
            let requests = harness.requests()
            #expect(requests.count == 2)
            #expect(requests.allSatisfy { $0.body == payload.body })
            #expect(row.message.body == payload.body && row.attempts == 1)
        }
    }

    // MARK: - Scheduling, without sockets

    /// A transport for the tests about when the worker acts, not about the wire: it records what it is given and
    /// answers 200, or with `.hold` waits until its task is cancelled.
    final class ScriptedTransport: DeliveryTransport {
        enum Answer: Sendable {
            case outcome(DeliveryOutcome)
            case hold
        }

        private let script: Mutex<[Answer]>
        private let log = Mutex<[String]>([])

        init(_ script: [Answer] = []) { self.script = Mutex(script) }

        var sent: [String] { log.withLock { $0 } }

        /// One host in these tests: the lease on a row only has to be longer than the worker's own attempt.
        var longestAttempt: Double { 1 }

        func deliver(_ message: OutboxMessage, to url: String, now: Double) async -> DeliveryOutcome? {
            log.withLock { $0.append(message.eventID) }
            let answer = script.withLock { $0.isEmpty ? .outcome(.delivered(status: 200)) : $0.removeFirst() }
            switch answer {
            case .outcome(let outcome):
                return outcome
            case .hold:
                while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
                return nil
            }
        }
    }

    @Test("wake() makes an idle worker look at the outbox at once, not at its next poll an hour later")
    func wakeIsImmediate() async throws {
        try await Harness.with(startSink: false) { harness in
            let transport = ScriptedTransport()
            try harness.startWorker(idlePoll: 3600, transport: transport)
            try harness.enqueue("evt_a")
            #expect(try await Self.eventually { try harness.row("evt_a").state == .delivered })
            try harness.enqueue("evt_b")
            #expect(try await Self.eventually { try harness.row("evt_b").state == .delivered })
            #expect(transport.sent == ["evt_a", "evt_b"])
        }
    }

    @Test("cancelling the worker during a transfer records nothing: the row stays pending with no attempt")
    func cancellationRecordsNothing() async throws {
        try await Harness.with(startSink: false) { harness in
            let transport = ScriptedTransport([.hold])
            try harness.startWorker(transport: transport)
            try harness.enqueue()
            #expect(await Self.eventually { transport.sent == ["evt_0123"] })
            await harness.stopWorker(0)
            let row = try harness.row()
            #expect(row.state == .pending && row.attempts == 0 && row.lastError == nil)
        }
    }

    @Test("the client refuses plain http unless allowed, and never follows redirects; a 307 is retried, a 308 is not")
    func clientRules() throws {
        let harness = try Harness(responder: { request, _ in
            .init(status: request.number == 1 ? 307 : 308, headers: [("Location", "http://127.0.0.1:1/")])
        })
        defer { harness.sink.stop() }  // no worker to stop
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
        defer { harness.sink.stop() }  // no worker to stop
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
final class LockedFlag: Sendable {
    private let stored: Mutex<Bool>
    init(_ value: Bool) { stored = Mutex(value) }
    var value: Bool {
        get { stored.withLock { $0 } }
        set { stored.withLock { $0 = newValue } }
    }
}
