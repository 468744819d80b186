import Foundation
import Inference

extension ModelManifest {
    /// The keys `model.toml` may contain (daemon spec, Model directory).
    static let keys = [
        "name", "architecture", "threshold", "positive_label", "negative_label", "bags_per_head", "clusters", "seed",
        "backbone_20x", "backbone_10x", "backbone_5x", "heads", "feature_normalization",
    ]

    /// Reads and validates `model.toml` in `directory`; file paths are resolved against it.
    static func load(directory: String) throws(ConfigurationError) -> ModelManifest {
        let path = URL(fileURLWithPath: directory).appendingPathComponent("model.toml").path
        let text = try TOMLReader.read(
            path: path, what: "the model description",
            fix: "point [model] directory at a model directory that holds model.toml (see README.md)")
        return try parse(text, path: path)
    }

    /// Parses `model.toml` text; `path` names the file in errors and anchors relative paths.
    static func parse(_ text: String, path: String) throws(ConfigurationError) -> ModelManifest {
        let root = try TOMLReader.parse(text, path: path)
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var reader = TOMLReader()
        reader.rejectUnknownKeys(in: root, section: nil, known: keys)
        let name = reader.string(root, "name", section: nil, default: nil)
        let architecture = reader.choice(root, "architecture", section: nil, default: Architecture?.none)
        let threshold = reader.number(root, "threshold", section: nil, default: 0.5)
        let positive = reader.string(root, "positive_label", section: nil, default: "positive")
        let negative = reader.string(root, "negative_label", section: nil, default: "negative")
        let bags = reader.integer(root, "bags_per_head", section: nil, default: 200)
        let clusters = reader.integer(root, "clusters", section: nil, default: 8)
        let seed = reader.integer(root, "seed", section: nil, default: 1)
        let backbones = ["backbone_20x", "backbone_10x", "backbone_5x"].map { key in
            reader.string(root, key, section: nil, default: nil).map {
                File(role: key, path: $0, resolvedPath: Configuration.resolve($0, base: base))
            }
        }
        let headPaths = reader.strings(root, "heads", section: nil, default: nil)
        // Optional, with no default: absent means none.
        let normalizationPath =
            root["feature_normalization"] == nil
            ? nil : reader.string(root, "feature_normalization", section: nil, default: nil)

        if let threshold, !(0...1).contains(threshold) {
            reader.invalid(
                "threshold", line: TOMLReader.line(of: "threshold", in: root),
                "must be between 0 and 1 (is \(threshold))",
                fix: "use the probability at which a slide is called positive, e.g. 0.5")
        }
        for (key, value) in [("bags_per_head", bags), ("clusters", clusters)] {
            if let value, value < 1 {
                reader.invalid(
                    key, line: TOMLReader.line(of: key, in: root), "must be at least 1 (is \(value))",
                    fix: "use the published model's value (bags_per_head = 200, clusters = 8)")
            }
        }
        if let seed, seed < 0 {
            reader.invalid(
                "seed", line: TOMLReader.line(of: "seed", in: root), "must not be negative", fix: "use e.g. seed = 1")
        }
        if let headPaths, headPaths.isEmpty {
            reader.invalid(
                "heads", line: TOMLReader.line(of: "heads", in: root), "lists no head files",
                fix: "list the CS-MIL head checkpoints, e.g. heads = [\"heads/0_model.pth\"]")
        }
        for (key, path) in zip(
            ["backbone_20x", "backbone_10x", "backbone_5x", "feature_normalization"],
            backbones.map { $0?.path } + [normalizationPath])
        where path?.isEmpty ?? false {
            reader.invalid(key, line: TOMLReader.line(of: key, in: root), "is empty", fix: "name the checkpoint file")
        }

        guard reader.problems.isEmpty, let name, let architecture, let threshold, let positive, let negative,
            let bags, let clusters, let seed, let headPaths,
            case let (b20?, b10?, b5?) = (backbones[0], backbones[1], backbones[2])
        else {
            throw ConfigurationError(file: path, problems: reader.problems)
        }
        let heads = headPaths.enumerated().map { index, head in
            File(role: "heads[\(index)]", path: head, resolvedPath: Configuration.resolve(head, base: base))
        }
        return ModelManifest(
            name: name, architecture: architecture, threshold: threshold, positiveLabel: positive,
            negativeLabel: negative, bagsPerHead: Int(bags), clusters: Int(clusters), seed: UInt64(seed),
            backbone20x: b20, backbone10x: b10, backbone5x: b5, heads: heads,
            featureNormalization: normalizationPath.map {
                File(role: "feature_normalization", path: $0, resolvedPath: Configuration.resolve($0, base: base))
            })
    }
}
