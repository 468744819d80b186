import Foundation
import Images
import SyntheticSlides
import Testing

@testable import Ingest

@Suite("Slide: the OpenSlide wrapper")
struct SlideTests {
    @Test("a generic tiled TIFF opens with its levels, downsamples and properties")
    func opensLevelsAndProperties() throws {
        let slide = try Slide(path: SlideFixtures.path("ellipses-20x.tiff"))
        #expect(slide.vendor == "generic-tiff")
        #expect(slide.levelCount == 3)
        #expect(slide.dimensions(level: 0) == (3072, 2048))
        #expect(slide.dimensions(level: 1) == (768, 512))
        #expect(slide.dimensions(level: 2) == (192, 128))
        #expect(slide.downsamples == [1, 4, 16])
        #expect(slide.downsample(level: 2) == 16)
        #expect(slide.properties["tiff.ResolutionUnit"] == "centimeter")
        #expect(slide.properties["openslide.vendor"] == "generic-tiff")
        #expect(slide.associatedImageNames.isEmpty)
        #expect(slide.bestLevel(forDownsample: 0.5) == 0)
        #expect(slide.bestLevel(forDownsample: 5) == 1)
        #expect(slide.bestLevel(forDownsample: 16) == 2)
        #expect(slide.bestLevel(forDownsample: 100) == 2)
    }

    @Test("a level-0 region reads back exactly the pixels that were written")
    func regionEqualsWrittenPixels() throws {
        let slide = try Slide(path: SlideFixtures.path("ellipses-20x.tiff"))
        let expected = try RGBImage(contentsOfFile: SlideFixtures.path("ellipses-20x-region.png"))
        let region = try slide.readRegion(x: 1000, y: 600, level: 0, width: 64, height: 64)
        #expect(region == expected.pixels)
    }

    @Test("pixels outside the slide come back white")
    func outsideIsWhite() throws {
        let slide = try Slide(path: SlideFixtures.path("ellipses-20x.tiff"))
        let region = try slide.readRegion(x: -32, y: -32, level: 0, width: 64, height: 64)
        let inside = try slide.readRegion(x: 0, y: 0, level: 0, width: 32, height: 32)
        for y in 0..<64 {
            for x in 0..<64 {
                let pixel = Array(region[(y * 64 + x) * 3..<(y * 64 + x) * 3 + 3])
                if x < 32 || y < 32 {
                    #expect(pixel == [255, 255, 255])
                } else {
                    let index = ((y - 32) * 32 + x - 32) * 3
                    #expect(pixel == Array(inside[index..<index + 3]))
                }
            }
        }
        let far = try slide.readRegion(x: 10_000, y: 10_000, level: 1, width: 8, height: 8)
        #expect(far.allSatisfy { $0 == 255 })
    }

    @Test("reading into reused buffers gives the same pixels as the allocating read")
    func reusedBuffers() throws {
        let slide = try Slide(path: SlideFixtures.path("ellipses-20x.tiff"))
        var scratch: [UInt32] = []
        var buffer = [UInt8](repeating: 0, count: 300 * 200 * 3)
        for (x, y) in [(0, 0), (800, 400), (2900, 1900)] {
            try buffer.withUnsafeMutableBufferPointer { rgb in
                try slide.readRegion(x: x, y: y, level: 1, width: 300, height: 200, into: rgb, scratch: &scratch)
            }
            #expect(buffer == (try slide.readRegion(x: x, y: y, level: 1, width: 300, height: 200)))
        }
        #expect(scratch.count == 300 * 200)
    }

    @Test("premultiplied ARGB is divided by alpha; transparent pixels become white")
    func premultipliedAlpha() {
        let argb: [UInt32] = [0x0000_0000, 0xFF10_2030, 0x8040_2000, 0x80FF_FFFF, 0x0112_3456]
        var rgb = [UInt8](repeating: 0, count: argb.count * 3)
        argb.withUnsafeBufferPointer { source in
            rgb.withUnsafeMutableBufferPointer { Slide.convertPremultipliedARGB(source, to: $0) }
        }
        #expect(Array(rgb[0..<3]) == [255, 255, 255])  // transparent
        #expect(Array(rgb[3..<6]) == [0x10, 0x20, 0x30])  // opaque, unchanged
        #expect(Array(rgb[6..<9]) == [127, 63, 0])  // 64 × 255 / 128, 32 × 255 / 128
        #expect(Array(rgb[9..<12]) == [255, 255, 255])  // clamped
        #expect(Array(rgb[12..<15]) == [255, 255, 255])  // alpha 1: 0x12 × 255 clamps
    }

    @Test("associated images of an Aperio slide are listed and read as RGB")
    func associatedImages() throws {
        let slide = try Slide(path: SlideFixtures.path("aperio-40x.svs"))
        #expect(slide.vendor == "aperio")
        #expect(Set(slide.associatedImageNames) == ["label", "thumbnail"])
        let label = try slide.associatedImage(name: "label")
        #expect(label.width == 80 && label.height == 60)
        #expect(Array(label.pixels[0..<3]) == [200, 0, 0])
        let centre = (30 * 80 + 40) * 3
        #expect(Array(label.pixels[centre..<centre + 3]) == [10, 20, 30])
        let thumbnail = try slide.associatedImage(name: "thumbnail")
        #expect(thumbnail.width == 128 && thumbnail.height == 96)
        #expect(throws: SlideError.self) { try slide.associatedImage(name: "macro") }
    }

