import Foundation
import Testing

@testable import Store

/// Leases, takeovers, attempts and the host registry, with injected clocks. Both backends.
@Suite("Leases and hosts")
struct LeaseAndHostTests {
    static let scored = JobResult(status: "scored", probability: 0.5, label: "x")

    @Test(
        "a host that stops renewing loses its slide to the next claim after the lease; its stale hand changes nothing",
        arguments: StoreBackend.allCases)
    func takeover(backend: StoreBackend) throws {
        let fixture = try backend.makeFixture()
        let hostA = try fixture.open()
        let hostB = try fixture.open()
        let job = try hostA.recordSettled(
            path: fixture.slide("a.svs"), fingerprint: "sha256:a", size: 1, modified: 1, now: 0
        ).job
        let claimA = try #require(try hostA.claimNext(now: 10, leaseSeconds: 30, holder: "a"))
        #expect(claimA.leaseHolder == "a" && claimA.leaseToken != nil)
        try hostA.renewLease(jobID: job.id, token: claimA.leaseToken, now: 20, leaseSeconds: 30)
        #expect(try hostB.claimNext(now: 49, leaseSeconds: 30, holder: "b") == nil, "renewed until 50")

        let claimB = try #require(try hostB.claimNext(now: 50, leaseSeconds: 30, holder: "b"))
        #expect(claimB.id == job.id && claimB.attempts == 2 && claimB.leaseHolder == "b")
        #expect(claimB.leaseToken != claimA.leaseToken)

        // A comes back: its renewal, release and retry are refused or change nothing.
        let lost = try #require(throws: JobStoreError.self) {
            try hostA.renewLease(jobID: job.id, token: claimA.leaseToken, now: 51, leaseSeconds: 30)
        }
        #expect(lost.code == .leaseLost && lost.message.contains("b"))
        #expect(try hostA.release(jobID: job.id, token: claimA.leaseToken, now: 52) == false)
        #expect(throws: JobStoreError.self) {
            try hostA.retryLater(jobID: job.id, token: claimA.leaseToken, code: "c", message: "m", now: 53)
        }
        #expect(try hostB.job(id: job.id)?.leaseHolder == "b")

        // A had finished the slide: its result is kept, and B's completion then finds it reported.
        try hostA.complete(
            jobID: job.id, eventID: "evt_a", reportDirectory: "/r/a", result: Self.scored, outbox: [], now: 54)
        try hostB.complete(
            jobID: job.id, eventID: "evt_a", reportDirectory: "/r/a", result: Self.scored, outbox: [], now: 60)
        let reported = try #require(try hostB.job(id: job.id))
        #expect(reported.state == .reported && reported.finishedAt == 54 && reported.leaseHolder == nil)
        let attempts = try hostB.attempts(jobID: job.id)
        #expect(attempts.map(\.host) == ["a", "b"])
        #expect(attempts.map(\.outcome) == [.leaseExpired, .reported])
        #expect(attempts.map(\.attempt) == [1, 2])
        #expect(attempts[0].endedAt == 50)
    }

    @Test(
        "a host restarting after a crash expires its own leases at once, not other hosts'",
        arguments: StoreBackend.allCases)
    func expireOwnLeases(backend: StoreBackend) throws {
        let fixture = try backend.makeFixture()
        let store = try fixture.open()
        for name in ["a", "b"] {
            _ = try store.recordSettled(
                path: fixture.slide("\(name).svs"), fingerprint: "sha256:\(name)", size: 1, modified: 1, now: 0)
            _ = try store.claimNext(now: 1, leaseSeconds: 600, holder: "host-\(name)")
        }
        #expect(try store.expireLeases(holder: "host-a", now: 5) == 1)
        let again = try #require(try store.claimNext(now: 5, leaseSeconds: 600, holder: "host-a"))
        #expect(again.path == fixture.slide("a.svs") && again.attempts == 2)
        #expect(try store.claimNext(now: 5, leaseSeconds: 600, holder: "host-a") == nil, "host-b's lease holds")
        #expect(try store.attempts(jobID: again.id).map(\.outcome) == [.interrupted, nil])
    }

    @Test(
        "a host restarting after a kill mid-send gives back its own outbox claims at once, not other hosts'",
        arguments: StoreBackend.allCases)
    func releaseOwnOutboxClaims(backend: StoreBackend) throws {
        let outbox = Outbox(database: try backend.makeFixture().connect())
        let destinations = [OutboxMessage.webhook: "https://lis.example.org/in"]
        for (id, slide) in [("evt_a", "sha256:a"), ("evt_b", "sha256:b")] {
            try outbox.enqueue(
                OutboxMessage(
                    eventID: id, slideKey: slide, eventType: "slide.scored", destination: OutboxMessage.webhook,
                    contentType: "application/json", body: Array("{}".utf8)), now: 0)
        }
        let a = try #require(
            try outbox.claimNextDue(now: 1, destinations: destinations, holder: "host-a", leaseSeconds: 1250))
        let b = try #require(
            try outbox.claimNextDue(now: 1, destinations: destinations, holder: "host-b", leaseSeconds: 1250))
        #expect(
            try outbox.claimNextDue(now: 2, destinations: destinations, holder: "host-a", leaseSeconds: 1250) == nil)
        #expect(try outbox.releaseClaims(holder: "host-a") == 1)
        let again = try #require(
            try outbox.claimNextDue(now: 2, destinations: destinations, holder: "host-a", leaseSeconds: 1250))
        #expect(again.message.eventID == a.message.eventID && again.attempts == 0, "the same row, no attempt recorded")
        #expect(try outbox.row(eventID: b.message.eventID)?.leaseHolder == "host-b", "host-b's claim holds")
    }

    @Test("a clean shutdown gives the claim back uncounted, and forgets its attempt", arguments: StoreBackend.allCases)
    func release(backend: StoreBackend) throws {
        let fixture = try backend.makeFixture()
        let store = try fixture.open()
        _ = try store.recordSettled(path: fixture.slide("a.svs"), fingerprint: "sha256:a", size: 1, modified: 1, now: 0)
        let claim = try #require(try store.claimNext(now: 1, leaseSeconds: 60, holder: "a"))
        #expect(try store.release(jobID: claim.id, token: claim.leaseToken, now: 2))
        #expect(try store.attempts(jobID: claim.id).isEmpty)
        let job = try #require(try store.job(id: claim.id))
        #expect(job.state == .settled && job.attempts == 0 && job.leaseHolder == nil && job.leaseToken == nil)
    }

    @Test(
        "host names: one live process per name; its own restart takes over; heartbeats renew leases and report lost ones",
        arguments: StoreBackend.allCases)
    func hosts(backend: StoreBackend) throws {
        let fixture = try backend.makeFixture()
        let store = try fixture.open()
        try store.registerHost(
            name: "scanner-1", instance: "i1", machine: "m1:/state", pid: 100, version: "1", leaseSeconds: 30, now: 0)
        // Another machine under the same name while the first one's heartbeat is fresh: refused.
        let refused = try #require(throws: JobStoreError.self) {
            try store.registerHost(
                name: "scanner-1", instance: "i2", machine: "m2:/state", pid: 200, version: "1", leaseSeconds: 30,
                now: 10)
        }
        #expect(
            refused.code == .hostNameInUse && refused.message.contains("pid 100") && refused.fix.contains("host_name"))
        // The same machine and state folder is its own restart (the folder lock says the old process is gone).
        try store.registerHost(
            name: "scanner-1", instance: "i3", machine: "m1:/state", pid: 101, version: "1", leaseSeconds: 30, now: 11)
        #expect(throws: JobStoreError.self) {
            try store.heartbeat(host: "scanner-1", instance: "i1", status: "x", leases: [], now: 12, leaseSeconds: 30)
        }

        _ = try store.recordSettled(path: fixture.slide("a.svs"), fingerprint: "sha256:a", size: 1, modified: 1, now: 0)
        _ = try store.recordSettled(path: fixture.slide("b.svs"), fingerprint: "sha256:b", size: 1, modified: 1, now: 0)
        let a = try #require(try store.claimNext(now: 12, leaseSeconds: 30, holder: "scanner-1"))
        let b = try #require(try store.claimNext(now: 12, leaseSeconds: 30, holder: "scanner-1"))
        // b's lease runs out and scanner-2 takes it over; scanner-1's next heartbeat learns it.
        let taken = try #require(try store.claimNext(now: 42, leaseSeconds: 30, holder: "scanner-2"))
        #expect(taken.id == a.id, "a's lease ran out first")
        let lost = try store.heartbeat(
            host: "scanner-1", instance: "i3", status: "scoring b.svs",
            leases: [
                JobLease(jobID: a.id, token: a.leaseToken ?? ""), JobLease(jobID: b.id, token: b.leaseToken ?? ""),
            ],
            now: 42, leaseSeconds: 30)
        #expect(lost == [a.id])
        #expect(try store.job(id: b.id)?.leaseUntil == 72)

        try store.registerHost(
            name: "scanner-2", instance: "j1", machine: "m2:/state", pid: 300, version: "1", leaseSeconds: 30, now: 42)
        var hosts = try store.hosts(now: 50)
        #expect(hosts.map(\.name) == ["scanner-1", "scanner-2"])
        #expect(hosts.map(\.alive) == [true, true])
        #expect(hosts[0].status == "scoring b.svs" && hosts[0].processing == ["b.svs"] && hosts[0].pid == 101)
        #expect(hosts[1].processing == ["a.svs"])
        try store.stopHost(name: "scanner-2", instance: "j1", now: 51)
        hosts = try store.hosts(now: 80)
        #expect(hosts.map(\.alive) == [false, false], "scanner-1 silent past its lease, scanner-2 stopped")
        #expect(hosts[1].stoppedAt == 51)
        #expect(try store.summary(now: 80).hosts == hosts)
        // Once scanner-1 is silent past its lease, another machine may take the name.
        try store.registerHost(
            name: "scanner-1", instance: "k1", machine: "m9:/state", pid: 900, version: "1", leaseSeconds: 30, now: 80)
    }
}
