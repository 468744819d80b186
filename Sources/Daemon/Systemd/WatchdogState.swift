/// Whether the daemon may tell systemd it is alive (WATCHDOG=1): only while work really moves.
///
/// A plain state machine, fed by the worker and asked by the status timer. Busy with a slide, the
/// watchdog is fed while tiles keep coming (the last progress at most `stallLimit` seconds ago): a
/// slide stuck in OpenSlide or a dead worker thread stops the pings and systemd restarts the service
/// after `WatchdogSec=`. Idle, it is fed while the parts that must run (the watcher, the delivery
/// worker) are alive.
struct WatchdogState: Sendable, Equatable {
    /// Seconds without progress after which a busy worker counts as stuck.
    var stallLimit: Double
    /// When each slide in progress last moved (start, batch); empty when idle.
    private(set) var lastProgress: [Int64: Double] = [:]

    init(stallLimit: Double) {
        self.stallLimit = stallLimit
    }

    /// A slide started or a batch of its tiles was embedded.
    mutating func progressed(_ jobID: Int64, now: Double) { lastProgress[jobID] = now }

    /// A worker finished its slide.
    mutating func finished(_ jobID: Int64) { lastProgress[jobID] = nil }

    /// Whether to send WATCHDOG=1 now; `healthy`: the watcher and the delivery worker are running. Every slide in
    /// progress must have moved within `stallLimit`.
    func shouldPing(now: Double, healthy: Bool) -> Bool {
        guard healthy else { return false }
        return lastProgress.values.allSatisfy { now - $0 <= stallLimit }
    }
}
