import Foundation
import Logging
import Store
import Synchronization
import Threads

/// This host in the store: the leases its workers hold, renewed by a heartbeat every quarter of the lease (with
/// STATUS= recorded for `csmil status` on any host), and the slides another host took over because this host's
/// lease ran out (it was stopped, or cut off from the database for longer than the lease): their workers stop
/// scoring them. A ``BlockingService`` with a connection of its own (database calls block); ``stop()`` ends it.
final class HostHeartbeat: Sendable {
    let host: String
    /// This process's registration; another process under the same name has another.
    let instance: String
    let leaseSeconds: Double

    private struct State {
        var held: [Int64: String] = [:]
        var lost: Set<Int64> = []
        var stopping = false
    }

    private let state = Mutex(State())
    private let wakeup = Wakeup()

    init(host: String, instance: String = UUID().uuidString.lowercased(), leaseSeconds: Double) {
        self.host = host
        self.instance = instance
        self.leaseSeconds = leaseSeconds
    }

    /// A worker claimed `job`: its lease is renewed from now on.
    func hold(_ job: Job) {
        guard let token = job.leaseToken else { return }
        state.withLock { $0.held[job.id] = token }
    }

    /// A worker is done with the job (recorded, released or dropped).
    func drop(_ jobID: Int64) {
        state.withLock {
            $0.held[jobID] = nil
            $0.lost.remove(jobID)
        }
    }

    /// Whether another host took the job over.
    func isLost(_ jobID: Int64) -> Bool { state.withLock { $0.lost.contains(jobID) } }

    /// Beats until ``stop()``: once at once, then every quarter lease. `status` gives the STATUS= line to record.
    func run(
        store: JobStore, health: StoreHealth, status: @Sendable () -> String, logger: Logger
    ) {
        let period = max(0.5, leaseSeconds / 4)
        var next = Date().timeIntervalSince1970
        while !state.withLock({ $0.stopping }) {
            let now = Date().timeIntervalSince1970
            if now >= next {
                let leases = state.withLock { $0.held.map { JobLease(jobID: $0.key, token: $0.value) } }
                do {
                    let lost = try store.heartbeat(
                        host: host, instance: instance, status: status(), leases: leases, now: now,
                        leaseSeconds: leaseSeconds)
                    health.succeeded("heartbeat")
                    if !lost.isEmpty {
                        state.withLock { $0.lost.formUnion(lost) }
                        logger.warning(
                            "another host took over slides whose lease ran out here; this host stops scoring them",
                            metadata: ["jobs": "\(lost.map(String.init).joined(separator: ","))", "host": "\(host)"])
                    }
                    next = now + period
                } catch let error as JobStoreError where error.code == .hostNameInUse {
                    logger.critical("host name taken over by another process", metadata: .error(error))
                    next = now + period
                } catch {
                    next = now + min(period, health.failed("heartbeat", error))
                }
            }
            if !state.withLock({ $0.stopping }) {
                wakeup.wait(timeout: max(0.05, next - Date().timeIntervalSince1970))
            }
        }
    }

    /// Makes ``run(store:health:status:logger:)`` return.
    func stop() {
        state.withLock { $0.stopping = true }
        wakeup.signal()
    }
}
