import Foundation
import Notify
import Sinks
import Store
import Testing

@testable import Daemon

/// `csmil outbox retry|deliver` and `csmil webhook-sink`, run as the real binary against a real SQLite file and a
/// real HTTP server on loopback.
@Suite("csmil outbox and webhook-sink")
struct OutboxCommandTests {
    static let secret = WebhookSecret(keys: [[UInt8](repeating: 11, count: 32)])

    /// A configuration file whose state folder holds an outbox, and a secret file; removed with the value.
    final class Setup {
        let folder: URL
        let config: String
        let secretFile: String
        let outbox: Outbox

        deinit { try? FileManager.default.removeItem(at: folder) }

        init(url: String = "http://127.0.0.1:9/") throws {
            folder = try TestSupport.temporaryDirectory()
            secretFile = folder.appendingPathComponent("webhook.secret").path
            try TestSupport.write(
                OutboxCommandTests.secret.encoded[0] + "\n", to: URL(fileURLWithPath: secretFile), mode: 0o600)
            let state = folder.appendingPathComponent("state")
            try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
            config = folder.appendingPathComponent("csmil.toml").path
            try TestSupport.write(
                """
                [watch]
                directory = "incoming"
                [state]
                directory = "state"
                [model]
                directory = "model"
                [webhook]
                url = "\(url)"
                secret_file = "webhook.secret"
                allow_http = true
                retry_initial_seconds = 0.05
                retry_max_seconds = 0.2
                timeout_seconds = 20
                """, to: URL(fileURLWithPath: config))
            let database = try SQLiteDatabase(path: state.appendingPathComponent("csmil.sqlite3").path)
            try Outbox.installSchema(in: database)
            outbox = Outbox(database: database)
        }

        @discardableResult
        func enqueue(_ id: String, url: String, body: String = #"{"type":"slide.scored"}"#) throws -> [UInt8] {
            let bytes = Array(body.utf8)
            try outbox.enqueue(
                OutboxMessage(
                    eventID: id, slideKey: "sha256:ab", eventType: "slide.scored", destination: OutboxMessage.webhook,
                    contentType: "application/json", body: bytes))
            return bytes
        }
    }

    @Test("outbox retry EVENT_ID replays a dead event; an unknown id fails naming the database")
    func retryOne() throws {
        let setup = try Setup()
        try setup.enqueue("evt_dead", url: "http://127.0.0.1:9/")
        let row = try #require(try setup.outbox.row(eventID: "evt_dead"))
        try setup.outbox.record(
            .deadLetter(status: 400, reason: "HTTP 400"), for: row, policy: RetryPolicy(), randomFraction: 0)

        let replay = try TestSupport.csmil("outbox", "retry", "evt_dead", "--config", setup.config)
        #expect(replay.status == 0, "\(replay.stderr)")
        #expect(replay.stdout.contains("requeued evt_dead"))
        #expect(try setup.outbox.row(eventID: "evt_dead")?.state == .pending)

        let again = try TestSupport.csmil("outbox", "retry", "evt_dead", "--config", setup.config)
        #expect(again.status != 0)
        #expect(again.stderr.contains("csmil.sqlite3") && again.stderr.contains("is pending, not dead"))
        let unknown = try TestSupport.csmil("outbox", "retry", "evt_nope", "--config", setup.config)
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("evt_nope is not in the outbox"))
        let neither = try TestSupport.csmil("outbox", "retry", "--config", setup.config)
        #expect(neither.status != 0)
        #expect(neither.stderr.contains("--all-dead"))
    }

    @Test("outbox retry --all-dead replays every dead event and re-enables a gone endpoint")
    func retryAll() throws {
        let setup = try Setup()
        for id in ["a", "b"] {
            try setup.enqueue(id, url: "http://127.0.0.1:9/")
        }
        let policy = RetryPolicy()
        try setup.outbox.record(
            .deadLetter(status: 422, reason: "HTTP 422"), for: try #require(try setup.outbox.row(eventID: "a")),
            policy: policy, randomFraction: 0)
        try setup.outbox.record(
            .endpointGone(status: 410, reason: "HTTP 410"), for: try #require(try setup.outbox.row(eventID: "b")),
            policy: policy, randomFraction: 0)
        let result = try TestSupport.csmil("outbox", "retry", "--all-dead", "--config", setup.config)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("requeued 2 dead events"))
        let summary = try setup.outbox.summary()
        #expect(summary.backlog == 2 && summary.deadLetters.isEmpty && !summary.endpointDisabled)
    }

    @Test("outbox retry without a job store says where it looked")
    func noJobStore() throws {
        let setup = try Setup()
        try FileManager.default.removeItem(at: setup.folder.appendingPathComponent("state"))
        let result = try TestSupport.csmil("outbox", "retry", "--all-dead", "--config", setup.config)
        #expect(result.status != 0)
        #expect(result.stderr.contains("state/csmil.sqlite3: no job store here"))
    }

    @Test(
        "kill -9 of the delivering process mid-send: after a restart the event is delivered with the same id and body")
    func killedMidSend() throws {
        let sink = WebhookSink(
            secret: Self.secret,
            responder: { request, _ in
                request.number == 1 ? .never : .init(status: 200)
            })
        try sink.start()
        defer { sink.stop() }
        let setup = try Setup(url: sink.url)
        let body = try setup.enqueue("evt_kill", url: sink.url)

        let process = Process()
        process.executableURL = try TestSupport.binary()
        process.arguments = ["outbox", "deliver", "--config", setup.config]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while sink.events.isEmpty && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(sink.events.count == 1)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)
        let interrupted = try #require(try setup.outbox.row(eventID: "evt_kill"))
        #expect(interrupted.state == .pending && interrupted.attempts == 0)

        let restart = try TestSupport.csmil("outbox", "deliver", "--until-empty", "--config", setup.config)
        #expect(restart.status == 0, "\(restart.stderr)")
        let row = try #require(try setup.outbox.row(eventID: "evt_kill"))
        #expect(row.state == .delivered && row.attempts == 1 && row.message.body == body)
        let requests = sink.events.map(\.request)
        #expect(requests.count == 2)
        #expect(requests.allSatisfy { $0.headers["webhook-id"] == "evt_kill" && $0.body == body })
        #expect(sink.events.last?.verdict == .verified)
    }

    @Test("csmil webhook-sink verifies, prints one line per event, fails the first N and rejects bad signatures")
    func sinkCommand() throws {
        let setup = try Setup()
        // A free port: bind, read it, release it.
        let probe = WebhookSink(secret: Self.secret)
        try probe.start()
        let port = probe.port
        probe.stop()

        let process = Process()
        process.executableURL = try TestSupport.binary()
        process.arguments = [
            "webhook-sink", "--port", "\(port)", "--secret-file", setup.secretFile, "--fail-first", "1",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }
        let client = try WebhookClient(options: WebhookClientOptions(connectTimeout: 1, timeout: 5, allowHTTP: true))
        let url = "http://127.0.0.1:\(port)/"
        var report = SlideReportFixture.report
        report.eventID = "evt_sink"
        let payload = try WebhookPayload.event(report: report, timestamp: Date())
        func send(_ signer: WebhookSigner) -> Int? {
            let now = Int64(Date().timeIntervalSince1970)
            let response = client.post(
                url: url, contentType: payload.contentType,
                headers: signer.headers(id: payload.eventID, timestamp: now, body: payload.body), body: payload.body)
            if case .response(let status, _, _) = response { return status }
            return nil
        }
        var first = send(WebhookSigner(secret: Self.secret))
        let deadline = Date().addingTimeInterval(120)
        while first == nil && Date() < deadline {  // the sink is still starting
            Thread.sleep(forTimeInterval: 0.1)
            first = send(WebhookSigner(secret: Self.secret))
        }
        #expect(first == 500)
        #expect(send(WebhookSigner(secret: Self.secret)) == 200)
        #expect(send(WebhookSigner(secret: WebhookSecret(keys: [[UInt8](repeating: 1, count: 32)]))) == 401)
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "SIGTERM stops it cleanly")
        let lines = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").map(String.init)
        #expect(lines.count == 3, "\(lines)")
        #expect(
            lines.first?.hasPrefix("evt_sink slide.scored slide.svs probability=0.75 label=positive verified") == true)
        #expect(lines.first?.hasSuffix("→ 500") == true)
        #expect(lines.dropFirst().first?.hasSuffix("verified → 200") == true)
        #expect(lines.last?.contains("rejected (bad signature) → 401") == true)
    }

    @Test("webhook-sink refuses a missing secret file, naming it")
    func sinkMissingSecret() throws {
        let result = try TestSupport.csmil(
            "webhook-sink", "--port", "0", "--secret-file", "/nonexistent/webhook.secret")
        #expect(result.status != 0)
        #expect(result.stderr.contains("/nonexistent/webhook.secret"))
    }
}

