import Images

extension Slide {
    /// Reads the `columns` left columns of `level` (all of them by default) in horizontal strips of `stripRows`
    /// rows, the last one shorter, and hands each to `body` with its first row, its height and its RGB pixels
    /// (`columns × rows × 3` bytes). `only` picks strips by index (negative: from the end), for a check that needs
    /// the first and last strips only. One strip is in memory at a time, whatever the size of the level: the
    /// watcher's probe and the heatmap's thumbnail read the smallest level so.
    public func readStrips(
        level: Int, columns: Int? = nil, stripRows: Int, only: [Int]? = nil,
        _ body: (_ top: Int, _ rows: Int, _ pixels: UnsafeMutableBufferPointer<UInt8>) throws(SlideError) -> Void
    ) throws(SlideError) {
        let (levelWidth, height) = dimensions(level: level)
        let width = min(columns ?? levelWidth, levelWidth)
        let stripRows = max(1, min(stripRows, height))
        let downsample = self.downsample(level: level)
        var tops = Array(stride(from: 0, to: height, by: stripRows))
        if let only {
            let picked = only.map { $0 < 0 ? tops.count + $0 : $0 }.filter { tops.indices.contains($0) }
            tops = Array(Set(picked)).sorted().map { tops[$0] }
        }
        var strip = [UInt8](repeating: 255, count: width * stripRows * 3)
        var scratch: [UInt32] = []
        for top in tops {
            let rows = min(stripRows, height - top)
            try strip.withUnsafeMutableBufferPointer { (buffer) throws(SlideError) in
                try readRegion(
                    x: 0, y: Int((Double(top) * downsample).rounded()), level: level, width: width, height: rows,
                    into: buffer, scratch: &scratch)
                try body(top, rows, UnsafeMutableBufferPointer(rebasing: buffer[0..<(width * rows * 3)]))
            }
        }
    }

    /// The slide's coarsest level whose long side is at least `minimumSide` pixels (the finest when none is, the
    /// coarsest when all are) as RGB, averaged down by a whole factor to at most `maximumSide` pixels a side, read in
    /// strips so that a large level does not need its whole image in memory at once. The minimum keeps the thumbnail
    /// of a small slide (whose coarsest level may be 256 pixels) large enough to read on the report page.
    public func thumbnail(minimumSide: Int = 1024, maximumSide: Int = 2048) throws(SlideError) -> RGBImage {
        let level =
            (0..<levelCount).last { level in
                let (width, height) = dimensions(level: level)
                return max(width, height) >= minimumSide
            } ?? 0
        let (levelWidth, levelHeight) = dimensions(level: level)
        let factor = max(1, (max(levelWidth, levelHeight) + maximumSide - 1) / maximumSide)
        let width = max(levelWidth / factor, 1)
        let height = max(levelHeight / factor, 1)
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        // Whole blocks only: the level is cropped to a multiple of the factor; strips are whole block rows.
        try pixels.withUnsafeMutableBufferPointer { (output) throws(SlideError) in
            try readStrips(level: level, columns: width * factor, stripRows: max(1, 256 / factor) * factor) {
                (top, rows, strip) throws(SlideError) in
                guard top / factor < height else { return }
                BoxMean.rgb(
                    strip.baseAddress!, columns: width * factor, rows: min(rows, (height - top / factor) * factor),
                    sourceRowBytes: width * factor * 3, factor: factor,
                    into: output.baseAddress! + (top / factor) * width * 3, destinationRowBytes: width * 3)
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}
