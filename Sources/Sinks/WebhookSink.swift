import Errors
import Foundation
import Notify

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small webhook receiver for trying a deployment before the LIS is ready (`csmil webhook-sink`), and the real
/// HTTP server the tests deliver to.
///
/// HTTP/1.1 over POSIX sockets on an IPv4 address (loopback by default), one thread per connection, keep-alive,
/// bodies with `Content-Length`. Each POST is checked (Standard Webhooks signature by any of the secret's keys,
/// `webhook-timestamp` within ±``tolerance`` seconds), recorded, reported to ``onEvent`` with a one-line summary,
/// and answered: 401 when the check fails, else 500 for the first ``failFirst`` requests, else ``status`` (200).
/// A custom ``Responder`` can replace that choice (tests: Retry-After, never answering).
///
/// `@unchecked Sendable`: every `var` is read and written only while `lock` is held.
public final class WebhookSink: @unchecked Sendable {
    /// A request as received.
    public struct Request: Sendable, Equatable {
        /// 1 for the first request the sink received.
        public var number: Int
        public var method: String
        public var path: String
        /// Header names in lower case.
        public var headers: [String: String]
        /// The body bytes exactly as received.
        public var body: [UInt8]
        /// Unix seconds when it was complete.
        public var receivedAt: Double
    }

    /// The signature and timestamp check of a request.
    public enum Verdict: Sendable, Equatable {
        case verified
        case rejected(String)
    }

    /// How to answer a request.
    public struct Reply: Sendable {
        public var status: Int
        public var headers: [(name: String, value: String)]
        /// Never answer: keep the connection open, silent, until the client gives up or the sink stops.
        public var hang: Bool

        public init(status: Int, headers: [(name: String, value: String)] = [], hang: Bool = false) {
            self.status = status
            self.headers = headers
            self.hang = hang
        }

        /// A reply that never comes.
        public static let never = Reply(status: 0, hang: true)
    }

    /// A received request with its check and answer, and the line `csmil webhook-sink` prints for it.
    public struct Event: Sendable {
        public var request: Request
        public var verdict: Verdict
        /// The status answered (0 when the sink never answered).
        public var status: Int
        public var line: String
    }

    /// Chooses the reply to a request; the default one implements failFirst/status/401.
    public typealias Responder = @Sendable (Request, Verdict) -> Reply

    /// The address listened on.
    public let host: String
    /// How far `webhook-timestamp` may be from the sink's clock, in seconds (300: ±5 min).
    public let tolerance: Double
    public let failFirst: Int
    public let status: Int
    private let secret: WebhookSecret
    private let responder: Responder?
    private let onEvent: @Sendable (Event) -> Void

    private let server: TCPServer
    private let lock = NSLock()
    private var requestCount = 0
    private var received: [Event] = []

    /// A sink; nothing listens before ``start()``. `port` 0 picks a free port (read ``port`` after starting).
    public init(
        host: String = "127.0.0.1", port: UInt16 = 0, secret: WebhookSecret, failFirst: Int = 0, status: Int = 200,
        tolerance: Double = 300, responder: Responder? = nil, onEvent: @escaping @Sendable (Event) -> Void = { _ in }
    ) {
        self.host = host
        server = TCPServer(host: host, port: port, threadName: "csmil-webhook-sink")
        self.secret = secret
        self.failFirst = failFirst
        self.status = status
        self.tolerance = tolerance
        self.responder = responder
        self.onEvent = onEvent
    }

    deinit { stop() }

    /// The TCP port listened on.
    public var port: UInt16 { server.port }

    /// `http://host:port/` for clients.
    public var url: String { "http://\(host):\(port)/" }

    /// Every request received so far, in order.
    public var events: [Event] { locked { received } }

    /// Binds, listens and starts accepting connections on a thread of its own.
    public func start() throws(SinkError) {
        try server.start(code: .webhookListen) { [self] connection in serve(connection) }
    }

