import Foundation
import Ingest
import Testing

@Suite("csmil bench ingest and bench score")
struct BenchCommandTests {
    /// The one JSON line a benchmark printed.
    private static func line(_ stdout: String) throws -> [String: Any] {
        let lines = stdout.split(separator: "\n")
        try #require(lines.count == 1, "\(stdout)")
        return try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
    }

    /// Writes a small synthetic 20x SVS slide into `folder`.
    private static func synth(_ folder: URL) throws -> String {
        let path = folder.appendingPathComponent("bench.svs").path
        let result = try TestSupport.csmil(
            "synth", "--out", path, "--width", "1536", "--height", "1024", "--seed", "3", "--tissue-fraction", "0.5")
        try #require(result.status == 0, "\(result.stderr)")
        return path
    }

    @Test("bench ingest streams every tile of the grid and reports stages and a peak RSS")
    func ingest() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let slide = try Self.synth(folder)
        let result = try TestSupport.csmil("bench", "ingest", slide)
        #expect(result.status == 0, "\(result.stderr)")
        let line = try Self.line(result.stdout)
        #expect(line["benchmark"] as? String == "ingest")
        #expect(line["slide"] as? String == slide)
        #expect(line["width"] as? Int == 1536 && line["height"] as? Int == 1024)
        let opened = try Slide(path: slide)
        let resolution = try SlideResolution(slide: opened)
        let grid = TileGrid(
            slide: opened, resolution: resolution, mask: try TissueMask.compute(slide: opened, resolution: resolution))
        #expect(grid.tiles.count > 0)
        #expect(line["tiles"] as? Int == grid.tiles.count)
        #expect(line["complete"] as? Bool == true)
        #expect((line["tiles_per_second"] as? Double ?? 0) > 0)
        #expect((line["seconds"] as? Double ?? 0) > 0)
        let stages = try #require(line["stages"] as? [String: Double])
        #expect(Set(stages.keys) == ["open", "tissue", "grid", "stream"])
        #expect((line["peak_rss_bytes"] as? Int ?? 0) > 0)
    }

    @Test("bench score --seeded scores through the real pipeline, prints timings and no probability, leaves nothing")
    func scoreSeeded() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let slide = try Self.synth(folder)
        // A temporary folder of its own: other csmil processes on the machine may use the shared one meanwhile.
        let temporary = folder.appendingPathComponent("tmp", isDirectory: true)
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        var environment = ProcessInfo.processInfo.environment
        environment["TMPDIR"] = temporary.path
        let result = try TestSupport.run(
            TestSupport.binary(), ["bench", "score", "--seeded", "resnet18", "--embed-seconds", "0.2", slide],
            environment: environment)
        #expect(result.status == 0, "\(result.stderr)")
        let line = try Self.line(result.stdout)
        #expect(line["benchmark"] as? String == "score")
        #expect(line["status"] as? String == "scored")
        #expect((line["tiles"] as? Int ?? 0) > 0)
        #expect((line["tiles_per_second"] as? Double ?? 0) > 0)
        #expect((line["model"] as? String)?.contains("seeded") == true)
        #expect(line["probability"] == nil)
        #expect(!result.stdout.contains("probability"))
        let stages = try #require(line["stages"] as? [String: Double])
        for stage in ["open", "tissue", "embed", "score"] { #expect(stages[stage] != nil, "\(stage)") }
        #expect((line["peak_rss_bytes"] as? Int ?? 0) > 0)
        #expect((line["embedding_bound_tiles_per_second"] as? Double ?? 0) > 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary.path).isEmpty, "temp folder left")
    }

    @Test("bench score needs exactly one of --model and --seeded")
    func scoreNeedsOneModel() throws {
        let result = try TestSupport.csmil("bench", "score", "slide.svs")
        #expect(result.status != 0)
        #expect(result.stderr.contains("--seeded"))
    }
}
