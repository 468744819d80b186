import Foundation

/// The daemon's durable record of every slide it has seen (daemon spec "Jobs and state"): one SQLite file in
/// `[state] directory` (`csmil.sqlite3`) holding the jobs, the paths each slide was seen at, and the webhook outbox,
/// so a report and its outbox row commit together.
///
/// A job is a slide *version*, identified by its content fingerprint: the same content under another name is an
/// alias of the same job and is not scored twice; new content at a known path is a new job. Every state change is
/// one statement or one transaction, so `kill -9` at any moment leaves each job in exactly one state. Which change
/// is allowed from which state is ``JobLifecycle``'s table: the methods here check it before they write, and their
/// SQL guards (`WHERE state IN (…)`) are built from it. A job becomes delivered in the transaction that records the
/// delivery of its event's last outbox row (``Outbox/record(_:for:now:)``).
///
/// One connection, used from one thread (the daemon's job thread); ``database`` is exposed so that callers can
/// compose their own transactions. Other threads and processes (the outbox delivery worker, `csmil status`) open
/// their own connections to the same file.
public final class JobStore {
    /// The connection.
    public let database: SQLiteDatabase
    /// The database file.
    public let path: String

    /// Opens or creates the store at `path`: WAL, `synchronous=FULL`, `PRAGMA integrity_check`, the schema's
    /// migrations (``StoreSchema``).
    ///
    /// Jobs that a crash left in `processing` stay there until their lease expires; ``claimNext(now:leaseSeconds:)``
    /// then takes them again.
    ///
    /// - Throws: ``JobStoreError`` — `store.corrupt` when the file is damaged or not a database (naming the file and
    ///   how to start afresh), `store.cannot_open`, `store.schema_too_new`, `store.unavailable`.
    public init(path: String) throws {
        self.path = path
        do {
            let database = try SQLiteDatabase(path: path)
            try database.checkIntegrity()
            try StoreSchema.install(in: database)
            self.database = database
        } catch {
            throw JobStoreError.opening(path, error)
        }
    }

    // MARK: - Files arriving

    /// Records that a file was seen and is not yet settled (a hint, shown by `csmil status`). One row per path:
    /// seeing it again with another size or mtime updates the row; with the same ones it changes nothing. A file
    /// already settled or rejected with this size and mtime is not recorded again.
    public func recordDiscovered(path: String, size: Int64, modified: Double, now: Double) throws {
        try database.transaction {
            if try known(path: path, size: size, modified: modified) != nil { return }
            try database.execute(
                """
                INSERT INTO jobs (path, size, modified, state, created_at, updated_at)
                VALUES (?, ?, ?, 'discovered', ?, ?)
                -- the path's existing discovered row (partial unique index jobs_discovered_path)
                ON CONFLICT (path) WHERE state = 'discovered' DO UPDATE
                    SET size = excluded.size, modified = excluded.modified, updated_at = excluded.updated_at
                    WHERE size <> excluded.size OR modified <> excluded.modified
                """, [.text(path), .integer(size), .real(modified), .real(now), .real(now)])
        }
    }

    /// Forgets a file that was discovered but went away before it settled (deleted, or renamed to an ignored name).
    /// Settled jobs and failures are kept.
    public func forgetDiscovered(path: String) throws {
        try database.execute("DELETE FROM jobs WHERE path = ? AND state = 'discovered'", [.text(path)])
    }

