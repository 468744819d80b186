import Images
import Testing

@testable import Ingest

@Suite("TissueMask: spec §3 in micrometres")
struct TissueMaskTests {
    /// IoU of a mask against the level-0 truth PNG, comparing every second level-0 pixel (in each
    /// direction) with the mask pixel covering it.
    private func intersectionOverUnion(_ mask: TissueMask, truth: RGBImage) -> Double {
        var intersection = 0
        var union = 0
        for y in stride(from: 0, to: truth.height, by: 2) {
            let row = min(Int(Double(y) / mask.level0PixelsPerPixel), mask.height - 1) * mask.width
            for x in stride(from: 0, to: truth.width, by: 2) {
                let column = min(Int(Double(x) / mask.level0PixelsPerPixel), mask.width - 1)
                let predicted = mask.pixels[row + column] != 0
                let actual = truth.pixels[(y * truth.width + x) * 3] > 127
                if predicted && actual { intersection += 1 }
                if predicted || actual { union += 1 }
            }
        }
        return union == 0 ? 1 : Double(intersection) / Double(union)
    }

    @Test("the ellipse slide's mask matches the true tissue with IoU ≥ 0.95")
    func ellipseIoU() throws {
        let slide = try Slide(path: SlideFixtures.path("ellipses-20x.tiff"))
        let resolution = try SlideResolution(slide: slide)
        let mask = try TissueMask.compute(slide: slide, resolution: resolution)
        #expect(mask.width == 192 && mask.height == 128)
        #expect(mask.micronsPerPixel == 8)
        #expect(mask.level0PixelsPerPixel == 16)
        let truth = try RGBImage(contentsOfFile: SlideFixtures.path("ellipses-20x-truth.png"))
        let iou = intersectionOverUnion(mask, truth: truth)
        print("ellipse slide tissue IoU (level 2, 8 µm/px): \(iou)")
        #expect(iou >= 0.95)
    }

    @Test("without a small level, level 0 is averaged in bounded pieces to the same mask")
    func levelZeroInPieces() throws {
        let slide = try Slide(path: SlideFixtures.path("ellipses-20x.tiff"))
        let resolution = try SlideResolution(slide: slide)
        var parameters = TissueMask.Parameters()
        parameters.level = 0
        parameters.maximumReadSide = 1000  // 62 blocks of 16: pieces of 992 × 992, several per row
        #expect(TissueMask.readPlan(downsamples: slide.downsamples, baseMPP: 0.5, parameters: parameters) == (0, 16))
        let fromLevelZero = try TissueMask.compute(slide: slide, resolution: resolution, parameters: parameters)
        let fromPyramid = try TissueMask.compute(slide: slide, resolution: resolution)
        #expect(fromLevelZero.width == fromPyramid.width && fromLevelZero.height == fromPyramid.height)
        let differing = zip(fromLevelZero.pixels, fromPyramid.pixels).filter { $0 != $1 }.count
        #expect(Double(differing) / Double(fromPyramid.pixels.count) < 0.005)
        let truth = try RGBImage(contentsOfFile: SlideFixtures.path("ellipses-20x-truth.png"))
        let iou = intersectionOverUnion(fromLevelZero, truth: truth)
        print("ellipse slide tissue IoU (level 0 in pieces): \(iou)")
        #expect(iou >= 0.95)
    }

    @Test("a blank white slide has no tissue and no tiles")
    func blankSlide() throws {
        let slide = try Slide(path: SlideFixtures.path("blank-20x.tiff"))
        let resolution = try SlideResolution(slide: slide)
        let mask = try TissueMask.compute(slide: slide, resolution: resolution)
        #expect(mask.tissuePixelCount == 0)
        #expect(mask.tissueArea == 0)
        #expect(TileGrid(slide: slide, resolution: resolution, mask: mask).tiles.isEmpty)
    }

