import CCurl
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How HL7 messages are sent over MLLP (`[hl7]`).
public struct MLLPClientOptions: Sendable, Equatable {
    /// Seconds to establish the connection (TCP and TLS).
    public var connectTimeout: Double
    /// Seconds from sending a message to its ACK (`ack_timeout_seconds`); no ACK by then is a failed attempt.
    public var ackTimeout: Double
    /// Plain `mllp://` to a host other than loopback only when true (`allow_plain`).
    public var allowPlain: Bool
    /// A PEM bundle of CA certificates to trust instead of the system's (`mllps://`).
    public var caFile: String?
    /// A PEM client certificate for mutual TLS.
    public var clientCertificate: String?
    /// The client certificate's PEM private key.
    public var clientKey: String?

    /// Options with the documented defaults (10 s to connect, 30 s for the ACK, TLS unless loopback).
    public init(
        connectTimeout: Double = 10, ackTimeout: Double = 30, allowPlain: Bool = false, caFile: String? = nil,
        clientCertificate: String? = nil, clientKey: String? = nil
    ) {
        self.connectTimeout = connectTimeout
        self.ackTimeout = ackTimeout
        self.allowPlain = allowPlain
        self.caFile = caFile
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
    }
}

/// What one MLLP attempt gave, before it is judged.
public enum MLLPResponse: Sendable, Equatable {
    /// The receiver answered: the bytes inside the MLLP frame (an ACK, to be parsed).
    case answer([UInt8])
    /// No answer: connection refused or closed, TLS failure, or no ACK within the timeout.
    case transportFailure(timedOut: Bool, message: String)
    /// The worker is stopping; nothing is known and nothing is recorded.
    case cancelled

    /// Judges the attempt for the message whose MSH-10 is `controlID`; nil for a cancelled one.
    public func outcome(forControlID controlID: String) -> DeliveryOutcome? {
        switch self {
        case .cancelled:
            return nil
        case .transportFailure(let timedOut, let message):
            return .retry(reason: timedOut ? "timeout: \(message)" : message, status: nil, retryAfter: nil)
        case .answer(let bytes):
            do {
                return try HL7Acknowledgement(parsing: bytes).outcome(forControlID: controlID)
            } catch {
                return .retry(reason: "the answer is not an HL7 ACK: \(error.message)", status: nil, retryAfter: nil)
            }
        }
    }
}

/// An MLLP sender (HL7 v2 Minimal Lower Layer Protocol, release 2): each message framed as `VT message FS CR`, one
/// message in flight per connection, the answer read back in the same framing.
///
/// The connection is made by libcurl (`CURLOPT_CONNECT_ONLY`, then `curl_easy_send`/`curl_easy_recv` on it), so
/// `mllps://` gets exactly the TLS of the webhook — the system's OpenSSL, peer and host verification always on,
/// `ca_file`, `client_certificate` and `client_key` as in `[webhook]` — without a second TLS stack: libcurl is a
/// well-kept library already linked and tested here, where SwiftNIO with swift-nio-ssl would add a second
/// BoringSSL build and an event loop to a part that sends one small message at a time on its own thread.
///
/// The connection is kept between messages and checked before reuse (a receiver that closed it, or sent anything
/// unasked, gets a new one). Blocking: call it from the delivery worker's thread.
public final class MLLPClient {
    /// The options every send uses.
    public let options: MLLPClientOptions
    private var connection: Connection?
    private let errorBuffer: UnsafeMutablePointer<CChar>

    private static let globalInit: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    /// The MLLP start block (VT), end block (FS) and the carriage return after it.
    public static let startBlock: UInt8 = 0x0B
    public static let endBlock: UInt8 = 0x1C
    public static let carriageReturn: UInt8 = 0x0D

    /// Largest answer accepted (an ACK is a few hundred bytes).
    static let maximumAnswer = 1 << 20

    /// Makes a client; nothing is connected before the first ``send(_:to:isCancelled:)``.
    public init(options: MLLPClientOptions = MLLPClientOptions()) {
        _ = Self.globalInit
        self.options = options
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        close()
        errorBuffer.deallocate()
    }

    /// `message` inside an MLLP frame.
    public static func frame(_ message: [UInt8]) -> [UInt8] {
        [startBlock] + message + [endBlock, carriageReturn]
    }

