import Foundation

/// The durable record of every slide the daemon has seen (daemon spec "Jobs and state"): the jobs, the paths each
/// slide was seen at, each attempt with the host that made it, the hosts, and the outbox — so a report and its
/// outbox rows commit together. It lives in a SQLite file in `[state] directory` (`csmil.sqlite3`, one host) or in
/// a PostgreSQL database that several hosts share (``StoreLocation``); the code below is the same for both
/// (``StoreDatabase``).
///
/// A job is a slide *version*, identified by its content fingerprint: the same content under another name is an
/// alias of the same job and is not scored twice; new content at a known path is a new job. Every state change is
/// one statement or one transaction, so `kill -9` at any moment leaves each job in exactly one state. Which change
/// is allowed from which state is ``JobLifecycle``'s table: the methods here check it before they write, and their
/// SQL guards (`WHERE state IN (…)`) are built from it. A job becomes delivered in the transaction that records the
/// delivery of its event's last outbox row (``Outbox/record(_:for:now:)``).
///
/// Several hosts: a claim takes the row with `FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite has one writer), sets a
/// lease (holder, token, expiry) and opens an attempt; the holder renews it (``heartbeat(host:instance:status:leases:now:leaseSeconds:)``);
/// a processing job whose lease expired is taken over by the next claim. Writes that decide on a path or a
/// fingerprint take an advisory lock on it first, so two hosts settling the same file at once make one job.
///
/// One connection, used from one thread; ``database`` is exposed so that callers can compose their own
/// transactions. Other threads and processes open their own connections.
public final class JobStore {
    /// The connection.
    public let database: any StoreDatabase
    /// The database file, or the server's URL without a password.
    public var location: String { database.location }

    /// A store on an open connection; installs or upgrades the schema (``StoreSchema``).
    public init(database: any StoreDatabase) throws {
        self.database = database
        do {
            try StoreSchema.install(in: database)
        } catch {
            throw JobStoreError.opening(database.location, error)
        }
    }

    /// Opens or creates the SQLite store at `path`: WAL, `synchronous=FULL`, `PRAGMA integrity_check`, the schema's
    /// migrations.
    ///
    /// Jobs that a crash left in `processing` stay there until their lease expires; ``claimNext(now:leaseSeconds:holder:)``
    /// then takes them again.
    ///
    /// - Throws: ``JobStoreError`` — `store.corrupt` when the file is damaged or not a database (naming the file and
    ///   how to start afresh), `store.cannot_open`, `store.schema_too_new`, `store.unavailable`.
    public convenience init(path: String) throws {
        let database: SQLiteDatabase
        do {
            database = try SQLiteDatabase(path: path)
            try database.checkIntegrity()
        } catch {
            throw JobStoreError.opening(path, error)
        }
        try self.init(database: database)
    }

    /// Opens the store at `location` (a SQLite file is checked for integrity; a PostgreSQL database is migrated
    /// under a lock, so hosts starting together migrate once).
    ///
    /// - Throws: ``JobStoreError`` for a SQLite file; ``PostgresError`` for a server (`postgres.unreachable`,
    ///   `postgres.authentication`, …), naming the URL without its password.
    public static func open(_ location: StoreLocation, applicationName: String = "csmil") throws -> JobStore {
        switch location {
        case .sqlite(let path):
            return try JobStore(path: path)
        case .postgresql:
            return try JobStore(database: try location.open(applicationName: applicationName))
        }
    }

    // MARK: - Files arriving

    /// Records that a file was seen and is not yet settled (a hint, shown by `csmil status`). One row per path:
    /// seeing it again with another size or mtime updates the row; with the same ones it changes nothing. A file
    /// already settled or rejected with this size and mtime is not recorded again.
    public func recordDiscovered(path: String, size: Int64, modified: Double, now: Double) throws {
        try writing {
            try database.lock("path:" + path)
            if try known(path: path, size: size, modified: modified) != nil { return }
            try database.execute(
                """
                INSERT INTO jobs (path, size, modified, state, created_at, updated_at)
                VALUES ($1, $2, $3, 'discovered', $4, $4)
                -- the path's existing discovered row (partial unique index jobs_discovered_path)
                ON CONFLICT (path) WHERE state = 'discovered' DO UPDATE
                    SET size = excluded.size, modified = excluded.modified, updated_at = excluded.updated_at
                    WHERE jobs.size <> excluded.size OR jobs.modified <> excluded.modified
                """, [.text(path), .integer(size), .real(modified), .real(now)])
        }
    }

