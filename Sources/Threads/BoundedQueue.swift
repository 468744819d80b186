import Foundation

/// A blocking first-in first-out queue of at most `capacity` items, joining two threads of a
/// pipeline (daemon spec "Bounded streaming"): ``put(_:)`` blocks while the queue is full, so a slow
/// consumer slows the producer instead of growing memory; ``take()`` blocks while it is empty.
///
/// Meant for threads of our own (OpenSlide reads, BLAS), never for Swift's cooperative pool, whose
/// threads must not block. One lock and its condition variable (`NSCondition`) guard the state;
/// every change wakes all waiters, which re-check their condition. (The condition variable is the
/// queue's own lock, not a wake-up: ``Wakeup`` wakes one waiting thread, a queue may have several.)
///
/// `@unchecked Sendable`: every stored property is read and written only while `condition` is locked.
public final class BoundedQueue<Element>: @unchecked Sendable {
    /// The most items the queue holds at once.
    public let capacity: Int
    private let condition = NSCondition()
    private var items: [Element?]
    private var head = 0
    private var count = 0
    private var closed = false
    private var blocked = 0

    /// Makes an empty, open queue holding at most `capacity` (≥ 1) items.
    public init(capacity: Int) {
        precondition(capacity >= 1, "a bounded queue needs room for at least one item")
        self.capacity = capacity
        items = Array(repeating: nil, count: capacity)
    }

    /// Appends an item, blocking while the queue is full. Returns false (dropping the item) when the
    /// queue is or becomes closed: the consumer has gone away and the producer should stop.
    @discardableResult
    public func put(_ item: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while count == capacity && !closed {
            blocked += 1
            condition.wait()
            blocked -= 1
        }
        guard !closed else { return false }
        items[(head + count) % capacity] = item
        count += 1
        condition.broadcast()
        return true
    }

    /// Removes the oldest item, blocking while the queue is empty and open. Returns nil once the queue
    /// is closed and drained.
    public func take() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while count == 0 && !closed { condition.wait() }
        guard count > 0 else { return nil }
        let item = items[head]
        items[head] = nil
        head = (head + 1) % capacity
        count -= 1
        condition.broadcast()
        return item
    }

    /// Closes the queue: blocked and later ``put(_:)`` calls return false, ``take()`` drains what is
    /// left and then returns nil. Closing twice is harmless.
    public func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// Threads blocked in ``put(_:)`` because the queue is full (for tests: the event "the producer is held
    /// back"; stale as soon as it returns).
    public var blockedProducers: Int {
        condition.lock()
        defer { condition.unlock() }
        return blocked
    }

    /// Items waiting now (for progress reports and tests; stale as soon as it returns).
    public var waiting: Int {
        condition.lock()
        defer { condition.unlock() }
        return count
    }
}
