/// A trained head's scale weights r (spec §4) over the tiles it was trained on, per scale (20x, 10x, 5x),
/// apart for the tiles of positive and of negative slides; and the convention that fixes their sign.
///
/// The sign of r is not a property of the model: turning it over together with the two layers that
/// read h and M changes no probability and no attention (`CSMILHeadParameters.flippingScaleWeights`).
/// It does change the display softmax(r[n]) (spec §4), which shows the largest r as the scale the head
/// attends to. `csmil train` therefore orients each head so that a larger weight marks evidence: the
/// scale whose mean r differs most between the tiles of positive and of negative training slides (the
/// scale the head reads its evidence at) gets the larger weight on the positive slides' tiles. Slide
/// labels only, never tile labels or held-out slides; a head trained on one class only (no difference
/// to read) is oriented so that its mean r over all its tiles is positive instead.
public struct ScaleWeightMeans: Sendable, Equatable {
    /// Mean r per scale over the tiles of the positive slides; nil when there are none.
    public var positive: [Double]?
    /// Mean r per scale over the tiles of the negative slides; nil when there are none.
    public var negative: [Double]?
    public var positiveTiles: Int
    public var negativeTiles: Int

    public init(positive: [Double]?, negative: [Double]?, positiveTiles: Int, negativeTiles: Int) {
        self.positive = positive
        self.negative = negative
        self.positiveTiles = positiveTiles
        self.negativeTiles = negativeTiles
    }

    /// Positive minus negative slides' mean r, per scale; nil unless both classes have tiles.
    public var shift: [Double]? {
        guard let positive, let negative else { return nil }
        return zip(positive, negative).map { $0 - $1 }
    }

    /// The scale (0 = 20x, 1 = 10x, 2 = 5x) whose mean r moves most between negative and positive
    /// slides; nil without both classes or when nothing moves.
    public var evidenceScale: Int? {
        guard let shift, let largest = shift.indices.max(by: { abs(shift[$0]) < abs(shift[$1]) }),
            shift[largest] != 0
        else { return nil }
        return largest
    }

    /// The mean of r over every tile and scale.
    public var overall: Double {
        let tiles = positiveTiles + negativeTiles
        guard tiles > 0 else { return 0 }
        let positiveSum = (positive ?? []).reduce(0, +) * Double(positiveTiles)
        let negativeSum = (negative ?? []).reduce(0, +) * Double(negativeTiles)
        return (positiveSum + negativeSum) / Double(tiles * (positive ?? negative ?? []).count)
    }

    /// The means of the same head turned over (`CSMILHeadParameters.flippingScaleWeights` negates every r).
    public func turnedOver() -> ScaleWeightMeans {
        ScaleWeightMeans(
            positive: positive?.map { -$0 }, negative: negative?.map { -$0 }, positiveTiles: positiveTiles,
            negativeTiles: negativeTiles)
    }

    /// Whether the head should be turned over to follow the convention: its evidence scale's weight
    /// is lower on positive slides than on negative ones, or, with no evidence scale, its mean r is
    /// negative.
    public var shouldTurnOver: Bool {
        if let scale = evidenceScale, let shift { return shift[scale] < 0 }
        return overall < 0
    }
}
