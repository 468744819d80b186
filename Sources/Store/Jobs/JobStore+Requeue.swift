import Foundation

extension JobStore {
    /// What ``requeue(jobID:now:)`` did.
    public enum RequeueOutcome: Sendable, Equatable {
        /// Back in the queue (settled, due now, attempts and result cleared): the daemon scores it again.
        case queued(Job)
        /// A record without content (not a slide, unreadable): forgotten, so the watcher reads the file again at its
        /// next scan of the folder.
        case forgotten(path: String)
    }

    /// An operator's `csmil requeue`: a failed, reported or delivered job goes back to the queue — settled, due now,
    /// its attempts, result, report folder and last error cleared (its fingerprint and aliases kept). Scored again
    /// with the same model it gets the same event id, which the outbox does not send twice; with another model it is
    /// a new event. A failed record that has no fingerprint (not a slide, unreadable) is removed instead, so the
    /// watcher reads the file afresh.
    ///
    /// - Throws: ``JobStoreError`` `job.wrong_state` for a job being scored, queued or settling; `job.unknown`;
    ///   `job.event_id_conflict` when the same content is already queued or reported as another job.
    @discardableResult
    public func requeue(jobID: Int64, now: Double) throws -> RequeueOutcome {
        try writing { () throws -> RequeueOutcome in
            let job = try require(jobID, forUpdate: true)
            guard JobLifecycle.allows(.requeue, from: job.state) else {
                throw JobStoreError(
                    code: .wrongState, location: location,
                    message: "job \(job.id) (\(job.path)) is \(job.state.rawValue); only failed, reported or "
                        + "delivered jobs are requeued",
                    fix: job.state == .processing
                        ? "it is being scored now; requeue it once it is reported" : "it is scored anyway")
            }
            guard let fingerprint = job.fingerprint else {
                try database.execute("DELETE FROM jobs WHERE id = $1", [.integer(jobID)])
                return .forgotten(path: job.path)
            }
            // Another host settling the same content at this moment waits for this transaction.
            try database.lock("content:" + fingerprint)
            if job.state == .failed,
                let live = try database.queryOne(
                    """
                    SELECT id, state FROM jobs
                    WHERE fingerprint = $1 AND id <> $2 AND state IN (\(JobLifecycle.sql(JobState.live)))
                    """, [.text(fingerprint), .integer(jobID)], row: { (id: $0.int64(0), state: $0.string(1)) })
            {
                throw JobStoreError(
                    code: .eventIDConflict, location: location,
                    message: "job \(job.id) (\(job.path)) has the content of job \(live.id), which is \(live.state)",
                    fix: "requeue job \(live.id) instead (csmil requeue \(live.id))")
            }
            try database.execute(
                """
                UPDATE jobs
                SET state = 'settled', attempts = 0, next_attempt_at = $1, lease_until = NULL, lease_holder = NULL,
                    lease_token = NULL, event_id = NULL,
                    report_directory = NULL, result_status = NULL, probability = NULL, label = NULL,
                    result_error_code = NULL, result_error_message = NULL, last_error_code = NULL,
                    last_error_message = NULL, started_at = NULL, finished_at = NULL, delivered_at = NULL,
                    updated_at = $1
                WHERE id = $2
                """, [.real(now), .integer(jobID)])
            try database.notify(.jobs)
            return .queued(try require(jobID))
        }
    }

    /// The jobs a `csmil requeue` argument names: a job id (digits), an event id (`evt_…`), a fingerprint
    /// (`sha256:…`), or a slide's path or file name (where it was settled or seen as an alias); newest first.
    public func jobs(named name: String) throws -> [Job] {
        if let id = Int64(name) { return try job(id: id).map { [$0] } ?? [] }
        return try database.query(
            """
            SELECT \(Self.columns()) FROM jobs
            WHERE event_id = $1 OR fingerprint = $1 OR path = $1 OR path LIKE '%/' || $2 ESCAPE '\\'
               OR id IN (SELECT job_id FROM job_paths WHERE path = $1 OR path LIKE '%/' || $2 ESCAPE '\\')
            ORDER BY id DESC
            """, [.text(name), .text(Self.likeEscaped(name))], row: Self.job)
    }

    /// The failed jobs, oldest first: given up or not a slide (state failed), or reported with a failed result.
    public func failedJobs() throws -> [Job] {
        try database.query(
            """
            SELECT \(Self.columns()) FROM jobs
            WHERE state = 'failed' OR (state IN ('reported', 'delivered') AND result_status = 'failed')
            ORDER BY id
            """, [], row: Self.job)
    }

    /// `value` with `%`, `_` and `\` escaped for a `LIKE … ESCAPE '\'`.
    static func likeEscaped(_ value: String) -> String {
        var escaped = ""
        for character in value {
            if character == "%" || character == "_" || character == "\\" { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped
    }
}
