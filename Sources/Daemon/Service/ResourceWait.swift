import Errors
import Foundation
import Logging
import Notify
import Store
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A folder csmil must write to has no room or refuses writes (`ENOSPC`, `EDQUOT`, `EROFS`, `EACCES`, `EPERM`; a
/// full SQLite file): not a failure of the slide. The daemon waits until the folder takes writes again, then goes on
/// with the same slide; nothing is failed, dropped or reported twice meanwhile.
struct ResourceProblem: CSMILError, Sendable, Equatable {
    enum Code: String, ErrorCode {
        /// The file system is full or a quota is exhausted.
        case diskFull = "resource.disk_full"
        /// The folder is read-only or csmil may not write there.
        case notWritable = "resource.not_writable"
    }

    var code: Code
    /// The folder concerned: `[output] directory` or `[state] directory`.
    var subject: String
    /// What failed, e.g. "could not write …/tiles.geojson: No space left on device".
    var message: String
    var fix: String
    /// The free bytes the failed write needed, when known (the spill file's size); ``isResolved()`` waits for them.
    var neededBytes: UInt64 = 0

    /// Which folder a failure concerns, for the message and the probe.
    enum Folder: String, Sendable {
        case output = "output folder"
        case state = "state folder"
    }

    init(code: Code, folder: String, which: Folder, cause: String) {
        self.code = code
        subject = folder
        message = "the \(which.rawValue) " + (code == .diskFull ? "is full" : "refuses writes") + " (\(cause))"
        fix =
            code == .diskFull
            ? "free space there (or raise the quota); csmil waits and goes on by itself"
            : "make it writable for the user csmil runs as (mount it read-write, chown/chmod); csmil waits and "
                + "goes on by itself"
    }

    /// The problem behind `error`, when it is one of a folder rather than of the slide: a ``ReportError`` (output
    /// folder), a spill file's ``PipelineError`` (state folder) or a full SQLite file (state folder); nil otherwise.
    static func classify(_ error: any Error, outputDirectory: String, stateDirectory: String) -> ResourceProblem? {
        if let error = error as? ReportError {
            switch error.code {
            case .diskFull:
                return ResourceProblem(
                    code: .diskFull, folder: outputDirectory, which: .output,
                    cause: error.subject + ": " + error.message)
            case .permissionDenied:
                return ResourceProblem(
                    code: .notWritable, folder: outputDirectory, which: .output,
                    cause: error.subject + ": " + error.message)
            default:
                return nil
            }
        }
        if let error = error as? PipelineError, error.code == .spill, let number = error.systemError {
            var problem = fromErrno(
                number, folder: stateDirectory, which: .state, cause: error.subject + ": " + error.message)
            problem?.neededBytes = error.neededBytes ?? 0
            return problem
        }
        if let error = error as? SQLiteError, error.code == .diskFull {
            return ResourceProblem(
                code: .diskFull, folder: stateDirectory, which: .state, cause: error.subject + ": " + error.message)
        }
        return nil
    }

    /// The problem an `errno` names, or nil when it is not one of a folder.
    static func fromErrno(_ number: Int32, folder: String, which: Folder, cause: String) -> ResourceProblem? {
        switch number {
        case ENOSPC, EDQUOT: return ResourceProblem(code: .diskFull, folder: folder, which: which, cause: cause)
        case EROFS, EACCES, EPERM:
            return ResourceProblem(code: .notWritable, folder: folder, which: which, cause: cause)
        default: return nil
        }
    }

    /// Whether the folder takes writes again: the bytes the failed write needed plus 1 MiB are free for csmil's
    /// user, and a small file can be created, written, `fsync`ed and removed there.
    func isResolved() -> Bool {
        var info = statvfs()
        guard statvfs(subject, &info) == 0, UInt64(info.f_bavail) * UInt64(info.f_frsize) >= neededBytes + (1 << 20)
        else {
            return false
        }
        let probe = subject + "/.csmil-probe.\(getpid())"
        let descriptor = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return false }
        defer { unlink(probe) }
        let bytes = [UInt8](repeating: 0, count: 4096)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor) == 0
        return close(descriptor) == 0 && written == bytes.count && synced
    }
}

/// The daemon's one view of a folder that has no room or refuses writes, shared by every worker: while a problem is
/// open no worker claims another slide (they would fail the same way one by one), STATUS= and `csmil status` say
/// why, and the watchdog stays fed (waiting is not a hang). The first failure is logged as an error with the
/// folder and the fix, the recovery once as a notice with how long it lasted.
final class ResourceGate: Sendable {
    private struct State {
        var problem: ResourceProblem?
        var since: Double?
        var failures = 0
    }

    private let state = Mutex(State())
    private let progress: DaemonProgress
    private let logger: Logger

    init(progress: DaemonProgress, logger: Logger) {
        self.progress = progress
        self.logger = logger
    }

    /// The open problem, if any.
    var problem: ResourceProblem? { state.withLock { $0.problem } }

    /// The wait after `failures` consecutive failures: 1, 2, 4, 8, 15, 15 … seconds.
    static func backoff(failures: Int) -> Double { min(15, pow(2, Double(max(0, failures - 1)))) }

    /// A write failed for `problem`; returns the seconds to wait before trying again.
    func failed(_ problem: ResourceProblem, slide: String?, now: Double = Date().timeIntervalSince1970) -> Double {
        let (failures, first, changed) = state.withLock { state -> (Int, Bool, Bool) in
            let first = state.problem == nil
            let changed = state.problem != problem
            if first { state.since = now }
            state.problem = problem
            state.failures += 1
            return (state.failures, first, changed)
        }
        let delay = Self.backoff(failures: failures)
        progress.setWaiting("waiting: \(problem.message); retrying every \(Int(Self.backoff(failures: 6))) s")
        var metadata: Logger.Metadata = [
            "code": "\(problem.code.rawValue)", "folder": "\(problem.subject)", "error": "\(problem.description)",
            "retry_in_seconds": "\(Int(delay))", "message_id": "\(MessageID.resourceWait.rawValue)",
        ]
        if let slide { metadata["slide"] = "\(slide)" }
        if first || changed {
            logger.error("waiting for room: no slide is failed meanwhile", metadata: metadata)
        } else {
            logger.debug("still waiting for room", metadata: metadata)
        }
        return delay
    }

    /// Writes went through again.
    func cleared(now: Double = Date().timeIntervalSince1970) {
        let recovered = state.withLock { state -> (ResourceProblem, Double)? in
            guard let problem = state.problem, let since = state.since else { return nil }
            state = State()
            return (problem, since)
        }
        guard let (problem, since) = recovered else { return }
        progress.setWaiting(nil)
        logger.notice(
            "room again; going on",
            metadata: [
                "folder": "\(problem.subject)", "waited_seconds": "\(Int(max(0, now - since)))",
                "message_id": "\(MessageID.resourceRecovered.rawValue)",
            ])
    }

    /// With a problem open: whether its folder takes writes again (then the problem is cleared), else the seconds
    /// to wait before asking again. Nil when there is no problem.
    func probe() -> Double? {
        guard let problem else { return nil }
        if problem.isResolved() {
            cleared()
            return nil
        }
        return failed(problem, slide: nil)
    }
}
