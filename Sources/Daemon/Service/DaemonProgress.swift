import Foundation
import Synchronization

/// What the daemon is doing now, shared by the worker (writer), the status timer and `csmil status` (through
/// `daemon.json`). Small and lock-protected; every field is a plain value.
final class DaemonProgress: Sendable {
    /// A snapshot, as written to `<state>/daemon.json` for `csmil status`.
    struct Snapshot: Sendable, Equatable, Codable {
        struct Current: Sendable, Equatable, Codable {
            var slide: String
            var path: String
            var jobID: Int64
            var startedAt: Double
            var tilesTotal: Int?
            var tilesDone: Int
            var tilesPerSecond: Double?
            var etaSeconds: Double?

            enum CodingKeys: String, CodingKey {
                case slide, path
                case jobID = "job_id"
                case startedAt = "started_at"
                case tilesTotal = "tiles_total"
                case tilesDone = "tiles_done"
                case tilesPerSecond = "tiles_per_second"
                case etaSeconds = "eta_seconds"
            }
        }
        var pid: Int32
        var version: String
        var startedAt: Double
        var updatedAt: Double
        var state: String
        var watchFolder: String
        var watchMode: String
        /// The slides being scored (one per worker, `[pipeline] max_concurrent_slides`), oldest first.
        var current: [Current]
        var queued: Int
        var scored: Int
        var failed: Int
        /// Why no slide is scored now although some wait: a folder is full or refuses writes (``ResourceGate``).
        var waiting: String?
        /// Why the job store cannot be used now (the database is away); nil while it answers.
        var storeProblem: String? = nil

        enum CodingKeys: String, CodingKey {
            case pid, version, state, current, queued, scored, failed, waiting
            case storeProblem = "store_problem"
            case startedAt = "started_at"
            case updatedAt = "updated_at"
            case watchFolder = "watch_folder"
            case watchMode = "watch_mode"
        }
    }

    private struct State {
        var snapshot: Snapshot
        var embeddingStartedAt: [Int64: Double] = [:]
        var watchdog: WatchdogState
    }

    private let state: Mutex<State>

    init(watchFolder: String, watchMode: String, stallLimit: Double, now: Double = Date().timeIntervalSince1970) {
        state = Mutex(
            State(
                snapshot: Snapshot(
                    pid: getpid(), version: Product.version, startedAt: now, updatedAt: now, state: "starting",
                    watchFolder: watchFolder, watchMode: watchMode, current: [], queued: 0, scored: 0, failed: 0),
                watchdog: WatchdogState(stallLimit: stallLimit)))
    }

    var snapshot: Snapshot { state.withLock { $0.snapshot } }

    func setState(_ text: String) { state.withLock { $0.snapshot.state = text } }

    func setWatchMode(_ mode: String) { state.withLock { $0.snapshot.watchMode = mode } }

    func setQueued(_ count: Int) { state.withLock { $0.snapshot.queued = count } }

    /// Why scoring waits (a folder full or read-only), or nil when it does not.
    func setWaiting(_ text: String?) { state.withLock { $0.snapshot.waiting = text } }

    /// The job store cannot be used (nil: it answers again); shown first in STATUS=.
    func setStoreProblem(_ problem: String?) { state.withLock { $0.snapshot.storeProblem = problem } }

    /// A worker took a slide.
    func started(jobID: Int64, path: String, now: Double = Date().timeIntervalSince1970) {
        state.withLock {
            $0.snapshot.current.append(
                .init(
                    slide: URL(fileURLWithPath: path).lastPathComponent, path: path, jobID: jobID, startedAt: now,
                    tilesTotal: nil, tilesDone: 0, tilesPerSecond: nil, etaSeconds: nil))
            $0.embeddingStartedAt[jobID] = nil
            $0.snapshot.state = "scoring"
            $0.watchdog.progressed(jobID, now: now)
        }
    }

    func tilesFound(_ total: Int, jobID: Int64, now: Double = Date().timeIntervalSince1970) {
        state.withLock {
            guard let index = $0.snapshot.current.firstIndex(where: { $0.jobID == jobID }) else { return }
            $0.snapshot.current[index].tilesTotal = total
            // A slide embedded again (a bf16 slide rechecked at fp32) starts its count over.
            $0.snapshot.current[index].tilesDone = 0
            $0.embeddingStartedAt[jobID] = now
            $0.watchdog.progressed(jobID, now: now)
        }
    }

