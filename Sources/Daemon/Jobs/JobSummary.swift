import Notify

/// What the job store knows, for `csmil status` (text or `--json`). Times are Unix seconds; JSON keys are
/// snake_case.
struct JobSummary: Sendable, Equatable, Codable {
    /// How many jobs are in each state (every state is present, zero included).
    struct Counts: Sendable, Equatable, Codable {
        var discovered = 0
        var settled = 0
        var processing = 0
        var reported = 0
        var delivered = 0
        var failed = 0

        subscript(state: JobState) -> Int {
            get {
                switch state {
                case .discovered: discovered
                case .settled: settled
                case .processing: processing
                case .reported: reported
                case .delivered: delivered
                case .failed: failed
                }
            }
            set {
                switch state {
                case .discovered: discovered = newValue
                case .settled: settled = newValue
                case .processing: processing = newValue
                case .reported: reported = newValue
                case .delivered: delivered = newValue
                case .failed: failed = newValue
                }
            }
        }
    }

    /// A file seen but not yet settled.
    struct Pending: Sendable, Equatable, Codable {
        var path: String
        var name: String
        var size: Int64
        var modified: Double
        /// When it was first seen.
        var since: Double
    }

    /// A settled job waiting to be scored.
    struct Queued: Sendable, Equatable, Codable {
        var id: Int64
        var name: String
        var path: String
        var fingerprint: String
        var attempts: Int
        var dueAt: Double
        /// Why its last attempt was retried, if it was.
        var lastErrorCode: String?
        var lastErrorMessage: String?

        enum CodingKeys: String, CodingKey {
            case id, name, path, fingerprint, attempts
            case dueAt = "due_at"
            case lastErrorCode = "last_error_code"
            case lastErrorMessage = "last_error_message"
        }
    }

    /// A job being scored (or left processing by a crash, until its lease expires).
    struct Processing: Sendable, Equatable, Codable {
        var id: Int64
        var name: String
        var path: String
        var fingerprint: String
        var attempts: Int
        var startedAt: Double?
        var leaseUntil: Double?
        /// The lease ran out: the process that claimed it is gone; the job is claimed again.
        var leaseExpired: Bool

        enum CodingKeys: String, CodingKey {
            case id, name, path, fingerprint, attempts
            case startedAt = "started_at"
            case leaseUntil = "lease_until"
            case leaseExpired = "lease_expired"
        }
    }

    /// A reported (or delivered) slide.
    struct Result: Sendable, Equatable, Codable {
        var id: Int64
        var name: String
        var path: String
        /// `reported` or `delivered`.
        var state: JobState
        /// `scored`, `no_tissue` or `failed`.
        var status: String
        var probability: Double?
        var label: String?
        var eventID: String
        var reportDirectory: String?
        var errorCode: String?
        var errorMessage: String?
        var finishedAt: Double
        /// `pass` or `review` (nil with QC off) and why.
        var qcStatus: String? = nil
        var qcReasons: [String] = []

        enum CodingKeys: String, CodingKey {
            case id, name, path, state, status, probability, label
            case eventID = "event_id"
            case reportDirectory = "report_directory"
            case errorCode = "error_code"
            case errorMessage = "error_message"
            case finishedAt = "finished_at"
            case qcStatus = "qc_status"
            case qcReasons = "qc_reasons"
        }
    }

    /// Reported slides by QC status (issue 16).
    struct QualityCounts: Sendable, Equatable, Codable {
        /// Slides QC passed.
        var pass = 0
        /// Slides QC sent to review (each still has its score, on its usable tiles).
        var review = 0
    }

    /// A job in state failed: a file that is not a slide, or one given up after repeated transient failures.
    struct Failure: Sendable, Equatable, Codable {
        var id: Int64
        var name: String
        var path: String
        /// Nil for files rejected as not slides.
        var fingerprint: String?
        var code: String
        var message: String
        var attempts: Int
        var failedAt: Double

        enum CodingKeys: String, CodingKey {
            case id, name, path, fingerprint, code, message, attempts
            case failedAt = "failed_at"
        }
    }

    /// When the summary was made.
    var generatedAt: Double
    var counts: Counts
    /// Reported and delivered slides by QC status.
    var qc = QualityCounts()
    /// Settled jobs in the order they will be claimed (the first `limit`).
    var queue: [Queued]
    var processing: [Processing]
    /// Files not yet settled (the first `limit`, oldest first).
    var discovered: [Pending]
    /// The latest results, newest first.
    var recent: [Result]
    /// The latest failures, newest first (the first `limit`).
    var failures: [Failure]
    /// Webhook delivery: backlog, dead letters, disabled endpoints.
    var outbox: OutboxSummary

    enum CodingKeys: String, CodingKey {
        case counts, queue, processing, discovered, recent, failures, outbox, qc
        case generatedAt = "generated_at"
    }
}
