import Foundation
import Synchronization

/// The one way csmil runs blocking work — OpenSlide, BLAS, libcurl, SQLite, `poll` on inotify — off Swift's
/// cooperative pool, whose few threads must never block (NIO's `NIOThreadPool` is the model): a named thread of
/// its own that runs, one after the other, closures handed to ``execute(_:)`` and, as a `TaskExecutor`, the jobs of
/// async code that prefers it (`withTaskExecutorPreference`). Blocking C calls made from such code block this
/// thread only.
///
/// Most callers use ``run(name:_:onCancel:)`` (a blocking body, awaited) or ``withThread(name:_:)`` (async code
/// that calls blocking functions). Stopping is cancellation: when the awaiting task is cancelled, `onCancel` runs
/// once, on the cancelling thread, and must make the blocking body return soon — by signalling the ``Wakeup`` it
/// waits on, or setting a flag it polls between batches.
///
/// The thread sleeps on a ``Wakeup`` when it has nothing to run and ends after ``finish()`` once its queue is empty.
public final class DedicatedThread: TaskExecutor {
    /// The stack of every dedicated thread: ResNet forward passes and OpenSlide decoders need more than the
    /// 512 KiB a Foundation thread gets by default.
    public static let stackSize = 16 << 20

    private enum Work {
        case job(UnownedJob)
        case closure(@Sendable () -> Void)
    }

    private struct State {
        var queue: [Work] = []
        var finishing = false
        var ended = false
    }

    /// The thread's name, as `top -H` and the journal's thread field show it.
    public let name: String
    private let state = Mutex(State())
    /// Wakes the thread when work arrives or ``finish()`` is called.
    private let workArrived = Wakeup()
    /// Wakes ``join()`` when the thread has ended.
    private let threadEnded = Wakeup()

    /// Starts the thread; it waits for work.
    public init(name: String) {
        self.name = name
        // The thread keeps `self` alive until it ends.
        let thread = Thread { self.loop() }
        thread.name = name
        thread.stackSize = Self.stackSize
        thread.start()
    }

    /// Runs `body` on the thread, after what is already queued.
    public func execute(_ body: @escaping @Sendable () -> Void) { add(.closure(body)) }

    public func enqueue(_ job: consuming ExecutorJob) { add(.job(UnownedJob(job))) }

    /// Lets the thread end once its queue is empty.
    public func finish() {
        state.withLock { $0.finishing = true }
        workArrived.signal()
    }

    /// Blocks until the thread has ended (after ``finish()``). From a thread of your own, not from async code.
    public func join() {
        while !state.withLock({ $0.ended }) { threadEnded.wait() }
    }

    private func add(_ work: Work) {
        state.withLock { $0.queue.append(work) }
        workArrived.signal()
    }

    private func loop() {
        // A new thread inherits its creator's kernel name (what `top -H` shows) until it sets its own, which
        // Foundation does only for the current thread; Linux keeps 15 bytes of it.
        Thread.current.name = name
        Thread.current.threadDictionary[Self.nameKey] = name
        while true {
            let (batch, finishing) = state.withLock { state in
                defer { state.queue = [] }
                return (state.queue, state.finishing)
            }
            if batch.isEmpty {
                if finishing { break }
                workArrived.wait()
                continue
            }
            for work in batch {
                switch work {
                case .job(let job): job.runSynchronously(on: asUnownedTaskExecutor())
                case .closure(let body): body()
                }
            }
        }
        state.withLock { $0.ended = true }
        threadEnded.signal()
    }

    private static let nameKey = "csmil.dedicated-thread"

    /// The name of the dedicated thread running the caller; nil on any other thread. (Synchronous: async code
    /// cannot ask which thread it is on.)
    public static var currentName: String? { Thread.current.threadDictionary[nameKey] as? String }

    // MARK: - The common uses

    /// Runs async `body` with a dedicated thread named `name` as its executor: everything it does between
    /// suspension points — blocking C calls included — runs on that thread. The thread ends when `body` returns.
    public static func withThread<Result>(
        name: String, _ body: () async throws -> Result
    ) async rethrows -> Result {
        let thread = DedicatedThread(name: name)
        defer { thread.finish() }
        return try await withTaskExecutorPreference(thread) {
            // The preference takes effect when the task is next scheduled: suspend once, so that even code with
            // no suspension point of its own runs on the thread.
            await Task.yield()
            return try await body()
        }
    }

    /// Runs the blocking `body` on a dedicated thread named `name` and returns what it returns. When the calling
    /// task is cancelled, `onCancel` is called (once, from the cancelling thread) and must make `body` return soon.
    @discardableResult
    public static func run<Result>(
        name: String, _ body: () throws -> Result, onCancel: @escaping @Sendable () -> Void = {}
    ) async throws -> Result {
        try await withThread(name: name) {
            try await withTaskCancellationHandler {
                try body()
            } onCancel: {
                onCancel()
            }
        }
    }
}
