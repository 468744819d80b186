import COpenSlide
import Foundation
import Images
import Testing

@testable import Ingest
@testable import SyntheticSlides

/// A slide opened with libopenslide directly (the Swift wrapper lives elsewhere); enough to
/// check what a synthetic slide looks like to OpenSlide.
private final class OpenSlideProbe {
    let handle: OpaquePointer

    init(_ path: String) throws {
        handle = try #require(openslide_open(path), "OpenSlide does not recognise \(path)")
        if let error = openslide_get_error(handle) {
            Issue.record("OpenSlide error on \(path): \(String(cString: error))")
        }
    }

    deinit { openslide_close(handle) }

    var levelCount: Int { Int(openslide_get_level_count(handle)) }

    func dimensions(_ level: Int) -> (width: Int, height: Int) {
        var width: Int64 = 0
        var height: Int64 = 0
        openslide_get_level_dimensions(handle, Int32(level), &width, &height)
        return (Int(width), Int(height))
    }

    func downsample(_ level: Int) -> Double { openslide_get_level_downsample(handle, Int32(level)) }

    func property(_ name: String) -> String? {
        openslide_get_property_value(handle, name).map { String(cString: $0) }
    }

    var associatedImages: [String] {
        guard var names = openslide_get_associated_image_names(handle) else { return [] }
        var result = [String]()
        while let name = names.pointee {
            result.append(String(cString: name))
            names += 1
        }
        return result
    }

    /// RGB of a region (OpenSlide's premultiplied ARGB; these slides are opaque everywhere).
    func read(x: Int, y: Int, level: Int, width: Int, height: Int) -> [UInt8] {
        var argb = [UInt32](repeating: 0, count: width * height)
        openslide_read_region(handle, &argb, Int64(x), Int64(y), Int32(level), Int64(width), Int64(height))
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for (index, pixel) in argb.enumerated() {
            rgb[3 * index] = UInt8((pixel >> 16) & 0xFF)
            rgb[3 * index + 1] = UInt8((pixel >> 8) & 0xFF)
            rgb[3 * index + 2] = UInt8(pixel & 0xFF)
        }
        return rgb
    }
}

