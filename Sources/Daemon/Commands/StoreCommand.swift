import ArgumentParser
import Foundation
import Store
import Threads

/// `csmil store`: the job store itself.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Move the job store between backends.",
        subcommands: [Migrate.self]
    )

    /// `csmil store migrate --to postgresql://… | FILE`.
    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "migrate",
            abstract: "Copy the job store (jobs, aliases, attempts, outbox, dead letters) into an empty one.",
            discussion: """
                For a lab that outgrows one host: copies the store the configuration names (by default the SQLite \
                file in [state] directory) into an empty PostgreSQL database, in one transaction, keeping ids, event \
                ids and the outbox's order. Then set [state] database to that URL (and database_password_file) on \
                every host and start them. --to may also name a new SQLite file (a copy back, or a backup). Stop \
                csmil watch first: a running daemon keeps writing to the source.
                """
        )

        @Option(name: .long, help: "The configuration file (its [state] names the source).")
        var config: String = Configuration.defaultPath

        @Option(name: .long, help: "The target: postgresql://USER@HOST:PORT/DB?sslmode=… or a new SQLite file.")
        var to: String

        @Option(
            name: .long,
            help: "The file holding the target database's password (default: [state] database_password_file).")
        var passwordFile: String?

        @Option(
            name: .long, help: "The source instead of the configuration's store: a postgresql:// URL or a SQLite file.")
        var from: String?

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let configuration = try Configuration.load(path: config)
            _ = global.bootstrapLogging(configured: .warning)
            let source =
                try from.map { try Self.location($0, passwordFile: configuration.state.databasePasswordFile) }
                ?? configuration.storeLocation
            let target = try Self.location(to, passwordFile: passwordFile ?? configuration.state.databasePasswordFile)
            guard source != target else {
                throw CommandError(
                    code: .usage, subject: "csmil store migrate --to",
                    message: "the source and the target are the same store",
                    fix: "name another database or file with --to")
            }
            if case .sqlite(let path) = source {
                guard FileManager.default.fileExists(atPath: path) else {
                    throw CommandError(
                        code: .notFound, subject: path, message: "no job store here",
                        fix: "check [state] directory in \(config), or pass --from")
                }
                // A daemon using this state folder holds its lock: copying under it would miss what it writes next.
                if from == nil {
                    do {
                        _ = try StateFolderLock(stateDirectory: configuration.state.directory)
                    } catch {
                        throw CommandError(
                            code: .usage, subject: configuration.state.directory,
                            message: "csmil watch is running with this state folder",
                            fix: "stop it first (systemctl stop csmil), then migrate")
                    }
                }
            }
            let counts = try await DedicatedThread.run(name: "csmil-migrate") { () throws -> String in
                let from = try source.open(applicationName: "csmil store migrate")
                let into = try target.open(applicationName: "csmil store migrate")
                return try StoreCopy.copy(from: from, to: into).description
            }
            print("copied \(counts) from \(source) to \(target)")
            if case .postgresql(let url, _) = target {
                print(
                    "next: set [state] database = \"\(url.redacted)\" and database_password_file on every host, then "
                        + "start csmil watch on each")
            }
        }

        /// A `--to`/`--from` value: a PostgreSQL URL, or a SQLite file path.
        static func location(_ text: String, passwordFile: String?) throws -> StoreLocation {
            if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
                do {
                    return .postgresql(url: try PostgresURL(text), passwordFile: passwordFile)
                } catch {
                    throw CommandError(
                        code: .usage, subject: PostgresURL.redact(text), message: error.message, fix: error.fix)
                }
            }
            return .sqlite(path: URL(fileURLWithPath: text).standardizedFileURL.path)
        }
    }
}
