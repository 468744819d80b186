import Foundation
import Ingest
import Notify
import Sinks
import Store
import SyntheticSlides
import Testing

@testable import Daemon

/// `csmil watch` as systemd runs it: a real child process, real inotify on a temporary folder, a real SQLite job
/// store, real slides, the notify protocol on a datagram socket bound at `NOTIFY_SOCKET`, and the webhook sink on
/// loopback receiving the signed events.
@Suite("csmil watch", .serialized)
struct WatchDaemonTests {
    /// The sd_notify side of systemd: a Unix datagram socket collecting every message.
    ///
    /// `@unchecked Sendable`: `messages` and the reader's state are touched only while `lock` is held.
    final class NotifySocket: @unchecked Sendable {
        let path: String
        private let descriptor: Int32
        private let lock = NSLock()
        private var messages: [String] = []

        init(in folder: URL) throws {
            path = folder.appendingPathComponent("notify.sock").path
            descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                let bytes = Array(path.utf8)
                for (index, byte) in bytes.prefix(raw.count - 1).enumerated() { raw[index] = byte }
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            try #require(bound == 0, "bind \(path)")
            var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            // Read all the time, as systemd does: the kernel queues only a few datagrams (max_dgram_qlen), and a
            // full queue blocks the daemon's sd_notify.
            let reader = Thread { [self] in
                var buffer = [UInt8](repeating: 0, count: 4096)
                while lock.withLock({ !closed }) {
                    let count = recv(descriptor, &buffer, buffer.count, 0)
                    guard count > 0 else { continue }
                    let message = String(decoding: buffer[0..<count], as: UTF8.self)
                    lock.withLock { messages.append(message) }
                }
                lock.withLock { readerDone = true }
            }
            reader.start()
        }

        private var closed = false
        private var readerDone = false

        /// Stops reading and closes the socket.
        func close() {
            lock.withLock { closed = true }
            while !lock.withLock({ readerDone }) { Thread.sleep(forTimeInterval: 0.01) }
            Glibc.close(descriptor)
        }

        /// What has arrived so far (waiting 0.1 s for stragglers).
        func drain() -> [String] {
            Thread.sleep(forTimeInterval: 0.1)
            return lock.withLock { messages }
        }

