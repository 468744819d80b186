import Synchronization

/// The async code's wake-up: ``signal()`` from any thread or task wakes whoever awaits ``wait()``; a signal with
/// nobody waiting is kept (once) for the next wait, so a wake-up sent just before the wait starts is not lost.
/// Cancelling the waiting task ends the wait at once.
public final class AsyncSignal: Sendable {
    private struct State {
        var pending = false
        var nextID: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Wakes every waiter, or the next one to come.
    public func signal() {
        let woken = state.withLock { state in
            let waiters = state.waiters
            state.waiters = [:]
            if waiters.isEmpty { state.pending = true }
            return waiters
        }
        for waiter in woken.values { waiter.resume(returning: true) }
    }

    /// Returns at the next ``signal()`` (at once when one is pending) or when the task is cancelled; true when
    /// signalled.
    @discardableResult
    public func wait() async -> Bool {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now: Bool? = state.withLock { state in
                    if state.pending {
                        state.pending = false
                        return true
                    }
                    if Task.isCancelled { return false }
                    state.waiters[id] = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: false)
        }
    }

    /// Returns at the next ``signal()``, when `duration` has passed, or when the task is cancelled; true when
    /// signalled.
    @discardableResult
    public func wait(for duration: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.wait() }
            group.addTask {
                try? await Task.sleep(for: duration)
                return false
            }
            // The first to end cancels the other; a signal taken by the waiter as the sleep ended still counts.
            var signalled = false
            for await result in group {
                signalled = signalled || result
                group.cancelAll()
            }
            return signalled
        }
    }
}
