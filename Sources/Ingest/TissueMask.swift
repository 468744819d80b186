import Foundation
import Images

/// Where a slide has tissue, at low resolution (model spec §3, "Our choice").
///
/// Recipe: a low-resolution RGB image of the slide (about 8 µm per pixel) → HSV saturation
/// (OpenCV's 8-bit definition, on the image as read — the reference's ×255 overflow is not
/// reproduced) → median blur over 118 µm → saturation > 20 → contour filtering (``Contours``):
/// components above 80 µm², at most 8 holes each above 64 µm². The reference's pixel sizes
/// (a 59-pixel kernel, 20 and 16 pixel areas) were for 2 µm/px images (downsample 4 from 20x on
/// Aperio); here they are micrometres, so the result does not depend on which level is read.
public struct TissueMask: Sendable, Equatable {
    /// The recipe's settings; the defaults are the reference's, converted to micrometres.
    public struct Parameters: Sendable, Equatable {
        /// Resolution to compute the mask at, µm per pixel.
        public var micronsPerPixel: Double = 8
        /// Saturation (0…255) a pixel must exceed to be tissue.
        public var saturationThreshold: Int = 20
        /// Side of the median filter's window, µm (59 px × 2 µm/px); made an odd pixel count, at least 3.
        public var medianKernelMicrons: Double = 118
        /// Tissue components must be larger than this, µm² (20 px × 4 µm²).
        public var minimumTissueArea: Double = 80
        /// Holes must be larger than this to stay open, µm² (16 px × 4 µm²).
        public var minimumHoleArea: Double = 64
        /// At most this many holes (the largest) stay open per component.
        public var maximumHoles: Int = 8
        /// Largest side, in pixels, of one region read from the slide; larger areas are read in pieces.
        public var maximumReadSide: Int = 2048
        /// Read this pyramid level instead of choosing one (nil: choose; for tests and comparisons).
        public var level: Int? = nil
        /// The most pixels the mask may have (64 Mi: a 75 × 50 mm slide at 8 µm/px has 59 Mi). A larger slide's mask
        /// is made coarser so that it fits: its working memory (about 5 bytes per pixel, see ``compute(slide:resolution:parameters:shouldStop:)``)
        /// stays bounded whatever the slide declares.
        public var maximumPixels: Int = 1 << 26

        /// The reference's settings in micrometres.
        public init() {}
    }

    /// Mask size in pixels.
    public var width: Int
    public var height: Int
    /// Resolution of the mask, µm per pixel.
    public var micronsPerPixel: Double
    /// Level-0 pixels per mask pixel (the read level's downsample × the block size averaged).
    public var level0PixelsPerPixel: Double
    /// Row-major, 1 for tissue and 0 for background.
    public var pixels: [UInt8]

    /// Makes a mask from its parts.
    public init(width: Int, height: Int, micronsPerPixel: Double, level0PixelsPerPixel: Double, pixels: [UInt8]) {
        precondition(pixels.count == width * height)
        self.width = width
        self.height = height
        self.micronsPerPixel = micronsPerPixel
        self.level0PixelsPerPixel = level0PixelsPerPixel
        self.pixels = pixels
    }

    /// Computes the mask of a slide. Reads one level — the one nearest the mask's resolution (see
    /// ``readPlan(downsamples:baseMPP:parameters:level0Width:level0Height:)``) — averaged in square blocks down to it,
    /// in pieces of at most ``Parameters/maximumReadSide`` pixels a side, so memory stays bounded whatever the
    /// pyramid; the mask itself has at most ``Parameters/maximumPixels`` pixels, checked before it is allocated.
    /// Blocks the calling thread (OpenSlide reads; see ``Slide``).
    ///
    /// `shouldStop` is asked before every piece and stage; when it says yes, `slide.cancelled` is thrown within one
    /// piece's read.
    public static func compute(
        slide: Slide, resolution: SlideResolution, parameters: Parameters = Parameters(),
        shouldStop: () -> Bool = { false }
    ) throws(SlideError) -> TissueMask {
        let (level0Width, level0Height) = slide.dimensions(level: 0)
        let plan = readPlan(
            downsamples: slide.downsamples, baseMPP: resolution.baseMPP, parameters: parameters,
            level0Width: level0Width, level0Height: level0Height)
        let (levelWidth, levelHeight) = slide.dimensions(level: plan.level)
        var block = plan.block
        // The block was chosen from the level-0 size and the downsample; the level's own size decides the mask's.
        while ((levelWidth + block - 1) / block) * ((levelHeight + block - 1) / block) > parameters.maximumPixels {
            block += 1
        }
        let width = (levelWidth + block - 1) / block
        let height = (levelHeight + block - 1) / block
        guard width > 0, height > 0 else {
            throw SlideError(
                code: .tooSmall, file: slide.path,
                message: "has an empty level \(plan.level) (\(levelWidth) × \(levelHeight))",
                fix: "re-export the slide from the scanner software")
        }
        let downsample = slide.downsample(level: plan.level)
        // Only the saturation of each block mean is kept (1 byte per mask pixel, not 3): the mask of a
        // 50,000² slide at 8 µm/px has ten million pixels, and its working memory should stay below the
        // tile streaming's.
        var saturation = [UInt8](repeating: 0, count: width * height)

        // Pieces are whole blocks, so each block is averaged within one piece.
        let side = max(parameters.maximumReadSide / block, 1) * block
        var piece = [UInt8](repeating: 0, count: side * side * 3)
        var scratch: [UInt32] = []
        for top in stride(from: 0, to: levelHeight, by: side) {
            let rows = min(side, levelHeight - top)
            for left in stride(from: 0, to: levelWidth, by: side) {
                if shouldStop() { throw .cancelled(slide.path, stage: "tissue detection") }
                let columns = min(side, levelWidth - left)
                try piece.withUnsafeMutableBufferPointer { (buffer) throws(SlideError) in
                    try slide.readRegion(
                        x: Int((Double(left) * downsample).rounded()), y: Int((Double(top) * downsample).rounded()),
                        level: plan.level, width: columns, height: rows, into: buffer, scratch: &scratch)
                }
                averageBlocks(
                    piece, columns: columns, rows: rows, block: block, into: &saturation, maskWidth: width,
                    originX: left / block, originY: top / block)
            }
        }
        guard
            let mask = fromSaturation(
                &saturation, width: width, height: height,
                micronsPerPixel: resolution.baseMPP * downsample * Double(block),
                level0PixelsPerPixel: downsample * Double(block), parameters: parameters, shouldStop: shouldStop)
        else { throw .cancelled(slide.path, stage: "tissue detection") }
        return mask
    }

