import Errors

/// A failure to start or run the daemon (or `csmil score`) around the slides: the state folder.
struct DaemonError: CSMILError, Sendable, Equatable {
    enum Code: String, ErrorCode {
        /// The state folder, its lock file or its work folder cannot be created or written.
        case stateUnwritable = "state.unwritable"
        /// Another `csmil watch` holds the state folder's lock.
        case stateLocked = "state.locked"
        /// A [watch], [output] or [state] folder does not exist and cannot be made.
        case folderUncreatable = "folder.uncreatable"
        /// `reload.json` (the answer to `csmil reload`) cannot be written.
        case runtimeUnwritable = "runtime.unwritable"
    }

    var code: Code
    /// The file or folder concerned.
    var subject: String
    var message: String
    var fix: String
}
