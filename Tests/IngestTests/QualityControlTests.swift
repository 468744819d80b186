import Foundation
import Testing

@testable import Ingest

/// QC's pixel measures and the slide verdict on tiles made here: H&E-like texture (pink to purple, grain, nuclei),
/// the same blurred, folded (transmittance squared), made pale, or inked. The measurement against painted slides
/// and their truth is `csmil bench qc` (Tests/DaemonTests/QualityControlTests.swift).
@Suite("QC: tile measures and the slide verdict")
struct QualityControlTests {
    static let side = 256

    /// SplitMix64, seeded.
    struct Random: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func uniform(_ range: ClosedRange<Double>) -> Double { Double.random(in: range, using: &self) }
    }

    /// An H&E-like tile: value noise between eosin pink and haematoxylin purple, ±7 grain, dark nuclei.
    static func texture(seed: UInt64) -> [UInt8] {
        var random = Random(state: seed &* 7919 &+ 99)
        var pixels = [UInt8](repeating: 0, count: side * side * 3)
        let nuclei = (0..<40).map { _ in
            (x: random.uniform(0...Double(side)), y: random.uniform(0...Double(side)), r: random.uniform(4...7))
        }
        for y in 0..<side {
            for x in 0..<side {
                let t = 0.5 + 0.5 * sin(Double(x) / 23 + Double(seed)) * cos(Double(y) / 31)
                var colour = (240 - 42 * t, 172 - 46 * t, 208 - 20 * t)
                if nuclei.contains(where: { hypot($0.x - Double(x), $0.y - Double(y)) <= $0.r }) {
                    colour = (74, 42, 112)
                }
                let grain = Double(Int(random.next() % 15) - 7)
                let index = (y * side + x) * 3
                pixels[index] = UInt8(min(max(colour.0 + grain, 0), 255))
                pixels[index + 1] = UInt8(min(max(colour.1 + grain, 0), 255))
                pixels[index + 2] = UInt8(min(max(colour.2 + grain, 0), 255))
            }
        }
        return pixels
    }

    /// A Gaussian blur of σ pixels (separable, clamped at the edges).
    static func blurred(_ pixels: [UInt8], sigma: Double) -> [UInt8] {
        let radius = Int((3 * sigma).rounded(.up))
        let weights = (-radius...radius).map { exp(-Double($0 * $0) / (2 * sigma * sigma)) }
        let total = weights.reduce(0, +)
        func pass(_ input: [Double], horizontal: Bool) -> [Double] {
            var output = [Double](repeating: 0, count: input.count)
            for y in 0..<side {
                for x in 0..<side {
                    for channel in 0..<3 {
                        var sum = 0.0
                        for (offset, weight) in weights.enumerated() {
                            let shift = offset - radius
                            let sx = horizontal ? min(max(x + shift, 0), side - 1) : x
                            let sy = horizontal ? y : min(max(y + shift, 0), side - 1)
                            sum += weight * input[(sy * side + sx) * 3 + channel]
                        }
                        output[(y * side + x) * 3 + channel] = sum / total
                    }
                }
            }
            return output
        }
        return pass(pass(pixels.map(Double.init), horizontal: true), horizontal: false).map {
            UInt8(min(max($0.rounded(), 0), 255))
        }
    }

    static func measure(_ pixels: [UInt8]) -> TileQuality {
        var density = [UInt16](repeating: 0, count: TileQualityMeter.densityBins)
        var focus = [UInt8](repeating: 0, count: TileQualityMeter.focusBins)
        return pixels.withUnsafeBufferPointer { buffer in
            density.withUnsafeMutableBufferPointer { density in
                focus.withUnsafeMutableBufferPointer { focus in
                    TileQualityMeter().measure(
                        buffer.baseAddress!, side: side, histogram: density, focusHistogram: focus)
                }
            }
        }
    }

    @Test("marker inks are ink; H&E's colours, even dark or folded, are not")
    func inkRules() {
        let inks: [(UInt8, UInt8, UInt8)] = [
            (40, 80, 170), (31, 40, 125), (20, 60, 150),  // blue marker, over eosin and haematoxylin
            (40, 140, 80), (30, 120, 60),  // green marker
            (24, 17, 25), (7, 4, 13), (40, 40, 45),  // black marker
        ]
        let stains: [(UInt8, UInt8, UInt8)] = [
            (240, 172, 208), (198, 126, 188), (74, 42, 112),  // eosin, purple, a nucleus
            (57, 50, 132),  // dense haematoxylin (Ruifrok's vector at OD 1)
            (21, 7, 49), (154, 62, 139),  // a nucleus and purple tissue folded (transmittance squared)
            (150, 100, 60), (200, 180, 100),  // brown and yellow pigment
            (245, 245, 245), (255, 255, 255),  // glass
        ]
        for (r, g, b) in inks { #expect(TileQualityMeter.isInk(r, g, b), "(\(r), \(g), \(b)) is ink") }
        for (r, g, b) in stains { #expect(!TileQualityMeter.isInk(r, g, b), "(\(r), \(g), \(b)) is not ink") }
    }

    @Test("focus does not depend on contrast and falls far when the tile is blurred")
    func focus() {
        let sharp = Self.texture(seed: 1)
        let pale = sharp.map { 255 - (255 - $0) / 3 }
        let sharpFocus = Self.measure(sharp).focus
        let paleFocus = Self.measure(pale).focus
        let blurredFocus = Self.measure(Self.blurred(sharp, sigma: 2)).focus
        #expect(sharpFocus > 0.8)
        #expect(abs(paleFocus - sharpFocus) < 0.35 * sharpFocus, "pale \(paleFocus), sharp \(sharpFocus)")
        #expect(blurredFocus < 0.2 * sharpFocus, "blurred \(blurredFocus), sharp \(sharpFocus)")
    }

    /// A slide of `count` tiles of texture with some of them changed.
    static func slide(
        count: Int, change: (Int, [UInt8]) -> [UInt8]
    ) -> SlideQualityMeasurements {
        let measurements = SlideQualityMeasurements(tileCount: count)
        for tile in 0..<count {
            let pixels = change(tile, texture(seed: UInt64(tile % 7)))
            pixels.withUnsafeBufferPointer { measurements.measure($0.baseAddress!, side: side, tile: tile) }
        }
        return measurements
    }

    @Test("blurred, folded and inked tiles are flagged each by its own check; the slide needs review for all three")
    func verdict() {
        let blurredTiles = Set(0..<6)
        let foldedTiles = Set(10..<13)
        let inkedTiles = Set([20, 21])
        let measurements = Self.slide(count: 40) { tile, pixels in
            if blurredTiles.contains(tile) { return Self.blurred(pixels, sigma: 2.5) }
            if foldedTiles.contains(tile) { return pixels.map { UInt8((Int($0) * Int($0) + 127) / 255) } }
            if inkedTiles.contains(tile) {
                // A blue stroke across the middle third.
                var inked = pixels
                for y in 90..<170 {
                    for x in 0..<Self.side {
                        let index = (y * Self.side + x) * 3
                        inked[index] = UInt8(Double(inked[index]) * 0.16)
                        inked[index + 1] = UInt8(Double(inked[index + 1]) * 0.33)
                        inked[index + 2] = UInt8(Double(inked[index + 2]) * 0.72)
                    }
                }
                return inked
            }
            return pixels
        }
        let quality = QualityControl.decide(measurements, settings: QualitySettings(), baseMPP: 0.5)
        for tile in 0..<40 {
            var expected: QualityFlags = []
            if blurredTiles.contains(tile) { expected.insert(.blur) }
            if foldedTiles.contains(tile) { expected.insert(.fold) }
            if inkedTiles.contains(tile) { expected.insert(.pen) }
            #expect(quality.flags[tile] == expected, "tile \(tile): \(quality.flags[tile].names)")
        }
        #expect(quality.excludedCount == 11 && quality.usableCount == 29)
        #expect(quality.fractions[.blur] == 6.0 / 40 && quality.fractions[.pen] == 2.0 / 40)
        // 11 of 40 excluded (> 10 %): every excluded check is named, the largest share first.
        #expect(quality.status == .review && quality.reasons == [.blur, .fold, .pen])
        #expect(
            quality.usableTiles == (0..<40).filter { !(blurredTiles.union(foldedTiles).union(inkedTiles)).contains($0) }
        )
    }

    @Test("a clean slide passes with no tile flagged")
    func clean() {
        let quality = QualityControl.decide(
            Self.slide(count: 30) { $1 }, settings: QualitySettings(), baseMPP: 0.5)
        #expect(quality.flags.allSatisfy { $0.isEmpty })
        #expect(quality.status == .pass && quality.reasons.isEmpty && quality.excludedCount == 0)
        #expect(quality.focusReference.map { $0 > 0.8 } == true)
    }

    @Test("too few usable tiles and a coarse scan need review; checks left out of exclude only flag")
    func slideChecks() {
        var settings = QualitySettings()
        settings.minTiles = 31
        let coarse = QualityControl.decide(Self.slide(count: 30) { $1 }, settings: settings, baseMPP: 1.0)
        #expect(coarse.reasons == [.tooFewTiles, .resolution])

        settings = QualitySettings()
        settings.exclude = [.pen]
        let measurements = Self.slide(count: 30) { tile, pixels in tile < 10 ? Self.blurred(pixels, sigma: 2.5) : pixels
        }
        let quality = QualityControl.decide(measurements, settings: settings, baseMPP: 0.5)
        #expect(quality.flags.prefix(10).allSatisfy { $0 == .blur })
        #expect(quality.excludedCount == 0 && quality.status == .pass)
    }

    @Test("a slide out of focus all over is caught by the floor")
    func blurredAllOver() {
        let quality = QualityControl.decide(
            Self.slide(count: 20) { Self.blurred($1, sigma: 3) }, settings: QualitySettings(), baseMPP: 0.5)
        #expect(quality.flags.allSatisfy { $0 == .blur })
        #expect(quality.reasons.first == .blur && quality.reasons.contains(.tooFewTiles))
    }
}
