import Synchronization
import Testing
import Threads

@Suite("Bounded queue")
struct BoundedQueueTests {
    /// Blocks until `condition` holds, looking again after each short pause: waiting for an event, with no
    /// deadline of its own (the test's time limit is the only one).
    static func waitUntil(_ condition: () -> Bool) async {
        while !condition() { try? await Task.sleep(for: .milliseconds(2)) }
    }

    @Test("a consumer that does not take blocks the producer after capacity items")
    func fullQueueBlocksProducer() async throws {
        let queue = BoundedQueue<Int>(capacity: 3)
        let produced = Atomic(0)
        let producer = DedicatedThread(name: "test-producer")
        producer.execute {
            for item in 0..<20 {
                queue.put(item)
                produced.add(1, ordering: .sequentiallyConsistent)
            }
            queue.close()
        }
        producer.finish()
        // The event: the producer is held back in put. Then exactly `capacity` items are in.
        await Self.waitUntil { queue.blockedProducers == 1 }
        let producedWhenBlocked = produced.load(ordering: .sequentiallyConsistent)
        #expect(producedWhenBlocked == 3)
        #expect(queue.waiting == 3)
        let (taken, mostAhead) = try await DedicatedThread.run(name: "test-consumer") {
            var taken: [Int] = []
            var mostAhead = 0
            while let item = queue.take() {
                taken.append(item)
                mostAhead = max(mostAhead, produced.load(ordering: .sequentiallyConsistent) - taken.count)
            }
            producer.join()
            return (taken, mostAhead)
        }
        #expect(taken == Array(0..<20))
        #expect(mostAhead <= 3 + 1, "the producer never gets more than capacity items (plus the one in hand) ahead")
    }

    @Test("close wakes a blocked producer and lets the consumer drain what is left")
    func closeUnblocks() async throws {
        let queue = BoundedQueue<Int>(capacity: 1)
        queue.put(1)
        let refused = Atomic(false)
        let producer = DedicatedThread(name: "test-producer")
        producer.execute { refused.store(!queue.put(2), ordering: .sequentiallyConsistent) }
        producer.finish()
        await Self.waitUntil { queue.blockedProducers == 1 }
        queue.close()
        try await DedicatedThread.run(name: "test-join") { producer.join() }
        let wasRefused = refused.load(ordering: .sequentiallyConsistent)
        #expect(wasRefused, "put on a closed queue returns false")
        #expect(queue.take() == 1)
        #expect(queue.take() == nil)
    }
}