/// A small scored report for the sink's output line.
enum SlideReportFixture {
    static let report = SlideReport(
        eventID: "evt", status: .scored,
        slide: SlideReport.Slide(path: "/srv/scanner/slide.svs", name: "slide.svs", fingerprint: "sha256:ab"),
        model: SlideReport.Model(name: "demo", architecture: "resnet18", files: [:]),
        result: SlideReport.Result(probability: 0.75, label: "positive", threshold: 0.5, headProbabilities: [0.75]),
        tiles: SlideReport.Tiles(count: 1), timing: SlideReport.Timing(seconds: 1))
}

/// Issue 14 item 3: queued events follow the configuration.
@Suite("csmil outbox follows the configured URL")
struct OutboxDestinationCommandTests {
    @Test("a dead event replayed after [webhook] url changed goes to the new URL, with the same id and body")
    func retryUsesTheCurrentURL() throws {
        let old = WebhookSink(secret: OutboxCommandTests.secret, status: 400)
        try old.start()
        defer { old.stop() }
        let new = WebhookSink(secret: OutboxCommandTests.secret)
        try new.start()
        defer { new.stop() }
        let setup = try OutboxCommandTests.Setup(url: old.url)
        let body = try setup.enqueue("evt_moved", url: old.url)
        let first = try TestSupport.csmil("outbox", "deliver", "--until-empty", "--config", setup.config)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try setup.outbox.row(eventID: "evt_moved")?.state == .dead)
        #expect(old.events.count == 1)

        // The operator fixes the URL; the queued (dead) row names the destination, not the old URL.
        let text = try String(contentsOfFile: setup.config, encoding: .utf8)
        try text.replacingOccurrences(of: old.url, with: new.url).write(
            toFile: setup.config, atomically: true, encoding: .utf8)
        #expect(try TestSupport.csmil("outbox", "retry", "--all-dead", "--config", setup.config).status == 0)
        let second = try TestSupport.csmil("outbox", "deliver", "--until-empty", "--config", setup.config)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try setup.outbox.row(eventID: "evt_moved")?.state == .delivered)
        #expect(old.events.count == 1)
        #expect(new.events.map { $0.request.headers["webhook-id"] } == ["evt_moved"])
        #expect(new.events.first?.request.body == body)
    }
}
