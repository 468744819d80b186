import Foundation

/// Adam as `torch.optim.Adam` computes it (PyTorch 1.13, `amsgrad=False`, `maximize=False`), with
/// L2 weight decay added to the gradient before the moments, as torch's Adam (not AdamW) does:
///
/// ```
/// g  = ∂θ + weight_decay · θ
/// m  = β1 · m + (1 − β1) · g
/// v  = β2 · v + (1 − β2) · g²
/// θ −= (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
/// ```
///
/// In Double over the flat parameter vector of a head (PyTorch keeps float32 state).
public struct AdamOptimizer: Sendable {
    /// The hyper-parameters (spec §6: lr 5e-4, β (0.9, 0.999), ε 1e-8, weight decay 1e-4).
    public struct Settings: Sendable, Equatable {
        public var learningRate: Double
        public var beta1: Double
        public var beta2: Double
        public var epsilon: Double
        public var weightDecay: Double

        public init(
            learningRate: Double = 5e-4, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8,
            weightDecay: Double = 1e-4
        ) {
            self.learningRate = learningRate
            self.beta1 = beta1
            self.beta2 = beta2
            self.epsilon = epsilon
            self.weightDecay = weightDecay
        }
    }

    public var settings: Settings
    /// Steps taken so far (t).
    public private(set) var step = 0
    /// First moment m, per parameter.
    private var mean: [Double]
    /// Second moment v, per parameter.
    private var variance: [Double]

    /// An optimiser with zero moments for `count` parameters.
    public init(parameterCount count: Int, settings: Settings = Settings()) {
        self.settings = settings
        mean = [Double](repeating: 0, count: count)
        variance = [Double](repeating: 0, count: count)
    }

    /// One step: updates `parameters` from `gradient` (same layout, same count).
    public mutating func update(_ parameters: inout [Double], gradient: [Double]) {
        precondition(parameters.count == mean.count && gradient.count == mean.count, "Adam: parameter count changed")
        step += 1
        let s = settings
        let t = Double(step)
        let stepSize = s.learningRate / (1 - pow(s.beta1, t))
        let correction2 = (1 - pow(s.beta2, t)).squareRoot()
        parameters.withUnsafeMutableBufferPointer { theta in
            gradient.withUnsafeBufferPointer { gradient in
                mean.withUnsafeMutableBufferPointer { m in
                    variance.withUnsafeMutableBufferPointer { v in
                        for i in 0..<theta.count {
                            var g = gradient[i]
                            if s.weightDecay != 0 { g += s.weightDecay * theta[i] }
                            m[i] = s.beta1 * m[i] + (1 - s.beta1) * g
                            v[i] = s.beta2 * v[i] + (1 - s.beta2) * g * g
                            let denominator = v[i].squareRoot() / correction2 + s.epsilon
                            theta[i] -= stepSize * m[i] / denominator
                        }
                    }
                }
            }
        }
    }

    /// `update(_:gradient:)` on a head's parameters.
    public mutating func update(_ parameters: inout CSMILHeadParameters, gradient: CSMILHeadParameters) {
        update(&parameters.values, gradient: gradient.values)
    }
}
