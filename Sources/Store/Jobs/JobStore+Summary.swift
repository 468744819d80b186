import Foundation

extension JobStore {
    /// What `csmil status` shows: counts per state, the queue in claim order, the jobs in progress, files not yet
    /// settled, the `recent` latest results, the latest failures with their reasons, and the outbox's summary. Lists
    /// other than `recent` hold at most `limit` entries (the counts are complete). Read in one read transaction, so
    /// the parts agree with each other, without taking the write lock. A job becomes delivered in the transaction
    /// that records its event's delivery, so the job counts and the outbox's never disagree.
    public func summary(now: Double, recent: Int = 20, limit: Int = 100) throws -> JobSummary {
        try reading { () throws -> JobSummary in
            let counts = try stateCounts()

            let queue = try database.query(
                """
                SELECT id, path, fingerprint, attempts, next_attempt_at, last_error_code, last_error_message
                FROM jobs WHERE state = 'settled'
                ORDER BY next_attempt_at, id     -- the order claimNext takes them in
                LIMIT $1
                """, [.int(limit)]
            ) {
                JobSummary.Queued(
                    id: $0.int64(0), name: Self.name($0.string(1)), path: $0.string(1), fingerprint: $0.string(2),
                    attempts: $0.int(3), dueAt: $0.double(4), lastErrorCode: $0.optionalString(5),
                    lastErrorMessage: $0.optionalString(6))
            }

            let processing = try database.query(
                """
                SELECT id, path, fingerprint, attempts, started_at, lease_until, lease_holder
                FROM jobs WHERE state = 'processing'
                ORDER BY started_at, id
                """
            ) {
                JobSummary.Processing(
                    id: $0.int64(0), name: Self.name($0.string(1)), path: $0.string(1), fingerprint: $0.string(2),
                    attempts: $0.int(3), startedAt: $0.optionalDouble(4), leaseUntil: $0.optionalDouble(5),
                    leaseExpired: $0.optionalDouble(5).map { $0 <= now } ?? true, host: $0.optionalString(6))
            }

            let discovered = try database.query(
                """
                SELECT path, size, modified, created_at
                FROM jobs WHERE state = 'discovered'
                ORDER BY created_at, id
                LIMIT $1
                """, [.int(limit)]
            ) {
                JobSummary.Pending(
                    path: $0.string(0), name: Self.name($0.string(0)), size: $0.int64(1), modified: $0.double(2),
                    since: $0.double(3))
            }

            let results = try database.query(
                """
                SELECT id, path, state, result_status, probability, label, event_id, report_directory,
                       result_error_code, result_error_message, finished_at, qc_status, qc_reasons
                FROM jobs WHERE state IN (\(JobLifecycle.sql(JobState.finished)))
                ORDER BY finished_at DESC, id DESC
                LIMIT $1
                """, [.int(recent)]
            ) {
                JobSummary.Result(
                    id: $0.int64(0), name: Self.name($0.string(1)), path: $0.string(1),
                    state: JobState(rawValue: $0.string(2)) ?? .reported, status: $0.string(3),
                    probability: $0.optionalDouble(4), label: $0.optionalString(5), eventID: $0.string(6),
                    reportDirectory: $0.optionalString(7), errorCode: $0.optionalString(8),
                    errorMessage: $0.optionalString(9), finishedAt: $0.double(10), qcStatus: $0.optionalString(11),
                    qcReasons: Self.reasons($0.optionalString(12)))
            }

            var qc = JobSummary.QualityCounts()
            for (status, count) in try database.query(
                """
                SELECT qc_status, COUNT(*) FROM jobs
                WHERE state IN (\(JobLifecycle.sql(JobState.finished))) AND qc_status IS NOT NULL GROUP BY qc_status
                """, row: { ($0.string(0), $0.int(1)) })
            {
                if status == "pass" { qc.pass = count } else if status == "review" { qc.review = count }
            }

            let failures = try database.query(
                """
                SELECT id, path, fingerprint, last_error_code, last_error_message, attempts,
                       COALESCE(finished_at, updated_at)
                FROM jobs WHERE state = 'failed'
                ORDER BY COALESCE(finished_at, updated_at) DESC, id DESC
                LIMIT $1
                """, [.int(limit)]
            ) {
                JobSummary.Failure(
                    id: $0.int64(0), name: Self.name($0.string(1)), path: $0.string(1),
                    fingerprint: $0.optionalString(2), code: $0.optionalString(3) ?? "job.failed",
                    message: $0.optionalString(4) ?? "no reason was recorded", attempts: $0.int(5),
                    failedAt: $0.double(6))
            }

            return JobSummary(
                generatedAt: now, counts: counts, qc: qc, queue: queue, processing: processing,
                discovered: discovered, recent: results, failures: failures,
                outbox: try Outbox(database: database).summary(now: now), hosts: try hosts(now: now))
        }
    }

    /// How many jobs are in each state (one query; what the worker checks before every claim).
    public func counts() throws -> JobSummary.Counts { try reading { try stateCounts() } }

    private func stateCounts() throws -> JobSummary.Counts {
        var counts = JobSummary.Counts()
        for (state, count) in try database.query(
            "SELECT state, COUNT(*) FROM jobs GROUP BY state", row: { ($0.string(0), $0.int(1)) })
        {
            if let state = JobState(rawValue: state) { counts[state] = count }
        }
        return counts
    }

    /// Runs `body` in a read transaction (one snapshot, no write lock), or inside the caller's.
    func reading<Result>(_ body: () throws -> Result) throws -> Result {
        if database.isInTransaction { return try body() }
        return try database.transaction(readOnly: true, body)
    }

    /// The file name shown for a path.
    public static func name(_ path: String) -> String {
        URL(fileURLWithPath: path).lastPathComponent
    }
}
