import Foundation
import Images

/// A reusable batch of tile triplets (model spec §2): for each tile the 256² tile, its 512² 10x context and its
/// 1024² 5x context, all interleaved u8 RGB at 20x. Allocated once (about 4.1 MB per tile), then filled again and
/// again by ``TileStream/fill(_:)``, so streaming a slide allocates nothing per tile.
///
/// `@unchecked Sendable`: a batch is handed between threads through a ``BoundedQueue``; only the thread that took it
/// touches it.
public final class TileTripletBatch: @unchecked Sendable {
    /// The side of each view in 20x pixels: the tile, the 10x context and the 5x context.
    public static let sides = [256, 512, 1024]

    /// The most tiles the batch holds.
    public let capacity: Int
    /// Tiles filled in by the last ``TileStream/fill(_:)``.
    public internal(set) var count = 0
    /// The index in ``TileGrid/tiles`` of each filled tile, in batch order. A stream hands tiles out strip by strip
    /// (see ``TileStream``), so these increase within a strip but are not consecutive.
    public internal(set) var tileIndices: [Int] = []
    private let buffers: [UnsafeMutablePointer<UInt8>]

    /// Allocates room for `capacity` (≥ 1) triplets.
    public init(capacity: Int) {
        precondition(capacity >= 1)
        self.capacity = capacity
        tileIndices.reserveCapacity(capacity)
        buffers = Self.sides.map { side in
            let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * side * side * 3)
            buffer.initialize(repeating: 255, count: capacity * side * side * 3)
            return buffer
        }
    }

    deinit { buffers.forEach { $0.deallocate() } }

    /// The view of `scale` (0 = tile, 1 = 10x context, 2 = 5x context) of the batch's `item`-th tile:
    /// `side × side × 3` bytes, rows of `side × 3` bytes. Valid while the batch lives and is not refilled.
    public func view(scale: Int, item: Int) -> UnsafePointer<UInt8> {
        let side = Self.sides[scale]
        return UnsafePointer(buffers[scale] + item * side * side * 3)
    }

    func mutableView(scale: Int, item: Int) -> UnsafeMutablePointer<UInt8> {
        let side = Self.sides[scale]
        return buffers[scale] + item * side * side * 3
    }
}

/// Reads the tiles of a ``TileGrid`` and cuts each tile's three views from a rolling band of 20x rows, so that every
/// 20x pixel of a strip is decoded once (model spec §2, issue "Stream them") and memory does not depend on the
/// slide's size.
///
/// The slide is walked in vertical strips of ``stripTileColumns`` tile columns (8,192 20x pixels); within a strip,
/// tiles go in row order. The band holds ``bandRows`` rows of the strip's columns plus 384 columns on each side: the
/// rows from 384 above a tile row to 640 below its top and the columns from 384 left of the strip to 384 right of
/// it, which is everything a tile's 1024² context (centred: from −384, −384) needs. So the band is at most
/// `(8192 + 768) × 1024 × 3` bytes (27 MB) whatever the slide's width and height; the margins are decoded twice,
/// about 9 % more decoding than one full-width band. Tiles are handed out strip by strip, each batch saying which
/// grid tiles it holds (``TileTripletBatch/tileIndices``).
///
/// Rows come from OpenSlide in pieces of ``pieceRows`` rows and at most ``chunkColumns`` columns per call: for
/// ``SlideResolution/Plan/level(_:)`` straight from that level, for ``SlideResolution/Plan/blockMean2x2`` from
/// level 0 averaged 2 × 2 (`(a + b + c + d + 2) / 4`), for ``SlideResolution/Plan/resample(level:levelPixelsPerTargetPixel:)``
/// from the level closest to 20x by area averaging (a box filter over each 20x pixel's footprint).
///
/// Views are centred on the tile (the spec's "Our choice": the 512² region from (−128, −128), the 1024² region from
/// (−384, −384) relative to the tile's origin); pixels outside the slide are white.
///
/// Blocks on OpenSlide: run it on a thread of your own.
///
/// `@unchecked Sendable`: it is handed to the reader thread and used by that one thread at a time, never
/// concurrently.
public final class TileStream: @unchecked Sendable {
    /// Rows of 20x pixels kept in the band.
    public static let bandRows = 1024
    /// Rows of 20x pixels read per OpenSlide call.
    public static let pieceRows = 128
    /// Columns of 20x pixels read per OpenSlide call (keeps OpenSlide's ARGB buffer small).
    public static let chunkColumns = 4096
    /// Tile columns per vertical strip.
    public static let stripTileColumns = 32
    /// Columns the band keeps on each side of a strip: the 5x context reaches 384 pixels past a tile.
    public static let stripMargin = 384
    /// Offsets of the views' origins from the tile's origin, in 20x pixels (centred contexts).
    public static let viewOffsets = [0, -128, -384]

