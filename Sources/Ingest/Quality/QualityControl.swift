/// A slide's QC verdict (issue 16): each tile's flags, which tiles are excluded from scoring, and whether the slide
/// passes or needs review, and why.
public struct SlideQuality: Sendable, Equatable {
    /// `pass` or `review`.
    public enum Status: String, Sendable, Codable {
        case pass
        case review
    }

    /// Every tile's flags, by grid index (the checks that fired, excluded or not).
    public var flags: [QualityFlags]
    /// Whether each tile is left out of clustering and bags (flagged by a check in `[qc] exclude`).
    public var excluded: [Bool]
    /// `pass`, or `review` when ``reasons`` is not empty.
    public var status: Status
    /// Why the slide needs review, most important first (empty when it passes).
    public var reasons: [QualityReason]
    /// Per check, the share of the slide's tissue tiles it flagged (0…1).
    public var fractions: [QualityCheck: Double]
    /// The slide's median tile focus, the reference of the blur check (nil without tiles to judge it on).
    public var focusReference: Double?
    /// The slide's median tissue optical density, the reference of the fold check (nil without tissue).
    public var densityReference: Double?
    /// Per tile, the share of its area under ink (the pen check's measure).
    public var inkFraction: [Double]
    /// Per tile, its focus over the slide's reference; nil when not judged.
    public var relativeFocus: [Double?]
    /// Per tile, the share of its focus blocks out of focus (the blur check's measure); nil when not judged.
    public var blurFraction: [Double?]
    /// Per tile, the share of its tissue pixels that are dense (the fold check's measure); nil when not judged.
    public var denseFraction: [Double?]

    /// Tiles excluded.
    public var excludedCount: Int { excluded.reduce(0) { $0 + ($1 ? 1 : 0) } }
    /// Tiles left to score.
    public var usableCount: Int { excluded.count - excludedCount }
    /// Grid indices of the tiles left to score, in grid order.
    public var usableTiles: [Int] { excluded.indices.filter { !excluded[$0] } }
}

/// Turns every tile's measures into the slide's verdict (``decide(_:settings:baseMPP:)``), after the tiles have
/// streamed: each check compares a tile with the slide's own tissue where the check is relative.
///
/// - **pen**: ink covers at least `pen_fraction` of the tile's area.
/// - **blur**: focus (``TileQuality/focus``) is measured per block of 32 × 32 pixels; over the blocks of tiles
///   that are not pen, the median is the slide's reference. A block is out of focus when its focus is below
///   `blur_relative` × that reference or below `blur_floor` (so a slide out of focus all over is caught too); a
///   tile (with at least 4 blocks measured) is blurred when at least `blur_fraction` of its blocks are.
/// - **fold**: the median optical density of the tissue pixels of tiles that are not pen is the slide's reference;
///   a tissue pixel is dense at `fold_density` × that reference or more; a tile that is not pen (with tissue on
///   at least 10 % of it) is a fold when at least `fold_fraction` of its tissue pixels are dense.
///
/// The slide needs review when the tiles excluded (flagged by a check in `exclude`) are more than
/// `review_fraction` of its tissue tiles (reasons: each excluded check that flagged at least 1 % of the tissue
/// tiles, largest share first), when fewer than `min_tiles` usable tiles remain (`too_few_tiles`), or when the
/// scan is coarser than `max_mpp` (`resolution`).
public enum QualityControl {
    /// The fewest focus blocks (of 64) a tile needs for the blur check to judge it.
    public static let minimumFocusBlocks = 2
    /// The least share of the tissue tiles a check must flag to be named among the reasons of a slide sent to
    /// review for its excluded tiles (so that a stray tile does not make a reason).
    public static let reasonShare = 0.01
    /// The least share of a tile that must be tissue for the fold check to judge it.
    public static let minimumTissueShare = 0.1