    /// Stops listening, closes every connection and waits for the sink's threads to end.
    public func stop() { server.stop() }

    /// Serves requests on one connection until the client closes it or the sink stops.
    private func serve(_ connection: Int32) {
        var buffer: [UInt8] = []
        while true {
            guard let (head, bodyStart) = readHead(connection, &buffer) else { return }
            guard let parsed = Self.parseHead(head) else {
                write(connection, status: 400, headers: [], close: true)
                return
            }
            if parsed.headers["transfer-encoding"] != nil {
                write(connection, status: 411, headers: [], close: true)
                return
            }
            let length = Int(parsed.headers["content-length"] ?? "0") ?? -1
            guard length >= 0, length <= 64 << 20 else {
                write(connection, status: 413, headers: [], close: true)
                return
            }
            buffer.removeFirst(bodyStart)
            while buffer.count < length {
                guard TCPServer.receive(connection, into: &buffer) else { return }
            }
            let body = Array(buffer.prefix(length))
            buffer.removeFirst(length)

            let number = locked {
                requestCount += 1
                return requestCount
            }
            let request = Request(
                number: number, method: parsed.method, path: parsed.path, headers: parsed.headers, body: body,
                receivedAt: Date().timeIntervalSince1970)
            let verdict = request.method == "POST" ? verify(request) : .rejected("method \(request.method) is not POST")
            let reply = responder?(request, verdict) ?? defaultReply(request, verdict)
            let event = Event(
                request: request, verdict: verdict, status: reply.hang ? 0 : reply.status,
                line: Self.line(request, verdict, status: reply.hang ? nil : reply.status))
            locked { received.append(event) }
            onEvent(event)
            if reply.hang {
                waitForClose(connection)
                return
            }
            let closing = parsed.headers["connection"]?.lowercased() == "close"
            guard write(connection, status: reply.status, headers: reply.headers, close: closing), !closing else {
                return
            }
        }
    }

    private func defaultReply(_ request: Request, _ verdict: Verdict) -> Reply {
        if case .rejected = verdict { return Reply(status: 401) }
        if request.number <= failFirst { return Reply(status: 500) }
        return Reply(status: status)
    }

    /// The Standard Webhooks check: the three headers present, the timestamp within the window, a matching
    /// signature.
    public func verify(_ request: Request) -> Verdict {
        guard let id = request.headers["webhook-id"], let timestampText = request.headers["webhook-timestamp"],
            let signature = request.headers["webhook-signature"]
        else { return .rejected("missing webhook-id, webhook-timestamp or webhook-signature") }
        guard let timestamp = Int64(timestampText) else { return .rejected("webhook-timestamp is not a number") }
        let skew = Double(timestamp) - request.receivedAt
        guard abs(skew) <= tolerance else {
            return .rejected("timestamp \(Int(skew)) s from this clock (allowed ±\(Int(tolerance)) s)")
        }
        guard WebhookSigner(secret: secret).verify(id: id, timestamp: timestamp, body: request.body, header: signature)
        else { return .rejected("bad signature") }
        return .verified
    }

