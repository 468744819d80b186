import Glibc

/// A self-pipe that wakes a thread blocked in `poll`: ``signal()`` from any thread makes
/// ``fileDescriptor`` readable until the waiting thread calls ``drain()``. Both ends are
/// non-blocking and close-on-exec (`pipe`, `fcntl`), closed in `deinit` and nowhere else.
/// (An `eventfd` would do with one descriptor, but Swift's Glibc module does not export it.)
///
/// **Sendable.** The descriptors never change, and pipe reads and writes are atomic in the kernel.
final class Wakeup: Sendable {
    /// The read end, to `poll` for `POLLIN`.
    let fileDescriptor: Int32
    private let writeEnd: Int32

    init() throws(WatchError) {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            throw WatchError(
                code: .systemCallFailed, path: "pipe", message: "pipe failed (\(Errno(errno)))",
                fix: "raise the open-file limit (LimitNOFILE) of the service")
        }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        fileDescriptor = ends[0]
        writeEnd = ends[1]
    }

    deinit {
        close(fileDescriptor)
        close(writeEnd)
    }

    /// Makes the read end readable (writes one byte; a full pipe is already readable).
    func signal() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    /// Empties the pipe, so the read end is no longer readable.
    func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while buffer.withUnsafeMutableBytes({ read(fileDescriptor, $0.baseAddress, $0.count) }) > 0 {}
    }
}
