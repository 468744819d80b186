import Errors
import Foundation
import Images
import Ingest

/// A synthetic whole-slide image: tissue-like texture inside a known, seeded geometry, with the
/// toy anomalies of the CS-MIL paper (model spec §7), written as a pyramidal tiled TIFF that
/// OpenSlide opens (`write(to:)`). Everything is a pure function of the configuration, so the same
/// seed gives the same bytes, and any region can be painted on its own (`render`).
public struct SyntheticSlide: Sendable {
    /// The file layout of the written slide.
    public enum Format: String, Sendable, CaseIterable, Codable {
        /// Aperio SVS: JPEG tiles, an `Aperio Image Library` description, a thumbnail, levels at
        /// downsample 4 and 16. OpenSlide's vendor "aperio".
        case svs
        /// A generic pyramidal tiled TIFF with resolution tags, levels at downsample 2, 4, 8 … .
        /// OpenSlide's vendor "generic-tiff".
        case tiff
    }

    /// The toy dataset the slide belongs to (model spec §7).
    public enum Anomaly: String, Sendable, CaseIterable, Codable {
        /// Tissue only.
        case none
        /// Scattered dark discs; in positive regions some carry a white "+" visible only at 20x.
        case micro
        /// Large thick dark rings with light interiors: ellipses in positive regions, circles in
        /// negative ones; whole only at 5x.
        case macro
    }

    /// What to paint and how to write it.
    public struct Configuration: Sendable, Equatable {
        /// Level-0 width in pixels.
        public var width: Int
        /// Level-0 height in pixels.
        public var height: Int
        /// The scanning magnification: 20 (0.5 µm per pixel) or 40 (0.25 µm per pixel).
        public var magnification: Int
        /// Seeds the geometry and the texture.
        public var seed: UInt64
        /// The share of the slide's area covered by tissue, 0…1.
        public var tissueFraction: Double
        /// Which toy anomaly to paint.
        public var anomaly: Anomaly
        /// The share of tissue-bearing regions that are positive (0 gives a negative slide); a
        /// positive fraction above 0 makes at least one region positive.
        public var positiveFraction: Double
        /// The file layout.
        public var format: Format
        /// JPEG quality of the tiles, 1…100.
        public var quality: Int
        /// Artifacts painted over the tissue (``SyntheticArtifacts``).
        public var artifacts: Set<SyntheticArtifactKind> = []

        /// A configuration; defaults make a 20x Aperio slide, half tissue, no anomaly.
        public init(
            width: Int, height: Int, magnification: Int = 20, seed: UInt64 = 1, tissueFraction: Double = 0.5,
            anomaly: Anomaly = .none, positiveFraction: Double = 0, format: Format = .svs, quality: Int = 70
        ) {
            self.width = width
            self.height = height
            self.magnification = magnification
            self.seed = seed
            self.tissueFraction = tissueFraction
            self.anomaly = anomaly
            self.positiveFraction = positiveFraction
            self.format = format
            self.quality = quality
        }

        /// Micrometres per level-0 pixel: 0.5 at 20x, 0.25 at 40x.
        public var mpp: Double { 10 / Double(magnification) }
    }

    /// The largest level-0 side accepted (OpenSlide and TIFF handle more; this keeps the truth
    /// mask and the sidecar small).
    public static let maximumSide = 400_000
    /// Level-0 pixels per side of a pyramid tile.
    public static let tileSize = 256
    /// The side of an anomaly region, in micrometres (2048 pixels at 20x).
    public static let regionMicrometres = 1024.0

    /// The configuration this slide was made from.
    public let configuration: Configuration
    /// Level-0 pixels per truth-mask pixel: 16, doubled until the mask's long side is ≤ 8192.
    public let maskDownsample: Int
    /// The share of truth-mask pixels that are tissue: the tissue fraction actually achieved.
    public let tissueFraction: Double
    /// The anomaly regions (a grid of squares), tissue-bearing or not.
    public let regions: [SyntheticRegion]
    /// The macro-anomaly rings (empty unless the anomaly is `macro`).
    public let rings: [SyntheticRing]
    /// Pen, blur and fold artifacts (empty unless the configuration asks for them).
    let artifacts: SyntheticArtifacts

