import Errors

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A report folder or file that could not be written. It names the path, what was being done, the system's
/// reason and what an operator can do about it.
public struct ReportError: CSMILError, Sendable, Equatable {
    /// A stable code per kind of failure.
    public enum Code: String, ErrorCode {
        /// The file system is full (`ENOSPC`) or a quota is exhausted (`EDQUOT`).
        case diskFull = "report.disk_full"
        /// Permission denied or a read-only file system (`EACCES`, `EPERM`, `EROFS`).
        case permissionDenied = "report.permission_denied"
        /// A path component is not a folder, or a folder is missing (`ENOTDIR`, `ENOENT`, `EEXIST`).
        case notADirectory = "report.not_a_directory"
        /// The report contradicts the spec (for example an error on a scored slide): a bug in the caller.
        case inconsistentReport = "report.inconsistent"
        /// The report could not be encoded (a value JSON cannot hold).
        case encoding = "report.encoding"
        /// Any other input/output failure.
        case io = "report.io"
    }

    /// What kind of failure this is.
    public var code: Code
    /// The folder or file concerned.
    public var path: String
    /// What happened, e.g. "could not write: No space left on device".
    public var message: String
    /// What to do about it.
    public var fix: String
    /// The `errno` behind the failure, when there is one.
    public var systemError: Int32?

    /// Makes an error.
    public init(code: Code, path: String, message: String, fix: String, systemError: Int32? = nil) {
        self.code = code
        self.path = path
        self.message = message
        self.fix = fix
        self.systemError = systemError
    }

    /// The error for a failed system call `operation` (e.g. "write", "rename to report.json") on `path`.
    static func system(_ operation: String, path: String, errno number: Int32) -> ReportError {
        let reason = String(cString: strerror(number))
        let message = "could not \(operation): \(reason)"
        switch number {
        case ENOSPC, EDQUOT:
            return ReportError(
                code: .diskFull, path: path, message: message,
                fix: "free space on the file system that holds it, or set [output] directory to a larger one",
                systemError: number)
        case EACCES, EPERM, EROFS:
            return ReportError(
                code: .permissionDenied, path: path, message: message,
                fix: "let the user csmil runs as write there (chown/chmod), or set [output] directory elsewhere",
                systemError: number)
        case ENOTDIR, ENOENT, EEXIST:
            return ReportError(
                code: .notADirectory, path: path, message: message,
                fix: "make [output] directory a writable folder (a file or a missing folder is in the way)",
                systemError: number)
        default:
            return ReportError(
                code: .io, path: path, message: message,
                fix: "check the file system that holds it (dmesg, df) and try again", systemError: number)
        }
    }

    public var subject: String { path }
}
