import Logging

/// A stable, dotted code naming one kind of failure ("slide.not_a_slide", "config.unknown_key"): what reports, the
/// job store, `csmil doctor` and the journal record, and what tests and outside tools match on. Each error type
/// lists its codes as an enum with `String` raw values.
public protocol ErrorCode: Sendable, Hashable, CustomStringConvertible {
    /// The dotted code, e.g. "slide.not_a_slide".
    var rawValue: String { get }
    /// Whether only a change of the configuration, or of the model, secret or settings it names, can fix the
    /// failure: trying again as things are cannot help. `csmil watch` exits 78 (EX_CONFIG) for such an error, which
    /// the unit's `RestartPreventExitStatus=` names, so systemd does not restart it in a loop. The default is
    /// ``ErrorCodes/needsConfigurationChange(_:)`` (by the code's domain); a code type overrides it where its
    /// domain mixes both kinds.
    var needsConfigurationChange: Bool { get }
}

extension ErrorCode {
    public var description: String { rawValue }
    public var needsConfigurationChange: Bool { ErrorCodes.needsConfigurationChange(rawValue) }
}

/// What the dotted codes have in common.
public enum ErrorCodes {
    /// The domains (the part of a code before the first dot) whose every failure needs a change of configuration
    /// or model files: the configuration file, the model folder, its checkpoints and heads, the accession pattern.
    /// Code types of other domains mark their own such codes (the precision asked for, the webhook secret, a
    /// watch or HL7 setting).
    public static let configurationDomains: Set<String> = ["config", "model", "checkpoint", "head", "identity"]

    /// Whether `code`'s domain is one of ``configurationDomains``.
    public static func needsConfigurationChange(_ code: String) -> Bool {
        configurationDomains.contains(String(code.prefix { $0 != "." }))
    }

    /// Whether `error` is a ``CSMILError`` whose code needs a change of configuration (anything else, `internal`
    /// included, may pass on a retry).
    public static func needsConfigurationChange(_ error: any Error) -> Bool {
        (error as? any CSMILError)?.code.needsConfigurationChange ?? false
    }
}

/// The one shape of every error csmil throws (daemon spec: "errors name the file, key or slide and say what to
/// do"): a stable code, the thing concerned, what happened and what to do about it.
///
/// Like hummingbird's `HTTPResponseError`, the protocol is the only thing the rest of the program relies on:
/// reports and the job store take `code` and `description`, `csmil doctor` shows `subject`, `message` and `fix`,
/// and the journal gets `code` and `description` as fields (``Logging/Logger/Metadata/error(_:)``).
public protocol CSMILError: Error, CustomStringConvertible {
    associatedtype Code: ErrorCode
    /// What kind of failure this is.
    var code: Code { get }
    /// The thing concerned: a file, a configuration key, a slide, a URL.
    var subject: String { get }
    /// What happened, without the subject (it is printed before it).
    var message: String { get }
    /// What to do about it.
    var fix: String { get }
}

extension CSMILError {
    /// "subject: message — fix", the one text of every error (stderr, reports, the journal). An error that lists
    /// several problems, each with its fix, has an empty `fix`; the dash is left out then.
    public var description: String {
        (subject.isEmpty ? "" : subject + ": ") + message + (fix.isEmpty ? "" : " — " + fix)
    }
}

/// The code and text of any error, as reports, the job store and the journal record them: a ``CSMILError``'s own,
/// or `internal` and Swift's description of it for anything else (which is a bug: csmil's own errors adopt the
/// protocol).
public struct ErrorSummary: Sendable, Equatable {
    /// The error's dotted code, or "internal".
    public var code: String
    /// The error's description ("subject: message — fix").
    public var text: String

    public init(code: String, text: String) {
        self.code = code
        self.text = text
    }

    public init(_ error: any Error) {
        if let error = error as? any CSMILError {
            self.init(code: error.code.rawValue, text: error.description)
        } else {
            self.init(code: ErrorSummary.internalCode, text: "\(error)")
        }
    }

    /// The code of an error that is not a ``CSMILError``.
    public static let internalCode = "internal"
}

extension Logger.Metadata {
    /// The journal fields of an error: `code` (CODE=) and `error` (ERROR=, "subject: message — fix").
    public static func error(_ error: any Error) -> Logger.Metadata {
        let summary = ErrorSummary(error)
        return ["code": "\(summary.code)", "error": "\(summary.text)"]
    }
}