    let tissue: SyntheticTissue
    let regionSide: Int
    let regionColumns: Int
    /// Whether each region (row-major) is positive.
    let positive: [Bool]

    /// Lays out a slide: tissue ellipses scaled to the requested tissue fraction, regions, the
    /// positive ones, rings. Throws when an option is out of range.
    public init(_ configuration: Configuration) throws(SyntheticSlideError) {
        try Self.validate(configuration)
        self.configuration = configuration
        var maskDownsample = 16
        while max(configuration.width, configuration.height) > 8192 * maskDownsample { maskDownsample *= 2 }
        self.maskDownsample = maskDownsample
        let mask = SyntheticMaskGrid(width: configuration.width, height: configuration.height, step: maskDownsample)
        tissue = Self.layOutTissue(configuration, mask: mask)
        let tissueMask = mask.rasterise(tissue)
        tissueFraction = Double(tissueMask.reduce(0) { $0 + Int($1) }) / Double(max(1, tissueMask.count))

        regionSide = Int((Self.regionMicrometres / configuration.mpp).rounded())
        regionColumns = (configuration.width + regionSide - 1) / regionSide
        let regionRows = (configuration.height + regionSide - 1) / regionSide
        var regions = [SyntheticRegion]()
        for row in 0..<regionRows {
            for column in 0..<regionColumns {
                let x = column * regionSide
                let y = row * regionSide
                let width = min(regionSide, configuration.width - x)
                let height = min(regionSide, configuration.height - y)
                let share = mask.share(of: tissueMask, x: x, y: y, width: width, height: height)
                regions.append(
                    SyntheticRegion(x: x, y: y, width: width, height: height, tissueFraction: share, positive: false))
            }
        }
        // Regions with at least 5 % tissue can hold anomalies; a seeded choice of them is positive.
        let bearing = regions.indices.filter { regions[$0].tissueFraction >= 0.05 }
        if configuration.anomaly != .none && configuration.positiveFraction > 0 && !bearing.isEmpty {
            var random = SyntheticRandom(seed: configuration.seed, stream: 3)
            let count = min(
                bearing.count, max(1, Int((configuration.positiveFraction * Double(bearing.count)).rounded())))
            for index in bearing.shuffled(using: &random).prefix(count) { regions[index].positive = true }
        }
        self.regions = regions
        positive = regions.map(\.positive)
        rings =
            configuration.anomaly == .macro
            ? Self.layOutRings(configuration, regions: regions, bearing: bearing, tissue: tissue) : []
        artifacts = SyntheticArtifacts.layOut(
            kinds: configuration.artifacts, configuration: configuration, tissue: tissue)
    }

    /// Whether the slide holds at least one positive region.
    public var isPositive: Bool { regions.contains(where: \.positive) }

    /// The truth mask: one pixel per `maskDownsample` × `maskDownsample` block of level 0, white
    /// where the block's centre is tissue, black elsewhere.
    public func truthMask() -> RGBImage {
        let mask = SyntheticMaskGrid(width: configuration.width, height: configuration.height, step: maskDownsample)
        let values = mask.rasterise(tissue)
        var pixels = [UInt8](repeating: 0, count: values.count * 3)
        for index in values.indices where values[index] != 0 {
            pixels[3 * index] = 255
            pixels[3 * index + 1] = 255
            pixels[3 * index + 2] = 255
        }
        return RGBImage(width: mask.columns, height: mask.rows, pixels: pixels)
    }

    /// Paints the level-0 region at `(x, y)` of `width` × `height` pixels as interleaved RGB,
    /// exactly as it is handed to the JPEG encoder (artifacts only when the region spans the full width, as the
    /// writer's strips do).
    public func render(x: Int, y: Int, width: Int, height: Int) -> [UInt8] {
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        let painter = TissuePainter(slide: self)
        pixels.withUnsafeMutableBufferPointer { buffer in
            var scratch = TissuePainter.Scratch()
            for row in 0..<height {
                painter.paint(
                    row: y + row, from: x, count: width, into: buffer.baseAddress! + row * width * 3,
                    scratch: &scratch)
            }
            if x == 0 && width == configuration.width {
                artifacts.apply(
                    to: buffer.baseAddress!, rows: y..<(y + height), width: width, height: configuration.height,
                    painter: painter, seed: configuration.seed)
            }
        }
        return pixels
    }

