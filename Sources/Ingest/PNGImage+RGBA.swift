import CPNG
import Foundation

extension PNGImage {
    /// `width × height` 8-bit RGBA pixels (non-premultiplied, row-major) encoded as a PNG in memory
    /// (`png_image_write_to_memory` with `PNG_FORMAT_RGBA`): the report page's transparent overlays.
    public static func encodedRGBA(width: Int, height: Int, pixels: [UInt8]) throws(ImageError) -> Data {
        precondition(pixels.count == width * height * 4, "RGBA buffer size mismatch")
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = UInt32(PNG_FORMAT_RGB) | UInt32(PNG_FORMAT_FLAG_ALPHA)  // PNG_FORMAT_RGBA, a macro of macros
        defer { png_image_free(&image) }
        var size = 0
        var ok = pixels.withUnsafeBytes { buffer in
            png_image_write_to_memory(&image, nil, &size, 0, buffer.baseAddress, Int32(width * 4), nil)
        }
        guard ok != 0, size > 0 else {
            throw ImageError(
                code: .encoding, file: "PNG", message: "libpng could not size an RGBA image",
                fix: "this is a bug in csmil")
        }
        var data = Data(count: size)
        ok = data.withUnsafeMutableBytes { memory in
            pixels.withUnsafeBytes { buffer in
                png_image_write_to_memory(
                    &image, memory.baseAddress, &size, 0, buffer.baseAddress, Int32(width * 4), nil)
            }
        }
        guard ok != 0 else {
            throw ImageError(
                code: .encoding, file: "PNG", message: "libpng could not encode an RGBA image",
                fix: "this is a bug in csmil")
        }
        data.count = size
        return data
    }

    /// The image averaged down by a whole factor so that neither side exceeds `maximumSide` (itself when it fits).
    public func reduced(toAtMost maximumSide: Int) -> PNGImage {
        let factor = max(1, (max(width, height) + maximumSide - 1) / maximumSide)
        guard factor > 1 else { return self }
        let reducedWidth = max(1, width / factor)
        let reducedHeight = max(1, height / factor)
        var reduced = [UInt8](repeating: 255, count: reducedWidth * reducedHeight * 3)
        let area = factor * factor
        for y in 0..<reducedHeight {
            for x in 0..<reducedWidth {
                for channel in 0..<3 {
                    var sum = 0
                    for dy in 0..<factor {
                        let row = ((y * factor + dy) * width + x * factor) * 3 + channel
                        for dx in 0..<factor { sum += Int(pixels[row + dx * 3]) }
                    }
                    reduced[(y * reducedWidth + x) * 3 + channel] = UInt8((sum + area / 2) / area)
                }
            }
        }
        return PNGImage(width: reducedWidth, height: reducedHeight, pixels: reduced)
    }
}
