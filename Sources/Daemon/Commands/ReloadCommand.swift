import ArgumentParser
import Foundation

/// `csmil reload`: what the unit's `ExecReload=` runs. Sends SIGHUP to `csmil watch` and waits until the daemon has
/// read its configuration again (`ReloadAcknowledgement`), so `systemctl reload csmil` returns only then, and fails
/// with the daemon's reason when the new file was refused.
struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Make the running daemon read its configuration again, and wait until it has.",
        discussion: """
            What systemd runs for `systemctl reload csmil` (ExecReload=). Sends SIGHUP to csmil watch and waits \
            for its answer in reload.json (in $RUNTIME_DIRECTORY, /run/csmil under systemd; else in the [state] \
            directory of --config). Exit 0: the new file is in use (sections that apply only after a restart are \
            named). Exit 1: the daemon refused the file and keeps its running settings; the reason is printed. \
            Exit 2: no answer within --timeout seconds, or no daemon.
            """
    )

    @Option(
        name: .long,
        help: "The configuration file (only to find the [state] directory when RUNTIME_DIRECTORY is not set).")
    var config: String = Configuration.defaultPath

    @Option(
        name: .long, help: "The process id of csmil watch (systemd passes $MAINPID; default: the one in reload.json).")
    var pid: Int32?

    @Option(name: .long, help: "Seconds to wait for the daemon's answer.")
    var timeout: Double = 60

    func run() throws {
        let folder = try acknowledgementFolder()
        let before = ReloadAcknowledgement.read(folder: folder)
        guard let pid = pid ?? before?.pid else {
            throw failure(
                "no csmil watch found: \(folder)/\(ReloadAcknowledgement.fileName) does not exist — start it, or pass --pid"
            )
        }
        // Never signal anything but csmil (a stale or mistyped pid; SIGHUP ends most programs).
        let command = ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .newlines)
        guard command == "csmil" else {
            throw failure(
                "process \(pid) is not csmil (\(command.isEmpty ? "no such process" : command)) — pass the pid of "
                    + "csmil watch, or omit --pid")
        }
        // A reload.json of an earlier daemon does not count: wait for one of this pid.
        let baseline = before?.pid == pid ? before?.generation ?? 0 : 0
        guard kill(pid, SIGHUP) == 0 else {
            throw failure("cannot signal csmil watch (pid \(pid)): \(String(cString: strerror(errno)))")
        }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let answer = ReloadAcknowledgement.read(folder: folder), answer.pid == pid, answer.generation > baseline
            {
                guard answer.applied else {
                    FileHandle.standardError.write(Data((answer.message + "\n").utf8))
                    throw ExitCode(1)
                }
                print(answer.message)
                return
            }
            guard kill(pid, 0) == 0 || errno == EPERM else {
                throw failure("csmil watch (pid \(pid)) ended before it answered the reload")
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw failure(
            "csmil watch (pid \(pid)) did not answer within \(timeout) s — see journalctl -u csmil; it may be "
                + "stuck (systemctl restart csmil)")
    }

    private func acknowledgementFolder() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        if let runtime = environment["RUNTIME_DIRECTORY"], !runtime.isEmpty {
            return ReloadAcknowledgement.folder(stateDirectory: "", environment: environment)
        }
        do {
            return ReloadAcknowledgement.folder(stateDirectory: try Configuration.load(path: config).state.directory)
        } catch {
            throw failure(
                "cannot find the daemon's state folder: \(error) — fix the file, or run this from the unit "
                    + "(systemctl reload csmil), where RUNTIME_DIRECTORY names it")
        }
    }

    private func failure(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data(("csmil reload: " + message + "\n").utf8))
        return ExitCode(2)
    }
}
