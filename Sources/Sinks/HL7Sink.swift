import Foundation
import Notify

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small MLLP receiver for trying a deployment before the LIS is ready (`csmil hl7-sink`): plain TCP on an IPv4
/// address (loopback by default), one thread per connection, one message at a time per connection as MLLP has it.
///
/// Each framed message is parsed, recorded, reported to `onMessage` with a one-line summary (message type, MSH-10,
/// accession, probability) and answered with an ACK: `AE` for the first ``nackFirst`` messages, then `AA` — or `AR`
/// for every message when ``reject`` is set. Something that is not an HL7 message is answered `AR`.
///
/// `@unchecked Sendable`: every `var` is read and written only while `lock` is held.
public final class HL7Sink: @unchecked Sendable {
    /// A message as received and answered.
    public struct Message: Sendable {
        /// 1 for the first message the sink received.
        public var number: Int
        /// The bytes inside the MLLP frame, exactly as received.
        public var bytes: [UInt8]
        /// MSH-9 as text, e.g. `ORU^R01^ORU_R01`; "?" when unparseable.
        public var type: String
        /// MSH-10.
        public var controlID: String
        /// The acknowledgement code answered.
        public var ackCode: String
        /// The line `csmil hl7-sink` prints.
        public var line: String
    }

    /// The address listened on.
    public let host: String
    /// Messages answered `AE` before the sink accepts any.
    public let nackFirst: Int
    /// Answer `AR` to everything.
    public let reject: Bool
    private let onMessage: @Sendable (Message) -> Void

    private let server: TCPServer
    private let lock = NSLock()
    private var received: [Message] = []

    /// A sink; nothing listens before ``start()``. `port` 0 picks a free port.
    public init(
        host: String = "127.0.0.1", port: UInt16 = 0, nackFirst: Int = 0, reject: Bool = false,
        onMessage: @escaping @Sendable (Message) -> Void = { _ in }
    ) {
        self.host = host
        server = TCPServer(host: host, port: port, threadName: "csmil-hl7-sink")
        self.nackFirst = nackFirst
        self.reject = reject
        self.onMessage = onMessage
    }

    deinit { stop() }

    /// The TCP port listened on.
    public var port: UInt16 { server.port }

    /// `mllp://host:port` for clients.
    public var url: String { "mllp://\(host):\(port)" }

    /// Every message received so far, in order.
    public var messages: [Message] { locked { received } }

    /// Binds, listens and starts accepting connections on a thread of its own.
    public func start() throws(SinkError) {
        try server.start(code: .hl7Listen) { [self] connection in serve(connection) }
    }

    /// Stops listening, closes every connection and waits for the sink's threads to end.
    public func stop() { server.stop() }

    /// Answers messages on one connection until the client closes it or the sink stops.
    private func serve(_ connection: Int32) {
        var buffer: [UInt8] = []
        while true {
            while let payload = MLLPClient.takeFrame(from: &buffer) {
                let answer = handle(payload)
                guard TCPServer.sendAll(connection, MLLPClient.frame(answer)) else { return }
            }
            guard buffer.count < 64 << 20, TCPServer.receive(connection, into: &buffer) else { return }
        }
    }

    /// Records one message and returns the ACK's bytes.
    private func handle(_ payload: [UInt8]) -> [UInt8] {
        let number = locked { received.count + 1 }
        let parsed = try? HL7Message(parsing: payload)
        let code: String
        let text: String
        if parsed == nil {
            code = "AR"
            text = "not an HL7 v2 message"
        } else if reject {
            code = "AR"
            text = "rejected by csmil hl7-sink --reject"
        } else if number <= nackFirst {
            code = "AE"
            text = "csmil hl7-sink --nack-first \(nackFirst): error \(number) of \(nackFirst)"
        } else {
            code = "AA"
            text = ""
        }
        let controlID = parsed?.value("MSH", 10) ?? ""
        let type =
            parsed.map { [$0.value("MSH", 9, 1), $0.value("MSH", 9, 2)].compactMap { $0 } }
            .map { $0.filter { !$0.isEmpty }.joined(separator: "^") } ?? "?"
        let message = Message(
            number: number, bytes: payload, type: type.isEmpty ? "?" : type, controlID: controlID, ackCode: code,
            line: Self.line(parsed, type: type, controlID: controlID, code: code))
        locked { received.append(message) }
        onMessage(message)
        let ack: HL7Message
        if let parsed {
            ack = HL7Acknowledgement.reply(to: parsed, code: code, text: text, controlID: "ACK\(number)")
        } else {
            ack = HL7Message(segments: [
                HL7Message.Segment(
                    "MSH",
                    [
                        "|", "^~\\&", "CSMIL-SINK", "", "", "", HL7ResultMessage.dateTime(Date()), "", "ACK",
                        "ACK\(number)",
                        "P", "2.5.1",
                    ]),
                HL7Message.Segment("MSA", ["AR", "", HL7Message.field(text)]),
            ])
        }
        return ack.bytes
    }

    /// `ORU^R01 evt_… accession=S26-01234 probability=0.83 label="…" → AA`.
    static func line(_ message: HL7Message?, type: String, controlID: String, code: String) -> String {
        guard let message else { return "? (not an HL7 v2 message) → \(code)" }
        var parts = [type.isEmpty ? "?" : type, controlID.isEmpty ? "-" : controlID]
        let accession = message.value("OBR", 3) ?? ""
        parts.append("accession=\(quoted(accession.isEmpty ? "-" : accession))")
        var probability = "-"
        var label: String?
        var status: String?
        for obx in message.segments("OBX") {
            switch message.value(of: obx, 3) {
            case "CSMIL-PROB": probability = message.value(of: obx, 5).isEmpty ? "-" : message.value(of: obx, 5)
            case "CSMIL-LABEL": label = message.value(of: obx, 5, 2)
            case "CSMIL-STATUS": status = message.value(of: obx, 5)
            default: break
            }
        }
        parts.append("probability=\(probability)")
        if let label { parts.append("label=\(quoted(label))") }
        if let status, status != "scored" { parts.append("status=\(status)") }
        parts.append("→ \(code)")
        return parts.joined(separator: " ")
    }

    private static func quoted(_ text: String) -> String {
        text.contains(where: { $0 == " " || $0 == "\"" })
            ? "\"" + text.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : text
    }

    private func locked<Result>(_ body: () throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