    /// Whether the region holding level-0 point `(x, y)` is positive.
    @inline(__always)
    func isPositive(x: Int, y: Int) -> Bool {
        guard x >= 0, y >= 0, x < configuration.width, y < configuration.height else { return false }
        return positive[(y / regionSide) * regionColumns + x / regionSide]
    }

    private static func validate(_ configuration: Configuration) throws(SyntheticSlideError) {
        func invalid(_ message: String, _ fix: String) -> SyntheticSlideError {
            SyntheticSlideError(code: .invalidOption, file: nil, message: message, fix: fix)
        }
        let side = 1...maximumSide
        guard side.contains(configuration.width), side.contains(configuration.height) else {
            throw invalid(
                "a slide of \(configuration.width)×\(configuration.height) pixels cannot be made",
                "give a width and height between 1 and \(maximumSide)")
        }
        guard [20, 40].contains(configuration.magnification) else {
            throw invalid("magnification \(configuration.magnification)x is not offered", "use 20 or 40")
        }
        guard (0...1).contains(configuration.tissueFraction) else {
            throw invalid("tissue fraction \(configuration.tissueFraction) is out of range", "give a value in 0…1")
        }
        guard (0...1).contains(configuration.positiveFraction) else {
            throw invalid(
                "positive fraction \(configuration.positiveFraction) is out of range", "give a value in 0…1")
        }
        guard (1...100).contains(configuration.quality) else {
            throw invalid("JPEG quality \(configuration.quality) is out of range", "give a value in 1…100")
        }
    }

    /// A few seeded clusters of overlapping ellipses, then one common scale found by bisection so
    /// that the share of truth-mask pixels covered matches the requested tissue fraction.
    private static func layOutTissue(_ configuration: Configuration, mask: SyntheticMaskGrid) -> SyntheticTissue {
        guard configuration.tissueFraction > 0 else { return SyntheticTissue(ellipses: []) }
        var random = SyntheticRandom(seed: configuration.seed, stream: 1)
        let width = Double(configuration.width)
        let height = Double(configuration.height)
        let unit = min(width, height) / 6
        var base = [SyntheticEllipse]()
        let pieces = 2 + Int(random.next() % 3)
        for _ in 0..<pieces {
            let centerX = width * random.uniform(0.2...0.8)
            let centerY = height * random.uniform(0.2...0.8)
            let lobes = 3 + Int(random.next() % 3)
            for lobe in 0..<lobes {
                let offset = lobe == 0 ? 0 : unit * random.uniform(0.3...0.8)
                let direction = random.uniform(0...(2 * Double.pi))
                let major = unit * random.uniform(0.5...1.0) * (lobe == 0 ? 1 : 0.7)
                base.append(
                    SyntheticEllipse(
                        centerX: centerX + offset * cos(direction), centerY: centerY + offset * sin(direction),
                        semiMajor: major, semiMinor: major * random.uniform(0.45...0.9),
                        angle: random.uniform(0...Double.pi)))
            }
        }
        func tissue(_ scale: Double) -> SyntheticTissue { SyntheticTissue(ellipses: base.map { $0.scaled(by: scale) }) }
        func fraction(_ scale: Double) -> Double {
            Double(mask.count(tissue(scale))) / Double(mask.columns * mask.rows)
        }
        var low = 0.0
        var high = 1.0
        while fraction(high) < configuration.tissueFraction && high < 1e4 { high *= 2 }
        for _ in 0..<40 {
            let middle = (low + high) / 2
            if fraction(middle) < configuration.tissueFraction { low = middle } else { high = middle }
        }
        let lowError = abs(fraction(low) - configuration.tissueFraction)
        let highError = abs(fraction(high) - configuration.tissueFraction)
        return tissue(lowError < highError ? low : high)
    }

