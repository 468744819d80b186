import CPNG
import Errors
import Foundation

/// PNG files and bytes through libpng's simplified API.
extension RGBImage {
    /// Reads a PNG of any colour type and bit depth as 8-bit RGB (alpha composited on white,
    /// grey expanded), with `png_image_begin_read_from_file` / `png_image_finish_read`.
    public init(contentsOfFile path: String) throws(ImageError) {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&image, path) != 0 else {
            throw ImageError(
                code: .unreadable, file: path, message: Self.message(&image),
                fix: "check that the file exists and is a PNG")
        }
        defer { png_image_free(&image) }
        let limit = 16384
        guard image.width > 0, image.height > 0, image.width <= limit, image.height <= limit else {
            throw ImageError(
                code: .tooLarge, file: path, message: "is \(image.width)×\(image.height) pixels",
                fix: "use tiles of at most \(limit)×\(limit) pixels")
        }
        image.format = UInt32(PNG_FORMAT_RGB)
        let width = Int(image.width)
        let height = Int(image.height)
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        var background = png_color(red: 255, green: 255, blue: 255)
        let ok = pixels.withUnsafeMutableBytes { buffer in
            png_image_finish_read(&image, &background, buffer.baseAddress, Int32(width * 3), nil)
        }
        guard ok != 0 else {
            throw ImageError(
                code: .damaged, file: path, message: Self.message(&image), fix: "re-export the PNG; it is damaged")
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    /// Writes the image as an 8-bit RGB PNG (`png_image_write_to_file`).
    public func write(to path: String) throws(ImageError) {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = UInt32(PNG_FORMAT_RGB)
        let ok = pixels.withUnsafeBytes { buffer in
            png_image_write_to_file(&image, path, 0, buffer.baseAddress, Int32(width * 3), nil)
        }
        defer { png_image_free(&image) }
        guard ok != 0 else {
            throw ImageError(
                code: .unwritable, file: path, message: Self.message(&image),
                fix: "check that the folder exists and is writable")
        }
    }

    /// The image encoded as an 8-bit RGB PNG in memory.
    public func encoded() throws(ImageError) -> Data {
        try Self.encode(width: width, height: height, pixels: pixels, alpha: false)
    }

    /// `width × height` 8-bit RGBA pixels (non-premultiplied, row-major) encoded as a PNG in memory: the report
    /// page's transparent overlays.
    public static func encodedRGBA(width: Int, height: Int, pixels: [UInt8]) throws(ImageError) -> Data {
        precondition(pixels.count == width * height * 4, "RGBA buffer size mismatch")
        return try encode(width: width, height: height, pixels: pixels, alpha: true)
    }

    /// `png_image_write_to_memory`, called once to size the buffer and once to fill it; RGB or RGBA
    /// (`PNG_FORMAT_RGBA` is a macro of macros: RGB with the alpha flag).
    private static func encode(width: Int, height: Int, pixels: [UInt8], alpha: Bool) throws(ImageError) -> Data {
        let channels = alpha ? 4 : 3
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = UInt32(PNG_FORMAT_RGB) | (alpha ? UInt32(PNG_FORMAT_FLAG_ALPHA) : 0)
        defer { png_image_free(&image) }
        var size = 0
        var ok = pixels.withUnsafeBytes { buffer in
            png_image_write_to_memory(&image, nil, &size, 0, buffer.baseAddress, Int32(width * channels), nil)
        }
        guard ok != 0, size > 0 else {
            throw ImageError(
                code: .encoding, file: "PNG", message: Self.message(&image),
                fix: "this is a bug in csmil; please report it")
        }
        var data = Data(count: size)
        ok = data.withUnsafeMutableBytes { memory in
            pixels.withUnsafeBytes { buffer in
                png_image_write_to_memory(
                    &image, memory.baseAddress, &size, 0, buffer.baseAddress, Int32(width * channels), nil)
            }
        }
        guard ok != 0 else {
            throw ImageError(
                code: .encoding, file: "PNG", message: Self.message(&image),
                fix: "this is a bug in csmil; please report it")
        }
        data.count = size
        return data
    }

    private static func message(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// A PNG that could not be read or written.
public struct ImageError: CSMILError, Sendable, Equatable {
    public enum Code: String, ErrorCode {
        /// The file is missing or not a PNG.
        case unreadable = "image.unreadable"
        /// The image is larger than a tile can be.
        case tooLarge = "image.too_large"
        /// The PNG's data is damaged.
        case damaged = "image.damaged"
        /// The file could not be written.
        case unwritable = "image.unwritable"
        /// An image (the tissue mask, the heatmap) could not be encoded; reports have always called this
        /// `report.image`.
        case encoding = "report.image"
    }

    public var code: Code
    /// The PNG file ("PNG" for one encoded in memory).
    public var file: String
    public var message: String
    public var fix: String

    public var subject: String { file }
}