    /// Records a settled file (quiet, opened, fingerprinted) and decides whether it needs scoring:
    ///
    /// - content already live (settled, processing, reported or delivered) → ``SettleOutcome/alreadyKnown(_:)``;
    ///   the path is recorded as an alias;
    /// - content whose job failed for good, seen again at the same path with the same size and mtime (a rescan)
    ///   → ``SettleOutcome/alreadyKnown(_:)`` with the failed job, so a failing slide is not retried in a loop;
    ///   touching it or dropping it in again queues it afresh;
    /// - otherwise a job in state settled, due now: ``SettleOutcome/newVersion(_:)`` when the path held other
    ///   content before (the earlier job is kept), else ``SettleOutcome/queued(_:)``.
    ///
    /// The path's discovered row becomes the job (or is dropped when the content is known), and a "not a slide"
    /// record at this path is removed: the file is a slide now.
    public func recordSettled(
        path: String, fingerprint: String, size: Int64, modified: Double, now: Double
    ) throws -> SettleOutcome {
        try database.transaction { () throws -> SettleOutcome in
            if let live = try liveJob(fingerprint: fingerprint) {
                try recordPath(jobID: live.id, path: path, size: size, modified: modified, now: now)
                try forgetDiscovered(path: path)
                return .alreadyKnown(live)
            }
            if let failed = try database.queryOne(
                """
                SELECT \(Self.columns) FROM jobs AS j
                WHERE j.fingerprint = ? AND j.state = 'failed'
                  AND EXISTS (SELECT 1 FROM job_paths AS p
                              WHERE p.job_id = j.id AND p.path = ? AND p.size = ? AND p.modified = ?)
                ORDER BY j.id DESC LIMIT 1
                """, [.text(fingerprint), .text(path), .integer(size), .real(modified)], row: Self.job)
            {
                try forgetDiscovered(path: path)
                return .alreadyKnown(failed)
            }

            // New content. Did this path hold other content before (as any job's path or alias)?
            let replacesEarlier =
                try database.queryOne(
                    """
                    SELECT 1 FROM job_paths AS p JOIN jobs AS j ON j.id = p.job_id
                    WHERE p.path = ? AND j.fingerprint IS NOT NULL AND j.fingerprint <> ?
                    LIMIT 1
                    """, [.text(path), .text(fingerprint)]
                ) { _ in true } ?? false
            // A "not a slide" record for this path is obsolete now.
            try database.execute(
                "DELETE FROM jobs WHERE path = ? AND state = 'failed' AND fingerprint IS NULL", [.text(path)])

            let discovered = try database.queryOne(
                "SELECT id FROM jobs WHERE path = ? AND state = 'discovered'", [.text(path)]
            ) { $0.int64(0) }
            let id: Int64
            if let discovered {
                // The discovered row (perhaps a discarded job) becomes the job; its earlier outcome is cleared.
                try database.execute(
                    """
                    UPDATE jobs
                    SET fingerprint = ?, size = ?, modified = ?, state = 'settled', attempts = 0,
                        next_attempt_at = ?, updated_at = ?
                    WHERE id = ?
                    """,
                    [
                        .text(fingerprint), .integer(size), .real(modified), .real(now), .real(now),
                        .integer(discovered),
                    ])
                id = discovered
            } else {
                try database.execute(
                    """
                    INSERT INTO jobs (path, fingerprint, size, modified, state, next_attempt_at, created_at,
                                      updated_at)
                    VALUES (?, ?, ?, ?, 'settled', ?, ?, ?)
                    """,
                    [
                        .text(path), .text(fingerprint), .integer(size), .real(modified), .real(now), .real(now),
                        .real(now),
                    ])
                id = database.lastInsertRowID
            }
            try recordPath(jobID: id, path: path, size: size, modified: modified, now: now)
            let job = try require(id)
            return replacesEarlier ? .newVersion(job) : .queued(job)
        }
    }

