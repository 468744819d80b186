import Foundation

/// `[state] database`: a `postgresql://` (or `postgres://`) connection URL as libpq reads it, checked before use.
///
/// The password never comes from the URL (the configuration file is readable by more people than the password
/// should be): it is read from `[state] database_password_file`. ``redacted`` is what logs and errors show.
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    /// The URL as configured.
    public let text: String
    /// The host (or socket folder), for messages; "" when libpq's default applies.
    public let host: String
    /// The port, when given.
    public let port: Int?
    /// The user, when given.
    public let user: String?
    /// The database name, when given.
    public let database: String?
    /// The `sslmode` query parameter, when given.
    public let sslMode: String?

    /// Why a `[state] database` value is not a usable URL.
    public struct Problem: Error, Sendable, Equatable {
        public var message: String
        public var fix: String
    }

    /// Checks `text`: the scheme, a host, no password.
    public init(_ text: String) throws(Problem) {
        self.text = text
        guard text.hasPrefix("postgresql://") || text.hasPrefix("postgres://"),
            let components = URLComponents(string: text)
        else {
            throw Problem(
                message: "is not a postgresql:// URL",
                fix: "write it as postgresql://USER@HOST:PORT/DATABASE?sslmode=verify-full, or \"\" for SQLite in "
                    + "[state] directory")
        }
        if components.password != nil {
            throw Problem(
                message: "holds a password",
                fix: "remove it from the URL (postgresql://USER@HOST/DB) and put it in the file named by "
                    + "[state] database_password_file")
        }
        host = components.host ?? ""
        port = components.port
        user = components.user.flatMap { $0.isEmpty ? nil : $0 }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? nil : path
        sslMode = components.queryItems?.first { $0.name == "sslmode" }?.value
        if let sslMode,
            !["disable", "allow", "prefer", "require", "verify-ca", "verify-full"].contains(sslMode)
        {
            throw Problem(
                message: "has an unknown sslmode \"\(sslMode)\"",
                fix: "use sslmode=verify-full (or require, verify-ca; disable only on a trusted network)")
        }
    }

    /// The URL as logs and errors show it: a password, should one be there, replaced by `***`.
    public var redacted: String { Self.redact(text) }

    public var description: String { redacted }

    /// `text` with the password of a URL's user info replaced by `***`; anything else unchanged.
    public static func redact(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://") else { return text }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else {
            return text
        }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}
