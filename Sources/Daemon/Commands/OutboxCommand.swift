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
                A dead event was refused by the receiver (a 4xx) or retried past retry_window_hours; an event \
                held by a 410 Gone endpoint is replayed too and the endpoint is enabled again. The running daemon \
                sends replayed events within 30 seconds; `csmil status` lists the dead ones.
                """
        )

        @Argument(help: "The event id (webhook-id) to replay, as `csmil status` lists it.")
        var eventID: String?

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
                guard try outbox.requeue(eventID: eventID) else {
                    let state = try outbox.row(eventID: eventID)?.state
                    throw CommandError(
                        code: .notFound, subject: outbox.database.location,
                        message: "event \(eventID) "
                            + (state.map { "is \($0.rawValue), not dead" } ?? "is not in the outbox")
                            + "; nothing was replayed",
                        fix: "`csmil status` lists the dead events")
                }
                print("requeued \(eventID)")
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
                configured in [webhook]. Runs until interrupted, or with --until-empty until nothing is pending.
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
            guard let secretFile = configuration.webhook.secretFile, configuration.webhook.url != nil else {
                throw CommandError(
                    code: .usage, subject: configuration.sourcePath,
                    message: "[webhook] url is empty, so there is nowhere to deliver to",
                    fix: "set url and secret_file")
            }
            let secret = try WebhookSecret.load(path: secretFile)
            let outbox = try OutboxCommand.open(configuration)
            let delivery = OutboxDelivery(
                configuration: OutboxDelivery.Configuration(
                    store: configuration.storeLocation, host: configuration.state.hostName, secret: secret,
                    client: configuration.webhook.clientOptions,
                    retry: configuration.webhook.retryPolicy, idlePoll: 1),
                logger: logger)
            try delivery.start()
            defer { delivery.stop() }
            while true {
                try await Task.sleep(for: .milliseconds(200))
                if untilEmpty, try outbox.summary().backlog == 0 { return }
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
