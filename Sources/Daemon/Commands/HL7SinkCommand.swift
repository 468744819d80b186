import ArgumentParser
import Foundation
import Notify
import Sinks
import UnixSignals

/// `csmil hl7-sink`: an MLLP receiver for trying a deployment before the LIS interface is ready.
struct HL7SinkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hl7-sink",
        abstract: "Receive HL7 v2 messages over MLLP, print each one and answer with an ACK.",
        discussion: """
            Listens on plain MLLP (loopback by default) and prints one line per message on stdout: message type, \
            MSH-10 (csmil's event id), the accession (OBR-3), the probability and label, and the ACK code \
            answered. Answers AA; AE to the first N messages with --nack-first N (to watch csmil retry with the \
            same MSH-10); AR to every message with --reject (to watch a dead letter). Point a test configuration \
            at it with [hl7] url = "mllp://127.0.0.1:PORT". Ctrl-C or SIGTERM stops it (exit status 0).
            """
    )

    @Option(name: .long, help: "The TCP port to listen on.")
    var port: Int

    @Option(name: .long, help: "Answer AE (application error) to the first N messages.")
    var nackFirst: Int = 0

    @Flag(name: .long, help: "Answer AR (application reject) to every message.")
    var reject = false

    @Option(name: .long, help: "The IPv4 address to listen on.")
    var host: String = "127.0.0.1"

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard nackFirst >= 0 else { throw ValidationError("--nack-first must not be negative") }
    }

    func run() async throws {
        let sink = HL7Sink(
            host: host, port: UInt16(port), nackFirst: nackFirst, reject: reject,
            onMessage: { message in
                FileHandle.standardOutput.write(Data((message.line + "\n").utf8))
            })
        // Trapped before the sink answers anything: a SIGTERM sent as soon as it answers must stop it cleanly.
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        try sink.start()
        FileHandle.standardError.write(Data("csmil hl7-sink: listening on \(sink.url) (Ctrl-C to stop)\n".utf8))
        for await _ in signals { break }
        sink.stop()
        FileHandle.standardError.write(Data("csmil hl7-sink: stopped\n".utf8))
    }
}