    /// Runs the recipe on a low-resolution RGB image (`width × height × 3` bytes) whose pixels are
    /// `micronsPerPixel` wide and `level0PixelsPerPixel` level-0 pixels wide.
    public static func fromImage(
        rgb: [UInt8], width: Int, height: Int, micronsPerPixel: Double, level0PixelsPerPixel: Double,
        parameters: Parameters = Parameters()
    ) -> TissueMask {
        precondition(rgb.count == width * height * 3 && width > 0 && height > 0)
        var saturation = [UInt8](repeating: 0, count: width * height)
        for index in 0..<(width * height) {
            saturation[index] = Self.saturation(
                red: rgb[3 * index], green: rgb[3 * index + 1], blue: rgb[3 * index + 2])
        }
        return fromSaturation(
            &saturation, width: width, height: height, micronsPerPixel: micronsPerPixel,
            level0PixelsPerPixel: level0PixelsPerPixel, parameters: parameters, shouldStop: { false })!
    }

    /// The recipe from the saturation image on; `saturation` is emptied as soon as it has been blurred. Nil when
    /// `shouldStop` said yes (asked at every row of the median filter and between the stages).
    static func fromSaturation(
        _ saturation: inout [UInt8], width: Int, height: Int, micronsPerPixel: Double, level0PixelsPerPixel: Double,
        parameters: Parameters, shouldStop: () -> Bool
    ) -> TissueMask? {
        let kernel = medianKernel(microns: parameters.medianKernelMicrons, micronsPerPixel: micronsPerPixel)
        guard
            var binary = MedianFilter.apply(
                saturation, width: width, height: height, kernel: kernel, shouldStop: shouldStop)
        else { return nil }
        saturation = []
        if shouldStop() { return nil }
        let threshold = parameters.saturationThreshold
        for index in binary.indices { binary[index] = Int(binary[index]) > threshold ? 1 : 0 }
        let pixelArea = micronsPerPixel * micronsPerPixel
        Contours.filter(
            &binary, width: width, height: height, minimumArea: parameters.minimumTissueArea / pixelArea,
            minimumHoleArea: parameters.minimumHoleArea / pixelArea, maximumHoles: parameters.maximumHoles)
        return TissueMask(
            width: width, height: height, micronsPerPixel: micronsPerPixel, level0PixelsPerPixel: level0PixelsPerPixel,
            pixels: binary)
    }

    /// OpenCV's 8-bit HSV saturation: (max − min) × 255 / max, rounded; 0 for black.
    @inline(__always)
    static func saturation(red: UInt8, green: UInt8, blue: UInt8) -> UInt8 {
        let high = Int(max(red, green, blue))
        let low = Int(min(red, green, blue))
        guard high > 0 else { return 0 }
        return UInt8(((high - low) * 255 + high / 2) / high)
    }

    /// The median window in pixels: the odd count nearest to `microns / micronsPerPixel`, 3…255.
    static func medianKernel(microns: Double, micronsPerPixel: Double) -> Int {
        let pixels = microns / micronsPerPixel
        let odd = Int(((pixels - 1) / 2).rounded()) * 2 + 1
        return min(max(odd, 3), MedianFilter.maximumKernel)
    }

