import Images
import Testing

@testable import Notify

@Suite("attention heatmap")
struct HeatmapRendererTests {
    /// A 64 × 32 thumbnail of a 1024 × 512 slide: one thumbnail pixel per 16 level-0 pixels, a gradient.
    let thumbnail: RGBImage = {
        var image = RGBImage(width: 64, height: 32, filledWith: RGBColour(red: 0, green: 0, blue: 0))
        for y in 0..<32 {
            for x in 0..<64 { image[x, y] = RGBColour(red: UInt8(x * 3), green: UInt8(y * 5), blue: 200) }
        }
        return image
    }()

    func render(_ renderer: HeatmapRenderer = HeatmapRenderer()) -> RGBImage {
        renderer.render(thumbnail: thumbnail, slideWidth: 1024, slideHeight: 512, tiles: Fixtures.tiles)
    }

    @Test("the image is the thumbnail's size plus the legend")
    func size() {
        let image = render()
        #expect(image.width == 64 && image.height > 32 + 60)
        #expect(image.pixels.count == 64 * image.height * 3)
        #expect(render(HeatmapRenderer(showsLegend: false)).height == 32)
    }

    @Test("a tile never drawn and the area outside tiles keep the thumbnail's pixels")
    func undrawnUnchanged() {
        let image = render()
        // The undrawn tile covers level-0 (512…768, 256…512): thumbnail (32…48, 16…32).
        for y in 16..<32 {
            for x in 32..<48 { #expect(image[x, y] == thumbnail[x, y]) }
        }
        #expect(image[60, 5] == thumbnail[60, 5])
    }

    @Test("the highest attention takes the top of the colormap, the lowest the bottom")
    func colours() {
        let opaque = render(HeatmapRenderer(alpha: 1, markerMinimumSize: 100))
        #expect(opaque[8, 8] == HeatmapRenderer.colour(at: 1))
        #expect(opaque[8, 8] == RGBColour(red: 0xFD, green: 0xE7, blue: 0x25))
        #expect(opaque[24, 8] == RGBColour(red: 0x44, green: 0x01, blue: 0x54))
        let blended = render()
        #expect(blended[10, 10] == thumbnail[10, 10].blended(with: HeatmapRenderer.colour(at: 1), alpha: 0.5))
    }

    @Test("the dominant scale marks the tile's top-left corner in the scale's colour")
    func scaleMarkers() {
        let image = render()
        #expect(image[0, 0] == HeatmapRenderer.scaleColours[0])
        #expect(image[16, 0] == HeatmapRenderer.scaleColours[2])
        #expect(image[15, 15] != HeatmapRenderer.scaleColours[0])
    }

    @Test("the legend shows the colormap from bottom to top, the three scale colours and dark text")
    func legend() {
        let image = RGBImage(width: 900, height: 300, filledWith: RGBColour(red: 255, green: 255, blue: 255))
        let rendered = HeatmapRenderer().render(
            thumbnail: image, slideWidth: 1024, slideHeight: 512, tiles: Fixtures.tiles)
        let legendPixels = (300..<rendered.height).flatMap { y in (0..<900).map { rendered[$0, y] } }
        let colours = Set(legendPixels)
        #expect(colours.contains(HeatmapRenderer.colour(at: 0)) && colours.contains(HeatmapRenderer.colour(at: 1)))
        for colour in HeatmapRenderer.scaleColours { #expect(colours.contains(colour)) }
        // Text is drawn in black: a few hundred pixels of glyphs at least.
        #expect(legendPixels.filter { $0 == RGBColour(red: 0, green: 0, blue: 0) }.count > 500)
        #expect(rendered[0, 300] == RGBColour(red: 255, green: 255, blue: 255))
    }

    @Test("the legend labels the attention values at the colormap's ends")
    func legendValues() {
        let lines = HeatmapRenderer.legendLines(low: 0.25, high: 2.5)
        let ticks = lines[0].compactMap { run -> String? in
            if case .tick(let label, _) = run { return label }
            return nil
        }
        #expect(ticks == ["0.25", "1.38", "2.50"])
    }
}
