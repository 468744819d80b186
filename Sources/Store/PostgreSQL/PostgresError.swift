import Errors

/// A PostgreSQL call that failed. It names the server by its URL (never with a password), what was being done,
/// the server's or libpq's message and SQLSTATE, and what an operator can do.
public struct PostgresError: CSMILError, Sendable, Equatable {
    /// A stable code per kind of failure.
    public enum Code: String, ErrorCode {
        /// The server cannot be reached, or the connection was lost (down, restarting, network): transient.
        case unreachable = "postgres.unreachable"
        /// The server refused the user or password.
        case authentication = "postgres.authentication"
        /// TLS could not be set up as `sslmode` demands.
        case tls = "postgres.tls"
        /// The password file cannot be read.
        case passwordFile = "postgres.password_file"
        /// A UNIQUE, NOT NULL or CHECK constraint refused a row (SQLSTATE class 23).
        case constraint = "postgres.constraint"
        /// A serialization failure or deadlock (40001, 40P01): the transaction may simply be run again.
        case conflict = "postgres.conflict"
        /// The SQL is wrong or names something missing (class 42): a bug, or another program's database.
        case misuse = "postgres.misuse"
        /// The database was written by a newer csmil.
        case tooNew = "postgres.schema_too_new"
        /// Anything else.
        case other = "postgres.error"

        /// The password file, or the user and password the server refuses: only a change of the configuration or
        /// of the files it names can fix them, so `csmil watch` exits 78 rather than being restarted in a loop. A
        /// server away (or TLS, which a server's new certificate may fix) is retried.
        public var needsConfigurationChange: Bool { self == .passwordFile || self == .authentication }
    }

    public var code: Code
    /// The server's URL, without a password.
    public var url: String
    public var message: String
    public var fix: String
    /// The SQLSTATE, when the server sent one.
    public var sqlState: String?

    public init(code: Code, url: String, message: String, fix: String, sqlState: String? = nil) {
        self.code = code
        self.url = url
        self.message = message
        self.fix = fix
        self.sqlState = sqlState
    }

    public var subject: String { url }

    /// Whether running the same work again later may succeed (the server is back, the conflict is gone).
    public var isTransient: Bool { code == .unreachable || code == .conflict }

    /// The error for a failed statement or connection, from SQLSTATE (when there is one) and the message.
    static func classify(
        sqlState: String?, message: String, operation: String, url: String, connectionLost: Bool
    ) -> PostgresError {
        let text = "could not \(operation): \(message)"
        let lower = message.lowercased()
        if let sqlState {
            switch sqlState {
            case "28P01", "28000":
                return PostgresError(
                    code: .authentication, url: url, message: text,
                    fix: "check the user in [state] database and the password in [state] database_password_file "
                        + "(and the server's pg_hba.conf)", sqlState: sqlState)
            case "40001", "40P01":
                return PostgresError(
                    code: .conflict, url: url, message: text, fix: "nothing: the work is run again",
                    sqlState: sqlState)
            case "57P01", "57P02", "57P03":
                return unreachable(url: url, message: text, sqlState: sqlState)
            default:
                break
            }
            switch sqlState.prefix(2) {
            case "08":
                return unreachable(url: url, message: text, sqlState: sqlState)
            case "23":
                return PostgresError(
                    code: .constraint, url: url, message: text,
                    fix: "the row contradicts the schema; this is a bug in csmil, please report it", sqlState: sqlState)
            case "42":
                return PostgresError(
                    code: .misuse, url: url, message: text,
                    fix: "this is a bug in csmil, or the database belongs to another program: point [state] database "
                        + "at a database of csmil's own", sqlState: sqlState)
            default:
                break
            }
        }
        if lower.contains("ssl") || lower.contains("certificate") || lower.contains("tls") {
            return PostgresError(
                code: .tls, url: url, message: text,
                fix: "check sslmode and sslrootcert in [state] database against the server's certificate "
                    + "(sslmode=verify-full needs the CA that signed it)", sqlState: sqlState)
        }
        if lower.contains("password authentication failed") || lower.contains("no password supplied") {
            return PostgresError(
                code: .authentication, url: url, message: text,
                fix: "check the user in [state] database and the password in [state] database_password_file",
                sqlState: sqlState)
        }
        if connectionLost || sqlState == nil {
            return unreachable(url: url, message: text, sqlState: sqlState)
        }
        return PostgresError(
            code: .other, url: url, message: text, fix: "check the server's log for this statement",
            sqlState: sqlState)
    }

    static func unreachable(url: String, message: String, sqlState: String?) -> PostgresError {
        PostgresError(
            code: .unreachable, url: url, message: message,
            fix: "check that the server runs and accepts connections from this host (pg_isready -d URL); csmil "
                + "keeps what it has and retries", sqlState: sqlState)
    }
}
