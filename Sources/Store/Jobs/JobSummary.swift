/// What the job store knows, for `csmil status` (text or `--json`). Times are Unix seconds; JSON keys are
/// snake_case.
public struct JobSummary: Sendable, Equatable, Codable {
    /// How many jobs are in each state (every state is present, zero included).
    public struct Counts: Sendable, Equatable, Codable {
        public var discovered = 0
        public var settled = 0
        public var processing = 0
        public var reported = 0
        public var delivered = 0
        public var failed = 0

        public subscript(state: JobState) -> Int {
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
    public struct Pending: Sendable, Equatable, Codable {
        public var path: String
        public var name: String
        public var size: Int64
        public var modified: Double
        /// When it was first seen.
        public var since: Double
    }

    /// A settled job waiting to be scored.
    public struct Queued: Sendable, Equatable, Codable {
        public var id: Int64
        public var name: String
        public var path: String
        public var fingerprint: String
        public var attempts: Int
        public var dueAt: Double
        /// Why its last attempt was retried, if it was.
        public var lastErrorCode: String?
        public var lastErrorMessage: String?

        enum CodingKeys: String, CodingKey {
            case id, name, path, fingerprint, attempts
            case dueAt = "due_at"
            case lastErrorCode = "last_error_code"
            case lastErrorMessage = "last_error_message"
        }
    }

    /// A job being scored (or left processing by a crash, until its lease expires).
    public struct Processing: Sendable, Equatable, Codable {
        public var id: Int64
        public var name: String
        public var path: String
        public var fingerprint: String
        public var attempts: Int
        public var startedAt: Double?
        public var leaseUntil: Double?
        /// The lease ran out: the process that claimed it is gone; the job is claimed again.
        public var leaseExpired: Bool
        /// The host that holds the lease.
        public var host: String?

        enum CodingKeys: String, CodingKey {
            case id, name, path, fingerprint, attempts, host
            case startedAt = "started_at"
            case leaseUntil = "lease_until"
            case leaseExpired = "lease_expired"
        }
    }

    /// A reported (or delivered) slide.
    public struct Result: Sendable, Equatable, Codable {
        public var id: Int64
        public var name: String
        public var path: String
        /// `reported` or `delivered`.
        public var state: JobState
        /// `scored`, `no_tissue` or `failed`.
        public var status: String
        public var probability: Double?
        public var label: String?
        public var eventID: String
        public var reportDirectory: String?
        public var errorCode: String?
        public var errorMessage: String?
        public var finishedAt: Double
        /// `pass` or `review` (nil with QC off) and why.
        public var qcStatus: String? = nil
        public var qcReasons: [String] = []

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
    public struct QualityCounts: Sendable, Equatable, Codable {
        /// Slides QC passed.
        public var pass = 0
        /// Slides QC sent to review (each still has its score, on its usable tiles).
        public var review = 0

        public init(pass: Int = 0, review: Int = 0) {
            self.pass = pass
            self.review = review
        }
    }

    /// A job in state failed: a file that is not a slide, or one given up after repeated transient failures.
    public struct Failure: Sendable, Equatable, Codable {
        public var id: Int64
        public var name: String
        public var path: String
        /// Nil for files rejected as not slides.
        public var fingerprint: String?
        public var code: String
        public var message: String
        public var attempts: Int
        public var failedAt: Double

        enum CodingKeys: String, CodingKey {
            case id, name, path, fingerprint, code, message, attempts
            case failedAt = "failed_at"
        }
    }

    /// When the summary was made.
    public var generatedAt: Double
    public var counts: Counts
    /// Reported and delivered slides by QC status.
    public var qc = QualityCounts()
    /// Settled jobs in the order they will be claimed (the first `limit`).
    public var queue: [Queued]
    public var processing: [Processing]
    /// Files not yet settled (the first `limit`, oldest first).
    public var discovered: [Pending]
    /// The latest results, newest first.
    public var recent: [Result]
    /// The latest failures, newest first (the first `limit`).
    public var failures: [Failure]
    /// Webhook delivery: backlog, dead letters, disabled endpoints.
    public var outbox: OutboxSummary
    /// Every host that has run with this store: one for SQLite, each `csmil watch` sharing a PostgreSQL database.
    public var hosts: [HostRecord]

    enum CodingKeys: String, CodingKey {
        case counts, queue, processing, discovered, recent, failures, outbox, qc, hosts
        case generatedAt = "generated_at"
    }
}
