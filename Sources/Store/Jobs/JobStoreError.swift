import Errors

/// A job store failure that is not a plain SQLite error: the file cannot be used, or a caller asked for a change
/// that the job's state does not allow. It names the database file (and the job) and says what to do.
///
/// SQLite failures after the store is open (a full disk, an I/O error) are thrown as ``SQLiteError``, which has its
/// own stable codes (`sqlite.disk_full`, …).
public struct JobStoreError: CSMILError, Sendable, Equatable {
    /// A stable code per kind of failure.
    public enum Code: String, ErrorCode {
        /// The file is damaged or is not a database; the integrity check at start failed.
        case corrupt = "store.corrupt"
        /// The file or its folder cannot be opened or created.
        case cannotOpen = "store.cannot_open"
        /// The file was written by a newer csmil.
        case tooNew = "store.schema_too_new"
        /// Any other failure while opening.
        case unavailable = "store.unavailable"
        /// No job has this id.
        case unknownJob = "job.unknown"
        /// The job is not in a state that allows this change (e.g. completing a job that is not processing).
        case wrongState = "job.wrong_state"
        /// A job would be reported under a second event id, or under an id another job already has.
        case eventIDConflict = "job.event_id_conflict"
    }

    public var code: Code
    /// The database file.
    public var file: String
    /// What happened.
    public var message: String
    /// What to do about it.
    public var fix: String

    public var subject: String { file }

    /// The error for a failure while opening the store at `path`.
    public static func opening(_ path: String, _ error: any Error) -> JobStoreError {
        guard let error = error as? SQLiteError else {
            return JobStoreError(
                code: .unavailable, file: path,
                message: "the job store could not be opened: \(ErrorSummary(error).text)",
                fix: "check the file and its folder, then start csmil again")
        }
        switch error.code {
        case .corrupt:
            return corrupt(path, detail: error.message)
        case .cannotOpen:
            return JobStoreError(
                code: .cannotOpen, file: path, message: "the job store could not be opened: \(error.message)",
                fix: error.fix)
        case .tooNew:
            return JobStoreError(code: .tooNew, file: path, message: error.message, fix: error.fix)
        default:
            return JobStoreError(
                code: .unavailable, file: path, message: "the job store could not be opened: \(error.message)",
                fix: error.fix)
        }
    }

    /// The file failed its integrity check or is not a database.
    public static func corrupt(_ path: String, detail: String) -> JobStoreError {
        JobStoreError(
            code: .corrupt, file: path, message: "the job store is damaged (\(detail))",
            fix: "stop csmil, move \(path) and any \(path)-wal and \(path)-shm beside it aside (keep them for "
                + "inspection), then start csmil again: it starts with an empty job store and rescans the watch "
                + "folder; reports already written under [output] directory stay, but webhook events still "
                + "waiting in the old file are not resent")
    }

    public static func unknownJob(_ path: String, _ id: Int64) -> JobStoreError {
        JobStoreError(
            code: .unknownJob, file: path, message: "no job has id \(id)",
            fix: "this is a bug in csmil (a job id from another store?); please report it")
    }

    public static func wrongState(_ path: String, _ job: Job, _ action: String) -> JobStoreError {
        JobStoreError(
            code: .wrongState, file: path,
            message: "cannot \(action) job \(job.id) (\(job.path)): it is \(job.state.rawValue)",
            fix: "this is a bug in csmil (the job changed state under it); please report it")
    }
}