    @Test("a 40x slide's mask is computed at 8 µm/px from a finer level")
    func fortyXMask() throws {
        let slide = try Slide(path: SlideFixtures.path("aperio-40x.svs"))
        let resolution = try SlideResolution(slide: slide)
        // Levels at 0.25, 0.5 and 2 µm/px: level 2 averaged 4 × 4.
        #expect(
            TissueMask.readPlan(downsamples: slide.downsamples, baseMPP: 0.25, parameters: .init()) == (2, 4))
        let mask = try TissueMask.compute(slide: slide, resolution: resolution)
        #expect(mask.micronsPerPixel == 8 && mask.level0PixelsPerPixel == 32)
        #expect(mask.width == 32 && mask.height == 24)
        // The ellipse (centre 500, 380; semi-axes 300 × 200 level-0 pixels) is tissue at its centre.
        #expect(mask.hasTissue(level0X: 490, y: 370, width: 20, height: 20, minimumFraction: 1))
        #expect(!mask.hasTissue(level0X: 0, y: 0, width: 64, height: 64))
    }

    @Test("the level read is the one nearest 8 µm/px on a log scale (the finer of two as near), averaged down to it")
    func readPlans() {
        let parameters = TissueMask.Parameters()
        #expect(TissueMask.readPlan(downsamples: [1, 4, 16], baseMPP: 0.5, parameters: parameters) == (2, 1))
        #expect(TissueMask.readPlan(downsamples: [1, 4], baseMPP: 0.5, parameters: parameters) == (1, 4))
        #expect(TissueMask.readPlan(downsamples: [1], baseMPP: 0.5, parameters: parameters) == (0, 16))
        // 4 and 16 µm/px are as near as each other to 8: the finer one.
        #expect(TissueMask.readPlan(downsamples: [1, 4, 16, 64], baseMPP: 0.25, parameters: parameters) == (2, 2))
        // 2 µm/px is 4× finer, 16 µm/px 2× coarser: the coarser one is nearer, read as it is (a 16 µm/px mask).
        #expect(TissueMask.readPlan(downsamples: [1, 4, 32], baseMPP: 0.5, parameters: parameters) == (2, 1))
    }

    @Test("a huge slide's mask is made coarser to stay within maximumPixels, and read from its nearest level")
    func boundedMask() {
        let parameters = TissueMask.Parameters()
        // A 75 × 50 mm slide at 0.5 µm/px: 59 Mi mask pixels at 8 µm/px, within 64 Mi.
        #expect(
            TissueMask.maskResolution(
                baseMPP: 0.5, parameters: parameters, level0Width: 150_000, level0Height: 100_000) == 8)
        // The issue's header: 10⁶ × 10⁶ px at 0.5 µm/px with levels of downsample 1 and 1024. Unbounded, the mask
        // would be 62,500² px at 8 µm read from level 0; bounded, it is about 61 µm/px, and the 512 µm/px level is
        // nearer than level 0 (log 8.3 < log 122): 976² pixels are read, not 10¹².
        let resolution = TissueMask.maskResolution(
            baseMPP: 0.5, parameters: parameters, level0Width: 1_000_000, level0Height: 1_000_000)
        #expect(abs(resolution - 500_000 / Double(1 << 13)) < 1e-9)
        #expect(
            TissueMask.readPlan(
                downsamples: [1, 1024.0], baseMPP: 0.5, parameters: parameters, level0Width: 1_000_000,
                level0Height: 1_000_000) == (1, 1))
    }

    @Test("tissue detection stops within one piece when asked, with slide.cancelled")
    func cancelled() throws {
        let slide = try Slide(path: SlideFixtures.path("ellipses-20x.tiff"))
        let resolution = try SlideResolution(slide: slide)
        var parameters = TissueMask.Parameters()
        parameters.level = 0
        parameters.maximumReadSide = 256
        var asked = 0
        let error = #expect(throws: SlideError.self) {
            _ = try TissueMask.compute(slide: slide, resolution: resolution, parameters: parameters) {
                asked += 1
                return asked > 3
            }
        }
        #expect(error?.code == .cancelled)
        #expect(asked == 4, "stopped at the first piece after the request")
        // And the median filter, which a large mask spends seconds in, stops between rows.
        var rows = 0
        let filtered = MedianFilter.apply(
            [UInt8](repeating: 0, count: 64 * 64), width: 64, height: 64, kernel: 3,
            shouldStop: {
                rows += 1
                return rows > 10
            })
        #expect(filtered == nil && rows == 11)
    }

    @Test("the median kernel is 118 µm as an odd pixel count, at least 3")
    func medianKernel() {
        #expect(TissueMask.medianKernel(microns: 118, micronsPerPixel: 2) == 59)
        #expect(TissueMask.medianKernel(microns: 118, micronsPerPixel: 8) == 15)
        #expect(TissueMask.medianKernel(microns: 118, micronsPerPixel: 4) == 29)
        #expect(TissueMask.medianKernel(microns: 118, micronsPerPixel: 100) == 3)
    }

    @Test("saturation follows OpenCV's 8-bit HSV")
    func saturation() {
        #expect(TissueMask.saturation(red: 255, green: 0, blue: 0) == 255)
        #expect(TissueMask.saturation(red: 0, green: 0, blue: 0) == 0)
        #expect(TissueMask.saturation(red: 128, green: 128, blue: 128) == 0)
        #expect(TissueMask.saturation(red: 200, green: 100, blue: 100) == 128)
        #expect(TissueMask.saturation(red: 243, green: 241, blue: 247) == 6)
    }

    @Test("tissue fraction and the PNG for the report")
    func fractionAndPNG() {
        var pixels = [UInt8](repeating: 0, count: 8 * 4)
        for y in 0..<2 { for x in 0..<4 { pixels[y * 8 + x] = 1 } }
        let mask = TissueMask(width: 8, height: 4, micronsPerPixel: 8, level0PixelsPerPixel: 16, pixels: pixels)
        #expect(mask.tissueFraction(level0X: 0, y: 0, width: 64, height: 32) == 1)
        #expect(mask.tissueFraction(level0X: 0, y: 0, width: 128, height: 64) == 0.25)
        #expect(mask.tissueFraction(level0X: 1000, y: 0, width: 64, height: 64) == 0)
        #expect(mask.hasTissue(level0X: 48, y: 16, width: 32, height: 32))  // one tissue pixel of four
        #expect(!mask.hasTissue(level0X: 48, y: 16, width: 32, height: 32, minimumFraction: 0.5))
        #expect(abs(mask.tissueArea - 8 * 64e-6) < 1e-12)
        let png = mask.png()
        #expect(png.width == 8 && png.height == 4)
        #expect(Array(png.pixels[0..<3]) == [255, 255, 255])
        #expect(Array(png.pixels[(3 * 8 + 7) * 3..<(3 * 8 + 7) * 3 + 3]) == [0, 0, 0])
    }
}

