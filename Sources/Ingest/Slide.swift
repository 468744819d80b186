import COpenSlide
import Images

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open whole-slide image, read through OpenSlide.
///
/// Owns one `openslide_t` (`openslide_open`), closed in `deinit` and nowhere else. Level geometry,
/// properties and associated-image names are read once when the slide opens; the calls that touch
/// the file afterwards (`readRegion`, `associatedImage`) check `openslide_get_error` and throw a
/// ``SlideError`` naming the slide. OpenSlide's error state is sticky: once a read fails, every
/// later call on the same slide throws too.
///
/// **Blocking.** Every OpenSlide call does file I/O and image decoding synchronously. Call these
/// methods from threads you own (a thread pool for blocking work), never from Swift's cooperative
/// executor.
///
/// `@unchecked Sendable` without a lock: all Swift state is immutable, and OpenSlide
/// documents every function except `openslide_close` as thread-safe on one handle, so several
/// threads may read regions of the same slide at once. `openslide_close` runs only in `deinit`,
/// when no other reference (and so no other thread) can still use the handle.
public final class Slide: @unchecked Sendable {
    /// The file, as given to ``init(path:)``.
    public let path: String
    /// OpenSlide's name for the format (`openslide_detect_vendor`), such as "aperio" or "generic-tiff".
    public let vendor: String
    /// Number of pyramid levels (`openslide_get_level_count`); level 0 is the full resolution.
    public let levelCount: Int
    /// Every property OpenSlide reports (`openslide_get_property_names` / `openslide_get_property_value`),
    /// for example `openslide.mpp-x`, `aperio.AppMag`, `tiff.XResolution`.
    public let properties: [String: String]
    /// Names of the associated images (`openslide_get_associated_image_names`): "label", "macro", "thumbnail", …
    public let associatedImageNames: [String]

    private let handle: OpaquePointer
    private let levelSizes: [(width: Int, height: Int)]
    private let levelDownsamples: [Double]

    /// The largest region one ``readRegion(x:y:level:width:height:)`` call may ask for, in pixels
    /// (64 Mi pixels, 256 MiB of ARGB); read larger areas in strips.
    public static let maximumRegionPixels = 64 << 20

    /// The formats OpenSlide reads, for error messages.
    static let supportedFormats =
        "Aperio (.svs, .tif), Hamamatsu (.ndpi, .vms, .vmu), Leica (.scn), MIRAX (.mrxs), Philips (.tiff), "
        + "Sakura (.svslide), Trestle (.tif), Ventana (.bif, .tif) and generic tiled TIFF (.tif)"

    /// Opens a slide: `openslide_detect_vendor`, then `openslide_open`, then `openslide_get_error`.
    ///
    /// Throws ``SlideError`` with code `unreadable` (missing or unreadable file), `notASlide`
    /// (empty file or a format OpenSlide does not recognise), `openSlideError` (recognised but
    /// damaged) or `tooSmall` (a level without pixels).
    public init(path: String) throws(SlideError) {
        self.path = path
        try Self.checkReadableFile(path)
        guard let vendorName = openslide_detect_vendor(path) else {
            throw SlideError(
                code: .notASlide, file: path,
                message: "is not a slide OpenSlide can read (an unknown format, or a damaged or truncated file)",
                fix: "give a complete whole-slide image in a format OpenSlide reads: \(Self.supportedFormats)")
        }
        vendor = String(cString: vendorName)
        guard let handle = openslide_open(path) else {
            throw SlideError(
                code: .notASlide, file: path, message: "was detected as \(vendor) but OpenSlide could not open it",
                fix: "check that the file is complete; re-export it from the scanner software")
        }
        if let message = Self.errorMessage(handle) {
            openslide_close(handle)
            throw Self.openSlideError(path: path, message: message)
        }
        self.handle = handle

        // Once every stored property is set, a throw below runs `deinit`, which closes the handle.
        let count = Int(openslide_get_level_count(handle))
        var sizes: [(width: Int, height: Int)] = []
        var downsamples: [Double] = []
        for level in 0..<max(count, 0) {
            var width: Int64 = -1
            var height: Int64 = -1
            openslide_get_level_dimensions(handle, Int32(level), &width, &height)
            sizes.append((Int(width), Int(height)))
            downsamples.append(openslide_get_level_downsample(handle, Int32(level)))
        }
        let properties = Self.readProperties(handle)
        let names = Self.readStringList(openslide_get_associated_image_names(handle))
        levelCount = count
        levelSizes = sizes
        levelDownsamples = downsamples
        self.properties = properties
        associatedImageNames = names
        if let message = Self.errorMessage(handle) {
            throw Self.openSlideError(path: path, message: message)
        }
        guard count > 0, let base = sizes.first, base.width > 0, base.height > 0 else {
            throw SlideError(
                code: .tooSmall, file: path, message: "has no pixels (\(count) levels)",
                fix: "check that the file holds an image; re-export it from the scanner software")
        }
    }

