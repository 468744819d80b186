import ArgumentParser
import Foundation
import Inference
import Logging
import Notify
import Threads

/// `csmil train`: CS-MIL heads from cached slide features and labels (model spec §6).
struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train CS-MIL heads (one per fold) from cached slide features and a labels CSV.",
        discussion: """
            Each slide's features are <features>/<slide>.npy: float32 [tiles, 3, D] (or [tiles, 3·D]), scale 0 = \
            20x, as the scorer computes them. The labels CSV has a header and the columns slide,label,fold \
            (label 1/0, true/false or positive/negative). The head of fold k validates on the slides of fold k \
            and trains on the others. Writes <out>/heads/<k>_model_<best epoch>.pth in the published torch.save \
            layout and <out>/model.toml naming the backbones given. With --normalize-features, the features are             standardised per scale and channel over all the slides' tiles before clustering and training, and             the statistics are written to <out>/feature_normalization.safetensors, which model.toml names so             the scorer applies the same (csmil's extension; the published model has none).
            """
    )

    @Option(name: .long, help: "The folder of cached features, one <slide>.npy per slide.")
    var features: String

    @Option(name: .long, help: "The labels CSV: slide,label,fold.")
    var labels: String

    @Option(name: .long, help: "The model directory to write (heads/ and model.toml).")
    var out: String

    /// The backbones (train: the features' architecture, and the files model.toml will name).
    @OptionGroup var backbones: BackboneOptions

    @Option(name: .long, help: "The model's name in model.toml.")
    var name = "csmil-trained"

    @Option(name: .long, help: "Epochs per fold.")
    var epochs = 100

    @Option(name: .long, help: "Seed of the training bags (and of the streams derived from it).")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Seed of the heads' initial weights (every fold starts from the same ones).")
    var initialisationSeed: UInt64 = 1

    @Flag(
        name: .long,
        help:
            "Standardise the features per scale and channel (statistics of all the slides' tiles, saved with the model)."
    )
    var normalizeFeatures = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
    }

    func run() async throws {
        let logger = global.bootstrapLogging()
        let command = self
        try await DedicatedThread.run(name: "csmil-train") { try command.train(logger: logger) }
    }

    private func train(logger: Logger) throws {
        let d = backbones.arch.featureSize
        let rows = try TrainingLabels.read(path: labels)
        var loaded: [(data: Data, tiles: Int)] = []
        var accumulator = FeatureNormalization.Accumulator(featureSize: d)
        for row in rows {
            let path = URL(fileURLWithPath: features).appendingPathComponent(row.slide + ".npy").path
            let (data, tiles) = try FeatureFile.read(path: path, featureSize: d)
            if normalizeFeatures {
                data.withUnsafeBytes { accumulator.add($0.bindMemory(to: Float.self), tileCount: tiles) }
            }
            loaded.append((data, tiles))
        }
        let normalization = normalizeFeatures ? accumulator.normalization() : nil
        if let normalization {
            // In place: each slide's features are held once, not once raw and once normalised.
            for index in loaded.indices {
                let tiles = loaded[index].tiles
                loaded[index].data.withUnsafeMutableBytes {
                    normalization.apply($0.bindMemory(to: Float.self).baseAddress!, tileCount: tiles)
                }
            }
        }
        var slides: [TrainingSlide] = []
        for (row, (data, tiles)) in zip(rows, loaded) {
            slides.append(
                TrainingSlide.clustered(
                    name: row.slide, label: row.label, fold: row.fold, tileCount: tiles, features: data,
                    featureSize: d))
            logger.debug("slide clustered", metadata: ["slide": "\(row.slide)", "tiles": "\(tiles)"])
        }
        logger.info(
            "training", metadata: ["slides": "\(slides.count)", "folds": "\(Set(rows.map(\.fold)).count)"])

        let trainer = HeadTrainer(
            featureSize: d,
            configuration: HeadTrainer.Configuration(epochs: epochs, seed: seed, initialisationSeed: initialisationSeed)
        )
        let summary = try trainer.train(slides: slides) { progress in
            logger.info(
                "epoch",
                metadata: [
                    "fold": "\(progress.fold)", "epoch": "\(progress.epoch)/\(progress.epochs)",
                    "loss": "\(String(format: "%.4f", progress.trainingLoss))",
                    "validation_loss": "\(String(format: "%.4f", progress.validationLoss))",
                    "best_epoch": "\(progress.bestEpoch)",
                    "eta_s": "\(Int(progress.estimatedRemaining.rounded()))",
                ])
        }

        let headsDirectory = URL(fileURLWithPath: out).appendingPathComponent("heads")
        try FileManager.default.createDirectory(at: headsDirectory, withIntermediateDirectories: true)
        var headPaths: [String] = []
        for fold in summary.folds {
            let file = "\(fold.fold)_model_\(fold.bestEpoch).pth"
            try CheckpointWriter.torchSave(fold.head.stateDict(), archiveName: "\(fold.fold)_model_\(fold.bestEpoch)")
                .write(to: headsDirectory.appendingPathComponent(file), options: .atomic)
            headPaths.append("heads/" + file)
            let auc = fold.validationAUC.map { String(format: "%.4f", $0) } ?? "n/a"
            print(
                "fold \(fold.fold): best epoch \(fold.bestEpoch), validation loss "
                    + "\(String(format: "%.4f", fold.bestValidationLoss)), validation AUC \(auc) "
                    + "(\(fold.validationSlides.count) slides), \(Self.describe(fold)) → \(file)")
        }
        var normalizationLine = ""
        if let normalization {
            let file = "feature_normalization.safetensors"
            try CheckpointWriter.safetensors(normalization.stateDict())
                .write(to: URL(fileURLWithPath: out).appendingPathComponent(file), options: .atomic)
            normalizationLine = "feature_normalization = \(tomlString(file))\n"
        }
        let pooled = summary.pooledValidationAUC.map { String(format: "%.4f", $0) } ?? "n/a"
        let mean = summary.meanValidationAUC.map { String(format: "%.4f", $0) } ?? "n/a"
        print("validation AUC: mean over folds \(mean), pooled out-of-fold \(pooled)")

        let manifest = """
            # Written by csmil train (\(summary.folds.count) folds, \(epochs) epochs, seed \(seed), \
            initialisation seed \(initialisationSeed)).
            name = \(tomlString(name))
            architecture = "\(backbones.arch.rawValue)"
            threshold = 0.5
            bags_per_head = 200
            clusters = 8
            seed = 1
            backbone_20x = \(tomlString(backbones.backbone20x))
            backbone_10x = \(tomlString(backbones.backbone10x))
            backbone_5x = \(tomlString(backbones.backbone5x))
            heads = [\(headPaths.map(tomlString).joined(separator: ", "))]
            \(normalizationLine)
            """
        try Data(manifest.utf8).write(
            to: URL(fileURLWithPath: out).appendingPathComponent("model.toml"), options: .atomic)
        logger.info("model written", metadata: ["directory": "\(out)", "heads": "\(headPaths.count)"])
    }

    /// The fold's scale weights for the summary: how r moves between negative and positive training
    /// slides, the scale that moves most, and whether the head was turned over to make it rise.
    static func describe(_ fold: HeadTrainer.FoldResult) -> String {
        let scales = ["20x", "10x", "5x"]
        let turned = fold.scaleWeightsFlipped ? ", sign turned over" : ""
        let weights = fold.scaleWeights
        guard let shift = weights.shift else {
            return "mean scale weight \(String(format: "%.3f", weights.overall))\(turned)"
        }
        let moves = weights.evidenceScale.map { " (\(scales[$0]) moves most\(turned))" } ?? turned
        return "scale weights r, positive − negative slides "
            + shift.map { String(format: "%+.2f", $0) }.joined(separator: " / ") + moves
    }

    /// A TOML basic string.
    private func tomlString(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

/// The rows of a labels CSV: slide,label,fold.
enum TrainingLabels {
    struct Row {
        var slide: String
        var label: Bool
        var fold: Int
    }

    static func read(path: String) throws(CommandError) -> [Row] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CommandError(
                code: .input, subject: path, message: "the labels CSV cannot be read", fix: "check the path")
        }
        // The same reading of quotes as the writer's (CSV): a slide named "a, b.svs" is one field.
        let records = CSV.records(text)
        guard let header = records.first?.fields else {
            throw CommandError(
                code: .input, subject: path, message: "the labels CSV is empty",
                fix: "write a header slide,label,fold and one row per slide")
        }
        let columns = header.map { $0.lowercased() }
        guard let slide = columns.firstIndex(of: "slide"), let label = columns.firstIndex(of: "label"),
            let fold = columns.firstIndex(of: "fold")
        else {
            throw CommandError(
                code: .input, subject: path,
                message: "the header names the columns \(header.joined(separator: ","))",
                fix: "name the columns slide, label and fold in the first line")
        }
        var rows: [Row] = []
        for record in records.dropFirst() {
            let fields = record.fields
            let number = record.line - 1
            guard fields.count == columns.count else {
                throw CommandError(
                    code: .input, subject: "\(path):\(number + 1)", message: "has \(fields.count) fields",
                    fix: "give \(columns.count) fields, as the header does")
            }
            let labelValue: Bool
            switch fields[label].lowercased() {
            case "1", "true", "positive": labelValue = true
            case "0", "false", "negative": labelValue = false
            default:
                throw CommandError(
                    code: .input, subject: "\(path):\(number + 1)", message: "label \(fields[label]) is not a label",
                    fix: "write 1/0, true/false or positive/negative")
            }
            guard let foldValue = Int(fields[fold]) else {
                throw CommandError(
                    code: .input, subject: "\(path):\(number + 1)", message: "fold \(fields[fold]) is not an integer",
                    fix: "number the folds 0, 1, 2, …")
            }
            rows.append(Row(slide: fields[slide], label: labelValue, fold: foldValue))
        }
        return rows
    }
}

/// A cached feature file: a float32 .npy of shape [tiles, 3, D] or [tiles, 3·D].
enum FeatureFile {
    /// The features' bytes and the number of tiles.
    static func read(path: String, featureSize d: Int) throws -> (Data, Int) {
        let (shape, data) = try NumPyReader.readFloat32(path: path)
        guard let tiles = shape.first, shape == [tiles, 3, d] || shape == [tiles, 3 * d] else {
            throw CommandError(
                code: .input, subject: path, message: "its shape is \(shape)",
                fix: "the features must be a float32 .npy of shape [tiles, 3, \(d)]")
        }
        return (data, tiles)
    }
}
