import Notify

extension JobStore {
    /// The schema steps of the job store, applied with `PRAGMA user_version` (the job store owns the file; the
    /// outbox keeps its own version under `csmil_schema_versions`). Never edit a step that has shipped: add one.
    static let migrations: [SQLiteDatabase.Migration] = [
        { database in
            try database.execute(
                """
                -- One row per slide version (content fingerprint), plus rows for files seen but not yet settled
                -- (state 'discovered', no fingerprint) and files rejected as not slides (state 'failed', no
                -- fingerprint). Times are Unix seconds.
                CREATE TABLE jobs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    path TEXT NOT NULL,                -- where it was settled (other paths: job_paths)
                    fingerprint TEXT,                  -- 'sha256:…'; NULL while discovered and for rejected files
                    size INTEGER NOT NULL,             -- bytes, when last seen
                    modified REAL NOT NULL,            -- mtime, when last seen
                    state TEXT NOT NULL CHECK (state IN
                        ('discovered', 'settled', 'processing', 'reported', 'delivered', 'failed')),
                    attempts INTEGER NOT NULL DEFAULT 0,  -- claims so far
                    next_attempt_at REAL,              -- settled: due at
                    lease_until REAL,                  -- processing: the claim holds until
                    event_id TEXT,                     -- reported: the report's event id (= webhook-id)
                    report_directory TEXT,
                    result_status TEXT,                -- 'scored' | 'no_tissue' | 'failed' (the report's status)
                    probability REAL,
                    label TEXT,
                    result_error_code TEXT,            -- the report's error, when result_status = 'failed'
                    result_error_message TEXT,
                    last_error_code TEXT,              -- why it failed, or why the last attempt was retried
                    last_error_message TEXT,
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    started_at REAL,                   -- last claimed at
                    finished_at REAL,                  -- reported or failed at
                    delivered_at REAL,
                    -- Only discovered and failed rows may lack a fingerprint.
                    CHECK (fingerprint IS NOT NULL OR state IN ('discovered', 'failed'))
                );

                -- Slide identity: one live job per content. Failed jobs are outside it, so content that failed
                -- for good can be queued again when it is dropped in again.
                CREATE UNIQUE INDEX jobs_live_fingerprint ON jobs (fingerprint)
                    WHERE state IN ('settled', 'processing', 'reported', 'delivered');
                CREATE INDEX jobs_fingerprint ON jobs (fingerprint);
                -- At most one "not yet settled" row per path.
                CREATE UNIQUE INDEX jobs_discovered_path ON jobs (path) WHERE state = 'discovered';
                -- One event id, one job: two jobs never share a webhook-id.
                CREATE UNIQUE INDEX jobs_event_id ON jobs (event_id) WHERE event_id IS NOT NULL;
                -- The queue (claimNext) and the state counts (status).
                CREATE INDEX jobs_queue ON jobs (state, next_attempt_at, id);
                CREATE INDEX jobs_path ON jobs (path);

                -- Every path (with size and mtime) a job's content was seen at: where it was settled, renamed or
                -- copied to. Rejected files have their one row here too, so a rescan finds them by path+size+mtime.
                CREATE TABLE job_paths (
                    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                    path TEXT NOT NULL,
                    size INTEGER NOT NULL,
                    modified REAL NOT NULL,
                    first_seen_at REAL NOT NULL,
                    last_seen_at REAL NOT NULL,
                    PRIMARY KEY (job_id, path)
                );
                CREATE INDEX job_paths_path ON job_paths (path, size, modified);
                """)
        },
        { database in
            // Quality control (issue 16): the report's qc.status ('pass' | 'review', NULL with QC off) and its
            // reasons, comma-separated.
            try database.execute(
                """
                ALTER TABLE jobs ADD COLUMN qc_status TEXT;
                ALTER TABLE jobs ADD COLUMN qc_reasons TEXT;
                """)
        },
    ]
}
