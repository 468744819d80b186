import Foundation
import Synchronization
import Testing
import Threads

/// The name of the dedicated thread running the caller, if any.
func currentThreadName() -> String? { DedicatedThread.currentName }

@Suite("Dedicated threads and wake-ups")
struct DedicatedThreadTests {
    @Test("a blocking body runs on a named thread of its own and returns its value")
    func runsOnItsOwnThread() async throws {
        let name = try await DedicatedThread.run(name: "csmil-test-one") { currentThreadName() }
        #expect(name == "csmil-test-one")
    }

    @Test("async code that prefers a dedicated thread runs its blocking calls there, across suspensions")
    func asyncCodeRunsThere() async throws {
        let names = await DedicatedThread.withThread(name: "csmil-test-exec") {
            let before = currentThreadName()
            try? await Task.sleep(for: .milliseconds(1))
            return [before, currentThreadName()]
        }
        #expect(names == ["csmil-test-exec", "csmil-test-exec"])
    }

    @Test("cancelling the awaiting task calls onCancel, which makes the blocking body return")
    func cancellationStopsTheBody() async throws {
        let wakeup = Wakeup()
        let started = Wakeup()
        let task = Task {
            try await DedicatedThread.run(name: "csmil-test-blocked") {
                started.signal()
                return wakeup.wait()
            } onCancel: {
                wakeup.signal()
            }
        }
        // The event: the body is blocked in its wait. Cancelling must end it (no timeout involved).
        _ = try await DedicatedThread.run(name: "csmil-test-started") { started.wait() }
        task.cancel()
        #expect(try await task.value == true, "the body was woken by onCancel")
    }

    @Test("a thread ends after finish once its queue is empty, and join waits for that")
    func finishAndJoin() async throws {
        let thread = DedicatedThread(name: "csmil-test-queue")
        let log = Mutex<[Int]>([])
        for item in 0..<5 { thread.execute { log.withLock { $0.append(item) } } }
        thread.finish()
        try await DedicatedThread.run(name: "csmil-test-join") { thread.join() }
        #expect(log.withLock { $0 } == [0, 1, 2, 3, 4])
    }

    @Test("a wake-up wakes a waiting thread; signals before the wait are not lost; a timeout says so")
    func wakeup() {
        let wakeup = Wakeup()
        #expect(wakeup.wait(timeout: 0) == false)
        wakeup.signal()
        wakeup.signal()
        #expect(wakeup.wait(timeout: 0) == true, "a signal sent before the wait wakes it")
        #expect(wakeup.wait(timeout: 0) == false, "signals do not queue up")
    }

    @Test("an async signal wakes its waiter, is kept when nobody waits, and a cancelled wait returns false")
    func asyncSignal() async {
        let signal = AsyncSignal()
        signal.signal()
        #expect(await signal.wait() == true, "a signal with nobody waiting is kept for the next wait")
        #expect(await signal.wait(for: .zero) == false)
        let waiter = Task { await signal.wait() }
        waiter.cancel()
        #expect(await waiter.value == false)
        let woken = Task { await signal.wait(for: .seconds(3600)) }
        signal.signal()
        #expect(await woken.value == true)
    }
}
