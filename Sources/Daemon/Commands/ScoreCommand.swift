import ArgumentParser
import Foundation
import Inference
import Logging
import Notify
import Store

/// `csmil score`: one-shot scoring of slides named on the command line.
struct ScoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Score slides once and write their reports; print one JSON summary line per slide.",
        discussion: "Exit status 0 if every slide was scored, 1 if any failed. No webhook unless --notify."
    )

    @Option(name: .long, help: "A configuration file (for the model, output folder and webhook).")
    var config: String?

    @Option(name: .long, help: "A model directory holding model.toml (overrides the configuration).")
    var model: String?

    @Option(name: .long, help: "Where to write the report folders (overrides the configuration).")
    var out: String?

    @OptionGroup var resolution: ResolutionOptions

    @Flag(name: .long, help: "Also deliver each result through the configured webhook.")
    var notify = false

    @Argument(help: "Slide files (SVS, TIFF, NDPI, MRXS, … as OpenSlide reads them).")
    var slides: [String]

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard !slides.isEmpty else { throw ValidationError("name at least one slide file") }
    }

    func run() async throws {
        let configuration = try config.map { path throws(ConfigurationError) in try Configuration.load(path: path) }
        let logger = global.bootstrapLogging(configured: configuration?.log.level)
        let notifier = try notify ? Notification(configuration: configuration, logger: logger) : nil
        guard let modelDirectory = model ?? configuration?.model.directory else {
            throw CommandError(
                code: .usage, subject: "csmil score", message: "no model",
                fix: "pass --model DIR (a folder holding model.toml) or --config with a [model] directory")
        }
        guard let outputDirectory = out ?? configuration?.output.directory else {
            throw CommandError(
                code: .usage, subject: "csmil score", message: "no output folder",
                fix: "pass --out DIR or --config with an [output] directory")
        }
        let workDirectory = try Self.workDirectory(state: configuration?.state.directory)
        let slides = self.slides
        let assumeMPP = self.resolution.assumeMPP ?? configuration?.ingest.assumeMPP
        let anyFailed = try await Self.onOwnThread { () throws -> Bool in
            let manifest = try ModelManifest.load(directory: modelDirectory)
            let pipeline = SlidePipeline(
                model: try Model(manifest: manifest), modelReport: try SlidePipeline.modelReport(for: manifest),
                writer: ReportWriter(outputDirectory: outputDirectory), workDirectory: workDirectory, logger: logger,
                assumeMPP: assumeMPP)
            var anyFailed = false
            for slide in slides {
                let outcome = pipeline.score(path: slide)
                let line = SummaryLine(outcome)
                anyFailed = anyFailed || line.failed
                FileHandle.standardOutput.write(line.json() + Data("\n".utf8))
                if let notifier, outcome.folder != nil { try notifier.enqueue(outcome.report) }
            }
            return anyFailed
        }
        if let notifier { try await notifier.deliver() }
        if anyFailed { throw ExitCode(1) }
    }

    /// `--notify`: each written report's event goes into the job store's outbox (`<state>/csmil.sqlite3`, the same
    /// one `csmil watch` uses), then the backlog is delivered in the foreground for up to twice the request timeout;
    /// what is still waiting for a retry stays queued for `csmil watch` or `csmil outbox deliver`.
    struct Notification {
        let configuration: Configuration
        let url: String
        let secret: WebhookSecret
        let logger: Logger

        init(configuration: Configuration?, logger: Logger) throws {
            guard let configuration, let url = configuration.webhook.url, !url.isEmpty,
                let secretFile = configuration.webhook.secretFile
            else {
                throw CommandError(
                    code: .usage, subject: "csmil score --notify", message: "no webhook; nothing was done",
                    fix: "pass --config with a [webhook] url and secret_file")
            }
            try FileManager.default.createDirectory(
                atPath: configuration.state.directory, withIntermediateDirectories: true)
            self.configuration = configuration
            self.url = url
            self.secret = try WebhookSecret.load(path: secretFile)
            self.logger = logger
        }

        func enqueue(_ report: SlideReport) throws {
            let database = try configuration.storeLocation.open(applicationName: "csmil score")
            try Outbox.installSchema(in: database)
            let payload = try WebhookPayload.make(
                configuration.webhook.payloadFormat, report: report, timestamp: Date())
            _ = try Outbox(database: database).enqueue(
                OutboxMessage(payload: payload, slideKey: report.slide.fingerprint, targetURL: url))
        }

        func deliver() async throws {
            let delivery = OutboxDelivery(
                configuration: OutboxDelivery.Configuration(
                    store: configuration.storeLocation, host: configuration.state.hostName, secret: secret,
                    client: configuration.webhook.clientOptions,
                    retry: configuration.webhook.retryPolicy, idlePoll: 0.5),
                logger: logger)
            try delivery.start()
            defer { delivery.stop() }
            let outbox = Outbox(database: try configuration.storeLocation.open(applicationName: "csmil score"))
            let deadline = ContinuousClock.now + .seconds(2 * configuration.webhook.timeoutSeconds)
            while ContinuousClock.now < deadline {
                if try outbox.summary().backlog == 0 { return }
                try await Task.sleep(for: .milliseconds(200))
            }
            let waiting = try outbox.summary().backlog
            FileHandle.standardError.write(
                Data(
                    ("csmil score --notify: \(waiting) event(s) not delivered yet stay queued in "
                        + "\(configuration.storeLocation); csmil watch or csmil outbox deliver sends them\n").utf8))
        }
    }

    /// `<state>/work` when the configuration names a state folder, else a folder under the system's temporary
    /// directory; created if missing.
    static func workDirectory(state: String?) throws -> String {
        let path =
            state.map { $0 + "/work" }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("csmil-work-\(getuid())").path
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw DaemonError(
                code: .stateUnwritable, subject: path,
                message: "the work folder for feature spill files cannot be created (\(error.localizedDescription))",
                fix: "check the [state] directory and its permissions")
        }
        return path
    }

    /// Runs blocking work (OpenSlide, BLAS) on a thread of its own, off Swift's cooperative pool.
    static func onOwnThread<Result: Sendable>(
        _ body: @escaping @Sendable () throws -> Result
    ) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Swift.Result { try body() })
            }
            thread.name = "csmil-score"
            thread.stackSize = 16 << 20
            thread.start()
        }
    }
}

