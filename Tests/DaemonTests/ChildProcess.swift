import Foundation
import Testing

/// A child process started with `posix_spawn` and reaped with `waitpid`, so that a test can send it signals and get
/// its exit status, or the signal that ended it, exactly — Foundation's `Process` reaps its children itself. Its
/// stdout and stderr go to files in a folder of the test's, read while it runs.
final class ChildProcess {
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String
    private var exit: Exit?

    /// How the child ended.
    struct Exit {
        /// The exit status, or 128 + the signal that ended it (as a shell reports it).
        var status: Int32
        /// Whether a signal ended it (`status` is then 128 + the signal).
        var signalled: Bool
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
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return false }
        exit = Self.exit(status: status)
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
        let ended = Self.exit(status: status)
        exit = ended
        return ended
    }

    private static func exit(status: Int32) -> Exit {
        let signal = status & 0x7f
        return Exit(status: signal == 0 ? (status >> 8) & 0xff : 128 + signal, signalled: signal != 0)
    }
}
