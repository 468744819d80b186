import ArgumentParser

/// `csmil webhook-sink`: a receiver for trying a deployment before the LIS is ready.
struct WebhookSinkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook-sink",
        abstract: "Receive webhook deliveries, verify their signatures and print each event."
    )

    @Option(name: .long, help: "The TCP port to listen on (loopback).")
    var port: Int

    @Option(name: .long, help: "The file holding the whsec_… secret the sender signs with.")
    var secretFile: String

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        throw NotImplementedYet(command: "webhook-sink", arrivesWith: "the webhook issue")
    }
}
