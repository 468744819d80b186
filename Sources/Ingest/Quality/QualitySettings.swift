/// The `[qc]` settings: which checks exclude tiles, when a slide needs review, and each check's threshold.
/// The defaults are those documented in `etc/csmil.toml`; docs/quality-control.md says how they were measured.
public struct QualitySettings: Sendable, Equatable {
    /// Whether QC runs at all (`[qc] enabled`). Off: no measurement, no `qc` object, every tile scored.
    public var enabled = true
    /// The checks whose tiles are left out of clustering and bags (`[qc] exclude`); the others are reported only.
    public var exclude: Set<QualityCheck> = [.pen, .blur, .fold]
    /// A slide needs review when more than this share of its tissue tiles is excluded (`[qc] review_fraction`).
    public var reviewFraction = 0.1
    /// A slide needs review when fewer usable tiles than this remain (`[qc] min_tiles`).
    public var minTiles = 16
    /// A tile is pen when ink covers at least this share of its area (`[qc] pen_fraction`).
    public var penFraction = 0.05
    /// A block of a tile is out of focus when its focus is below this share of the slide's median block focus
    /// (`[qc] blur_relative`)…
    public var blurRelative = 0.3
    /// … or below this absolute focus (``TileQuality/focus``, `[qc] blur_floor`)…
    public var blurFloor = 0.2
    /// … and a tile is blurred when at least this share of its blocks is out of focus (`[qc] blur_fraction`).
    public var blurFraction = 0.375
    /// A tissue pixel is dense (folded) when its optical density is at least this many times the slide's median
    /// tissue density (`[qc] fold_density`)…
    public var foldDensity = 1.6
    /// … and a tile is a fold when at least this share of its tissue pixels is dense (`[qc] fold_fraction`).
    public var foldFraction = 0.5
    /// A slide needs review when its finest level is coarser than this many µm per pixel: the model sees 20x
    /// (0.5 µm/px) pixels, and enlarging a 10x scan does not make them (`[qc] max_mpp`).
    public var maxMPP = 0.6

    /// The defaults.
    public init() {}
}
