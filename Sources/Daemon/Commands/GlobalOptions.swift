import ArgumentParser
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
        return Logger(label: "csmil")
    }
}

/// swift-log's levels as a command-line argument.
enum LogLevel: String, CaseIterable, ExpressibleByArgument {
    case trace, debug, info, notice, warning, error, critical

    var level: Logger.Level { Logger.Level(rawValue: rawValue)! }
}

/// The error a subcommand gives until the issue that builds it has landed.
struct NotImplementedYet: Error, CustomStringConvertible {
    var command: String
    var arrivesWith: String

    var description: String {
        "csmil \(command): not implemented yet (arrives with \(arrivesWith)); nothing was done"
    }
}
