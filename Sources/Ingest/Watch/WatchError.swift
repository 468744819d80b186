import Errors

/// The watch folder could not be set up: what happened, to which folder, and what to do.
public struct WatchError: CSMILError, Sendable, Equatable {
    /// A stable reason.
    public enum Code: String, ErrorCode {
        /// The folder does not exist, is not a folder, or cannot be read.
        case folderUnavailable = "watch.folder_unavailable"
        /// The kernel refused an inotify instance or watch (limits, permissions).
        case inotifyFailed = "watch.inotify_failed"
        /// A setting cannot work (negative seconds, an empty ignore pattern).
        case invalidSetting = "watch.invalid_setting"
        /// A system call the watcher needs failed (eventfd, poll).
        case systemCallFailed = "watch.system_call_failed"

        /// A setting only; a folder not there (yet) or an inotify failure may pass on a retry.
        public var needsConfigurationChange: Bool { self == .invalidSetting }
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

    public var subject: String { path }
}
