import Foundation
import Notify
import Testing

@testable import Daemon

/// `csmil reload` (the unit's ExecReload=) against a real `csmil watch`, and what a reload applies.
@Suite("csmil reload", .serialized)
struct ReloadTests {
    typealias Setup = WatchDaemonTests.Setup

    static func reload(
        _ setup: Setup, pid: Int32?, environment: [String: String] = [:]
    ) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        var merged = ProcessInfo.processInfo.environment
        merged["RUNTIME_DIRECTORY"] = nil
        merged.merge(environment) { $1 }
        return try TestSupport.run(
            TestSupport.binary(),
            ["reload", "--config", setup.installation.config.path] + (pid.map { ["--pid", "\($0)"] } ?? []),
            environment: merged)
    }

    static func edit(_ setup: Setup, _ change: (String) -> String) throws {
        let text = try String(contentsOf: setup.installation.config, encoding: .utf8)
        try change(text).write(to: setup.installation.config, atomically: true, encoding: .utf8)
    }

    @Test("csmil reload returns once the daemon read the file: 0 and what changed; 1 and the reason when refused")
    func answers() throws {
        let setup = try Setup()
        defer { setup.cleanUp() }
        let runtime = setup.installation.root.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: runtime, withIntermediateDirectories: true)
        let environment = ["RUNTIME_DIRECTORY": runtime.path]
        let process = try setup.start(environment: environment)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60))

        try Self.edit(setup) { $0 + "\n[log]\nlevel = \"warning\"\n" }
        let applied = try Self.reload(setup, pid: process.processIdentifier, environment: environment)
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stdout.contains("configuration reloaded"))
        #expect(applied.stdout.contains("[log] changed and apply after a restart"))

        try Self.edit(setup) { $0 + "\n[nonsense]\nkey = 1\n" }
        let refused = try Self.reload(setup, pid: process.processIdentifier, environment: environment)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("configuration not reloaded; the running settings stay"))
        #expect(refused.stderr.contains("nonsense"))
        // The daemon logs the reason as text too (in the journal's MESSAGE under systemd).
        #expect(
            setup.log().contains("configuration not reloaded; the running settings stay code=config.unknown_key error=")
        )
        #expect(process.isRunning)
        #expect(WatchDaemonTests.stop(process))
    }

    @Test("without RUNTIME_DIRECTORY the answer is in the [state] directory; no daemon → exit 2 naming the file")
    func stateFolderFallback() throws {
        let setup = try Setup()
        defer { setup.cleanUp() }
        let none = try Self.reload(setup, pid: nil)
        #expect(none.status == 2)
        #expect(none.stderr.contains("no csmil watch found"))
        #expect(none.stderr.contains("reload.json"))
        // A pid that is not csmil watch is never signalled (this test's own process stands in for one).
        let wrong = try Self.reload(setup, pid: getpid())
        #expect(wrong.status == 2)
        #expect(wrong.stderr.contains("is not csmil"), "\(wrong.stderr)")
        let process = try setup.start()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60))
        let applied = try Self.reload(setup, pid: nil)  // the pid comes from reload.json
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(FileManager.default.fileExists(atPath: setup.state.appendingPathComponent("reload.json").path))
        #expect(WatchDaemonTests.stop(process))
    }

    @Test("[webhook] url switched on by a reload: the next slide is delivered; switched off: results are not queued")
    func webhookSwitchedOnAndOff() throws {
        let setup = try Setup()
        defer { setup.cleanUp() }
        let on = try String(contentsOf: setup.installation.config, encoding: .utf8)
        let url = try #require(on.split(separator: "\n").first { $0.hasPrefix("url = ") }).description
        let off = on.replacingOccurrences(of: url, with: "url = \"\"")
        try off.write(to: setup.installation.config, atomically: true, encoding: .utf8)
        let process = try setup.start()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60))

        try setup.drop("while-off.svs", seed: 11)
        try Self.waitForLog(setup, "slide reported", count: 1)
        try on.write(to: setup.installation.config, atomically: true, encoding: .utf8)
        #expect(try Self.reload(setup, pid: process.processIdentifier).status == 0)
        #expect(setup.log().contains("delivery switched on"))
        try setup.drop("while-on.svs", seed: 12)
        let first = setup.waitForEvents(1, timeout: 120)
        #expect(first.count == 1, "log:\n\(setup.log())")
        #expect(
            first.map { String(decoding: $0.request.body, as: UTF8.self) }.allSatisfy { $0.contains("while-on.svs") })

        try off.write(to: setup.installation.config, atomically: true, encoding: .utf8)
        #expect(try Self.reload(setup, pid: process.processIdentifier).status == 0)
        try setup.drop("off-again.svs", seed: 13)
        try Self.waitForLog(setup, "slide reported", count: 3)
        // Switched on once more, a later slide is delivered; deliveries go in outbox order, so had off-again.svs
        // been queued it would have arrived before it.
        try on.write(to: setup.installation.config, atomically: true, encoding: .utf8)
        #expect(try Self.reload(setup, pid: process.processIdentifier).status == 0)
        try setup.drop("on-again.svs", seed: 14)
        let events = setup.waitForEvents(2, timeout: 120)
        let bodies = events.map { String(decoding: $0.request.body, as: UTF8.self) }
        #expect(bodies.count == 2)
        #expect(bodies.last?.contains("on-again.svs") == true)
        #expect(!bodies.contains { $0.contains("while-off.svs") || $0.contains("off-again.svs") })
        #expect(WatchDaemonTests.stop(process))
    }

    /// Waits until the daemon's log has `count` lines containing `text`.
    static func waitForLog(_ setup: Setup, _ text: String, count: Int, timeout: Double = 120) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if setup.log().components(separatedBy: "\n").filter({ $0.contains(text) }).count >= count { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        Issue.record("no \(count) × '\(text)' within \(timeout) s; log:\n\(setup.log())")
    }
}
