import ArgumentParser
import Inference
import Ingest
import Logging

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help:
            "Log level: trace, debug, info, notice, warning, error, critical (default: the config's [log] level, else info)."
    )
    var logLevel: LogLevel?

    /// Sets up logging for this process; the command line wins over the configuration file.
    func bootstrapLogging(configured: Logger.Level? = nil) -> Logger {
        LoggingSetup.bootstrap(level: logLevel?.level ?? configured ?? .info)
        let logger = Logger(label: "csmil")
        DecoderMessages.route(to: logger)
        return logger
    }
}

/// `--assume-mpp`, shared by the commands that open slides.
struct ResolutionOptions: ParsableArguments {
    @Option(
        name: .customLong("assume-mpp"),
        help: ArgumentHelp(
            "µm per pixel to assume for slides without resolution metadata (overrides [ingest] assume_mpp).",
            valueName: "mpp"))
    var assumeMPP: Double?

    /// Refuses a value outside `[ingest] assume_mpp`'s range (above 0, at most 10 µm per pixel).
    func validate() throws {
        guard let assumeMPP else { return }
        guard assumeMPP.isFinite, assumeMPP > 0, assumeMPP <= Configuration.maximumAssumedMPP else {
            throw ValidationError(
                "--assume-mpp must be above 0 and at most \(Configuration.maximumAssumedMPP) µm per pixel "
                    + "(0.5 for a 20x scan, 0.25 for 40x)")
        }
    }
}

/// swift-log's levels as a command-line argument.
enum LogLevel: String, CaseIterable, ExpressibleByArgument {
    case trace, debug, info, notice, warning, error, critical

    var level: Logger.Level { Logger.Level(rawValue: rawValue)! }
}

/// `--arch` and `--backbone-20x/10x/5x`, shared by the commands that name a model's three backbones.
struct BackboneOptions: ParsableArguments {
    @Option(name: .long, help: "The backbone architecture: resnet18, resnet34 or resnet50.")
    var arch: Architecture = .resnet50

    @Option(name: .customLong("backbone-20x"), help: "The 20x backbone checkpoint (.pth or .safetensors).")
    var backbone20x: String

    @Option(name: .customLong("backbone-10x"), help: "The 10x backbone checkpoint.")
    var backbone10x: String

    @Option(name: .customLong("backbone-5x"), help: "The 5x backbone checkpoint.")
    var backbone5x: String

    /// The three files, 20x first.
    var files: [String] { [backbone20x, backbone10x, backbone5x] }
}
