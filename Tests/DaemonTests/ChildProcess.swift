import Foundation
import Testing

/// A child process with the kernel's account of its own resources (its peak resident set) besides its exit status.
/// Its stdout and stderr go to files in a folder of the test's, read while it runs.
///
/// The child is started by a small forking parent (``reaper``, Python), not by `posix_spawn` from the test process:
/// `posix_spawn` starts the child sharing the test process's memory (`CLONE_VM`), and at `exec` Linux records that
/// memory's high-water mark as the child's `ru_maxrss` — the test runner's peak (1.5 GB seen after the inference
/// tests), not csmil's. The reaper `fork`s (a fresh process of a few MB), `exec`s the program, forwards signals to
/// it, reaps it with `wait4` and writes its `ru_maxrss` to a file; it exits as the program did.
final class ChildProcess {
    /// The reaper's pid: signals sent to it reach the program.
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String
    /// Where the reaper writes the program's `ru_maxrss` (KiB) once it has ended.
    let usagePath: String
    private var exit: Exit?

    /// Forks and execs `argv[2:]`, forwards SIGTERM/SIGINT/SIGHUP/SIGUSR1/SIGUSR2 to it, reaps it and writes its
    /// `ru_maxrss` to `argv[1]`; exits with its status, or is ended by the same signal. The program dies with the
    /// reaper (`PR_SET_PDEATHSIG`), so a test that kills the reaper leaves nothing behind.
    static let reaper = """
        import ctypes, os, signal, sys
        forwarded = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2}
        signal.pthread_sigmask(signal.SIG_BLOCK, forwarded)
        pid = os.fork()
        if pid == 0:
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)
            os.execv(sys.argv[2], sys.argv[2:])
        for number in forwarded:
            signal.signal(number, lambda received, frame: os.kill(pid, received))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)
        _, status, usage = os.wait4(pid, 0)
        with open(sys.argv[1], "w") as file:
            file.write(str(usage.ru_maxrss))
        if os.WIFSIGNALED(status):
            signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
            os.kill(os.getpid(), os.WTERMSIG(status))
        sys.exit(os.WEXITSTATUS(status))
        """

    /// How the child ended.
    struct Exit {
        /// The exit status, or 128 + the signal that ended it (as a shell reports it).
        var status: Int32
        /// Whether a signal ended it (`status` is then 128 + the signal).
        var signalled: Bool
        /// Its peak resident set (`ru_maxrss`), bytes.
        var peakResidentBytes: Int
    }

    /// Starts `executable` with `arguments`; its output goes to `<folder>/<name>.stdout` and `.stderr`.
    init(
        _ executable: URL, _ arguments: [String], outputIn folder: URL, name: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        stdoutPath = folder.appendingPathComponent(name + ".stdout").path
        stderrPath = folder.appendingPathComponent(name + ".stderr").path
        usagePath = folder.appendingPathComponent(name + ".rusage").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let python = "/usr/bin/python3"
        let argv = ([python, "-c", Self.reaper, usagePath, executable.path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let result = posix_spawn(&child, python, &actions, nil, argv, envp)
        try #require(result == 0, "posix_spawn \(python): \(String(cString: strerror(result)))")
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
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return false }
        exit = ended(status: status)
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
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let result = ended(status: status)
        exit = result
        return result
    }

    /// The program's exit from the reaper's status and the `ru_maxrss` it wrote (0 when it wrote none).
    private func ended(status: Int32) -> Exit {
        let signal = status & 0x7f
        let kibibytes = (try? String(contentsOfFile: usagePath, encoding: .utf8)).flatMap { Int($0) } ?? 0
        return Exit(
            status: signal == 0 ? (status >> 8) & 0xff : 128 + signal, signalled: signal != 0,
            peakResidentBytes: kibibytes * 1024)
    }
}
