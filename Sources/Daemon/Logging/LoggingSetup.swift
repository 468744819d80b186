import Foundation
import Logging

/// Where log lines go: the journal (structured) when stderr is connected to it, stderr otherwise.
enum LogDestination: Equatable {
    case journal
    case stderr

    /// systemd sets `JOURNAL_STREAM=<device>:<inode>` for a service whose output goes to the
    /// journal; it counts only if stderr is still that very stream (sd-daemon(3) recommends this
    /// check, since children inherit the variable but not always the stream).
    static func detect(environment: [String: String] = ProcessInfo.processInfo.environment) -> LogDestination {
        guard let stream = environment["JOURNAL_STREAM"] else { return .stderr }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return .stderr }
        var status = stat()
        guard fstat(STDERR_FILENO, &status) == 0 else { return .stderr }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode ? .journal : .stderr
    }
}

enum LoggingSetup {
    /// Installs the process-wide log handler. Call once, at the start of a command.
    static func bootstrap(level: Logger.Level, destination: LogDestination = .detect()) {
        LoggingSystem.bootstrap { label in
            CSMILLogHandler(label: label, level: level, sink: destination == .journal ? .journal : .stderr)
        }
    }
}
