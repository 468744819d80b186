import ArgumentParser
import Errors

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
        let configuration = try Configuration.load(path: config)
        let logger = global.bootstrapLogging(configured: configuration.log.level)
        do {
            try await WatchDaemon(configurationPath: config, configuration: configuration, logger: logger).run()
        } catch {
            logger.critical("csmil watch cannot run", metadata: .error(error))
            throw error
        }
    }
}
