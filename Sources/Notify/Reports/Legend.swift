import Images

/// A labelled legend strip drawn below a thumbnail image (`attention_heatmap.png`, `qc_mask.png`): rows of
/// swatches, colour ramps and words, wrapped to the image's width, in the 6×13 bitmap font scaled for large
/// images.
struct Legend {
    /// One piece of a legend line.
    enum Run {
        /// A word or short phrase (never broken).
        case text(String)
        /// A filled square with a 1-pixel dark border, then its label (kept together on one row).
        case swatch(RGBColour, String)
        /// A horizontal colour ramp of the given width (before scaling), drawn with `colour(at:)` for 0…1.
        case ramp(width: Int, colour: @Sendable (Float) -> RGBColour)
        /// A label centred under the previous ramp at the fraction 0…1 of its width (a tick value).
        case tick(String, at: Float)
    }

    let width: Int
    /// The font scale: 1 up to 800 pixels wide, 2 above.
    let scale: Int
    let margin: Int

    init(width: Int) {
        self.width = width
        scale = width > 800 ? 2 : 1
        margin = 4 * scale
    }

    var rowHeight: Int { (BitmapFont.glyphHeight + 3) * scale }
    var swatchSide: Int { (BitmapFont.glyphHeight - 3) * scale }
    var space: Int { BitmapFont.glyphWidth * scale }

    /// The height a legend with `lines` (each a list of runs) takes at this width.
    func height(of lines: [[Run]]) -> Int {
        layout(lines).reduce(0) { $0 + $1.height } + 2 * margin
    }

    /// A laid-out row: runs with their x positions, and its height (a ramp row holds its ticks below it).
    private struct Row {
        var runs: [(run: Run, x: Int, width: Int)] = []
        var height: Int
    }

    private func runWidth(_ run: Run) -> Int {
        switch run {
        case .text(let text): BitmapFont.width(of: text, scale: scale)
        case .swatch(_, let label): swatchSide + space / 2 + BitmapFont.width(of: label, scale: scale)
        case .ramp(let width, _): min(width * scale, self.width - 2 * margin)
        case .tick: 0
        }
    }

    private func layout(_ lines: [[Run]]) -> [Row] {
        var rows: [Row] = []
        let available = width - 2 * margin
        for line in lines {
            var row = Row(height: rowHeight)
            var x = 0
            for run in line {
                if case .tick = run {
                    row.runs.append((run, 0, 0))
                    row.height = 2 * rowHeight
                    continue
                }
                let runWidth = runWidth(run)
                if x > 0 && x + runWidth > available {
                    rows.append(row)
                    row = Row(height: rowHeight)
                    x = 0
                }
                row.runs.append((run, x, runWidth))
                x += runWidth + space
            }
            rows.append(row)
        }
        return rows
    }

    /// Draws the legend with its top at `top` (the image must be tall enough: ``height(of:)``).
    func draw(_ lines: [[Run]], into image: inout RGBImage, top: Int) {
        let black = RGBColour(red: 0, green: 0, blue: 0)
        var y = top + margin
        for row in layout(lines) {
            var lastRamp: (x: Int, width: Int)?
            for (run, x, runWidth) in row.runs {
                let left = margin + x
                switch run {
                case .text(let text):
                    BitmapFont.draw(text, at: left, y + scale, scale: scale, colour: black, into: &image)
                case .swatch(let colour, let label):
                    fill(&image, left, y + 2 * scale, swatchSide, swatchSide, black)
                    fill(&image, left + 1, y + 2 * scale + 1, swatchSide - 2, swatchSide - 2, colour)
                    BitmapFont.draw(
                        label, at: left + swatchSide + space / 2, y + scale, scale: scale, colour: black, into: &image)
                case .ramp(_, let colour):
                    let height = (BitmapFont.glyphHeight - 3) * scale
                    for column in 0..<runWidth {
                        let value = colour(runWidth > 1 ? Float(column) / Float(runWidth - 1) : 1)
                        fill(&image, left + column, y + 2 * scale, 1, height, value)
                    }
                    lastRamp = (left, runWidth)
                case .tick(let label, let fraction):
                    guard let ramp = lastRamp else { continue }
                    let centre = ramp.x + Int(Float(ramp.width - 1) * fraction)
                    let labelWidth = BitmapFont.width(of: label, scale: scale)
                    let labelLeft = min(max(centre - labelWidth / 2, margin), width - margin - labelWidth)
                    fill(&image, centre, y + (BitmapFont.glyphHeight - 1) * scale, max(1, scale), 3 * scale, black)
                    BitmapFont.draw(
                        label, at: labelLeft, y + rowHeight + scale, scale: scale, colour: black, into: &image)
                }
            }
            y += row.height
        }
    }

    /// A legend's lines: the title and the first entry's label (its colour unused), then a swatch and label per
    /// other entry, then what filled and outlined mean.
    static func qualityLines(title: String, entries: [(colour: RGBColour, label: String)]) -> [[Run]] {
        var lines: [[Run]] = []
        if let first = entries.first {
            lines.append([.text(title + ":")] + first.label.split(separator: " ").map { .text(String($0)) })
        }
        var swatches: [Run] = []
        for entry in entries.dropFirst() { swatches.append(.swatch(entry.colour, entry.label)) }
        lines.append(swatches)
        lines.append(
            "filled: left out of scoring; outlined: flagged, still scored".split(separator: " ").map {
                .text(String($0))
            })
        return lines
    }

    private func fill(_ image: inout RGBImage, _ x: Int, _ y: Int, _ width: Int, _ height: Int, _ colour: RGBColour) {
        for py in max(0, y)..<min(image.height, y + height) {
            for px in max(0, x)..<min(image.width, x + width) { image[px, py] = colour }
        }
    }
}