@Suite("MedianFilter and Contours")
struct MaskFilterTests {
    /// Median with a square window and replicated borders, counting every window from scratch.
    private func bruteForceMedian(_ image: [UInt8], width: Int, height: Int, kernel: Int) -> [UInt8] {
        let radius = kernel / 2
        var output = [UInt8](repeating: 0, count: image.count)
        for y in 0..<height {
            for x in 0..<width {
                var counts = [Int](repeating: 0, count: 256)
                for dy in -radius...radius {
                    for dx in -radius...radius {
                        let yy = min(max(y + dy, 0), height - 1)
                        let xx = min(max(x + dx, 0), width - 1)
                        counts[Int(image[yy * width + xx])] += 1
                    }
                }
                // The middle of kernel² sorted values.
                var remaining = kernel * kernel / 2
                var value = 0
                while remaining >= counts[value] {
                    remaining -= counts[value]
                    value += 1
                }
                output[y * width + x] = UInt8(value)
            }
        }
        return output
    }

    @Test("the histogram median equals a brute-force median on random images", arguments: [1, 3, 5, 9, 15, 59])
    func medianMatchesBruteForce(kernel: Int) {
        var generator = SplitMix(seed: UInt64(kernel))
        for (width, height) in [(37, 23), (1, 9), (16, 1), (64, 40)] {
            // Random bytes, and a low-entropy image (ties everywhere).
            for levels in [256, 3] {
                let image = (0..<(width * height)).map { _ in UInt8(generator.next() % UInt64(levels)) }
                let fast = MedianFilter.apply(image, width: width, height: height, kernel: kernel)
                #expect(fast == bruteForceMedian(image, width: width, height: height, kernel: kernel))
            }
        }
    }

    /// Draws a mask from rows of characters: `#` foreground, anything else background.
    private func mask(_ rows: [String]) -> (pixels: [UInt8], width: Int, height: Int) {
        let width = rows[0].count
        return (rows.flatMap { $0.map { $0 == "#" ? UInt8(1) : 0 } }, width, rows.count)
    }

    @Test("components are kept by area, holes above the threshold stay open, islands in holes survive")
    func contourFiltering() {
        let drawing = mask([
            "..............#.",
            ".##########.....",
            ".#........#.....",
            ".#..###...#.....",
            ".#..###...#..#..",
            ".#........#.....",
            ".#.....#..#.....",
            ".##########.....",
            "....###.........",
            "....#.#.........",
            "....###.........",
        ])
        let filtered = Contours.filter(
            drawing.pixels, width: drawing.width, height: drawing.height, minimumArea: 5, minimumHoleArea: 8,
            maximumHoles: 8)
        let expected = mask([
            "................",  // speck (1 px) removed
            ".##########.....",
            ".#........#.....",  // the ring's big hole stays open
            ".#..###...#.....",  // the 6-px island inside it is kept
            ".#..###...#.....",  // speck removed
            ".#........#.....",
            ".#.....#..#.....",  // the 1-px island inside the hole is removed
            ".##########.....",
            "....###.........",
            "....###.........",  // the small ring's 1-px hole is filled
            "....###.........",
        ])
        #expect(filtered == expected.pixels)
    }

    @Test("only the largest holes stay open")
    func holeLimit() {
        // A 19 × 3 block with four holes of 1, 2, 3 and 4 pixels.
        let drawing = mask([
            "###################",
            "#.##..##...##....##",
            "###################",
        ])
        let filtered = Contours.filter(
            drawing.pixels, width: drawing.width, height: drawing.height, minimumArea: 0, minimumHoleArea: 0,
            maximumHoles: 2)
        let expected = mask([
            "###################",
            "########...##....##",
            "###################",
        ])
        #expect(filtered == expected.pixels)
    }

    @Test("connectivity: diagonal foreground joins, diagonal background does not")
    func connectivity() {
        let drawing = mask([
            "#.#",
            ".#.",
            "#.#",
        ])
        let labels = Contours.label(drawing.pixels, width: 3, height: 3)
        #expect(labels.nodes.filter(\.foreground).count == 1)
        #expect(labels.nodes.filter { !$0.foreground }.count == 4)
    }
}

/// A small deterministic generator for test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
