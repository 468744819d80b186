import Foundation
import Logging
import Notify
import ServiceLifecycle

/// The outbox delivery worker as a service that a reload can switch on and off: `[webhook] url` set at start or by a
/// SIGHUP starts an `OutboxDelivery` (its own thread); a reload that changes the other webhook settings reconfigures
/// it; `url = ""` stops it (rows already queued stay in the outbox for when it is on again). On graceful shutdown the
/// worker stops; a request in flight is abandoned and its row stays pending, to be sent again with the same id.
final class DeliverySwitch: Service, @unchecked Sendable {
    private let lock = NSLock()
    private let logger: Logger
    private let flags: RunningFlags
    private var current: OutboxDelivery?
    /// `run()` waiting for a worker to be switched on.
    private var waiter: CheckedContinuation<OutboxDelivery?, Never>?
    private var shuttingDown = false
    /// The worker `run()` ran last (an `OutboxDelivery` runs once).
    private var lastRun: OutboxDelivery?

    /// Starts with the worker on when `configuration` is given.
    init(_ configuration: OutboxDelivery.Configuration?, flags: RunningFlags, logger: Logger) {
        self.logger = logger
        self.flags = flags
        current = configuration.map { OutboxDelivery(configuration: $0, logger: logger) }
    }

    /// Whether deliveries are switched on (then the watchdog needs the worker running).
    var isOn: Bool { lock.withLock { current != nil } }

    /// Asks the worker, if on, to look at the outbox now (after an enqueue was committed).
    func wake() { lock.withLock { current }?.wake() }

    /// The webhook settings of a reload: a configuration switches the worker on (or reconfigures it), nil off.
    func apply(_ configuration: OutboxDelivery.Configuration?) {
        let (stopped, waiting, started):
            (OutboxDelivery?, CheckedContinuation<OutboxDelivery?, Never>?, OutboxDelivery?) =
                lock.withLock {
                    if shuttingDown { return (nil, nil, nil) }
                    if let configuration, let current {
                        current.reconfigure(configuration)
                        return (nil, nil, nil)
                    }
                    if let configuration {
                        let delivery = OutboxDelivery(configuration: configuration, logger: logger)
                        current = delivery
                        let waiting = waiter
                        waiter = nil
                        if waiting != nil { lastRun = delivery }
                        return (nil, waiting, delivery)
                    }
                    let stopped = current
                    current = nil
                    return (stopped, nil, nil)
                }
        waiting?.resume(returning: started)
        // stop() waits for the worker's thread to end: not on the caller's (cooperative) thread.
        if let stopped { Thread.detachNewThread { stopped.stop() } }
    }

    func run() async throws {
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                while let delivery = await next() {
                    flags.set(delivery: true)
                    defer { flags.set(delivery: false) }
                    try await delivery.run()
                }
            } onGracefulShutdown: {
                self.shutdown()
            }
        } onCancel: {
            self.shutdown()
        }
    }

    /// Ends `run()`: stops the worker (on a thread of its own: `stop()` waits for the worker's thread).
    private func shutdown() {
        let (stopped, waiting) = lock.withLock {
            shuttingDown = true
            defer { waiter = nil }
            return (current, waiter)
        }
        waiting?.resume(returning: nil)
        if let stopped { Thread.detachNewThread { stopped.stop() } }
    }

    /// The worker to run next: the current one if it has not run yet, else waits until one is switched on; nil at
    /// shutdown.
    private func next() async -> OutboxDelivery? {
        await withCheckedContinuation { (continuation: CheckedContinuation<OutboxDelivery?, Never>) in
            let ready: OutboxDelivery?? = lock.withLock {
                if shuttingDown { return .some(nil) }
                if let current, current !== lastRun {
                    lastRun = current
                    return .some(current)
                }
                waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
