/// What a synthetic slide holds, written beside it as `<name>.truth.json`: its geometry, the
/// truth mask's layout, the tissue and anomaly truth. Keys are snake_case in the file.
public struct SyntheticSlideTruth: Codable, Sendable, Equatable {
    /// A pyramid level as written.
    public struct Level: Codable, Sendable, Equatable {
        public var width: Int
        public var height: Int
        /// Level-0 pixels per pixel of this level (as written; OpenSlide computes it from sizes).
        public var downsample: Int
    }

    /// The truth mask PNG: white where tissue.
    public struct Mask: Codable, Sendable, Equatable {
        /// The PNG's file name, beside the slide.
        public var file: String
        /// Level-0 pixels per mask pixel along each axis.
        public var downsample: Int
        public var width: Int
        public var height: Int
        /// How a mask pixel is decided.
        public var rule: String
    }

    /// An ellipse in level-0 pixels (angle in radians from the x axis to the major axis).
    public struct Ellipse: Codable, Sendable, Equatable {
        public var centerX: Double
        public var centerY: Double
        public var semiMajor: Double
        public var semiMinor: Double
        public var angle: Double
    }

    /// A macro-anomaly ring: outer ellipse and band thickness, in level-0 pixels.
    public struct Ring: Codable, Sendable, Equatable {
        public var outer: Ellipse
        public var thickness: Double
        /// An ellipse in a positive region (true) or a circle in a negative one.
        public var positive: Bool
    }

    /// A region of the anomaly grid with what it holds.
    public struct Region: Codable, Sendable, Equatable {
        /// Level-0 pixel rectangle.
        public var x: Int
        public var y: Int
        public var width: Int
        public var height: Int
        public var tissueFraction: Double
        public var positive: Bool
        /// Micro: discs whose centre is tissue; macro: rings.
        public var objects: Int
        /// Micro: discs carrying a cross; macro: elliptic rings.
        public var marked: Int
    }

    public var schema = "csmil.synth/1"
    /// The slide's file name.
    public var slide: String
    /// `svs` or `tiff`.
    public var format: String
    /// The OpenSlide vendor expected to open it: `aperio` or `generic-tiff`.
    public var vendor: String
    public var width: Int
    public var height: Int
    /// Micrometres per level-0 pixel.
    public var mpp: Double
    public var magnification: Int
    public var seed: UInt64
    public var jpegQuality: Int
    public var tileSize: Int
    public var levels: [Level]
    /// Whether an Aperio-style thumbnail directory follows level 0.
    public var thumbnail: Bool
    public var tissueFractionRequested: Double
    /// The share of truth-mask pixels that are tissue.
    public var tissueFraction: Double
    public var mask: Mask
    /// The tissue is the union of these.
    public var tissueEllipses: [Ellipse]
    /// `none`, `micro` or `macro`.
    public var anomaly: String
    public var positiveFractionRequested: Double
    /// `positive` when any region is positive, else `negative` (`none` without anomaly).
    public var label: String
    /// The side of a region, level-0 pixels (1024 µm).
    public var regionSide: Int
    public var regions: [Region]
    public var rings: [Ring]
    /// The micro-anomaly layout, in 20x pixels (0.5 µm): one disc cell of `disc_cell` pixels
    /// holds at most one disc of radius `disc_radius`; a cross has two-pixel-wide arms of half
    /// length `cross_half_length`, a checkerboard whose 2 × 2 means equal the disc colour.
    public var discCell: Int?
    public var discRadius: Int?
    public var crossHalfLength: Int?
    /// The artifacts painted over the slide (`csmil synth --artifacts`); absent without any.
    public var artifacts: [Artifact]?
}
