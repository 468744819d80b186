import Foundation
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The feature spill files under `<state>/work` (daemon spec "Bounded streaming"): one per slide in progress,
/// `<fingerprint>.features`, written tile by tile and memory-mapped for scoring, removed when the slide is done.
enum SpillFiles {
    /// `<state>/work` when the configuration names a state folder, else a folder under the system's temporary
    /// directory; created if missing.
    static func workDirectory(state: String?) throws -> String {
        let path =
            state.map { $0 + "/work" }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("csmil-work-\(getuid())").path
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw DaemonError(
                code: .stateUnwritable, subject: path,
                message: "the work folder for feature spill files cannot be created (\(error.localizedDescription))",
                fix: "check the [state] directory and its permissions")
        }
        return path
    }

    /// Spill files of a slide interrupted by a crash: the slide is scored again, its old features are useless.
    static func removeLeftoverSpillFiles(in folder: String, logger: Logger) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        for name in names where name.hasSuffix(".features") {
            try? FileManager.default.removeItem(atPath: folder + "/" + name)
            logger.info("removed a spill file left by an interrupted run", metadata: ["file": "\(name)"])
        }
    }
}

/// Writes feature bytes into the spill file at their tiles' places (`fsync` not needed: it is scratch).
final class SpillWriter {
    let path: String
    private var file: FileDescriptor?

    init(path: String) { self.path = path }

    deinit { try? file?.close() }

    func open() throws {
        do {
            file = try FileDescriptor.open(
                path, .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: [.ownerReadWrite])
        } catch {
            throw failure("cannot be created", error)
        }
    }

    /// Writes `bytes` at byte `position` of the file (the tiles come strip by strip, not in grid order).
    func write(_ bytes: UnsafeRawBufferPointer, at position: Int) throws {
        guard let file else { return }
        do {
            _ = try file.writeAll(toAbsoluteOffset: Int64(position), bytes)
        } catch {
            throw failure("cannot be written", error)
        }
    }

    func close() throws {
        guard let file else { return }
        self.file = nil
        do { try file.close() } catch { throw failure("cannot be closed", error) }
    }

    private func failure(_ what: String, _ error: any Error) -> PipelineError {
        // The errno travels with it: a full or read-only state folder is a wait, not a failure (ResourceProblem).
        PipelineError(
            code: .spill, subject: path, message: "the feature spill file \(what) (\(error))",
            fix: "check that the state/work folder exists, is writable and has room",
            systemError: (error as? Errno)?.rawValue)
    }
}

/// A spill file mapped read-only (`mmap`), for `Model.score`.
final class MappedFeatures {
    private var address: UnsafeMutableRawPointer?
    private let length: Int
    let buffer: UnsafeBufferPointer<Float>

    init(path: String, floats: Int) throws {
        length = floats * MemoryLayout<Float>.stride
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw PipelineError(
                code: .spill, subject: path, message: "cannot be opened to read the features back",
                fix: "check that nothing else removes files from the state/work folder")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, Int(status.st_size) == length else {
            throw PipelineError(
                code: .spill, subject: path, message: "holds \(status.st_size) bytes, \(length) expected",
                fix: "check that the state/work folder has room and that nothing else writes there")
        }
        guard let mapped = mmap(nil, length, PROT_READ, MAP_PRIVATE, descriptor, 0), mapped != MAP_FAILED else {
            throw PipelineError(
                code: .spill, subject: path, message: "cannot be mapped (\(String(cString: strerror(errno))))",
                fix: "check the memory limits of the csmil service (MemoryMax, ulimit -v)")
        }
        address = mapped
        buffer = UnsafeBufferPointer(start: mapped.assumingMemoryBound(to: Float.self), count: floats)
    }

    deinit { unmap() }

    func unmap() {
        if let address { munmap(address, length) }
        address = nil
    }
}
