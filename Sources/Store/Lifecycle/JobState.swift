/// Where a slide version stands in the job store (daemon spec "Jobs and state").
///
/// discovered → settled → processing → reported → delivered, or failed. A job is one slide *version*: its identity
/// is the content fingerprint, not the path. Which state may follow which is ``JobLifecycle``'s table, the one place
/// every backend asks.
public enum JobState: String, Sendable, Codable, CaseIterable {
    /// A file was seen but has not been quiet long enough to be read (a hint for `csmil status`; no fingerprint).
    case discovered
    /// Quiet, opened and fingerprinted: waiting in the queue until `nextAttemptAt`.
    case settled
    /// Being scored, under a lease; a crash leaves it here until the lease expires and it is claimed again.
    case processing
    /// Its report is written and its events are in the outbox (same transaction).
    case reported
    /// Every outbox row of its event was delivered (recorded in the transaction that records the last delivery).
    case delivered
    /// Given up: not a slide (rejected), or transient failures until `maxAttempts`. Has a reason.
    case failed

    /// The states in which a job holds its content's identity: at most one job per fingerprint is in one of them
    /// (the partial unique index `jobs_live_fingerprint`). Failed jobs are outside, so content that failed for good
    /// can be queued again when it is dropped in again.
    public static let live: [JobState] = [.settled, .processing, .reported, .delivered]

    /// The states whose job has a report (and an event id).
    public static let finished: [JobState] = [.reported, .delivered]
}
