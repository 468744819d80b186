import Foundation
import Inference
import Notify
import Testing

@testable import Daemon

@Suite("csmil train (the command)")
struct TrainCommandTests {
    /// Eight slides of D = 512 features whose three scales sit on offsets 40, 80 and 120 (as untrained
    /// backbones give); in positive slides a third of the tiles carry +3 on eight 20x channels.
    private static func writeSlides(in folder: URL) throws -> URL {
        let features = folder.appendingPathComponent("features")
        try FileManager.default.createDirectory(at: features, withIntermediateDirectories: true)
        var generator = SeededGenerator(seed: 3)
        var labels = "slide,label,fold\n"
        for index in 0..<8 {
            let positive = index % 2 == 0
            let tiles = 12
            var values = [Float](repeating: 0, count: tiles * 3 * 512)
            for i in values.indices { values[i] = Float(40 * (1 + (i / 512) % 3)) + Float(generator.nextUniform()) }
            if positive {
                for tile in stride(from: 0, to: tiles, by: 3) {
                    for j in 0..<8 { values[tile * 3 * 512 + j] += 3 }
                }
            }
            let writer = try NumPyWriter(
                path: features.appendingPathComponent("s\(index).npy").path, rows: tiles, columns: 3 * 512)
            try values.withUnsafeBufferPointer { try writer.append($0) }
            try writer.close()
            labels += "s\(index),\(positive ? 1 : 0),\((index / 2) % 2)\n"
        }
        try Data(labels.utf8).write(to: folder.appendingPathComponent("labels.csv"))
        return features
    }

    @Test("--normalize-features writes the statistics beside the heads and model.toml names them")
    func normalizeFeatures() throws {
        let root = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let features = try Self.writeSlides(in: root)
        let out = root.appendingPathComponent("model")
        let result = try TestSupport.csmil(
            "train", "--features", features.path, "--labels", root.appendingPathComponent("labels.csv").path,
            "--out", out.path, "--arch", "resnet18", "--backbone-20x", "b20.safetensors", "--backbone-10x",
            "b10.safetensors", "--backbone-5x", "b5.safetensors", "--epochs", "3", "--normalize-features",
            "--log-level", "warning")
        try #require(result.status == 0, "\(result.stderr)")
        #expect(
            result.stdout.components(separatedBy: "scale weights r, positive − negative slides").count == 3,
            "one line per fold")

        let manifest = try ModelManifest.load(directory: out.path)
        #expect(manifest.heads.count == 2)
        let file = try #require(manifest.featureNormalization)
        #expect(file.path == "feature_normalization.safetensors")
        let normalization = try FeatureNormalization(
            stateDict: Checkpoint.load(path: file.resolvedPath), featureSize: 512, file: file.resolvedPath)
        // The scales' offsets are in the statistics: about 40.5, 80.5 and 120.5.
        for scale in 0..<3 {
            let mean = normalization.mean[scale * 512 + 100]
            #expect(abs(mean - Float(40 * (scale + 1)) - 0.5) < 0.2, "scale \(scale): mean \(mean)")
            #expect(abs(normalization.standardDeviation[scale * 512 + 100] - 0.29) < 0.06)
        }
        for head in manifest.heads {
            _ = try CSMILHead(stateDict: Checkpoint.load(path: head.resolvedPath), featureSize: 512)
        }

        // Without the flag: no statistics, and model.toml does not name any.
        let plain = root.appendingPathComponent("plain")
        let again = try TestSupport.csmil(
            "train", "--features", features.path, "--labels", root.appendingPathComponent("labels.csv").path,
            "--out", plain.path, "--arch", "resnet18", "--backbone-20x", "b20.safetensors", "--backbone-10x",
            "b10.safetensors", "--backbone-5x", "b5.safetensors", "--epochs", "2", "--initialisation-seed", "2",
            "--log-level", "warning")
        try #require(again.status == 0, "\(again.stderr)")
        let written = try String(contentsOf: plain.appendingPathComponent("model.toml"), encoding: .utf8)
        #expect(written.hasPrefix("# Written by csmil train (2 folds, 2 epochs, seed 1, initialisation seed 2).\n"))
        #expect(try ModelManifest.load(directory: plain.path).featureNormalization == nil)
        #expect(!FileManager.default.fileExists(atPath: plain.appendingPathComponent(file.path).path))
    }

    @Test("a labels CSV naming a slide without features is refused, naming the file")
    func missingFeatures() throws {
        let root = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let features = try Self.writeSlides(in: root)
        try FileManager.default.removeItem(at: features.appendingPathComponent("s3.npy"))
        let result = try TestSupport.csmil(
            "train", "--features", features.path, "--labels", root.appendingPathComponent("labels.csv").path,
            "--out", root.appendingPathComponent("model").path, "--arch", "resnet18", "--backbone-20x", "a",
            "--backbone-10x", "b", "--backbone-5x", "c", "--epochs", "1", "--normalize-features")
        #expect(result.status != 0)
        #expect(result.stderr.contains("s3.npy"))
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("model/model.toml").path))
    }

    @Test("the labels CSV is read as the CSV writer quotes it: a slide name with a comma is one field")
    func quotedLabels() throws {
        let root = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let path = root.appendingPathComponent("labels.csv")
        try ("slide,label,fold\n" + CSV.quoted("case 7, HE") + ",positive,0\n\"plain\",0,1\n")
            .write(to: path, atomically: true, encoding: .utf8)
        let rows = try TrainingLabels.read(path: path.path)
        #expect(rows.map(\.slide) == ["case 7, HE", "plain"])
        #expect(rows.map(\.label) == [true, false] && rows.map(\.fold) == [0, 1])
    }
}
