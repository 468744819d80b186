import Foundation
import Logging
import Synchronization
import SyntheticSlides
import Testing

@testable import Ingest

/// Small real slides for the watch tests, written once per test process with the synthetic writer
/// into a folder that is not watched, then copied byte for byte wherever a test needs them.
enum WatchSlides {
    /// A 1024×768 Aperio SVS (three levels) that OpenSlide opens and reads.
    static let svs: Data = make(format: .svs, seed: 11)
    /// A 1024×768 generic pyramidal TIFF.
    static let tiff: Data = make(format: .tiff, seed: 12)

    private static func make(format: SyntheticSlide.Format, seed: UInt64) -> Data {
        do {
            let folder = try SlideFixtures.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: folder) }
            let path = folder.appendingPathComponent(format == .svs ? "slide.svs" : "slide.tif").path
            let slide = try SyntheticSlide(.init(width: 1024, height: 768, seed: seed, format: format))
            try slide.write(to: path)
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            fatalError("cannot write a synthetic slide for the watch tests: \(error)")
        }
    }
}

/// The events a watcher delivered, with the monotonic time of each.
final class WatchRecorder: Sendable {
    private let events = Mutex<[(event: WatchEvent, at: Double)]>([])

    func record(_ event: WatchEvent) {
        let now = WatchFolder.monotonicSeconds()
        events.withLock { $0.append((event, now)) }
    }

    var all: [(event: WatchEvent, at: Double)] { events.withLock { $0 } }

    var settled: [SettledSlide] {
        all.compactMap { if case .settled(let slide) = $0.event { slide } else { nil } }
    }

    var rejected: [RejectedFile] {
        all.compactMap { if case .rejected(let file) = $0.event { file } else { nil } }
    }

    /// When `path` was delivered as settled (the first time).
    func settledTime(_ path: String) -> Double? {
        all.first { if case .settled(let slide) = $0.event { slide.path == path } else { false } }?.at
    }
}

/// A temporary watched folder with a ``WatchFolder`` on a thread of its own, recording every event.
/// `finish()` stops the watcher, waits for its thread and removes the folders.
final class WatchHarness: Sendable {
    /// The watched folder.
    let root: String
    /// A folder on the same file system that is not watched, where files are prepared before being moved in.
    let outside: String
    let watcher: WatchFolder
    let recorder = WatchRecorder()
    private let base: URL
    private let finished = DispatchSemaphore(value: 0)
    private let started = Mutex(false)

    /// Makes the folders and the watcher (made inside `around`, for tests that change a kernel
    /// limit just for that moment). The watcher runs once ``start()`` is called.
    init(
        settle: Double, polling: WatchSettings.Polling = .inotify, pollSeconds: Double = 0.2,
        rescanSeconds: Double = 600, ignore: [String] = WatchSettings.defaultIgnore,
        probe: @escaping WatchFolder.Probe = WatchFolder.openSlideProbe,
        around: (() -> Void) -> Void = { $0() }
    ) throws {
        base = try SlideFixtures.temporaryDirectory()
        root = base.appendingPathComponent("incoming").path
        outside = base.appendingPathComponent("outside").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        let settings = WatchSettings(
            directory: root, settleSeconds: settle, polling: polling, ignore: ignore, rescanSeconds: rescanSeconds,
            pollSeconds: pollSeconds)
        var logger = Logger(label: "csmil.watch.test")
        logger.logLevel = .critical
        let recorder = recorder
        var made: WatchFolder?
        var failure: (any Error)?
        around {
            do {
                made = try WatchFolder(settings: settings, logger: logger, probe: probe) { recorder.record($0) }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        watcher = try #require(made)
    }

    /// Runs the watcher on a new thread.
    func start() {
        let watcher = watcher
        let finished = finished
        started.withLock { $0 = true }
        let thread = Thread {
            watcher.run()
            finished.signal()
        }
        thread.name = "csmil-watch-test"
        thread.start()
    }

    /// Stops the watcher, waits for its thread, removes the folders.
    func finish() {
        watcher.stop()
        if started.withLock({ $0 }) { _ = finished.wait(timeout: .now() + 10) }
        try? FileManager.default.removeItem(at: base)
    }

    /// A path in the watched folder.
    func path(_ relative: String) -> String { root + "/" + relative }

    /// Writes `data` to `relative` in the watched folder (making its folders), in one go.
    @discardableResult
    func write(_ relative: String, _ data: Data) throws -> String {
        let path = path(relative)
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try writeFile(path, data)
        return path
    }

    /// Waits up to `timeout` seconds for `condition`, checking every 20 ms; returns whether it held.
    /// Sleeps without blocking a thread, so the other watch tests run meanwhile.
    @discardableResult
    func wait(timeout: Double, until condition: () -> Bool) async throws -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }
}

/// Writes `data` to `path` in place, as a scanner does: `open(O_CREAT | O_TRUNC)`, `write`, `close`
/// (one `IN_CLOSE_WRITE`; much faster than `Data.write` for thousands of files).
func writeFile(_ path: String, _ data: Data) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
    defer { close(descriptor) }
    let written = data.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    guard written == data.count else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
}

/// Sleeps blocking the calling thread, for pauses whose length matters (a writer's pauses): a task
/// sleep can oversleep while the other tests keep the shared threads busy.
func holdThread(_ seconds: Double) {
    usleep(UInt32(seconds * 1_000_000))
}

/// Sleeps without blocking a thread.
func pause(_ seconds: Double) async throws {
    try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
}
