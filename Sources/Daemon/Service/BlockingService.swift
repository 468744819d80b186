import ServiceLifecycle
import Threads

/// A blocking loop — the watcher's `poll`, a worker's OpenSlide and BLAS calls — as a `Service`: the loop runs on a
/// ``DedicatedThread``; shutdown, graceful or not, is cancellation, which calls `stop`, which must make the loop
/// return soon (it signals the loop's ``Wakeup``).
struct BlockingService: Service {
    let name: String
    let body: @Sendable () -> Void
    let stop: @Sendable () -> Void

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await DedicatedThread.run(name: name, body, onCancel: stop)
        }
    }
}
