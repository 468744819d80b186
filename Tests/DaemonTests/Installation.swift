import Foundation
import Inference

/// A complete, valid csmil installation in a temporary folder: watch, output and state folders,
/// a model directory with real (seeded) weights, a private webhook secret and a configuration
/// file pointing at all of it. Tests break one part and look at what is reported.
struct Installation {
    let root: URL
    var config: URL { root.appendingPathComponent("csmil.toml") }
    var model: URL { root.appendingPathComponent("model") }
    var secret: URL { root.appendingPathComponent("webhook.secret") }

    /// The configuration text; relative paths resolve against `root`.
    static let configText = """
        [watch]
        directory = "incoming"
        settle_seconds = 0

        [output]
        directory = "reports"

        [state]
        directory = "state"

        [model]
        directory = "model"

        [webhook]
        url = "http://127.0.0.1:9/hook"
        allow_http = true
        secret_file = "webhook.secret"
        """

    static let modelText = """
        name = "test-model"
        architecture = "resnet18"
        threshold = 0.5
        backbone_20x = "b20.safetensors"
        backbone_10x = "b10.safetensors"
        backbone_5x = "b5.safetensors"
        heads = ["heads/0_model.safetensors", "heads/1_model.safetensors"]
        """

    /// Real weights for the model directory: seeded ResNet-18 backbones and D = 512 heads,
    /// encoded once per test process and copied into each installation.
    static let weightFiles: [(name: String, contents: Data)] = {
        let backbones = [("b20.safetensors", 1), ("b10.safetensors", 2), ("b5.safetensors", 3)].map {
            ($0.0, CheckpointWriter.safetensors(SeededWeights.resnet(.resnet18, seed: UInt64($0.1))))
        }
        let heads = (0..<2).map {
            (
                "heads/\($0)_model.safetensors",
                CheckpointWriter.safetensors(SeededWeights.head(featureSize: 512, seed: UInt64($0)))
            )
        }
        return backbones + heads
    }()

    init() throws {
        root = try TestSupport.temporaryDirectory()
        for folder in ["incoming", "reports", "state"] {
            try FileManager.default.createDirectory(
                at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        try TestSupport.write(Self.configText, to: config)
        try TestSupport.write(
            "whsec_" + Data((0..<32).map { UInt8($0) }).base64EncodedString() + "\n", to: secret, mode: 0o600)
        try TestSupport.write(Self.modelText, to: model.appendingPathComponent("model.toml"))
        for (name, contents) in Self.weightFiles {
            let url = model.appendingPathComponent(name)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try contents.write(to: url)
        }
    }

    func cleanUp() {
        try? FileManager.default.removeItem(at: root)
    }
}
