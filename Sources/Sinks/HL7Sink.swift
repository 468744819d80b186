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

    private let lock = NSCondition()
    private var listener: Int32 = -1
    private var boundPort: UInt16
    private var connections: Set<Int32> = []
    private var received: [Message] = []
    private var stopped = false
    private var threadsRunning = 0

    /// A sink; nothing listens before ``start()``. `port` 0 picks a free port.
    public init(
        host: String = "127.0.0.1", port: UInt16 = 0, nackFirst: Int = 0, reject: Bool = false,
        onMessage: @escaping @Sendable (Message) -> Void = { _ in }
    ) {
        self.host = host
        boundPort = port
        self.nackFirst = nackFirst
        self.reject = reject
        self.onMessage = onMessage
    }

    deinit { stop() }

    /// The TCP port listened on.
    public var port: UInt16 { locked { boundPort } }

    /// `mllp://host:port` for clients.
    public var url: String { "mllp://\(host):\(port)" }

    /// Every message received so far, in order.
    public var messages: [Message] { locked { received } }

    /// Binds, listens and starts accepting connections on a thread of its own.
    public func start() throws(HL7Error) {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(boundPort).bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            throw HL7Error(
                code: .sinkListen, subject: host, message: "is not an IPv4 address",
                fix: "pass --host with an address such as 127.0.0.1")
        }
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Self.failure("create a socket", errno, host: host) }
        var one: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(descriptor, 64) == 0 else {
            let number = errno
            close(descriptor)
            throw Self.failure("listen on \(host):\(boundPort)", number, host: host)
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        locked {
            listener = descriptor
            boundPort = UInt16(bigEndian: actual.sin_port)
            threadsRunning += 1
        }
        let thread = Thread { [self] in acceptLoop(descriptor) }
        thread.name = "csmil-hl7-sink"
        thread.start()
    }

    /// Stops listening, closes every connection and waits for the sink's threads to end.
    public func stop() {
        lock.lock()
        stopped = true
        if listener >= 0 { shutdown(listener, Int32(SHUT_RDWR)) }
        for connection in connections { shutdown(connection, Int32(SHUT_RDWR)) }
        lock.broadcast()
        while threadsRunning > 0 { lock.wait() }
        if listener >= 0 {
            close(listener)
            listener = -1
        }
        lock.unlock()
    }

    private func acceptLoop(_ descriptor: Int32) {
        defer { threadFinished() }
        while true {
            let connection = accept(descriptor, nil, nil)
            if connection < 0 {
                if errno == EINTR { continue }
                return
            }
            let admitted = locked {
                guard !stopped else { return false }
                connections.insert(connection)
                threadsRunning += 1
                return true
            }
            guard admitted else {
                close(connection)
                return
            }
            let thread = Thread { [self] in serve(connection) }
            thread.name = "csmil-hl7-sink-connection"
            thread.start()
        }
    }

    private func threadFinished() {
        locked {
            threadsRunning -= 1
            lock.broadcast()
        }
    }

    /// Answers messages on one connection until the client closes it or the sink stops.
    private func serve(_ connection: Int32) {
        defer {
            locked { _ = connections.remove(connection) }
            close(connection)
            threadFinished()
        }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            while let payload = MLLPClient.takeFrame(from: &buffer) {
                let answer = handle(payload)
                guard sendAll(connection, MLLPClient.frame(answer)) else { return }
            }
            guard buffer.count < 64 << 20 else { return }
            let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            buffer.append(contentsOf: chunk[..<count])
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

    private func sendAll(_ connection: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes {
                send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            sent += count
        }
        return true
    }

    private static func failure(_ operation: String, _ number: Int32, host: String) -> HL7Error {
        HL7Error(
            code: .sinkListen, subject: host,
            message: "could not \(operation): \(String(cString: strerror(number)))",
            fix: number == EADDRINUSE
                ? "another program uses that port; pass a different --port" : "check --host and --port")
    }

    private func locked<Result>(_ body: () throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
