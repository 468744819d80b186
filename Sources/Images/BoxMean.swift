/// The one box-mean downsampler of RGB pixels: each output pixel is the rounded mean, `(sum + n/2) / n` per channel,
/// of a `factor × factor` block of input pixels (fewer at the right and bottom edges when the input is not a
/// multiple of `factor`). The 40x tile reader's 2 × 2 means, the tissue mask's blocks, the heatmap thumbnail and the
/// report page's small thumbnail all use it, so they round alike.
public enum BoxMean {
    /// Averages `source` (`columns × rows` RGB pixels, `sourceRowBytes` apart) in `factor × factor` blocks into
    /// `destination` (`⌈columns / factor⌉ × ⌈rows / factor⌉` RGB pixels, `destinationRowBytes` apart).
    public static func rgb(
        _ source: UnsafePointer<UInt8>, columns: Int, rows: Int, sourceRowBytes: Int, factor: Int,
        into destination: UnsafeMutablePointer<UInt8>, destinationRowBytes: Int
    ) {
        let outputColumns = (columns + factor - 1) / factor
        let outputRows = (rows + factor - 1) / factor
        for outputRow in 0..<outputRows {
            let y0 = outputRow * factor
            let y1 = min(y0 + factor, rows)
            let out = destination + outputRow * destinationRowBytes
            for outputColumn in 0..<outputColumns {
                let x0 = outputColumn * factor
                let x1 = min(x0 + factor, columns)
                var red = 0
                var green = 0
                var blue = 0
                for y in y0..<y1 {
                    var pixel = source + y * sourceRowBytes + x0 * 3
                    for _ in x0..<x1 {
                        red += Int(pixel[0])
                        green += Int(pixel[1])
                        blue += Int(pixel[2])
                        pixel += 3
                    }
                }
                let count = (y1 - y0) * (x1 - x0)
                out[outputColumn * 3] = UInt8(truncatingIfNeeded: (red + count / 2) / count)
                out[outputColumn * 3 + 1] = UInt8(truncatingIfNeeded: (green + count / 2) / count)
                out[outputColumn * 3 + 2] = UInt8(truncatingIfNeeded: (blue + count / 2) / count)
            }
        }
    }
}