    /// The mask's resolution, µm per pixel: ``Parameters/micronsPerPixel``, or coarser when a slide of
    /// `level0Width × level0Height` pixels of `baseMPP` µm would otherwise need more than
    /// ``Parameters/maximumPixels`` mask pixels.
    static func maskResolution(
        baseMPP: Double, parameters: Parameters, level0Width: Int, level0Height: Int
    ) -> Double {
        let area = Double(max(level0Width, 0)) * Double(max(level0Height, 0)) * baseMPP * baseMPP
        return max(parameters.micronsPerPixel, (area / Double(max(parameters.maximumPixels, 1))).squareRoot())
    }

    /// Which level to read and how many of its pixels (per side) to average into one mask pixel: the level nearest
    /// the mask's resolution (``maskResolution(baseMPP:parameters:level0Width:level0Height:)``) on a log scale, the
    /// finer one of two equally near. A level finer than the mask is averaged in blocks; a coarser one is used as it
    /// is (the recipe is in micrometres, so the mask is only coarser). So a pyramid's small level is read rather than
    /// its huge level 0 whenever it is the nearer one (a 976² level of a slide declaring 10⁶ × 10⁶ pixels).
    static func readPlan(
        downsamples: [Double], baseMPP: Double, parameters: Parameters, level0Width: Int = 0, level0Height: Int = 0
    ) -> (level: Int, block: Int) {
        let target = maskResolution(
            baseMPP: baseMPP, parameters: parameters, level0Width: level0Width, level0Height: level0Height)
        let level: Int
        if let forced = parameters.level, downsamples.indices.contains(forced) {
            level = forced
        } else {
            let distance = { (level: Int) in abs(log(baseMPP * downsamples[level] / target)) }
            var best = 0
            for candidate in downsamples.indices.dropFirst() where distance(candidate) < distance(best) - 1e-9 {
                best = candidate
            }
            level = best
        }
        let levelMPP = baseMPP * downsamples[level]
        let block = max(Int((target / levelMPP).rounded()), 1)
        return (level, block)
    }

    /// Averages `block × block` blocks of a piece (`columns × rows` RGB pixels) and writes each block mean's
    /// saturation into the mask-sized image.
    private static func averageBlocks(
        _ piece: [UInt8], columns: Int, rows: Int, block: Int, into saturation: inout [UInt8], maskWidth: Int,
        originX: Int, originY: Int
    ) {
        let blocksX = (columns + block - 1) / block
        let blocksY = (rows + block - 1) / block
        var means = [UInt8](repeating: 0, count: blocksX * blocksY * 3)
        piece.withUnsafeBufferPointer { source in
            means.withUnsafeMutableBufferPointer { output in
                BoxMean.rgb(
                    source.baseAddress!, columns: columns, rows: rows, sourceRowBytes: columns * 3, factor: block,
                    into: output.baseAddress!, destinationRowBytes: blocksX * 3)
            }
        }
        for by in 0..<blocksY {
            for bx in 0..<blocksX {
                let mean = (by * blocksX + bx) * 3
                saturation[(originY + by) * maskWidth + originX + bx] = Self.saturation(
                    red: means[mean], green: means[mean + 1], blue: means[mean + 2])
            }
        }
    }

    /// Number of tissue pixels.
    public var tissuePixelCount: Int { pixels.reduce(0) { $0 + Int($1) } }

    /// Tissue area in mm².
    public var tissueArea: Double {
        Double(tissuePixelCount) * micronsPerPixel * micronsPerPixel / 1_000_000
    }

    /// The fraction of mask pixels overlapping a rectangle (in level-0 pixels) that are tissue;
    /// 0 for a rectangle entirely outside the mask. The part outside the mask does not count.
    public func tissueFraction(level0X x: Double, y: Double, width: Double, height: Double) -> Double {
        let scale = level0PixelsPerPixel
        let left = max(Int((x / scale).rounded(.down)), 0)
        let top = max(Int((y / scale).rounded(.down)), 0)
        let right = min(Int(((x + width) / scale).rounded(.up)), self.width)
        let bottom = min(Int(((y + height) / scale).rounded(.up)), self.height)
        guard left < right, top < bottom else { return 0 }
        var tissue = 0
        for row in top..<bottom {
            for column in left..<right { tissue += Int(pixels[row * self.width + column]) }
        }
        return Double(tissue) / Double((right - left) * (bottom - top))
    }

    /// Whether a rectangle (in level-0 pixels) has tissue: with `minimumFraction` 0 (the default,
    /// as the reference), any tissue pixel under it; otherwise at least that fraction of them.
    public func hasTissue(
        level0X x: Double, y: Double, width: Double, height: Double, minimumFraction: Double = 0
    ) -> Bool {
        let fraction = tissueFraction(level0X: x, y: y, width: width, height: height)
        return minimumFraction <= 0 ? fraction > 0 : fraction >= minimumFraction
    }

    /// The mask as an image for the report: tissue white, background black.
    public func png() -> RGBImage {
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for (index, value) in pixels.enumerated() where value != 0 {
            rgb[3 * index] = 255
            rgb[3 * index + 1] = 255
            rgb[3 * index + 2] = 255
        }
        return RGBImage(width: width, height: height, pixels: rgb)
    }
}
