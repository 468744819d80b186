import Foundation

/// Where the store lives: a SQLite file in the local `[state] directory` (the default: one host), or a PostgreSQL
/// database that several hosts share (`[state] database`).
public enum StoreLocation: Sendable, Equatable, CustomStringConvertible {
    /// `<state>/csmil.sqlite3`.
    case sqlite(path: String)
    /// A PostgreSQL server; the password is read from `passwordFile` when one is named.
    case postgresql(url: PostgresURL, passwordFile: String?)

    /// The file, or the URL without a password: what logs and errors name.
    public var description: String {
        switch self {
        case .sqlite(let path): path
        case .postgresql(let url, _): url.redacted
        }
    }

    /// Whether several hosts may share it.
    public var isShared: Bool {
        if case .postgresql = self { return true }
        return false
    }

    /// Opens a connection (the caller installs the schema: ``JobStore/init(database:)``, ``StoreSchema``).
    ///
    /// - Parameter applicationName: what `pg_stat_activity` shows (PostgreSQL).
    /// - Throws: ``SQLiteError`` or ``PostgresError`` (`postgres.unreachable`, `postgres.authentication`,
    ///   `postgres.password_file`, …), each naming the file or the URL.
    public func open(applicationName: String = "csmil") throws -> any StoreDatabase {
        switch self {
        case .sqlite(let path):
            return try SQLiteDatabase(path: path)
        case .postgresql(let url, let passwordFile):
            let password = try passwordFile.map { file throws(PostgresError) in try Self.password(file: file, url: url)
            }
            return try PostgresConnection(url: url, password: password, applicationName: applicationName)
        }
    }

    /// The password in `file`: its first line, without the line break. Never logged.
    public static func password(file: String, url: PostgresURL) throws(PostgresError) -> String {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw PostgresError(
                code: .passwordFile, url: url.redacted,
                message: "the password file \(file) cannot be read (\(String(cString: strerror(errno))))",
                fix: "create it holding the database password, owned by the user csmil runs as, mode 0600 "
                    + "(chmod 600 \(file))")
        }
        let text = String(decoding: data, as: UTF8.self)
        return String(text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            .trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
    }
}