    @Test("a level or region the slide cannot have is refused")
    func invalidRequests() throws {
        let slide = try Slide(path: SlideFixtures.path("blank-20x.tiff"))
        let level = #expect(throws: SlideError.self) {
            try slide.readRegion(x: 0, y: 0, level: 5, width: 4, height: 4)
        }
        #expect(level?.code == .invalidRequest)
        let size = #expect(throws: SlideError.self) {
            try slide.readRegion(x: 0, y: 0, level: 0, width: -1, height: 4)
        }
        #expect(size?.code == .invalidRequest)
    }
}

@Suite("Slide: damaged and wrong inputs")
struct SlideErrorTests {
    private func expectError(_ path: String, _ codes: Set<SlideError.Code>) {
        let error = #expect(throws: SlideError.self) { _ = try Slide(path: path) }
        guard let error else { return }
        #expect(codes.contains(error.code), "\(error)")
        #expect(error.file == path)
        #expect(error.description.contains(path))
        #expect(!error.fix.isEmpty)
    }

    @Test("a missing file and a folder are unreadable")
    func missingAndFolder() throws {
        let folder = try SlideFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        expectError(folder.appendingPathComponent("absent.svs").path, [.unreadable])
        expectError(folder.path, [.unreadable])
    }

    @Test("a zero-byte file is not a slide")
    func zeroBytes() throws {
        let folder = try SlideFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("empty.svs").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        expectError(path, [.notASlide])
    }

    @Test("a PNG renamed .svs is not a slide, and the message lists the formats OpenSlide reads")
    func pngRenamed() throws {
        let folder = try SlideFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("photo.svs").path
        try FileManager.default.copyItem(atPath: SlideFixtures.path("ellipses-20x-truth.png"), toPath: path)
        expectError(path, [.notASlide])
        let error = #expect(throws: SlideError.self) { _ = try Slide(path: path) }
        #expect(error?.fix.contains("Aperio") == true)
    }

    @Test("a truncated TIFF is refused")
    func truncated() throws {
        let folder = try SlideFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = try Data(contentsOf: URL(fileURLWithPath: SlideFixtures.path("ellipses-20x.tiff")))
        for fraction in [0.05, 0.5, 0.95] {
            let path = folder.appendingPathComponent("cut-\(fraction).tiff").path
            try data.prefix(Int(Double(data.count) * fraction)).write(to: URL(fileURLWithPath: path))
            expectError(path, [.notASlide, .openSlideError])
        }
    }

    @Test("damaged tile data fails the read with OpenSlide's message, and every later read too")
    func damagedTiles() throws {
        let folder = try SlideFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        var data = try Data(contentsOf: URL(fileURLWithPath: SlideFixtures.path("ellipses-20x.tiff")))
        for index in 2000..<60000 { data[index] = UInt8(truncatingIfNeeded: index &* 7) }
        let path = folder.appendingPathComponent("damaged.tiff").path
        try data.write(to: URL(fileURLWithPath: path))
        let slide = try Slide(path: path)
        let first = #expect(throws: SlideError.self) {
            _ = try slide.readRegion(x: 0, y: 0, level: 0, width: 3072, height: 2048)
        }
        #expect(first?.code == .openSlideError)
        #expect(first?.file == path)
        let later = #expect(throws: SlideError.self) {
            _ = try slide.readRegion(x: 0, y: 0, level: 2, width: 4, height: 4)
        }
        #expect(later?.code == .openSlideError)
    }
}

@Suite("Slides whose header declares an impossible size")
struct ImplausibleSizeTests {
    @Test("a few hundred kB declaring 10⁶ × 10⁶ px at 0.5 µm/px opens, and is refused when its resolution is decided")
    func headerBomb() throws {
        let folder = try SlideFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("bomb.tif").path
        try DeclaredSizeSlide(levels: [(1_000_000, 1_000_000), (976, 976)], micronsPerPixel: 0.5).write(to: path)
        let slide = try Slide(path: path)
        #expect(slide.dimensions(level: 0) == (1_000_000, 1_000_000) && slide.levelCount == 2)
        let error = #expect(throws: SlideError.self) { _ = try SlideResolution(slide: slide) }
        #expect(error?.code == .implausibleSize)
        #expect(error?.message.contains("500 × 500 mm") == true, "\(String(describing: error))")
        #expect(error?.file == path)
    }

    @Test("the glass-slide bound: whole-mount slides pass, anything larger is refused naming its size")
    func glassSlideBound() throws {
        // 75 × 25 mm and 127 × 102 mm (5 × 4 inches) at 0.25 µm/px.
        try GlassSlide.checkSize(width: 300_000, height: 100_000, mpp: 0.25, source: "test", file: "a")
        try GlassSlide.checkSize(width: 408_000, height: 508_000, mpp: 0.25, source: "test", file: "b")
        let tooLong = #expect(throws: SlideError.self) {
            try GlassSlide.checkSize(width: 600_000, height: 100_000, mpp: 0.25, source: "openslide.mpp-x", file: "c")
        }
        #expect(tooLong?.code == .implausibleSize)
        #expect(
            tooLong?.message
                == "declares 600000 × 100000 pixels of 0.25 µm (from openslide.mpp-x), that is 150 × 25 mm; a glass slide holds at most 130 × 105 mm"
        )
        #expect(throws: SlideError.self) {
            try GlassSlide.checkSize(width: 440_000, height: 440_000, mpp: 0.25, source: "test", file: "d")
        }
    }

    @Test("a region or an associated image larger than the bound is refused before it is allocated")
    func boundedReads() throws {
        let slide = try Slide(path: SlideFixtures.path("ellipses-20x.tiff"))
        let huge = #expect(throws: SlideError.self) {
            _ = try slide.readRegion(x: 0, y: 0, level: 0, width: 1 << 40, height: 1 << 40)
        }
        #expect(huge?.code == .invalidRequest)
    }
}
