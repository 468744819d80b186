import Errors

/// A job store failure that is not a plain database error: the file cannot be used, or a caller asked for a change
/// that the job's state does not allow. It names the database file or server (and the job) and says what to do.
///
/// Database failures after the store is open (a full disk, a lost server) are thrown as ``SQLiteError`` or
/// ``PostgresError``, which have their own stable codes (`sqlite.disk_full`, `postgres.unreachable`, …).
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
        /// Another host took the job over (this host's lease had expired).
        case leaseLost = "job.lease_lost"
        /// Another running csmil uses this host name with the same database.
        case hostNameInUse = "store.host_name_in_use"
        /// `csmil store migrate` was pointed at a store that already holds jobs or events.
        case targetNotEmpty = "store.target_not_empty"

        /// A host name another running csmil uses needs `[state] host_name` changed; the rest may pass (or need
        /// more than the configuration: a damaged file, a newer csmil).
        public var needsConfigurationChange: Bool { self == .hostNameInUse }
    }

    public var code: Code
    /// The database file, or the server's URL without a password.
    public var location: String
    /// What happened.
    public var message: String
    /// What to do about it.
    public var fix: String

    public init(code: Code, location: String, message: String, fix: String) {
        self.code = code
        self.location = location
        self.message = message
        self.fix = fix
    }

    public var subject: String { location }

    /// The error for a failure while opening the store at `path`; a PostgreSQL error is passed on as it is (its
    /// code says whether to retry).
    public static func opening(_ path: String, _ error: any Error) -> any Error {
        if error is PostgresError || error is JobStoreError { return error }
        guard let error = error as? SQLiteError else {
            return JobStoreError(
                code: .unavailable, location: path,
                message: "the job store could not be opened: \(ErrorSummary(error).text)",
                fix: "check the file and its folder, then start csmil again")
        }
        switch error.code {
        case .corrupt:
            return corrupt(path, detail: error.message)
        case .cannotOpen:
            return JobStoreError(
                code: .cannotOpen, location: path, message: "the job store could not be opened: \(error.message)",
                fix: error.fix)
        case .tooNew:
            return JobStoreError(code: .tooNew, location: path, message: error.message, fix: error.fix)
        default:
            return JobStoreError(
                code: .unavailable, location: path, message: "the job store could not be opened: \(error.message)",
                fix: error.fix)
        }
    }

    /// The file failed its integrity check or is not a database.
    public static func corrupt(_ path: String, detail: String) -> JobStoreError {
        JobStoreError(
            code: .corrupt, location: path, message: "the job store is damaged (\(detail))",
            fix: "stop csmil, move \(path) and any \(path)-wal and \(path)-shm beside it aside (keep them for "
                + "inspection), then start csmil again: it starts with an empty job store and rescans the watch "
                + "folder; reports already written under [output] directory stay, but webhook events still "
                + "waiting in the old file are not resent")
    }

    public static func unknownJob(_ path: String, _ id: Int64) -> JobStoreError {
        JobStoreError(
            code: .unknownJob, location: path, message: "no job has id \(id)",
            fix: "this is a bug in csmil (a job id from another store?); please report it")
    }

    public static func leaseLost(_ path: String, _ job: Job) -> JobStoreError {
        JobStoreError(
            code: .leaseLost, location: path,
            message: "job \(job.id) (\(job.path)) was taken over by \(job.leaseHolder ?? "another host") after this "
                + "host's lease expired",
            fix: "nothing: the other host scores it; keep the hosts' clocks in sync (NTP) and the database reachable")
    }

    public static func wrongState(_ path: String, _ job: Job, _ action: String) -> JobStoreError {
        JobStoreError(
            code: .wrongState, location: path,
            message: "cannot \(action) job \(job.id) (\(job.path)): it is \(job.state.rawValue)",
            fix: "this is a bug in csmil (the job changed state under it); please report it")
    }
}
