import Foundation

/// A reusable batch of tile triplets (model spec §2): for each tile the 256² tile, its 512² 10x context and its
/// 1024² 5x context, all interleaved u8 RGB at 20x. Allocated once (about 4.1 MB per tile), then filled again and
/// again by ``TileStream/fill(_:)``, so streaming a slide allocates nothing per tile.
///
/// A batch is handed between threads through a ``BoundedQueue``; only one thread touches it at a time.
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
/// level 0 averaged 2 × 2 (`(a + b + c + d + 2) / 4`).
///
/// Views are centred on the tile (the spec's "Our choice": the 512² region from (−128, −128), the 1024² region from
/// (−384, −384) relative to the tile's origin); pixels outside the slide are white.
///
/// Blocks on OpenSlide: run it on a thread of your own. `@unchecked Sendable` so that it can be handed to a reader
/// thread: one stream is used by one thread at a time, never concurrently.
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

    /// Prepares to stream `grid`'s tiles of `slide`. Throws ``SlideError`` with code `unsupported_resolution` for
    /// slides that are neither 20x nor 40x (resampling is not implemented yet).
    public init(slide: Slide, resolution: SlideResolution, grid: TileGrid) throws(SlideError) {
        switch resolution.plan {
        case .level(let level):
            self.level = level
            blockMean = false
        case .blockMean2x2:
            level = 0
            blockMean = true
        case .resample:
            throw SlideError(
                code: .unsupportedResolution, file: slide.path,
                message: "is \(resolution.describe); reading tiles that need resampling to 20x is not implemented yet",
                fix: "score slides scanned at 20x or 40x (or convert the slide to one of them)")
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
        let factor = blockMean ? 2 : 1
        piece = [UInt8](repeating: 255, count: Self.chunkColumns * factor * Self.pieceRows * factor * 3)
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
            if blockMean {
                try piece.withUnsafeMutableBufferPointer { (buffer) throws(SlideError) in
                    try slide.readRegion(
                        x: left * 2, y: top * 2, level: 0, width: columns * 2, height: rows * 2, into: buffer,
                        scratch: &scratch)
                    Self.blockMean(buffer, columns: columns, rows: rows, into: bandTop + done * 3, rowBytes: rowBytes)
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

    /// Averages `2·columns × 2·rows` level-0 pixels into `columns × rows` 20x pixels, rounding halves up.
    static func blockMean(
        _ source: UnsafeMutableBufferPointer<UInt8>, columns: Int, rows: Int,
        into destination: UnsafeMutablePointer<UInt8>,
        rowBytes: Int
    ) {
        let sourceRow = columns * 2 * 3
        let base = source.baseAddress!
        for row in 0..<rows {
            let upper = base + row * 2 * sourceRow
            let lower = upper + sourceRow
            let out = destination + row * rowBytes
            for column in 0..<columns {
                for channel in 0..<3 {
                    let index = column * 6 + channel
                    let sum =
                        Int(upper[index]) + Int(upper[index + 3]) + Int(lower[index]) + Int(lower[index + 3]) + 2
                    out[column * 3 + channel] = UInt8(truncatingIfNeeded: sum >> 2)
                }
            }
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
    /// The slide's resolution needs resampling to 20x, which tile streaming does not do yet.
    public static let unsupportedResolution = SlideError.Code(rawValue: "unsupported_resolution")
}
