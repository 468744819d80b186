import ArgumentParser
import Errors
import Foundation
import Inference
import Ingest
import Logging
import Threads

/// `csmil embed-slides`: the cached per-slide features `csmil train` reads.
struct EmbedSlidesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed-slides",
        abstract: "Embed whole slides with three backbones into the per-slide features csmil train reads.",
        discussion: """
            Each slide is tiled exactly as csmil score tiles it (resolution, tissue mask, 256-px tile grid, \
            centred 10x and 5x contexts; model spec §2–§3) and every tile's three images go through the \
            backbone of their scale. Writes <out>/<slide>.npy, float32 [tiles, 3·D] in tile-grid order (scale 0 = \
            20x), and <out>/<slide>.tiles.csv (the tile's grid column and row and its level-0 rectangle, one line \
            per row of the .npy), where <slide> is the file name without its extension. Prints one JSON line per \
            slide. A slide whose features are already there is skipped unless --force.
            """
    )

    /// The backbones (train: the features' architecture, and the files model.toml will name).
    @OptionGroup var backbones: BackboneOptions

    @Option(name: .long, help: "The features folder to write into (created if missing).")
    var out: String

    @Option(name: .long, help: "Tiles embedded together.")
    var batch: Int = 8

    @Flag(name: .long, help: "Embed slides whose features are already in the folder again.")
    var force = false

    @Option(name: .long, help: "The backbones' number format: fp32 (csmil's kernels) or bf16 (oneDNN).")
    var precision: Precision = .fp32

    @OptionGroup var resolution: ResolutionOptions

    @Argument(help: "Slide files (SVS, TIFF, NDPI, MRXS, … as OpenSlide reads them).")
    var slides: [String]

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard !slides.isEmpty else { throw ValidationError("name at least one slide") }
        guard (1...256).contains(batch) else { throw ValidationError("--batch must be between 1 and 256") }
        let stems = slides.map(Self.stem)
        if let repeated = Dictionary(grouping: stems, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw ValidationError("two slides would both write \(repeated).npy — give each slide its own name")
        }
    }

    /// The slide's file name without its extension: the name `csmil train`'s labels CSV uses.
    static func stem(_ path: String) -> String {
        URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
    }

    func run() async throws {
        let logger = global.bootstrapLogging()
        let command = self
        let failed = try await DedicatedThread.run(name: "csmil-embed-slides") { try command.embedAll(logger: logger) }
        if failed { throw ExitCode(1) }
    }

    /// Embeds every slide; a slide that fails is reported and the others go on. Returns whether any failed.
    private func embedAll(logger: Logger) throws -> Bool {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try precision.prepare(architecture: backbones.arch, subject: "--precision")
        var networks: [Backbone] = []
        for file in self.backbones.files {
            networks.append(
                try Backbone(
                    architecture: backbones.arch, weights: try Checkpoint.loadBackbone(path: file),
                    precision: precision,
                    file: file))
        }
        let embedder = TripletEmbedder(backbones: networks, batchSize: batch)
        let tiles = TileTripletBatch(capacity: batch)
        var anyFailed = false
        for (number, path) in slides.enumerated() {
            let stem = Self.stem(path)
            let folder = URL(fileURLWithPath: out)
            let featuresPath = folder.appendingPathComponent(stem + ".npy").path
            let tilesPath = folder.appendingPathComponent(stem + ".tiles.csv").path
            var line = Line(slide: path, features: featuresPath, tilesCsv: tilesPath)
            if !force && FileManager.default.fileExists(atPath: featuresPath)
                && FileManager.default.fileExists(atPath: tilesPath)
            {
                line.status = "cached"
            } else {
                let started = Date()
                do {
                    line.tiles = try embed(
                        slide: path, featuresPath: featuresPath, tilesPath: tilesPath, embedder: embedder,
                        batch: tiles)
                    line.status = "embedded"
                } catch {
                    line.status = "failed"
                    line.error = "\(error)"
                    anyFailed = true
                    logger.error("slide not embedded", metadata: ["slide": "\(path)"].merging(.error(error)) { $1 })
                }
                line.seconds = (Date().timeIntervalSince(started) * 100).rounded() / 100
            }
            logger.info(
                "slide",
                metadata: ["slide": "\(stem)", "status": "\(line.status)", "done": "\(number + 1)/\(slides.count)"])
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            FileHandle.standardOutput.write(try encoder.encode(line) + Data("\n".utf8))
        }
        return anyFailed
    }

    /// Tiles one slide, embeds every tile and writes its `.npy` and `.tiles.csv` (each through a `.partial` name).
    /// Returns the number of tiles.
    private func embed(
        slide path: String, featuresPath: String, tilesPath: String, embedder: TripletEmbedder,
        batch: TileTripletBatch
    ) throws -> Int {
        let slide = try Slide(path: path)
        let resolution = try SlideResolution(slide: slide, assumeMPP: self.resolution.assumeMPP)
        let mask = try TissueMask.compute(slide: slide, resolution: resolution)
        let grid = TileGrid(slide: slide, resolution: resolution, mask: mask)
        let stream = try TileStream(slide: slide, resolution: resolution, grid: grid)
        let row = 3 * embedder.featureSize
        var features = [Float](repeating: 0, count: grid.tiles.count * row)
        var batchFeatures = [Float](repeating: 0, count: batch.capacity * row)
        while try stream.fill(batch) {
            batchFeatures.withUnsafeMutableBufferPointer { output in
                embedder.embed(count: batch.count, into: output.baseAddress!) { item in
                    TileTriplet(
                        tile: batch.view(scale: 0, item: item), context10x: batch.view(scale: 1, item: item),
                        context5x: batch.view(scale: 2, item: item))
                }
            }
            // The stream hands tiles out strip by strip; each goes to its place in grid order.
            for (item, tile) in batch.tileIndices.enumerated() {
                features[(tile * row)..<((tile + 1) * row)] = batchFeatures[(item * row)..<((item + 1) * row)]
            }
        }

        let partial = featuresPath + ".partial"
        defer { try? FileManager.default.removeItem(atPath: partial) }
        let writer = try NumPyWriter(path: partial, rows: grid.tiles.count, columns: row)
        try features.withUnsafeBufferPointer { try writer.append($0) }
        try writer.close()
        var csv = "column,row,x,y,width,height\n"
        for tile in grid.tiles {
            let rectangle = [tile.level0.x, tile.level0.y, tile.level0.width, tile.level0.height]
            csv += "\(tile.column),\(tile.row)," + rectangle.map { String(Int($0.rounded())) }.joined(separator: ",")
            csv += "\n"
        }
        try Data(csv.utf8).write(to: URL(fileURLWithPath: tilesPath), options: .atomic)
        guard rename(partial, featuresPath) == 0 else {
            throw CommandError(
                code: .unwritable, subject: featuresPath,
                message: "cannot be written (\(String(cString: strerror(errno))))", fix: "check the folder")
        }
        return grid.tiles.count
    }

    /// The JSON line printed per slide.
    private struct Line: Encodable {
        var slide: String
        var features: String
        var tilesCsv: String
        /// embedded, cached or failed.
        var status = ""
        var tiles: Int?
        var seconds: Double?
        var error: String?
    }
}
