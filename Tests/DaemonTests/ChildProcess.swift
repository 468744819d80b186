import Foundation
import Testing

/// A child process started with `posix_spawn` and reaped by the test, so that a test gets the child's own peak
/// resident set besides its exit status — Foundation's `Process` reaps its children itself. Its stdout and stderr go
/// to files in a folder of the test's, read while it runs.
///
/// The peak is the child's `VmHWM` (/proc/PID/status), read every 5 ms while it runs, not `wait4`'s `ru_maxrss`:
/// glibc's `posix_spawn` clones with `CLONE_VM|CLONE_VFORK`, so at `execve` the kernel records the *test process's*
/// resident set as the child's maximum (seen: 1.4 GiB for a 266 MiB child while other tests held ResNet-50s). Memory
/// the child holds for less than 5 ms before it ends can be missed; a peak that matters lasts longer.
final class ChildProcess {
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String
    private var exit: Exit?
    private let peak: PeakSampler

    /// How the child ended.
    struct Exit {
        /// The exit status, or 128 + the signal that ended it (as a shell reports it).
        var status: Int32
        /// Whether a signal ended it (`status` is then 128 + the signal).
        var signalled: Bool
        /// Its peak resident set (`VmHWM`, sampled), bytes.
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
        peak = PeakSampler(pid: child)
        let sampler = peak
        Thread.detachNewThread { sampler.run() }
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
        var info = siginfo_t()
        guard waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid
        else { return false }
        exit = reap()
        return true
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

    /// Waits for the child to end and reaps it.
    @discardableResult
    func wait() -> Exit {
        if let exit { return exit }
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
        let ended = reap()
        exit = ended
        return ended
    }

    /// Reaps the child, which has ended (a zombie): the sampler stops first, so it never reads a reused pid.
    private func reap() -> Exit {
        let peakBytes = peak.stop()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        return Exit(
            status: signal == 0 ? (status >> 8) & 0xff : 128 + signal, signalled: signal != 0,
            peakResidentBytes: peakBytes)
    }
}

/// Reads a running child's `VmHWM` every 5 ms until stopped; the largest value read is its peak.
private final class PeakSampler: @unchecked Sendable {
    private let path: String
    private let lock = NSLock()
    private var stopped = false
    private var peak = 0

    init(pid: pid_t) { path = "/proc/\(pid)/status" }

    func run() {
        while sample() { usleep(5_000) }
    }

    /// One reading under the lock, so that none happens after `stop`; false once stopped.
    private func sample() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if stopped { return false }
        // A zombie's status has no VmHWM line (its memory is gone): the last reading stands.
        if let status = try? String(contentsOfFile: path, encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kB = Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "")
        {
            peak = max(peak, kB * 1024)
        }
        return true
    }

    /// Stops the sampling (after one last reading) and returns the peak.
    func stop() -> Int {
        _ = sample()
        lock.lock()
        defer { lock.unlock() }
        stopped = true
        return peak
    }
}
