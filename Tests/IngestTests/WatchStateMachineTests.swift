import Testing

@testable import Ingest

/// The settle rules on their own: a fake clock (plain numbers) and made-up snapshots, no files, no threads.
@Suite("Watch: settle state machine")
struct WatchStateMachineTests {
    /// A snapshot of a single file of `size` bytes modified at `modified` seconds.
    func snapshot(_ size: Int64, modified: Int = 100, inode: UInt64 = 7) -> UnitSnapshot {
        UnitSnapshot(
            main: FileState(
                path: "/in/a.svs", size: size, modifiedSeconds: modified, modifiedNanoseconds: 0,
                changedSeconds: modified, changedNanoseconds: 0, inode: inode))
    }

    let unit = "/in/a.svs"

    @Test("a new file waits settle_seconds, is looked at again when due, and is probed only then")
    func waitsThenProbes() {
        var machine = SettleStateMachine(settleSeconds: 2)
        #expect(machine.observe(unit, snapshot(10), now: 0) == nil)
        #expect(machine.nextDeadline() == 2)
        #expect(machine.dueUnits(now: 1.9).isEmpty)
        #expect(machine.observe(unit, snapshot(10), now: 1.9) == nil, "not quiet long enough yet")
        #expect(machine.dueUnits(now: 2) == [unit])
        #expect(machine.observe(unit, snapshot(10), now: 2) == .probe(unit, snapshot(10)))
        #expect(machine.pendingCount == 1)
        #expect(machine.nextDeadline() == nil, "a unit being probed has no deadline")
    }

    @Test("a file that changes is re-timed from the change; a slow writer settles once, after its last write")
    func slowWriter() {
        var machine = SettleStateMachine(settleSeconds: 1)
        var probes: [Double] = []
        // The writer adds 100 bytes every 0.6 s (more than half the settle time) until t = 3.
        var size: Int64 = 0
        var time = 0.0
        var nextWrite = 0.0
        while time <= 8 {
            if nextWrite <= 3, time >= nextWrite {
                size += 100
                nextWrite += 0.6
            }
            // Events hint only at the start; afterwards the machine's deadlines drive the checks.
            let looks = time == 0 ? [unit] : machine.dueUnits(now: time)
            for looked in looks {
                if case .probe = machine.observe(looked, snapshot(size, modified: Int(size)), now: time) {
                    probes.append(time)
                }
            }
            time = (time * 10 + 1).rounded() / 10
        }
        #expect(probes.count == 1)
        // The last write was at t = 3.0; a check at most one settle period later sees it, so the
        // probe comes between 1 and 2 settle periods after it.
        #expect(probes.first.map { $0 >= 4.0 && $0 <= 5.0 } == true, "\(probes)")
    }

    @Test("a file deleted before it settles is forgotten: nothing is probed and nothing is due")
    func deletedBeforeSettled() {
        var machine = SettleStateMachine(settleSeconds: 1)
        _ = machine.observe(unit, snapshot(10), now: 0)
        #expect(machine.observe(unit, nil, now: 0.5) == nil)
        #expect(machine.entries.isEmpty)
        #expect(machine.dueUnits(now: 5).isEmpty)
        #expect(machine.nextDeadline() == nil)
        #expect(machine.pendingCount == 0)
    }

