/// What the CS-MIL ensemble says about one slide (spec §5).
public struct SlideScore: Sendable, Equatable {
    /// The slide's probability of being positive: the mean over heads of each head's mean over bags.
    public var probability: Double
    /// The decision threshold that `isPositive` used.
    public var threshold: Double
    /// `probability ≥ threshold`.
    public var isPositive: Bool
    /// Each head's probability (the mean of its bag probabilities), in head order.
    public var headProbabilities: [Double]
    /// p of every bag, per head: `bagProbabilities[head][bag]`.
    public var bagProbabilities: [[Double]]
    /// Per tile, the mean over every head and every bag slot that drew the tile of α · N, N the
    /// number of real (unmasked) instances of that bag, so that 1 means "an average share of its
    /// bag's attention" whatever the bag size; nil for tiles no bag drew.
    public var tileAttention: [Float?]
    /// Per tile, the raw cross-scale weights r[s] (20x, 10x, 5x) averaged over the heads.
    public var scaleWeights: [[Float]]
    /// Per tile, the softmax over the three scales of `scaleWeights`, as the reference authors
    /// displayed them.
    public var scaleWeightsSoftmax: [[Float]]
    /// The number of clusters the bags were drawn from.
    public var clusterCount: Int

    public init(
        probability: Double, threshold: Double, headProbabilities: [Double], bagProbabilities: [[Double]],
        tileAttention: [Float?], scaleWeights: [[Float]], scaleWeightsSoftmax: [[Float]], clusterCount: Int
    ) {
        self.probability = probability
        self.threshold = threshold
        self.isPositive = probability >= threshold
        self.headProbabilities = headProbabilities
        self.bagProbabilities = bagProbabilities
        self.tileAttention = tileAttention
        self.scaleWeights = scaleWeights
        self.scaleWeightsSoftmax = scaleWeightsSoftmax
        self.clusterCount = clusterCount
    }
}

/// The outcome of scoring a slide: a score, or none because the slide has no tissue tile.
public enum SlideScoring: Sendable, Equatable {
    case scored(SlideScore)
    /// Zero tissue tiles: no score (spec §5).
    case noTissue

    /// The score, nil for `noTissue`.
    public var score: SlideScore? {
        if case .scored(let score) = self { return score }
        return nil
    }
}
