import Errors

/// One line of `csmil doctor`'s answer: what was checked, what was found and, when something is
/// wrong, what to do about it.
struct Finding: Sendable, Equatable {
    enum Severity: String, Sendable, Comparable {
        /// Works as expected.
        case ok
        /// Works, but worse than it could (slower CPU path, little disk left).
        case warning
        /// Will not work: `csmil doctor` exits non-zero.
        case problem

        private var rank: Int { self == .ok ? 0 : self == .warning ? 1 : 2 }
        static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
    }

    var severity: Severity
    /// What was checked, e.g. "OpenBLAS" or "[watch] directory".
    var subject: String
    /// What was found.
    var detail: String
    /// What to do; set for warnings and problems.
    var fix: String?
    /// The code of the error behind a problem, when an error was found (`model.wrong_shape`, `config.unknown_key`).
    var code: String?

    static func ok(_ subject: String, _ detail: String) -> Finding {
        Finding(severity: .ok, subject: subject, detail: detail, fix: nil)
    }

    static func warning(_ subject: String, _ detail: String, fix: String) -> Finding {
        Finding(severity: .warning, subject: subject, detail: detail, fix: fix)
    }

    static func problem(_ subject: String, _ detail: String, fix: String, code: String? = nil) -> Finding {
        Finding(severity: .problem, subject: subject, detail: detail, fix: fix, code: code)
    }

    /// A problem found as an error: its subject and message as the detail, its fix and its code.
    static func problem(_ subject: String, _ error: any CSMILError) -> Finding {
        let detail = error.subject.isEmpty ? error.message : "\(error.subject): \(error.message)"
        return .problem(subject, detail, fix: error.fix, code: error.code.rawValue)
    }
}
