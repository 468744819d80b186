/// Every tile's QC measures for one slide, filled in as the tiles stream (``measure(_:)`` on the reader thread,
/// right after ``TileStream/fill(_:)``), read once streaming is done. About 150 bytes per tile.
///
/// One thread fills it, then hands it over (the pipeline joins its reader thread before reading): it is not
/// synchronised.
public final class SlideQualityMeasurements: @unchecked Sendable {
    /// The measures of each tile, by index in ``TileGrid/tiles``.
    public private(set) var tiles: [TileQuality]
    /// Each tile's density histogram, ``TileQualityMeter/densityBins`` counts per tile, by grid index.
    public private(set) var densities: [UInt16]
    /// Each tile's focus histogram, ``TileQualityMeter/focusBins`` counts per tile, by grid index.
    public private(set) var focusHistograms: [UInt8]
    /// Whether each tile was measured.
    public private(set) var measured: [Bool]
    private let meter = TileQualityMeter()

    /// Room for `tileCount` tiles.
    public init(tileCount: Int) {
        tiles = [TileQuality](repeating: TileQuality(), count: tileCount)
        densities = [UInt16](repeating: 0, count: tileCount * TileQualityMeter.densityBins)
        focusHistograms = [UInt8](repeating: 0, count: tileCount * TileQualityMeter.focusBins)
        measured = [Bool](repeating: false, count: tileCount)
    }

    /// The number of tiles.
    public var count: Int { tiles.count }

    /// Measures the 20x tile view of every tile in `batch`.
    public func measure(_ batch: TileTripletBatch) {
        let side = TileTripletBatch.sides[0]
        for item in 0..<batch.count {
            measure(batch.view(scale: 0, item: item), side: side, tile: batch.tileIndices[item])
        }
    }

    /// Measures one `side × side` RGB tile as grid tile `tile`.
    public func measure(_ pixels: UnsafePointer<UInt8>, side: Int, tile: Int) {
        let bins = TileQualityMeter.densityBins
        let focusBins = TileQualityMeter.focusBins
        tiles[tile] = densities.withUnsafeMutableBufferPointer { all in
            focusHistograms.withUnsafeMutableBufferPointer { focus in
                meter.measure(
                    pixels, side: side,
                    histogram: UnsafeMutableBufferPointer(rebasing: all[(tile * bins)..<((tile + 1) * bins)]),
                    focusHistogram: UnsafeMutableBufferPointer(
                        rebasing: focus[(tile * focusBins)..<((tile + 1) * focusBins)]))
            }
        }
        measured[tile] = true
    }

    /// The focus histogram of one tile.
    public func focusHistogram(of tile: Int) -> ArraySlice<UInt8> {
        let bins = TileQualityMeter.focusBins
        return focusHistograms[(tile * bins)..<((tile + 1) * bins)]
    }

    /// The density histogram of one tile.
    public func density(of tile: Int) -> ArraySlice<UInt16> {
        let bins = TileQualityMeter.densityBins
        return densities[(tile * bins)..<((tile + 1) * bins)]
    }
}