    /// The tiles streamed.
    public let grid: TileGrid
    /// Indices into `grid.tiles` in the order they are handed out: strip by strip, row order within a strip.
    public let order: [Int]
    /// The slide's extent in 20x pixels.
    public let width: Int
    public let height: Int
    /// Tiles handed out so far.
    public private(set) var delivered = 0

    private let slide: Slide
    private let level: Int
    private let levelDownsample: Double
    private let blockMean: Bool
    /// For ``SlideResolution/Plan/resample(level:levelPixelsPerTargetPixel:)``: the read level's pixels per 20x pixel.
    private let resampleScale: Double?
    private let band: UnsafeMutablePointer<UInt8>
    /// The widest band any strip needs, in 20x pixels.
    private let bandCapacity: Int
    /// The band's columns in 20x pixels for the strip in progress: `bandLeft ..< bandLeft + bandWidth`.
    private var bandLeft = 0
    private var bandWidth = 0
    /// The strip in progress (nil before the first tile).
    private var currentStrip: Int?
    /// The first 20x row not read yet; the band holds rows `loadedEnd - bandRows ..< loadedEnd`.
    private var loadedEnd = 0
    private var piece: [UInt8]
    private var scratch: [UInt32] = []

    /// Prepares to stream `grid`'s tiles of `slide`. Throws ``SlideError`` with code `slide.unsupported_resolution` when no
    /// level is within 4× of 20x.
    public init(slide: Slide, resolution: SlideResolution, grid: TileGrid) throws(SlideError) {
        switch resolution.plan {
        case .level(let level):
            self.level = level
            blockMean = false
            resampleScale = nil
        case .blockMean2x2:
            level = 0
            blockMean = true
            resampleScale = nil
        case .resample(let level, let scale):
            guard scale > 0.25 && scale < 4 else {
                throw SlideError(
                    code: .unsupportedResolution, file: slide.path,
                    message: "is \(resolution.describe); no level is within 4× of 20x (0.5 µm/px)",
                    fix: "score a slide with a level between 0.125 and 2 µm per pixel")
            }
            self.level = level
            blockMean = false
            resampleScale = scale
        }
        self.slide = slide
        self.grid = grid
        order = Self.order(of: grid.tiles)
        levelDownsample = slide.downsample(level: level)
        let (level0Width, level0Height) = slide.dimensions(level: 0)
        (width, height) = resolution.targetSize(level0Width: level0Width, level0Height: level0Height)
        bandCapacity = max(1, min(width, Self.stripTileColumns * TileGrid.tileSize + 2 * Self.stripMargin))
        band = UnsafeMutablePointer<UInt8>.allocate(capacity: bandCapacity * Self.bandRows * 3)
        band.initialize(repeating: 255, count: bandCapacity * Self.bandRows * 3)
        if let scale = resampleScale {
            let side = { (target: Int) in Int((Double(target) * scale).rounded(.up)) + 2 }
            piece = [UInt8](repeating: 255, count: side(Self.chunkColumns) * side(Self.pieceRows) * 3)
        } else {
            let factor = blockMean ? 2 : 1
            piece = [UInt8](repeating: 255, count: Self.chunkColumns * factor * Self.pieceRows * factor * 3)
        }
    }

    deinit { band.deallocate() }

    /// The strip a tile belongs to.
    static func strip(of tile: Tile) -> Int { tile.column / stripTileColumns }

    /// Grid indices strip by strip, row order (the grid's order) within each strip.
    static func order(of tiles: [Tile]) -> [Int] {
        tiles.indices.sorted { (strip(of: tiles[$0]), $0) < (strip(of: tiles[$1]), $1) }
    }

    /// Whether every tile has been handed out.
    public var isFinished: Bool { delivered == grid.tiles.count }

