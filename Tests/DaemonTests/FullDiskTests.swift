import Foundation
import Notify
import Sinks
import Testing

@testable import Daemon

/// A small tmpfs mounted for one test (mount(2) needs root; the tests that use it are skipped with the reason where
/// mounting is impossible), and a filler file that takes every free block on it.
final class SmallFileSystem {
    let path: String
    private var mounted = false

    /// Whether this process may mount a tmpfs (root, not in a container that forbids it).
    static let available: Bool = {
        let path = FileManager.default.temporaryDirectory.path + "/csmil-mount-probe-\(getpid())"
        guard let probe = try? SmallFileSystem(at: path, kibibytes: 64) else { return false }
        probe.unmount()
        try? FileManager.default.removeItem(atPath: probe.path)
        return true
    }()

    /// Mounts a tmpfs of `kibibytes` at `path` (created if missing; what it held is hidden until unmounted).
    init(at path: String, kibibytes: Int) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let options = "size=\(kibibytes)k,mode=0755"
        guard options.withCString({ mount("tmpfs", path, "tmpfs", 0, $0) }) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EPERM)
        }
        mounted = true
    }

    deinit { unmount() }

    func unmount() {
        if mounted { umount2(path, 2) }  // MNT_DETACH
        mounted = false
    }

    var filler: String { path + "/filler" }

    /// Writes the filler file until the file system says `ENOSPC`; returns the bytes it took.
    @discardableResult
    func fill() throws -> Int {
        let descriptor = open(filler, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        let chunk = [UInt8](repeating: 0x5a, count: 4096)
        var total = 0
        while true {
            let written = chunk.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written > 0 {
                total += written
                continue
            }
            try #require(errno == ENOSPC, "filling \(path): \(String(cString: strerror(errno)))")
            return total
        }
    }

    /// Frees what ``fill()`` took.
    func unfill() throws { try FileManager.default.removeItem(atPath: filler) }

    /// Free bytes for an unprivileged user.
    var freeBytes: UInt64 {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return 0 }
        return UInt64(info.f_bavail) * UInt64(info.f_frsize)
    }
}

/// Full and read-only folders (issue 14, item 1) on real small file systems: a report folder appears whole or not
/// at all; the daemon waits instead of failing slides, says why in STATUS= and `csmil status`, and reports and
/// delivers the slide once when there is room again; the job store survives its folder filling up.
@Suite("full disks", .serialized, .enabled(if: SmallFileSystem.available, "mounting a tmpfs needs root"))
struct FullDiskTests {
    /// A report's files, as the pipeline hands them to the writer.
    static func files(name: String, fingerprint: String, tiles: Int) -> ReportFiles {
        let report = SlideReport(
            eventID: "evt_" + String(repeating: "1", count: 32), status: .failed,
            slide: .init(path: "/slides/" + name, name: name, fingerprint: fingerprint),
            model: .init(
                name: "m", architecture: "resnet18", files: [:]),
            tiles: .init(count: tiles), timing: .init(seconds: 1),
            error: .init(code: "slide.unreadable", message: "test"))
        return ReportFiles(report: report, tissueMaskPNG: Data(repeating: 1, count: 100_000))
    }

