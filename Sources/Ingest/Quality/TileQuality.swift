import Foundation

/// What QC measured on one 20x tile's pixels, as it streamed by (``TileQualityMeter``). The slide-relative
/// decisions come later, from every tile's measures (``QualityControl``): nothing here needs a second look at the
/// pixels.
public struct TileQuality: Sendable, Equatable {
    /// Pixels of marker ink (``TileQualityMeter/isInk(_:_:_:)``), over tissue or glass.
    public var inkPixels: Int32 = 0
    /// Tissue pixels: neither background nor ink.
    public var tissuePixels: Int32 = 0
    /// Tissue pixels whose four neighbours are tissue too: where focus is measured.
    public var focusPixels: Int32 = 0
    /// Blocks of ``TileQualityMeter/blockSide``² pixels whose focus was measured (at least half of each block's
    /// pixels are focus pixels): ``TileQualityMeter``'s focus histogram counts these.
    public var focusBlocks: Int32 = 0
    /// The mean squared 4-neighbour Laplacian of 8-bit luma over ``focusPixels``: fine detail (hundreds on a
    /// sharp tile at 20x, a few when out of focus, but also low on pale, low-contrast tissue).
    public var detail: Float = 0
    /// The mean squared gradient (central differences) of 8-bit luma over ``focusPixels``: contrast.
    public var contrast: Float = 0

    /// Focus: ``detail`` over ``contrast``, the mean squared spatial frequency of the luma's variations. It does
    /// not depend on contrast (pale tissue is as sharp as dark), and it falls when blur removes the fine detail
    /// but keeps the coarse variations: 5 for pixel noise, about 1.5 for sharp H&E texture at 20x, below 0.3 out
    /// of focus. 0 without tissue to measure.
    public var focus: Float { contrast > 0 ? detail / contrast : 0 }

    public init() {}
}

/// Measures tiles for QC. One meter per thread (it owns scratch buffers); ``measure(_:side:into:)`` reads a
/// `side × side` interleaved RGB tile.
///
/// Pixel classes, in this order:
/// - **ink** (``isInk(_:_:_:)``): hues the two H&E stains do not produce. Haematoxylin and eosin both absorb
///   green most (Ruifrok and Johnston's optical-density vectors: haematoxylin 0.65, 0.70, 0.29; eosin 0.07, 0.99,
///   0.11 for red, green, blue), so in an H&E pixel green is the lowest channel, or nearly. Blue marker leaves red
///   the lowest channel with blue far above it; green marker makes green the highest; black marker makes all three
///   dark and grey (all below 60, within 25 of each other), where the densest haematoxylin, even folded, keeps
///   its blue well above its red and green.
/// - **background**: bright and grey (luma ≥ 215 and channel spread ≤ 20): glass.
/// - **tissue**: everything else.
///
/// Focus is measured per block of ``blockSide``² pixels (16 µm at 20x) and each block's focus goes into a histogram
/// (``focusBins`` bins of log10 focus), so ``QualityControl`` can say which share of a tile is out of focus, not
/// only whether the tile as a whole has less detail.
///
/// Per tissue pixel the optical density `−log10(v/255)` summed over the three channels goes into a histogram
/// (``densityBins`` bins of ``densityBinWidth``), from which ``QualityControl`` finds folds: overlapping tissue
/// absorbs twice (Beer–Lambert), so its density is about double the slide's usual tissue.
public final class TileQualityMeter {
    /// Bins of the per-tile density histogram; the last bin holds everything above.
    public static let densityBins = 48
    /// The width of a density bin (summed optical density of R, G and B).
    public static let densityBinWidth: Float = 1.0 / 16
    /// The side of a focus block in pixels.
    public static let blockSide = 64
    /// Bins of the per-tile focus histogram: log10 of a block's focus from ``focusLogMinimum`` in steps of
    /// ``focusBinsPerDecade``; the first and last bins hold everything beyond.
    public static let focusBins = 24
    public static let focusLogMinimum = -2.0
    public static let focusBinsPerDecade = 8.0

    /// The focus bin of a block's focus (bin units: bin b covers [b, b + 1)).
    public static func focusBin(_ focus: Double) -> Double {
        guard focus > 0 else { return 0 }
        return min(max((log10(focus) - focusLogMinimum) * focusBinsPerDecade, 0), Double(focusBins) - 0.001)
    }

    /// The focus at the lower edge of bin position `bin` (inverse of ``focusBin(_:)``).
    public static func focus(atBin bin: Double) -> Double {
        pow(10, bin / focusBinsPerDecade + focusLogMinimum)
    }

    private var luma: [Int16] = []
    private var tissue: [UInt8] = []
    private var blockDetail: [Int64] = []
    private var blockContrast: [Int64] = []
    private var blockCount: [Int32] = []
    /// Summed optical density of an 8-bit value in each channel, × 16 (one bin per unit).
    private static let densityLUT: [Float] = (0..<256).map {
        -log10(Float(max($0, 1)) / 255) / densityBinWidth
    }

    public init() {}

