import Foundation
import Testing

/// A child process started with `posix_spawn` and reaped with `wait4` (Foundation's `Process` reaps its children
/// itself), with its peak resident set. Its stdout and stderr go to files in a folder of the test's, read while it
/// runs.
///
/// The peak is the largest `VmHWM` of `/proc/<pid>/status` seen while the child runs (sampled every 2 ms while a
/// test waits on it), not `wait4`'s `ru_maxrss`: glibc's `posix_spawn` starts the child with `CLONE_VM | CLONE_VFORK`,
/// and Linux carries the high-water mark of the memory the child had before `exec` — the whole test process's — into
/// `ru_maxrss` (a `/bin/true` spawned by a process of 800 MiB reports 813 MiB). `VmHWM` belongs to the child's own
/// memory after `exec`. What it can miss is growth within the last 2 ms before the child exits.
final class ChildProcess {
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String
    private var exit: Exit?
    /// The largest `VmHWM` seen so far, bytes.
    private var peakSampled = 0

    /// How the child ended.
    struct Exit {
        /// The exit status, or 128 + the signal that ended it (as a shell reports it).
        var status: Int32
        /// Whether a signal ended it (`status` is then 128 + the signal).
        var signalled: Bool
        /// Its peak resident set (the largest `VmHWM` sampled while it ran), bytes.
        var peakResidentBytes: Int
    }

    /// Starts `executable` with `arguments`; its output goes to `<folder>/<name>.stdout` and `.stderr`.
    init(
        _ executable: URL, _ arguments: [String], outputIn folder: URL, name: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        stdoutPath = folder.appendingPathComponent(name + ".stdout").path
        stderrPath = folder.appendingPathComponent(name + ".stderr").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable.path, &actions, nil, argv, envp)
        try #require(result == 0, "posix_spawn \(executable.path): \(String(cString: strerror(result)))")
        pid = child
    }

    deinit {
        if exit == nil {
            kill(pid, SIGKILL)
            _ = wait()
        }
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Whether the child has ended (reaping it if so).
    var hasExited: Bool {
        if exit != nil { return true }
        sample()
        var status: Int32 = 0
        var usage = rusage()
        guard wait4(pid, &status, WNOHANG, &usage) == pid else { return false }
        exit = Self.exit(status: status, peak: peakSampled)
        return true
    }

    /// Reads the child's `VmHWM` (nothing once it has exited).
    private func sample() {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kibibytes = Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ")[0])
        else { return }
        peakSampled = max(peakSampled, kibibytes * 1024)
    }

    /// Waits until stderr contains `text`; false if the child ended first or `timeout` seconds passed (a ceiling
    /// for a broken build, not a measurement).
    func waitForStderr(containing text: String, timeout: Double = 120) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if stderr.contains(text) { return true }
            if hasExited { return stderr.contains(text) }
            usleep(20_000)
        }
        return false
    }

    /// Sends `signal`.
    func send(_ signal: Int32) { kill(pid, signal) }

    /// Waits for the child to end (sampling its peak resident set meanwhile) and reaps it.
    @discardableResult
    func wait() -> Exit {
        while !hasExited { usleep(2000) }
        return exit!
    }

    private static func exit(status: Int32, peak: Int) -> Exit {
        let signal = status & 0x7f
        return Exit(
            status: signal == 0 ? (status >> 8) & 0xff : 128 + signal, signalled: signal != 0, peakResidentBytes: peak)
    }
}
