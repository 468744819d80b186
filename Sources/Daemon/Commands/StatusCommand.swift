import ArgumentParser

/// `csmil status`: what the daemon knows.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the queue, the slide in progress, recent results, the outbox backlog and failures."
    )

    @Option(name: .long, help: "The configuration file.")
    var config: String = Configuration.defaultPath

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        throw NotImplementedYet(command: "status", arrivesWith: "the daemon issue")
    }
}
