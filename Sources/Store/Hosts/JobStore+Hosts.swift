import Foundation

/// A `csmil watch` process as the store knows it: the host name it runs under, its heartbeat, what it does.
public struct HostRecord: Sendable, Equatable, Codable {
    public var name: String
    public var pid: Int
    public var version: String
    public var startedAt: Double
    /// Its last heartbeat (Unix seconds).
    public var heartbeatAt: Double
    /// When it stopped cleanly; nil while it runs (or after it died).
    public var stoppedAt: Double?
    /// Its last STATUS= line.
    public var status: String
    /// Running: not stopped, and its last heartbeat is younger than its lease.
    public var alive: Bool
    /// The slides it holds leases on now (file names).
    public var processing: [String]

    enum CodingKeys: String, CodingKey {
        case name, pid, version, status, alive, processing
        case startedAt = "started_at"
        case heartbeatAt = "heartbeat_at"
        case stoppedAt = "stopped_at"
    }
}

/// One processing job's claim, as its holder renews it.
public struct JobLease: Sendable, Hashable {
    public var jobID: Int64
    public var token: String

    public init(jobID: Int64, token: String) {
        self.jobID = jobID
        self.token = token
    }
}

extension JobStore {
    /// Registers this process as host `name` (at start). A host of that name whose heartbeat is still within its
    /// lease and that runs elsewhere (another `machine`: machine id and state folder) is another live process:
    /// refused with `store.host_name_in_use`. The same machine and state folder is this host's own earlier process,
    /// which the state folder's lock proves gone.
    public func registerHost(
        name: String, instance: String, machine: String, pid: Int, version: String, leaseSeconds: Double, now: Double
    ) throws {
        try writing {
            try database.lock("host:" + name)
            if let other = try database.queryOne(
                """
                SELECT instance, machine, pid, heartbeat_at, lease_seconds, stopped_at FROM hosts WHERE name = $1
                """, [.text(name)],
                row: {
                    (
                        instance: $0.string(0), machine: $0.string(1), pid: $0.int(2), heartbeat: $0.double(3),
                        lease: $0.double(4), stopped: $0.optionalDouble(5)
                    )
                }),
                other.instance != instance, other.machine != machine, other.stopped == nil,
                other.heartbeat + other.lease > now
            {
                throw JobStoreError(
                    code: .hostNameInUse, location: location,
                    message: "host name \(name) is in use by another running csmil (pid \(other.pid), last heartbeat "
                        + "\(Int(max(0, now - other.heartbeat))) s ago)",
                    fix: "give each host its own [state] host_name (it defaults to the machine's host name)")
            }
            try database.execute(
                """
                INSERT INTO hosts (name, instance, machine, pid, version, started_at, heartbeat_at, lease_seconds,
                                   stopped_at, status)
                VALUES ($1, $2, $3, $4, $5, $6, $6, $7, NULL, 'starting')
                ON CONFLICT (name) DO UPDATE
                    SET instance = excluded.instance, machine = excluded.machine, pid = excluded.pid,
                        version = excluded.version, started_at = excluded.started_at,
                        heartbeat_at = excluded.heartbeat_at, lease_seconds = excluded.lease_seconds,
                        stopped_at = NULL, status = excluded.status
                """,
                [
                    .text(name), .text(instance), .text(machine), .int(pid), .text(version), .real(now),
                    .real(leaseSeconds),
                ])
        }
    }

    /// The heartbeat of host `name`: its record is refreshed (with `status`, its STATUS= line) and each of
    /// `leases` is extended to `now + leaseSeconds`, in one transaction. Returns the jobs whose lease another host
    /// took over meanwhile (this host's lease had expired): their slides are someone else's now.
    ///
    /// - Throws: `store.host_name_in_use` when another process registered under this name since (this one was
    ///   taken for dead).
    @discardableResult
    public func heartbeat(
        host name: String, instance: String, status: String, leases: [JobLease], now: Double, leaseSeconds: Double
    ) throws -> [Int64] {
        try writing { () throws -> [Int64] in
            let changed = try database.execute(
                """
                UPDATE hosts SET heartbeat_at = $1, status = $2, lease_seconds = $3, stopped_at = NULL
                WHERE name = $4 AND instance = $5
                """, [.real(now), .text(status), .real(leaseSeconds), .text(name), .text(instance)])
            if changed == 0 {
                throw JobStoreError(
                    code: .hostNameInUse, location: location,
                    message: "another csmil registered as host \(name) while this one was not heard from",
                    fix: "give each host its own [state] host_name; restart this one")
            }
            var lost: [Int64] = []
            for lease in leases {
                let renewed = try database.execute(
                    """
                    UPDATE jobs SET lease_until = $1, updated_at = $2
                    WHERE id = $3 AND lease_token = $4 AND state IN (\(JobLifecycle.sqlSources(.renew)))
                    """, [.real(now + leaseSeconds), .real(now), .integer(lease.jobID), .text(lease.token)])
                if renewed == 0 { lost.append(lease.jobID) }
            }
            return lost
        }
    }

    /// Records that host `name` stopped cleanly.
    public func stopHost(name: String, instance: String, now: Double) throws {
        try database.execute(
            "UPDATE hosts SET stopped_at = $1, status = 'stopped' WHERE name = $2 AND instance = $3",
            [.real(now), .text(name), .text(instance)])
    }

    /// Every host that has run with this store, by name, with the slides each holds now.
    public func hosts(now: Double) throws -> [HostRecord] {
        try reading { () throws -> [HostRecord] in
            var slides: [String: [String]] = [:]
            for (holder, path) in try database.query(
                "SELECT lease_holder, path FROM jobs WHERE state = 'processing' AND lease_holder IS NOT NULL ORDER BY id",
                row: { ($0.string(0), $0.string(1)) })
            {
                slides[holder, default: []].append(Self.name(path))
            }
            return try database.query(
                """
                SELECT name, pid, version, started_at, heartbeat_at, stopped_at, status, lease_seconds
                FROM hosts ORDER BY name
                """
            ) {
                let stopped = $0.optionalDouble(5)
                let heartbeat = $0.double(4)
                return HostRecord(
                    name: $0.string(0), pid: $0.int(1), version: $0.string(2), startedAt: $0.double(3),
                    heartbeatAt: heartbeat, stoppedAt: stopped, status: $0.string(6),
                    alive: stopped == nil && heartbeat + $0.double(7) > now, processing: slides[$0.string(0)] ?? [])
            }
        }
    }
}
