import Foundation
import Store

extension Doctor {
    /// The job store: for a shared PostgreSQL database the password file (present, private), the connection, TLS,
    /// the server and the schema version; for SQLite, the file's schema version.
    static func store(_ state: Configuration.State, location: StoreLocation) -> [Finding] {
        guard case .postgresql(let url, let passwordFile) = location else {
            return [sqliteSchema(location)]
        }
        var findings: [Finding] = []
        if let passwordFile {
            let finding = self.passwordFile(path: passwordFile)
            findings.append(finding)
            if finding.severity == .problem { return findings }
        } else {
            findings.append(
                .warning(
                    "[state] database_password_file", "not set: libpq looks for a password in ~/.pgpass or needs none",
                    fix: "put the password in a file only csmil can read and name it in database_password_file"))
        }
        let connection: PostgresConnection
        do {
            guard let opened = try location.open(applicationName: "csmil doctor") as? PostgresConnection else {
                return findings
            }
            connection = opened
        } catch let error as PostgresError {
            findings.append(.problem("[state] database", error))
            return findings
        } catch {
            findings.append(.problem("[state] database", "\(url.redacted): \(error)", fix: "check the URL"))
            return findings
        }
        let major = connection.serverVersion / 10000
        findings.append(
            .ok("[state] database", "\(url.redacted): connected, PostgreSQL \(major), as host \(state.hostName)"))
        findings.append(tls(url: url, inUse: connection.usesTLS))
        do {
            let version = try StoreSchema.version(of: connection)
            let current = StoreSchema.postgresqlVersion
            if version > current {
                findings.append(
                    .problem(
                        "store schema", "version \(version), newer than this csmil's \(current)",
                        fix:
                            "run the csmil version that wrote it on every host (all hosts of one database run one version)"
                    ))
            } else if version < current {
                findings.append(
                    .ok(
                        "store schema",
                        version == 0
                            ? "empty database: csmil watch creates the tables (version \(current)) when it starts"
                            : "version \(version): csmil watch upgrades it to \(current) when it starts"))
            } else {
                findings.append(.ok("store schema", "version \(version) (current)"))
            }
        } catch {
            findings.append(
                .problem("store schema", "cannot be read: \(error)", fix: "check the database's permissions"))
        }
        return findings
    }

    /// TLS: required by the URL's sslmode and in use, or a warning naming what is missing.
    static func tls(url: PostgresURL, inUse: Bool) -> Finding {
        let mode = url.sslMode ?? "prefer"
        let local = url.host.isEmpty || url.host.hasPrefix("/") || ["localhost", "127.0.0.1", "::1"].contains(url.host)
        if inUse && mode == "verify-full" {
            return .ok(
                "[state] database TLS", "encrypted, the server's certificate and name verified (sslmode=verify-full)")
        }
        if inUse {
            return .warning(
                "[state] database TLS",
                "encrypted, but sslmode=\(mode) does not verify the server's certificate and name",
                fix: "use sslmode=verify-full (with sslrootcert=… naming the CA when it is not the system's)")
        }
        if local {
            return .ok("[state] database TLS", "not encrypted (sslmode=\(mode)); the server is on this machine")
        }
        return .warning(
            "[state] database TLS",
            "not encrypted (sslmode=\(mode)): slide names and results cross the network in clear",
            fix: "enable ssl on the server and use sslmode=verify-full")
    }

    /// The password file: there, readable by this user, and by nobody but its owner and group.
    static func passwordFile(path: String) -> Finding {
        let subject = "[state] database_password_file"
        var status = stat()
        guard stat(path, &status) == 0 else {
            return .problem(
                subject, "\(path) does not exist",
                fix: "write the database password into it: install -m 600 -o csmil /dev/null \(path), then edit it")
        }
        let mode = String(status.st_mode & 0o777, radix: 8)
        if status.st_mode & (S_IROTH | S_IWOTH) != 0 {
            return .problem(
                subject, "\(path) can be read or changed by every user (mode \(mode))",
                fix: "chmod 600 \(path) (or 640 with group csmil)")
        }
        if status.st_mode & S_IWGRP != 0 {
            return .warning(subject, "\(path) can be changed by its group (mode \(mode))", fix: "chmod 640 \(path)")
        }
        guard access(path, R_OK) == 0 else {
            return .problem(
                subject, "\(path) is not readable by this user (uid \(getuid()))", fix: "chown csmil: \(path)")
        }
        return .ok(subject, "\(path) (mode \(mode)); the password is not shown")
    }

    /// A SQLite store's schema version, when the file exists.
    static func sqliteSchema(_ location: StoreLocation) -> Finding {
        guard case .sqlite(let path) = location, FileManager.default.fileExists(atPath: path) else {
            return .ok("job store", "\(location): created when csmil watch first starts")
        }
        do {
            let version = try SQLiteDatabase(path: path).userVersion()
            let current = StoreSchema.sqliteVersion
            if version > current {
                return .problem(
                    "job store", "\(path) is at schema version \(version), newer than this csmil's \(current)",
                    fix: "run the csmil version that wrote it, or move the file aside")
            }
            return .ok(
                "job store",
                "\(path): schema version \(version)"
                    + (version < current ? ", upgraded to \(current) at the next start" : ""))
        } catch {
            return .problem("job store", error)
        }
    }
}
