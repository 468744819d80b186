import Foundation
import SyntheticSlides
import Testing

@testable import Ingest

@Suite("Tile streaming")
struct TileStreamTests {
    /// Writes a synthetic slide into a fresh folder and opens it; the caller removes the folder.
    private static func slide(
        magnification: Int, format: SyntheticSlide.Format = .svs, tissueFraction: Double = 0.5
    ) throws -> (Slide, URL) {
        let folder = try SlideFixtures.temporaryDirectory()
        let path = folder.appendingPathComponent(format == .svs ? "s.svs" : "s.tif").path
        let factor = magnification / 20
        try SyntheticSlide(
            .init(
                width: 2048 * factor, height: 1536 * factor, magnification: magnification, seed: 7,
                tissueFraction: tissueFraction, format: format)
        ).write(to: path)
        return (try Slide(path: path), folder)
    }

    /// Every triplet of the stream as arrays, indexed like the grid's tiles (the stream hands them out strip by strip).
    private static func triplets(_ stream: TileStream, batch: Int = 5) throws -> [[[UInt8]]] {
        let buffer = TileTripletBatch(capacity: batch)
        var all = [[[UInt8]]?](repeating: nil, count: stream.grid.tiles.count)
        var handedOut: [Int] = []
        while try stream.fill(buffer) {
            #expect(buffer.tileIndices.count == buffer.count)
            for (item, index) in buffer.tileIndices.enumerated() {
                #expect(all[index] == nil, "tile \(index) handed out twice")
                all[index] = (0..<3).map { scale in
                    let side = TileTripletBatch.sides[scale]
                    return Array(
                        UnsafeBufferPointer(start: buffer.view(scale: scale, item: item), count: side * side * 3))
                }
                handedOut.append(index)
            }
        }
        #expect(handedOut == stream.order)
        return all.compactMap { $0 }
    }

    @Test("at 20x each view equals a direct read of the centred region, white outside; one triplet per grid tile")
    func level0ViewsMatchDirectReads() throws {
        let (slide, folder) = try Self.slide(magnification: 20)
        defer { try? FileManager.default.removeItem(at: folder) }
        let resolution = try SlideResolution(slide: slide)
        #expect(resolution.plan == .level(0))
        let grid = TileGrid(
            slide: slide, resolution: resolution, mask: try TissueMask.compute(slide: slide, resolution: resolution))
        try #require(grid.tiles.count > 4)
        let stream = try TileStream(slide: slide, resolution: resolution, grid: grid)
        let triplets = try Self.triplets(stream)
        #expect(triplets.count == grid.tiles.count)
        #expect(stream.isFinished)
        for (index, tile) in grid.tiles.enumerated() {
            for scale in 0..<3 {
                let side = TileTripletBatch.sides[scale]
                let offset = TileStream.viewOffsets[scale]
                let direct = try slide.readRegion(
                    x: tile.x + offset, y: tile.y + offset, level: 0, width: side, height: side)
                #expect(triplets[index][scale] == direct, "tile \(tile.column),\(tile.row) scale \(scale)")
            }
        }
    }

    @Test("a slide wider than a strip: tiles go strip by strip, and views across the strip border match direct reads")
    func stripsAcrossTheWidth() throws {
        let folder = try SlideFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("wide.svs").path
        let stripWidth = TileStream.stripTileColumns * TileGrid.tileSize
        try SyntheticSlide(
            .init(width: stripWidth + 1280, height: 1024, magnification: 20, seed: 3, tissueFraction: 0.9, format: .svs)
        ).write(to: path)
        let slide = try Slide(path: path)
        let resolution = try SlideResolution(slide: slide)
        let grid = TileGrid(
            slide: slide, resolution: resolution, mask: try TissueMask.compute(slide: slide, resolution: resolution))
        let stream = try TileStream(slide: slide, resolution: resolution, grid: grid)
        let strips = stream.order.map { TileStream.strip(of: grid.tiles[$0]) }
        #expect(strips == strips.sorted())
        #expect(Set(strips) == [0, 1])
        let triplets = try Self.triplets(stream)
        #expect(triplets.count == grid.tiles.count)
        let border = grid.tiles.enumerated().filter { (30...33).contains($0.element.column) }
        try #require(border.count >= 4)
        for (index, tile) in border {
            for scale in 0..<3 {
                let side = TileTripletBatch.sides[scale]
                let offset = TileStream.viewOffsets[scale]
                let direct = try slide.readRegion(
                    x: tile.x + offset, y: tile.y + offset, level: 0, width: side, height: side)
                #expect(triplets[index][scale] == direct, "tile \(tile.column),\(tile.row) scale \(scale)")
            }
        }
    }

