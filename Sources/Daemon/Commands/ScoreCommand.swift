import ArgumentParser
import Foundation
import Inference
import Ingest
import Logging
import Notify
import Store
import Synchronization
import Threads
import UnixSignals

/// `csmil score`: one-shot scoring of slides named on the command line.
struct ScoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Score slides once and write their reports; print one JSON summary line per slide.",
        discussion: """
            Exit status 0 if every slide was scored, 1 if any failed. No webhook unless --notify. A path that is not \
            a regular file (a FIFO, a device, a folder) is refused without being opened. SIGTERM or SIGINT stops the \
            slide in progress within seconds at any stage (nothing is written for it) and exits with 128 + the signal.
            """
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

    @Option(name: .long, help: "The backbones' number format, fp32 or bf16 (overrides [pipeline] precision).")
    var precision: Precision?

    @Option(
        name: .customLong("bf16-recheck-margin"),
        help: ArgumentHelp(
            "At bf16, score a slide again at fp32 when its probability is within this of the threshold; 0: never "
                + "(overrides [pipeline] bf16_recheck_margin, default 0.05).", valueName: "p"))
    var recheckMargin: Double?

    @Argument(help: "Slide files (SVS, TIFF, NDPI, MRXS, … as OpenSlide reads them).")
    var slides: [String]

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard !slides.isEmpty else { throw ValidationError("name at least one slide file") }
        if let recheckMargin, !(0...0.5).contains(recheckMargin) {
            throw ValidationError("--bf16-recheck-margin must be between 0 and 0.5")
        }
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
        let workDirectory = try SpillFiles.workDirectory(state: configuration?.state.directory)
        let slides = self.slides
        let assumeMPP = self.resolution.assumeMPP ?? configuration?.ingest.assumeMPP
        let settings = configuration?.pipeline ?? Configuration.Pipeline()
        let precision = self.precision ?? settings.precision
        let subject = self.precision == nil ? "[pipeline] precision" : "--precision"
        let quality = configuration?.qc ?? QualitySettings()
        // SIGTERM and SIGINT stop the slide in progress (checked in every long loop) instead of killing the process
        // in the middle of a spill file.
        let stop = StopRequest()
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let signalWatcher = Task {
            for await signal in signals {
                stop.request(signal)
                logger.notice("stopping: the slide in progress is abandoned", metadata: ["signal": "\(signal)"])
                break
            }
        }
        defer { signalWatcher.cancel() }
        let anyFailed = try await DedicatedThread.run(name: "csmil-score") { () throws -> Bool in
            let manifest = try ModelManifest.load(directory: modelDirectory)
            try precision.prepare(architecture: manifest.architecture, subject: subject)
            var pipeline = SlidePipeline(
                model: try Model(manifest: manifest, precision: precision),
                modelReport: try SlidePipeline.modelReport(for: manifest, precision: precision),
                writer: ReportWriter(outputDirectory: outputDirectory), workDirectory: workDirectory, logger: logger,
                assumeMPP: assumeMPP)
            pipeline.workers = settings.threadsPerSlide(cores: Parallel.workers)
            pipeline.batch = settings.batch
            pipeline.quality = quality
            pipeline.identityPattern = configuration?.identity.compiled()
            pipeline.identityRequired = configuration?.identity.required ?? false
            pipeline.recheck = try SlidePipeline.Recheck.load(
                manifest: manifest, precision: precision, margin: recheckMargin ?? settings.bf16RecheckMargin,
                modelReport: pipeline.modelReport)
            var anyFailed = false
            for slide in slides where !stop.isRequested {
                if let refusal = Self.refuseNonRegularFile(slide) {
                    FileHandle.standardOutput.write(
                        SummaryLine(refused: slide, error: refusal).json() + Data("\n".utf8))
                    anyFailed = true
                    continue
                }
                let outcome = pipeline.score(path: slide, observer: stop)
                if outcome.cancelled {
                    FileHandle.standardError.write(
                        Data("csmil score: stopped; \(slide) was not scored (nothing was written for it)\n".utf8))
                    break
                }
                let line = SummaryLine(outcome)
                anyFailed = anyFailed || line.failed
                FileHandle.standardOutput.write(line.json() + Data("\n".utf8))
                if let notifier {
                    if let folder = outcome.folder {
                        try notifier.enqueue(outcome.report, folder: folder)
                    } else {
                        FileHandle.standardError.write(
                            Data(
                                ("csmil score --notify: \(slide.escapingControlCharacters): not sent: its report "
                                    + "could not be written, so there is no event\n").utf8))
                    }
                }
            }
            return anyFailed
        }
        if let signal = stop.signal { throw ExitCode(128 + signal) }
        if let notifier { try await notifier.deliver() }
        if anyFailed { throw ExitCode(1) }
    }

    /// A path that exists but is not a regular file (a FIFO, a socket, a device, a folder) is refused before it is
    /// opened: opening a FIFO for reading blocks until someone writes to it. Symbolic links are followed (`stat`).
    /// Missing or unreadable files are left to the pipeline, which writes their failed report.
    static func refuseNonRegularFile(_ path: String) -> SlideError? {
        var status = stat()
        guard stat(path, &status) == 0, (status.st_mode & S_IFMT) != S_IFREG else { return nil }
        let kind =
            switch status.st_mode & S_IFMT {
            case S_IFIFO: "a FIFO (named pipe)"
            case S_IFSOCK: "a socket"
            case S_IFDIR: "a folder"
            case S_IFCHR, S_IFBLK: "a device"
            default: "not a regular file"
            }
        return SlideError(
            code: .unreadable, file: path, message: "is \(kind), not a slide file; it was not opened",
            fix: "give the slide file itself (for MIRAX, the .mrxs file beside its folder)")
    }

    /// SIGTERM or SIGINT, seen by the scoring thread between two steps of any long loop.
    final class StopRequest: SlidePipeline.Observer, Sendable {
        private let received = Atomic<Int32>(0)

        func request(_ signal: UnixSignal) { received.store(signal.rawValue, ordering: .sequentiallyConsistent) }

        /// The signal received, if any.
        var signal: Int32? {
            let value = received.load(ordering: .sequentiallyConsistent)
            return value == 0 ? nil : value
        }

        var isRequested: Bool { signal != nil }

        func tilesFound(_ total: Int) {}
        func tilesEmbedded(_ count: Int) {}
        var shouldStop: Bool { isRequested }
    }

    /// `--notify`: each written report's event goes into the job store's outbox (`<state>/csmil.sqlite3`, the same
    /// one `csmil watch` uses), then the backlog is delivered in the foreground for up to twice the request timeout;
    /// what is still waiting for a retry stays queued for `csmil watch` or `csmil outbox deliver`.
    struct Notification {
        let configuration: Configuration
        /// The configured destinations: their `encode` makes the rows, the worker delivers them.
        let destinations: [Destination]
        let logger: Logger

        init(configuration: Configuration?, logger: Logger) throws {
            guard let configuration, configuration.publishes else {
                throw CommandError(
                    code: .usage, subject: "csmil score --notify", message: "nowhere to deliver; nothing was done",
                    fix: "pass --config with a [webhook] url and secret_file, or an [hl7] url")
            }
            try FileManager.default.createDirectory(
                atPath: configuration.state.directory, withIntermediateDirectories: true)
            self.configuration = configuration
            destinations = try configuration.deliveryDestinations()
            self.logger = logger
        }

        func enqueue(_ report: SlideReport, folder: String) throws {
            let database = try configuration.storeLocation.open(applicationName: "csmil score")
            try Outbox.installSchema(in: database)
            let outbox = Outbox(database: database)
            for message in try destinations.messages(for: report, folder: folder) {
                guard try !outbox.enqueue(message) else { continue }
                // The outbox holds the id already: the same content scored with the same model and settings.
                let state = try outbox.row(eventID: message.eventID, destination: message.destination)?.state
                FileHandle.standardError.write(
                    Data(
                        ("csmil score --notify: \(report.slide.path.escapingControlCharacters): not sent to "
                            + "\(message.destination): event \(message.eventID) is already in the outbox "
                            + "(\(state?.rawValue ?? "queued")) — the same slide content scored with the same model "
                            + "and settings has the same id and is delivered once; `csmil outbox retry "
                            + "\(message.eventID)` sends a dead one again\n").utf8))
            }
        }

        func deliver() async throws {
            let outbox = Outbox(database: try configuration.storeLocation.open(applicationName: "csmil score"))
            let urls = configuration.deliveryURLs
            let timeout = max(
                configuration.webhook.url == nil ? 0 : configuration.webhook.timeoutSeconds,
                configuration.hl7.url == nil ? 0 : configuration.hl7.ackTimeoutSeconds)
            let deadline = ContinuousClock.now + .seconds(2 * timeout)
            let delivery = try configuration.deliveryConfiguration(idlePoll: 0.5, destinations: destinations)
            try await OutboxDelivery(configuration: delivery, logger: logger).run {
                try ContinuousClock.now < deadline && outbox.nextDueTime(destinations: urls) != nil
            }
            let waiting = try outbox.summary().backlog
            guard waiting > 0 else { return }
            FileHandle.standardError.write(
                Data(
                    ("csmil score --notify: \(waiting) event(s) not delivered yet stay queued in "
                        + "\(configuration.storeLocation); csmil watch or csmil outbox deliver sends them\n").utf8))
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
    var eventID: String?
    var error: SlideReport.Failure?
    /// `pass` or `review`; nil when QC is off.
    var qc: String?

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
        qc = report.qc?.status
        if let writeError = outcome.writeError {
            status = SlideReport.Status.failed.rawValue
            error = SlideReport.Failure(writeError)
        }
    }

    /// A path refused before it was read: no report, no event.
    init(refused path: String, error: SlideError) {
        slide = path
        status = SlideReport.Status.failed.rawValue
        tiles = 0
        seconds = 0
        self.error = SlideReport.Failure(error)
    }

    enum CodingKeys: String, CodingKey {
        case slide, status, probability, label, report, tiles, seconds, error, qc
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
        try container.encodeIfPresent(qc, forKey: .qc)
    }

    /// Compact JSON, keys sorted, slashes unescaped.
    func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data("{\"status\":\"failed\"}".utf8)
    }
}
