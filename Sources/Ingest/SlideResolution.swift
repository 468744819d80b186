import Foundation

/// How a slide's pixels become the model's 20x pixels (about 0.5 µm per pixel), per model spec §2.
///
/// The base resolution comes from the first usable of: `openslide.mpp-x`; the TIFF resolution tags
/// (`tiff.XResolution` with `tiff.ResolutionUnit` centimetre or inch, which OpenSlide ≥ 4.0 turns
/// into `openslide.mpp-x` itself but 3.4 does not); `openslide.objective-power`, `aperio.AppMag`,
/// `hamamatsu.SourceLens` (objective 20 ↔ 0.5 µm/px); the caller's `assumeMPP`. A slide within
/// ±20 % of 0.5 µm/px is a 20x slide (level 0 read as is); within ±20 % of 0.25 µm/px a 40x slide
/// (the level whose downsample is 2 ± 1 %, else level 0 with a 2 × 2 block mean); anything else is
/// read from the level closest to 0.5 µm/px and resampled.
public struct SlideResolution: Sendable, Equatable, CustomStringConvertible {
    /// Where the 20x pixels come from.
    public enum Plan: Sendable, Equatable {
        /// Read this level as is: its pixels are 20x pixels (level 0 of a 20x slide, the
        /// downsample-2 level of a 40x slide).
        case level(Int)
        /// Read level 0 and average each 2 × 2 block (a 40x slide without a downsample-2 level).
        case blockMean2x2
        /// Read `level` and resample it; `levelPixelsPerTargetPixel` is how many of its pixels make
        /// one 20x pixel (below 1: the level is coarser than 20x and is enlarged).
        case resample(level: Int, levelPixelsPerTargetPixel: Double)
    }

    /// The working resolution of the model, µm per pixel (20x).
    public static let targetMPP = 0.5
    /// How far (relative) a slide's resolution may be from 0.5 or 0.25 µm/px and still count as 20x or 40x.
    public static let tolerance = 0.2
    /// How far (relative) a level's downsample may be from 2 to serve a 40x slide's 20x pixels.
    public static let downsampleTolerance = 0.01

    /// Level-0 resolution, µm per pixel.
    public var baseMPP: Double
    /// Nominal objective magnification of level 0 (10 / µm per pixel when derived from the MPP).
    public var magnification: Double
    /// The property the resolution came from (`openslide.mpp-x`, `aperio.AppMag`, …), or `assume_mpp`.
    public var source: String
    /// How the 20x pixels are made.
    public var plan: Plan
    /// Level-0 pixels per 20x pixel: 1 for 20x slides, about 2 for 40x; use it to map tile
    /// coordinates to level 0 (OpenSlide's `read_region` origin, GeoJSON polygons).
    public var level0PixelsPerTargetPixel: Double

    /// The level that is read to make 20x pixels.
    public var readLevel: Int {
        switch plan {
        case .level(let level): level
        case .blockMean2x2: 0
        case .resample(let level, _): level
        }
    }

    /// The actual resolution of the "20x" pixels, µm per pixel (0.4527 for a Hamamatsu 20x slide).
    public var targetPixelMPP: Double { baseMPP * level0PixelsPerTargetPixel }

    /// Decides the resolution of an open slide, and refuses a slide whose declared size cannot be a glass slide's
    /// (``GlassSlide/checkSize(width:height:mpp:source:file:)``, `slide.implausible_size`): everything that is
    /// allocated for a slide afterwards grows with that size.
    public init(slide: Slide, assumeMPP: Double? = nil) throws(SlideError) {
        try self.init(
            properties: slide.properties, downsamples: slide.downsamples, file: slide.path, assumeMPP: assumeMPP)
        let (width, height) = slide.dimensions(level: 0)
        try GlassSlide.checkSize(width: width, height: height, mpp: baseMPP, source: source, file: slide.path)
    }