    deinit {
        openslide_close(handle)
    }

    /// Width and height of a level in pixels (`openslide_get_level_dimensions`).
    public func dimensions(level: Int) -> (width: Int, height: Int) {
        precondition(levelSizes.indices.contains(level), "level \(level) of \(levelCount)")
        return levelSizes[level]
    }

    /// Level-0 pixels per pixel of a level (`openslide_get_level_downsample`); 1 for level 0.
    public func downsample(level: Int) -> Double {
        precondition(levelDownsamples.indices.contains(level), "level \(level) of \(levelCount)")
        return levelDownsamples[level]
    }

    /// All levels' downsamples, level 0 first.
    public var downsamples: [Double] { levelDownsamples }

    /// The level to read for a wanted downsample, by `openslide_get_best_level_for_downsample`'s rule
    /// (the coarsest level whose downsample does not exceed the wanted one), computed from the
    /// downsamples read at open so it cannot fail.
    public func bestLevel(forDownsample wanted: Double) -> Int {
        var best = 0
        for (level, downsample) in levelDownsamples.enumerated() where downsample <= wanted {
            best = level
        }
        return best
    }

    /// Reads a region as interleaved RGB (`openslide_read_region`), `width × height × 3` bytes.
    ///
    /// `x` and `y` are the region's top-left corner in **level-0** pixels (OpenSlide's convention);
    /// `width` and `height` are in pixels of `level`. Premultiplied alpha is undone; pixels outside
    /// the slide or its scanned area (alpha 0) come back white (255, 255, 255).
    public func readRegion(x: Int, y: Int, level: Int, width: Int, height: Int) throws(SlideError) -> [UInt8] {
        try checkRegionSize(width: width, height: height)
        var scratch: [UInt32] = []
        var rgb = [UInt8](repeating: 255, count: max(width, 0) * max(height, 0) * 3)
        try rgb.withUnsafeMutableBufferPointer { (buffer) throws(SlideError) in
            try readRegion(x: x, y: y, level: level, width: width, height: height, into: buffer, scratch: &scratch)
        }
        return rgb
    }

    /// Reads a region as interleaved RGB into `rgb` (at least `width × height × 3` bytes), with
    /// `scratch` holding OpenSlide's ARGB pixels. `scratch` grows to `width × height` once; a loop
    /// that reuses both buffers allocates nothing. Coordinates as in
    /// ``readRegion(x:y:level:width:height:)``.
    public func readRegion(
        x: Int, y: Int, level: Int, width: Int, height: Int,
        into rgb: UnsafeMutableBufferPointer<UInt8>, scratch: inout [UInt32]
    ) throws(SlideError) {
        guard levelSizes.indices.contains(level) else {
            throw SlideError(
                code: .invalidRequest, file: path, message: "has no level \(level) (it has \(levelCount))",
                fix: "read one of levels 0…\(levelCount - 1)")
        }
        try checkRegionSize(width: width, height: height)
        let count = width * height
        precondition(rgb.count >= count * 3, "rgb buffer of \(rgb.count) bytes for \(width)×\(height) pixels")
        guard count > 0 else { return }
        if scratch.count < count {
            scratch = [UInt32](repeating: 0, count: count)
        }
        try checkError()
        scratch.withUnsafeMutableBufferPointer { argb in
            openslide_read_region(
                handle, argb.baseAddress, Int64(x), Int64(y), Int32(level), Int64(width), Int64(height))
        }
        try checkError()
        scratch.withUnsafeBufferPointer { argb in
            Self.convertPremultipliedARGB(UnsafeBufferPointer(rebasing: argb[0..<count]), to: rgb)
        }
    }

    /// Refuses a region larger than ``maximumRegionPixels`` before anything is allocated for it (the multiplication
    /// cannot overflow: each side is checked first).
    private func checkRegionSize(width: Int, height: Int) throws(SlideError) {
        guard width >= 0, height >= 0, width <= Self.maximumRegionPixels, height <= Self.maximumRegionPixels,
            width * height <= Self.maximumRegionPixels
        else {
            throw SlideError(
                code: .invalidRequest, file: path, message: "cannot read a \(width)×\(height) region at once",
                fix: "read at most \(Self.maximumRegionPixels) pixels per call, in strips")
        }
    }

    /// The largest associated image (label, macro, thumbnail) read, in pixels: 16 Mi (a macro image is about
    /// 2,000 × 800); a header declaring more is refused before the pixels are allocated.
    public static let maximumAssociatedImagePixels = 16 << 20