    @Test("a slide is delivered once; unchanged it is never probed again, changed it is a new version")
    func settledOnce() {
        var machine = SettleStateMachine(settleSeconds: 1)
        _ = machine.observe(unit, snapshot(10), now: 0)
        #expect(machine.observe(unit, snapshot(10), now: 1) == .probe(unit, snapshot(10)))
        let done = machine.probeFinished(unit, probed: snapshot(10), outcome: .slide, after: snapshot(10), now: 1.1)
        #expect(done == .settled(unit, snapshot(10)))
        #expect(machine.pendingCount == 0)
        for time in [2.0, 10, 100] {
            #expect(machine.observe(unit, snapshot(10), now: time) == nil, "rescans do not deliver it again")
        }
        #expect(machine.dueUnits(now: 1000).isEmpty)
        #expect(machine.observe(unit, snapshot(20, modified: 200), now: 1000) == nil, "changed: waits again")
        #expect(machine.pendingCount == 1)
        #expect(machine.dueUnits(now: 1001) == [unit])
        #expect(
            machine.observe(unit, snapshot(20, modified: 200), now: 1001) == .probe(unit, snapshot(20, modified: 200)))
    }

    @Test("a file that is not a slide is rejected once, with the reason, and not retried until it changes")
    func rejectedOnce() {
        var machine = SettleStateMachine(settleSeconds: 1)
        _ = machine.observe(unit, snapshot(10), now: 0)
        _ = machine.observe(unit, snapshot(10), now: 1)
        let outcome = ProbeOutcome.rejected(code: "slide.not_a_slide", reason: "/in/a.svs: is not a slide")
        let done = machine.probeFinished(unit, probed: snapshot(10), outcome: outcome, after: snapshot(10), now: 1)
        #expect(done == .rejected(unit, snapshot(10), code: "slide.not_a_slide", reason: "/in/a.svs: is not a slide"))
        #expect(machine.pendingCount == 0)
        for time in stride(from: 2.0, through: 60, by: 1) {
            #expect(machine.observe(unit, snapshot(10), now: time) == nil)
            #expect(machine.dueUnits(now: time).isEmpty)
        }
        // The file is written again (a re-export): it waits and is probed again.
        _ = machine.observe(unit, snapshot(30, modified: 300), now: 61)
        #expect(
            machine.observe(unit, snapshot(30, modified: 300), now: 62) == .probe(unit, snapshot(30, modified: 300)))
    }

    @Test("a file that changes while it is probed waits again instead of being delivered")
    func changedDuringProbe() {
        var machine = SettleStateMachine(settleSeconds: 1)
        _ = machine.observe(unit, snapshot(10), now: 0)
        _ = machine.observe(unit, snapshot(10), now: 1)
        let next = machine.probeFinished(unit, probed: snapshot(10), outcome: .slide, after: snapshot(11), now: 1.5)
        #expect(next == nil)
        #expect(machine.entries[unit]?.phase == .waiting(since: 1.5))
        #expect(machine.nextDeadline() == 2.5)
        #expect(machine.dueUnits(now: 2.5) == [unit])
        #expect(machine.observe(unit, snapshot(11), now: 2.5) == .probe(unit, snapshot(11)))
    }

    @Test("a file that goes away while it is probed is forgotten, whatever the probe said")
    func goneDuringProbe() {
        for outcome in [ProbeOutcome.slide, .gone, .rejected(code: "slide.not_a_slide", reason: "x")] {
            var machine = SettleStateMachine(settleSeconds: 1)
            _ = machine.observe(unit, snapshot(10), now: 0)
            _ = machine.observe(unit, snapshot(10), now: 1)
            let after: UnitSnapshot? = outcome == .gone ? snapshot(10) : nil
            #expect(machine.probeFinished(unit, probed: snapshot(10), outcome: outcome, after: after, now: 1) == nil)
            #expect(machine.entries.isEmpty)
        }
    }

    @Test("a stale probe result (for an older snapshot) is ignored")
    func staleProbe() {
        var machine = SettleStateMachine(settleSeconds: 1)
        _ = machine.observe(unit, snapshot(10), now: 0)
        _ = machine.observe(unit, snapshot(10), now: 1)
        _ = machine.observe(unit, snapshot(12), now: 1.2)
        #expect(
            machine.probeFinished(unit, probed: snapshot(10), outcome: .slide, after: snapshot(10), now: 1.3) == nil)
        #expect(machine.entries[unit]?.phase == .waiting(since: 1.2))
    }

    @Test("due units come out in deadline order, each once per quiet period; re-timed ones only at their new deadline")
    func deadlineOrder() {
        var machine = SettleStateMachine(settleSeconds: 1)
        _ = machine.observe("/in/a", snapshot(1), now: 0)
        _ = machine.observe("/in/b", snapshot(1), now: 0.2)
        _ = machine.observe("/in/c", snapshot(1), now: 0.4)
        _ = machine.observe("/in/a", snapshot(2), now: 0.5)  // re-timed: due at 1.5
        _ = machine.observe("/in/c", nil, now: 0.6)  // deleted
        #expect(machine.nextDeadline() == 1.2)
        #expect(machine.dueUnits(now: 1.4) == ["/in/b"])
        #expect(machine.dueUnits(now: 1.4).isEmpty, "handed out once")
        #expect(machine.nextDeadline() == 1.5)
        #expect(machine.dueUnits(now: 2) == ["/in/a"])
        #expect(machine.nextDeadline() == nil)
    }

    @Test("settle_seconds = 0: a file is probed the second time it is looked at, at once")
    func zeroSettle() {
        var machine = SettleStateMachine(settleSeconds: 0)
        #expect(machine.observe(unit, snapshot(10), now: 5) == nil)
        #expect(machine.dueUnits(now: 5) == [unit])
        #expect(machine.observe(unit, snapshot(10), now: 5) == .probe(unit, snapshot(10)))
    }

    @Test("thousands of units settle in one pass after an overflow rescan, none twice")
    func manyUnits() {
        var machine = SettleStateMachine(settleSeconds: 0.5)
        let units = (0..<5000).map { "/in/f\($0)" }
        for unit in units { _ = machine.observe(unit, snapshot(1), now: 0) }
        // A rescan looks at all of them again before they are due: nothing changes.
        for unit in units { #expect(machine.observe(unit, snapshot(1), now: 0.1) == nil) }
        let due = machine.dueUnits(now: 0.5)
        #expect(due == units)
        var settled = 0
        for unit in due {
            guard case .probe(let name, let probed)? = machine.observe(unit, snapshot(1), now: 0.5) else { continue }
            if case .settled = machine.probeFinished(name, probed: probed, outcome: .slide, after: probed, now: 0.6) {
                settled += 1
            }
        }
        #expect(settled == 5000)
        for unit in units { #expect(machine.observe(unit, snapshot(1), now: 9) == nil) }
        #expect(machine.pendingCount == 0)
    }
}
