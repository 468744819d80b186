/// Median filter of an 8-bit single-channel image with a square odd kernel and replicated borders
/// (OpenCV's `medianBlur`), by Perreault and Hébert's constant-time method.
///
/// One 256-bin histogram per image column holds that column's `kernel` pixels around the current
/// row; moving down a row removes one pixel from and adds one pixel to each column histogram. Along
/// a row, the kernel histogram is updated by adding the column histogram entering on the right and
/// subtracting the one leaving on the left. Both steps cost the same whatever the kernel size, so a
/// pixel costs O(256) (vectorised) rather than O(kernel²) or Huang's O(kernel). The median is found
/// with a 16-bin coarse histogram kept beside the fine one, so the search is at most 16 + 16 steps.
public enum MedianFilter {
    /// The largest kernel: counts are 16-bit, so kernel² must stay below 65,536.
    public static let maximumKernel = 255

    /// Filters `image` (`width × height` bytes, row-major) with a `kernel × kernel` window.
    /// `kernel` must be odd, 1…``maximumKernel``.
    public static func apply(_ image: [UInt8], width: Int, height: Int, kernel: Int) -> [UInt8] {
        apply(image, width: width, height: height, kernel: kernel, shouldStop: { false })!
    }

    /// The same, asking `shouldStop` before each row: nil when it said yes (a large mask takes seconds).
    static func apply(
        _ image: [UInt8], width: Int, height: Int, kernel: Int, shouldStop: () -> Bool
    ) -> [UInt8]? {
        precondition(kernel >= 1 && kernel % 2 == 1 && kernel <= maximumKernel, "kernel \(kernel)")
        precondition(image.count == width * height && width > 0 && height > 0)
        if kernel == 1 { return image }
        let radius = kernel / 2
        let half = (kernel * kernel) / 2  // the median is the (half + 1)-th smallest value

        var output = [UInt8](repeating: 0, count: image.count)
        var stopped = false
        // Column histograms: fine (256 bins) and coarse (16 bins of 16 values) per column.
        var columnFine = [UInt16](repeating: 0, count: width * 256)
        var columnCoarse = [UInt16](repeating: 0, count: width * 16)
        // The kernel's histograms, rebuilt at the start of each row.
        var kernelFine = [UInt16](repeating: 0, count: 256)
        var kernelCoarse = [UInt16](repeating: 0, count: 16)

        image.withUnsafeBufferPointer { pixels in
            output.withUnsafeMutableBufferPointer { out in
                columnFine.withUnsafeMutableBufferPointer { fine in
                    columnCoarse.withUnsafeMutableBufferPointer { coarse in
                        // Rows -radius…radius around row 0, clamped (replicated border).
                        for offset in -radius...radius {
                            let row = min(max(offset, 0), height - 1) * width
                            for x in 0..<width {
                                let value = Int(pixels[row + x])
                                fine[x * 256 + value] &+= 1
                                coarse[x * 16 + (value >> 4)] &+= 1
                            }
                        }
                        for y in 0..<height {
                            if shouldStop() {
                                stopped = true
                                return
                            }
                            if y > 0 {
                                let leaving = max(y - radius - 1, 0) * width
                                let entering = min(y + radius, height - 1) * width
                                for x in 0..<width {
                                    let old = Int(pixels[leaving + x])
                                    let new = Int(pixels[entering + x])
                                    fine[x * 256 + old] &-= 1
                                    coarse[x * 16 + (old >> 4)] &-= 1
                                    fine[x * 256 + new] &+= 1
                                    coarse[x * 16 + (new >> 4)] &+= 1
                                }
                            }
                            kernelFine.withUnsafeMutableBufferPointer { kf in
                                kernelCoarse.withUnsafeMutableBufferPointer { kc in
                                    filterRow(
                                        y: y, width: width, radius: radius, half: half, fine: fine, coarse: coarse,
                                        kernelFine: kf, kernelCoarse: kc, out: out)
                                }
                            }
                        }
                    }
                }
            }
        }
        return stopped ? nil : output
    }

    /// Slides the kernel histogram along row `y`, given the column histograms for that row.
    private static func filterRow(
        y: Int, width: Int, radius: Int, half: Int,
        fine: UnsafeMutableBufferPointer<UInt16>, coarse: UnsafeMutableBufferPointer<UInt16>,
        kernelFine kf: UnsafeMutableBufferPointer<UInt16>, kernelCoarse kc: UnsafeMutableBufferPointer<UInt16>,
        out: UnsafeMutableBufferPointer<UInt8>
    ) {
        kf.update(repeating: 0)
        kc.update(repeating: 0)
        // Columns -radius…radius around x = 0, clamped.
        for offset in -radius...radius {
            let column = min(max(offset, 0), width - 1)
            add(fine, at: column * 256, count: 256, to: kf)
            add(coarse, at: column * 16, count: 16, to: kc)
        }
        for x in 0..<width {
            if x > 0 {
                let leaving = max(x - radius - 1, 0)
                let entering = min(x + radius, width - 1)
                if leaving != entering {
                    subtract(fine, at: leaving * 256, count: 256, from: kf)
                    subtract(coarse, at: leaving * 16, count: 16, from: kc)
                    add(fine, at: entering * 256, count: 256, to: kf)
                    add(coarse, at: entering * 16, count: 16, to: kc)
                }
            }
            out[y * width + x] = median(fine: kf, coarse: kc, half: half)
        }
    }

    @inline(__always)
    private static func median(
        fine: UnsafeMutableBufferPointer<UInt16>, coarse: UnsafeMutableBufferPointer<UInt16>, half: Int
    ) -> UInt8 {
        var seen = 0
        var bin = 0
        while seen + Int(coarse[bin]) <= half {
            seen += Int(coarse[bin])
            bin += 1
        }
        var value = bin * 16
        while seen + Int(fine[value]) <= half {
            seen += Int(fine[value])
            value += 1
        }
        return UInt8(value)
    }

    @inline(__always)
    private static func add(
        _ source: UnsafeMutableBufferPointer<UInt16>, at start: Int, count: Int,
        to destination: UnsafeMutableBufferPointer<UInt16>
    ) {
        for index in 0..<count { destination[index] &+= source[start + index] }
    }

    @inline(__always)
    private static func subtract(
        _ source: UnsafeMutableBufferPointer<UInt16>, at start: Int, count: Int,
        from destination: UnsafeMutableBufferPointer<UInt16>
    ) {
        for index in 0..<count { destination[index] &-= source[start + index] }
    }
}
