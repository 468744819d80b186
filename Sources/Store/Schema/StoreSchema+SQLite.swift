extension StoreSchema {
    // The SQLite side of ``steps``, applied with `PRAGMA user_version` to `<state>/csmil.sqlite3`. Never edit a step
    // that has shipped: add one.
    //
    // Until version 2 the outbox kept its own version under `csmil_schema_versions` (component `outbox`, version 1);
    // step 2 adopts its tables into the list, so a file written by any earlier csmil (jobs only, outbox only — as
    // `csmil score --notify` leaves it — or both) opens and migrates on start.

    // 1: jobs and the paths each slide was seen at.
    static let sqliteJobs: SQLiteDatabase.Migration = { database in
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
    }

    // 2: the outbox's tables join the one list: created when missing (version 1 of the outbox component, as
    // earlier builds made it), and the component table goes. Jobs whose event the outbox had delivered become
    // delivered: earlier builds recorded that on the worker's next loop (`syncDelivered`), which a stop could
    // leave undone; from now on the delivery and the job's state are written in one transaction.
    static let sqliteOutbox: SQLiteDatabase.Migration = { database in
        let hasComponents =
            try database.queryOne(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'csmil_schema_versions'"
            ) { _ in true } ?? false
        let outboxVersion =
            hasComponents
            ? try database.queryOne("SELECT version FROM csmil_schema_versions WHERE component = 'outbox'") {
                $0.int(0)
            } ?? 0 : 0
        guard outboxVersion <= 1 else {
            throw SQLiteError(
                code: .tooNew, path: database.path,
                message: "the outbox tables are at schema version \(outboxVersion); this csmil knows up to 1",
                fix: "run the csmil version that wrote it, or move the file aside to start an empty store")
        }
        try database.execute(
            """
            CREATE TABLE IF NOT EXISTS outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                event_id TEXT NOT NULL UNIQUE,
                slide_key TEXT NOT NULL,
                event_type TEXT NOT NULL,
                target_url TEXT NOT NULL,
                content_type TEXT NOT NULL,
                body BLOB NOT NULL,
                created_at REAL NOT NULL,
                window_start REAL NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at REAL NOT NULL,
                last_attempt_at REAL,
                last_status INTEGER,
                last_error TEXT,
                state TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead', 'disabled')),
                delivered_at REAL
            );
            CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
            CREATE INDEX IF NOT EXISTS outbox_slide ON outbox (slide_key, state, seq);
            CREATE TABLE IF NOT EXISTS outbox_endpoints (
                url TEXT PRIMARY KEY,
                disabled_at REAL NOT NULL,
                status INTEGER,
                reason TEXT
            );
            DROP TABLE IF EXISTS csmil_schema_versions;
            UPDATE jobs
            SET state = 'delivered',
                delivered_at = (SELECT o.delivered_at FROM outbox AS o WHERE o.event_id = jobs.event_id)
            WHERE state = 'reported'
              AND event_id IN (SELECT event_id FROM outbox WHERE state = 'delivered');
            """)
    }

    // 3: outbox rows name a destination instead of a URL (one row per event and destination: `webhook`,
    // `hl7`); the URL is the one configured when a row is sent. Disabled endpoints are kept per destination
    // and URL. Rows and endpoints of earlier versions were webhook deliveries.
    static let sqliteDestinations: SQLiteDatabase.Migration = { database in
        try database.execute(
            """
            CREATE TABLE outbox_next (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                event_id TEXT NOT NULL,
                destination TEXT NOT NULL,
                slide_key TEXT NOT NULL,
                event_type TEXT NOT NULL,
                content_type TEXT NOT NULL,
                body BLOB NOT NULL,
                created_at REAL NOT NULL,
                window_start REAL NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at REAL NOT NULL,
                last_attempt_at REAL,
                last_status INTEGER,
                last_error TEXT,
                state TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead', 'disabled')),
                delivered_at REAL,
                UNIQUE (event_id, destination)
            );
            INSERT INTO outbox_next (seq, event_id, destination, slide_key, event_type, content_type, body,
                                     created_at, window_start, attempts, next_attempt_at, last_attempt_at,
                                     last_status, last_error, state, delivered_at)
                SELECT seq, event_id, 'webhook', slide_key, event_type, content_type, body, created_at,
                       window_start, attempts, next_attempt_at, last_attempt_at, last_status, last_error, state,
                       delivered_at
                FROM outbox;
            DROP TABLE outbox;
            ALTER TABLE outbox_next RENAME TO outbox;
            CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
            CREATE INDEX outbox_slide ON outbox (destination, slide_key, state, seq);
            CREATE TABLE outbox_endpoints_next (
                destination TEXT NOT NULL,
                url TEXT NOT NULL,
                disabled_at REAL NOT NULL,
                status INTEGER,
                reason TEXT,
                PRIMARY KEY (destination, url)
            );
            INSERT INTO outbox_endpoints_next (destination, url, disabled_at, status, reason)
                SELECT 'webhook', url, disabled_at, status, reason FROM outbox_endpoints;
            DROP TABLE outbox_endpoints;
            ALTER TABLE outbox_endpoints_next RENAME TO outbox_endpoints;
            """)
    }

    // 4: quality control (issue 16): the report's qc.status ('pass' | 'review'; NULL with QC off) and its reasons,
    // comma-separated.
    static let sqliteQuality: SQLiteDatabase.Migration = { database in
        try database.execute(
            """
            ALTER TABLE jobs ADD COLUMN qc_status TEXT;
            ALTER TABLE jobs ADD COLUMN qc_reasons TEXT;
            """)
    }

    // 5: several hosts: who holds a job's lease (and its token), the attempts with their host and outcome, the hosts
    // themselves; outbox rows are leased by the host sending them.
    static let sqliteHosts: SQLiteDatabase.Migration = { database in
        try database.execute(
            """
            ALTER TABLE jobs ADD COLUMN lease_holder TEXT;     -- processing: the host that holds the lease
            ALTER TABLE jobs ADD COLUMN lease_token TEXT;      -- processing: this claim (one per attempt)
            CREATE TABLE job_attempts (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                attempt INTEGER NOT NULL,
                host TEXT NOT NULL,
                lease_token TEXT NOT NULL UNIQUE,
                started_at REAL NOT NULL,
                ended_at REAL,
                outcome TEXT      -- reported | retried | failed | released | discarded | lease_expired |
                                  -- interrupted; NULL while it runs
            );
            CREATE INDEX job_attempts_job ON job_attempts (job_id, ended_at);
            CREATE TABLE hosts (
                name TEXT PRIMARY KEY,
                instance TEXT NOT NULL,  -- one per process start: a second process under the same name is told
                machine TEXT NOT NULL,   -- machine id and state folder: a restart of the same host takes over
                pid INTEGER NOT NULL,
                version TEXT NOT NULL,
                started_at REAL NOT NULL,
                heartbeat_at REAL NOT NULL,
                lease_seconds REAL NOT NULL,  -- alive while heartbeat_at + lease_seconds is ahead
                stopped_at REAL,
                status TEXT NOT NULL DEFAULT ''
            );
            ALTER TABLE outbox ADD COLUMN lease_holder TEXT;   -- the host sending the row now
            ALTER TABLE outbox ADD COLUMN lease_until REAL;    -- until when its claim holds
            CREATE INDEX outbox_event ON outbox (event_id, state);
            """)
    }
}
