import Images

/// Draws `qc_mask.png`: the slide's thumbnail with the tiles QC flagged in one colour per check, and a labelled
/// legend below it.
///
/// A tile left out of scoring is filled with its first check's colour (``colours``) at ``alpha``; a tile flagged by
/// a check that does not exclude (not in `[qc] exclude`) gets a 1-pixel outline in that colour only. The colours
/// avoid the heatmap's (viridis and the scale markers) and H&E's pinks and purples.
public struct QualityMaskRenderer: Sendable {
    /// The colour of each check: pen orange, blur blue, fold yellow.
    public static let colours: [(check: String, colour: RGBColour, label: String)] = [
        ("pen", RGBColour(red: 255, green: 128, blue: 0), "pen ink"),
        ("blur", RGBColour(red: 30, green: 110, blue: 255), "out of focus"),
        ("fold", RGBColour(red: 255, green: 220, blue: 0), "tissue fold"),
    ]

    /// The colour of a check's name (grey for an unknown one).
    public static func colour(of check: String) -> RGBColour {
        colours.first { $0.check == check }?.colour ?? RGBColour(red: 128, green: 128, blue: 128)
    }

    /// Opacity of an excluded tile's fill, 0…1.
    public var alpha: Float

    /// Makes a renderer.
    public init(alpha: Float = 0.6) {
        self.alpha = alpha
    }

    /// Renders the mask over `thumbnail` (covering the whole level-0 image of `slideWidth × slideHeight`), with a
    /// legend strip below; `summary` is written in the legend (e.g. "QC review: pen 12 % of tiles").
    public func render(
        thumbnail: RGBImage, slideWidth: Int, slideHeight: Int, tiles: [TileRecord], summary: String
    ) -> RGBImage {
        let legend = Legend(width: thumbnail.width)
        var entries = Self.colours.map { (colour: $0.colour, label: $0.label) }
        entries.insert((RGBColour(red: 255, green: 255, blue: 255), summary), at: 0)
        let lines = Legend.qualityLines(title: "QC", entries: entries)
        var image = RGBImage(
            width: thumbnail.width, height: thumbnail.height + legend.height(of: lines),
            filledWith: RGBColour(red: 255, green: 255, blue: 255))
        image.pixels.replaceSubrange(0..<thumbnail.pixels.count, with: thumbnail.pixels)
        if slideWidth > 0, slideHeight > 0 {
            let scaleX = Double(thumbnail.width) / Double(slideWidth)
            let scaleY = Double(thumbnail.height) / Double(slideHeight)
            for tile in tiles {
                guard let check = tile.qc.first,
                    let box = TileBox(
                        tile, scaleX: scaleX, scaleY: scaleY, width: image.width, height: thumbnail.height)
                else { continue }
                let colour = Self.colour(of: check)
                for y in box.top..<box.bottom {
                    for x in box.left..<box.right {
                        let edge = y == box.top || y == box.bottom - 1 || x == box.left || x == box.right - 1
                        if tile.excluded {
                            image[x, y] = image[x, y].blended(with: colour, alpha: alpha)
                        } else if edge {
                            image[x, y] = colour
                        }
                    }
                }
            }
        }
        legend.draw(lines, into: &image, top: thumbnail.height)
        return image
    }
}

/// A tile's rectangle on a thumbnail: edges floored, so neighbouring tiles share no pixel; at least one pixel.
struct TileBox {
    var left: Int
    var top: Int
    var right: Int
    var bottom: Int

    init?(_ tile: TileRecord, scaleX: Double, scaleY: Double, width: Int, height: Int) {
        left = max(0, Int((Double(tile.x) * scaleX).rounded(.down)))
        top = max(0, Int((Double(tile.y) * scaleY).rounded(.down)))
        right = min(width, max(left + 1, Int((Double(tile.x + tile.width) * scaleX).rounded(.down))))
        bottom = min(height, max(top + 1, Int((Double(tile.y + tile.height) * scaleY).rounded(.down))))
        guard left < right, top < bottom else { return nil }
    }
}