    /// Records a file that is not a slide (OpenSlide refuses it): one failed record per path, keeping the size and
    /// mtime it had. Recording it again unchanged does nothing; when the file changed, the record is updated. It is
    /// never retried: ``known(path:size:modified:)`` finds it until the file changes.
    public func recordRejected(
        path: String, size: Int64, modified: Double, code: String, message: String, now: Double
    ) throws {
        try database.transaction {
            let rejected = try database.queryOne(
                """
                SELECT id, size, modified FROM jobs
                WHERE path = ? AND state = 'failed' AND fingerprint IS NULL
                ORDER BY id DESC LIMIT 1
                """, [.text(path)]
            ) { (id: $0.int64(0), size: $0.int64(1), modified: $0.double(2)) }
            if let rejected, rejected.size == size, rejected.modified == modified {
                try forgetDiscovered(path: path)
                return
            }
            let id: Int64
            if let rejected {
                try forgetDiscovered(path: path)
                id = rejected.id
            } else if let discovered = try database.queryOne(
                "SELECT id FROM jobs WHERE path = ? AND state = 'discovered'", [.text(path)], row: { $0.int64(0) })
            {
                id = discovered
            } else {
                try database.execute(
                    """
                    INSERT INTO jobs (path, size, modified, state, created_at, updated_at)
                    VALUES (?, ?, ?, 'failed', ?, ?)
                    """, [.text(path), .integer(size), .real(modified), .real(now), .real(now)])
                id = database.lastInsertRowID
            }
            try database.execute(
                """
                UPDATE jobs
                SET state = 'failed', fingerprint = NULL, size = ?, modified = ?, next_attempt_at = NULL,
                    last_error_code = ?, last_error_message = ?, finished_at = ?, updated_at = ?
                WHERE id = ?
                """,
                [.integer(size), .real(modified), .text(code), .text(message), .real(now), .real(now), .integer(id)])
            try database.execute("DELETE FROM job_paths WHERE job_id = ?", [.integer(id)])
            try recordPath(jobID: id, path: path, size: size, modified: modified, now: now)
        }
    }

    // MARK: - Processing

    /// Claims the next job to score: a processing job whose lease expired (a crash left it; it keeps its
    /// fingerprint) first, then the settled job due earliest (`next_attempt_at <= now`, oldest first). The job
    /// becomes processing with `lease_until = now + leaseSeconds` and one more attempt. Nil when nothing is due.
    ///
    /// A job that crashed csmil each time it was scored keeps coming back here with `attempts` growing: the caller
    /// decides when to stop (e.g. report it failed once `attempts` exceeds its limit).
    public func claimNext(now: Double, leaseSeconds: Double) throws -> Job? {
        try database.transaction { () throws -> Job? in
            guard
                let id = try database.queryOne(
                    """
                    SELECT id FROM jobs
                    WHERE (state IN (\(JobLifecycle.sqlSources(.claim))) AND next_attempt_at <= ?1)
                       OR (state IN (\(JobLifecycle.sqlSources(.takeOver))) AND lease_until <= ?1)
                    ORDER BY state = 'processing' DESC, next_attempt_at, id
                    LIMIT 1
                    """, [.real(now)], row: { $0.int64(0) })
            else { return nil }
            try database.execute(
                """
                UPDATE jobs
                SET state = 'processing', attempts = attempts + 1, lease_until = ?, started_at = ?, updated_at = ?
                WHERE id = ?
                """, [.real(now + leaseSeconds), .real(now), .real(now), .integer(id)])
            return try require(id)
        }
    }

    /// Extends the claim on a processing job to `now + leaseSeconds` (call it while a long slide is scored).
    ///
    /// - Throws: ``JobStoreError`` `job.wrong_state` when the job is no longer processing.
    public func renewLease(jobID: Int64, now: Double, leaseSeconds: Double) throws {
        let changed = try database.execute(
            "UPDATE jobs SET lease_until = ?, updated_at = ? WHERE id = ? AND state IN (\(JobLifecycle.sqlSources(.renew)))",
            [.real(now + leaseSeconds), .real(now), .integer(jobID)])
        if changed == 0 { throw JobStoreError.wrongState(path, try require(jobID), "renew the lease of") }
    }

