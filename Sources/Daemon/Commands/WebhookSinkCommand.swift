import ArgumentParser
import Foundation
import Notify
import Sinks
import UnixSignals

/// `csmil webhook-sink`: a receiver for trying a deployment before the LIS is ready.
struct WebhookSinkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook-sink",
        abstract: "Receive webhook deliveries, verify their signatures and print each event.",
        discussion: """
            Listens on HTTP (loopback by default) and prints one line per request on stdout: event id, type, \
            slide, probability and label, "verified" or "rejected (why)", and the status answered. A request whose \
            signature or timestamp (±5 min) does not check out is answered 401. Point a test configuration at it \
            with url = "http://127.0.0.1:PORT/" and allow_http = true. Ctrl-C or SIGTERM stops it (exit status 0).
            """
    )

    @Option(name: .long, help: "The TCP port to listen on.")
    var port: Int

    @Option(name: .long, help: "The file holding the whsec_… secret the sender signs with (one or two secrets).")
    var secretFile: String

    @Option(name: .long, help: "Answer 500 to the first N requests (to watch the sender retry).")
    var failFirst: Int = 0

    @Option(name: .long, help: "Answer every verified request with this status instead of 200 (e.g. 400, 410, 503).")
    var status: Int = 200

    @Option(name: .long, help: "The IPv4 address to listen on.")
    var host: String = "127.0.0.1"

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard failFirst >= 0 else { throw ValidationError("--fail-first must not be negative") }
        guard (200...599).contains(status) else { throw ValidationError("--status must be an HTTP status, 200…599") }
    }

    func run() async throws {
        let secret = try WebhookSecret.load(path: secretFile)
        let sink = WebhookSink(
            host: host, port: UInt16(port), secret: secret, failFirst: failFirst, status: status,
            onEvent: { event in
                FileHandle.standardOutput.write(Data((event.line + "\n").utf8))
            })
        // Trapped before the sink answers anything: a SIGTERM sent as soon as it answers must stop it cleanly.
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        try sink.start()
        FileHandle.standardError.write(
            Data("csmil webhook-sink: listening on \(sink.url) (Ctrl-C to stop)\n".utf8))
        // SIGTERM or SIGINT: stop listening, let requests in progress finish, exit 0.
        for await _ in signals { break }
        sink.stop()
        FileHandle.standardError.write(Data("csmil webhook-sink: stopped\n".utf8))
    }
}
