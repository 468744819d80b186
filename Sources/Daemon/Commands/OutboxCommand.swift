import ArgumentParser
import Foundation
import Logging
import Notify
import Store

/// `csmil outbox`: the webhook outbox (dead letters and the backlog) in the job store.
struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Replay dead webhook events, or deliver the backlog without the daemon.",
        subcommands: [Retry.self, Deliver.self]
    )

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
            guard Publishing(configuration).isOn else {
                throw CommandError(
                    code: .usage, subject: configuration.sourcePath,
                    message: "[webhook] url and [hl7] url are empty, so there is nowhere to deliver to",
                    fix: "set [webhook] url and secret_file, or [hl7] url")
            }
            let outbox = try OutboxCommand.open(configuration)
            let delivery = OutboxDelivery(
                configuration: try configuration.deliveryConfiguration(idlePoll: 1), logger: logger)
            try delivery.start()
            defer { delivery.stop() }
            while true {
                try await Task.sleep(for: .milliseconds(200))
                if untilEmpty, try outbox.nextDueTime(destinations: configuration.deliveryURLs) == nil { return }
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
