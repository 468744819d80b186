import Foundation
import Images
import Ingest
import Notify

/// `report.html`'s images (issue 16): the thumbnail reduced for the page, the attention and QC overlays (one pixel
/// per grid tile, stretched by the browser), and the top-attention tiles read once more from the slide with their
/// 10x and 5x contexts, reduced to 256 pixels exactly as the backbones see them (model spec §2).
extension SlidePipeline {
    /// Tiles shown as crops on the page.
    static let pageTopTiles = 6
    /// The longest side of the page's thumbnail.
    static let pageThumbnailSide = 1024

    /// The page for a scored slide (or one QC left nothing of). A crop that cannot be read leaves the crops out
    /// (logged); the rest of the page does not depend on the slide any more.
    func reportPage(
        report: SlideReport, slide: Slide, resolution: SlideResolution, grid: TileGrid, records: [TileRecord],
        thumbnail: RGBImage
    ) throws -> ReportPage {
        let small = thumbnail.reduced(toAtMost: Self.pageThumbnailSide)
        var page = ReportPage(
            report: report, thumbnail: .init(png: try small.encoded(), width: small.width, height: small.height))
        func overlay(_ kind: ReportPage.OverlayKind) throws -> ReportPage.Image? {
            guard let (width, height, rgba) = ReportPage.overlayPixels(tiles: records, kind: kind) else { return nil }
            return .init(
                png: try RGBImage.encodedRGBA(width: width, height: height, pixels: rgba), width: width, height: height)
        }
        page.attentionOverlay = try overlay(.attention)
        if report.qc != nil { page.qcOverlay = try overlay(.qc) }
        if let first = records.first, let width = report.slide.width, let height = report.slide.height, width > 0,
            height > 0
        {
            let columns = (records.map(\.column).max() ?? 0) + 1
            let rows = (records.map(\.row).max() ?? 0) + 1
            page.overlayExtent = (
                Double(columns * first.width) / Double(width), Double(rows * first.height) / Double(height)
            )
        }
        let drawn = records.compactMap(\.attention).filter(\.isFinite)
        if let low = drawn.min(), let high = drawn.max() { page.attentionRange = (low, high) }
        do {
            page.topTiles = try topTiles(slide: slide, resolution: resolution, grid: grid, records: records)
        } catch {
            logger.warning(
                "report page without tile crops",
                metadata: ["slide": "\(report.slide.name)"].merging(.error(error)) { $1 })
        }
        return page
    }

    /// The top-attention tiles with their three views, read through a ``TileStream`` over just those tiles.
    private func topTiles(
        slide: Slide, resolution: SlideResolution, grid: TileGrid, records: [TileRecord]
    ) throws -> [ReportPage.TopTile] {
        let chosen = ReportPage.topTiles(records, count: Self.pageTopTiles)
        guard !chosen.isEmpty else { return [] }
        var indexOf: [Int: Int] = [:]
        for (index, tile) in grid.tiles.enumerated() { indexOf[tile.row * grid.columns + tile.column] = index }
        var subset = grid
        // In grid order: a stream reads each strip's rows forward only.
        subset.tiles = chosen.compactMap { indexOf[$0.row * grid.columns + $0.column] }.sorted().map { grid.tiles[$0] }
        let stream = try TileStream(slide: slide, resolution: resolution, grid: subset)
        let batch = TileTripletBatch(capacity: subset.tiles.count)
        var views: [Int: [ReportPage.Image]] = [:]
        while try stream.fill(batch) {
            for item in 0..<batch.count {
                let tile = subset.tiles[batch.tileIndices[item]]
                views[tile.row * grid.columns + tile.column] = try (0..<3).map { scale in
                    let image = Self.modelView(
                        batch.view(scale: scale, item: item), side: TileTripletBatch.sides[scale])
                    return ReportPage.Image(png: try image.encoded(), width: image.width, height: image.height)
                }
            }
        }
        return chosen.compactMap { record in
            views[record.row * grid.columns + record.column].map { ReportPage.TopTile(record: record, views: $0) }
        }
    }

    /// A view reduced to 256 pixels as the backbones see it (model spec §2: the mean of each 2 × 2 block of the
    /// 512 context; the mean of the central 2 × 2 of each 4 × 4 block of the 1024 context), with the tile's square
    /// outlined on the contexts.
    static func modelView(_ pixels: UnsafePointer<UInt8>, side: Int) -> RGBImage {
        let output = 256
        let factor = side / output
        let first = factor == 4 ? 1 : 0
        var reduced = [UInt8](repeating: 0, count: output * output * 3)
        for y in 0..<output {
            for x in 0..<output {
                for channel in 0..<3 {
                    let row0 = ((y * factor + first) * side + x * factor + first) * 3 + channel
                    var sum = Int(pixels[row0])
                    var count = 1
                    if factor > 1 {
                        sum += Int(pixels[row0 + 3]) + Int(pixels[row0 + side * 3]) + Int(pixels[row0 + side * 3 + 3])
                        count = 4
                    }
                    reduced[(y * output + x) * 3 + channel] = UInt8((sum + count / 2) / count)
                }
            }
        }
        if factor > 1 {
            // The tile sits in the middle: 256 / factor pixels wide.
            let low = (output - output / factor) / 2
            let high = low + output / factor - 1
            func mark(_ x: Int, _ y: Int, _ value: UInt8) {
                guard x >= 0, y >= 0, x < output, y < output else { return }
                for channel in 0..<3 { reduced[(y * output + x) * 3 + channel] = value }
            }
            for position in (low - 1)...(high + 1) {
                for (offset, value) in [(0, UInt8(255)), (1, UInt8(0))] {
                    mark(position, low - offset, value)
                    mark(position, high + offset, value)
                    mark(low - offset, position, value)
                    mark(high + offset, position, value)
                }
            }
        }
        return RGBImage(width: output, height: output, pixels: reduced)
    }
}
