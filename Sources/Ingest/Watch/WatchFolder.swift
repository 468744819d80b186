import Foundation
import Glibc
import Logging
import Synchronization
import Threads

/// Watches the folder a slide scanner writes into and delivers every slide once it has settled.
///
/// ```swift
/// let watcher = try WatchFolder(settings: settings, logger: logger) { event in queue.put(event) }
/// // the folder is watched from here on: safe to signal READY=1
/// try await DedicatedThread.run(name: "csmil-watch", watcher.run, onCancel: watcher.stop)
/// ```
///
/// **What it watches.** The folder and all its subfolders, with inotify (`IN_CLOSE_WRITE`,
/// `IN_MOVED_TO`, `IN_CREATE`, …; new subfolders are watched and then scanned, so nothing written
/// right after a `mkdir -p` is lost), or with a periodic scan of sizes and modification times
/// when the folder is on a network or FUSE file system (``WatchSettings/Polling/auto``) or when
/// configured. Events are only hints that something may have changed: the folder is also scanned
/// in full at start-up, after an inotify queue overflow, when it comes back after being deleted,
/// moved away or unmounted, and every ``WatchSettings/rescanSeconds`` as a safety net.
///
/// **When a slide is delivered.** When its size and modification time (for a MIRAX or VMS/VMU set,
/// those of all its files) stayed the same for ``WatchSettings/settleSeconds`` and the probe
/// (in production ``openSlideProbe``: OpenSlide opens it and reads its smallest level) succeeds;
/// then ``WatchEvent/settled(_:)``. A quiet file the probe refuses is reported once as
/// ``WatchEvent/rejected(_:)``. Either is repeated only if the file changes (a new version) or,
/// after a restart, once more: the daemon recognises slides it has seen by their content.
/// Deciding this is ``SettleStateMachine``'s job; this class does the I/O around it.
///
/// **Threads.** ``run()`` blocks its thread (one of the daemon's own, never the cooperative pool)
/// in `poll`; the handler and the probe are called on that thread, one at a time, so a handler that
/// blocks (a full ``BoundedQueue``) holds the watcher back, which is what backpressure means here.
/// ``stop()``, ``rescan()`` and ``status`` may be called from any thread.
///
/// `@unchecked Sendable`: the loop's state lives in a `WatchLoop` that only the thread inside ``run()``
/// touches (a second concurrent ``run()`` is refused); what other threads share is behind a `Mutex`.
public final class WatchFolder: @unchecked Sendable {
    /// Decides whether a quiet file is a slide; called on the watch thread.
    public typealias Probe = @Sendable (String) -> ProbeOutcome
    /// Receives settled slides, rejected files and folder availability; called on the watch thread.
    public typealias Handler = @Sendable (WatchEvent) -> Void

    /// Seconds of `CLOCK_MONOTONIC`, the default clock.
    public static let monotonicSeconds: @Sendable () -> Double = {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// The settings it was made with.
    public let settings: WatchSettings

    struct Shared {
        var status: WatchStatus
        var stopRequested = false
        var rescanRequested = false
        var overflowInjected = false
        var roundRequests = 0
        var running = false
    }

    private let shared: Mutex<Shared>
    private let wakeup: Wakeup
    private let loop: WatchLoop

    /// Sets up the watch: checks the folder, chooses inotify or polling (``mode``) and, for
    /// inotify, watches the folder and every subfolder. When this returns, changes in the folder
    /// are being recorded (safe to report the daemon ready); nothing is delivered before ``run()``.
    ///
    /// Throws ``WatchError`` when a setting cannot work, the folder does not exist or is not a
    /// folder, or the kernel refuses an inotify instance. A folder with more subfolders than the
    /// inotify watch limit allows falls back to polling (logged, and shown in ``mode``).
    public init(
        settings: WatchSettings, logger: Logger, probe: @escaping Probe = WatchFolder.openSlideProbe,
        clock: @escaping @Sendable () -> Double = WatchFolder.monotonicSeconds, handler: @escaping Handler
    ) throws(WatchError) {
        try settings.validate()
        let root = SlideSetLayout.normalise(settings.directory)
        var info = stat()
        guard stat(root, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw WatchError(
                code: .folderUnavailable, path: root, message: "does not exist or is not a folder",
                fix: "create it (owned by the csmil user) or correct [watch] directory")
        }
        guard access(root, R_OK | X_OK) == 0 else {
            throw WatchError(
                code: .folderUnavailable, path: root, message: "cannot be read (permission denied)",
                fix: "give the csmil user read and execute permission on the folder")
        }
        let fileSystem = FileSystemType.of(root) ?? FileSystemType(magic: 0)
        let mode = fileSystem.mode(for: settings.polling)
        self.settings = settings
        wakeup = Wakeup()
        loop = try WatchLoop(
            settings: settings, root: root, mode: mode, logger: logger, probe: probe, clock: clock, handler: handler)
        shared = Mutex(Shared(status: loop.status()))
        logger.info(
            "watching folder",
            metadata: [
                "folder": "\(root)", "mode": "\(loop.mode.kind.rawValue)", "file_system": "\(loop.mode.fileSystem)",
                "reason": "\(loop.mode.reason)", "settle_seconds": "\(settings.settleSeconds)",
            ])
    }

    /// inotify or polling, and why (for `csmil status`).
    public var mode: WatchMode { shared.withLock { $0.status.mode } }

    /// What the watcher is doing now (for `csmil status`).
    public var status: WatchStatus { shared.withLock { $0.status } }

    /// Watches until ``stop()``: a full scan first, then events (or periodic scans), settle checks
    /// and probes, calling the handler for each outcome. Call it once, on a thread of your own.
    public func run() {
        let alreadyRunning = shared.withLock { shared in
            defer { shared.running = true }
            return shared.running
        }
        guard !alreadyRunning else {
            preconditionFailure("WatchFolder.run() called while it is already running")
        }
        defer { shared.withLock { $0.running = false } }
        loop.run(wakeup: wakeup) { status in
            self.shared.withLock { shared in
                if let status { shared.status = status }
                defer {
                    shared.rescanRequested = false
                    shared.overflowInjected = false
                }
                return WatchLoop.Requests(
                    stop: shared.stopRequested, rescan: shared.rescanRequested, overflow: shared.overflowInjected,
                    round: shared.roundRequests)
            }
        }
    }

    /// Asks ``run()`` to return; it does after the probe or handler call in progress, if any.
    /// Safe from any thread, and before or after ``run()``.
    public func stop() {
        shared.withLock { $0.stopRequested = true }
        wakeup.signal()
    }

    /// Asks for a full scan of the folder soon (for example after the daemon's job store was repaired).
    public func rescan() {
        shared.withLock { $0.rescanRequested = true }
        wakeup.signal()
    }

    /// Test hook: asks for a round of work that begins after this call; ``WatchStatus/roundsServed`` reaches the
    /// returned number when one has finished.
    func requestRound() -> Int {
        defer { wakeup.signal() }
        return shared.withLock { shared in
            shared.roundRequests += 1
            return shared.roundRequests
        }
    }

    /// Test hook: makes the loop act as if the kernel had reported `IN_Q_OVERFLOW`.
    func injectQueueOverflow() {
        shared.withLock { $0.overflowInjected = true }
        wakeup.signal()
    }
}