    /// Records a processing job's report, in one transaction: the job becomes reported with its event id, report
    /// folder and result, and its events in `outbox` (one per destination) are queued
    /// (``Outbox/enqueue(_:now:)``). Either all are committed or none.
    ///
    /// Idempotent: completing a reported (or delivered) job again with the same event id changes nothing and
    /// queues no second outbox row.
    ///
    /// - Throws: ``JobStoreError`` `job.event_id_conflict` when the job was reported under another id, another job
    ///   has this id, or `outbox` carries another id; `job.wrong_state` when the job is not processing;
    ///   `job.unknown`.
    public func complete(
        jobID: Int64, eventID: String, reportDirectory: String, result: JobResult, outbox: [OutboxMessage],
        now: Double
    ) throws {
        if let outbox = outbox.first(where: { $0.eventID != eventID }) {
            throw JobStoreError(
                code: .eventIDConflict, file: path,
                message: "job \(jobID) is reported as \(eventID) but its webhook event is \(outbox.eventID)",
                fix: "this is a bug in csmil (the report and its event must share an id); please report it")
        }
        try database.transaction {
            let job = try require(jobID)
            switch job.state {
            case let state where JobLifecycle.allows(.complete, from: state):
                break
            case let state where JobState.finished.contains(state):
                guard job.eventID == eventID else {
                    throw JobStoreError(
                        code: .eventIDConflict, file: path,
                        message: "job \(job.id) (\(job.path)) was reported as \(job.eventID ?? "none"), not \(eventID)",
                        fix: "this is a bug in csmil (a slide version has one event id); please report it")
                }
                // Completed again (e.g. retried after an error past the commit): the outbox ignores a known id.
                for message in outbox { try Outbox(database: database).enqueue(message, now: now) }
                return
            default:
                throw JobStoreError.wrongState(path, job, "complete")
            }
            if let other = try database.queryOne(
                "SELECT id, path FROM jobs WHERE event_id = ? AND id <> ?", [.text(eventID), .integer(jobID)],
                row: { (id: $0.int64(0), path: $0.string(1)) })
            {
                throw JobStoreError(
                    code: .eventIDConflict, file: path,
                    message: "job \(job.id) (\(job.path)) cannot be reported as \(eventID): job \(other.id) "
                        + "(\(other.path)) has that id",
                    fix: "this is a bug in csmil (the event id must come from the job's own fingerprint); "
                        + "please report it")
            }
            try database.execute(
                """
                UPDATE jobs
                SET state = 'reported', event_id = ?, report_directory = ?, result_status = ?, probability = ?,
                    label = ?, result_error_code = ?, result_error_message = ?, qc_status = ?, qc_reasons = ?,
                    last_error_code = NULL,
                    last_error_message = NULL, lease_until = NULL, next_attempt_at = NULL, finished_at = ?,
                    updated_at = ?
                WHERE id = ?
                """,
                [
                    .text(eventID), .text(reportDirectory), .text(result.status),
                    .optional(result.probability.map { .real($0) }), .optional(result.label.map { .text($0) }),
                    .optional(result.errorCode.map { .text($0) }), .optional(result.errorMessage.map { .text($0) }),
                    .optional(result.qcStatus.map { .text($0) }), .text(result.qcReasons.joined(separator: ",")),
                    .real(now), .real(now), .integer(jobID),
                ])
            for message in outbox { try Outbox(database: database).enqueue(message, now: now) }
            // Scored again (`csmil requeue`) with the same model: the outbox already delivered this id and sends
            // nothing, so the job is delivered now.
            if !outbox.isEmpty { try Self.recordDelivered(eventID: eventID, now: now, in: database) }
        }
    }

    /// The job that reported `eventID` becomes delivered once none of the event's outbox rows is left undelivered.
    /// ``Outbox/record(_:for:now:)`` calls it inside the transaction that records a delivery, so the two are never
    /// apart. Returns whether a job changed (false for an event no job reported, as `csmil score --notify` queues).
    @discardableResult
    static func recordDelivered(eventID: String, now: Double, in database: SQLiteDatabase) throws -> Bool {
        try database.execute(
            """
            UPDATE jobs SET state = 'delivered', delivered_at = ?1, updated_at = ?1
            WHERE event_id = ?2 AND state IN (\(JobLifecycle.sqlSources(.deliver)))
              AND NOT EXISTS (SELECT 1 FROM outbox WHERE event_id = ?2 AND state <> 'delivered')
            """, [.real(now), .text(eventID)]) > 0
    }

