import Foundation
import Testing

@Suite("csmil synth")
struct SynthTests {
    /// The one JSON line `csmil synth` prints, decoded.
    private static func summary(_ stdout: String) throws -> [String: Any] {
        let lines = stdout.split(separator: "\n")
        try #require(lines.count == 1, "expected one JSON line, got: \(stdout)")
        return try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
    }

    @Test("--help documents every option")
    func help() throws {
        let help = try TestSupport.csmil("synth", "--help")
        #expect(help.status == 0)
        for option in [
            "--out", "--format", "--width", "--height", "--magnification", "--seed", "--tissue-fraction",
            "--anomaly", "--positive", "--quality", "svs", "tiff", "micro", "macro",
        ] {
            #expect(help.stdout.contains(option), "\(option) missing from csmil synth --help")
        }
    }

    @Test("writes the slide and its truth files and prints one JSON line describing them")
    func writesSlideAndTruth() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("toy.tif").path
        let result = try TestSupport.csmil(
            "synth", "--out", out, "--width", "3000", "--height", "2000", "--magnification", "40", "--seed", "5",
            "--anomaly", "macro", "--positive", "1", "--tissue-fraction", "0.4")
        #expect(result.status == 0, "\(result.stderr)")
        let summary = try Self.summary(result.stdout)
        #expect(summary["slide"] as? String == out)
        #expect(summary["format"] as? String == "tiff", "the format follows the .tif extension")
        #expect(summary["vendor"] as? String == "generic-tiff")
        #expect(summary["mpp"] as? Double == 0.25)
        #expect(summary["magnification"] as? Int == 40)
        #expect(summary["label"] as? String == "positive")
        #expect(abs((summary["tissue_fraction"] as? Double ?? 0) - 0.4) < 0.03)
        let mask = folder.appendingPathComponent("toy.truth.png").path
        let json = folder.appendingPathComponent("toy.truth.json").path
        #expect(summary["truth_mask"] as? String == mask)
        #expect(summary["truth_json"] as? String == json)
        for path in [out, mask, json] { #expect(FileManager.default.fileExists(atPath: path), "\(path) missing") }
        let truth = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        #expect(truth["schema"] as? String == "csmil.synth/1")
        #expect(truth["width"] as? Int == 3000 && truth["height"] as? Int == 2000)
        let regions = try #require(truth["regions"] as? [[String: Any]])
        #expect(regions.contains { $0["positive"] as? Bool == true })
        let rings = try #require(truth["rings"] as? [[String: Any]])
        #expect(!rings.isEmpty)
    }

    @Test("out-of-range options are usage errors")
    func usageErrors() throws {
        for arguments in [
            ["--magnification", "10"], ["--tissue-fraction", "2"], ["--anomaly", "huge"], ["--format", "ndpi"],
            ["--width", "0"],
        ] {
            let result = try TestSupport.run(TestSupport.binary(), ["synth", "--out", "/tmp/never.svs"] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.stderr)")
            #expect(result.stdout.isEmpty)
        }
    }

    @Test("a 20,000 × 20,000 slide is written in bounded memory (peak RSS far below the 1.2 GB image)")
    func boundedMemory() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("large.svs").path
        let result = try TestSupport.csmil(
            "synth", "--out", out, "--width", "20000", "--height", "20000", "--anomaly", "micro", "--positive", "0.3")
        #expect(result.status == 0, "\(result.stderr)")
        let summary = try Self.summary(result.stdout)
        let peak = try #require(summary["peak_rss_bytes"] as? Int)
        let image = 20_000 * 20_000 * 3
        #expect(peak > 0 && peak < 256 << 20, "peak RSS \(peak) bytes for a \(image)-byte image")
        let levels = try #require(summary["levels"] as? [[Int]])
        #expect(levels == [[20_000, 20_000, 1], [5000, 5000, 4], [1250, 1250, 16]])
    }
}
