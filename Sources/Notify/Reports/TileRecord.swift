import Foundation

/// One 20x tissue tile as the reports show it (model spec §5, "Per-tile attention for maps").
public struct TileRecord: Codable, Sendable, Equatable {
    /// The scales, in the order of ``scaleWeights`` and ``scaleAttention``.
    public static let scaleNames = ["20x", "10x", "5x"]

    /// Left edge of the tile in level-0 pixels.
    public var x: Int
    /// Top edge of the tile in level-0 pixels.
    public var y: Int
    /// Width of the tile in level-0 pixels (256 at a 20x level 0, 512 at 40x).
    public var width: Int
    /// Height of the tile in level-0 pixels.
    public var height: Int
    /// Column of the tile in the 20x tile grid.
    public var column: Int
    /// Row of the tile in the 20x tile grid.
    public var row: Int
    /// Mean normalised instance attention (α · N over the bag slots that drew the tile, averaged over heads);
    /// nil when no bag ever drew the tile.
    public var attention: Float?
    /// The raw scale weights r for 20x, 10x and 5x, averaged over heads.
    public var scaleWeights: [Float]
    /// The softmax of ``scaleWeights``.
    public var scaleAttention: [Float]
    /// The QC checks that flagged the tile (`pen`, `blur`, `fold`); empty when clean.
    public var qc: [String] = []
    /// Whether QC left the tile out of clustering and bags (it then has no attention and no scale weights).
    public var excluded = false

    /// Makes a record; `scaleAttention` defaults to the softmax of `scaleWeights`.
    public init(
        x: Int, y: Int, width: Int, height: Int, column: Int, row: Int, attention: Float?, scaleWeights: [Float],
        scaleAttention: [Float]? = nil
    ) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
        self.column = column
        self.row = row
        self.attention = attention
        self.scaleWeights = scaleWeights
        self.scaleAttention = scaleAttention ?? Self.softmax(scaleWeights)
    }

    /// The index (0 = 20x, 1 = 10x, 2 = 5x) of the largest scale attention; the first on ties, nil when empty.
    public var dominantScale: Int? {
        guard var best = scaleAttention.indices.first else { return nil }
        for index in scaleAttention.indices where scaleAttention[index] > scaleAttention[best] { best = index }
        return best
    }

    /// A numerically stable softmax (the largest value is subtracted before exponentiating).
    public static func softmax(_ values: [Float]) -> [Float] {
        guard let largest = values.max(), largest.isFinite else { return values.map { _ in .nan } }
        let exponentials = values.map { exp($0 - largest) }
        let sum = exponentials.reduce(0, +)
        return exponentials.map { $0 / sum }
    }

    enum CodingKeys: String, CodingKey {
        case x, y, width, height, column, row, attention, qc, excluded
        case scaleWeights = "scale_weights"
        case scaleAttention = "scale_attention"
    }
}
