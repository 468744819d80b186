import Glibc

extension WatchFolder {
    /// The production probe: OpenSlide opens the file (``Slide/init(path:)``) and reads its
    /// smallest level in strips, which decodes its tiles and so catches truncated files.
    /// A smallest level larger than 32 Mi pixels (a single-level slide) is checked by its first
    /// and last strips only.
    public static let openSlideProbe: Probe = { path in probeWithOpenSlide(path) }

    /// Pixels read per strip of the smallest level.
    static let probeStripPixels = 4 << 20
    /// Above this many pixels only the first and last strips of the smallest level are read.
    static let probeFullLevelPixels = 32 << 20

    static func probeWithOpenSlide(_ path: String) -> ProbeOutcome {
        do throws(SlideError) {
            let slide = try Slide(path: path)
            let level = slide.levelCount - 1
            let (width, height) = slide.dimensions(level: level)
            let downsample = slide.downsample(level: level)
            let rowsPerStrip = max(1, min(height, probeStripPixels / max(width, 1)))
            var strips = Array(stride(from: 0, to: height, by: rowsPerStrip))
            if width * height > probeFullLevelPixels, let first = strips.first, let last = strips.last {
                strips = first == last ? [first] : [first, last]
            }
            var scratch: [UInt32] = []
            var rgb = [UInt8](repeating: 0, count: width * rowsPerStrip * 3)
            for top in strips {
                let rows = min(rowsPerStrip, height - top)
                try rgb.withUnsafeMutableBufferPointer { (buffer) throws(SlideError) in
                    try slide.readRegion(
                        x: 0, y: Int((Double(top) * downsample).rounded()), level: level, width: width, height: rows,
                        into: buffer, scratch: &scratch)
                }
            }
            return .slide
        } catch {
            if access(path, F_OK) != 0 { return .gone }
            return .rejected(code: error.code.rawValue, reason: error.description)
        }
    }
}