    /// Decides the resolution from a slide's properties and level downsamples (level 0 first);
    /// `file` names the slide in errors. Throws `noResolution` when nothing gives a resolution and
    /// `assumeMPP` is nil.
    public init(
        properties: [String: String], downsamples: [Double], file: String, assumeMPP: Double? = nil
    ) throws(SlideError) {
        guard !downsamples.isEmpty else {
            throw SlideError(
                code: .tooSmall, file: file, message: "has no pyramid levels", fix: "re-export the slide")
        }
        guard let found = Self.baseResolution(properties: properties, assumeMPP: assumeMPP) else {
            throw SlideError(
                code: .noResolution, file: file,
                message: "has no usable resolution metadata (no openslide.mpp-x, TIFF resolution, "
                    + "openslide.objective-power, aperio.AppMag or hamamatsu.SourceLens)",
                fix: "if you know its resolution, set [ingest] assume_mpp in the configuration or pass --assume-mpp "
                    + "(0.5 for a 20x scan, 0.25 for 40x)")
        }
        baseMPP = found.mpp
        magnification = found.magnification
        source = found.source

        let ratio = Self.targetMPP / found.mpp
        if abs(ratio - 1) <= Self.tolerance {
            plan = .level(0)
            level0PixelsPerTargetPixel = 1
        } else if abs(ratio / 2 - 1) <= Self.tolerance {
            if let level = downsamples.firstIndex(where: { abs($0 / 2 - 1) <= Self.downsampleTolerance }) {
                plan = .level(level)
                level0PixelsPerTargetPixel = downsamples[level]
            } else {
                plan = .blockMean2x2
                level0PixelsPerTargetPixel = 2
            }
        } else {
            // The level closest to 0.5 µm/px on a log scale (2× finer and 2× coarser are equally far).
            var best = 0
            for (level, downsample) in downsamples.enumerated()
            where abs(log(found.mpp * downsample / Self.targetMPP))
                < abs(log(found.mpp * downsamples[best] / Self.targetMPP))
            {
                best = level
            }
            plan = .resample(level: best, levelPixelsPerTargetPixel: ratio / downsamples[best])
            level0PixelsPerTargetPixel = ratio
        }
    }

    /// The slide's extent in 20x pixels, from its level-0 size (rounded down: no partial 20x pixel).
    public func targetSize(level0Width: Int, level0Height: Int) -> (width: Int, height: Int) {
        (
            Int((Double(level0Width) / level0PixelsPerTargetPixel).rounded(.down)),
            Int((Double(level0Height) / level0PixelsPerTargetPixel).rounded(.down))
        )
    }

    /// One line for the report: magnification, MPP, where they came from and how 20x pixels are made.
    public var describe: String {
        "\(format(magnification))x, \(format(baseMPP)) µm/px at level 0 (from \(source)); \(planDescription)"
    }

    /// How the 20x pixels are made, in words: "level 1 (downsample 2) read as 20x".
    public var planDescription: String {
        let how: String
        switch plan {
        case .level(0): how = "level 0 read as 20x"
        case .level(let level): how = "level \(level) (downsample \(format(level0PixelsPerTargetPixel))) read as 20x"
        case .blockMean2x2: how = "level 0 with a 2×2 block mean"
        case .resample(let level, let scale):
            how = "level \(level) resampled (\(format(scale)) level pixels per 20x pixel)"
        }
        return how
    }

    public var description: String { describe }

    private func format(_ value: Double) -> String {
        let rounded = (value * 10000).rounded() / 10000
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }

    private static func baseResolution(
        properties: [String: String], assumeMPP: Double?
    ) -> (mpp: Double, magnification: Double, source: String)? {
        func positive(_ key: String) -> Double? {
            guard let text = properties[key]?.trimmingCharacters(in: .whitespaces), let value = Double(text),
                value.isFinite, value > 0
            else { return nil }
            return value
        }
        // Plausible scanner resolutions: 0.05 µm/px (200x) to 100 µm/px (0.1x).
        func plausible(_ mpp: Double) -> Bool { mpp >= 0.05 && mpp <= 100 }

        if let mpp = positive("openslide.mpp-x"), plausible(mpp) {
            return (mpp, 10 / mpp, "openslide.mpp-x")
        }
        if let resolution = positive("tiff.XResolution") {
            let micronsPerUnit: Double? =
                switch properties["tiff.ResolutionUnit"] {
                case "centimeter": 10_000
                case "inch": 25_400
                default: nil
                }
            if let micronsPerUnit, plausible(micronsPerUnit / resolution) {
                let mpp = micronsPerUnit / resolution
                return (mpp, 10 / mpp, "tiff.XResolution")
            }
        }
        for key in ["openslide.objective-power", "aperio.AppMag", "hamamatsu.SourceLens"] {
            if let power = positive(key), plausible(10 / power) {
                return (10 / power, power, key)
            }
        }
        if let mpp = assumeMPP, mpp.isFinite, plausible(mpp) {
            return (mpp, 10 / mpp, "assume_mpp")
        }
        return nil
    }
}
