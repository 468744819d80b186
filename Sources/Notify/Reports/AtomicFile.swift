import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file that appears under its final name complete or not at all: bytes go to a temporary file in the same
/// folder (`.csmil-tmp.<name>.<pid>.<random>`), which ``commit()`` flushes, `fsync`s and `rename`s over the
/// final name. Dropping an uncommitted file closes and removes the temporary one. The folder itself is not
/// `fsync`ed here: the caller does that once per batch of renames (``syncDirectory(_:)``).
final class AtomicFile {
    /// The prefix of every temporary name, so that leftovers of a crash can be recognised and removed.
    static let temporaryPrefix = ".csmil-tmp."

    let finalPath: String
    let temporaryPath: String
    private var file: FileDescriptor?
    private var buffer: [UInt8] = []
    private var committed = false
    private static let bufferSize = 1 << 16

    /// Creates the temporary file for `name` in `directory` (`open(2)` with `O_CREAT | O_EXCL`).
    init(directory: String, name: String) throws(ReportError) {
        finalPath = directory + "/" + name
        temporaryPath =
            directory + "/" + Self.temporaryPrefix + name + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        do {
            file = try FileDescriptor.open(
                temporaryPath, .writeOnly, options: [.create, .exclusiveCreate, .closeOnExec],
                permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            throw .system("create a temporary file", path: temporaryPath, errno: (error as? Errno)?.rawValue ?? EIO)
        }
        buffer.reserveCapacity(Self.bufferSize)
    }

    deinit {
        try? file?.close()
        if !committed { unlink(temporaryPath) }
    }

    /// Appends bytes (buffered).
    func write(_ bytes: UnsafeRawBufferPointer) throws(ReportError) {
        if buffer.count + bytes.count > Self.bufferSize { try flush() }
        if bytes.count >= Self.bufferSize {
            try writeAll(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    /// Appends a string's UTF-8 bytes.
    func write(_ text: String) throws(ReportError) {
        var text = text
        var failure: ReportError?
        text.withUTF8 { bytes in
            do throws(ReportError) { try write(UnsafeRawBufferPointer(bytes)) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Appends bytes from any contiguous collection.
    func write(_ bytes: [UInt8]) throws(ReportError) {
        var failure: ReportError?
        bytes.withUnsafeBytes { raw in
            do throws(ReportError) { try write(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Writes the buffer out, `fsync`s, closes and renames the file over its final name.
    func commit() throws(ReportError) {
        try flush()
        guard let file else { return }
        if fsync(file.rawValue) != 0 { throw .system("fsync", path: temporaryPath, errno: errno) }
        self.file = nil
        do { try file.close() } catch {
            throw .system("close", path: temporaryPath, errno: (error as? Errno)?.rawValue ?? EIO)
        }
        if rename(temporaryPath, finalPath) != 0 {
            throw .system("rename into place", path: finalPath, errno: errno)
        }
        committed = true
    }

    private func flush() throws(ReportError) {
        guard !buffer.isEmpty else { return }
        var failure: ReportError?
        buffer.withUnsafeBytes { raw in
            do throws(ReportError) { try writeAll(raw) } catch { failure = error }
        }
        if let failure { throw failure }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes every byte (swift-system retries `EINTR` and short writes).
    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws(ReportError) {
        guard let file else { return }
        do {
            _ = try file.writeAll(bytes)
        } catch {
            throw .system("write", path: temporaryPath, errno: (error as? Errno)?.rawValue ?? EIO)
        }
    }

    /// `fsync(2)` of a folder, so that the renames and unlinks inside it are durable.
    static func syncDirectory(_ path: String) throws(ReportError) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if descriptor < 0 { throw .system("open the folder to fsync it", path: path, errno: errno) }
        defer { close(descriptor) }
        if fsync(descriptor) != 0 { throw .system("fsync the folder", path: path, errno: errno) }
    }
}