    /// Forgets a file that was discovered but went away before it settled (deleted, or renamed to an ignored name).
    /// Settled jobs and failures are kept.
    public func forgetDiscovered(path: String) throws {
        try database.execute("DELETE FROM jobs WHERE path = $1 AND state = 'discovered'", [.text(path)])
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
    /// record at this path is removed: the file is a slide now. Hosts watching one shared folder all settle the
    /// same file: the locks on its path and content make the first one queue it and the others find it known.
    public func recordSettled(
        path: String, fingerprint: String, size: Int64, modified: Double, now: Double
    ) throws -> SettleOutcome {
        try writing { () throws -> SettleOutcome in
            try database.lock("path:" + path)
            try database.lock("content:" + fingerprint)
            if let live = try liveJob(fingerprint: fingerprint) {
                try recordPath(jobID: live.id, path: path, size: size, modified: modified, now: now)
                try forgetDiscovered(path: path)
                return .alreadyKnown(live)
            }
            if let failed = try database.queryOne(
                """
                SELECT \(Self.columns("j.")) FROM jobs AS j
                WHERE j.fingerprint = $1 AND j.state = 'failed'
                  AND EXISTS (SELECT 1 FROM job_paths AS p
                              WHERE p.job_id = j.id AND p.path = $2 AND p.size = $3 AND p.modified = $4)
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
                    WHERE p.path = $1 AND j.fingerprint IS NOT NULL AND j.fingerprint <> $2
                    LIMIT 1
                    """, [.text(path), .text(fingerprint)]
                ) { _ in true } ?? false
            // A "not a slide" record for this path is obsolete now.
            try database.execute(
                "DELETE FROM jobs WHERE path = $1 AND state = 'failed' AND fingerprint IS NULL", [.text(path)])

            // The discovered row (perhaps a discarded job) becomes the job; its earlier outcome is cleared.
            let id =
                try database.queryOne(
                    """
                    UPDATE jobs
                    SET fingerprint = $1, size = $2, modified = $3, state = 'settled', attempts = 0,
                        next_attempt_at = $4, updated_at = $4
                    WHERE path = $5 AND state IN (\(JobLifecycle.sqlSources(.settle)))
                    RETURNING id
                    """, [.text(fingerprint), .integer(size), .real(modified), .real(now), .text(path)]
                ) { $0.int64(0) }
                ?? database.queryOne(
                    """
                    INSERT INTO jobs (path, fingerprint, size, modified, state, next_attempt_at, created_at,
                                      updated_at)
                    VALUES ($1, $2, $3, $4, 'settled', $5, $5, $5)
                    RETURNING id
                    """, [.text(path), .text(fingerprint), .integer(size), .real(modified), .real(now)]
                ) { $0.int64(0) }
            guard let id else { throw JobStoreError.unknownJob(location, 0) }
            try recordPath(jobID: id, path: path, size: size, modified: modified, now: now)
            try database.notify(.jobs)
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
        try writing {
            try database.lock("path:" + path)
            let rejected = try database.queryOne(
                """
                SELECT id, size, modified FROM jobs
                WHERE path = $1 AND state = 'failed' AND fingerprint IS NULL
                ORDER BY id DESC LIMIT 1
                """, [.text(path)]
            ) { (id: $0.int64(0), size: $0.int64(1), modified: $0.double(2)) }
            if let rejected, rejected.size == size, rejected.modified == modified {
                try forgetDiscovered(path: path)
                return
            }
            let id: Int64?
            if let rejected {
                try forgetDiscovered(path: path)
                id = rejected.id
            } else if let discovered = try database.queryOne(
                "SELECT id FROM jobs WHERE path = $1 AND state = 'discovered'", [.text(path)], row: { $0.int64(0) })
            {
                id = discovered
            } else {
                id = try database.queryOne(
                    """
                    INSERT INTO jobs (path, size, modified, state, created_at, updated_at)
                    VALUES ($1, $2, $3, 'failed', $4, $4)
                    RETURNING id
                    """, [.text(path), .integer(size), .real(modified), .real(now)]
                ) { $0.int64(0) }
            }
            guard let id else { throw JobStoreError.unknownJob(location, 0) }
            try database.execute(
                """
                UPDATE jobs
                SET state = 'failed', fingerprint = NULL, size = $1, modified = $2, next_attempt_at = NULL,
                    last_error_code = $3, last_error_message = $4, finished_at = $5, updated_at = $5
                WHERE id = $6
                """, [.integer(size), .real(modified), .text(code), .text(message), .real(now), .integer(id)])
            try database.execute("DELETE FROM job_paths WHERE job_id = $1", [.integer(id)])
            try recordPath(jobID: id, path: path, size: size, modified: modified, now: now)
        }
    }

    // MARK: - Processing

    /// Claims the next job to score for `holder` (a host's name): a processing job whose lease expired (its holder
    /// died; it keeps its fingerprint) first, then the settled job due earliest (`next_attempt_at <= now`, oldest
    /// first). The job becomes processing with a lease — `holder`, a fresh token, `lease_until = now +
    /// leaseSeconds` — one more attempt, and an open attempt record (an expired holder's attempt is closed as
    /// `lease_expired`). Nil when nothing is due.
    ///
    /// Hosts claiming at the same moment take different jobs: the chosen row is locked and rows another host is
    /// claiming are skipped (`FOR UPDATE SKIP LOCKED`).
    ///
    /// A job that crashed csmil each time it was scored keeps coming back here with `attempts` growing: the caller
    /// decides when to stop (e.g. report it failed once `attempts` exceeds its limit).
    public func claimNext(now: Double, leaseSeconds: Double, holder: String = "local") throws -> Job? {
        try writing { () throws -> Job? in
            guard
                let candidate = try database.queryOne(
                    """
                    SELECT id, state FROM jobs
                    WHERE (state IN (\(JobLifecycle.sqlSources(.claim))) AND next_attempt_at <= $1)
                       OR (state IN (\(JobLifecycle.sqlSources(.takeOver))) AND lease_until <= $1)
                    ORDER BY state = 'processing' DESC, next_attempt_at, id
                    LIMIT 1 \(database.dialect.skipLocked)
                    """, [.real(now)], row: { (id: $0.int64(0), state: JobState(rawValue: $0.string(1))) })
            else { return nil }
            if candidate.state == .processing {
                try endAttempt(jobID: candidate.id, outcome: .leaseExpired, now: now)
            }
            let token = UUID().uuidString.lowercased()
            try database.execute(
                """
                UPDATE jobs
                SET state = 'processing', attempts = attempts + 1, lease_until = $1, lease_holder = $2,
                    lease_token = $3, started_at = $4, updated_at = $4
                WHERE id = $5
                """, [.real(now + leaseSeconds), .text(holder), .text(token), .real(now), .integer(candidate.id)])
            let job = try require(candidate.id)
            try database.execute(
                """
                INSERT INTO job_attempts (job_id, attempt, host, lease_token, started_at)
                VALUES ($1, $2, $3, $4, $5)
                """, [.integer(job.id), .int(job.attempts), .text(holder), .text(token), .real(now)])
            return job
        }
    }

    /// Extends the claim on a processing job to `now + leaseSeconds` (the holder's heartbeat does this for every
    /// slide it scores).
    ///
    /// - Parameter token: the claim's ``Job/leaseToken``; nil renews whoever holds it (tests).
    /// - Throws: ``JobStoreError`` `job.lease_lost` when another claim took the job over, `job.wrong_state` when it
    ///   is no longer processing.
    public func renewLease(jobID: Int64, token: String? = nil, now: Double, leaseSeconds: Double) throws {
        let changed = try database.execute(
            """
            UPDATE jobs SET lease_until = $1, updated_at = $2
            WHERE id = $3 AND state IN (\(JobLifecycle.sqlSources(.renew))) AND (CAST($4 AS TEXT) IS NULL OR lease_token = $4)
            """, [.real(now + leaseSeconds), .real(now), .integer(jobID), .optional(token.map { .text($0) })])
        if changed == 0 {
            let job = try require(jobID)
            if job.state == .processing { throw JobStoreError.leaseLost(location, job) }
            throw JobStoreError.wrongState(location, job, "renew the lease of")
        }
    }

    /// Records a processing job's report, in one transaction: the job becomes reported with its event id, report
    /// folder and result, its attempt is closed, and its events in `outbox` (one per destination) are queued
    /// (``Outbox/enqueue(_:now:)``). Either all are committed or none.
    ///
    /// A result is never thrown away: a host whose lease expired while it scored (the database was unreachable
    /// for longer than the lease) still completes the job if it is processing, whoever holds it now; the other
    /// host's completion then finds it reported.
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
                code: .eventIDConflict, location: location,
                message: "job \(jobID) is reported as \(eventID) but its webhook event is \(outbox.eventID)",
                fix: "this is a bug in csmil (the report and its event must share an id); please report it")
        }
        try writing {
            let job = try require(jobID, forUpdate: true)
            switch job.state {
            case let state where JobLifecycle.allows(.complete, from: state):
                break
            case let state where JobState.finished.contains(state):
                guard job.eventID == eventID else {
                    throw JobStoreError(
                        code: .eventIDConflict, location: location,
                        message: "job \(job.id) (\(job.path)) was reported as \(job.eventID ?? "none"), not \(eventID)",
                        fix: "this is a bug in csmil (a slide version has one event id); please report it")
                }
                // Completed again (e.g. retried after an error past the commit): the outbox ignores a known id.
                for message in outbox { try Outbox(database: database).enqueue(message, now: now) }
                return
            default:
                throw JobStoreError.wrongState(location, job, "complete")
            }
            if let other = try database.queryOne(
                "SELECT id, path FROM jobs WHERE event_id = $1 AND id <> $2", [.text(eventID), .integer(jobID)],
                row: { (id: $0.int64(0), path: $0.string(1)) })
            {
                throw JobStoreError(
                    code: .eventIDConflict, location: location,
                    message: "job \(job.id) (\(job.path)) cannot be reported as \(eventID): job \(other.id) "
                        + "(\(other.path)) has that id",
                    fix: "this is a bug in csmil (the event id must come from the job's own fingerprint); "
                        + "please report it")
            }
            try database.execute(
                """
                UPDATE jobs
                SET state = 'reported', event_id = $1, report_directory = $2, result_status = $3, probability = $4,
                    label = $5, result_error_code = $6, result_error_message = $7, qc_status = $8, qc_reasons = $9,
                    last_error_code = NULL, last_error_message = NULL, lease_until = NULL, lease_holder = NULL,
                    lease_token = NULL, next_attempt_at = NULL, finished_at = $10, updated_at = $10
                WHERE id = $11
                """,
                [
                    .text(eventID), .text(reportDirectory), .text(result.status),
                    .optional(result.probability.map { .real($0) }), .optional(result.label.map { .text($0) }),
                    .optional(result.errorCode.map { .text($0) }), .optional(result.errorMessage.map { .text($0) }),
                    .optional(result.qcStatus.map { .text($0) }), .text(result.qcReasons.joined(separator: ",")),
                    .real(now), .integer(jobID),
                ])
            try endAttempt(jobID: jobID, outcome: .reported, now: now)
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
    static func recordDelivered(eventID: String, now: Double, in database: any StoreDatabase) throws -> Bool {
        try database.execute(
            """
            UPDATE jobs SET state = 'delivered', delivered_at = $1, updated_at = $1
            WHERE event_id = $2 AND state IN (\(JobLifecycle.sqlSources(.deliver)))
              AND NOT EXISTS (SELECT 1 FROM outbox WHERE event_id = $2 AND state <> 'delivered')
            """, [.real(now), .text(eventID)]) > 0
    }

    /// A transient failure of a processing job (disk full, work folder unwritable…): while `attempts <
    /// maxAttempts` it goes back to settled, due after a full-jitter exponential backoff (uniform in
    /// `0 ..< min(maxBackoff, initialBackoff · 2^(attempts − 1))`); after that it is failed with the reason.
    ///
    /// - Parameters:
    ///   - token: the claim's lease token: nothing changes (`job.lease_lost`) when another host took the job over.
    ///   - randomFraction: the jitter, uniform in 0..<1 (tests pass a fixed one).
    @discardableResult
    public func retryLater(
        jobID: Int64, token: String? = nil, code: String, message: String, now: Double, maxAttempts: Int = 3,
        initialBackoff: Double = 30, maxBackoff: Double = 3600, randomFraction: Double = .random(in: 0..<1)
    ) throws -> RetryDecision {
        try writing { () throws -> RetryDecision in
            let job = try require(jobID, forUpdate: true)
            guard JobLifecycle.allows(.retry, from: job.state) else {
                throw JobStoreError.wrongState(location, job, "retry")
            }
            if let token, job.leaseToken != token { throw JobStoreError.leaseLost(location, job) }
            if job.attempts < maxAttempts {
                let ceiling = min(maxBackoff, initialBackoff * pow(2, Double(max(0, job.attempts - 1))))
                let due = now + ceiling * min(max(randomFraction, 0), 1)
                try database.execute(
                    """
                    UPDATE jobs
                    SET state = 'settled', next_attempt_at = $1, lease_until = NULL, lease_holder = NULL,
                        lease_token = NULL, last_error_code = $2, last_error_message = $3, updated_at = $4
                    WHERE id = $5
                    """, [.real(due), .text(code), .text(message), .real(now), .integer(jobID)])
                try endAttempt(jobID: jobID, outcome: .retried, now: now)
                try database.notify(.jobs)
                return .retryAt(due)
            }
            try database.execute(
                """
                UPDATE jobs
                SET state = 'failed', next_attempt_at = NULL, lease_until = NULL, lease_holder = NULL,
                    lease_token = NULL, last_error_code = $1, last_error_message = $2, finished_at = $3,
                    updated_at = $3
                WHERE id = $4
                """,
                [
                    .text(code), .text("gave up after \(job.attempts) attempts: \(message)"), .real(now),
                    .integer(jobID),
                ])
            try endAttempt(jobID: jobID, outcome: .failed, now: now)
            return .gaveUp
        }
    }

    /// The file changed while its job was settled or processing: the job is dropped back to discovered (its
    /// fingerprint, aliases and attempts cleared), so the next settle of the path queues the new content afresh.
    public func discard(jobID: Int64, now: Double) throws {
        try writing {
            let job = try require(jobID, forUpdate: true)
            guard JobLifecycle.allows(.discard, from: job.state) else {
                throw JobStoreError.wrongState(location, job, "discard")
            }
            try database.lock("path:" + job.path)
            // Keep one discovered row per path: this one.
            try database.execute(
                "DELETE FROM jobs WHERE path = $1 AND state = 'discovered' AND id <> $2",
                [.text(job.path), .integer(jobID)])
            try database.execute("DELETE FROM job_paths WHERE job_id = $1", [.integer(jobID)])
            try endAttempt(jobID: jobID, outcome: .discarded, now: now)
            try database.execute(
                """
                UPDATE jobs
                SET state = 'discovered', fingerprint = NULL, attempts = 0, next_attempt_at = NULL,
                    lease_until = NULL, lease_holder = NULL, lease_token = NULL, event_id = NULL,
                    report_directory = NULL, result_status = NULL, probability = NULL, label = NULL,
                    result_error_code = NULL, result_error_message = NULL, qc_status = NULL, qc_reasons = NULL,
                    last_error_code = NULL, last_error_message = NULL, started_at = NULL, finished_at = NULL,
                    updated_at = $1
                WHERE id = $2
                """, [.real(now), .integer(jobID)])
        }
    }

    /// Clean shutdown: gives a processing job back to the queue — settled, its claim not counted (attempts − 1),
    /// the lease cleared, due at once (it keeps its place). Returns false, changing nothing, when the job is not
    /// processing or (with `token`) another host holds it now.
    @discardableResult
    public func release(jobID: Int64, token: String? = nil, now: Double = Date().timeIntervalSince1970) throws -> Bool {
        try writing { () throws -> Bool in
            let changed = try database.execute(
                """
                UPDATE jobs
                SET state = 'settled', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                    lease_until = NULL, lease_holder = NULL, lease_token = NULL,
                    next_attempt_at = CASE WHEN next_attempt_at IS NULL OR next_attempt_at > $1 THEN $1
                                           ELSE next_attempt_at END,
                    updated_at = $1
                WHERE id = $2 AND state IN (\(JobLifecycle.sqlSources(.release)))
                  AND (CAST($3 AS TEXT) IS NULL OR lease_token = $3)
                """, [.real(now), .integer(jobID), .optional(token.map { .text($0) })])
            guard changed > 0 else { return false }
            try database.execute(
                "DELETE FROM job_attempts WHERE job_id = $1 AND ended_at IS NULL", [.integer(jobID)])
            try database.notify(.jobs)
            return true
        }
    }

    /// Jobs `holder` left processing when its process died (the same host starting again; its state folder's lock
    /// says no other process of it runs) become claimable now, keeping their attempt count: a crash counts as an
    /// attempt, so a slide that crashes the daemon every time is eventually given up. Jobs of other hosts are left
    /// to their leases. Returns how many there were.
    @discardableResult
    public func expireLeases(holder: String = "local", now: Double) throws -> Int {
        try writing { () throws -> Int in
            try database.execute(
                """
                UPDATE job_attempts SET ended_at = $1, outcome = $2
                WHERE ended_at IS NULL
                  AND job_id IN (SELECT id FROM jobs WHERE state = 'processing'
                                 AND (lease_holder = $3 OR lease_holder IS NULL))
                """, [.real(now), .text(JobAttempt.Outcome.interrupted.rawValue), .text(holder)])
            let count = try database.execute(
                """
                UPDATE jobs SET lease_until = $1, updated_at = $1
                WHERE state = 'processing' AND (lease_holder = $2 OR lease_holder IS NULL)
                """, [.real(now), .text(holder)])
            if count > 0 { try database.notify(.jobs) }
            return count
        }
    }

    // MARK: - Reading

    /// The job with this id, or nil.
    public func job(id: Int64) throws -> Job? {
        try database.queryOne("SELECT \(Self.columns()) FROM jobs WHERE id = $1", [.integer(id)], row: Self.job)
    }

    /// Every job with this content (live or failed), oldest first.
    public func jobs(fingerprint: String) throws -> [Job] {
        try database.query(
            "SELECT \(Self.columns()) FROM jobs WHERE fingerprint = $1 ORDER BY id", [.text(fingerprint)],
            row: Self.job)
    }

    /// The paths a job's content was seen at (where it was settled first, then aliases), in the order first seen.
    public func paths(jobID: Int64) throws -> [String] {
        try database.query(
            "SELECT path FROM job_paths WHERE job_id = $1 ORDER BY first_seen_at, path", [.integer(jobID)]
        ) { $0.string(0) }
    }

    /// A job's attempts, oldest first: which host made each, when, and how it ended.
    public func attempts(jobID: Int64) throws -> [JobAttempt] {
        try database.query(
            """
            SELECT job_id, attempt, host, started_at, ended_at, outcome FROM job_attempts
            WHERE job_id = $1 ORDER BY id
            """, [.integer(jobID)]
        ) {
            JobAttempt(
                jobID: $0.int64(0), attempt: $0.int(1), host: $0.string(2), startedAt: $0.double(3),
                endedAt: $0.optionalDouble(4), outcome: $0.optionalString(5).flatMap(JobAttempt.Outcome.init))
        }
    }

    /// The job that already accounts for the file at `path` with this size and mtime — settled there (or seen
    /// there as an alias), or rejected as not a slide — or nil when the file is new or changed. A rescan uses it to
    /// skip files without reading them again. Live jobs win over failed ones.
    public func known(path: String, size: Int64, modified: Double) throws -> Job? {
        try database.queryOne(
            """
            SELECT \(Self.columns()) FROM jobs
            WHERE id IN (SELECT job_id FROM job_paths WHERE path = $1 AND size = $2 AND modified = $3)
            ORDER BY state = 'failed', id DESC
            LIMIT 1
            """, [.text(path), .integer(size), .real(modified)], row: Self.job)
    }

    // MARK: - Helpers

    /// Runs `body` in a write transaction, again (up to three times) when PostgreSQL reports a serialization
    /// failure or a deadlock, which only mean "try again".
    func writing<Result>(_ body: () throws -> Result) throws -> Result {
        var attempt = 0
        while true {
            do {
                return try database.transaction(body)
            } catch let error as PostgresError where error.code == .conflict && attempt < 2 && !database.isInTransaction
            {
                attempt += 1
            }
        }
    }

    /// The live job (settled, processing, reported or delivered) holding this content, if any.
    private func liveJob(fingerprint: String) throws -> Job? {
        try database.queryOne(
            """
            SELECT \(Self.columns()) FROM jobs
            WHERE fingerprint = $1 AND state IN (\(JobLifecycle.sql(JobState.live)))
            """, [.text(fingerprint)], row: Self.job)
    }

    /// Records (or refreshes) one path a job's content was seen at.
    private func recordPath(jobID: Int64, path: String, size: Int64, modified: Double, now: Double) throws {
        try database.execute(
            """
            INSERT INTO job_paths (job_id, path, size, modified, first_seen_at, last_seen_at)
            VALUES ($1, $2, $3, $4, $5, $5)
            ON CONFLICT (job_id, path) DO UPDATE
                SET size = excluded.size, modified = excluded.modified, last_seen_at = excluded.last_seen_at
            """, [.integer(jobID), .text(path), .integer(size), .real(modified), .real(now)])
    }

    /// Closes a job's open attempt (there is at most one).
    private func endAttempt(jobID: Int64, outcome: JobAttempt.Outcome, now: Double) throws {
        try database.execute(
            "UPDATE job_attempts SET ended_at = $1, outcome = $2 WHERE job_id = $3 AND ended_at IS NULL",
            [.real(now), .text(outcome.rawValue), .integer(jobID)])
    }

    /// The job with this id, or a `job.unknown` error. `forUpdate` locks its row until the transaction ends
    /// (PostgreSQL), so the state read is the state changed.
    func require(_ id: Int64, forUpdate: Bool = false) throws -> Job {
        let lock = forUpdate && database.dialect == .postgresql ? " FOR UPDATE" : ""
        guard
            let job = try database.queryOne(
                "SELECT \(Self.columns()) FROM jobs WHERE id = $1\(lock)", [.integer(id)], row: Self.job)
        else { throw JobStoreError.unknownJob(location, id) }
        return job
    }

    /// The columns ``job(_:)`` reads, in order, optionally qualified by a table alias.
    static func columns(_ alias: String = "") -> String {
        [
            "id", "path", "fingerprint", "size", "modified", "state", "attempts", "event_id", "created_at",
            "next_attempt_at", "lease_until", "report_directory", "result_status", "probability", "label",
            "result_error_code", "result_error_message", "last_error_code", "last_error_message", "finished_at",
            "lease_holder", "lease_token", "qc_status", "qc_reasons",
        ].map { alias + $0 }.joined(separator: ", ")
    }

    /// `qc_reasons` as a list ("pen,blur" → ["pen", "blur"]).
    static func reasons(_ text: String?) -> [String] {
        (text ?? "").split(separator: ",").map(String.init)
    }

    static func job(_ row: any DatabaseRow) -> Job {
        Job(
            id: row.int64(0), path: row.string(1), fingerprint: row.optionalString(2), size: row.int64(3),
            modified: row.double(4), state: JobState(rawValue: row.string(5)) ?? .failed, attempts: row.int(6),
            eventID: row.optionalString(7), createdAt: row.double(8), nextAttemptAt: row.optionalDouble(9),
            leaseUntil: row.optionalDouble(10), reportDirectory: row.optionalString(11),
            result: row.optionalString(12).map {
                JobResult(
                    status: $0, probability: row.optionalDouble(13), label: row.optionalString(14),
                    errorCode: row.optionalString(15), errorMessage: row.optionalString(16),
                    qcStatus: row.optionalString(22), qcReasons: Self.reasons(row.optionalString(23)))
            },
            lastErrorCode: row.optionalString(17), lastErrorMessage: row.optionalString(18),
            finishedAt: row.optionalDouble(19), leaseHolder: row.optionalString(20), leaseToken: row.optionalString(21))
    }
}
