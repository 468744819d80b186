/// One slide version as the job store keeps it.
public struct Job: Sendable, Equatable {
    /// The row id.
    public var id: Int64
    /// The path it was settled at (aliases: ``JobStore/paths(jobID:)``).
    public var path: String
    /// The content fingerprint; nil while discovered, and for files rejected as not slides.
    public var fingerprint: String?
    /// File size in bytes when last seen.
    public var size: Int64
    /// File modification time (Unix seconds) when last seen.
    public var modified: Double
    public var state: JobState
    /// How many times it was claimed for processing (a clean shutdown gives its claim back).
    public var attempts: Int
    /// The event id of its report; set by ``JobStore/complete(jobID:eventID:reportDirectory:result:outbox:now:)``.
    public var eventID: String?
    /// When the row was created (Unix seconds).
    public var createdAt: Double
    /// When a settled job is due (Unix seconds).
    public var nextAttemptAt: Double? = nil
    /// Until when a processing job's claim holds (Unix seconds).
    public var leaseUntil: Double? = nil
    /// The report folder, once reported.
    public var reportDirectory: String? = nil
    /// The report's outcome, once reported.
    public var result: JobResult? = nil
    /// Why it failed, or why its last attempt was retried (a stable code and a message).
    public var lastErrorCode: String? = nil
    public var lastErrorMessage: String? = nil
    /// When it was reported (or failed), Unix seconds.
    public var finishedAt: Double? = nil
    /// Processing: the host that holds the lease.
    public var leaseHolder: String? = nil
    /// Processing: this claim's token; the holder's renewals and releases name it, so a host that lost the job to
    /// another (its lease expired) cannot touch the new claim.
    public var leaseToken: String? = nil
}

/// One claim of a job: by which host, when, and how it ended.
public struct JobAttempt: Sendable, Equatable, Codable {
    /// How an attempt ended.
    public enum Outcome: String, Sendable, Codable {
        /// The report was recorded.
        case reported
        /// A transient failure: back in the queue.
        case retried
        /// A transient failure with no attempts left.
        case failed
        /// The file changed while it was scored.
        case discarded
        /// Its host died (or lost the database for longer than the lease); another host took the job over.
        case leaseExpired = "lease_expired"
        /// Its host died and started again.
        case interrupted
    }

    public var jobID: Int64
    /// 1 for the first claim.
    public var attempt: Int
    public var host: String
    public var startedAt: Double
    public var endedAt: Double?
    /// Nil while it runs.
    public var outcome: Outcome?

    enum CodingKeys: String, CodingKey {
        case attempt, host, outcome
        case jobID = "job_id"
        case startedAt = "started_at"
        case endedAt = "ended_at"
    }
}

/// The outcome of a report, as the job store keeps it for `csmil status`.
public struct JobResult: Sendable, Equatable, Codable {
    /// `scored`, `no_tissue` or `failed` (the report's status).
    public var status: String
    public var probability: Double?
    public var label: String?
    /// The report's error, when `status` is `failed`.
    public var errorCode: String?
    public var errorMessage: String?
    /// The report's `qc.status` (`pass` or `review`); nil when QC was off.
    public var qcStatus: String?
    /// The report's `qc.reasons`.
    public var qcReasons: [String]

    /// Makes a result.
    public init(
        status: String, probability: Double? = nil, label: String? = nil, errorCode: String? = nil,
        errorMessage: String? = nil, qcStatus: String? = nil, qcReasons: [String] = []
    ) {
        self.status = status
        self.probability = probability
        self.label = label
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.qcStatus = qcStatus
        self.qcReasons = qcReasons
    }

    enum CodingKeys: String, CodingKey {
        case status, probability, label
        case errorCode = "error_code"
        case errorMessage = "error_message"
        case qcStatus = "qc_status"
        case qcReasons = "qc_reasons"
    }
}

/// What ``JobStore/recordSettled(path:fingerprint:size:modified:now:)`` did with a settled file.
public enum SettleOutcome: Sendable, Equatable {
    /// New content: a job in state settled, due now.
    case queued(Job)
    /// This content is already known (a rescan, a renamed or copied file, or a file that failed for good and has not
    /// changed since): nothing is queued; the path is recorded as an alias of the job.
    case alreadyKnown(Job)
    /// A path that held other content before: a new job, settled and due now (the earlier job is kept).
    case newVersion(Job)

    /// The job concerned.
    public var job: Job {
        switch self {
        case .queued(let job), .alreadyKnown(let job), .newVersion(let job): job
        }
    }
}

/// What ``JobStore/retryLater(jobID:code:message:now:maxAttempts:initialBackoff:maxBackoff:randomFraction:)``
/// decided.
public enum RetryDecision: Sendable, Equatable {
    /// Back in the queue, due at this time (Unix seconds).
    case retryAt(Double)
    /// Attempts are used up: the job is failed with the reason.
    case gaveUp
}