    /// Rings in every tissue-bearing region, one per cell of about 512 µm (2 × 2 in a full 1024-µm
    /// region), each centred on the tissue nearest a jittered cell centre: ellipses (axis ratio
    /// 0.4–0.55) in positive regions, circles in negative ones. Semi-major axis 140–200 µm and
    /// thickness 16 µm, so a ring fits a 5x view (1024 px at 20x) while a 256-px tile at 20x shows at
    /// most an arc of it.
    private static func layOutRings(
        _ configuration: Configuration, regions: [SyntheticRegion], bearing: [Int], tissue: SyntheticTissue
    ) -> [SyntheticRing] {
        var random = SyntheticRandom(seed: configuration.seed, stream: 4)
        let perMicrometre = 1 / configuration.mpp
        let cellSide = 512 * perMicrometre
        var rings = [SyntheticRing]()
        for index in bearing {
            let region = regions[index]
            let columns = max(1, Int(Double(region.width) / cellSide))
            let rows = max(1, Int(Double(region.height) / cellSide))
            let cellWidth = Double(region.width) / Double(columns)
            let cellHeight = Double(region.height) / Double(rows)
            for cell in 0..<(columns * rows) {
                let left = Double(region.x) + cellWidth * Double(cell % columns)
                let top = Double(region.y) + cellHeight * Double(cell / columns)
                let targetX = left + cellWidth * random.uniform(0.35...0.65)
                let targetY = top + cellHeight * random.uniform(0.35...0.65)
                let major = random.uniform(140...200) * perMicrometre
                let ratio = random.uniform(0.4...0.55)
                let angle = random.uniform(0...Double.pi)
                func outline(_ x: Double, _ y: Double) -> SyntheticEllipse {
                    SyntheticEllipse(
                        centerX: x, centerY: y, semiMajor: major, semiMinor: region.positive ? major * ratio : major,
                        angle: region.positive ? angle : 0)
                }
                // Among the tissue points of a 12 × 12 lattice over the cell, the one whose ring keeps
                // most of its outline in tissue, then the one nearest the target.
                var best: (x: Double, y: Double, inside: Int, distance: Double)?
                for j in 0..<12 {
                    for i in 0..<12 {
                        let x = (left + cellWidth * (Double(i) + 0.5) / 12).rounded()
                        let y = (top + cellHeight * (Double(j) + 0.5) / 12).rounded()
                        guard tissue.contains(x, y) else { continue }
                        let shape = outline(x, y)
                        let inside = (0..<24).filter { step in
                            let t = Double(step) / 24 * 2 * Double.pi
                            let u = shape.semiMajor * cos(t)
                            let v = shape.semiMinor * sin(t)
                            return tissue.contains(
                                x + u * cos(shape.angle) - v * sin(shape.angle),
                                y + u * sin(shape.angle) + v * cos(shape.angle))
                        }.count
                        let distance = (x - targetX) * (x - targetX) + (y - targetY) * (y - targetY)
                        if best == nil || inside > best!.inside
                            || (inside == best!.inside && distance < best!.distance)
                        {
                            best = (x, y, inside, distance)
                        }
                    }
                }
                // A ring needs most of its outline on tissue; a cell at the tissue's edge may have none.
                guard let center = best, center.inside >= 12 else { continue }
                rings.append(
                    SyntheticRing(
                        shape: outline(center.x, center.y), thickness: 16 * perMicrometre, positive: region.positive))
            }
        }
        return rings
    }
}

/// A square of the slide's region grid: the unit of anomaly truth.
public struct SyntheticRegion: Sendable, Equatable, Codable {
    /// Level-0 pixel rectangle.
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int
    /// The share of the region's truth-mask pixels that are tissue.
    public var tissueFraction: Double
    /// Whether the region carries the positive form of the anomaly.
    public var positive: Bool
}

/// A macro-anomaly ring: a thick dark elliptic band with a light interior.
public struct SyntheticRing: Sendable, Equatable {
    /// The ring's outer edge (level-0 pixels).
    let shape: SyntheticEllipse
    /// The ring's inner edge.
    let inner: SyntheticEllipse
    /// Band thickness in level-0 pixels.
    public let thickness: Double
    /// An ellipse (positive region) rather than a circle (negative region).
    public let positive: Bool

