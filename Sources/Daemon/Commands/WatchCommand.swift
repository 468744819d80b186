import ArgumentParser

/// `csmil watch`: the daemon, in the foreground.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Run the daemon in the foreground: watch the scanner folder, score new slides, deliver results.",
        discussion: "This is what systemd/csmil.service runs (Type=notify)."
    )

    @Option(name: .long, help: "The configuration file.")
    var config: String = Configuration.defaultPath

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        throw NotImplementedYet(command: "watch", arrivesWith: "the daemon issue")
    }
}
