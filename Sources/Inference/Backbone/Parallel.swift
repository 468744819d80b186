import Foundation

/// Splits memory-bound loops (Winograd transforms, im2col, bias and ReLU passes, pooling)
/// across the machine's cores. GEMMs are not run through this: OpenBLAS has its own threads.
public enum Parallel {
    /// The number of threads used: one per core the process may run on.
    public static let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Runs `body` over 0..<count split into contiguous ranges, one per thread (at most
    /// `threads`), and returns when all are done. Each range must write memory no other range
    /// touches. Small counts (fewer than `minimumPerWorker` per thread) run on the calling thread.
    static func ranges(
        _ count: Int, threads: Int = workers, minimumPerWorker: Int = 16, _ body: (Range<Int>) -> Void
    ) {
        let parts = min(threads, count / max(1, minimumPerWorker))
        guard parts > 1 else {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(value: body)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                shared.value((count * part / parts)..<(count * (part + 1) / parts))
            }
        }
    }
}

/// `@unchecked Sendable`: hands a value that is safe to share by construction (each thread writes its own part) to
/// other threads.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
}
