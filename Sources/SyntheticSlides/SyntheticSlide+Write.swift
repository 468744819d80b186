import Foundation
import Images
import Ingest

extension SyntheticSlide {
    /// The files one `write(to:)` produced.
    public struct Written: Sendable, Equatable {
        /// The slide file.
        public var slide: String
        /// `<name>.truth.png` beside it.
        public var truthMask: String
        /// `<name>.truth.json` beside it.
        public var truthJSON: String
        /// The sidecar's content.
        public var truth: SyntheticSlideTruth
        /// The slide file's size in bytes.
        public var bytes: Int
    }

    /// The truth files' path stem for a slide path: the path without its extension.
    public static func truthStem(forSlide path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.pathExtension.isEmpty ? path : url.deletingPathExtension().path
    }

    /// Writes the slide to `path` (through `path.partial`, renamed when complete), then
    /// `<name>.truth.png` and `<name>.truth.json` beside it. Level 0 is painted one strip of
    /// tiles at a time, in parallel over the rows of the strip, so memory stays bounded by
    /// `width × 256 × 3` bytes whatever the height.
    @discardableResult
    public func write(to path: String) throws(SyntheticSlideError) -> Written {
        let width = configuration.width
        let height = configuration.height
        let tileSize = Self.tileSize
        let partial = path + ".partial"
        defer { unlink(partial) }
        let factors = configuration.format == .svs ? [4, 4] : genericFactors
        var thumbnail: ((Int, Int) -> TIFFImageTags)?
        if configuration.format == .svs { thumbnail = { self.thumbnailTags($0, $1) } }
        let writer = try TiledTIFFWriter(
            path: partial, width: width, height: height, tileSize: tileSize, quality: configuration.quality,
            factors: factors, bigTIFF: width * height * 3 > 4 << 30, tags: { self.levelTags($0) },
            thumbnailTags: thumbnail)
        let strip = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: width * tileSize * 3)
        defer { strip.deallocate() }
        let painter = TissuePainter(slide: self)
        var top = 0
        while top < height {
            let rows = min(tileSize, height - top)
            Self.paintInParallel(painter, rows: top..<(top + rows), width: width, into: strip.baseAddress!)
            artifacts.apply(
                to: strip.baseAddress!, rows: top..<(top + rows), width: width, height: height, painter: painter,
                seed: configuration.seed)
            try writer.append(rows: UnsafePointer(strip.baseAddress!), count: rows)
            top += rows
        }
        try writer.finish()
        guard rename(partial, path) == 0 else {
            throw SyntheticSlideError(
                code: .writeFailed, file: path, message: "cannot be renamed into place (\(Self.lastError()))",
                fix: "check the folder's permissions")
        }
        let stem = Self.truthStem(forSlide: path)
        let maskPath = stem + ".truth.png"
        let jsonPath = stem + ".truth.json"
        do {
            try truthMask().write(to: maskPath)
        } catch {
            throw SyntheticSlideError(
                code: .writeFailed, file: maskPath, message: error.message, fix: error.fix)
        }
        let truth = truth(
            slideName: URL(fileURLWithPath: path).lastPathComponent, levels: writer.writtenLevels,
            maskName: URL(fileURLWithPath: maskPath).lastPathComponent)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try encoder.encode(truth).write(to: URL(fileURLWithPath: jsonPath))
        } catch {
            throw SyntheticSlideError(
                code: .writeFailed, file: jsonPath, message: "cannot be written (\(error))",
                fix: "check the folder's permissions and free space")
        }
        var status = stat()
        let bytes = stat(path, &status) == 0 ? Int(status.st_size) : 0
        return Written(slide: path, truthMask: maskPath, truthJSON: jsonPath, truth: truth, bytes: bytes)
    }

    /// The sidecar's content for this slide as written with `levels`.
    func truth(slideName: String, levels: [TiledTIFFWriter.Level], maskName: String) -> SyntheticSlideTruth {
        let mask = SyntheticMaskGrid(width: configuration.width, height: configuration.height, step: maskDownsample)
        var regions = regions.map {
            SyntheticSlideTruth.Region(
                x: $0.x, y: $0.y, width: $0.width, height: $0.height, tissueFraction: $0.tissueFraction,
                positive: $0.positive, objects: 0, marked: 0)
        }
        let factor = configuration.magnification / 20
        switch configuration.anomaly {
        case .none:
            break
        case .micro:
            let painter = TissuePainter(slide: self)
            let cell = TissuePainter.discCell
            for cellY in 0...((configuration.height / factor) / cell) {
                for cellX in 0...((configuration.width / factor) / cell) {
                    let disc = painter.disc(cellX: cellX, cellY: cellY)
                    let x = disc.centerX * factor
                    let y = disc.centerY * factor
                    guard disc.present, x < configuration.width, y < configuration.height,
                        tissue.contains(Double(x), Double(y))
                    else { continue }
                    let index = (y / regionSide) * regionColumns + x / regionSide
                    regions[index].objects += 1
                    if disc.cross { regions[index].marked += 1 }
                }
            }
        case .macro:
            for ring in rings {
                let index = (Int(ring.centerY) / regionSide) * regionColumns + Int(ring.centerX) / regionSide
                regions[index].objects += 1
                if ring.positive { regions[index].marked += 1 }
            }
        }
        func ellipse(_ shape: SyntheticEllipse) -> SyntheticSlideTruth.Ellipse {
            SyntheticSlideTruth.Ellipse(
                centerX: shape.centerX, centerY: shape.centerY, semiMajor: shape.semiMajor,
                semiMinor: shape.semiMinor, angle: shape.angle)
        }
        let micro = configuration.anomaly == .micro
        return SyntheticSlideTruth(
            slide: slideName, format: configuration.format.rawValue,
            vendor: configuration.format == .svs ? "aperio" : "generic-tiff", width: configuration.width,
            height: configuration.height, mpp: configuration.mpp, magnification: configuration.magnification,
            seed: configuration.seed, jpegQuality: configuration.quality, tileSize: Self.tileSize,
            levels: levels.map { .init(width: $0.width, height: $0.height, downsample: $0.downsample) },
            thumbnail: configuration.format == .svs, tissueFractionRequested: configuration.tissueFraction,
            tissueFraction: tissueFraction,
            mask: .init(
                file: maskName, downsample: maskDownsample, width: mask.columns, height: mask.rows,
                rule: "mask pixel (i, j) is tissue when level-0 point (d*i + d/2, d*j + d/2) is, d = downsample"),
            tissueEllipses: tissue.ellipses.map(ellipse), anomaly: configuration.anomaly.rawValue,
            positiveFractionRequested: configuration.positiveFraction,
            label: configuration.anomaly == .none ? "none" : (isPositive ? "positive" : "negative"),
            regionSide: regionSide, regions: regions,
            rings: rings.map { .init(outer: ellipse($0.shape), thickness: $0.thickness, positive: $0.positive) },
            discCell: micro ? TissuePainter.discCell : nil, discRadius: micro ? TissuePainter.discRadius : nil,
            crossHalfLength: micro ? TissuePainter.crossHalfLength : nil,
            artifacts: artifacts.isEmpty && configuration.artifacts.isEmpty ? nil : artifacts.truth)
    }

    /// Generic TIFF: halve until the level's long side is at most 512 pixels.
    private var genericFactors: [Int] {
        var factors = [Int]()
        var side = max(configuration.width, configuration.height)
        while side > 512 {
            factors.append(2)
            side /= 2
        }
        return factors
    }

    /// Tags of a pyramid level: the Aperio description for SVS, resolution tags for generic TIFF.
    private func levelTags(_ level: TiledTIFFWriter.Level) -> TIFFImageTags {
        let width = configuration.width
        let height = configuration.height
        let size = "\(width)x\(height)"
        let tile = "(\(Self.tileSize)x\(Self.tileSize))"
        let compression = "JPEG/RGB Q=\(configuration.quality)"
        switch configuration.format {
        case .svs:
            let description: String
            if level.downsample == 1 {
                let fields = [
                    "\(Self.aperioHeader)\n\(size) [0,0 \(size)] \(tile) \(compression)",
                    "AppMag = \(configuration.magnification)",
                    "MPP = \(Self.decimal(configuration.mpp))",
                    "ScanScope ID = CSMIL-SYNTH",
                    "Filename = csmil-synth-\(configuration.seed)",
                    "Title = csmil synthetic slide",
                    "OriginalWidth = \(width)",
                    "OriginalHeight = \(height)",
                    "Anomaly = \(configuration.anomaly.rawValue)",
                    "Seed = \(configuration.seed)",
                ]
                description = fields.joined(separator: "|")
            } else {
                description =
                    "\(Self.aperioHeader)\n\(size) \(tile) -> \(level.width)x\(level.height) \(compression)"
            }
            return TIFFImageTags(width: level.width, height: level.height, description: description)
        case .tiff:
            let description =
                level.downsample == 1
                ? "csmil synthetic slide \(size), \(Self.decimal(configuration.mpp)) um/px, "
                    + "\(configuration.magnification)x, seed \(configuration.seed)" : nil
            return TIFFImageTags(
                width: level.width, height: level.height, description: description,
                pixelsPerCentimetre: 10_000 / (configuration.mpp * Double(level.downsample)),
                reduced: level.downsample > 1)
        }
    }

    /// The Aperio thumbnail directory's tags.
    private func thumbnailTags(_ width: Int, _ height: Int) -> TIFFImageTags {
        TIFFImageTags(
            width: width, height: height,
            description: "\(Self.aperioHeader)\n\(configuration.width)x\(configuration.height) -> \(width)x\(height) - "
        )
    }

    private static let aperioHeader = "Aperio Image Library v12.0.0 "

    /// A number the way Aperio writes it (`0.5`, `0.25`).
    private static func decimal(_ value: Double) -> String {
        var text = String(format: "%.4f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    private static func lastError() -> String { String(cString: strerror(errno)) }

    /// Paints level-0 rows `rows` into `output` (full width), the rows split across the cores.
    private static func paintInParallel(
        _ painter: TissuePainter, rows: Range<Int>, width: Int, into output: UnsafeMutablePointer<UInt8>
    ) {
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 16, rows.count))
        let shared = SendablePointer(pointer: output)
        DispatchQueue.concurrentPerform(iterations: workers) { part in
            var scratch = TissuePainter.Scratch()
            let first = rows.lowerBound + rows.count * part / workers
            let last = rows.lowerBound + rows.count * (part + 1) / workers
            for y in first..<last {
                painter.paint(
                    row: y, from: 0, count: width, into: shared.pointer + (y - rows.lowerBound) * width * 3,
                    scratch: &scratch)
            }
        }
    }
}

/// `@unchecked Sendable`: a pointer handed to worker threads that write disjoint rows of it.
private struct SendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt8>
}
