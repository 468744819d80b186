/// A rectangle in level-0 pixels of a slide (GeoJSON polygons, OpenSlide read origins).
public struct Level0Rect: Sendable, Hashable {
    public var x: Double
    public var y: Double
    public var width: Double
    public var height: Double

    /// Makes a rectangle from its origin and size.
    public init(x: Double, y: Double, width: Double, height: Double) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }
}

/// One 256 × 256 tile of the 20x grid.
public struct Tile: Sendable, Hashable {
    /// Grid position (column, row).
    public var column: Int
    public var row: Int
    /// Top-left corner in 20x pixels (`column × 256`, `row × 256`).
    public var x: Int
    public var y: Int
    /// The tile's footprint on the slide in level-0 pixels (whole tile, even where it passes the edge).
    public var level0: Level0Rect
}

/// The tiles the model sees (model spec §2): 256 × 256 at 20x, stride 256, from the slide's top-left
/// corner, every tile whose footprint has tissue. Tiles are not skipped for their position: the
/// last column and row cover the slide's right and bottom edges, the part beyond the slide is white.
public struct TileGrid: Sendable, Equatable {
    /// Tile side in 20x pixels.
    public static let tileSize = 256

    /// Grid size: tiles per row and rows of tiles over the whole slide.
    public var columns: Int
    public var rows: Int
    /// Tiles with tissue, in row-major order.
    public var tiles: [Tile]

    /// Lays the grid over a slide whose level 0 is `level0Width × level0Height`, keeping the tiles
    /// where `mask` has tissue (any pixel with `minimumTissueFraction` 0, else at least that fraction).
    public init(
        level0Width: Int, level0Height: Int, resolution: SlideResolution, mask: TissueMask,
        minimumTissueFraction: Double = 0
    ) {
        let scale = resolution.level0PixelsPerTargetPixel
        let size = Self.tileSize
        let extent = resolution.targetSize(level0Width: level0Width, level0Height: level0Height)
        columns = (extent.width + size - 1) / size
        rows = (extent.height + size - 1) / size
        var tiles: [Tile] = []
        for row in 0..<rows {
            for column in 0..<columns {
                let footprint = Level0Rect(
                    x: Double(column * size) * scale, y: Double(row * size) * scale, width: Double(size) * scale,
                    height: Double(size) * scale)
                let kept = mask.hasTissue(
                    level0X: footprint.x, y: footprint.y, width: footprint.width, height: footprint.height,
                    minimumFraction: minimumTissueFraction)
                if kept {
                    tiles.append(Tile(column: column, row: row, x: column * size, y: row * size, level0: footprint))
                }
            }
        }
        self.tiles = tiles
    }

    /// Lays the grid over an open slide.
    public init(slide: Slide, resolution: SlideResolution, mask: TissueMask, minimumTissueFraction: Double = 0) {
        let (width, height) = slide.dimensions(level: 0)
        self.init(
            level0Width: width, level0Height: height, resolution: resolution, mask: mask,
            minimumTissueFraction: minimumTissueFraction)
    }
}
