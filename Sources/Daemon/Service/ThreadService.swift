import Foundation
import ServiceLifecycle

/// A blocking loop (the watcher's `poll`, the worker's OpenSlide and BLAS calls) run as a `Service` on a thread of
/// its own, off Swift's cooperative pool: `run()` starts the thread and returns when the loop does; a graceful
/// shutdown or a cancellation calls `stop`, which must make the loop return soon.
struct ThreadService: Service {
    let name: String
    let body: @Sendable () -> Void
    let stop: @Sendable () -> Void

    func run() async throws {
        let (name, body, stop) = (self.name, self.body, self.stop)
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let thread = Thread {
                        body()
                        continuation.resume()
                    }
                    thread.name = name
                    thread.stackSize = 16 << 20
                    thread.start()
                }
            } onGracefulShutdown: {
                stop()
            }
        } onCancel: {
            stop()
        }
    }
}
