import Testing

@testable import Ingest

@Suite("TileGrid: 256 × 256 tiles at 20x over the tissue")
struct TileGridTests {
    private func resolution(mpp: String, downsamples: [Double]) throws -> SlideResolution {
        try SlideResolution(properties: ["openslide.mpp-x": mpp], downsamples: downsamples, file: "grid.svs")
    }

    /// A 192 × 128 mask at 16 level-0 pixels per pixel with tissue in columns 20..<40, rows 10..<30
    /// (level-0 x 320..<640, y 160..<480).
    private func blockMask() -> TissueMask {
        var pixels = [UInt8](repeating: 0, count: 192 * 128)
        for y in 10..<30 { for x in 20..<40 { pixels[y * 192 + x] = 1 } }
        return TissueMask(width: 192, height: 128, micronsPerPixel: 8, level0PixelsPerPixel: 16, pixels: pixels)
    }

    @Test("a 20x slide keeps the tiles touching tissue, with their level-0 footprints")
    func twentyX() throws {
        let grid = TileGrid(
            level0Width: 3072, level0Height: 2048, resolution: try resolution(mpp: "0.5", downsamples: [1, 4, 16]),
            mask: blockMask())
        #expect(grid.columns == 12 && grid.rows == 8)
        #expect(grid.tiles.map { [$0.column, $0.row] } == [[1, 0], [2, 0], [1, 1], [2, 1]])
        let tile = grid.tiles[3]
        #expect(tile.x == 512 && tile.y == 256)
        #expect(tile.level0 == Level0Rect(x: 512, y: 256, width: 256, height: 256))
    }

    @Test("a minimum tissue fraction drops tiles with little tissue")
    func minimumFraction() throws {
        let grid = TileGrid(
            level0Width: 3072, level0Height: 2048, resolution: try resolution(mpp: "0.5", downsamples: [1]),
            mask: blockMask(), minimumTissueFraction: 0.5)
        // Tile (1, 1) is 12 × 14 of 16 × 16 mask pixels tissue (66 %); the others under 45 %.
        #expect(grid.tiles.map { [$0.column, $0.row] } == [[1, 1]])
    }

    @Test("on a 40x slide a tile covers 512 level-0 pixels, and edge tiles are kept")
    func fortyXAndEdges() throws {
        let full = TissueMask(
            width: 32, height: 24, micronsPerPixel: 8, level0PixelsPerPixel: 32,
            pixels: [UInt8](repeating: 1, count: 32 * 24))
        let grid = TileGrid(
            level0Width: 1024, level0Height: 700, resolution: try resolution(mpp: "0.25", downsamples: [1, 2]),
            mask: full)
        // 20x extent 512 × 350: two columns, two rows (the second row only partly on the slide).
        #expect(grid.columns == 2 && grid.rows == 2)
        #expect(grid.tiles.count == 4)
        #expect(grid.tiles.last?.level0 == Level0Rect(x: 512, y: 512, width: 512, height: 512))
        #expect(grid.tiles.first?.x == 0 && grid.tiles.first?.y == 0)
    }

    @Test("on the ellipse slide the grid holds exactly the tiles over mask pixels")
    func ellipseSlide() throws {
        let slide = try Slide(path: SlideFixtures.path("ellipses-20x.tiff"))
        let resolution = try SlideResolution(slide: slide)
        let mask = try TissueMask.compute(slide: slide, resolution: resolution)
        let grid = TileGrid(slide: slide, resolution: resolution, mask: mask)
        var expected = Set<[Int]>()
        for y in 0..<mask.height {
            for x in 0..<mask.width where mask.pixels[y * mask.width + x] != 0 {
                expected.insert([x * 16 / 256, y * 16 / 256])
            }
        }
        #expect(Set(grid.tiles.map { [$0.column, $0.row] }) == expected)
        #expect(grid.tiles.count > 20 && grid.tiles.count < 96)
    }
}