    func tilesEmbedded(_ count: Int, jobID: Int64, now: Double = Date().timeIntervalSince1970) {
        state.withLock {
            guard let index = $0.snapshot.current.firstIndex(where: { $0.jobID == jobID }) else { return }
            var current = $0.snapshot.current[index]
            current.tilesDone += count
            if let since = $0.embeddingStartedAt[jobID], now > since {
                let rate = Double(current.tilesDone) / (now - since)
                current.tilesPerSecond = rate
                if let total = current.tilesTotal, rate > 0 {
                    current.etaSeconds = Double(max(total - current.tilesDone, 0)) / rate
                }
            }
            $0.snapshot.current[index] = current
            $0.watchdog.progressed(jobID, now: now)
        }
    }

    /// A worker is done with its slide (scored, failed or put back).
    func finished(jobID: Int64, status: String?) {
        state.withLock {
            $0.snapshot.current.removeAll { $0.jobID == jobID }
            $0.embeddingStartedAt[jobID] = nil
            if $0.snapshot.current.isEmpty { $0.snapshot.state = "idle" }
            if status == "scored" || status == "no_tissue" { $0.snapshot.scored += 1 }
            if status == "failed" { $0.snapshot.failed += 1 }
            $0.watchdog.finished(jobID)
        }
    }

    /// Whether WATCHDOG=1 may be sent (see `WatchdogState`).
    func shouldPingWatchdog(healthy: Bool, now: Double = Date().timeIntervalSince1970) -> Bool {
        state.withLock { $0.watchdog.shouldPing(now: now, healthy: healthy) }
    }

    /// The one-line STATUS= text for systemd.
    func statusLine() -> String {
        let snapshot = state.withLock { $0.snapshot }
        var line: String
        if let waiting = snapshot.waiting {
            line = waiting
        } else if snapshot.current.isEmpty {
            line = snapshot.state
        } else {
            line = snapshot.current.map(Self.describe).joined(separator: "; ")
        }
        line += "; queue \(snapshot.queued); \(snapshot.scored) scored, \(snapshot.failed) failed"
        if let problem = snapshot.storeProblem { line = problem + "; " + line }
        return line
    }

    /// "scoring case.svs: 40/100 tiles, 4.0 tiles/s, ETA 15s".
    static func describe(_ current: Snapshot.Current) -> String {
        var line = "scoring \(current.slide)"
        if let total = current.tilesTotal {
            line += ": \(current.tilesDone)/\(total) tiles"
            if let rate = current.tilesPerSecond { line += String(format: ", %.1f tiles/s", rate) }
            if let eta = current.etaSeconds { line += ", ETA \(duration(eta))" }
        }
        return line
    }

    /// "1h02m", "3m05s", "12s".
    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        if total >= 3600 { return String(format: "%dh%02dm", total / 3600, (total % 3600) / 60) }
        if total >= 60 { return String(format: "%dm%02ds", total / 60, total % 60) }
        return "\(total)s"
    }

    /// Writes the snapshot to `path` atomically (temporary file, rename), for `csmil status`. The JSON is padded with
    /// spaces to a multiple of 4 KiB, so that when the state folder is full (no room for the temporary file) the
    /// snapshot can still be overwritten in place, in blocks the file already holds: `csmil status` then still says
    /// why the daemon waits.
    func write(to path: String, now: Double = Date().timeIntervalSince1970) throws {
        let snapshot = state.withLock {
            $0.snapshot.updatedAt = now
            return $0.snapshot
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        var data = try encoder.encode(snapshot)
        data.append(contentsOf: [UInt8](repeating: 0x20, count: (4096 - (data.count + 1) % 4096) % 4096))
        data.append(0x0A)
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            guard Self.overwriteInPlace(data, path: path) else { throw error }
        }
    }

    /// Overwrites the file at `path` with `data` padded with spaces to its current size, without allocating: false
    /// when it is missing, smaller than `data`, or a write fails.
    static func overwriteInPlace(_ data: Data, path: String) -> Bool {
        let descriptor = open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, Int(status.st_size) >= data.count else { return false }
        var bytes = [UInt8](data)
        bytes.append(contentsOf: [UInt8](repeating: 0x20, count: Int(status.st_size) - data.count))
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes {
                pwrite(descriptor, $0.baseAddress! + offset, $0.count - offset, off_t(offset))
            }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    /// Reads a snapshot written by `write(to:)`; nil when there is none or it cannot be read.
    static func read(from path: String) -> Snapshot? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(Snapshot.self, from: data)
    }
}
