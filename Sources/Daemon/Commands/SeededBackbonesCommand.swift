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

            --calibrate: BatchNorm statistics set layer by layer from synthetic (or any) tissue, so that every \
            convolution's output has mean 0 and variance 1 per channel on those tiles. Heads on untrained \
            backbones learn only with their features standardised per scale (csmil train --normalize-features; \
            docs/toy-datasets.md).
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
        let calibration = try calibrate.isEmpty ? nil : Self.calibrationImages(calibrate, tiles: calibrationTiles)
        var digests: [String: String] = [:]
        for (scale, name) in Self.fileNames.enumerated() {
            let path = URL(fileURLWithPath: out).appendingPathComponent(name).path
            var weights = SeededWeights.resnet(arch, seed: seed &+ UInt64(scale))
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
                throw CommandError(
                    code: .unwritable, subject: path,
                    message: "cannot be written (\(String(cString: strerror(errno))))",
                    fix: "check the folder")
            }
            digests[name] = "sha256:" + Hex.string(SHA256.hash(data: data))
            logger.info("backbone written", metadata: ["file": "\(path)", "bytes": "\(data.count)"])
        }
        let line = Line(
            arch: arch.rawValue, seed: seed, folder: out, files: digests,
            calibratedOn: calibrate.isEmpty ? nil : calibrate)
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
            throw CommandError(
                code: .input, subject: "--calibrate", message: "the slides have no tissue tiles",
                fix: "give slides with tissue")
        }
        return images
    }

    private struct Line: Encodable {
        var arch: String
        var seed: UInt64
        var folder: String
        var files: [String: String]
        var calibratedOn: [String]?

        enum CodingKeys: String, CodingKey {
            case arch, seed, folder, files
            case calibratedOn = "calibrated_on"
        }
    }
}