/// The one JSON line printed per slide.
struct SummaryLine: Encodable {
    var slide: String
    var status: String
    var probability: Double?
    var label: String?
    var report: String?
    var tiles: Int
    var seconds: Double
    var eventID: String
    var error: SlideReport.Failure?

    /// Whether the slide (or its report) failed.
    var failed: Bool { status == SlideReport.Status.failed.rawValue }

    init(_ outcome: SlidePipeline.Outcome) {
        let report = outcome.report
        slide = report.slide.path
        status = report.status.rawValue
        probability = report.result?.probability
        label = report.result?.label
        self.report = outcome.folder.map { $0 + "/" + ReportWriter.reportFileName }
        tiles = report.tiles.count
        seconds = (report.timing.seconds * 1000).rounded() / 1000
        eventID = report.eventID
        error = report.error
        if let writeError = outcome.writeError {
            status = SlideReport.Status.failed.rawValue
            error = SlideReport.Failure(writeError)
        }
    }

    enum CodingKeys: String, CodingKey {
        case slide, status, probability, label, report, tiles, seconds, error
        case eventID = "event_id"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(slide, forKey: .slide)
        try container.encode(status, forKey: .status)
        try container.encode(probability, forKey: .probability)
        try container.encode(label, forKey: .label)
        try container.encode(report, forKey: .report)
        try container.encode(tiles, forKey: .tiles)
        try container.encode(seconds, forKey: .seconds)
        try container.encode(eventID, forKey: .eventID)
        try container.encodeIfPresent(error, forKey: .error)
    }

    /// Compact JSON, keys sorted, slashes unescaped.
    func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data("{\"status\":\"failed\"}".utf8)
    }
}
