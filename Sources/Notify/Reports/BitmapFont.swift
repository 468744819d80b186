import Images

/// Draws short labels into images (legends of the PNGs), with the X11 misc-fixed 6×13 font (public domain;
/// `tools/make_bitmap_font.py` made the glyph table). A bitmap font keeps the PNGs byte-for-byte reproducible and
/// needs no font library or font file at run time; labels are a few words, which a fixed 6×13 cell renders legibly
/// (scaled by a whole factor on large images).
public enum BitmapFont {
    /// The cell of one glyph, before scaling.
    public static let glyphWidth = 6
    public static let glyphHeight = 13

    /// The width in pixels of `text` at `scale`.
    public static func width(of text: String, scale: Int = 1) -> Int {
        text.unicodeScalars.count * glyphWidth * scale
    }

    /// Draws `text` with its cell's top-left corner at (`x`, `y`), each font pixel a `scale × scale` square of
    /// `colour`; pixels outside the image are skipped. A character the table lacks is drawn as `?`.
    public static func draw(
        _ text: String, at x: Int, _ y: Int, scale: Int = 1, colour: RGBColour, into image: inout RGBImage
    ) {
        var left = x
        for scalar in text.unicodeScalars {
            let rows = glyphs6x13[scalar.value] ?? glyphs6x13[0x3F]!
            for (row, bits) in rows.enumerated() where bits != 0 {
                for column in 0..<glyphWidth where bits & (0x80 >> column) != 0 {
                    for dy in 0..<scale {
                        let py = y + row * scale + dy
                        guard py >= 0, py < image.height else { continue }
                        for dx in 0..<scale {
                            let px = left + column * scale + dx
                            guard px >= 0, px < image.width else { continue }
                            image[px, py] = colour
                        }
                    }
                }
            }
            left += glyphWidth * scale
        }
    }
}
