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
            // Reading decodes the tiles, which is the check; the pixels are not looked at.
            try slide.readStrips(
                level: level, stripRows: probeStripPixels / max(width, 1),
                only: width * height > probeFullLevelPixels ? [0, -1] : nil
            ) { _, _, _ in }
            return .slide
        } catch {
            if access(path, F_OK) != 0 { return .gone }
            return .rejected(code: error.code.rawValue, reason: error.description)
        }
    }
}
