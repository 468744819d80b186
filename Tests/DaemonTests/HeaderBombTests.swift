import Foundation
import SyntheticSlides
import Testing

/// Slides whose headers ask for more than a machine has (issue 14, item 2), on the built binary: a few hundred
/// kilobytes declaring 10⁶ × 10⁶ pixels is refused before anything is allocated for it, and a huge but plausible
/// slide can be stopped with SIGTERM in the middle of its tissue detection. The time from SIGTERM to exit is printed,
/// not asserted (a loaded CI machine stretches it). Peak memory is the child's own `VmHWM` (``ChildProcess``: not
/// `ru_maxrss`, which carries the test runner's high-water mark across `posix_spawn`'s `exec`), asserted below 1 GiB;
/// `scripts/bench-header-bomb` measures both from a small Python parent.
@Suite("header bombs", .serialized)
struct HeaderBombTests {
    @Test(
        "a slide declaring 10⁶ × 10⁶ px (500 × 500 mm) is refused as slide.implausible_size naming the size, in < 1 GiB"
    )
    func bombRefused() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let bomb = installation.root.appendingPathComponent("bomb.tif").path
        // Level 0 and a 976² level, as the file of the issue: the small level is there, the size is not plausible.
        try DeclaredSizeSlide(levels: [(1_000_000, 1_000_000), (976, 976)], micronsPerPixel: 0.5).write(to: bomb)
        let bytes = try #require(try FileManager.default.attributesOfItem(atPath: bomb)[.size] as? Int)
        #expect(bytes < 10 << 20, "the bomb is a small file (\(bytes) bytes)")

        let out = installation.root.appendingPathComponent("out")
        let child = try ChildProcess(
            try TestSupport.binary(), ["score", "--config", installation.config.path, "--out", out.path, bomb],
            outputIn: installation.root, name: "bomb")
        let exit = child.wait()
        #expect(exit.status == 1, "\(child.stderr)")
        let line = try #require(
            try JSONSerialization.jsonObject(with: Data(child.stdout.utf8)) as? [String: Any], "\(child.stdout)")
        #expect(line["status"] as? String == "failed")
        let error = try #require(line["error"] as? [String: Any])
        #expect(error["code"] as? String == "slide.implausible_size")
        let message = try #require(error["message"] as? String)
        #expect(message.contains("1000000 × 1000000 pixels") && message.contains("500 × 500 mm"), "\(message)")
        print("header bomb: refused; peak RSS of csmil score \(exit.peakResidentBytes >> 20) MiB")
        #expect(exit.peakResidentBytes < 1 << 30)
    }

    @Test(
        "SIGTERM during the tissue detection of a huge single-level slide ends csmil score with 143, nothing written")
    func sigtermDuringTissue() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        // 120 × 100 mm at 0.25 µm/px, one level: plausible (a whole-mount slide), and every pixel of level 0 must be
        // read for its tissue mask — minutes of work to interrupt.
        let slide = installation.root.appendingPathComponent("huge.tif").path
        try DeclaredSizeSlide(levels: [(480_000, 400_000)], micronsPerPixel: 0.25).write(to: slide)
        let out = installation.root.appendingPathComponent("out")
        let child = try ChildProcess(
            try TestSupport.binary(),
            ["score", "--config", installation.config.path, "--out", out.path, "--log-level", "debug", slide],
            outputIn: installation.root, name: "huge")
        try #require(child.waitForStderr(containing: "stage=tissue"), "\(child.stderr)")
        let signalled = ContinuousClock.now
        child.send(SIGTERM)
        let exit = child.wait()
        let elapsed = ContinuousClock.now - signalled
        #expect(exit.status == 128 + SIGTERM && !exit.signalled, "\(child.stderr)")
        #expect(child.stderr.contains("slide interrupted") && child.stderr.contains("was not scored"))
        #expect(child.stdout.isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []).isEmpty)
        let work = installation.root.appendingPathComponent("state/work").path
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: work)) ?? []).isEmpty)
        print(
            "huge slide: SIGTERM during tissue detection honoured in \(elapsed); "
                + "peak RSS \(exit.peakResidentBytes >> 20) MiB")
        #expect(exit.peakResidentBytes < 1 << 30)
    }

    @Test("csmil watch: SIGTERM during the tissue detection of a huge slide stops the daemon, the slide put back")
    func daemonSigtermDuringTissue() throws {
        let setup = try WatchDaemonTests.Setup()
        defer { setup.cleanUp() }
        // 10 × 100 mm at 0.25 µm/px, one level of small tiles: the watcher's probe decodes the first and last strips
        // of it (80 tiles) in a second or two, its tissue detection reads every pixel.
        let staging = setup.installation.root.appendingPathComponent("huge.tif")
        try DeclaredSizeSlide(levels: [(40_000, 400_000)], micronsPerPixel: 0.25, tileSize: 1024).write(
            to: staging.path)
        let daemon = try ChildProcess(
            try TestSupport.binary(), ["watch", "--config", setup.installation.config.path, "--log-level", "debug"],
            outputIn: setup.installation.root, name: "watch",
            environment: ProcessInfo.processInfo.environment.merging(["NOTIFY_SOCKET": setup.notify.path]) { $1 })
        #expect(setup.notify.wait(for: "READY=1", timeout: 60), "\(daemon.stderr)")
        try FileManager.default.moveItem(at: staging, to: setup.incoming.appendingPathComponent("huge.tif"))
        try #require(daemon.waitForStderr(containing: "stage=tissue"), "\(daemon.stderr)")
        let signalled = ContinuousClock.now
        daemon.send(SIGTERM)
        let exit = daemon.wait()
        let elapsed = ContinuousClock.now - signalled
        #expect(exit.status == 0, "\(daemon.stderr)")
        #expect(daemon.stderr.contains("slide put back for the next start"))
        print(
            "csmil watch: SIGTERM during tissue detection honoured in \(elapsed); "
                + "peak RSS \(exit.peakResidentBytes >> 20) MiB")
        #expect(exit.peakResidentBytes < 1 << 30)
        let status = try TestSupport.csmil("status", "--config", setup.installation.config.path, "--json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let counts = try #require((object["jobs"] as? [String: Any])?["counts"] as? [String: Int], "\(status.stdout)")
        #expect(counts["settled"] == 1 && counts["processing"] == 0 && counts["failed"] == 0, "\(counts)")
    }
}
