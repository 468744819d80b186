import Foundation
import Ingest
import SyntheticSlides
import Testing

/// Files that change under the daemon (issue 14, item 6): a slide deleted while it is scored, a slide csmil may
/// not read. One real daemon, real inotify, real permissions (as root, the daemon runs without the capabilities that
/// let root read any file: `setpriv` drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH).
@Suite("csmil watch: files that change under it", .serialized)
struct WatchDaemonFileTests {
    @Test(
        "a slide deleted while it is scored is forgotten, not a phantom settling job; an unreadable one is counted failed"
    )
    func deletedAndUnreadable() throws {
        let setup = try WatchDaemonTests.Setup()
        defer { setup.cleanUp() }
        var command = [try TestSupport.binary().path, "watch", "--config", setup.installation.config.path]
        command += ["--log-level", "debug"]
        if getuid() == 0 {
            let drop = "-dac_override,-dac_read_search"
            command = ["--inh-caps=\(drop)", "--bounding-set=\(drop)"] + command
        }
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = setup.notify.path
        environment["CSMIL_TEST_HOLD_AT"] = "scored"
        let daemon = try ChildProcess(
            URL(fileURLWithPath: getuid() == 0 ? "/usr/bin/setpriv" : command.removeFirst()), command,
            outputIn: setup.installation.root, name: "watch", environment: environment)
        #expect(setup.notify.wait(for: "READY=1", timeout: 60), "\(daemon.stderr)")

        // A real slide that nobody but its owner's capabilities could read.
        let locked = setup.installation.root.appendingPathComponent("locked.svs")
        try SyntheticSlide(
            .init(width: 1024, height: 768, magnification: 20, seed: 2, tissueFraction: 0.5, format: .svs)
        ).write(to: locked.path)
        try FileManager.default.setAttributes([.posixPermissions: 0], ofItemAtPath: locked.path)
        try FileManager.default.moveItem(at: locked, to: setup.incoming.appendingPathComponent("locked.svs"))
        #expect(daemon.waitForStderr(containing: "file cannot be read; counted as failed"), "\(daemon.stderr)")

        // A slide scored, then deleted before its outcome is recorded.
        try setup.drop("gone.svs", seed: 4)
        let marker = setup.state.appendingPathComponent("held-at-scored").path
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: marker) && Date() < deadline && !daemon.hasExited {
            usleep(20_000)
        }
        try #require(FileManager.default.fileExists(atPath: marker), "\(daemon.stderr)")
        try FileManager.default.removeItem(at: setup.incoming.appendingPathComponent("gone.svs"))
        try FileManager.default.removeItem(atPath: marker)
        #expect(daemon.waitForStderr(containing: "slide deleted while it was scored; forgotten"), "\(daemon.stderr)")

        daemon.send(SIGTERM)
        #expect(daemon.wait().status == 0, "\(daemon.stderr)")
        #expect(!daemon.stderr.contains("cannot record a watch event"))
        let status = try TestSupport.csmil("status", "--config", setup.installation.config.path, "--json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let jobs = try #require(object["jobs"] as? [String: Any], "\(status.stdout)")
        let counts = try #require(jobs["counts"] as? [String: Int])
        #expect(
            counts == ["discovered": 0, "settled": 0, "processing": 0, "reported": 0, "delivered": 0, "failed": 1],
            "\(counts)")
        let failure = try #require((jobs["failures"] as? [[String: Any]])?.first)
        #expect(failure["code"] as? String == "slide.unreadable")
        #expect((failure["message"] as? String)?.contains("not readable") == true, "\(failure)")
        #expect(setup.reportFolders().isEmpty)
    }
}