    /// One line per event: id, type, slide, probability and label, verdict, status.
    static func line(_ request: Request, _ verdict: Verdict, status: Int?) -> String {
        var parts: [String] = [request.headers["webhook-id"] ?? "-"]
        let object = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any]
        if let object, let type = object["type"] as? String {
            parts.append(type)
            let data = object["data"] as? [String: Any]
            let slide = (data?["slide"] as? [String: Any])?["name"] as? String
            parts.append(Self.quoted(slide ?? "?"))
            if let result = data?["result"] as? [String: Any] {
                parts.append("probability=\(result["probability"].map { "\($0)" } ?? "?")")
                parts.append("label=\(Self.quoted(result["label"] as? String ?? "?"))")
            } else if let status = data?["status"] as? String {
                parts.append("status=\(status)")
            }
        } else if let object, let resourceType = object["resourceType"] as? String {
            parts.append("fhir.\(resourceType)")
            // One DiagnosticReport with contained resources, or a transaction Bundle of them.
            let resources =
                resourceType == "Bundle"
                ? (object["entry"] as? [[String: Any]] ?? []).compactMap { $0["resource"] as? [String: Any] }
                : [object] + (object["contained"] as? [[String: Any]] ?? [])
            let report = resources.first { ($0["resourceType"] as? String) == "DiagnosticReport" } ?? [:]
            let extensions = report["extension"] as? [[String: Any]] ?? []
            let slide = extensions.first { ($0["url"] as? String) == "urn:csmil:slide-name" }?["valueString"] as? String
            parts.append(Self.quoted(slide ?? "?"))
            if let observation = resources.first(where: { ($0["valueQuantity"] as? [String: Any]) != nil }),
                let quantity = observation["valueQuantity"] as? [String: Any]
            {
                parts.append("probability=\(quantity["value"].map { "\($0)" } ?? "?")")
                let label = ((observation["interpretation"] as? [[String: Any]])?.first?["text"] as? String) ?? "?"
                parts.append("label=\(Self.quoted(label))")
            }
        } else {
            parts.append("\(request.method) \(request.path) (\(request.body.count) bytes, not a csmil event)")
        }
        switch verdict {
        case .verified: parts.append("verified")
        case .rejected(let reason): parts.append("rejected (\(reason))")
        }
        parts.append(status.map { "→ \($0)" } ?? "→ no answer")
        return parts.joined(separator: " ")
    }

    private static func quoted(_ text: String) -> String {
        text.contains(where: { $0 == " " || $0 == "\"" })
            ? "\"" + text.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : text
    }

    // MARK: - Socket I/O

    /// Reads until the end of the header block; returns the head text and where the body starts in `buffer`.
    private func readHead(_ connection: Int32, _ buffer: inout [UInt8]) -> (String, Int)? {
        let terminator: [UInt8] = [13, 10, 13, 10]
        var searchFrom = 0
        while true {
            if buffer.count >= 4 {
                for index in searchFrom...(buffer.count - 4) where Array(buffer[index..<index + 4]) == terminator {
                    return (String(decoding: buffer[..<index], as: UTF8.self), index + 4)
                }
                searchFrom = buffer.count - 3
            }
            guard buffer.count < 64 << 10, TCPServer.receive(connection, into: &buffer) else { return nil }
        }
    }

    /// Holds a connection without answering until the peer closes it or the sink stops.
    private func waitForClose(_ connection: Int32) {
        var scratch = [UInt8](repeating: 0, count: 4096)
        while !server.isStopped {
            var descriptor = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 100)
            if ready > 0 {
                let count = scratch.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
                if count <= 0 { return }
            }
        }
    }

    @discardableResult
    private func write(_ connection: Int32, status: Int, headers: [(name: String, value: String)], close: Bool) -> Bool
    {
        let body = status == 401 ? "signature or timestamp rejected\n" : ""
        var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\nContent-Length: \(body.utf8.count)\r\n"
        head += "Content-Type: text/plain\r\n"
        for header in headers { head += "\(header.name): \(header.value)\r\n" }
        if close { head += "Connection: close\r\n" }
        return TCPServer.sendAll(connection, Array((head + "\r\n" + body).utf8))
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 202: "Accepted"
        case 204: "No Content"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 408: "Request Timeout"
        case 410: "Gone"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }

    private struct Head {
        var method: String
        var path: String
        var headers: [String: String]
    }

    private static func parseHead(_ text: String) -> Head? {
        let lines = text.components(separatedBy: "\r\n")
        let requestLine = lines[0].split(separator: " ")
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1.") else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Head(method: String(requestLine[0]), path: String(requestLine[1]), headers: headers)
    }

    private func locked<Result>(_ body: () throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
