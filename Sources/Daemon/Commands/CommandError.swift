import Errors

/// A command that cannot do what it was asked, before or beside any slide: a missing option, an input file it
/// cannot use, an output it cannot write, an outbox event that is not there. It names the option or file and the
/// fix; ArgumentParser prints it on stderr and exits 1.
struct CommandError: CSMILError, Sendable, Equatable {
    enum Code: String, ErrorCode {
        /// An option is missing or contradicts the configuration.
        case usage = "command.usage"
        /// An input file (a labels CSV, a features file, a tile image) cannot be used.
        case input = "command.input"
        /// An output file cannot be written.
        case unwritable = "command.unwritable"
        /// What the command should act on is not there (a job store, an outbox event).
        case notFound = "command.not_found"
    }

    var code: Code
    /// The option ("csmil score --notify") or file concerned.
    var subject: String
    var message: String
    var fix: String
}
