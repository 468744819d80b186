import Foundation
import Store

extension Configuration {
    /// The machine's host name (`gethostname`), the default `[state] host_name`.
    static let machineHostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }()

    /// The shortest `[state] lease_seconds`: the heartbeat renews leases four times per lease.
    static let minimumLeaseSeconds = 2.0
}

/// `[state] database`, `database_password_file`, `host_name` and `lease_seconds`, checked.
struct SharedStoreSettings: Sendable, Equatable {
    var database: PostgresURL?
    var passwordFile: String?
    var hostName: String
    var leaseSeconds: Double
}

extension TOMLReader {
    /// The `[state]` keys of a shared store; nil when one of them is wrong (the problem is recorded).
    mutating func sharedStore(_ table: TOMLTable, base: String) -> SharedStoreSettings? {
        let text = string(table, "database", section: "state", default: "")
        let passwordFile = string(table, "database_password_file", section: "state", default: "")
        let hostName = string(table, "host_name", section: "state", default: "")
        let lease = number(table, "lease_seconds", section: "state", default: 120)
        guard let text, let passwordFile, var hostName, let lease else { return nil }
        if hostName.isEmpty { hostName = Configuration.machineHostName }
        var valid = true
        var database: PostgresURL?
        if !text.isEmpty {
            do {
                database = try PostgresURL(text)
            } catch {
                invalid(
                    "state.database", line: TOMLReader.line(of: "database", in: table),
                    "\"\(PostgresURL.redact(text))\" \(error.message)", fix: error.fix)
                valid = false
            }
        } else if !passwordFile.isEmpty {
            invalid(
                "state.database_password_file", line: TOMLReader.line(of: "database_password_file", in: table),
                "is set but [state] database is empty (the SQLite store needs no password)",
                fix: "set database to a postgresql:// URL, or remove database_password_file")
            valid = false
        }
        if hostName.count > 200 || hostName.contains(where: { $0.isNewline }) {
            invalid(
                "state.host_name", line: TOMLReader.line(of: "host_name", in: table),
                "must be at most 200 characters on one line (\"\" = the machine's host name)",
                fix: "use the machine's host name (the default) or another name unique among the hosts")
            valid = false
        }
        if lease < Configuration.minimumLeaseSeconds || lease > 86400 {
            invalid(
                "state.lease_seconds", line: TOMLReader.line(of: "lease_seconds", in: table),
                "must be between \(Int(Configuration.minimumLeaseSeconds)) and 86400 (is \(lease))",
                fix: "use 120: a host that stops heartbeating loses its slide to another host after this long")
            valid = false
        }
        guard valid else { return nil }
        return SharedStoreSettings(
            database: database,
            passwordFile: passwordFile.isEmpty ? nil : Configuration.resolve(passwordFile, base: base),
            hostName: hostName, leaseSeconds: lease)
    }
}
