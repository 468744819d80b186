import ArgumentParser
import Foundation
import Images
import Inference
import Ingest

/// `csmil embed`: backbone features of PNG images, for building training sets.
struct EmbedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Embed PNG images (256, 512 or 1024 px square) with a backbone into a float32 .npy [N, D].",
        discussion: """
            512 and 1024 px images are the 10x and 5x contexts of a tile and are resized to 256 exactly \
            as the reference pipeline does (model spec §2). Rows of the .npy follow the argument order.
            """
    )

    @Option(name: .long, help: "The backbone checkpoint (.pth as published, or .safetensors).")
    var backbone: String

    @Option(name: .long, help: "The backbone architecture: resnet18, resnet34 or resnet50.")
    var arch: Architecture = .resnet50

    @Option(name: .long, help: "The .npy file to write.")
    var out: String

    @Option(name: .long, help: "Images embedded together.")
    var batch: Int = 16

    @Option(name: .long, help: "The backbone's number format: fp32 or bf16 (oneDNN; CPUs with AVX512_BF16 or AMX).")
    var precision: Precision = .fp32

    @Argument(help: "PNG images, embedded in argument order.")
    var images: [String]

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("name at least one PNG image") }
        guard batch >= 1 && batch <= 256 else { throw ValidationError("--batch must be between 1 and 256") }
    }

    func run() async throws {
        let logger = global.bootstrapLogging()
        let weights = try Checkpoint.loadBackbone(path: backbone)
        // The pipeline's backbone at this precision: the same kernels, so the same features.
        try precision.prepare(architecture: arch, subject: "--precision")
        let network = try Backbone(architecture: arch, weights: weights, precision: precision, file: backbone)
        let embedder = Embedder(backbone: network)
        let batchSize = min(batch, images.count)
        // Written beside the target and renamed at the end, so a failure never leaves a short .npy.
        let partial = out + ".partial"
        let writer = try NumPyWriter(path: partial, rows: images.count, columns: network.featureSize)
        defer { try? FileManager.default.removeItem(atPath: partial) }
        var features = [Float](repeating: 0, count: batchSize * network.featureSize)
        var start = 0
        while start < images.count {
            let paths = Array(images[start..<min(start + batchSize, images.count)])
            let decoded = try paths.map { path throws -> RGBImage in
                let image = try RGBImage(contentsOfFile: path)
                guard image.width == image.height, Preprocessing.inputSides.contains(image.width) else {
                    throw CommandError(
                        code: .input, subject: path, message: "is \(image.width)×\(image.height) pixels",
                        fix: "embed takes square tiles of 256 (20x), 512 (10x context) or 1024 (5x context) pixels")
                }
                return image
            }
            features.withUnsafeMutableBufferPointer { output in
                embedder.embed(count: decoded.count, into: output.baseAddress!) { index, body in
                    decoded[index].pixels.withUnsafeBufferPointer { body($0.baseAddress!, decoded[index].width) }
                }
            }
            try features.withUnsafeBufferPointer { all in
                try writer.append(UnsafeBufferPointer(rebasing: all[0..<(decoded.count * network.featureSize)]))
            }
            start += decoded.count
            logger.debug("embedded", metadata: ["images": "\(start)", "of": "\(images.count)"])
        }
        try writer.close()
        guard rename(partial, out) == 0 else {
            throw CommandError(
                code: .unwritable, subject: out, message: "cannot be written (\(String(cString: strerror(errno))))",
                fix: "check the folder")
        }
        logger.info(
            "features written", metadata: ["file": "\(out)", "shape": "[\(images.count), \(network.featureSize)]"])
    }
}

extension Architecture: ExpressibleByArgument {}
