import Logging
import Notify
import ServiceLifecycle
import Synchronization
import Threads

/// The outbox delivery worker as a service that a reload can switch on and off: a `[webhook]` or `[hl7]` url set at
/// start or by a SIGHUP runs an `OutboxDelivery` in a child task; a reload that changes the other delivery settings
/// reconfigures the running one; every url removed cancels it (rows already queued stay in the outbox for when it is
/// on again). Shutdown, graceful or not, is cancellation: a request in flight is abandoned and its row stays pending,
/// to be sent again with the same id.
final class DeliverySwitch: Service, Sendable {
    private let logger: Logger
    private let flags: RunningFlags
    /// The worker switched on now; nil when delivery is off.
    private let current: Mutex<OutboxDelivery?>
    /// Signalled when ``apply(_:)`` switches the worker on or off.
    private let switched = AsyncSignal()

    /// Starts with the worker on when `configuration` is given.
    init(_ configuration: OutboxDelivery.Configuration?, flags: RunningFlags, logger: Logger) {
        self.logger = logger
        self.flags = flags
        current = Mutex(configuration.map { OutboxDelivery(configuration: $0, logger: logger) })
    }

    /// Whether deliveries are switched on (then the watchdog needs the worker running).
    var isOn: Bool { current.withLock { $0 != nil } }

    /// Asks the worker, if on, to look at the outbox now (after an enqueue was committed).
    func wake() { current.withLock { $0 }?.wake() }

    /// The delivery settings of a reload: a configuration switches the worker on (or reconfigures the running one),
    /// nil switches it off.
    func apply(_ configuration: OutboxDelivery.Configuration?) {
        let changed = current.withLock { current -> Bool in
            switch (configuration, current) {
            case (let configuration?, let running?):
                running.reconfigure(configuration)
                return false
            case (let configuration?, nil):
                current = OutboxDelivery(configuration: configuration, logger: logger)
                return true
            case (nil, .some):
                current = nil
                return true
            case (nil, nil):
                return false
            }
        }
        if changed { switched.signal() }
    }

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                guard let delivery = self.current.withLock({ $0 }) else {
                    await self.switched.wait()
                    continue
                }
                try await self.run(delivery)
            }
        }
    }

    /// Runs `delivery` until it is switched off or replaced, or the task is cancelled. Rethrows the worker's error
    /// (the database cannot be opened), which ends the daemon as it would without a reload.
    private func run(_ delivery: OutboxDelivery) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                self.flags.set(delivery: true)
                defer { self.flags.set(delivery: false) }
                try await delivery.run()
            }
            group.addTask {
                while !Task.isCancelled, self.current.withLock({ $0 === delivery }) {
                    await self.switched.wait()
                }
            }
            // The first child to end (the worker cancelled or failed, or the switch) ends the other.
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}
