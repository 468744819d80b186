import Foundation
import Inference
import Ingest
import Testing

@testable import Daemon

/// What `csmil watch` does at start on a fresh or broken installation, and the exit status systemd acts on.
@Suite("csmil watch start-up", .serialized)
struct StartupTests {
    typealias Setup = WatchDaemonTests.Setup

    @Test("missing [watch], [output] and [state] folders are created at start (a fresh installation)")
    func createsFolders() throws {
        let setup = try Setup()
        defer { setup.cleanUp() }
        for folder in [setup.incoming, setup.reports, setup.state] { try FileManager.default.removeItem(at: folder) }
        let process = try setup.start()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60), "log:\n\(setup.log())")
        for folder in [setup.incoming, setup.reports, setup.state] {
            var isFolder: ObjCBool = false
            #expect(FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder) && isFolder.boolValue)
        }
        #expect(setup.log().contains("created a missing folder"))
        #expect(WatchDaemonTests.stop(process))
    }

    @Test("a folder that cannot be created stops the start with exit 1 (retried by systemd), naming it and why")
    func uncreatableFolder() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        try TestSupport.write("not a folder", to: installation.root.appendingPathComponent("file"))
        try TestSupport.write(
            Installation.configText.replacingOccurrences(
                of: "directory = \"state\"", with: "directory = \"file/state\""),
            to: installation.config)
        let result = try TestSupport.csmil("watch", "--config", installation.config.path)
        #expect(result.status == 1)
        #expect(
            result.stderr.contains(
                "file/state: [state] directory does not exist and cannot be created (Not a directory)"))
    }

    @Test("a configuration error exits 78 (EX_CONFIG: the unit's RestartPreventExitStatus=), naming the key")
    func configurationError() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        try TestSupport.write(
            Installation.configText.replacingOccurrences(of: "settle_seconds", with: "settle_secnds"),
            to: installation.config)
        let result = try TestSupport.csmil("watch", "--config", installation.config.path)
        #expect(result.status == WatchCommand.configurationExitStatus)
        #expect(result.stderr.contains("watch.settle_secnds"))
    }

    @Test("exit 78 for every error a retry cannot fix (precision, secret, settings), 1 for those it may")
    func exitStatusByCode() {
        let bf16 = PrecisionError(code: .unsupported, subject: "[pipeline] precision = \"bf16\"", message: "", fix: "")
        #expect(WatchCommand.exitStatus(for: bf16) == WatchCommand.configurationExitStatus)
        let onednn = PrecisionError(code: .onednn, subject: "conv1", message: "", fix: "")
        #expect(WatchCommand.exitStatus(for: onednn) == WatchCommand.configurationExitStatus)
        let setting = WatchError(code: .invalidSetting, path: "in", message: "", fix: "")
        #expect(WatchCommand.exitStatus(for: setting) == WatchCommand.configurationExitStatus)
        let unmounted = WatchError(code: .folderUnavailable, path: "in", message: "", fix: "")
        #expect(WatchCommand.exitStatus(for: unmounted) == 1)
        #expect(WatchCommand.exitStatus(for: CancellationError()) == 1)
    }

    @Test("a model that cannot be loaded exits 78 too: only a change of the files can fix it")
    func modelError() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        try FileManager.default.removeItem(at: installation.model.appendingPathComponent("b10.safetensors"))
        let result = try TestSupport.csmil("watch", "--config", installation.config.path)
        #expect(result.status == WatchCommand.configurationExitStatus, "\(result.stderr)")
        #expect(result.stderr.contains("b10.safetensors"))
    }

    @Test("a configuration the user may not read: 'permission denied' naming the user, and how to give access")
    func permissionDenied() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: installation.config.path)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: installation.root.path)
        guard getuid() == 0 else {
            Issue.record("needs root to run csmil as another user (setpriv); CI runs as root")
            return
        }
        // As the unprivileged user nobody, as the unit runs csmil as its own user.
        for command in [["doctor"], ["watch"]] {
            let result = try #require(
                try TestSupport.tool(
                    "setpriv",
                    ["--reuid=65534", "--regid=65534", "--clear-groups", try TestSupport.binary().path]
                        + command + ["--config", installation.config.path]))
            let output = result.stdout + result.stderr
            #expect(
                output.contains("the configuration file cannot be read: permission denied for user nobody"), "\(output)"
            )
            #expect(output.contains("chmod g+r"), "\(output)")
            #expect(!output.contains("UTF-8"))
        }
    }
}
