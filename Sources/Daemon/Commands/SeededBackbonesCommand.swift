import ArgumentParser
import Crypto
import Foundation
import Inference
import Ingest

/// `csmil seeded-backbones`: backbones that every machine computes identically from a seed (the demo model's).
struct SeededBackbonesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seeded-backbones",
        abstract: "Write the three backbones of a model, deterministic from a seed, as .safetensors files.",
        discussion: """
            Untrained ResNet weights from the counter-based SplitMix64 stream documented in SeededWeights: He-uniform \
            convolutions, BatchNorm weight u + 0.5, bias and running mean (2u − 1)·0.1, running variance u + 0.5. \
            Scale s (0 = 20x, 1 = 10x, 2 = 5x) uses stream seed + s. Writes <out>/backbone_20x.safetensors, \
            backbone_10x.safetensors and backbone_5x.safetensors (each through a .partial name) and prints one JSON \
            line with each file's SHA-256. The same architecture and seed give the same bytes on every machine: \
            models/demo is built this way (see its README).

            --standardize: untrained backbones give features with a large offset shared by every tile and a \
            different one per scale (ResNet-18, seed 1, synthetic tissue: per-channel means about 54 at 20x and 80 \
            at 10x and 5x, tile-to-tile standard deviations 4 to 8), which keeps CS-MIL heads, whose first layer is \
            shared by the three scales, from training. Given the features of some slides embedded with the plain \
            seeded backbones (csmil embed-slides, same architecture and seed), each backbone's last stage is \
            rescaled per channel so that its features become about (f − mean) / sd + offset, each channel and scale \
            measured on those slides. The rescaling is exact where the last ReLU does not clip (it only multiplies \
            BatchNorm scales and shifts and divides the next block's input weights by positive factors).
            """
    )

    @Option(name: .long, help: "The backbone architecture: resnet18, resnet34 or resnet50.")
    var arch: Architecture = .resnet18

    @Option(name: .long, help: "The seed; the 20x, 10x and 5x backbones use streams seed, seed + 1 and seed + 2.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "The folder to write the three files into (created if missing).")
    var out: String

    @Option(
        name: .long, parsing: .upToNextOption,
        help: ArgumentHelp(
            "Features [tiles, 3·D] of slides embedded with the plain seeded backbones: standardise each scale on them.",
            valueName: "npy"))
    var standardize: [String] = []

    @Option(name: .long, help: "With --standardize: the mean each feature is moved to.")
    var offset: Double = 0

    @Option(
        name: .long, parsing: .upToNextOption,
        help: """
            Slides to calibrate BatchNorm on: each backbone's statistics are set layer by layer from its own scale's             views of these slides' tiles (BatchNormCalibration).
            """)
    var calibrate: [String] = []

    @Option(name: .long, help: "With --calibrate: tiles taken, spread evenly over the slides' grids.")
    var calibrationTiles: Int = 64

    @OptionGroup var global: GlobalOptions

    /// The file names, scale 0 (20x) first.
    static let fileNames = ["backbone_20x.safetensors", "backbone_10x.safetensors", "backbone_5x.safetensors"]

    func run() throws {
        let logger = global.bootstrapLogging()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let statistics = try standardize.isEmpty ? nil : Self.statistics(of: standardize, featureSize: arch.featureSize)
        let calibration = try calibrate.isEmpty ? nil : Self.calibrationImages(calibrate, tiles: calibrationTiles)
        var digests: [String: String] = [:]
        for (scale, name) in Self.fileNames.enumerated() {
            let path = URL(fileURLWithPath: out).appendingPathComponent(name).path
            var weights = SeededWeights.resnet(arch, seed: seed &+ UInt64(scale))
            if let statistics {
                let (mean, deviation) = statistics[scale]
                let factor = deviation.map { 1 / max($0, 1e-3) }
                let shift = zip(mean, factor).map { offset - $0 * $1 }
                Self.rescaleLastStage(&weights, architecture: arch, factor: factor, shift: shift)
            }
            if let calibration {
                weights = try calibration[scale].withUnsafeBufferPointer { images in
                    try BatchNormCalibration.calibrate(
                        architecture: arch, weights: weights, images: images.baseAddress!,
                        count: images.count / Self.plane)
                }
            }
            let data = CheckpointWriter.safetensors(weights)
            let partial = path + ".partial"
            try data.write(to: URL(fileURLWithPath: partial))
            guard rename(partial, path) == 0 else {
                try? FileManager.default.removeItem(atPath: partial)
                throw EmbedError(
                    description: "\(path): cannot be written (\(String(cString: strerror(errno)))) — check the folder")
            }
            digests[name] = "sha256:" + SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
            logger.info("backbone written", metadata: ["file": "\(path)", "bytes": "\(data.count)"])
        }
        let line = Line(
            arch: arch.rawValue, seed: seed, folder: out, files: digests,
            standardizedOn: standardize.isEmpty ? nil : standardize)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(line), as: UTF8.self))
    }

    static let plane = Preprocessing.outputSide * Preprocessing.outputSide * 3

    /// Per scale, the normalised 256² views of `tiles` tiles spread evenly over the slides' tissue grids.
    static func calibrationImages(_ slides: [String], tiles: Int) throws -> [[Float]] {
        var images: [[Float]] = [[], [], []]
        let perSlide = max(1, tiles / slides.count)
        for path in slides {
            let slide = try Slide(path: path)
            let resolution = try SlideResolution(slide: slide)
            let grid = TileGrid(
                slide: slide, resolution: resolution, mask: try TissueMask.compute(slide: slide, resolution: resolution)
            )
            guard !grid.tiles.isEmpty else { continue }
            let stride = max(1, grid.tiles.count / perSlide)
            var chosen = grid
            chosen.tiles = Swift.stride(from: 0, to: grid.tiles.count, by: stride).prefix(perSlide).map {
                grid.tiles[$0]
            }
            let stream = try TileStream(slide: slide, resolution: resolution, grid: chosen)
            let batch = TileTripletBatch(capacity: 8)
            while try stream.fill(batch) {
                for item in 0..<batch.count {
                    for scale in 0..<3 {
                        var normalised = [Float](repeating: 0, count: plane)
                        normalised.withUnsafeMutableBufferPointer {
                            Preprocessing.normalise(
                                rgb: batch.view(scale: scale, item: item), side: TileTripletBatch.sides[scale],
                                into: $0.baseAddress!)
                        }
                        images[scale] += normalised
                    }
                }
            }
        }
        guard !images[0].isEmpty else {
            throw TrainInputError(description: "--calibrate: the slides have no tissue tiles; give slides with tissue")
        }
        return images
    }

    /// Per scale, each channel's mean and standard deviation over every tile of the feature files.
    static func statistics(of files: [String], featureSize d: Int) throws -> [([Double], [Double])] {
        var sum = [Double](repeating: 0, count: 3 * d)
        var squares = [Double](repeating: 0, count: 3 * d)
        var tiles = 0
        for file in files {
            let (data, count) = try FeatureFile.read(path: file, featureSize: d)
            data.withUnsafeBytes { raw in
                let values = raw.bindMemory(to: Float.self)
                for tile in 0..<count {
                    for index in 0..<(3 * d) {
                        let value = Double(values[tile * 3 * d + index])
                        sum[index] += value
                        squares[index] += value * value
                    }
                }
            }
            tiles += count
        }
        guard tiles > 1 else {
            throw TrainInputError(description: "--standardize: the feature files hold \(tiles) tiles; give more slides")
        }
        return (0..<3).map { scale in
            let range = (scale * d)..<((scale + 1) * d)
            let mean = range.map { sum[$0] / Double(tiles) }
            let deviation = range.map { index in
                (max(squares[index] / Double(tiles) - (sum[index] / Double(tiles)) * (sum[index] / Double(tiles)), 0))
                    .squareRoot()
            }
            return (mean, deviation)
        }
    }

    /// Makes the last stage (`layer4`) compute `relu(factor · x + shift)` per channel instead of `relu(x)`, where x is
    /// its pre-ReLU output: every block's last BatchNorm (and the first block's projection BatchNorm) gets its scale
    /// and shift multiplied by `factor`, the next block's first convolution has its input channels divided by
    /// `factor` (so it sees what it saw before), and the last BatchNorm's shift is increased by `shift`.
    static func rescaleLastStage(
        _ weights: inout StateDict, architecture: Architecture, factor: [Double], shift: [Double]
    ) {
        let (blocks, lastNorm) = architecture == .resnet50 ? (3, "bn3") : (architecture == .resnet18 ? 2 : 3, "bn2")
        func update(_ name: String, _ transform: (Int, Float) -> Float) {
            guard var tensor = weights[name] else { preconditionFailure("\(name) missing from the seeded weights") }
            let perChannel = tensor.count / tensor.shape[0]
            for index in 0..<tensor.count { tensor.values[index] = transform(index / perChannel, tensor.values[index]) }
            weights.set(name, tensor)
        }
        func scaleNorm(_ prefix: String) {
            update(prefix + ".weight") { channel, value in Float(Double(value) * factor[channel]) }
            update(prefix + ".bias") { channel, value in Float(Double(value) * factor[channel]) }
        }
        for block in 0..<blocks {
            let prefix = "layer4.\(block)."
            scaleNorm(prefix + lastNorm)
            if block == 0 {
                scaleNorm(prefix + "downsample.1")
            } else {
                // conv1.weight [Cout, Cin, k, k]: divide input channel j by factor[j].
                guard var tensor = weights[prefix + "conv1.weight"] else { preconditionFailure("conv1 missing") }
                let (cin, kernel) = (tensor.shape[1], tensor.shape[2] * tensor.shape[3])
                for index in 0..<tensor.count {
                    tensor.values[index] = Float(Double(tensor.values[index]) / factor[(index / kernel) % cin])
                }
                weights.set(prefix + "conv1.weight", tensor)
            }
        }
        update("layer4.\(blocks - 1).\(lastNorm).bias") { channel, value in Float(Double(value) + shift[channel]) }
    }

    private struct Line: Encodable {
        var arch: String
        var seed: UInt64
        var folder: String
        var files: [String: String]
        var standardizedOn: [String]?
    }
}