/// A temporary folder removed when the value goes away.
private final class Scratch {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("csmil-synth-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

/// The mean absolute difference per channel value.
private func meanAbsoluteError(_ a: [UInt8], _ b: [UInt8]) -> Double {
    precondition(a.count == b.count)
    var total = 0
    for index in a.indices { total += abs(Int(a[index]) - Int(b[index])) }
    return Double(total) / Double(a.count)
}

/// `factor` × `factor` box means of an RGB image.
private func boxMean(_ pixels: [UInt8], width: Int, height: Int, factor: Int) -> [UInt8] {
    let outWidth = width / factor
    let outHeight = height / factor
    var out = [UInt8](repeating: 0, count: outWidth * outHeight * 3)
    for y in 0..<outHeight {
        for x in 0..<outWidth {
            for channel in 0..<3 {
                var sum = 0
                for dy in 0..<factor {
                    for dx in 0..<factor {
                        sum += Int(pixels[((y * factor + dy) * width + x * factor + dx) * 3 + channel])
                    }
                }
                out[(y * outWidth + x) * 3 + channel] = UInt8((sum + factor * factor / 2) / (factor * factor))
            }
        }
    }
    return out
}

@Suite("Synthetic slides (csmil synth)")
struct SyntheticSlideTests {
    @Test(
        "OpenSlide opens both flavours at 20x and 40x with the written levels, MPP and magnification",
        arguments: [SyntheticSlide.Format.svs, .tiff], [20, 40])
    func openSlideReadsMetadata(format: SyntheticSlide.Format, magnification: Int) throws {
        let scratch = try Scratch()
        let path = scratch.path(format == .svs ? "slide.svs" : "slide.tif")
        let slide = try SyntheticSlide(
            .init(width: 4096, height: 3072, magnification: magnification, seed: 3, format: format))
        let written = try slide.write(to: path)
        let probe = try OpenSlideProbe(path)
        let mpp = magnification == 20 ? 0.5 : 0.25

        let expected: [(Int, Int)] =
            format == .svs
            ? [(4096, 3072), (1024, 768), (256, 192)]
            : [(4096, 3072), (2048, 1536), (1024, 768), (512, 384)]
        #expect(probe.levelCount == expected.count)
        for (level, size) in expected.enumerated() where level < probe.levelCount {
            #expect(probe.dimensions(level) == size, "level \(level)")
            #expect(abs(probe.downsample(level) - Double(4096 / size.0)) < 1e-6, "level \(level)")
        }
        #expect(written.truth.levels.map(\.width) == expected.map(\.0))

        switch format {
        case .svs:
            #expect(probe.property("openslide.vendor") == "aperio")
            #expect(probe.property("aperio.AppMag") == "\(magnification)")
            #expect(probe.property("aperio.MPP").flatMap(Double.init) == mpp)
            #expect(probe.property("openslide.mpp-x").flatMap(Double.init) == mpp)
            #expect(probe.property("openslide.mpp-y").flatMap(Double.init) == mpp)
            #expect(probe.property("openslide.objective-power") == "\(magnification)")
            #expect(probe.associatedImages == ["thumbnail"])
            #expect(probe.property("tiff.ImageDescription")?.hasPrefix("Aperio Image Library") == true)
        case .tiff:
            #expect(probe.property("openslide.vendor") == "generic-tiff")
            // OpenSlide 3.4 reports the resolution tags; 4.0 also turns them into openslide.mpp-x.
            #expect(probe.property("tiff.ResolutionUnit") == "centimeter")
            let resolution = try #require(probe.property("tiff.XResolution").flatMap(Double.init))
            #expect(abs(10_000 / resolution - mpp) < 1e-9)
            if let reported = probe.property("openslide.mpp-x").flatMap(Double.init) {
                #expect(abs(reported - mpp) < 1e-6)
            }
        }
    }

    @Test(
        "pixels read back through OpenSlide match the painted content", arguments: [SyntheticSlide.Format.svs, .tiff])
    func regionsMatchContent(format: SyntheticSlide.Format) throws {
        let scratch = try Scratch()
        let path = scratch.path(format == .svs ? "slide.svs" : "slide.tif")
        let slide = try SyntheticSlide(
            .init(
                width: 4096, height: 4096, seed: 11, tissueFraction: 0.6, anomaly: .micro, positiveFraction: 0.5,
                format: format))
        try slide.write(to: path)
        let probe = try OpenSlideProbe(path)
        // A 768-pixel square around a tissue boundary point (tissue and background both present).
        let mask = slide.truthMask()
        var origin = (x: 1024, y: 1024)
        search: for y in stride(from: 0, to: mask.height, by: 4) {
            for x in 1..<mask.width
            where mask.pixels[(y * mask.width + x) * 3] != mask.pixels[(y * mask.width + x - 1) * 3] {
                origin = (max(0, min(4096 - 768, x * 16 - 384)), max(0, min(4096 - 768, y * 16 - 384)))
                break search
            }
        }
        let painted = slide.render(x: origin.x, y: origin.y, width: 768, height: 768)
        let level0 = probe.read(x: origin.x, y: origin.y, level: 0, width: 768, height: 768)
        let error0 = meanAbsoluteError(painted, level0)
        #expect(error0 < 6, "level 0 mean absolute error \(error0)")
        #expect(painted.contains { $0 < 200 } && painted.contains { $0 == 255 })

        // The coarsest level is the box mean of level 0 (aligned to its downsample).
        let level = probe.levelCount - 1
        let factor = Int(probe.downsample(level).rounded())
        let x = origin.x / factor * factor
        let y = origin.y / factor * factor
        let span = 768 / factor * factor
        let expected = boxMean(
            slide.render(x: x, y: y, width: span, height: span), width: span, height: span, factor: factor)
        let coarse = probe.read(x: x, y: y, level: level, width: span / factor, height: span / factor)
        // Every coarse pixel is detail (nuclei, disc edges), so JPEG loses more there than at level 0.
        let errorCoarse = meanAbsoluteError(expected, coarse)
        #expect(errorCoarse < 9, "level \(level) mean absolute error \(errorCoarse)")
        let bias = zip(expected, coarse).reduce(0) { $0 + Int($1.0) - Int($1.1) }
        #expect(abs(Double(bias) / Double(coarse.count)) < 1.5, "level \(level) is the box mean, not shifted or scaled")
    }

    @Test("the truth mask's tissue fraction matches the request and the painted tissue", arguments: [0.15, 0.5, 0.8])
    func tissueFractionMatches(requested: Double) throws {
        let scratch = try Scratch()
        let path = scratch.path("slide.svs")
        let slide = try SyntheticSlide(.init(width: 4096, height: 4096, seed: 5, tissueFraction: requested))
        let written = try slide.write(to: path)
        let mask = try RGBImage(contentsOfFile: written.truthMask)
        #expect(mask.width == 256 && mask.height == 256)
        let tissue = stride(from: 0, to: mask.pixels.count, by: 3).filter { mask.pixels[$0] == 255 }.count
        let fraction = Double(tissue) / Double(mask.width * mask.height)
        #expect(abs(fraction - requested) < 0.02, "mask fraction \(fraction) for \(requested)")
        #expect(abs(written.truth.tissueFraction - fraction) < 1e-9)

        // Level 2 (downsample 16) lines up with the mask: non-white where the mask says tissue.
        let probe = try OpenSlideProbe(path)
        #expect(probe.dimensions(2) == (256, 256))
        let coarse = probe.read(x: 0, y: 0, level: 2, width: 256, height: 256)
        var agree = 0
        for index in 0..<(256 * 256) {
            let painted = min(coarse[3 * index], coarse[3 * index + 1], coarse[3 * index + 2]) < 235
            if painted == (mask.pixels[3 * index] == 255) { agree += 1 }
        }
        #expect(Double(agree) / 65_536 > 0.98, "agreement \(agree) of 65536")
    }

    @Test("the same seed writes the same bytes; another seed does not")
    func deterministic() throws {
        let scratch = try Scratch()
        let configuration = SyntheticSlide.Configuration(
            width: 2048, height: 1536, seed: 42, anomaly: .macro, positiveFraction: 1)
        var other = configuration
        other.seed = 43
        for (folder, config) in [("a", configuration), ("b", configuration), ("c", other)] {
            try FileManager.default.createDirectory(atPath: scratch.path(folder), withIntermediateDirectories: false)
            try SyntheticSlide(config).write(to: scratch.path("\(folder)/slide.svs"))
        }
        func contents(_ folder: String, _ suffix: String) throws -> Data {
            try Data(contentsOf: URL(fileURLWithPath: scratch.path("\(folder)/slide\(suffix)")))
        }
        for suffix in [".svs", ".truth.png", ".truth.json"] {
            #expect(try contents("a", suffix) == contents("b", suffix), "\(suffix) differs between runs with one seed")
        }
        #expect(try contents("a", ".svs") != contents("c", ".svs"))
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: scratch.path("a")).sorted() == [
                "slide.svs", "slide.truth.json", "slide.truth.png",
            ])
    }

