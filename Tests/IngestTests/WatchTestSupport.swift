import Foundation
import Logging
import Synchronization
import SyntheticSlides
import Testing
import Threads

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

/// A clock the test moves by hand: the watcher's idea of time passes only when the test says so, so the
/// settle logic sees exactly the pauses the test means, however loaded the machine is.
final class ManualClock: Sendable {
    private let seconds = Mutex(1000.0)

    func now() -> Double { seconds.withLock { $0 } }

    func advance(by interval: Double) { seconds.withLock { $0 += interval } }
}

/// The events a watcher delivered, with the watcher's clock time of each.
final class WatchRecorder: Sendable {
    private let events = Mutex<[(event: WatchEvent, at: Double)]>([])
    private let clock: @Sendable () -> Double

    init(clock: @escaping @Sendable () -> Double) { self.clock = clock }

    func record(_ event: WatchEvent) {
        let now = clock()
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

/// A temporary watched folder with a ``WatchFolder`` on a dedicated thread, on a ``ManualClock``, recording every
/// event. Time passes for the watcher only through ``advance(_:)``; ``round()`` waits until the watcher has done a
/// round of work that began after the call, so what the test did before (a write, a rename, a clock step) has been
/// seen. That is how the tests prove that nothing (more) happened: by a round that must come after it.
/// `finish()` stops the watcher, waits for its thread and removes the folders.
final class WatchHarness: Sendable {
    /// The watched folder.
    let root: String
    /// A folder on the same file system that is not watched, where files are prepared before being moved in.
    let outside: String
    let watcher: WatchFolder
    let clock = ManualClock()
    let recorder: WatchRecorder
    let settings: WatchSettings
    private let base: URL
    private let thread = Mutex<DedicatedThread?>(nil)

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
        settings = WatchSettings(
            directory: root, settleSeconds: settle, polling: polling, ignore: ignore, rescanSeconds: rescanSeconds,
            pollSeconds: pollSeconds)
        var logger = Logger(label: "csmil.watch.test")
        logger.logLevel = .critical
        let clock = clock
        let recorder = WatchRecorder(clock: { clock.now() })
        self.recorder = recorder
        let settings = settings
        var made: WatchFolder?
        var failure: (any Error)?
        around {
            do {
                made = try WatchFolder(settings: settings, logger: logger, probe: probe, clock: { clock.now() }) {
                    recorder.record($0)
                }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        watcher = try #require(made)
    }

    /// Runs the watcher on a dedicated thread.
    func start() {
        let watcher = watcher
        let thread = DedicatedThread(name: "csmil-watch-test")
        thread.execute { watcher.run() }
        thread.finish()
        self.thread.withLock { $0 = thread }
    }

    /// Stops the watcher, waits for its thread, removes the folders.
    func finish() {
        watcher.stop()
        thread.withLock { $0 }?.join()
        try? FileManager.default.removeItem(at: base)
    }

    /// Waits until the watcher has done a whole round of work that began after this call.
    func round() async {
        let ticket = watcher.requestRound()
        while watcher.status.roundsServed < ticket { try? await Task.sleep(for: .milliseconds(2)) }
    }

    /// Moves the watcher's clock on by `seconds` and waits for a round at the new time.
    func advance(_ seconds: Double) async {
        clock.advance(by: seconds)
        await round()
    }

    /// A look at the folder: in polling mode the next scan (the clock moves on by one poll interval), with inotify
    /// the events so far.
    func look() async { await advance(settings.polling == .poll ? settings.pollSeconds : 0) }

    /// Lets a quiet file settle: the clock moves on by the settle time.
    func settle() async { await advance(settings.settleSeconds) }

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
