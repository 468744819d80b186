import Testing

@testable import Store

/// The job lifecycle as a pure type: the daemon spec's states and the transitions between them, without a database.
@Suite("Job lifecycle")
struct JobLifecycleTests {
    @Test("the spec's path: discovered → settled → processing → reported → delivered, each step one transition")
    func specPath() {
        var state: JobState? = nil
        for (transition, expected) in [
            (JobTransition.discover, JobState.discovered), (.settle, .settled), (.claim, .processing),
            (.renew, .processing), (.complete, .reported), (.deliver, .delivered),
        ] {
            let next = JobLifecycle.next(transition, from: state)
            #expect(next == expected, "\(transition) from \(state.map(\.rawValue) ?? "none")")
            state = next
        }
        #expect(
            JobState.allCases.map(\.rawValue) == [
                "discovered", "settled", "processing", "reported", "delivered", "failed",
            ])
    }

    @Test("every transition has a rule, and every state can be reached from a file first seen")
    func complete() {
        for transition in JobTransition.allCases { #expect(JobLifecycle.rules[transition] != nil, "\(transition)") }
        var reached: Set<JobState> = []
        var frontier: [JobState?] = [nil]
        while let state = frontier.popLast() {
            for transition in JobTransition.allCases {
                if let next = JobLifecycle.next(transition, from: state), reached.insert(next).inserted {
                    frontier.append(next)
                }
            }
        }
        #expect(reached == Set(JobState.allCases))
    }

    @Test(
        "what may not happen: no report without a claim, no delivery before the report, only a requeue leaves delivered"
    )
    func refused() {
        let refused: [(JobTransition, JobState?)] = [
            (.complete, .settled), (.complete, .discovered), (.complete, .failed), (.complete, nil),
            (.deliver, .processing), (.deliver, .settled), (.claim, .reported), (.claim, .processing),
            (.takeOver, .settled), (.renew, .settled), (.retry, .reported), (.release, .settled),
            (.discard, .reported), (.discard, .delivered), (.settle, .processing), (.reject, .reported),
            (.giveUp, .delivered),
        ]
        for (transition, state) in refused {
            #expect(!JobLifecycle.allows(transition, from: state), "\(transition) from \(state?.rawValue ?? "none")")
        }
        for transition in JobTransition.allCases where transition != .requeue {
            #expect(JobLifecycle.next(transition, from: .delivered) == nil, "\(transition) leaves delivered")
        }
        // Only an operator's `csmil requeue` does, and never a slide being scored.
        #expect(JobLifecycle.next(.requeue, from: .delivered) == .settled)
        #expect(!JobLifecycle.allows(.requeue, from: .processing) && !JobLifecycle.allows(.requeue, from: .settled))
    }

    @Test("a claim counts an attempt, a release gives it back, a takeover counts one more")
    func attempts() {
        #expect(JobLifecycle.rule(.claim).attempts == 1)
        #expect(JobLifecycle.rule(.takeOver).attempts == 1)
        #expect(JobLifecycle.rule(.release).attempts == -1)
        #expect(JobLifecycle.rule(.retry).attempts == 0)
    }

    @Test("the SQL guards are built from the table")
    func sqlGuards() {
        #expect(JobLifecycle.sqlSources(.discard) == "'settled', 'processing'")
        #expect(JobLifecycle.sqlSources(.deliver) == "'reported'")
        #expect(JobLifecycle.sql(JobState.live) == "'settled', 'processing', 'reported', 'delivered'")
    }
}
