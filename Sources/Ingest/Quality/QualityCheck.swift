/// The tile-level quality checks (issue 16): artifacts that make a 20x tile unfit for scoring.
///
/// Anchors: GrandQC's artifact classes (fold, dark spot & foreign object, pen marking, edge & air bubble, out of
/// focus) and HistoQC's modules (pen markings by colour, blur by Laplacian, dark tissue). csmil measures three of
/// them per tile with fixed pixel rules and slide-relative thresholds (``QualityControl``), no learned model.
public enum QualityCheck: String, Sendable, CaseIterable, Codable, Comparable {
    /// Marker ink in hues H&E does not produce: blue, green, black.
    case pen
    /// Out of focus: far less fine detail than the slide's own tissue, or below an absolute floor.
    case blur
    /// Folded (overlapping) tissue: a large share of the tile much denser than the slide's typical tissue.
    case fold

    public static func < (lhs: QualityCheck, rhs: QualityCheck) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// The checks that flagged one tile.
public struct QualityFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let pen = QualityFlags(rawValue: 1)
    public static let blur = QualityFlags(rawValue: 2)
    public static let fold = QualityFlags(rawValue: 4)

    /// The flag of one check.
    public init(_ check: QualityCheck) {
        switch check {
        case .pen: self = .pen
        case .blur: self = .blur
        case .fold: self = .fold
        }
    }

    /// The checks set, in ``QualityCheck/allCases`` order.
    public var checks: [QualityCheck] { QualityCheck.allCases.filter { contains(QualityFlags($0)) } }

    /// The checks' names, e.g. `["pen", "blur"]`.
    public var names: [String] { checks.map(\.rawValue) }
}

/// Why a slide needs review; `report.json`'s `qc.reasons` holds the raw values.
public enum QualityReason: String, Sendable, Codable, CaseIterable {
    /// Tiles excluded for pen ink, blur or folds (``QualityCheck`` raw values are reasons too).
    case pen, blur, fold
    /// Fewer usable (not excluded) tiles than `[qc] min_tiles`.
    case tooFewTiles = "too_few_tiles"
    /// The scan's resolution is coarser than the model's 20x (0.5 µm/px) beyond `[qc] max_mpp`.
    case resolution
}