    /// A transient failure of a processing job (disk full, work folder unwritable…): while `attempts <
    /// maxAttempts` it goes back to settled, due after a full-jitter exponential backoff (uniform in
    /// `0 ..< min(maxBackoff, initialBackoff · 2^(attempts − 1))`); after that it is failed with the reason.
    ///
    /// - Parameter randomFraction: the jitter, uniform in 0..<1 (tests pass a fixed one).
    @discardableResult
    public func retryLater(
        jobID: Int64, code: String, message: String, now: Double, maxAttempts: Int = 3,
        initialBackoff: Double = 30, maxBackoff: Double = 3600, randomFraction: Double = .random(in: 0..<1)
    ) throws -> RetryDecision {
        try database.transaction { () throws -> RetryDecision in
            let job = try require(jobID)
            guard JobLifecycle.allows(.retry, from: job.state) else {
                throw JobStoreError.wrongState(path, job, "retry")
            }
            if job.attempts < maxAttempts {
                let ceiling = min(maxBackoff, initialBackoff * pow(2, Double(max(0, job.attempts - 1))))
                let due = now + ceiling * min(max(randomFraction, 0), 1)
                try database.execute(
                    """
                    UPDATE jobs
                    SET state = 'settled', next_attempt_at = ?, lease_until = NULL, last_error_code = ?,
                        last_error_message = ?, updated_at = ?
                    WHERE id = ?
                    """, [.real(due), .text(code), .text(message), .real(now), .integer(jobID)])
                return .retryAt(due)
            }
            try database.execute(
                """
                UPDATE jobs
                SET state = 'failed', next_attempt_at = NULL, lease_until = NULL, last_error_code = ?,
                    last_error_message = ?, finished_at = ?, updated_at = ?
                WHERE id = ?
                """,
                [
                    .text(code), .text("gave up after \(job.attempts) attempts: \(message)"), .real(now), .real(now),
                    .integer(jobID),
                ])
            return .gaveUp
        }
    }

    /// The file changed while its job was settled or processing: the job is dropped back to discovered (its
    /// fingerprint, aliases and attempts cleared), so the next settle of the path queues the new content afresh.
    public func discard(jobID: Int64, now: Double) throws {
        try database.transaction {
            let job = try require(jobID)
            guard JobLifecycle.allows(.discard, from: job.state) else {
                throw JobStoreError.wrongState(path, job, "discard")
            }
            // Keep one discovered row per path: this one.
            try database.execute(
                "DELETE FROM jobs WHERE path = ? AND state = 'discovered' AND id <> ?",
                [.text(job.path), .integer(jobID)])
            try database.execute("DELETE FROM job_paths WHERE job_id = ?", [.integer(jobID)])
            try database.execute(
                """
                UPDATE jobs
                SET state = 'discovered', fingerprint = NULL, attempts = 0, next_attempt_at = NULL,
                    lease_until = NULL, event_id = NULL, report_directory = NULL, result_status = NULL,
                    probability = NULL, label = NULL, result_error_code = NULL, result_error_message = NULL,
                    qc_status = NULL, qc_reasons = NULL,
                    last_error_code = NULL, last_error_message = NULL, started_at = NULL, finished_at = NULL,
                    updated_at = ?
                WHERE id = ?
                """, [.real(now), .integer(jobID)])
        }
    }

    /// Clean shutdown: gives a processing job back to the queue — settled, its claim not counted (attempts − 1),
    /// the lease cleared, due at once (it keeps its place). Returns false, changing nothing, when the job is not
    /// processing.
    @discardableResult
    public func release(jobID: Int64, now: Double = Date().timeIntervalSince1970) throws -> Bool {
        try database.execute(
            """
            UPDATE jobs
            SET state = 'settled', attempts = MAX(attempts - 1, 0), lease_until = NULL,
                next_attempt_at = MIN(COALESCE(next_attempt_at, ?1), ?1), updated_at = ?1
            WHERE id = ?2 AND state IN (\(JobLifecycle.sqlSources(.release)))
            """, [.real(now), .integer(jobID)]) > 0
    }

    /// Jobs left processing by a process that is gone (the caller holds the state folder's lock, so no other
    /// process works on them) become claimable now, keeping their attempt count: a crash counts as an attempt, so a
    /// slide that crashes the daemon every time is eventually given up. Returns how many there were.
    @discardableResult
    public func expireLeases(now: Double) throws -> Int {
        try database.execute(
            "UPDATE jobs SET lease_until = ?1, updated_at = ?1 WHERE state = 'processing'", [.real(now)])
    }

    // MARK: - Reading

