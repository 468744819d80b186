import Foundation
import Testing

@Suite("The demo model (models/demo)")
struct DemoModelTests {
    private static let demo = TestSupport.packageRoot.appendingPathComponent("models/demo")

    /// `backbones.sha256` (sha256sum format): file name → hex digest.
    private static func committedDigests() throws -> [String: String] {
        let text = try String(contentsOf: demo.appendingPathComponent("backbones.sha256"), encoding: .utf8)
        var digests: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count == 2 { digests[String(fields[1])] = String(fields[0]) }
        }
        return digests
    }

    @Test(
        "csmil seeded-backbones rebuilds the demo backbones byte for byte; with the committed heads they score a toy slide"
    )
    func rebuildsAndScores() throws {
        let root = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let model = root.appendingPathComponent("model")

        // The backbones: the documented command, the committed digests.
        let seeded = try TestSupport.csmil(
            "seeded-backbones", "--arch", "resnet18", "--seed", "1", "--out", model.path, "--log-level", "warning")
        try #require(seeded.status == 0, "\(seeded.stderr)")
        // It prints the SHA-256 of the bytes it wrote.
        let printed = try #require(
            try JSONSerialization.jsonObject(with: Data(seeded.stdout.utf8)) as? [String: Any], "\(seeded.stdout)")
        let written = try #require(printed["files"] as? [String: String])
        let digests = try Self.committedDigests()
        #expect(digests.count == 3)
        for (name, digest) in digests {
            #expect(written[name] == "sha256:" + digest, "\(name)")
            #expect(FileManager.default.fileExists(atPath: model.appendingPathComponent(name).path))
        }

        // The committed heads and model.toml beside them make a model that scores a toy slide.
        let manifest = try String(contentsOf: Self.demo.appendingPathComponent("model.toml"), encoding: .utf8)
        #expect(manifest.contains("not for diagnosis"))
        #expect(manifest.contains("architecture = \"resnet18\""))
        try FileManager.default.copyItem(
            at: Self.demo.appendingPathComponent("heads"), to: model.appendingPathComponent("heads"))
        // The heads were trained on standardised features: the statistics come with them.
        #expect(manifest.contains("feature_normalization = \"feature_normalization.safetensors\""))
        try FileManager.default.copyItem(
            at: Self.demo.appendingPathComponent("feature_normalization.safetensors"),
            to: model.appendingPathComponent("feature_normalization.safetensors"))
        try Data(manifest.utf8).write(to: model.appendingPathComponent("model.toml"))

        // A 1024-px toy micro slide, with the anomaly everywhere or nowhere, scored by the demo model:
        // its path and csmil score's JSON line.
        func scoreToySlide(_ name: String, positive: Bool) throws -> (path: String, line: [String: Any]) {
            let slide = root.appendingPathComponent(name + ".svs").path
            let synth = try TestSupport.csmil(
                "synth", "--out", slide, "--width", "1024", "--height", "1024", "--anomaly", "micro", "--positive",
                positive ? "1" : "0", "--tissue-fraction", "0.6", "--seed", "7", "--log-level", "warning")
            try #require(synth.status == 0, "\(synth.stderr)")
            let scored = try TestSupport.csmil(
                "score", "--model", model.path, "--out", root.appendingPathComponent("out-" + name).path,
                "--log-level", "warning", slide)
            try #require(scored.status == 0, "\(scored.stderr)")
            let line = try #require(
                try JSONSerialization.jsonObject(with: Data(scored.stdout.utf8)) as? [String: Any], "\(scored.stdout)")
            #expect(line["status"] as? String == "scored")
            return (slide, line)
        }
        let (slide, line) = try scoreToySlide("toy", positive: true)
        let probability = try #require(line["probability"] as? Double)
        let tiles = try #require(line["tiles"] as? Int)

        // The heads learnt the toy anomaly: a slide without it scores low, the one with it high
        // (measured 0.017 and 0.99996; docs/toy-datasets.md has the held-out evaluation).
        let negativeProbability = try #require(
            try scoreToySlide("negative", positive: false).line["probability"] as? Double)
        #expect(probability >= 0.8, "the toy slide with crosses: \(probability)")
        #expect(negativeProbability <= 0.2, "the toy slide without: \(negativeProbability)")

        // On the tiles with crosses the heads' scale attention is highest at 20x, the only scale that shows
        // them (spec §7; the sign convention of csmil train, docs/toy-datasets.md).
        let reports = root.appendingPathComponent("out-toy")
        let report = try #require(
            try FileManager.default.contentsOfDirectory(atPath: reports.path).first { $0.hasPrefix("toy-") })
        let geojson = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: reports.appendingPathComponent(report).appendingPathComponent("tiles.geojson")))
                as? [String: Any])
        let features = try #require(geojson["features"] as? [[String: Any]])
        let attention = try features.map { feature in
            let properties = try #require(feature["properties"] as? [String: Any])
            return try #require(properties["scale_attention"] as? [Double])
        }
        #expect(attention.count == tiles)
        let medians = (0..<3).map { scale in attention.map { $0[scale] }.sorted()[attention.count / 2] }
        print("demo heads, toy slide with crosses: median scale attention 20x / 10x / 5x \(medians)")
        #expect(medians[0] > medians[1] && medians[0] > medians[2], "\(medians)")

        // csmil embed-slides tiles the slide exactly as csmil score does: one .npy row per scored tile.
        let featureFolder = root.appendingPathComponent("features")
        let embedded = try TestSupport.csmil(
            "embed-slides", "--arch", "resnet18", "--backbone-20x",
            model.appendingPathComponent("backbone_20x.safetensors").path,
            "--backbone-10x", model.appendingPathComponent("backbone_10x.safetensors").path, "--backbone-5x",
            model.appendingPathComponent("backbone_5x.safetensors").path, "--out", featureFolder.path, "--log-level",
            "warning", slide)
        try #require(embedded.status == 0, "\(embedded.stderr)")
        let npy = try Data(contentsOf: featureFolder.appendingPathComponent("toy.npy"))
        let header = String(decoding: npy.prefix(128), as: UTF8.self)
        #expect(header.contains("'shape': (\(tiles), 1536)"), "\(header)")
        let csv = try String(contentsOf: featureFolder.appendingPathComponent("toy.tiles.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == tiles + 1)
    }
}
