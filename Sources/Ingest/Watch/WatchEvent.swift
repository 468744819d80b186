import Foundation

/// A slide whose files stayed unchanged for `settle_seconds` and that OpenSlide opens and reads.
public struct SettledSlide: Sendable, Equatable {
    /// The slide file; for a set, its index (`.mrxs`, `.vms`, `.vmu`).
    public var path: String
    /// The size of ``path`` in bytes.
    public var size: Int64
    /// The modification time of ``path``.
    public var modified: Date
    /// Every file of the slide: ``path`` first, then the set's other files (MIRAX data folder,
    /// files a VMS/VMU names) sorted by path.
    public var files: [String]
    /// The bytes of all ``files``.
    public var totalBytes: Int64

    public init(path: String, size: Int64, modified: Date, files: [String], totalBytes: Int64) {
        self.path = path
        self.size = size
        self.modified = modified
        self.files = files
        self.totalBytes = totalBytes
    }
}

/// A quiet file that is not a slide OpenSlide can read (or a damaged one). Reported once; it is
/// looked at again only if it changes.
public struct RejectedFile: Sendable, Equatable {
    /// The file; for a set, its index.
    public var path: String
    /// The size of ``path`` in bytes.
    public var size: Int64
    /// The modification time of ``path``.
    public var modified: Date
    /// A stable reason code (``SlideError/Code`` raw values such as "slide.not_a_slide", "slide.openslide_error").
    public var code: String
    /// What is wrong and what to do, naming the file.
    public var reason: String

    public init(path: String, size: Int64, modified: Date, code: String, reason: String) {
        self.path = path
        self.size = size
        self.modified = modified
        self.code = code
        self.reason = reason
    }
}

/// What a ``WatchFolder`` tells the daemon.
public enum WatchEvent: Sendable, Equatable {
    /// A slide is ready to score.
    case settled(SettledSlide)
    /// A quiet file is not a readable slide.
    case rejected(RejectedFile)
    /// The watched folder was deleted, moved away or unmounted; the watcher checks every second
    /// for it to come back.
    case folderUnavailable(path: String, reason: String)
    /// The watched folder is back and watched again (after a full rescan).
    case folderRestored(path: String)
}

/// What a ``WatchFolder`` is doing, for `csmil status` (a copy; stale as soon as it is read).
public struct WatchStatus: Sendable, Equatable {
    /// inotify or polling, and why.
    public var mode: WatchMode
    /// False while the watched folder is missing (deleted, moved away, unmounted).
    public var folderAvailable: Bool
    /// Folders with an inotify watch (0 in polling mode).
    public var watchedFolders: Int
    /// Slides and files seen but not yet settled or rejected.
    public var pending: Int
    /// Slides delivered in this run.
    public var settled: Int
    /// Files rejected in this run.
    public var rejected: Int
    /// inotify queue overflows (each followed by a full rescan).
    public var overflows: Int
    /// Full scans of the folder (start-up, safety net, overflow, polling).
    public var rescans: Int
    /// When the last full scan finished.
    public var lastRescan: Date?
    /// The latest round of work (a look at events, due files and scans) asked for with
    /// ``WatchFolder/requestRound()`` that a finished round began after: tests wait for it to know the watcher has
    /// seen what they did before asking.
    public var roundsServed: Int

    public init(
        mode: WatchMode, folderAvailable: Bool = true, watchedFolders: Int = 0, pending: Int = 0, settled: Int = 0,
        rejected: Int = 0, overflows: Int = 0, rescans: Int = 0, lastRescan: Date? = nil, roundsServed: Int = 0
    ) {
        self.roundsServed = roundsServed
        self.mode = mode
        self.folderAvailable = folderAvailable
        self.watchedFolders = watchedFolders
        self.pending = pending
        self.settled = settled
        self.rejected = rejected
        self.overflows = overflows
        self.rescans = rescans
        self.lastRescan = lastRescan
    }
}
