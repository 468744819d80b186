/// The job lifecycle in one place: which change (a ``JobTransition``) may happen to a job in which state, and the
/// state it leads to. Pure: no database, no clock; the backends ask it before they write, and build the state
/// lists of their SQL guards from it (``JobLifecycle/sql(_:)``), so a transition cannot be allowed by one and
/// refused by another.
///
/// ```
/// (none) ──discover──▶ discovered ──settle──▶ settled ──claim──▶ processing ──complete──▶ reported ──deliver──▶ delivered
///                         ▲                    ▲  ▲                │ │ │ │
///                         └──────discard───────┼──┼────────────────┘ │ │ └──giveUp──▶ failed ◀──reject── (none),
///                                              │  └─release, retry───┘ │                               discovered
///                                              └──────takeOver─────────┘ (another claim after the lease expired)
/// ```
///
/// Extending it (a state in which a job waits for a resource, a `requeue` of a finished job) is a case here and a
/// row in ``rules``; the backends pick the new state lists up from ``sources(_:)``.
public enum JobTransition: String, Sendable, CaseIterable {
    /// A file was seen, not yet quiet: a discovered row (or its size and mtime updated).
    case discover
    /// Quiet and fingerprinted: queued.
    case settle
    /// A worker takes a due settled job, under a lease; one more attempt.
    case claim
    /// A worker takes a processing job whose lease expired (its holder died): one more attempt.
    case takeOver
    /// The holder extends its lease (heartbeat).
    case renew
    /// The report is written: reported, its outbox rows queued in the same transaction.
    case complete
    /// Every outbox row of its event was delivered.
    case deliver
    /// A transient failure with attempts left: back in the queue after a backoff.
    case retry
    /// A transient failure with no attempts left.
    case giveUp
    /// Clean shutdown: the claim is given back and not counted.
    case release
    /// The file changed while it was queued or scored: back to discovered, the fingerprint forgotten.
    case discard
    /// Not a slide: one failed record per path.
    case reject
    /// An operator asks for a finished or failed job to be scored again (`csmil requeue`): back in the queue,
    /// attempts, result and last error cleared.
    case requeue
}

/// See ``JobTransition``.
public enum JobLifecycle {
    /// One rule: the states a transition may start from (nil: no job row yet) and the state it leads to.
    public struct Rule: Sendable, Equatable {
        public var from: [JobState?]
        public var to: JobState
        /// How the job's attempt count changes.
        public var attempts: Int
    }

    /// The table.
    public static let rules: [JobTransition: Rule] = [
        .discover: Rule(from: [nil, .discovered], to: .discovered, attempts: 0),
        .settle: Rule(from: [nil, .discovered], to: .settled, attempts: 0),
        .claim: Rule(from: [.settled], to: .processing, attempts: +1),
        .takeOver: Rule(from: [.processing], to: .processing, attempts: +1),
        .renew: Rule(from: [.processing], to: .processing, attempts: 0),
        .complete: Rule(from: [.processing], to: .reported, attempts: 0),
        .deliver: Rule(from: [.reported], to: .delivered, attempts: 0),
        .retry: Rule(from: [.processing], to: .settled, attempts: 0),
        .giveUp: Rule(from: [.processing], to: .failed, attempts: 0),
        .release: Rule(from: [.processing], to: .settled, attempts: -1),
        .discard: Rule(from: [.settled, .processing], to: .discovered, attempts: 0),
        .reject: Rule(from: [nil, .discovered, .failed], to: .failed, attempts: 0),
        .requeue: Rule(from: [.failed, .reported, .delivered], to: .settled, attempts: 0),
    ]

    /// The rule of a transition.
    public static func rule(_ transition: JobTransition) -> Rule {
        guard let rule = rules[transition] else { preconditionFailure("no rule for \(transition)") }
        return rule
    }

    /// The state `transition` leads to from `state` (nil: a job not yet recorded), or nil when it is not allowed.
    public static func next(_ transition: JobTransition, from state: JobState?) -> JobState? {
        let rule = rule(transition)
        return rule.from.contains(state) ? rule.to : nil
    }

    /// Whether `transition` may happen to a job in `state`.
    public static func allows(_ transition: JobTransition, from state: JobState?) -> Bool {
        next(transition, from: state) != nil
    }

    /// The existing-row states `transition` may start from.
    public static func sources(_ transition: JobTransition) -> [JobState] {
        rule(transition).from.compactMap { $0 }
    }

    /// States as an SQL list for `IN (…)`: `'settled', 'processing'`.
    public static func sql(_ states: [JobState]) -> String {
        states.map { "'\($0.rawValue)'" }.joined(separator: ", ")
    }

    /// The states `transition` may start from, as an SQL list (the guard of an `UPDATE … WHERE state IN (…)`).
    public static func sqlSources(_ transition: JobTransition) -> String { sql(sources(transition)) }
}