    init(shape: SyntheticEllipse, thickness: Double, positive: Bool) {
        self.shape = shape
        self.inner = shape.inset(by: thickness)
        self.thickness = thickness
        self.positive = positive
    }

    /// Centre x, level-0 pixels.
    public var centerX: Double { shape.centerX }
    /// Centre y, level-0 pixels.
    public var centerY: Double { shape.centerY }
    /// Outer semi-major axis, level-0 pixels.
    public var semiMajor: Double { shape.semiMajor }
    /// Outer semi-minor axis, level-0 pixels (equal to `semiMajor` for a circle).
    public var semiMinor: Double { shape.semiMinor }
    /// Radians from the x axis to the major axis.
    public var angle: Double { shape.angle }
}

/// The truth-mask lattice: mask pixel `(i, j)` samples level-0 point
/// `(step · i + step / 2, step · j + step / 2)`.
struct SyntheticMaskGrid {
    let width: Int
    let height: Int
    let step: Int
    let columns: Int
    let rows: Int

    init(width: Int, height: Int, step: Int) {
        self.width = width
        self.height = height
        self.step = step
        columns = (width + step - 1) / step
        rows = (height + step - 1) / step
    }

    /// 1 where the sample point of a mask pixel is tissue, else 0 (row-major).
    func rasterise(_ tissue: SyntheticTissue) -> [UInt8] {
        var values = [UInt8](repeating: 0, count: columns * rows)
        forEachSpan(of: tissue) { row, span in
            for column in span { values[row * columns + column] = 1 }
        }
        return values
    }

    /// The number of mask pixels whose sample point is tissue.
    func count(_ tissue: SyntheticTissue) -> Int {
        var count = 0
        forEachSpan(of: tissue) { _, span in count += span.count }
        return count
    }

    /// Calls `body` with each run of tissue mask pixels: the tissue scaled into mask coordinates,
    /// where mask pixel `(i, j)` samples `(i + 0.5, j + 0.5)`.
    private func forEachSpan(of tissue: SyntheticTissue, _ body: (Int, Range<Int>) -> Void) {
        let scale = 1 / Double(step)
        let scaled = SyntheticTissue(
            ellipses: tissue.ellipses.map {
                SyntheticEllipse(
                    centerX: $0.centerX * scale, centerY: $0.centerY * scale, semiMajor: $0.semiMajor * scale,
                    semiMinor: $0.semiMinor * scale, angle: $0.angle)
            })
        var spans = [Range<Int>]()
        for row in 0..<rows {
            spans.removeAll(keepingCapacity: true)
            scaled.spans(atY: Double(row) + 0.5, pixelWidth: columns, into: &spans)
            for span in spans { body(row, span) }
        }
    }

    /// The share of mask pixels that are 1 among those sampling inside the level-0 rectangle.
    func share(of values: [UInt8], x: Int, y: Int, width: Int, height: Int) -> Double {
        let columnRange = (x / step)..<min(columns, (x + width + step - 1) / step)
        let rowRange = (y / step)..<min(rows, (y + height + step - 1) / step)
        var count = 0
        for row in rowRange {
            for column in columnRange { count += Int(values[row * columns + column]) }
        }
        return Double(count) / Double(max(1, columnRange.count * rowRange.count))
    }
}

/// A synthetic slide that could not be laid out or written.
public struct SyntheticSlideError: CSMILError, Sendable, Equatable {
    public enum Code: String, ErrorCode {
        /// An option is out of range or contradicts another.
        case invalidOption = "synth.invalid_option"
        /// The slide, its truth mask or its truth JSON could not be written.
        case writeFailed = "synth.write_failed"
    }

    public var code: Code
    /// The file concerned, if any.
    public var file: String?
    /// What happened.
    public var message: String
    /// What to do about it.
    public var fix: String

    /// The file, or "csmil synth" for an option.
    public var subject: String { file ?? "csmil synth" }
}
