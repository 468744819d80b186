/// Everything wrong with a configuration file (or a model's `model.toml`), found in one pass so
/// an operator can fix all of it at once. Each problem names the file, the key and its line,
/// and says what to do.
struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable code per kind of problem, for tests and for `csmil doctor`.
    enum Code: String, Sendable {
        /// The file could not be read.
        case unreadable = "config.unreadable"
        /// The file is not valid TOML.
        case syntax = "config.syntax"
        /// A key the program does not know (often a typo).
        case unknownKey = "config.unknown_key"
        /// A value of the wrong TOML type.
        case wrongType = "config.wrong_type"
        /// A key that has no default and is absent.
        case missingKey = "config.missing_key"
        /// A well-typed value that cannot work (negative time, bad URL, …).
        case invalidValue = "config.invalid_value"
    }

    struct Problem: Sendable, Equatable, CustomStringConvertible {
        var code: Code
        /// The dotted key, e.g. "webhook.retry_max_seconds"; nil for file-level problems.
        var key: String?
        /// 1-based line in the file, when known.
        var line: Int?
        /// What is wrong.
        var message: String
        /// What to do about it.
        var fix: String

        var description: String {
            var text = ""
            if let line { text += "line \(line): " }
            if let key { text += "\(key): " }
            return text + message + " — " + fix
        }
    }

    /// The file the problems are in, as the user named it.
    var file: String
    var problems: [Problem]

    var description: String {
        if problems.count == 1 { return "\(file): \(problems[0])" }
        return "\(file): \(problems.count) problems\n" + problems.map { "  \($0)" }.joined(separator: "\n")
    }
}