    /// Takes the first complete frame's payload out of `buffer` (bytes before a start block are dropped); nil
    /// while no frame is complete.
    public static func takeFrame(from buffer: inout [UInt8]) -> [UInt8]? {
        guard let start = buffer.firstIndex(of: startBlock) else {
            buffer.removeAll()
            return nil
        }
        guard let end = buffer[start...].firstIndex(of: endBlock) else { return nil }
        let payload = Array(buffer[(start + 1)..<end])
        var consumed = end + 1
        if consumed < buffer.count && buffer[consumed] == carriageReturn { consumed += 1 }
        buffer.removeFirst(consumed)
        return payload
    }

    /// Where an `mllp://` or `mllps://` URL points, or why it cannot be used.
    public struct Endpoint: Sendable, Equatable {
        /// True for `mllps://`.
        public var tls: Bool
        public var host: String
        public var port: Int

        /// The URL libcurl connects to: `http://` or `https://`, used with CONNECT_ONLY (nothing HTTP is sent).
        var curlURL: String {
            let bracketed = host.contains(":") ? "[\(host)]" : host
            return "\(tls ? "https" : "http")://\(bracketed):\(port)"
        }

        /// Parses `mllp://HOST:PORT` or `mllps://HOST:PORT` (port 2575 when omitted; a trailing `/` is fine).
        public init(url: String) throws(HL7Error) {
            guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
                scheme == "mllp" || scheme == "mllps", let host = components.host, !host.isEmpty
            else {
                throw HL7Error(
                    code: .url, subject: url, message: "is not an mllp:// or mllps:// URL",
                    fix: "write mllp://HOST:PORT (loopback) or mllps://HOST:PORT (TLS)")
            }
            guard components.path.isEmpty || components.path == "/", components.query == nil,
                components.user == nil, components.password == nil
            else {
                throw HL7Error(
                    code: .url, subject: url, message: "has a path, query or credentials, which MLLP has not",
                    fix: "write only the scheme, host and port: mllps://HOST:PORT")
            }
            tls = scheme == "mllps"
            self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
            port = components.port ?? 2575
        }

        /// Whether the host is this machine (`localhost`, 127.0.0.0/8, `::1`).
        public var isLoopback: Bool {
            let name = host.lowercased()
            if name == "localhost" || name == "::1" { return true }
            var address = in_addr()
            return inet_pton(AF_INET, name, &address) == 1 && UInt32(bigEndian: address.s_addr) >> 24 == 127
        }
    }

    /// Sends one message to `url` and waits for its answer (at most ``MLLPClientOptions/ackTimeout`` seconds after
    /// the connection is up). `isCancelled` is polled every 100 ms; when it returns true the attempt is abandoned
    /// and the connection closed.
    public func send(_ message: [UInt8], to url: String, isCancelled: @escaping () -> Bool = { false }) -> MLLPResponse
    {
        let endpoint: Endpoint
        do {
            endpoint = try Endpoint(url: url)
        } catch {
            return .transportFailure(timedOut: false, message: error.description)
        }
        guard endpoint.tls || endpoint.isLoopback || options.allowPlain else {
            return .transportFailure(
                timedOut: false,
                message: "refused to send over plain mllp:// to \(endpoint.host), which is not loopback "
                    + "(use mllps://, or set [hl7] allow_plain = true on a trusted network)")
        }
        if let connection, connection.url != url || !connection.isReusable() { close() }
        if connection == nil {
            switch connect(endpoint, url: url, isCancelled: isCancelled) {
            case .success(let made): connection = made
            case .failure(let box): return box.response
            }
        }
        guard let connection else { return .transportFailure(timedOut: false, message: "not connected") }
        let deadline = Date().timeIntervalSince1970 + options.ackTimeout
        let framed = Self.frame(message)
        if let failure = connection.write(framed, deadline: deadline, isCancelled: isCancelled) {
            close()
            return failure
        }
        var buffer: [UInt8] = []
        while true {
            switch connection.read(into: &buffer, deadline: deadline, isCancelled: isCancelled) {
            case .some(let failure):
                close()
                return failure
            case .none:
                if let answer = Self.takeFrame(from: &buffer) { return .answer(answer) }
                if buffer.count > Self.maximumAnswer {
                    close()
                    return .transportFailure(
                        timedOut: false, message: "the answer from \(url) exceeds 1 MiB without an MLLP end block")
                }
            }
        }
    }

    /// Closes the connection, if any.
    public func close() {
        connection = nil
    }

