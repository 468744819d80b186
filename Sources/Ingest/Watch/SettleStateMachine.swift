/// What a probe of a quiet unit found (``WatchFolder/Probe``).
public enum ProbeOutcome: Sendable, Equatable {
    /// OpenSlide opens it and reads its smallest level: a slide, ready to score.
    case slide
    /// Not a slide, or a damaged one: reported once, not probed again until it changes.
    /// `code` is stable (``SlideError/Code``'s raw values); `reason` names the file and the fix.
    case rejected(code: String, reason: String)
    /// The file went away while it was probed.
    case gone
}

/// Decides when a watch unit (a slide file or a slide set) is settled, as a plain state machine:
/// no threads, no I/O, no clock of its own. The watch loop feeds it snapshots with the time they
/// were taken (`now`, monotonic seconds) and performs the actions it returns; tests drive it with
/// a fake clock.
///
/// A unit is *waiting* from the first time it is seen or seen changed, *probing* once the same
/// snapshot was seen again `settleSeconds` later, then *settled* (delivered) or *rejected*
/// (reported with the reason). Settled and rejected units are remembered with their snapshot, so
/// nothing is delivered twice in one run unless it changes; a change puts the unit back to
/// waiting, with a new quiet period. A unit seen gone (nil snapshot) is forgotten.
///
/// Deadlines: re-timing only ever moves a unit's deadline later and `now` never decreases, so the
/// waiting units' deadlines are kept in a first-in first-out list in deadline order; entries made
/// stale by a re-time or a removal are skipped when they reach the front.
struct SettleStateMachine: Sendable {
    /// Something the watch loop must do.
    enum Action: Equatable, Sendable {
        /// Probe the unit (OpenSlide opens it and reads its smallest level), then report the
        /// outcome and a fresh snapshot to ``probeFinished(_:probed:outcome:after:now:)``.
        case probe(String, UnitSnapshot)
        /// Deliver the unit as a settled slide.
        case settled(String, UnitSnapshot)
        /// Report the unit as rejected with its reason.
        case rejected(String, UnitSnapshot, code: String, reason: String)
    }

    enum Phase: Equatable, Sendable {
        /// Seen with this snapshot since `since`; due at `since + settleSeconds`.
        case waiting(since: Double)
        /// Handed out for probing.
        case probing
        /// Delivered.
        case settled
        /// Reported as not a slide.
        case rejected
    }

    struct Entry: Equatable, Sendable {
        var snapshot: UnitSnapshot
        var phase: Phase
    }

    /// How long a snapshot must stay the same.
    let settleSeconds: Double
    private(set) var entries: [String: Entry] = [:]
    /// (unit, since) in deadline order, from `head` on.
    private var deadlines: [(unit: String, since: Double)] = []
    private var head = 0

    init(settleSeconds: Double) {
        precondition(settleSeconds >= 0 && settleSeconds.isFinite)
        self.settleSeconds = settleSeconds
    }

    /// The unit was looked at: `snapshot` is its state now, nil when it is gone.
    ///
    /// Returns `.probe` when the unit is waiting, unchanged, and has been for `settleSeconds`.
    mutating func observe(_ unit: String, _ snapshot: UnitSnapshot?, now: Double) -> Action? {
        guard let snapshot else {
            set(unit, nil)
            return nil
        }
        guard let entry = entries[unit] else {
            wait(unit, snapshot, now: now)
            return nil
        }
        guard entry.snapshot == snapshot else {
            wait(unit, snapshot, now: now)
            return nil
        }
        // The same comparison as `dueUnits`: `now - since >= settleSeconds` can round the other way and leave a
        // unit handed out as due but never probed.
        guard case .waiting(let since) = entry.phase, since + settleSeconds <= now else { return nil }
        set(unit, phase: .probing)
        return .probe(unit, snapshot)
    }

    /// The probe of `unit` (taken at snapshot `probed`) finished with `outcome`; `after` is the
    /// unit's snapshot taken after the probe. A unit that changed meanwhile waits again and one
    /// that went away is forgotten, whatever the probe said.
    mutating func probeFinished(
        _ unit: String, probed: UnitSnapshot, outcome: ProbeOutcome, after: UnitSnapshot?, now: Double
    ) -> Action? {
        guard let entry = entries[unit], entry.phase == .probing, entry.snapshot == probed else { return nil }
        guard let after, outcome != .gone else {
            set(unit, nil)
            return nil
        }
        guard after == probed else {
            wait(unit, after, now: now)
            return nil
        }
        switch outcome {
        case .slide:
            set(unit, phase: .settled)
            return .settled(unit, probed)
        case .rejected(let code, let reason):
            set(unit, phase: .rejected)
            return .rejected(unit, probed, code: code, reason: reason)
        case .gone:
            return nil
        }
    }

    /// The waiting units whose quiet period has ended by `now`, in deadline order: look at each
    /// again (``observe(_:_:now:)``). Each is handed out once per quiet period.
    mutating func dueUnits(now: Double) -> [String] {
        var due: [String] = []
        while head < deadlines.count, deadlines[head].since + settleSeconds <= now {
            let (unit, since) = deadlines[head]
            head += 1
            if entries[unit]?.phase == .waiting(since: since) { due.append(unit) }
        }
        compact()
        return due
    }

    /// When the earliest waiting unit is due; nil when none is waiting.
    mutating func nextDeadline() -> Double? {
        while head < deadlines.count {
            let (unit, since) = deadlines[head]
            if entries[unit]?.phase == .waiting(since: since) { return since + settleSeconds }
            head += 1
        }
        compact()
        return nil
    }

    /// The known units below `folder` (for a folder that was moved or deleted).
    func units(below folder: String) -> [String] {
        let prefix = folder.hasSuffix("/") ? folder : folder + "/"
        return entries.keys.filter { $0.hasPrefix(prefix) }
    }

    /// Units waiting for their quiet period to end or being probed (kept up to date, for status).
    private(set) var pendingCount = 0

    private mutating func wait(_ unit: String, _ snapshot: UnitSnapshot, now: Double) {
        set(unit, Entry(snapshot: snapshot, phase: .waiting(since: now)))
        deadlines.append((unit, now))
    }

    /// Changes or removes an entry, keeping ``pendingCount`` right.
    private mutating func set(_ unit: String, _ entry: Entry?) {
        func pending(_ entry: Entry?) -> Int {
            guard let entry, entry.phase != .settled, entry.phase != .rejected else { return 0 }
            return 1
        }
        pendingCount += pending(entry) - pending(entries[unit])
        entries[unit] = entry
    }

    /// Changes the phase of an existing entry.
    private mutating func set(_ unit: String, phase: Phase) {
        guard var entry = entries[unit] else { return }
        entry.phase = phase
        set(unit, entry)
    }

    /// Drops the consumed front of the deadline list once it is at least half of it.
    private mutating func compact() {
        if head > 64 && head * 2 >= deadlines.count {
            deadlines.removeFirst(head)
            head = 0
        }
    }
}