    /// The job with this id, or nil.
    public func job(id: Int64) throws -> Job? {
        try database.queryOne("SELECT \(Self.columns) FROM jobs WHERE id = ?", [.integer(id)], row: Self.job)
    }

    /// Every job with this content (live or failed), oldest first.
    public func jobs(fingerprint: String) throws -> [Job] {
        try database.query(
            "SELECT \(Self.columns) FROM jobs WHERE fingerprint = ? ORDER BY id", [.text(fingerprint)], row: Self.job)
    }

    /// The paths a job's content was seen at (where it was settled first, then aliases), in the order first seen.
    public func paths(jobID: Int64) throws -> [String] {
        try database.query(
            "SELECT path FROM job_paths WHERE job_id = ? ORDER BY first_seen_at, rowid", [.integer(jobID)]
        ) { $0.string(0) }
    }

    /// The job that already accounts for the file at `path` with this size and mtime — settled there (or seen
    /// there as an alias), or rejected as not a slide — or nil when the file is new or changed. A rescan uses it to
    /// skip files without reading them again. Live jobs win over failed ones.
    public func known(path: String, size: Int64, modified: Double) throws -> Job? {
        try database.queryOne(
            """
            SELECT \(Self.columns) FROM jobs
            WHERE id IN (SELECT job_id FROM job_paths WHERE path = ? AND size = ? AND modified = ?)
            ORDER BY state = 'failed', id DESC
            LIMIT 1
            """, [.text(path), .integer(size), .real(modified)], row: Self.job)
    }

    // MARK: - Helpers

    /// The live job (settled, processing, reported or delivered) holding this content, if any.
    private func liveJob(fingerprint: String) throws -> Job? {
        try database.queryOne(
            """
            SELECT \(Self.columns) FROM jobs
            WHERE fingerprint = ? AND state IN (\(JobLifecycle.sql(JobState.live)))
            """, [.text(fingerprint)], row: Self.job)
    }

    /// Records (or refreshes) one path a job's content was seen at.
    private func recordPath(jobID: Int64, path: String, size: Int64, modified: Double, now: Double) throws {
        try database.execute(
            """
            INSERT INTO job_paths (job_id, path, size, modified, first_seen_at, last_seen_at)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (job_id, path) DO UPDATE
                SET size = excluded.size, modified = excluded.modified, last_seen_at = excluded.last_seen_at
            """, [.integer(jobID), .text(path), .integer(size), .real(modified), .real(now), .real(now)])
    }

    /// The job with this id, or a `job.unknown` error.
    public func require(_ id: Int64) throws -> Job {
        guard let job = try job(id: id) else { throw JobStoreError.unknownJob(path, id) }
        return job
    }

    /// The columns ``job(_:)`` reads, in order.
    static let columns = """
        id, path, fingerprint, size, modified, state, attempts, event_id, created_at, next_attempt_at, lease_until, \
        report_directory, result_status, probability, label, result_error_code, result_error_message, \
        last_error_code, last_error_message, finished_at, qc_status, qc_reasons
        """

    /// `qc_reasons` as a list ("pen,blur" → ["pen", "blur"]).
    static func reasons(_ text: String?) -> [String] {
        (text ?? "").split(separator: ",").map(String.init)
    }

    static func job(_ row: SQLiteStatement) -> Job {
        Job(
            id: row.int64(0), path: row.string(1), fingerprint: row.optionalString(2), size: row.int64(3),
            modified: row.double(4), state: JobState(rawValue: row.string(5)) ?? .failed, attempts: row.int(6),
            eventID: row.optionalString(7), createdAt: row.double(8), nextAttemptAt: row.optionalDouble(9),
            leaseUntil: row.optionalDouble(10), reportDirectory: row.optionalString(11),
            result: row.optionalString(12).map {
                JobResult(
                    status: $0, probability: row.optionalDouble(13), label: row.optionalString(14),
                    errorCode: row.optionalString(15), errorMessage: row.optionalString(16),
                    qcStatus: row.optionalString(20), qcReasons: Self.reasons(row.optionalString(21)))
            },
            lastErrorCode: row.optionalString(17), lastErrorMessage: row.optionalString(18),
            finishedAt: row.optionalDouble(19))
    }
}
