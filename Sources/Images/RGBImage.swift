/// An 8-bit RGB image, rows top to bottom, three bytes per pixel, no padding.
public struct RGBImage: Sendable, Equatable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// `width × height × 3` bytes.
    public var pixels: [UInt8]

    /// Makes an image; `pixels` must hold `width × height × 3` bytes.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 3, "RGB buffer size mismatch")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An image filled with one colour.
    public init(width: Int, height: Int, filledWith colour: RGBColour) {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for index in stride(from: 0, to: pixels.count, by: 3) {
            pixels[index] = colour.red
            pixels[index + 1] = colour.green
            pixels[index + 2] = colour.blue
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    /// The colour at column `x`, row `y`.
    public subscript(x: Int, y: Int) -> RGBColour {
        get {
            let index = (y * width + x) * 3
            return RGBColour(red: pixels[index], green: pixels[index + 1], blue: pixels[index + 2])
        }
        set {
            let index = (y * width + x) * 3
            pixels[index] = newValue.red
            pixels[index + 1] = newValue.green
            pixels[index + 2] = newValue.blue
        }
    }
}

/// An 8-bit RGB colour.
public struct RGBColour: Sendable, Equatable, Hashable {
    /// Red, 0…255.
    public var red: UInt8
    /// Green, 0…255.
    public var green: UInt8
    /// Blue, 0…255.
    public var blue: UInt8

    /// Makes a colour.
    public init(red: UInt8, green: UInt8, blue: UInt8) {
        self.red = red
        self.green = green
        self.blue = blue
    }

    /// `self × (1 − alpha) + other × alpha`, per channel, rounded to nearest.
    public func blended(with other: RGBColour, alpha: Float) -> RGBColour {
        func mix(_ base: UInt8, _ top: UInt8) -> UInt8 {
            let value = Float(base) * (1 - alpha) + Float(top) * alpha
            return UInt8(max(0, min(255, value.rounded())))
        }
        return RGBColour(red: mix(red, other.red), green: mix(green, other.green), blue: mix(blue, other.blue))
    }
}

extension RGBImage {
    /// The image averaged down by a whole factor (``BoxMean``, whole blocks only) so that neither side exceeds
    /// `maximumSide`; itself when it fits.
    public func reduced(toAtMost maximumSide: Int) -> RGBImage {
        let factor = max(1, (max(width, height) + maximumSide - 1) / maximumSide)
        guard factor > 1 else { return self }
        let reducedWidth = max(1, width / factor)
        let reducedHeight = max(1, height / factor)
        var reduced = [UInt8](repeating: 255, count: reducedWidth * reducedHeight * 3)
        pixels.withUnsafeBufferPointer { source in
            reduced.withUnsafeMutableBufferPointer { output in
                BoxMean.rgb(
                    source.baseAddress!, columns: min(width, reducedWidth * factor),
                    rows: min(height, reducedHeight * factor), sourceRowBytes: width * 3, factor: factor,
                    into: output.baseAddress!, destinationRowBytes: reducedWidth * 3)
            }
        }
        return RGBImage(width: reducedWidth, height: reducedHeight, pixels: reduced)
    }
}