    /// Fills `batch` with the next tiles (as many as fit); returns false, with an empty batch, when none is left.
    public func fill(_ batch: TileTripletBatch) throws(SlideError) -> Bool {
        batch.count = 0
        batch.tileIndices.removeAll(keepingCapacity: true)
        while batch.count < batch.capacity && delivered < grid.tiles.count {
            let index = order[delivered]
            let tile = grid.tiles[index]
            enter(strip: Self.strip(of: tile))
            try load(from: tile.y + Self.viewOffsets[2], to: tile.y - Self.viewOffsets[2] + TileGrid.tileSize)
            for scale in 0..<3 {
                let offset = Self.viewOffsets[scale]
                crop(
                    side: TileTripletBatch.sides[scale], x: tile.x + offset, y: tile.y + offset,
                    into: batch.mutableView(scale: scale, item: batch.count))
            }
            batch.tileIndices.append(index)
            batch.count += 1
            delivered += 1
        }
        return batch.count > 0
    }

    /// Points the band at `strip`'s columns, emptied, when the stream moves to a new strip.
    private func enter(strip: Int) {
        guard strip != currentStrip else { return }
        currentStrip = strip
        let first = strip * Self.stripTileColumns * TileGrid.tileSize
        let last = (strip + 1) * Self.stripTileColumns * TileGrid.tileSize
        bandLeft = max(0, first - Self.stripMargin)
        bandWidth = min(width, last + Self.stripMargin) - bandLeft
        precondition(bandWidth > 0 && bandWidth <= bandCapacity)
        loadedEnd = 0
    }

    /// Makes sure rows `start ..< end` (clipped to the slide) are in the band, reading forward only.
    private func load(from start: Int, to end: Int) throws(SlideError) {
        let target = min(end, height)
        if loadedEnd < start {
            // Rows no tile needs any more (between tile rows without tissue) are skipped, not read.
            loadedEnd = start - start % Self.pieceRows
        }
        while loadedEnd < target {
            let rows = min(Self.pieceRows, height - loadedEnd)
            try readPiece(top: loadedEnd, rows: rows)
            loadedEnd += rows
        }
    }

    /// Reads 20x rows `top ..< top + rows` of the band's columns into their band slots (`row mod bandRows`; a piece
    /// never wraps because pieces start at multiples of ``pieceRows``, which divides ``bandRows``).
    private func readPiece(top: Int, rows: Int) throws(SlideError) {
        let rowBytes = bandWidth * 3
        let bandTop = band + (top % Self.bandRows) * rowBytes
        var done = 0
        while done < bandWidth {
            let columns = min(Self.chunkColumns, bandWidth - done)
            let left = bandLeft + done
            if let scale = resampleScale {
                try readResampled(
                    left: left, top: top, columns: columns, rows: rows, scale: scale, into: bandTop + done * 3,
                    rowBytes: rowBytes)
            } else if blockMean {
                try piece.withUnsafeMutableBufferPointer { (buffer) throws(SlideError) in
                    try slide.readRegion(
                        x: left * 2, y: top * 2, level: 0, width: columns * 2, height: rows * 2, into: buffer,
                        scratch: &scratch)
                    BoxMean.rgb(
                        buffer.baseAddress!, columns: columns * 2, rows: rows * 2, sourceRowBytes: columns * 2 * 3,
                        factor: 2, into: bandTop + done * 3, destinationRowBytes: rowBytes)
                }
            } else {
                try piece.withUnsafeMutableBufferPointer { (buffer) throws(SlideError) in
                    try slide.readRegion(
                        x: Int((Double(left) * levelDownsample).rounded()),
                        y: Int((Double(top) * levelDownsample).rounded()), level: level, width: columns,
                        height: rows, into: buffer, scratch: &scratch)
                    for row in 0..<rows {
                        (bandTop + row * rowBytes + done * 3).update(
                            from: buffer.baseAddress! + row * columns * 3, count: columns * 3)
                    }
                }
            }
            done += columns
        }
    }

