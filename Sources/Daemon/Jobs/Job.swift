/// Where a slide version stands in the job store (daemon spec "Jobs and state").
///
/// discovered → settled → processing → reported → delivered, or failed. A job is one slide *version*: its identity
/// is the content fingerprint, not the path.
enum JobState: String, Sendable, Codable, CaseIterable {
    /// A file was seen but has not been quiet long enough to be read (a hint for `csmil status`; no fingerprint).
    case discovered
    /// Quiet, opened and fingerprinted: waiting in the queue until `nextAttemptAt`.
    case settled
    /// Being scored, under a lease; a crash leaves it here until the lease expires and it is claimed again.
    case processing
    /// Its report is written and, with a webhook, its event is in the outbox (same transaction).
    case reported
    /// Its webhook event was delivered (a 2xx).
    case delivered
    /// Given up: not a slide (rejected), or transient failures until `maxAttempts`. Has a reason.
    case failed
}

/// One slide version as the job store keeps it.
struct Job: Sendable, Equatable {
    /// The row id.
    var id: Int64
    /// The path it was settled at (aliases: ``JobStore/paths(jobID:)``).
    var path: String
    /// The content fingerprint; nil while discovered, and for files rejected as not slides.
    var fingerprint: String?
    /// File size in bytes when last seen.
    var size: Int64
    /// File modification time (Unix seconds) when last seen.
    var modified: Double
    var state: JobState
    /// How many times it was claimed for processing (a clean shutdown gives its claim back).
    var attempts: Int
    /// The event id of its report; set by ``JobStore/complete(jobID:eventID:reportDirectory:result:outbox:now:)``.
    var eventID: String?
    /// When the row was created (Unix seconds).
    var createdAt: Double
    /// When a settled job is due (Unix seconds).
    var nextAttemptAt: Double? = nil
    /// Until when a processing job's claim holds (Unix seconds).
    var leaseUntil: Double? = nil
    /// The report folder, once reported.
    var reportDirectory: String? = nil
    /// The report's outcome, once reported.
    var result: JobResult? = nil
    /// Why it failed, or why its last attempt was retried (a stable code and a message).
    var lastErrorCode: String? = nil
    var lastErrorMessage: String? = nil
    /// When it was reported (or failed), Unix seconds.
    var finishedAt: Double? = nil
}

/// The outcome of a report, as the job store keeps it for `csmil status`.
struct JobResult: Sendable, Equatable, Codable {
    /// `scored`, `no_tissue` or `failed` (the report's status).
    var status: String
    var probability: Double?
    var label: String?
    /// The report's error, when `status` is `failed`.
    var errorCode: String?
    var errorMessage: String?
    /// The report's `qc.status` (`pass` or `review`); nil when QC was off.
    var qcStatus: String? = nil
    /// The report's `qc.reasons`.
    var qcReasons: [String] = []

    enum CodingKeys: String, CodingKey {
        case status, probability, label
        case errorCode = "error_code"
        case errorMessage = "error_message"
        case qcStatus = "qc_status"
        case qcReasons = "qc_reasons"
    }
}

/// What ``JobStore/recordSettled(path:fingerprint:size:modified:now:)`` did with a settled file.
enum SettleOutcome: Sendable, Equatable {
    /// New content: a job in state settled, due now.
    case queued(Job)
    /// This content is already known (a rescan, a renamed or copied file, or a file that failed for good and has not
    /// changed since): nothing is queued; the path is recorded as an alias of the job.
    case alreadyKnown(Job)
    /// A path that held other content before: a new job, settled and due now (the earlier job is kept).
    case newVersion(Job)

    /// The job concerned.
    var job: Job {
        switch self {
        case .queued(let job), .alreadyKnown(let job), .newVersion(let job): job
        }
    }
}

/// What ``JobStore/retryLater(jobID:code:message:now:maxAttempts:initialBackoff:maxBackoff:randomFraction:)``
/// decided.
enum RetryDecision: Sendable, Equatable {
    /// Back in the queue, due at this time (Unix seconds).
    case retryAt(Double)
    /// Attempts are used up: the job is failed with the reason.
    case gaveUp
}
