/// How a ``WatchFolder`` watches: the `[watch]` section of the daemon's configuration.
public struct WatchSettings: Sendable, Equatable {
    /// How the folder is observed.
    public enum Polling: String, Sendable, CaseIterable {
        /// Poll on network and FUSE file systems (NFS, SMB/CIFS, FUSE, …; by `statfs`), inotify elsewhere.
        case auto
        /// Always inotify, plus the periodic safety-net rescan.
        case inotify
        /// Always poll: a periodic scan of sizes and modification times.
        case poll
    }

    /// The names ignored when `ignore` is not configured: dot files and folders, and the usual
    /// names of files still being written.
    public static let defaultIgnore = [".*", "*.tmp", "*.part", "*.partial"]

    /// The folder the scanner writes into; its subfolders are watched too.
    public var directory: String
    /// How long a slide's size and modification time (every file of a slide set) must stay
    /// unchanged before it is probed and delivered.
    public var settleSeconds: Double
    /// inotify, polling, or chosen by the folder's file system.
    public var polling: Polling
    /// Glob patterns (`fnmatch`) of names to ignore. A pattern without `/` is matched against each
    /// file and folder name (so `.*` also ignores everything inside dot folders); one with `/`
    /// against the path relative to ``directory``.
    public var ignore: [String]
    /// The interval of the safety-net full rescan in inotify mode (also run at start-up and after a
    /// queue overflow).
    public var rescanSeconds: Double
    /// The interval of the scan in polling mode.
    public var pollSeconds: Double

    /// Settings with the daemon's defaults for everything but the folder.
    public init(
        directory: String, settleSeconds: Double = 30, polling: Polling = .auto, ignore: [String] = defaultIgnore,
        rescanSeconds: Double = 600, pollSeconds: Double = 5
    ) {
        self.directory = directory
        self.settleSeconds = settleSeconds
        self.polling = polling
        self.ignore = ignore
        self.rescanSeconds = rescanSeconds
        self.pollSeconds = pollSeconds
    }

    /// Refuses settings that cannot work, naming the setting.
    func validate() throws(WatchError) {
        for (name, value) in [
            ("settle_seconds", settleSeconds), ("rescan_seconds", rescanSeconds), ("poll_seconds", pollSeconds),
        ] where !(value.isFinite && value >= 0) {
            throw WatchError(
                code: .invalidSetting, path: "[watch] \(name)", message: "must be a number ≥ 0 (is \(value))",
                fix: "set [watch] \(name) to a number of seconds")
        }
        for (name, value) in [("rescan_seconds", rescanSeconds), ("poll_seconds", pollSeconds)] where value <= 0 {
            throw WatchError(
                code: .invalidSetting, path: "[watch] \(name)", message: "must be greater than 0",
                fix: "set [watch] \(name) to a positive number of seconds")
        }
        if ignore.contains(where: \.isEmpty) {
            throw WatchError(
                code: .invalidSetting, path: "[watch] ignore", message: "contains an empty pattern",
                fix: "remove the empty string from [watch] ignore")
        }
    }
}

/// How a ``WatchFolder`` actually observes its folder (for `csmil status`).
public struct WatchMode: Sendable, Equatable, CustomStringConvertible {
    /// inotify events or periodic scans.
    public enum Kind: String, Sendable {
        case inotify
        case polling
    }

    public var kind: Kind
    /// The folder's file system as `statfs` names it ("ext4", "nfs", "fuse", …).
    public var fileSystem: String
    /// Why this kind: "configured", "local file system", "network file system", "inotify watch limit reached".
    public var reason: String

    public init(kind: Kind, fileSystem: String, reason: String) {
        self.kind = kind
        self.fileSystem = fileSystem
        self.reason = reason
    }

    public var description: String { "\(kind.rawValue) (\(fileSystem); \(reason))" }
}
