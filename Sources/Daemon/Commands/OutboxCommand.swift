import ArgumentParser
import Foundation
import Logging
import Notify
import Store

/// `csmil outbox`: the outbox in the job store (one row per event and destination): list it, replay dead rows,
/// deliver the backlog.
struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "List the outbox, replay dead events, or deliver the backlog without the daemon.",
        subcommands: [List.self, Retry.self, Deliver.self],
        defaultSubcommand: List.self
    )

    /// `csmil outbox list`: each destination's counts, then the newest rows, one line per event and destination.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the newest outbox rows: one line per event and destination (webhook, hl7).",
            discussion: """
                First one line per destination (waiting, delivered, dead), then the newest rows, newest first: \
                event id, destination, state, attempts, and for a row not delivered the last error and when it is \
                tried next. The same database `csmil status` reads.
                """
        )

        @Option(name: .long, help: "The configuration file (its [state] directory holds csmil.sqlite3).")
        var config: String = Configuration.defaultPath

        @Option(name: .long, help: "How many rows to list, newest first.")
        var limit: Int = 20

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard limit > 0 else { throw ValidationError("--limit must be at least 1") }
        }

        func run() async throws {
            let configuration = try Configuration.load(path: config)
            let outbox = try OutboxCommand.open(configuration)
            let now = Date().timeIntervalSince1970
            var out = ""
            for destination in try outbox.summary(now: now).destinations {
                out +=
                    "\(destination.name): \(destination.backlog) waiting, \(destination.delivered) delivered, "
                    + "\(destination.deadCount) dead\n"
            }
            for row in try outbox.recentRows(limit: limit) { out += Self.line(row, now: now) + "\n" }
            FileHandle.standardOutput.write(Data(out.utf8))
        }

        /// `evt_… hl7 pending (slide.scored), 2 attempts, next in 4s; last: no ACK from mllp://… in time`.
        static func line(_ row: OutboxRow, now: Double) -> String {
            let message = row.message
            var line =
                "\(message.eventID) \(message.destination) \(row.state.rawValue) (\(message.eventType)), "
                + "\(row.attempts) attempt\(row.attempts == 1 ? "" : "s")"
            switch row.state {
            case .delivered:
                break
            case .pending:
                line +=
                    row.nextAttemptAt > now ? ", next in \(DaemonProgress.duration(row.nextAttemptAt - now))" : ", due"
                if let error = row.lastError { line += "; last: \(error)" }
            case .dead, .disabled:
                if let error = row.lastError { line += "; \(error)" }
                line += " — replay with csmil outbox retry \(message.eventID) --destination \(message.destination)"
            }
            return line
        }
    }

    /// `csmil outbox retry EVENT_ID | --all-dead`.
    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "retry",
            abstract: "Queue a dead event again (or every dead one), with the same id and body.",
            discussion: """
                A dead event was refused by the receiver (a 4xx, an HL7 AR) or retried past retry_window_hours; \
                an event held by a 410 Gone endpoint is replayed too and the endpoint is enabled again. Replayed \
                events go to the URLs configured now ([webhook] url, [hl7] url). The running daemon sends them \
                within 30 seconds; `csmil status` lists the dead ones.
                """
        )

        @Argument(help: "The event id (webhook-id, MSH-10) to replay, as `csmil status` lists it.")
        var eventID: String?

        @Option(name: .long, help: "Replay the event for this destination only (webhook or hl7).")
        var destination: String?

        @Flag(name: .long, help: "Replay every dead event.")
        var allDead = false

        @Option(name: .long, help: "The configuration file (its [state] directory holds csmil.sqlite3).")
        var config: String = Configuration.defaultPath

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard (eventID != nil) != allDead else {
                throw ValidationError("name one EVENT_ID or pass --all-dead")
            }
        }

        func run() async throws {
            let configuration = try Configuration.load(path: config)
            let outbox = try OutboxCommand.open(configuration)
            if let eventID {
                let count = try outbox.requeue(eventID: eventID, destination: destination)
                guard count > 0 else {
                    let rows = try outbox.rows(eventID: eventID)
                        .filter { destination == nil || $0.message.destination == destination }
                    let states = rows.map {
                        rows.count == 1 ? $0.state.rawValue : "\($0.message.destination) \($0.state.rawValue)"
                    }
                    throw CommandError(
                        code: .notFound, subject: outbox.database.location,
                        message: "event \(eventID) "
                            + (states.isEmpty
                                ? "is not in the outbox" + (destination.map { " for \($0)" } ?? "")
                                : "is \(states.joined(separator: ", ")), not dead")
                            + "; nothing was replayed",
                        fix: "`csmil status` lists the dead events")
                }
                print("requeued \(eventID)" + (count > 1 ? " (\(count) destinations)" : ""))
            } else {
                let count = try outbox.requeueAllDead()
                print("requeued \(count) dead event\(count == 1 ? "" : "s")")
            }
        }
    }

    /// `csmil outbox deliver`: the delivery worker in the foreground.
    struct Deliver: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "deliver",
            abstract: "Deliver the outbox backlog in the foreground (when the daemon is not running).",
            discussion: """
                Runs the same delivery worker as `csmil watch`: retries, Retry-After and dead letters as \
                configured in [webhook] and [hl7], to the URLs configured now. Runs until interrupted, or with \
                --until-empty until nothing is pending for a configured destination.
                """
        )

        @Option(name: .long, help: "The configuration file.")
        var config: String = Configuration.defaultPath

        @Flag(name: .long, help: "Exit once no event is pending (delivered, dead or disabled).")
        var untilEmpty = false

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let configuration = try Configuration.load(path: config)
            let logger = global.bootstrapLogging(configured: configuration.log.level)
            guard configuration.publishes else {
                throw CommandError(
                    code: .usage, subject: configuration.sourcePath,
                    message: "[webhook] url and [hl7] url are empty, so there is nowhere to deliver to",
                    fix: "set [webhook] url and secret_file, or [hl7] url")
            }
            let outbox = try OutboxCommand.open(configuration)
            // No csmil watch runs with this state folder (its lock is free): rows this host still holds were left
            // by a process killed mid-send, and are sent again now rather than when their claim runs out.
            if (try? StateFolderLock(stateDirectory: configuration.state.directory)) != nil {
                try outbox.releaseClaims(holder: configuration.state.hostName)
            }
            let delivery = OutboxDelivery(
                configuration: try configuration.deliveryConfiguration(idlePoll: 1), logger: logger)
            let untilEmpty = self.untilEmpty
            let urls = configuration.deliveryURLs
            try await delivery.run {
                try !untilEmpty || outbox.nextDueTime(destinations: urls) != nil
            }
        }
    }

    /// The outbox in the configuration's job store; a SQLite file must exist (the daemon creates it).
    static func open(_ configuration: Configuration) throws -> Outbox {
        if case .sqlite(let path) = configuration.storeLocation, !FileManager.default.fileExists(atPath: path) {
            throw CommandError(
                code: .notFound, subject: path, message: "no job store here",
                fix: "check [state] directory in \(configuration.sourcePath) (the daemon creates the file when it "
                    + "first runs)")
        }
        let database = try configuration.storeLocation.open(applicationName: "csmil outbox")
        try Outbox.installSchema(in: database)
        return Outbox(database: database)
    }
}
