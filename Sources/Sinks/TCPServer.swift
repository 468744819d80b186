import Errors
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The plain TCP server under both sinks (`csmil webhook-sink`, `csmil hl7-sink`): listens on an IPv4 address,
/// accepts on a thread of its own and serves each connection on a thread of its own; ``stop()`` shuts the listener
/// and every connection down and waits until all the threads have ended. POSIX sockets and threads rather than
/// SwiftNIO: two small tools for trying a deployment and for the tests, a connection or two at a time.
///
/// `@unchecked Sendable`: every `var` is read and written only while `lock` is held.
final class TCPServer: @unchecked Sendable {
    /// The address listened on.
    let host: String
    private let threadName: String
    private let lock = NSCondition()
    private var listener: Int32 = -1
    private var boundPort: UInt16
    private var connections: Set<Int32> = []
    private var stopped = false
    private var threadsRunning = 0

    /// A server; nothing listens before ``start(code:serve:)``. `port` 0 picks a free port.
    init(host: String, port: UInt16, threadName: String) {
        self.host = host
        boundPort = port
        self.threadName = threadName
    }

    deinit { stop() }

    /// The TCP port listened on.
    var port: UInt16 { locked { boundPort } }

    /// Whether ``stop()`` was called.
    var isStopped: Bool { locked { stopped } }

    /// Binds and listens, then serves each connection with `serve` on a thread of its own (the connection is
    /// closed when `serve` returns). A failure is thrown with `code`, naming the address and the fix.
    func start(code: SinkError.Code, serve: @escaping @Sendable (_ connection: Int32) -> Void) throws(SinkError) {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(boundPort).bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            throw SinkError(
                code: code, subject: host, message: "is not an IPv4 address",
                fix: "pass --host with an address such as 127.0.0.1")
        }
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw failure(code, "create a socket", errno) }
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
            throw failure(code, "listen", number)
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
        let thread = Thread { [self] in acceptLoop(descriptor, serve: serve) }
        thread.name = threadName
        thread.start()
    }

    /// Stops listening, shuts every connection down and waits for the server's threads to end.
    func stop() {
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

    private func acceptLoop(_ descriptor: Int32, serve: @escaping @Sendable (Int32) -> Void) {
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
            let thread = Thread { [self] in
                serve(connection)
                locked { _ = connections.remove(connection) }
                close(connection)
                threadFinished()
            }
            thread.name = threadName + "-connection"
            thread.start()
        }
    }

    private func threadFinished() {
        locked {
            threadsRunning -= 1
            lock.broadcast()
        }
    }

    private func failure(_ code: SinkError.Code, _ operation: String, _ number: Int32) -> SinkError {
        SinkError(
            code: code, subject: "\(host):\(locked { boundPort })",
            message: "could not \(operation): \(String(cString: strerror(number)))",
            fix: number == EADDRINUSE
                ? "another program uses that port; pass a different --port" : "check --host and --port")
    }

    private func locked<Result>(_ body: () throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    // MARK: - Connection I/O

    /// Appends what the peer sends next (up to 16 KiB) to `buffer`; false when the peer closed the connection or it
    /// failed.
    static func receive(_ connection: Int32, into buffer: inout [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            buffer.append(contentsOf: chunk[..<count])
            return true
        }
    }

    /// Sends all of `bytes`; false when the connection failed.
    static func sendAll(_ connection: Int32, _ bytes: [UInt8]) -> Bool {
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
}

/// A sink could not listen.
public struct SinkError: CSMILError, Sendable, Equatable {
    public enum Code: String, ErrorCode {
        /// `csmil webhook-sink`: the address is not usable or the port cannot be bound.
        case webhookListen = "webhook_sink.listen"
        /// `csmil hl7-sink`: the same.
        case hl7Listen = "hl7_sink.listen"
    }

    public var code: Code
    /// The address: "HOST" or "HOST:PORT".
    public var subject: String
    public var message: String
    public var fix: String

    public init(code: Code, subject: String, message: String, fix: String) {
        self.code = code
        self.subject = subject
        self.message = message
        self.fix = fix
    }
}