    /// Makes 20x pixels `left ..< left + columns` × `top ..< top + rows` from the read level by area averaging: each 20x
    /// pixel is the mean of the level's pixels under its footprint (`scale` level pixels a side), weighted by how
    /// much of each lies under it — a box filter, which for a finer level (scale > 1) is the anti-aliased
    /// downsampling the 2×2 block mean is a case of, and for a coarser one (scale < 1) blends the one or two
    /// level pixels each 20x pixel falls on.
    private func readResampled(
        left: Int, top: Int, columns: Int, rows: Int, scale: Double, into destination: UnsafeMutablePointer<UInt8>,
        rowBytes: Int
    ) throws(SlideError) {
        let sourceLeft = Int((Double(left) * scale).rounded(.down))
        let sourceTop = Int((Double(top) * scale).rounded(.down))
        let sourceWidth = Int((Double(left + columns) * scale).rounded(.up)) - sourceLeft
        let sourceHeight = Int((Double(top + rows) * scale).rounded(.up)) - sourceTop
        try piece.withUnsafeMutableBufferPointer { (buffer) throws(SlideError) in
            try slide.readRegion(
                x: Int((Double(sourceLeft) * levelDownsample).rounded()),
                y: Int((Double(sourceTop) * levelDownsample).rounded()), level: level, width: sourceWidth,
                height: sourceHeight, into: buffer, scratch: &scratch)
        }
        let horizontal = Self.boxWeights(first: left, count: columns, scale: scale, origin: sourceLeft)
        let vertical = Self.boxWeights(first: top, count: rows, scale: scale, origin: sourceTop)
        var row = [Double](repeating: 0, count: columns * 3)
        piece.withUnsafeBufferPointer { source in
            for (targetRow, sourceRows) in vertical.enumerated() {
                for index in row.indices { row[index] = 0 }
                for (sourceRow, rowWeight) in sourceRows {
                    let line = source.baseAddress! + sourceRow * sourceWidth * 3
                    for (column, sourceColumns) in horizontal.enumerated() {
                        for (sourceColumn, columnWeight) in sourceColumns {
                            let weight = rowWeight * columnWeight
                            let pixel = line + sourceColumn * 3
                            row[column * 3] += weight * Double(pixel[0])
                            row[column * 3 + 1] += weight * Double(pixel[1])
                            row[column * 3 + 2] += weight * Double(pixel[2])
                        }
                    }
                }
                let out = destination + targetRow * rowBytes
                for index in row.indices { out[index] = UInt8(min(max(row[index].rounded(), 0), 255)) }
            }
        }
    }

    /// For target pixels `first ..< first + count`, the source pixels (relative to `origin`) under each one's
    /// footprint `[t·scale, (t+1)·scale)` with the share of the footprint each covers (the shares sum to 1).
    static func boxWeights(first: Int, count: Int, scale: Double, origin: Int) -> [[(Int, Double)]] {
        (first..<(first + count)).map { target in
            let start = Double(target) * scale
            let end = Double(target + 1) * scale
            var weights: [(Int, Double)] = []
            var source = Int(start.rounded(.down))
            while Double(source) < end {
                let overlap = min(end, Double(source + 1)) - max(start, Double(source))
                if overlap > 1e-12 { weights.append((source - origin, overlap / scale)) }
                source += 1
            }
            return weights
        }
    }

    /// Copies the `side × side` region at 20x position (`x`, `y`) from the band, white outside the slide.
    private func crop(side: Int, x: Int, y: Int, into destination: UnsafeMutablePointer<UInt8>) {
        let rowBytes = bandWidth * 3
        let first = max(x, 0)
        let last = min(x + side, width)
        precondition(last <= first || (first >= bandLeft && last <= bandLeft + bandWidth), "a view outside the band")
        for row in 0..<side {
            let out = destination + row * side * 3
            let sourceRow = y + row
            guard sourceRow >= 0, sourceRow < height, last > first else {
                out.update(repeating: 255, count: side * 3)
                continue
            }
            let leftPad = (first - x) * 3
            let copied = (last - first) * 3
            if leftPad > 0 { out.update(repeating: 255, count: leftPad) }
            out.advanced(by: leftPad).update(
                from: band + (sourceRow % Self.bandRows) * rowBytes + (first - bandLeft) * 3, count: copied)
            let rightPad = side * 3 - leftPad - copied
            if rightPad > 0 { out.advanced(by: leftPad + copied).update(repeating: 255, count: rightPad) }
        }
    }
}

extension SlideError.Code {
    /// No level of the slide is close enough to 20x to be resampled to it.
    public static let unsupportedResolution = SlideError.Code(rawValue: "slide.unsupported_resolution")
}
