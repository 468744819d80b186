import Images

/// Draws the attention heatmap of a slide over its thumbnail; the caller encodes the result as PNG.
///
/// Each tile that was drawn into a bag is filled with its attention's colour on the viridis colormap, blended
/// over the thumbnail with ``alpha``. Attention is scaled linearly from the lowest (bottom of the colormap) to the
/// highest (top) attention among the drawn tiles; when all are equal they take the top. A tile at least
/// ``markerMinimumSize`` thumbnail pixels wide and high gets a solid square in its top-left corner, a third of its
/// size, in the colour of its dominant scale (``scaleColours``: 20x red, 10x cyan, 5x magenta: none of them on
/// viridis). Tiles never drawn are left as the thumbnail.
///
/// Below the thumbnail a labelled legend (``legendLines(low:high:)``, wrapped to the image's width): the colormap
/// with the attention values at its ends and middle, which colour marks which dominant scale, and one sentence on
/// what attention means.
public struct HeatmapRenderer: Sendable {
    /// The colours marking the dominant scale: 20x, 10x, 5x.
    public static let scaleColours = [
        RGBColour(red: 228, green: 26, blue: 28),
        RGBColour(red: 0, green: 238, blue: 238),
        RGBColour(red: 238, green: 0, blue: 238),
    ]

    /// Viridis (matplotlib's, by van der Walt and Smith) at ten evenly spaced points, 0 to 1; interpolated linearly.
    static let viridis: [RGBColour] = [
        RGBColour(red: 0x44, green: 0x01, blue: 0x54), RGBColour(red: 0x48, green: 0x28, blue: 0x78),
        RGBColour(red: 0x3E, green: 0x4A, blue: 0x89), RGBColour(red: 0x31, green: 0x68, blue: 0x8E),
        RGBColour(red: 0x26, green: 0x82, blue: 0x8E), RGBColour(red: 0x1F, green: 0x9E, blue: 0x89),
        RGBColour(red: 0x35, green: 0xB7, blue: 0x79), RGBColour(red: 0x6D, green: 0xCD, blue: 0x59),
        RGBColour(red: 0xB4, green: 0xDE, blue: 0x2C), RGBColour(red: 0xFD, green: 0xE7, blue: 0x25),
    ]

    /// Opacity of the attention colour over the thumbnail, 0…1.
    public var alpha: Float
    /// Whether the labelled legend is drawn below the thumbnail.
    public var showsLegend: Bool
    /// The smallest tile, in thumbnail pixels on each side, that gets a dominant-scale marker.
    public var markerMinimumSize: Int

    /// Makes a renderer.
    public init(alpha: Float = 0.5, showsLegend: Bool = true, markerMinimumSize: Int = 6) {
        self.alpha = alpha
        self.showsLegend = showsLegend
        self.markerMinimumSize = markerMinimumSize
    }

    /// The colormap's colour at `position` (clamped to 0…1; NaN gives the bottom).
    public static func colour(at position: Float) -> RGBColour {
        let clamped = position.isNaN ? 0 : max(0, min(1, position))
        let scaled = clamped * Float(viridis.count - 1)
        let lower = min(Int(scaled), viridis.count - 2)
        return viridis[lower].blended(with: viridis[lower + 1], alpha: scaled - Float(lower))
    }

    /// Renders the heatmap.
    ///
    /// - Parameters:
    ///   - thumbnail: the slide's thumbnail, covering the whole level-0 image.
    ///   - slideWidth: level-0 width in pixels.
    ///   - slideHeight: level-0 height in pixels.
    ///   - tiles: the tiles, with level-0 rectangles.
    /// - Returns: an image as wide as the thumbnail, taller by the legend.
    public func render(thumbnail: RGBImage, slideWidth: Int, slideHeight: Int, tiles: [TileRecord]) -> RGBImage {
        let width = thumbnail.width
        let drawn = tiles.compactMap { $0.attention }.filter { $0.isFinite }
        let low = drawn.min() ?? 0
        let high = drawn.max() ?? 0
        let legend = Legend(width: width)
        let lines = Self.legendLines(low: low, high: high)
        var image = RGBImage(
            width: width, height: thumbnail.height + (showsLegend ? legend.height(of: lines) : 0),
            filledWith: RGBColour(red: 255, green: 255, blue: 255))
        image.pixels.replaceSubrange(0..<thumbnail.pixels.count, with: thumbnail.pixels)

        if slideWidth > 0, slideHeight > 0, width > 0, thumbnail.height > 0 {
            let scaleX = Double(width) / Double(slideWidth)
            let scaleY = Double(thumbnail.height) / Double(slideHeight)
            for tile in tiles {
                guard let attention = tile.attention, attention.isFinite else { continue }
                let position = high > low ? (attention - low) / (high - low) : 1
                paint(
                    tile, colour: Self.colour(at: position), into: &image, thumbnailHeight: thumbnail.height,
                    scaleX: scaleX, scaleY: scaleY)
            }
        }
        if showsLegend { legend.draw(lines, into: &image, top: thumbnail.height) }
        return image
    }

    /// One sentence on what the colours mean, for the legend and the report page.
    public static let attentionSentence =
        "Attention: how much weight the model gave a tile when it pooled the tiles of a bag, "
        + "times the bag's size (1 = an average tile; higher = looked at more)."

    /// An attention value for a label: two decimals, or three below 0.1.
    public static func label(_ value: Float) -> String {
        String(format: abs(value) < 0.1 && value != 0 ? "%.3f" : "%.2f", value)
    }

    /// The legend's lines: the colormap with the attention at its ends and middle, the scale markers, the sentence.
    static func legendLines(low: Float, high: Float) -> [[Legend.Run]] {
        let words = { (text: String) in text.split(separator: " ").map { Legend.Run.text(String($0)) } }
        var ramp: [Legend.Run] = [.text("attention"), .ramp(width: 160, colour: { Self.colour(at: $0) })]
        if high > low {
            ramp += [.tick(label(low), at: 0), .tick(label((low + high) / 2), at: 0.5), .tick(label(high), at: 1)]
        } else {
            ramp += [.tick(label(high), at: 1)]
        }
        var scales: [Legend.Run] = words("dominant scale (corner square):")
        for (index, name) in TileRecord.scaleNames.enumerated() {
            scales.append(.swatch(scaleColours[index], name))
        }
        return [
            ramp, scales, words("uncoloured tiles: never drawn into a bag, or left out by QC"),
            words(attentionSentence),
        ]
    }

    /// Fills a tile's thumbnail rectangle with its colour and adds its scale marker.
    private func paint(
        _ tile: TileRecord, colour: RGBColour, into image: inout RGBImage, thumbnailHeight: Int, scaleX: Double,
        scaleY: Double
    ) {
        guard let box = TileBox(tile, scaleX: scaleX, scaleY: scaleY, width: image.width, height: thumbnailHeight)
        else { return }
        let (left, top, right, bottom) = (box.left, box.top, box.right, box.bottom)
        for y in top..<bottom {
            for x in left..<right {
                image[x, y] = image[x, y].blended(with: colour, alpha: alpha)
            }
        }
        let size = min(right - left, bottom - top)
        guard size >= markerMinimumSize, let scale = tile.dominantScale, scale < Self.scaleColours.count else {
            return
        }
        let marker = max(1, size / 3)
        for y in top..<(top + marker) {
            for x in left..<(left + marker) { image[x, y] = Self.scaleColours[scale] }
        }
    }
}
