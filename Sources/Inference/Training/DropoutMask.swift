/// The units `fc6`'s dropout keeps in one training forward pass (spec §6: `nn.Dropout(p=0.5)` between
/// `fc6.1`'s ReLU and `fc6.3`): a kept unit is multiplied by 1 / (1 − rate), a dropped one by 0, as
/// PyTorch does in training mode. At inference there is no mask (every unit × 1).
public struct DropoutMask: Sendable, Equatable {
    /// Whether each of the 32 hidden units of `fc6` is kept.
    public var keep: [Bool]
    /// The probability that a unit is dropped (0.5).
    public var rate: Double

    public init(keep: [Bool], rate: Double = 0.5) {
        precondition(rate >= 0 && rate < 1, "a dropout rate is in [0, 1)")
        self.keep = keep
        self.rate = rate
    }

    /// A fresh mask: each unit is kept when a uniform draw from `generator` is ≥ `rate`, one draw
    /// per unit in order, so a seed gives the same masks on every run.
    public static func draw(
        rate: Double = 0.5, units: Int = CSMILHead.hiddenSize, using generator: inout SeededGenerator
    ) -> DropoutMask {
        DropoutMask(keep: (0..<units).map { _ in generator.nextUniform() >= rate }, rate: rate)
    }

    /// The multiplier of each unit: 1 / (1 − rate) or 0.
    var scales: [Double] {
        let kept = 1 / (1 - rate)
        return keep.map { $0 ? kept : 0 }
    }
}
