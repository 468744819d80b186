import Foundation
import Logging
import Store
import Synchronization
import Threads

/// PostgreSQL `LISTEN` for the daemon's idle parts: a job that became due anywhere wakes this host's workers, a
/// queued event its delivery worker, at once instead of at their next poll. Only a hint: through PgBouncer in
/// transaction mode (or while the database is away) nothing arrives, and the workers' and the delivery's polling
/// finds the work all the same. A ``BlockingService`` with a connection of its own; ``stop()`` ends it within a
/// second (it waits for notifications a second at a time).
final class StoreListener: Sendable {
    private let location: StoreLocation
    private let logger: Logger
    private let onJobs: @Sendable () -> Void
    private let onOutbox: @Sendable () -> Void
    private let stopping = Atomic<Bool>(false)
    private let wakeup = Wakeup()

    init(
        location: StoreLocation, logger: Logger, onJobs: @escaping @Sendable () -> Void,
        onOutbox: @escaping @Sendable () -> Void
    ) {
        self.location = location
        self.logger = logger
        self.onJobs = onJobs
        self.onOutbox = onOutbox
    }

    /// Listens until ``stop()``, reconnecting after a lost connection (1, 2, 4 … 30 s).
    func run() {
        var failures = 0
        while !stopping.load(ordering: .relaxed) {
            do {
                guard let connection = try location.open(applicationName: "csmil listen") as? PostgresConnection
                else { return }
                try connection.listen(StoreChannel.allCases)
                failures = 0
                // Whatever was queued while not listening.
                onJobs()
                onOutbox()
                while !stopping.load(ordering: .relaxed) {
                    for channel in Set(try connection.waitForNotifications(timeout: 1)) {
                        switch channel {
                        case StoreChannel.jobs.rawValue: onJobs()
                        case StoreChannel.outbox.rawValue: onOutbox()
                        default: break
                        }
                    }
                }
            } catch {
                failures += 1
                logger.debug("LISTEN connection lost; polling covers meanwhile", metadata: .error(error))
                if !stopping.load(ordering: .relaxed) { wakeup.wait(timeout: StoreHealth.backoff(failures: failures)) }
            }
        }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        wakeup.signal()
    }
}