    @Test("a tissue fraction of 0 gives a blank white slide and an empty mask")
    func blankSlide() throws {
        let slide = try SyntheticSlide(.init(width: 1000, height: 700, tissueFraction: 0))
        #expect(slide.tissueFraction == 0)
        #expect(slide.render(x: 0, y: 0, width: 1000, height: 700).allSatisfy { $0 == 255 })
        #expect(slide.truthMask().pixels.allSatisfy { $0 == 0 })
    }

    @Test("micro crosses show at 20x and average away at 10x (2 × 2 mean) and 5x (central 2 × 2 of 4 × 4)")
    func microCrossesVanishWhenDownsampled() throws {
        let slide = try SyntheticSlide(
            .init(width: 4096, height: 4096, seed: 9, tissueFraction: 0.9, anomaly: .micro, positiveFraction: 1))
        let painter = TissuePainter(slide: slide)
        let cell = TissuePainter.discCell
        var checked = 0
        for cellY in 0..<(4096 / cell) {
            for cellX in 0..<(4096 / cell) where checked < 5 {
                let disc = painter.disc(cellX: cellX, cellY: cellY)
                guard disc.cross else { continue }
                // A 32-pixel window aligned to 4 around a disc inside tissue; compare it with and
                // without the cross (its checkerboard pixels repainted in the disc colour).
                let x0 = (disc.centerX - 16) / 4 * 4
                let y0 = (disc.centerY - 16) / 4 * 4
                let with = slide.render(x: x0, y: y0, width: 32, height: 32)
                func color(_ index: Int) -> [UInt8] { Array(with[(3 * index)..<(3 * index + 3)]) }
                guard !(0..<(32 * 32)).contains(where: { color($0) == [255, 255, 255] }) else { continue }
                var plain = with
                for index in 0..<(32 * 32) where color(index) == [255, 224, 255] || color(index) == [1, 0, 33] {
                    plain[3 * index] = 128
                    plain[3 * index + 1] = 112
                    plain[3 * index + 2] = 144
                }
                #expect(with != plain, "the cross is visible at 20x")
                #expect(
                    boxMean(with, width: 32, height: 32, factor: 2) == boxMean(plain, width: 32, height: 32, factor: 2))
                func fiveX(_ image: [UInt8]) -> [UInt8] {
                    var out = [UInt8]()
                    for y in 0..<8 {
                        for x in 0..<8 {
                            for channel in 0..<3 {
                                let sum = [(1, 1), (1, 2), (2, 1), (2, 2)].reduce(0) {
                                    $0 + Int(image[((4 * y + $1.0) * 32 + 4 * x + $1.1) * 3 + channel])
                                }
                                out.append(UInt8(sum / 4))
                            }
                        }
                    }
                    return out
                }
                let fiveWith = fiveX(with)
                let fivePlain = fiveX(plain)
                let worst = zip(fiveWith, fivePlain).map { abs(Int($0) - Int($1)) }.max() ?? 0
                // Only where an arm ends mid-window does a quarter of a checker step survive.
                #expect(meanAbsoluteError(fiveWith, fivePlain) < 2, "5x differs by up to \(worst)")
                checked += 1
            }
        }
        #expect(checked == 5)
    }

    @Test("macro rings: ellipses in positive regions, circles in negative ones, larger than a 20x tile")
    func macroRings() throws {
        let slide = try SyntheticSlide(
            .init(width: 8192, height: 8192, seed: 2, tissueFraction: 0.7, anomaly: .macro, positiveFraction: 0.5))
        let positives = slide.regions.filter(\.positive).count
        let bearing = slide.regions.filter { $0.tissueFraction >= 0.05 }.count
        #expect(positives == Int((0.5 * Double(bearing)).rounded()))
        #expect(slide.rings.count >= bearing, "a ring per 512-µm cell of tissue")
        for ring in slide.rings {
            #expect(ring.positive ? ring.semiMinor < 0.6 * ring.semiMajor : ring.semiMinor == ring.semiMajor)
            // Longer than a 20x tile (a tile never holds a whole ring, only arcs), shorter than a 5x view.
            #expect(2 * ring.semiMajor > 2 * 256 && 2 * ring.semiMajor <= 1024, "an arc per tile, whole at 5x")
            #expect(2 * ring.semiMinor > 200)
            // The band is dark where the outline crosses the major axis.
            let x = Int(ring.centerX + (ring.semiMajor - ring.thickness / 2) * cos(ring.angle))
            let y = Int(ring.centerY + (ring.semiMajor - ring.thickness / 2) * sin(ring.angle))
            let pixel = slide.render(x: x, y: y, width: 1, height: 1)
            if slide.tissue.contains(Double(x) + 0.5, Double(y) + 0.5) { #expect(pixel.max()! < 110) }
        }
        #expect(slide.isPositive)
        let negative = try SyntheticSlide(
            .init(width: 8192, height: 8192, seed: 2, tissueFraction: 0.7, anomaly: .macro))
        #expect(!negative.isPositive && negative.rings.allSatisfy { !$0.positive })
    }

    @Test("options out of range are refused with a stable code")
    func invalidOptions() {
        for configuration in [
            SyntheticSlide.Configuration(width: 0, height: 10),
            SyntheticSlide.Configuration(width: 10, height: 10, magnification: 10),
            SyntheticSlide.Configuration(width: 10, height: 10, tissueFraction: 1.5),
            SyntheticSlide.Configuration(width: 10, height: 10, quality: 0),
        ] {
            #expect(throws: SyntheticSlideError.self) { try SyntheticSlide(configuration) }
            do {
                _ = try SyntheticSlide(configuration)
            } catch {
                #expect(error.code == .invalidOption)
            }
        }
    }

    @Test("a folder that does not exist is a write error naming the file")
    func unwritableFolder() throws {
        let slide = try SyntheticSlide(.init(width: 512, height: 512))
        do {
            try slide.write(to: "/nonexistent-csmil/slide.svs")
            Issue.record("wrote into a missing folder")
        } catch {
            #expect(error.code == .writeFailed)
            #expect(error.description.contains("/nonexistent-csmil/slide.svs"))
        }
    }
}
