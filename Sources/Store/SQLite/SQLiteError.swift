import CSQLite
import Errors

/// A SQLite call that failed. It names the database file, what was being done, SQLite's own message and what an
/// operator can do about it.
public struct SQLiteError: CSMILError, Sendable, Equatable {
    /// A stable code per kind of failure.
    public enum Code: String, ErrorCode {
        /// The file could not be opened or created (`SQLITE_CANTOPEN`, `SQLITE_PERM`, `SQLITE_READONLY`).
        case cannotOpen = "sqlite.cannot_open"
        /// Another connection held a lock for longer than the busy timeout (`SQLITE_BUSY`, `SQLITE_LOCKED`).
        case busy = "sqlite.busy"
        /// The file system is full (`SQLITE_FULL`).
        case diskFull = "sqlite.disk_full"
        /// The file is damaged or is not a database (`SQLITE_CORRUPT`, `SQLITE_NOTADB`, a failed integrity check).
        case corrupt = "sqlite.corrupt"
        /// A UNIQUE, NOT NULL or CHECK constraint refused a row (`SQLITE_CONSTRAINT`).
        case constraint = "sqlite.constraint"
        /// The SQL text is wrong, or a value has the wrong type: a bug in the caller.
        case misuse = "sqlite.misuse"
        /// Reading or writing the file failed (`SQLITE_IOERR`).
        case io = "sqlite.io"
        /// The database was written by a newer csmil (its schema version is higher than this build knows).
        case tooNew = "sqlite.schema_too_new"
        /// Any other SQLite result code.
        case other = "sqlite.error"
    }

    /// What kind of failure this is.
    public var code: Code
    /// The database file concerned.
    public var path: String
    /// What happened, e.g. "could not prepare \"SELECT …\": no such table: outbox".
    public var message: String
    /// What to do about it.
    public var fix: String
    /// SQLite's extended result code, when there is one.
    public var resultCode: Int32?

    /// Makes an error.
    public init(code: Code, path: String, message: String, fix: String, resultCode: Int32? = nil) {
        self.code = code
        self.path = path
        self.message = message
        self.fix = fix
        self.resultCode = resultCode
    }

    public var subject: String { path }

    /// The error for SQLite result `result` while doing `operation`, with the connection's message when one is open.
    static func sqlite(_ result: Int32, _ operation: String, path: String, handle: OpaquePointer?) -> SQLiteError {
        let reason: String
        if let handle, let text = sqlite3_errmsg(handle) {
            reason = String(cString: text)
        } else {
            reason = String(cString: sqlite3_errstr(result))
        }
        let message = "could not \(operation): \(reason)"
        switch result & 0xff {
        case SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_READONLY, SQLITE_AUTH:
            return SQLiteError(
                code: .cannotOpen, path: path, message: message,
                fix: "let the user csmil runs as read and write the file and its folder, or set [state] directory "
                    + "to a writable local folder", resultCode: result)
        case SQLITE_BUSY, SQLITE_LOCKED:
            return SQLiteError(
                code: .busy, path: path, message: message,
                fix: "another process holds the database; run only one csmil daemon per [state] directory",
                resultCode: result)
        case SQLITE_FULL:
            return SQLiteError(
                code: .diskFull, path: path, message: message,
                fix: "free space on the file system that holds it", resultCode: result)
        case SQLITE_CORRUPT, SQLITE_NOTADB:
            return SQLiteError(
                code: .corrupt, path: path, message: message,
                fix: "stop csmil, move the file aside (keep it for inspection) and restore it from a backup; "
                    + "csmil starts with an empty store without it", resultCode: result)
        case SQLITE_CONSTRAINT:
            return SQLiteError(
                code: .constraint, path: path, message: message,
                fix: "the row contradicts the schema; this is a bug in csmil, please report it", resultCode: result)
        case SQLITE_ERROR, SQLITE_MISUSE, SQLITE_RANGE, SQLITE_MISMATCH:
            return SQLiteError(
                code: .misuse, path: path, message: message,
                fix: "this is a bug in csmil (or the file belongs to another program); please report it",
                resultCode: result)
        case SQLITE_IOERR:
            return SQLiteError(
                code: .io, path: path, message: message,
                fix: "check the file system that holds it (dmesg, df) and try again", resultCode: result)
        default:
            return SQLiteError(
                code: .other, path: path, message: message, fix: "check the file and its folder, then try again",
                resultCode: result)
        }
    }
}
