import Glibc
import SystemPackage

/// The one wake-up primitive of csmil's own threads: a self-pipe. ``signal()`` from any thread makes
/// ``fileDescriptor`` readable until the woken thread calls ``drain()`` (or ``wait(timeout:)`` returns), so a
/// thread can sleep in ``wait(timeout:)`` alone, or in `poll` beside other descriptors (the watcher's inotify).
/// Signals do not queue up: several before a wait wake it once. Both ends are non-blocking and close-on-exec,
/// closed in `deinit` and nowhere else. (An `eventfd` would do with one descriptor, but Swift's Glibc module does
/// not export it.)
///
/// **Sendable.** The descriptors never change, and pipe reads and writes are atomic in the kernel.
public final class Wakeup: Sendable {
    /// The read end, to `poll` for `POLLIN`.
    public var fileDescriptor: Int32 { readEnd.rawValue }
    private let readEnd: FileDescriptor
    private let writeEnd: FileDescriptor

    /// Makes the pipe. Without a descriptor to spare (the process's open-file limit) nothing can wait, so this
    /// stops the process with the reason rather than let a thread spin.
    public init() {
        do {
            (readEnd, writeEnd) = try FileDescriptor.pipe(options: [.nonBlocking, .closeOnExec])
        } catch {
            fatalError("csmil: pipe2 failed (\(error)): raise the open-file limit (LimitNOFILE)")
        }
    }

    deinit {
        try? readEnd.close()
        try? writeEnd.close()
    }

    /// Wakes the waiting thread (writes one byte; a full pipe is already readable).
    public func signal() {
        _ = try? writeEnd.writeAll([1])
    }

    /// Empties the pipe, so the read end is no longer readable.
    public func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while let count = try? buffer.withUnsafeMutableBytes({ try readEnd.read(into: $0) }), count > 0 {}
    }

    /// Blocks until ``signal()`` or until `timeout` seconds have passed (nil: no limit); true when signalled.
    @discardableResult
    public func wait(timeout: Double? = nil) -> Bool {
        var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        let milliseconds = timeout.map { Int32(min(max(0, $0 * 1000).rounded(.up), Double(Int32.max))) } ?? -1
        let ready = poll(&descriptor, 1, milliseconds)
        guard ready > 0 else { return false }
        drain()
        return true
    }
}