    /// Reads an associated image (`openslide_read_associated_image`) as RGB, transparent pixels white.
    public func associatedImage(name: String) throws(SlideError) -> RGBImage {
        guard associatedImageNames.contains(name) else {
            throw SlideError(
                code: .invalidRequest, file: path, message: "has no associated image \"\(name)\"",
                fix: "ask for one of: \(associatedImageNames.joined(separator: ", "))")
        }
        try checkError()
        var width: Int64 = -1
        var height: Int64 = -1
        openslide_get_associated_image_dimensions(handle, name, &width, &height)
        try checkError()
        guard width > 0, height > 0 else {
            throw SlideError(
                code: .tooSmall, file: path, message: "associated image \"\(name)\" is \(width)×\(height) pixels",
                fix: "re-export the slide; its \(name) image is damaged")
        }
        guard width <= Self.maximumAssociatedImagePixels, height <= Self.maximumAssociatedImagePixels,
            Int(width) * Int(height) <= Self.maximumAssociatedImagePixels
        else {
            throw SlideError(
                code: .implausibleSize, file: path,
                message: "declares an associated image \"\(name)\" of \(width)×\(height) pixels "
                    + "(at most \(Self.maximumAssociatedImagePixels) are read)",
                fix: "re-export the slide; its \(name) image is damaged")
        }
        let count = Int(width) * Int(height)
        var argb = [UInt32](repeating: 0, count: count)
        argb.withUnsafeMutableBufferPointer { buffer in
            openslide_read_associated_image(handle, name, buffer.baseAddress)
        }
        try checkError()
        var rgb = [UInt8](repeating: 255, count: count * 3)
        argb.withUnsafeBufferPointer { source in
            rgb.withUnsafeMutableBufferPointer { destination in
                Self.convertPremultipliedARGB(source, to: destination)
            }
        }
        return RGBImage(width: Int(width), height: Int(height), pixels: rgb)
    }

    /// Turns OpenSlide's premultiplied ARGB (one native-endian `UInt32` per pixel) into RGB bytes:
    /// opaque pixels are copied, translucent ones divided by alpha (`c × 255 / a`, truncated, as
    /// OpenSlide's Python binding does), fully transparent ones become white.
    static func convertPremultipliedARGB(_ argb: UnsafeBufferPointer<UInt32>, to rgb: UnsafeMutableBufferPointer<UInt8>)
    {
        precondition(rgb.count >= argb.count * 3)
        var out = 0
        for pixel in argb {
            let alpha = pixel >> 24
            var red = (pixel >> 16) & 0xFF
            var green = (pixel >> 8) & 0xFF
            var blue = pixel & 0xFF
            if alpha == 0 {
                red = 255
                green = 255
                blue = 255
            } else if alpha != 255 {
                red = min(red * 255 / alpha, 255)
                green = min(green * 255 / alpha, 255)
                blue = min(blue * 255 / alpha, 255)
            }
            rgb[out] = UInt8(truncatingIfNeeded: red)
            rgb[out + 1] = UInt8(truncatingIfNeeded: green)
            rgb[out + 2] = UInt8(truncatingIfNeeded: blue)
            out += 3
        }
    }

    private func checkError() throws(SlideError) {
        if let message = Self.errorMessage(handle) {
            throw Self.openSlideError(path: path, message: message)
        }
    }

    private static func errorMessage(_ handle: OpaquePointer) -> String? {
        guard let message = openslide_get_error(handle) else { return nil }
        return String(cString: message)
    }

    private static func openSlideError(path: String, message: String) -> SlideError {
        SlideError(
            code: .openSlideError, file: path, message: "OpenSlide failed: \(message)",
            fix: "the file is damaged or incomplete (an interrupted copy?); copy or export it again")
    }

    private static func readProperties(_ handle: OpaquePointer) -> [String: String] {
        var properties: [String: String] = [:]
        for name in readStringList(openslide_get_property_names(handle)) {
            if let value = openslide_get_property_value(handle, name) {
                properties[name] = String(cString: value)
            }
        }
        return properties
    }

    /// Reads a NULL-terminated array of C strings owned by OpenSlide.
    private static func readStringList(_ list: UnsafePointer<UnsafePointer<CChar>?>?) -> [String] {
        guard let list else { return [] }
        var strings: [String] = []
        var index = 0
        while let string = list[index] {
            strings.append(String(cString: string))
            index += 1
        }
        return strings
    }

    private static func checkReadableFile(_ path: String) throws(SlideError) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw SlideError(
                code: .unreadable, file: path, message: "does not exist or cannot be examined",
                fix: "check the path and that the folder is readable by the csmil user")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw SlideError(
                code: .unreadable, file: path, message: "is not a regular file",
                fix: "give the slide file itself (for MIRAX, the .mrxs file beside its folder)")
        }
        guard access(path, R_OK) == 0 else {
            throw SlideError(
                code: .unreadable, file: path, message: "is not readable (permission denied)",
                fix: "make the file readable by the csmil user")
        }
        guard info.st_size > 0 else {
            throw SlideError(
                code: .notASlide, file: path, message: "is empty (0 bytes)",
                fix: "copy the slide again; the copy was probably interrupted")
        }
    }
}