    /// The verdict for a slide whose tiles were measured into `measurements`; `baseMPP` is its level-0 resolution
    /// (µm per pixel).
    public static func decide(
        _ measurements: SlideQualityMeasurements, settings: QualitySettings, baseMPP: Double?,
        tileArea: Int = TileGrid.tileSize * TileGrid.tileSize
    ) -> SlideQuality {
        let tiles = measurements.tiles
        let area = Double(tileArea)
        var flags = [QualityFlags](repeating: [], count: tiles.count)

        let inkFraction = tiles.map { Double($0.inkPixels) / area }
        for index in tiles.indices where inkFraction[index] >= settings.penFraction { flags[index].insert(.pen) }

        // Blur: blocks whose focus is below the slide's reference share (or the floor), per tile.
        let focusBins = TileQualityMeter.focusBins
        var focusTotal = [Int](repeating: 0, count: focusBins)
        for index in tiles.indices where !flags[index].contains(.pen) {
            for (bin, value) in measurements.focusHistogram(of: index).enumerated() { focusTotal[bin] += Int(value) }
        }
        let focusReference = medianBin(focusTotal).map { TileQualityMeter.focus(atBin: $0) }
        var relativeFocus = [Double?](repeating: nil, count: tiles.count)
        var blurFraction = [Double?](repeating: nil, count: tiles.count)
        if let focusReference {
            let cut = TileQualityMeter.focusBin(max(settings.blurRelative * focusReference, settings.blurFloor))
            for index in tiles.indices where !flags[index].contains(.pen) {
                let blocks = Int(tiles[index].focusBlocks)
                guard blocks >= minimumFocusBlocks else { continue }
                relativeFocus[index] = Double(tiles[index].focus) / focusReference
                let histogram = measurements.focusHistogram(of: index).map { UInt16($0) }
                let blurred = Double(blocks) - countAbove(cut, in: histogram)
                blurFraction[index] = blurred / Double(blocks)
                if blurred >= settings.blurFraction * Double(blocks) { flags[index].insert(.blur) }
            }
        }

        // Folds against the slide's median tissue density.
        let bins = TileQualityMeter.densityBins
        var total = [Int](repeating: 0, count: bins)
        for index in tiles.indices where !flags[index].contains(.pen) {
            for (bin, value) in measurements.density(of: index).enumerated() { total[bin] += Int(value) }
        }
        let densityReference = medianBin(total)
        var denseFraction = [Double?](repeating: nil, count: tiles.count)
        if let densityReference {
            let threshold = settings.foldDensity * densityReference
            for index in tiles.indices
            where !flags[index].contains(.pen) && Double(tiles[index].tissuePixels) >= minimumTissueShare * area {
                let dense = countAbove(threshold, in: measurements.density(of: index))
                denseFraction[index] = dense / Double(tiles[index].tissuePixels)
                if dense >= settings.foldFraction * Double(tiles[index].tissuePixels) { flags[index].insert(.fold) }
            }
        }

        let excludedFlags = QualityFlags(settings.exclude.map(QualityFlags.init))
        let excluded = flags.map { !$0.intersection(excludedFlags).isEmpty }
        var fractions: [QualityCheck: Double] = [:]
        for check in QualityCheck.allCases {
            let count = flags.reduce(0) { $0 + ($1.contains(QualityFlags(check)) ? 1 : 0) }
            fractions[check] = tiles.isEmpty ? 0 : Double(count) / Double(tiles.count)
        }

        var reasons: [QualityReason] = []
        let excludedCount = excluded.reduce(0) { $0 + ($1 ? 1 : 0) }
        if !tiles.isEmpty, Double(excludedCount) > settings.reviewFraction * Double(tiles.count) {
            // Every excluded check that flagged at least 1 % of the tissue tiles, the largest share first (the
            // largest one even when below: the excess is made of it).
            let named = settings.exclude.sorted().filter { (fractions[$0] ?? 0) > 0 }
                .sorted { (fractions[$0] ?? 0) > (fractions[$1] ?? 0) }
            for (rank, check) in named.enumerated() where rank == 0 || (fractions[check] ?? 0) >= reasonShare {
                reasons.append(QualityReason(rawValue: check.rawValue)!)
            }
        }
        if tiles.count - excludedCount < settings.minTiles { reasons.append(.tooFewTiles) }
        if let baseMPP, baseMPP > settings.maxMPP { reasons.append(.resolution) }

        return SlideQuality(
            flags: flags, excluded: excluded, status: reasons.isEmpty ? .pass : .review, reasons: reasons,
            fractions: fractions, focusReference: focusReference,
            densityReference: densityReference.map { $0 * Double(TileQualityMeter.densityBinWidth) },
            inkFraction: inkFraction, relativeFocus: relativeFocus, blurFraction: blurFraction,
            denseFraction: denseFraction)
    }

    /// The median of `values`; nil when empty.
    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// The median of a histogram in bin units (bin b covers [b, b + 1)), interpolated within its bin; nil when
    /// the histogram is empty.
    static func medianBin(_ counts: [Int]) -> Double? {
        let total = counts.reduce(0, +)
        guard total > 0 else { return nil }
        let half = Double(total) / 2
        var below = 0.0
        for (bin, count) in counts.enumerated() where count > 0 {
            if below + Double(count) >= half { return Double(bin) + (half - below) / Double(count) }
            below += Double(count)
        }
        return Double(counts.count)
    }

    /// How many of a histogram's counts lie at or above `threshold` (in bin units), counting the bin it falls in
    /// by the share of the bin above it.
    static func countAbove<Counts: Collection<UInt16>>(_ threshold: Double, in counts: Counts) -> Double {
        var sum = 0.0
        for (bin, count) in counts.enumerated() where count > 0 {
            let low = Double(bin)
            if low >= threshold {
                sum += Double(count)
            } else if low + 1 > threshold {
                sum += Double(count) * (low + 1 - threshold)
            }
        }
        return sum
    }
}
