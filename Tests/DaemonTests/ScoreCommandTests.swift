import Foundation
import Images
import Ingest
import Notify
import Sinks
import SyntheticSlides
import Testing

@Suite("csmil score")
struct ScoreCommandTests {
    /// The JSON summary lines `csmil score` printed, decoded, in order.
    private static func lines(_ stdout: String) throws -> [[String: Any]] {
        try stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], "\($0)")
        }
    }

    private static func json(_ path: String) throws -> [String: Any] {
        try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// Writes a synthetic slide with `csmil synth` and returns its path.
    private static func synth(_ folder: URL, _ name: String, _ arguments: String...) throws -> String {
        let path = folder.appendingPathComponent(name).path
        let result = try TestSupport.run(TestSupport.binary(), ["synth", "--out", path] + arguments)
        try #require(result.status == 0, "\(result.stderr)")
        return path
    }

    private static func gridCount(_ path: String) throws -> Int {
        let slide = try Slide(path: path)
        let resolution = try SlideResolution(slide: slide)
        return TileGrid(
            slide: slide, resolution: resolution, mask: try TissueMask.compute(slide: slide, resolution: resolution)
        ).tiles.count
    }

    @Test("scores a synthetic slide: one JSON line, every report file, no spill file left, same answer twice")
    func scoresSlide() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let slide = try Self.synth(
            installation.root, "case1.svs", "--width", "1536", "--height", "1280", "--seed", "4", "--tissue-fraction",
            "0.5")
        let out = installation.root.appendingPathComponent("out").path
        let result = try TestSupport.csmil("score", "--config", installation.config.path, "--out", out, slide)
        #expect(result.status == 0, "\(result.stderr)")
        let line = try #require(try Self.lines(result.stdout).first)
        #expect(try Self.lines(result.stdout).count == 1)
        #expect(line["status"] as? String == "scored")
        let probability = try #require(line["probability"] as? Double)
        #expect(probability >= 0 && probability <= 1)
        let tiles = try Self.gridCount(slide)
        #expect(line["tiles"] as? Int == tiles && tiles > 0)
        let eventID = try #require(line["event_id"] as? String)
        #expect(eventID.hasPrefix("evt_") && eventID.count == 36)

        let reportPath = try #require(line["report"] as? String)
        let folder = URL(fileURLWithPath: reportPath).deletingLastPathComponent()
        let report = try Self.json(reportPath)
        #expect(report["schema"] as? String == "csmil.report/1")
        #expect(report["status"] as? String == "scored")
        #expect(report["event_id"] as? String == eventID)
        for key in ["slide", "model", "result", "tiles", "timing"] { #expect(report[key] != nil, "\(key) missing") }
        #expect(report["error"] == nil)
        let slideObject = try #require(report["slide"] as? [String: Any])
        #expect((slideObject["fingerprint"] as? String)?.hasPrefix("sha256:") == true)
        #expect(slideObject["vendor"] as? String == "aperio")
        #expect(slideObject["width"] as? Int == 1536 && slideObject["magnification"] as? Double == 20)
        let model = try #require(report["model"] as? [String: Any])
        #expect((model["files"] as? [String: String])?.count == 5)
        let resultObject = try #require(report["result"] as? [String: Any])
        #expect(resultObject["probability"] as? Double == probability)
        #expect((resultObject["head_probabilities"] as? [Double])?.count == 2)
        #expect((report["tiles"] as? [String: Any])?["count"] as? Int == tiles)
        for name in ["case_results_merge.csv", "tissue_mask.png", "attention_heatmap.png", "tiles.geojson"] {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path), "\(name)")
        }
        let geojson = try Self.json(folder.appendingPathComponent("tiles.geojson").path)
        #expect((geojson["features"] as? [Any])?.count == tiles)
        let work = installation.root.appendingPathComponent("state/work").path
        #expect(try FileManager.default.contentsOfDirectory(atPath: work).isEmpty, "spill file left behind")

        let again = try TestSupport.csmil("score", "--model", installation.model.path, "--out", out, slide)
        #expect(again.status == 0, "\(again.stderr)")
        let second = try #require(try Self.lines(again.stdout).first)
        #expect(second["event_id"] as? String == eventID)
        #expect(second["probability"] as? Double == probability)
    }

    @Test("a blank slide is no_tissue; a tiny slide with fewer tiles than clusters is scored; exit 0")
    func blankAndTiny() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let blank = try Self.synth(
            installation.root, "blank.svs", "--width", "1024", "--height", "768", "--tissue-fraction", "0")
        let tiny = try Self.synth(
            installation.root, "tiny.tif", "--width", "768", "--height", "512", "--tissue-fraction", "0.6",
            "--magnification", "40")
        let result = try TestSupport.csmil(
            "score", "--model", installation.model.path, "--out", installation.root.appendingPathComponent("out").path,
            blank, tiny)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = try Self.lines(result.stdout)
        try #require(lines.count == 2)
        #expect(lines[0]["status"] as? String == "no_tissue")
        #expect(lines[0]["tiles"] as? Int == 0)
        let report = try Self.json(try #require(lines[0]["report"] as? String))
        #expect(report["status"] as? String == "no_tissue")
        #expect(report["result"] is NSNull)
        #expect(lines[1]["status"] as? String == "scored", "\(lines[1])")
        let tiles = try #require(lines[1]["tiles"] as? Int)
        #expect(tiles > 0 && tiles < 8)
        // The 40x slide is read at 20x: the report names both resolutions apart.
        let fortyX = try Self.json(try #require(lines[1]["report"] as? String))
        let resolution = try #require(fortyX["resolution"] as? [String: Any])
        #expect(resolution["working_mpp"] as? Double == 0.5 && resolution["working_magnification"] as? Double == 20)
        #expect(resolution["slide_mpp"] as? Double == 0.25 && resolution["slide_magnification"] as? Double == 40)
        #expect((resolution["plan"] as? String)?.contains("read as 20x") == true, "\(resolution)")
        #expect(resolution["mpp"] == nil, "no unnamed resolution: \(resolution)")
    }

    @Test("a FIFO named .svs is refused without being opened (nothing blocks), and the other slides are scored")
    func fifoRefused() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let fifo = installation.root.appendingPathComponent("pipe.svs").path
        try #require(mkfifo(fifo, 0o644) == 0)
        let good = try Self.synth(
            installation.root, "good.svs", "--width", "1024", "--height", "768", "--tissue-fraction", "0")
        let child = try ChildProcess(
            try TestSupport.binary(),
            [
                "score", "--model", installation.model.path, "--out",
                installation.root.appendingPathComponent("out").path,
                fifo, good,
            ],
            outputIn: installation.root, name: "score")
        // Until it ends, the only way csmil could be stuck is an open of the FIFO for reading: then a writer can
        // open it without blocking (O_NONBLOCK fails with ENXIO when no reader has it open). Such an open ends the
        // wait, as a failure.
        var openedByCSMIL = false
        while !child.hasExited {
            let writer = open(fifo, O_WRONLY | O_NONBLOCK)
            if writer >= 0 {
                openedByCSMIL = true
                close(writer)
                break
            }
            usleep(10_000)
        }
        let exit = child.wait()
        #expect(!openedByCSMIL, "csmil opened the FIFO")
        #expect(exit.status == 1, "\(child.stderr)")
        let lines = try Self.lines(child.stdout)
        try #require(lines.count == 2, "\(child.stdout)")
        #expect(lines[0]["status"] as? String == "failed" && lines[0]["report"] is NSNull)
        let error = try #require(lines[0]["error"] as? [String: Any])
        #expect(error["code"] as? String == "slide.unreadable")
        #expect((error["message"] as? String)?.contains("FIFO") == true, "\(error)")
        #expect(lines[1]["status"] as? String == "no_tissue")
    }

    @Test("a PNG renamed .svs, an empty file and a truncated TIFF fail with a code and a message; others still scored")
    func damagedInputs() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let root = installation.root
        let good = try Self.synth(root, "good.svs", "--width", "1024", "--height", "768", "--tissue-fraction", "0.5")
        let png = root.appendingPathComponent("picture.svs").path
        try RGBImage(width: 4, height: 4, pixels: [UInt8](repeating: 200, count: 48)).write(to: png)
        let empty = root.appendingPathComponent("empty.svs").path
        try Data().write(to: URL(fileURLWithPath: empty))
        let truncated = root.appendingPathComponent("truncated.svs").path
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        try bytes.prefix(bytes.count / 3).write(to: URL(fileURLWithPath: truncated))
        let result = try TestSupport.csmil(
            "score", "--model", installation.model.path, "--out", root.appendingPathComponent("out").path, png, empty,
            truncated, good)
        #expect(result.status == 1)
        let lines = try Self.lines(result.stdout)
        try #require(lines.count == 4)
        for (line, path) in zip(lines.prefix(3), [png, empty, truncated]) {
            #expect(line["status"] as? String == "failed", "\(path)")
            let error = try #require(line["error"] as? [String: Any])
            #expect((error["code"] as? String)?.isEmpty == false)
            #expect((error["message"] as? String)?.contains(path) == true, "\(error)")
            let report = try Self.json(try #require(line["report"] as? String))
            #expect(report["status"] as? String == "failed")
            #expect(report["error"] != nil)
        }
        #expect(lines[3]["status"] as? String == "scored")
    }

    @Test("a slide without resolution metadata fails with slide.no_resolution, and is scored with --assume-mpp")
    func assumeMPP() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let slide = TestSupport.packageRoot.appendingPathComponent("Tests/IngestTests/Fixtures/no-resolution.tiff").path
        let out = installation.root.appendingPathComponent("out").path
        let refused = try TestSupport.csmil("score", "--model", installation.model.path, "--out", out, slide)
        #expect(refused.status == 1)
        let failed = try #require(try Self.lines(refused.stdout).first)
        #expect(failed["status"] as? String == "failed")
        let error = try #require(failed["error"] as? [String: Any])
        #expect(error["code"] as? String == "slide.no_resolution")
        #expect((error["message"] as? String)?.contains("assume_mpp") == true, "\(error)")

        let scored = try TestSupport.csmil(
            "score", "--model", installation.model.path, "--out", out, "--assume-mpp", "0.5", slide)
        #expect(scored.status == 0, "\(scored.stderr)")
        let line = try #require(try Self.lines(scored.stdout).first)
        #expect(line["status"] as? String == "scored", "\(line)")
        #expect((line["tiles"] as? Int ?? 0) > 0)
        let report = try Self.json(try #require(line["report"] as? String))
        let resolution = try #require(report["resolution"] as? [String: Any])
        #expect(resolution["source"] as? String == "assume_mpp", "\(resolution)")

        let bad = try TestSupport.csmil("score", "--model", installation.model.path, "--assume-mpp", "0", slide)
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("--assume-mpp"))
    }

    @Test("--notify without a webhook in the configuration refuses before doing anything")
    func notifyWithoutWebhook() throws {
        let result = try TestSupport.csmil("score", "--notify", "--model", "/nonexistent", "a.svs")
        #expect(result.status != 0)
        #expect(result.stderr.contains("webhook"))
        #expect(result.stdout.isEmpty)
    }

    @Test("--notify delivers each scored slide's event, signed, to the configured webhook")
    func notifyDelivers() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let sink = WebhookSink(secret: try WebhookSecret.load(path: installation.secret.path))
        try sink.start()
        defer { sink.stop() }
        try TestSupport.write(
            Installation.configText.replacingOccurrences(of: "http://127.0.0.1:9/hook", with: sink.url + "hook"),
            to: installation.config)
        let slide = try Self.synth(installation.root, "notify.svs", "--width", "1024", "--height", "768", "--seed", "6")
        let result = try TestSupport.csmil("score", "--config", installation.config.path, "--notify", slide)
        #expect(result.status == 0, "\(result.stderr)")
        let line = try #require(try Self.lines(result.stdout).first)
        let events = sink.events.filter { $0.verdict == .verified }
        #expect(events.count == 1)
        #expect(events.first?.request.headers["webhook-id"] == line["event_id"] as? String)

        // The same content under another name, the same model: the same id, not sent again, and it says so.
        let copy = installation.root.appendingPathComponent("notify-copy.svs").path
        try FileManager.default.copyItem(atPath: slide, toPath: copy)
        let again = try TestSupport.csmil("score", "--config", installation.config.path, "--notify", copy)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try Self.lines(again.stdout).first?["event_id"] as? String == line["event_id"] as? String)
        #expect(
            again.stderr.contains("not sent to webhook: event \(line["event_id"] as? String ?? "?")"), "\(again.stderr)"
        )
        #expect(again.stderr.contains("already in the outbox (delivered)"), "\(again.stderr)")
        #expect(sink.events.filter { $0.verdict == .verified }.count == 1)
    }
}