    private func connect(
        _ endpoint: Endpoint, url: String, isCancelled: @escaping () -> Bool
    ) -> Result<Connection, MLLPResponseBox> {
        guard let handle = curl_easy_init() else {
            return .failure(MLLPResponseBox(.transportFailure(timedOut: false, message: "curl_easy_init failed")))
        }
        let connection = Connection(handle: handle, url: url, tls: endpoint.tls)
        errorBuffer[0] = 0
        let context = CancelContext(isCancelled: isCancelled)
        let contextPointer = Unmanaged.passUnretained(context).toOpaque()
        var setupFailure: CURLcode = CURLE_OK
        func check(_ result: CURLcode) { if result != CURLE_OK && setupFailure == CURLE_OK { setupFailure = result } }
        check(csmil_curl_setopt_string(handle, CURLOPT_URL, endpoint.curlURL))
        check(csmil_curl_setopt_long(handle, CURLOPT_CONNECT_ONLY, 1))
        check(csmil_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        check(csmil_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(options.connectTimeout)))
        check(csmil_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, endpoint.tls ? "https" : "http"))
        check(csmil_curl_setopt_string(handle, CURLOPT_PROXY, ""))
        check(csmil_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1))
        check(csmil_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2))
        check(csmil_curl_setopt_long(handle, CURLOPT_SSL_ENABLE_ALPN, 0))
        if let caFile = options.caFile { check(csmil_curl_setopt_string(handle, CURLOPT_CAINFO, caFile)) }
        if let certificate = options.clientCertificate {
            check(csmil_curl_setopt_string(handle, CURLOPT_SSLCERT, certificate))
        }
        if let key = options.clientKey { check(csmil_curl_setopt_string(handle, CURLOPT_SSLKEY, key)) }
        check(csmil_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer))
        check(csmil_curl_setopt_xferinfo_function(handle, Self.onProgress))
        check(csmil_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, contextPointer))
        check(csmil_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0))
        guard setupFailure == CURLE_OK else {
            return .failure(
                MLLPResponseBox(
                    .transportFailure(
                        timedOut: false,
                        message: "libcurl refused an option: \(String(cString: curl_easy_strerror(setupFailure)))")))
        }
        let result = withExtendedLifetime(context) { curl_easy_perform(handle) }
        // The error buffer and the cancel context belong to this call; the connection must not use them later.
        _ = csmil_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, nil)
        _ = csmil_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 1)
        _ = csmil_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, nil)
        if result == CURLE_ABORTED_BY_CALLBACK && context.cancelled { return .failure(MLLPResponseBox(.cancelled)) }
        guard result == CURLE_OK else {
            let detail =
                errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(result))
            return .failure(
                MLLPResponseBox(
                    .transportFailure(
                        timedOut: result == CURLE_OPERATION_TIMEDOUT,
                        message: "cannot connect to \(url): \(detail)" + Self.tlsHint(result))))
        }
        var socket = curl_socket_t(-1)
        guard csmil_curl_getinfo_socket(handle, &socket) == CURLE_OK, socket >= 0 else {
            return .failure(
                MLLPResponseBox(.transportFailure(timedOut: false, message: "libcurl gave no socket for \(url)")))
        }
        connection.socket = socket
        return .success(connection)
    }

    /// What to check for a TLS failure of the connect: the `[hl7]` key that fixes it.
    static func tlsHint(_ result: CURLcode) -> String {
        switch result {
        case CURLE_PEER_FAILED_VERIFICATION:
            return " (the receiver's certificate is not trusted for this host: set [hl7] ca_file to the CA that signed"
                + " it, or give the receiver a certificate for the host name in [hl7] url)"
        case CURLE_SSL_CACERT_BADFILE:
            return " ([hl7] ca_file cannot be read as a PEM bundle of CA certificates)"
        case CURLE_SSL_CERTPROBLEM:
            return " ([hl7] client_certificate or client_key cannot be used: check both are PEM files and belong"
                + " together)"
        case CURLE_SSL_CONNECT_ERROR:
            return " (the TLS handshake failed: check that the receiver speaks TLS on this port and, if it asks for"
                + " one, [hl7] client_certificate and client_key)"
        default:
            return ""
        }
    }

    private static func milliseconds(_ seconds: Double) -> Int {
        Int(max(1, min(seconds * 1000, Double(Int32.max))))
    }

    private final class CancelContext {
        let isCancelled: () -> Bool
        var cancelled = false
        init(isCancelled: @escaping () -> Bool) { self.isCancelled = isCancelled }
    }

    private static let onProgress: csmil_curl_xferinfo_callback = { context, _, _, _, _ in
        guard let context else { return 0 }
        let transfer = Unmanaged<CancelContext>.fromOpaque(context).takeUnretainedValue()
        if transfer.isCancelled() {
            transfer.cancelled = true
            return 1
        }
        return 0
    }

    /// A failed connect, as a value `Result` can carry.
    struct MLLPResponseBox: Error {
        let response: MLLPResponse
        init(_ response: MLLPResponse) { self.response = response }
    }

    /// One connected libcurl handle and its socket; `deinit` closes both (`curl_easy_cleanup`).
    private final class Connection {
        let handle: UnsafeMutableRawPointer
        let url: String
        /// `mllps://`: a failure before any answer may be the receiver refusing the client certificate.
        let tls: Bool
        var socket: curl_socket_t = -1

        init(handle: UnsafeMutableRawPointer, url: String, tls: Bool) {
            self.handle = handle
            self.url = url
            self.tls = tls
        }

        /// With TLS 1.3 the client's handshake ends before the receiver has checked the client certificate, so a
        /// refused (or missing) one shows only as a failed read or a closed connection after the message was sent.
        private func clientCertificateHint(_ buffer: [UInt8]) -> String {
            tls && buffer.isEmpty
                ? " (over TLS this is also how a receiver refuses a missing or untrusted client certificate: check "
                    + "[hl7] client_certificate and client_key)" : ""
        }

        deinit { curl_easy_cleanup(handle) }

        /// Whether the connection can carry another message: nothing has arrived on it since the last answer (a
        /// readable socket means the peer closed it or sent something unasked; TLS records that carry no data,
        /// such as session tickets, are fine).
        func isReusable() -> Bool {
            guard wait(for: Int16(POLLIN), milliseconds: 0) else { return true }
            var byte: UInt8 = 0
            var received = 0
            let result = curl_easy_recv(handle, &byte, 1, &received)
            return result == CURLE_AGAIN
        }

        /// Writes all of `bytes`; nil when done, else the failure.
        func write(_ bytes: [UInt8], deadline: Double, isCancelled: () -> Bool) -> MLLPResponse? {
            var offset = 0
            while offset < bytes.count {
                if isCancelled() { return .cancelled }
                var sent = 0
                let result = bytes.withUnsafeBytes {
                    curl_easy_send(handle, $0.baseAddress! + offset, bytes.count - offset, &sent)
                }
                switch result {
                case CURLE_OK:
                    offset += sent
                case CURLE_AGAIN:
                    if Date().timeIntervalSince1970 >= deadline {
                        return .transportFailure(timedOut: true, message: "sending to \(url) did not finish in time")
                    }
                    _ = wait(for: Int16(POLLOUT), milliseconds: 100)
                default:
                    return .transportFailure(
                        timedOut: false,
                        message: "sending to \(url) failed: \(String(cString: curl_easy_strerror(result)))")
                }
            }
            return nil
        }

        /// Reads what is there (waiting up to 100 ms at a time) into `buffer`; nil when something (or nothing yet)
        /// was read, else the failure.
        func read(into buffer: inout [UInt8], deadline: Double, isCancelled: () -> Bool) -> MLLPResponse? {
            var chunk = [UInt8](repeating: 0, count: 16 << 10)
            while true {
                if isCancelled() { return .cancelled }
                var received = 0
                let result = chunk.withUnsafeMutableBytes {
                    curl_easy_recv(handle, $0.baseAddress, $0.count, &received)
                }
                switch result {
                case CURLE_OK where received == 0:
                    return .transportFailure(
                        timedOut: false,
                        message: "\(url) closed the connection without an ACK" + clientCertificateHint(buffer))
                case CURLE_OK:
                    buffer.append(contentsOf: chunk[..<received])
                    return nil
                case CURLE_AGAIN:
                    if Date().timeIntervalSince1970 >= deadline {
                        return .transportFailure(timedOut: true, message: "no ACK from \(url) in time")
                    }
                    _ = wait(for: Int16(POLLIN), milliseconds: 100)
                default:
                    return .transportFailure(
                        timedOut: false,
                        message: "reading from \(url) failed: \(String(cString: curl_easy_strerror(result)))"
                            + clientCertificateHint(buffer))
                }
            }
        }

        /// `poll(2)` on the socket; true when the event (or an error or hang-up) is there.
        private func wait(for events: Int16, milliseconds: Int32) -> Bool {
            var descriptor = pollfd(fd: socket, events: events, revents: 0)
            while true {
                let ready = poll(&descriptor, 1, milliseconds)
                if ready < 0 && errno == EINTR { continue }
                return ready > 0
            }
        }
    }
}