    @Test("a report folder is written whole or not at all on a file system that is full; the old one stays whole")
    func reportFolderAtomic() throws {
        let root = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let disk = try SmallFileSystem(at: root.path + "/reports", kibibytes: 1024)
        defer { disk.unmount() }
        let writer = ReportWriter(outputDirectory: disk.path)
        let fingerprint = "sha256:" + String(repeating: "ab", count: 32)
        let folder = try writer.write(Self.files(name: "old.svs", fingerprint: fingerprint, tiles: 1))
        let oldReport = try Data(contentsOf: URL(fileURLWithPath: folder + "/report.json"))
        try disk.fill()

        // A new slide: nothing appears, no staging folder stays.
        let other = Self.files(name: "new.svs", fingerprint: "sha256:" + String(repeating: "cd", count: 32), tiles: 2)
        #expect(throws: ReportError.self) { try writer.write(other) }
        do throws(ReportError) {
            try writer.write(other)
        } catch {
            #expect(error.code == .diskFull, "\(error)")
            let problem = ResourceProblem.classify(error, outputDirectory: disk.path, stateDirectory: "/nowhere")
            #expect(problem?.code == .diskFull && problem?.subject == disk.path)
        }
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: disk.path).sorted() == ["filler", "old-abababababab"])
        // The same slide again (a rewrite): the old folder is left exactly as it was.
        #expect(throws: ReportError.self) {
            try writer.write(Self.files(name: "old.svs", fingerprint: fingerprint, tiles: 3))
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: folder + "/report.json")) == oldReport)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == [
                "case_results_merge.csv", "report.html", "report.json", "tiles.geojson", "tissue_mask.png",
            ])

        try disk.unfill()
        try writer.write(Self.files(name: "old.svs", fingerprint: fingerprint, tiles: 3))
        let rewritten = try SlideReport.decode(
            from: try Data(contentsOf: URL(fileURLWithPath: folder + "/report.json")))
        #expect(rewritten.tiles.count == 3)
        #expect(try FileManager.default.contentsOfDirectory(atPath: disk.path) == ["old-abababababab"])
    }

    /// Waits until `condition` holds (polling the world, not sleeping for an answer), at most `timeout` seconds.
    static func wait(timeout: Double = 120, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            usleep(50_000)
        }
        return try condition()
    }

    static func status(_ setup: WatchDaemonTests.Setup) throws -> (text: String, counts: [String: Int]) {
        let text = try TestSupport.csmil("status", "--config", setup.installation.config.path)
        let json = try TestSupport.csmil("status", "--config", setup.installation.config.path, "--json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let jobs = try #require(object["jobs"] as? [String: Any], "\(json.stdout)\(json.stderr)")
        return (text.stdout, try #require(jobs["counts"] as? [String: Int]))
    }

    @Test(
        "output folder full: the daemon waits (STATUS=, csmil status), fails nothing, then reports and delivers once"
    )
    func outputFolderFull() throws {
        let setup = try WatchDaemonTests.Setup()
        defer { setup.cleanUp() }
        let disk = try SmallFileSystem(at: setup.reports.path, kibibytes: 16 * 1024)
        defer { disk.unmount() }
        try disk.fill()
        let process = try setup.start()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60), "log:\n\(setup.log())")

        try setup.drop("case-1.svs", seed: 1)
        try #require(
            setup.notify.wait(for: "STATUS=waiting: the output folder is full", timeout: 120), "log:\n\(setup.log())")
        // daemon.json follows STATUS= within one status period.
        var waiting = try Self.status(setup)
        #expect(
            try Self.wait {
                waiting = try Self.status(setup)
                return waiting.text.contains("waiting: the output folder is full")
            }, "\(waiting.text)")
        #expect(waiting.counts["failed"] == 0 && waiting.counts["reported"] == 0, "\(waiting.counts)")
        // Nothing half-written: no report folder, no staging folder.
        #expect(try FileManager.default.contentsOfDirectory(atPath: disk.path) == ["filler"])
        #expect(setup.sink.events.isEmpty)

        try disk.unfill()
        let events = setup.waitForEvents(1, timeout: 120)
        try #require(events.count == 1, "log:\n\(setup.log())")
        #expect(try Self.json(events[0])["type"] as? String == "slide.scored")
        let folders = setup.reportFolders()
        try #require(folders.count == 1)
        let files = try FileManager.default.contentsOfDirectory(atPath: setup.reports.path + "/" + folders[0])
        for name in ["attention_heatmap.png", "case_results_merge.csv", "report.html", "report.json", "tiles.geojson"] {
            #expect(files.contains(name), "\(files)")
        }
        // No staging folder left, no second folder (beside them: index.html, index.json and the index's lock).
        let entries = try FileManager.default.contentsOfDirectory(atPath: disk.path)
        #expect(entries.filter { $0.hasPrefix(".csmil-tmp.") }.isEmpty, "\(entries)")
        #expect(entries.filter { !$0.hasPrefix("index.") && !$0.hasPrefix(".index.") } == folders, "\(entries)")
        #expect(setup.log().contains("room again; going on"))
        #expect(Self.wait { ((try? Self.status(setup))?.counts["delivered"]) == 1 })
        #expect(WatchDaemonTests.stop(process), "csmil watch did not exit on SIGTERM")
        #expect(process.terminationStatus == 0, "log:\n\(setup.log())")
        // Exactly one event, delivered once: the stop drained everything queued before it.
        #expect(setup.sink.events.filter { $0.verdict == .verified }.count == 1)
    }

    @Test("state folder full while a slide is scored: the slide waits, the job store is intact, then it is delivered")
    func stateFolderFull() throws {
        let setup = try WatchDaemonTests.Setup()
        defer { setup.cleanUp() }
        let disk = try SmallFileSystem(at: setup.state.path, kibibytes: 16 * 1024)
        defer { disk.unmount() }
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = setup.notify.path
        environment["CSMIL_TEST_HOLD_AT"] = "claimed"
        let daemon = try ChildProcess(
            try TestSupport.binary(),
            ["watch", "--config", setup.installation.config.path, "--log-level", "debug"],
            outputIn: setup.installation.root, name: "watch", environment: environment)
        #expect(setup.notify.wait(for: "READY=1", timeout: 60), "\(daemon.stderr)")

        try setup.drop("case-1.svs", seed: 1)
        let marker = setup.state.appendingPathComponent("held-at-claimed").path
        try #require(
            Self.wait { FileManager.default.fileExists(atPath: marker) || daemon.hasExited }, "\(daemon.stderr)")
        // The slide is claimed; the state folder fills before its features are spilled there.
        try disk.fill()
        try FileManager.default.removeItem(atPath: marker)
        try #require(
            setup.notify.wait(for: "STATUS=waiting: the state folder is full", timeout: 120), "\(daemon.stderr)")
        // csmil status reads the store (checking its integrity) and the daemon's snapshot, rewritten in place.
        var waiting = try Self.status(setup)
        #expect(
            try Self.wait {
                waiting = try Self.status(setup)
                return waiting.text.contains("waiting: the state folder is full")
            }, "\(waiting.text)")
        #expect(waiting.counts["failed"] == 0, "\(waiting.counts)")

        try disk.unfill()
        let events = setup.waitForEvents(1, timeout: 120)
        try #require(events.count == 1, "\(daemon.stderr)")
        #expect(try Self.json(events[0])["type"] as? String == "slide.scored")
        #expect(Self.wait { ((try? Self.status(setup))?.counts["delivered"]) == 1 })
        daemon.send(SIGTERM)
        #expect(daemon.wait().status == 0, "\(daemon.stderr)")
        #expect(daemon.stderr.contains("room again; going on"))
        let integrity = try TestSupport.tool(
            "sqlite3", [setup.state.appendingPathComponent("csmil.sqlite3").path, "PRAGMA integrity_check"])
        if let integrity { #expect(integrity.stdout == "ok\n", "\(integrity)") }
        #expect(setup.sink.events.filter { $0.verdict == .verified }.count == 1)
    }

    static func json(_ event: WebhookSink.Event) throws -> [String: Any] { try WatchDaemonTests.json(event) }
}