    /// Whether an RGB pixel is marker ink (blue, green or black), not a colour H&E produces.
    @inline(__always)
    public static func isInk(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> Bool {
        let r = Int(r)
        let g = Int(g)
        let b = Int(b)
        if max(r, g, b) <= 60 && max(r, g, b) - min(r, g, b) <= 25 { return true }  // black: dark and grey
        if g >= r + 4 && b >= max(r, g) + 40 { return true }  // blue: red lowest, blue far above
        if g >= r + 20 && g >= b + 20 { return true }  // green: green highest
        return false
    }

    /// Measures one tile: `pixels` holds `side × side × 3` bytes, rows of `side × 3`. Writes its tissue pixels'
    /// densities into `histogram` (``densityBins`` counts, saturating) and its blocks' focus into
    /// `focusHistogram` (``focusBins`` counts).
    public func measure(
        _ pixels: UnsafePointer<UInt8>, side: Int, histogram: UnsafeMutableBufferPointer<UInt16>,
        focusHistogram: UnsafeMutableBufferPointer<UInt8>
    ) -> TileQuality {
        precondition(histogram.count == Self.densityBins && focusHistogram.count == Self.focusBins)
        let count = side * side
        if luma.count != count {
            luma = [Int16](repeating: 0, count: count)
            tissue = [UInt8](repeating: 0, count: count)
        }
        var quality = TileQuality()
        var ink: Int32 = 0
        var tissueCount: Int32 = 0
        for index in 0..<histogram.count { histogram[index] = 0 }
        Self.densityLUT.withUnsafeBufferPointer { lut in
            luma.withUnsafeMutableBufferPointer { luma in
                tissue.withUnsafeMutableBufferPointer { tissue in
                    for index in 0..<count {
                        let r = pixels[index * 3]
                        let g = pixels[index * 3 + 1]
                        let b = pixels[index * 3 + 2]
                        let y = (77 * Int(r) + 150 * Int(g) + 29 * Int(b) + 128) >> 8
                        luma[index] = Int16(y)
                        if Self.isInk(r, g, b) {
                            ink += 1
                            tissue[index] = 0
                            continue
                        }
                        let spread = Int(max(r, g, b)) - Int(min(r, g, b))
                        if y >= 215 && spread <= 20 {
                            tissue[index] = 0
                            continue
                        }
                        tissue[index] = 1
                        tissueCount += 1
                        let bin = min(Int(lut[Int(r)] + lut[Int(g)] + lut[Int(b)]), Self.densityBins - 1)
                        if histogram[bin] < UInt16.max { histogram[bin] += 1 }
                    }
                }
            }
        }
        quality.inkPixels = ink
        quality.tissuePixels = tissueCount
        // Focus: the 4-neighbour Laplacian where a pixel and its neighbours are tissue (tissue edges against glass
        // and ink would read as detail).
        let blocksPerSide = (side + Self.blockSide - 1) / Self.blockSide
        let blockTotal = blocksPerSide * blocksPerSide
        if blockDetail.count != blockTotal {
            blockDetail = [Int64](repeating: 0, count: blockTotal)
            blockContrast = [Int64](repeating: 0, count: blockTotal)
            blockCount = [Int32](repeating: 0, count: blockTotal)
        }
        for block in 0..<blockTotal {
            blockDetail[block] = 0
            blockContrast[block] = 0
            blockCount[block] = 0
        }
        luma.withUnsafeBufferPointer { luma in
            tissue.withUnsafeBufferPointer { tissue in
                guard side >= 3 else { return }
                for row in 1..<(side - 1) {
                    let base = row * side
                    let blockRow = (row / Self.blockSide) * blocksPerSide
                    for column in 1..<(side - 1) {
                        let index = base + column
                        guard
                            tissue[index] & tissue[index - 1] & tissue[index + 1] & tissue[index - side]
                                & tissue[index + side] != 0
                        else { continue }
                        let laplacian =
                            4 * Int(luma[index]) - Int(luma[index - 1]) - Int(luma[index + 1])
                            - Int(luma[index - side]) - Int(luma[index + side])
                        let dx = Int(luma[index + 1]) - Int(luma[index - 1])
                        let dy = Int(luma[index + side]) - Int(luma[index - side])
                        let block = blockRow + column / Self.blockSide
                        blockDetail[block] += Int64(laplacian * laplacian)
                        blockContrast[block] += Int64(dx * dx + dy * dy)
                        blockCount[block] += 1
                    }
                }
            }
        }
        for index in 0..<focusHistogram.count { focusHistogram[index] = 0 }
        var sum: Int64 = 0
        var gradientSum: Int64 = 0
        var focusCount: Int32 = 0
        var blocks: Int32 = 0
        for block in blockCount.indices {
            sum += blockDetail[block]
            gradientSum += blockContrast[block]
            focusCount += blockCount[block]
            guard 2 * Int(blockCount[block]) >= Self.blockSide * Self.blockSide else { continue }
            let focus = blockContrast[block] > 0 ? Double(blockDetail[block]) / Double(blockContrast[block]) : 0
            let bin = Int(Self.focusBin(focus))
            if focusHistogram[bin] < UInt8.max { focusHistogram[bin] += 1 }
            blocks += 1
        }
        quality.focusPixels = focusCount
        quality.focusBlocks = blocks
        quality.detail = focusCount > 0 ? Float(Double(sum) / Double(focusCount)) : 0
        quality.contrast = focusCount > 0 ? Float(Double(gradientSum) / Double(focusCount)) : 0
        return quality
    }
}
