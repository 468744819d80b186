/// The watch folder could not be set up: what happened, to which folder, and what to do.
public struct WatchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable, machine-readable reason.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The folder does not exist, is not a folder, or cannot be read.
        public static let folderUnavailable = Code(rawValue: "watch.folder_unavailable")
        /// The kernel refused an inotify instance or watch (limits, permissions).
        public static let inotifyFailed = Code(rawValue: "watch.inotify_failed")
        /// A setting cannot work (negative seconds, an empty ignore pattern).
        public static let invalidSetting = Code(rawValue: "watch.invalid_setting")
        /// A system call the watcher needs failed (eventfd, poll).
        public static let systemCallFailed = Code(rawValue: "watch.system_call_failed")
    }

    /// Why it failed.
    public var code: Code
    /// The folder or setting concerned.
    public var path: String
    /// What happened.
    public var message: String
    /// What the user can do about it.
    public var fix: String

    /// Makes an error naming `path` (a folder, or a setting such as `[watch] ignore`).
    public init(code: Code, path: String, message: String, fix: String) {
        self.code = code
        self.path = path
        self.message = message
        self.fix = fix
    }

    public var description: String { "\(path): \(message) [\(code)] — \(fix)" }
}
