import ArgumentParser
import Errors
import Foundation

/// `csmil watch`: the daemon, in the foreground.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Run the daemon in the foreground: watch the scanner folder, score new slides, deliver results.",
        discussion: """
            This is what systemd/csmil.service runs (Type=notify). It reports READY=1 once the configuration, the \
            job store (<state>/csmil.sqlite3), the model and the folder watches are up; STATUS= with the slide in \
            progress, tiles done/total, tiles/s, ETA and the queue; WATCHDOG=1 while work moves. SIGTERM or \
            SIGINT: stop taking slides, put the slide in progress back (scored again at the next start), exit. \
            SIGHUP: read the configuration again (webhook settings apply at once; a bad file keeps the old \
            settings). Only one csmil watch may use a state folder at a time.
            """
    )

    @Option(name: .long, help: "The configuration file.")
    var config: String = Configuration.defaultPath

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let configuration: Configuration
        do {
            configuration = try Configuration.load(path: config)
        } catch {
            FileHandle.standardError.write(Data("csmil watch cannot start: \(error)\n".utf8))
            throw ExitCode(Self.configurationExitStatus)
        }
        let logger = global.bootstrapLogging(configured: configuration.log.level)
        do {
            try await WatchDaemon(configurationPath: config, configuration: configuration, logger: logger).run()
        } catch {
            logger.critical("csmil watch cannot run", metadata: .error(error))
            // The error as text too (the log line escapes it as a field value), as ArgumentParser printed it.
            FileHandle.standardError.write(Data("csmil watch cannot run: \(error)\n".utf8))
            throw ExitCode(Self.exitStatus(for: error))
        }
    }

    /// EX_CONFIG (sysexits.h): the configuration, or the model or secret it names, is wrong. The unit's
    /// RestartPreventExitStatus= names it: starting again cannot help, so systemd leaves the service failed.
    static let configurationExitStatus: Int32 = 78

    /// 78 for errors that only a change of the configuration or the files it names can fix (their code says so:
    /// `ErrorCode.needsConfigurationChange`); 1 for the rest (a state folder that is locked or unwritable, a watch
    /// folder not mounted yet, a job store that cannot be opened), which systemd retries.
    static func exitStatus(for error: any Error) -> Int32 {
        ErrorCodes.needsConfigurationChange(error) ? configurationExitStatus : 1
    }
}