    @Test("at 40x without a downsample-2 level the views are the 2×2 block mean of level 0")
    func blockMeanViews() throws {
        let (slide, folder) = try Self.slide(magnification: 40)
        defer { try? FileManager.default.removeItem(at: folder) }
        let resolution = try SlideResolution(slide: slide)
        #expect(resolution.plan == .blockMean2x2)
        let grid = TileGrid(
            slide: slide, resolution: resolution, mask: try TissueMask.compute(slide: slide, resolution: resolution))
        let triplets = try Self.triplets(stream: try TileStream(slide: slide, resolution: resolution, grid: grid))
        #expect(triplets.count == grid.tiles.count)
        for (index, tile) in grid.tiles.enumerated().prefix(3) {
            let side = 512
            let level0 = try slide.readRegion(
                x: (tile.x - 128) * 2, y: (tile.y - 128) * 2, level: 0, width: side * 2, height: side * 2)
            var expected = [UInt8](repeating: 255, count: side * side * 3)
            let (width, height) = (1024 * 2, 768 * 2)
            for row in 0..<side {
                for column in 0..<side {
                    let x = tile.x - 128 + column
                    let y = tile.y - 128 + row
                    guard x >= 0, y >= 0, x < width, y < height else { continue }
                    for channel in 0..<3 {
                        var sum = 2
                        for dy in 0..<2 {
                            for dx in 0..<2 {
                                sum += Int(level0[((row * 2 + dy) * side * 2 + column * 2 + dx) * 3 + channel])
                            }
                        }
                        expected[(row * side + column) * 3 + channel] = UInt8(sum / 4)
                    }
                }
            }
            #expect(triplets[index][1] == expected, "tile \(tile.column),\(tile.row)")
        }
    }

    /// The slide's resolution with another plan (for exercising resampling on slides that do not need it).
    private static func resolution(
        _ slide: Slide, plan: SlideResolution.Plan, level0PerTarget: Double
    ) throws
        -> SlideResolution
    {
        var resolution = try SlideResolution(slide: slide)
        resolution.plan = plan
        resolution.level0PixelsPerTargetPixel = level0PerTarget
        return resolution
    }

    @Test("resampling by area: scale 1 equals the level read as is, scale 2 equals the 2×2 block mean")
    func resamplingMatchesTheExactPlans() throws {
        for (magnification, scale) in [(20, 1.0), (40, 2.0)] {
            let (slide, folder) = try Self.slide(magnification: magnification)
            defer { try? FileManager.default.removeItem(at: folder) }
            let exact = try SlideResolution(slide: slide)
            let resampled = try Self.resolution(
                slide, plan: .resample(level: 0, levelPixelsPerTargetPixel: scale), level0PerTarget: scale)
            let grid = TileGrid(
                slide: slide, resolution: exact, mask: try TissueMask.compute(slide: slide, resolution: exact))
            try #require(grid.tiles.count > 2)
            let expected = try Self.triplets(try TileStream(slide: slide, resolution: exact, grid: grid))
            let actual = try Self.triplets(try TileStream(slide: slide, resolution: resampled, grid: grid))
            #expect(actual.count == expected.count)
            for index in expected.indices {
                #expect(actual[index] == expected[index], "\(magnification)x, tile \(index)")
            }
        }
    }

    @Test("box weights cover each target pixel's footprint once, for scales below and above 1")
    func boxWeights() {
        for scale in [0.75, 1.0, 1.25, 1.5, 2.0, 3.3] {
            let weights = TileStream.boxWeights(first: 5, count: 40, scale: scale, origin: 3)
            for (offset, pixel) in weights.enumerated() {
                #expect(abs(pixel.reduce(0) { $0 + $1.1 } - 1) < 1e-9, "scale \(scale)")
                let target = Double(5 + offset)
                // The weighted mean of source pixel centres is the footprint's centre.
                let centre = pixel.reduce(0) { $0 + $1.1 * (Double($1.0 + 3) + 0.5) }
                #expect(abs(centre - (target + 0.5) * scale) < 0.5 + 1e-9, "scale \(scale)")
            }
        }
    }

    @Test("a 0.4 µm/px slide (a 25x scanner) is resampled to 20x: views keep the colours, the grid covers it")
    func resamplesAnOddResolution() throws {
        let (slide, folder) = try Self.slide(magnification: 20)
        defer { try? FileManager.default.removeItem(at: folder) }
        // Read the 0.5 µm/px slide as if its pixels were 0.4 µm: 1.25 of them per 20x pixel.
        var resolution = try Self.resolution(
            slide, plan: .resample(level: 0, levelPixelsPerTargetPixel: 1.25), level0PerTarget: 1.25)
        resolution.baseMPP = 0.4
        let mask = try TissueMask.compute(slide: slide, resolution: resolution)
        let grid = TileGrid(slide: slide, resolution: resolution, mask: mask)
        try #require(grid.tiles.count > 2)
        let stream = try TileStream(slide: slide, resolution: resolution, grid: grid)
        #expect(stream.width == Int((2048 / 1.25).rounded(.down)))
        let triplets = try Self.triplets(stream)
        #expect(triplets.count == grid.tiles.count)
        // Each view's mean colour equals the mean of the level-0 region it was made from, within rounding.
        for (index, tile) in grid.tiles.enumerated().prefix(3) {
            let view = triplets[index][0]
            let source = try slide.readRegion(
                x: Int((Double(tile.x) * 1.25).rounded()), y: Int((Double(tile.y) * 1.25).rounded()), level: 0,
                width: 320, height: 320)
            for channel in 0..<3 {
                let viewMean =
                    stride(from: channel, to: view.count, by: 3).reduce(0.0) { $0 + Double(view[$1]) }
                    / Double(view.count / 3)
                let sourceMean =
                    stride(from: channel, to: source.count, by: 3).reduce(0.0) {
                        $0 + Double(source[$1])
                    } / Double(source.count / 3)
                #expect(abs(viewMean - sourceMean) < 1.0, "tile \(index) channel \(channel)")
            }
        }
    }

    private static func triplets(stream: TileStream) throws -> [[[UInt8]]] { try triplets(stream) }
}
