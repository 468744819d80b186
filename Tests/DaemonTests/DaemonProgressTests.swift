import Foundation
import Store
import Testing

@testable import Daemon

@Suite("Daemon progress, watchdog and status line")
struct DaemonProgressTests {
    @Test("the watchdog is fed while idle and healthy, while tiles keep coming, and not when stuck or unhealthy")
    func watchdogOnlyWhileWorkMoves() {
        var state = WatchdogState(stallLimit: 60)
        #expect(state.shouldPing(now: 0, healthy: true))
        #expect(!state.shouldPing(now: 0, healthy: false))
        state.progressed(1, now: 100)
        #expect(state.shouldPing(now: 150, healthy: true))
        #expect(!state.shouldPing(now: 161, healthy: true), "no progress for longer than the stall limit")
        state.progressed(1, now: 170)
        state.progressed(2, now: 100)
        #expect(!state.shouldPing(now: 200, healthy: true), "one of two slides is stuck")
        state.finished(2)
        #expect(state.shouldPing(now: 200, healthy: true))
        state.finished(1)
        #expect(state.shouldPing(now: 10_000, healthy: true))
    }

    @Test("progress gives tiles done, tiles/s and ETA per slide in the status line and the snapshot")
    func statusLine() throws {
        let progress = DaemonProgress(watchFolder: "/in", watchMode: "inotify", stallLimit: 600, now: 0)
        #expect(progress.statusLine().hasPrefix("starting; queue 0"))
        progress.setQueued(2)
        progress.started(jobID: 7, path: "/in/case.svs", now: 10)
        progress.tilesFound(100, jobID: 7, now: 10)
        progress.tilesEmbedded(40, jobID: 7, now: 20)
        let line = progress.statusLine()
        #expect(line == "scoring case.svs: 40/100 tiles, 4.0 tiles/s, ETA 15s; queue 2; 0 scored, 0 failed")
        let current = try #require(progress.snapshot.current.first)
        #expect(current.tilesDone == 40 && current.tilesTotal == 100 && current.etaSeconds == 15)
        // Embedded again (a bf16 slide rechecked at fp32): the count starts over, never past the total.
        progress.tilesFound(100, jobID: 7, now: 30)
        progress.tilesEmbedded(10, jobID: 7, now: 35)
        #expect(progress.snapshot.current.first?.tilesDone == 10)
        progress.started(jobID: 8, path: "/in/other.svs", now: 21)
        #expect(progress.statusLine().contains("; scoring other.svs; queue 2"))
        #expect(!progress.shouldPingWatchdog(healthy: true, now: 700))
        progress.finished(jobID: 7, status: "scored")
        progress.finished(jobID: 8, status: "failed")
        #expect(progress.statusLine() == "idle; queue 2; 1 scored, 1 failed")
        #expect(progress.shouldPingWatchdog(healthy: true, now: 700))
    }

    @Test("csmil status lists a slide in progress only while the job store has it processing")
    func statusTextDropsFinishedSlides() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try JobStore(path: folder.appendingPathComponent("csmil.sqlite3").path)
        for name in ["a", "b"] {
            _ = try store.recordSettled(
                path: "/in/\(name).svs", fingerprint: "sha256:\(name)", size: 10, modified: 1, now: 2)
        }
        let claimed = try #require(try store.claimNext(now: 3, leaseSeconds: 60))
        let progress = DaemonProgress(watchFolder: "/in", watchMode: "inotify", stallLimit: 600, now: 3)
        progress.started(jobID: claimed.id, path: claimed.path, now: 3)
        // A job the snapshot still shows but the store does not have processing: it has just finished.
        progress.started(jobID: claimed.id + 1, path: "/in/finished.svs", now: 3)
        let path = folder.appendingPathComponent("daemon.json").path
        try progress.write(to: path, now: 4)
        let snapshot = try #require(DaemonProgress.read(from: path))
        let text = StatusCommand.text(
            summary: try store.summary(now: 5), daemon: .init(snapshot: snapshot, now: 5), snapshot: snapshot, now: 5)
        #expect(text.contains("scoring \(URL(fileURLWithPath: claimed.path).lastPathComponent)"), "\(text)")
        #expect(!text.contains("finished.svs"), "\(text)")
    }

    @Test("csmil status shows control characters in file names escaped: a name cannot draw lines of its own")
    func statusTextEscapesNames() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try JobStore(path: folder.appendingPathComponent("csmil.sqlite3").path)
        let evil = "/in/x.svs\nrecent results:\n  fake.svs: scored p=0.999 (Crohn's disease)\u{1B}[2J\r\u{202E}.svs"
        try store.recordRejected(
            path: evil, size: 1, modified: 1, code: "slide.not_a_slide", message: "not\na slide", now: 2)
        _ = try store.recordSettled(path: evil + "2", fingerprint: "sha256:ee", size: 1, modified: 1, now: 2)
        let text = StatusCommand.text(
            summary: try store.summary(now: 5), daemon: .init(snapshot: nil, now: 5), snapshot: nil, now: 5)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(!lines.contains { $0.hasPrefix("recent results") || $0.hasPrefix("  fake.svs") }, "\(text)")
        #expect(
            text.contains(
                #"x.svs\nrecent results:\n  fake.svs: scored p=0.999 (Crohn's disease)\u{1B}[2J\r\u{202E}.svs"#))
        #expect(text.contains(#"not\na slide"#))
        #expect(!text.unicodeScalars.contains { $0.value == 0x1B || $0 == "\r" || $0.value == 0x202E })
        // The log lines escape them the same way.
        let line = StderrFormat.line(
            date: Date(timeIntervalSince1970: 0), level: .info, message: "m", metadata: ["slide": "\(evil)"])
        #expect(!line.unicodeScalars.contains { $0.value == 0x1B || $0 == "\r" || $0 == "\n" || $0.value == 0x202E })
    }

    @Test("the snapshot survives the round trip through daemon.json")
    func snapshotRoundTrip() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let progress = DaemonProgress(watchFolder: "/in", watchMode: "polling", stallLimit: 600, now: 0)
        progress.started(jobID: 1, path: "/in/a.svs", now: 1)
        let path = folder.appendingPathComponent("daemon.json").path
        try progress.write(to: path, now: 5)
        let read = try #require(DaemonProgress.read(from: path))
        #expect(read.current.first?.slide == "a.svs")
        #expect(read.watchMode == "polling")
        #expect(read.updatedAt == 5)
        #expect(DaemonProgress.read(from: folder.appendingPathComponent("missing.json").path) == nil)
    }

    @Test("durations read as people write them", arguments: [(12.0, "12s"), (185, "3m05s"), (3720, "1h02m")])
    func durations(seconds: Double, text: String) {
        #expect(DaemonProgress.duration(seconds) == text)
    }

    @Test("MESSAGE_ID values are distinct 128-bit ids in hex and reach the journal as MESSAGE_ID")
    func messageIDs() {
        let ids = MessageID.allCases.map(\.rawValue)
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isHexDigit) && $0 == $0.lowercased() })
        let fields = JournalFields.fields(
            level: .info, message: "slide reported", metadata: MessageID.slideReported.metadata, file: "f",
            function: "g", line: 1)
        #expect(fields.contains("MESSAGE_ID=" + MessageID.slideReported.rawValue))
    }

    @Test("a status text for systemd is one line")
    func oneLine() {
        #expect(SystemdNotifier.oneLine("a\nb\r\nc") == "a b c")
    }
}