        /// Waits until a message contains `text`.
        func wait(for text: String, timeout: Double) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if drain().contains(where: { $0.contains(text) }) { return true }
            }
            return false
        }
    }

    /// An installation whose webhook points at a sink on loopback.
    struct Setup {
        let installation: Installation
        let sink: WebhookSink
        let notify: NotifySocket
        var incoming: URL { installation.root.appendingPathComponent("incoming") }
        var reports: URL { installation.root.appendingPathComponent("reports") }
        var state: URL { installation.root.appendingPathComponent("state") }

        init(settleSeconds: Double = 0.5, extraConfiguration: String = "") throws {
            installation = try Installation()
            let secret = try WebhookSecret.load(path: installation.secret.path)
            sink = WebhookSink(secret: secret)
            try sink.start()
            notify = try NotifySocket(in: installation.root)
            let config =
                Installation.configText
                .replacingOccurrences(of: "http://127.0.0.1:9/hook", with: sink.url + "hook")
                .replacingOccurrences(of: "settle_seconds = 0", with: "settle_seconds = \(settleSeconds)")
                + "\nretry_initial_seconds = 0.2\nretry_max_seconds = 1\n" + extraConfiguration
            try TestSupport.write(config, to: installation.config)
        }

        func cleanUp() {
            sink.stop()
            notify.close()
            installation.cleanUp()
        }

        /// Starts `csmil watch`; its output goes to `<root>/watch-N.log`.
        func start(pauseAt: String? = nil, run: Int = 0, environment extra: [String: String] = [:]) throws -> Process {
            let process = Process()
            process.executableURL = try TestSupport.binary()
            process.arguments = ["watch", "--config", installation.config.path, "--log-level", "debug"]
            var environment = ProcessInfo.processInfo.environment
            environment["NOTIFY_SOCKET"] = notify.path
            environment["CSMIL_TEST_PAUSE_AT"] = pauseAt
            environment.merge(extra) { $1 }
            process.environment = environment
            let log = installation.root.appendingPathComponent("watch-\(run).log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            return process
        }

        func log(_ run: Int = 0) -> String {
            (try? String(contentsOf: installation.root.appendingPathComponent("watch-\(run).log"), encoding: .utf8))
                ?? ""
        }

        /// Writes a small real slide elsewhere and renames it into the watch folder, as a careful scanner does.
        func drop(_ name: String, seed: UInt64 = 1) throws {
            let staging = installation.root.appendingPathComponent("staging-" + name)
            try SyntheticSlide(
                .init(width: 1024, height: 768, magnification: 20, seed: seed, tissueFraction: 0.5, format: .svs)
            ).write(to: staging.path)
            try FileManager.default.moveItem(at: staging, to: incoming.appendingPathComponent(name))
        }

        /// Waits until the sink has verified `count` events.
        func waitForEvents(_ count: Int, timeout: Double) -> [WebhookSink.Event] {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                let verified = sink.events.filter { $0.verdict == .verified && $0.status / 100 == 2 }
                if verified.count >= count { return verified }
                Thread.sleep(forTimeInterval: 0.1)
            }
            return sink.events.filter { $0.verdict == .verified && $0.status / 100 == 2 }
        }

        /// Waits until nothing is left to do: no file settling, no job queued or being scored, no event waiting
        /// in the outbox. From then on nothing more can be delivered unless a file changes, so counting what the
        /// sink received proves what did not happen, without sleeping.
        func waitUntilQuiet() throws -> Bool {
            let store = try JobStore(path: installation.root.appendingPathComponent("state/csmil.sqlite3").path)
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline {
                let summary = try store.summary(now: Date().timeIntervalSince1970)
                let counts = summary.counts
                if counts.discovered + counts.settled + counts.processing == 0 && summary.outbox.backlog == 0 {
                    return true
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
            return false
        }

        /// Waits until the log of run `run` contains `text`.
        func waitForLog(_ text: String, run: Int = 0) -> Bool {
            let deadline = Date().addingTimeInterval(120)
            while !log(run).contains(text) && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
            return log(run).contains(text)
        }

        /// The events the sink verified and answered 2xx so far.
        var verifiedEvents: [WebhookSink.Event] {
            sink.events.filter { $0.verdict == .verified && $0.status / 100 == 2 }
        }

        /// The report folders written so far.
        func reportFolders() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: reports.path)) ?? []).filter {
                FileManager.default.fileExists(atPath: reports.appendingPathComponent($0 + "/report.json").path)
            }
        }
    }

    static func json(_ event: WebhookSink.Event) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(event.request.body)) as? [String: Any])
    }

    static func stop(_ process: Process, timeout: Double = 30) -> Bool {
        process.terminate()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return !process.isRunning
    }

    @Test(
        "a slide dropped into the folder is scored, reported and delivered signed; READY, STATUS and STOPPING reach systemd"
    )
    func scoresDeliversAndStops() throws {
        let setup = try Setup()
        defer { setup.cleanUp() }
        let process = try setup.start()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60), "no READY=1; log:\n\(setup.log())")

        try setup.drop("case-1.svs", seed: 1)
        // Not a slide at all (ignored by name) and a corrupt one (a slide's name, garbage inside).
        try Data("partial".utf8).write(to: setup.incoming.appendingPathComponent("upload.part"))
        try Data(repeating: 7, count: 4096).write(to: setup.incoming.appendingPathComponent("broken.svs"))
        try setup.drop("case-2.svs", seed: 2)

        let events = setup.waitForEvents(3, timeout: 120)
        try #require(events.count == 3, "log:\n\(setup.log())")
        let bodies = try events.map(Self.json)
        let names = Set(
            bodies.compactMap { (($0["data"] as? [String: Any])?["slide"] as? [String: Any])?["name"] as? String })
        #expect(names == ["case-1.svs", "case-2.svs", "broken.svs"])
        var scored = 0
        var failed = 0
        for (event, body) in zip(events, bodies) {
            let data = try #require(body["data"] as? [String: Any])
            #expect(event.request.headers["webhook-id"] == data["event_id"] as? String)
            let name = (data["slide"] as? [String: Any])?["name"] as? String
            if body["type"] as? String == "slide.scored" {
                scored += 1
                #expect(name?.hasPrefix("case-") == true)
                #expect((data["result"] as? [String: Any])?["probability"] is Double)
            } else {
                failed += 1
                #expect(body["type"] as? String == "slide.failed")
                #expect(name == "broken.svs")
                #expect((data["error"] as? [String: Any])?["code"] is String)
            }
        }
        #expect(scored == 2 && failed == 1)
        #expect(setup.reportFolders().count == 3)
        #expect(setup.notify.drain().contains { $0.contains("STATUS=") })

        // The same bytes under another name are recognised: no second report, no second event.
        try FileManager.default.copyItem(
            at: setup.incoming.appendingPathComponent("case-1.svs"),
            to: setup.installation.root.appendingPathComponent("copy.svs"))
        try FileManager.default.moveItem(
            at: setup.installation.root.appendingPathComponent("copy.svs"),
            to: setup.incoming.appendingPathComponent("case-1-copy.svs"))
        // The store's decision is the event: once it is logged no job exists for the copy, so nothing can follow.
        #expect(setup.waitForLog("already known"), "log:\n\(setup.log())")
        #expect(try setup.waitUntilQuiet())
        #expect(setup.verifiedEvents.count == 3)

        // csmil status sees the results.
        let status = try TestSupport.csmil("status", "--config", setup.installation.config.path, "--json")
        #expect(status.status == 0, "\(status.stderr)")
        let statusJSON = try #require(JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let daemon = try #require(statusJSON["daemon"] as? [String: Any])
        #expect(daemon["running"] as? Bool == true, "\(daemon)")
        #expect((daemon["snapshot"] as? [String: Any])?["watch_mode"] as? String == "inotify")
        let jobs = try #require(statusJSON["jobs"] as? [String: Any])
        #expect((jobs["recent"] as? [Any])?.count == 3)
        let text = try TestSupport.csmil("status", "--config", setup.installation.config.path)
        #expect(text.stdout.contains("running (pid"))
        #expect(text.stdout.contains("broken.svs: failed"))

        #expect(Self.stop(process), "csmil watch did not exit on SIGTERM")
        #expect(process.terminationStatus == 0, "log:\n\(setup.log())")
        #expect(setup.notify.wait(for: "STOPPING=1", timeout: 30))
    }

    @Test(
        "kill -9 at each state transition: after a restart the slide has one report and is delivered under one id",
        arguments: TestHooks.Point.allCases.map(\.rawValue))
    func killNineAnywhere(point: String) throws {
        let setup = try Setup()
        defer { setup.cleanUp() }
        let first = try setup.start(pauseAt: point, run: 0)
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60), "log:\n\(setup.log(0))")
        try setup.drop("case-\(point).svs", seed: 3)
        let marker = setup.state.appendingPathComponent("paused-at-" + point).path
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: marker) && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        try #require(FileManager.default.fileExists(atPath: marker), "never paused at \(point):\n\(setup.log(0))")
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        try FileManager.default.removeItem(atPath: marker)

        let second = try setup.start(run: 1)
        defer { if second.isRunning { kill(second.processIdentifier, SIGKILL) } }
        let events = setup.waitForEvents(1, timeout: 120)
        try #require(events.count == 1, "log:\n\(setup.log(1))")
        // The restarted watcher's start-up scan finds the slide again and the store recognises it; once that is
        // logged and nothing is left to do, nothing more can be delivered.
        #expect(setup.waitForLog("already known", run: 1), "log:\n\(setup.log(1))")
        #expect(try setup.waitUntilQuiet())
        let all = setup.verifiedEvents
        #expect(Set(all.map { $0.request.headers["webhook-id"] ?? "" }).count == 1, "one event id")
        #expect(all.count == 1, "delivered once")
        #expect(setup.reportFolders().count == 1)
        let body = try Self.json(events[0])
        #expect(body["type"] as? String == "slide.scored")
        #expect(Self.stop(second))
    }

    @Test("a slide that kills the daemon on every attempt is reported failed after three, not retried forever")
    func crashLoopGivesUp() throws {
        let setup = try Setup()
        defer { setup.cleanUp() }
        let marker = setup.state.appendingPathComponent("paused-at-claimed").path
        for run in 0...SlideWorker.maximumAttempts {
            let process = try setup.start(pauseAt: run < SlideWorker.maximumAttempts ? "claimed" : nil, run: run)
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            if run == 0 {
                #expect(setup.notify.wait(for: "READY=1", timeout: 60))
                try setup.drop("crashing.svs", seed: 5)
            }
            if run < SlideWorker.maximumAttempts {
                let deadline = Date().addingTimeInterval(60)
                while !FileManager.default.fileExists(atPath: marker) && Date() < deadline {
                    Thread.sleep(forTimeInterval: 0.05)
                }
                try #require(FileManager.default.fileExists(atPath: marker), "run \(run):\n\(setup.log(run))")
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                try FileManager.default.removeItem(atPath: marker)
            } else {
                let events = setup.waitForEvents(1, timeout: 60)
                try #require(
                    events.count == 1,
                    "running \(process.isRunning); logs:\n\((0...run).map { setup.log($0) }.joined(separator: "\n---\n"))"
                )
                let body = try Self.json(events[0])
                #expect(body["type"] as? String == "slide.failed")
                #expect(
                    ((body["data"] as? [String: Any])?["error"] as? [String: Any])?["code"] as? String
                        == "slide.crashed")
                #expect(Self.stop(process))
            }
        }
    }

    @Test("with max_concurrent_slides = 2, two workers share the queue and every slide is delivered once")
    func twoWorkers() throws {
        let setup = try Setup(extraConfiguration: "\n[pipeline]\nmax_concurrent_slides = 2\n")
        defer { setup.cleanUp() }
        let process = try setup.start()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60), "log:\n\(setup.log())")
        for index in 0..<4 { try setup.drop("parallel-\(index).svs", seed: UInt64(10 + index)) }
        let events = setup.waitForEvents(4, timeout: 120)
        #expect(events.count == 4, "log:\n\(setup.log())")
        #expect(try setup.waitUntilQuiet())
        let all = setup.verifiedEvents
        #expect(Set(all.map { $0.request.headers["webhook-id"] ?? "" }).count == 4)
        #expect(all.count == 4, "each slide delivered once")
        #expect(setup.log().contains("csmil-worker-1"))
        #expect(Self.stop(process))
    }

    @Test("a second csmil watch on the same state folder refuses to start, naming the lock and the fix")
    func secondDaemonRefused() throws {
        let setup = try Setup()
        defer { setup.cleanUp() }
        let first = try setup.start()
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60))
        let second = try TestSupport.csmil("watch", "--config", setup.installation.config.path)
        #expect(second.status != 0)
        #expect(second.stderr.contains("another csmil watch is running"))
        #expect(Self.stop(first))
    }

    @Test(
        "SIGHUP the moment READY=1 arrives is a reload, never the end of the daemon (systemctl reload right after start)"
    )
    func reloadRightAfterReady() throws {
        let setup = try Setup()
        defer { setup.cleanUp() }
        let process = try setup.start()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60))
        kill(process.processIdentifier, SIGHUP)
        #expect(setup.notify.wait(for: "RELOADING=1", timeout: 10), "log:\n\(setup.log())")
        #expect(setup.notify.wait(for: "READY=1", timeout: 10))
        #expect(setup.log().contains("configuration reloaded"))
        #expect(process.isRunning)
        #expect(Self.stop(process))
    }

    @Test("SIGHUP with a broken configuration keeps the running settings and the daemon keeps working")
    func reloadWithBadConfig() throws {
        let setup = try Setup()
        defer { setup.cleanUp() }
        let process = try setup.start()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60))
        let good = try String(contentsOf: setup.installation.config, encoding: .utf8)
        try (good + "\n[nonsense]\nkey = 1\n").write(to: setup.installation.config, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        let deadline = Date().addingTimeInterval(10)
        while !setup.log().contains("configuration not reloaded") && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(setup.log().contains("configuration not reloaded"))
        #expect(process.isRunning)
        try setup.drop("after-reload.svs", seed: 4)
        #expect(setup.waitForEvents(1, timeout: 120).count == 1, "log:\n\(setup.log())")
        #expect(Self.stop(process))
    }
}
