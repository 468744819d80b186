import Errors

/// Everything wrong with a configuration file (or a model's `model.toml`), found in one pass so
/// an operator can fix all of it at once. Each problem names the file, the key and its line,
/// and says what to do.
struct ConfigurationError: CSMILError, Sendable, Equatable {
    /// A stable code per kind of problem, for tests and for `csmil doctor`.
    enum Code: String, ErrorCode {
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
        /// A file the configuration names that cannot be used as it is (a TLS file missing, unreadable or not
        /// holding what its key needs); checked where the file is used (`csmil watch`, reload, delivery, doctor).
        case unusableFile = "config.unusable_file"
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

        /// "line 3: watch.x: ", or less when the line or the key is not known.
        var place: String {
            var text = ""
            if let line { text += "line \(line): " }
            if let key { text += "\(key): " }
            return text
        }

        var description: String { place + message + " — " + fix }
    }

    /// The file the problems are in, as the user named it.
    var file: String
    var problems: [Problem]

    /// The first problem's code (the problems are in file order).
    var code: Code { problems.first?.code ?? .invalidValue }

    var subject: String { file }

    /// The problem ("line 3: watch.x: unknown key"), or "N problems" and one line per problem with its fix.
    var message: String {
        guard problems.count != 1 else { return problems[0].place + problems[0].message }
        return "\(problems.count) problems\n" + problems.map { "  \($0)" }.joined(separator: "\n")
    }

    /// The problem's fix; with several problems each line has its own, so this is empty.
    var fix: String { problems.count == 1 ? problems[0].fix : "" }
}
