import Foundation

/// The loss of one bag (spec §6) and the probability it came from.
public struct BagLoss: Sendable, Equatable {
    /// The clamped Bernoulli negative log-likelihood.
    public var loss: Double
    /// p, the head's probability for the bag (before clamping).
    public var probability: Double
}

/// The training loss of spec §6, as the reference training script computes it: p clamped to
/// [1e-5, 1 − 1e-5], then `−(y·log p + (1 − y)·log(1 − p))`.
public enum BernoulliLoss {
    /// The lower clamp of p (the upper one is 1 − this).
    public static let clamp = 1e-5

    /// The loss of probability `p` for label `y` (0 or 1).
    public static func loss(probability p: Double, label y: Double) -> Double {
        let clamped = min(max(p, clamp), 1 - clamp)
        return -(y * log(clamped) + (1 - y) * log(1 - clamped))
    }

    /// ∂loss/∂logit where p = sigmoid(logit): p − y inside the clamp; 0 outside it, where PyTorch's
    /// `clamp` passes no gradient (its backward keeps the gradient where min ≤ p ≤ max).
    public static func logitGradient(probability p: Double, label y: Double) -> Double {
        p >= clamp && p <= 1 - clamp ? p - y : 0
    }
}

/// Forward and backward passes of one CS-MIL head (spec §4) for training: the loss of one bag and
/// the gradient of that loss with respect to every parameter, in `CSMILHeadParameters`' layout.
///
/// The forward pass is `CSMILHead`'s (the same ``CSMILHeadForward`` kernels), with its intermediate values kept
/// for the backward pass and with `fc6`'s dropout when a mask is given. Precision is that of the scoring forward pass: the two
/// products that grow with D (`W_emb · f` and its weight gradient `∂W_emb = (∂pre)ᵀ · f`) are float32
/// `cblas_sgemm`; everything else is Double.
///
/// Masked instances (empty clusters) get attention exactly 0, so they reach neither p nor any
/// gradient; they are skipped, as if absent. Layout of the gathered instances: `[instance][scale][D]`.
///
/// Not thread-safe: one per thread. Scratch memory grows to the largest bag and is reused.
public final class CSMILHeadBackpropagation {
    /// D.
    public let featureSize: Int

    private let offsets: CSMILHeadParameters.Offsets
    /// The parameters, Double.
    private let theta: UnsafeMutablePointer<Double>
    /// W_emb rounded to float32, for `cblas_sgemm`.
    private let embeddingWeight: UnsafeMutablePointer<Float>
    /// ∂W_emb of one bag, float32 (64 × D).
    private let embeddingGradient: UnsafeMutablePointer<Float>

    private var capacity = 0  // instances
    private var features: UnsafeMutablePointer<Float>  // 3N × D, the gathered unmasked instances
    private var products: UnsafeMutablePointer<Float>  // 3N × 64, W_emb · f
    private var embeddings: UnsafeMutablePointer<Double>  // 3N × 64, e
    private var scaleHidden: UnsafeMutablePointer<Double>  // 3N × 32, u = W_r1 · e + b_r1 (before ReLU)
    private var scaleWeights: UnsafeMutablePointer<Double>  // 3N, r
    private var fused: UnsafeMutablePointer<Double>  // N × 64, h
    private var attentionHidden: UnsafeMutablePointer<Double>  // N × 32, tanh(W_a1 · h + b_a1)
    private var logits: UnsafeMutablePointer<Double>  // N, a
    private var attention: UnsafeMutablePointer<Double>  // N, α
    private var embeddingDelta: UnsafeMutablePointer<Double>  // 3N × 64, ∂e
    private var fusedDelta: UnsafeMutablePointer<Double>  // N × 64, ∂h
    private var preDelta: UnsafeMutablePointer<Float>  // 3N × 64, ∂(W_emb · f + b_emb), float32 for the GEMM

    private static let width = CSMILHead.embeddingSize
    private static let hiddenWidth = CSMILHead.hiddenSize

    /// A pass for heads of feature size `parameters.featureSize`, loaded with `parameters`.
    public init(parameters: CSMILHeadParameters) {
        featureSize = parameters.featureSize
        offsets = parameters.offsets
        theta = .allocate(capacity: offsets.total)
        embeddingWeight = .allocate(capacity: Self.width * featureSize)
        embeddingGradient = .allocate(capacity: Self.width * featureSize)
        features = .allocate(capacity: 0)
        products = .allocate(capacity: 0)
        embeddings = .allocate(capacity: 0)
        scaleHidden = .allocate(capacity: 0)
        scaleWeights = .allocate(capacity: 0)
        fused = .allocate(capacity: 0)
        attentionHidden = .allocate(capacity: 0)
        logits = .allocate(capacity: 0)
        attention = .allocate(capacity: 0)
        embeddingDelta = .allocate(capacity: 0)
        fusedDelta = .allocate(capacity: 0)
        preDelta = .allocate(capacity: 0)
        load(parameters)
        reserve(instances: 32)
    }

    deinit {
        theta.deallocate()
        embeddingWeight.deallocate()
        embeddingGradient.deallocate()
        releaseScratch()
    }

    /// Replaces the parameters (after an optimiser step).
    public func load(_ parameters: CSMILHeadParameters) {
        precondition(
            parameters.featureSize == featureSize, "parameters for D = \(parameters.featureSize), not \(featureSize)")
        parameters.values.withUnsafeBufferPointer { theta.update(from: $0.baseAddress!, count: offsets.total) }
        let w = theta + offsets.embeddingWeight
        for i in 0..<Self.width * featureSize { embeddingWeight[i] = Float(w[i]) }
    }

    // MARK: Public passes

    /// p for a bag, dropout off (evaluation): the same number as `CSMILHead.forward`.
    ///
    /// - Parameters:
    ///   - bag: `[instance][scale][D]` floats, `mask.count × 3 × D` of them.
    ///   - mask: false for padding instances.
    public func probability(bag: UnsafeBufferPointer<Float>, mask: [Bool]) -> Double {
        let n = gather(bag: bag, mask: mask)
        return forward(instances: n, dropout: nil)
    }

    /// p for the bag `instances` of a slide whose tiles are `tiles` (`[tile][scale][D]`), each
    /// instance a tile index or `BagSet.masked`; dropout off.
    public func probability(tiles: UnsafeBufferPointer<Float>, instances: ArraySlice<Int32>) -> Double {
        let n = gather(tiles: tiles, instances: instances)
        return forward(instances: n, dropout: nil)
    }

    /// The loss of one bag with label `label` (0 or 1), and its gradient added into `gradient`.
    ///
    /// - Parameters:
    ///   - bag: `[instance][scale][D]` floats, `mask.count × 3 × D` of them.
    ///   - mask: false for padding instances.
    ///   - dropout: `fc6`'s dropout mask in training; nil for none (evaluation mode).
    ///   - gradient: ∂loss/∂θ is added to it (so the losses of several bags sum).
    public func accumulateGradient(
        bag: UnsafeBufferPointer<Float>, mask: [Bool], label: Double, dropout: DropoutMask?,
        into gradient: inout CSMILHeadParameters
    ) -> BagLoss {
        let n = gather(bag: bag, mask: mask)
        return backward(instances: n, label: label, dropout: dropout, into: &gradient)
    }

    /// `accumulateGradient(bag:…)` for the bag `instances` of a slide whose tiles are `tiles`
    /// (`[tile][scale][D]`), each instance a tile index or `BagSet.masked`.
    public func accumulateGradient(
        tiles: UnsafeBufferPointer<Float>, instances: ArraySlice<Int32>, label: Double, dropout: DropoutMask?,
        into gradient: inout CSMILHeadParameters
    ) -> BagLoss {
        let n = gather(tiles: tiles, instances: instances)
        return backward(instances: n, label: label, dropout: dropout, into: &gradient)
    }

    // MARK: Gathering

    /// Copies the unmasked instances of a gathered bag into `features`; returns how many.
    private func gather(bag: UnsafeBufferPointer<Float>, mask: [Bool]) -> Int {
        let perInstance = CSMILHead.scaleCount * featureSize
        precondition(
            bag.count == mask.count * perInstance,
            "a bag of \(mask.count) instances needs \(mask.count) × 3 × \(featureSize) floats")
        reserve(instances: mask.count)
        var n = 0
        for (i, kept) in mask.enumerated() where kept {
            (features + n * perInstance).update(from: bag.baseAddress! + i * perInstance, count: perInstance)
            n += 1
        }
        return n
    }

    /// Copies the tiles a bag drew into `features`, masked instances left out; returns how many.
    private func gather(tiles: UnsafeBufferPointer<Float>, instances: ArraySlice<Int32>) -> Int {
        let perInstance = CSMILHead.scaleCount * featureSize
        reserve(instances: instances.count)
        var n = 0
        for tile in instances where tile != BagSet.masked {
            let start = Int(tile) * perInstance
            precondition(tile >= 0 && start + perInstance <= tiles.count, "tile \(tile) is not in the features")
            (features + n * perInstance).update(from: tiles.baseAddress! + start, count: perInstance)
            n += 1
        }
        return n
    }

    // MARK: Forward

    /// The fc6 part of the forward pass, kept for the backward pass.
    private struct Classifier {
        /// M, the attention-pooled embedding (64).
        var pooled = [Double](repeating: 0, count: CSMILHead.embeddingSize)
        /// q = W_f1 · M + b_f1 (32), before the ReLU.
        var hidden = [Double](repeating: 0, count: CSMILHead.hiddenSize)
        /// The dropout multiplier of each hidden unit (1 without dropout).
        var scales = [Double](repeating: 1, count: CSMILHead.hiddenSize)
        var probability = 0.0
    }

    private var classifier = Classifier()

    /// Spec §4 for the `n` gathered instances: fills every intermediate buffer and returns p.
    private func forward(instances n: Int, dropout: DropoutMask?) -> Double {
        let weights = CSMILHeadForward.Weights(
            theta: theta, offsets: offsets, embedding: embeddingWeight, featureSize: featureSize)
        CSMILHeadForward.instances(
            features, count: n, weights: weights,
            into: CSMILHeadForward.Buffers(
                products: products, embeddings: embeddings, scaleHidden: scaleHidden, scaleWeights: scaleWeights,
                fused: fused, attentionHidden: attentionHidden, logits: logits))
        let (logits, fused) = (self.logits, self.fused)
        classifier.pooled.withUnsafeMutableBufferPointer { pooled in
            CSMILHeadForward.pool(count: n, attention: attention, pooled: pooled.baseAddress!) { i in
                (logits[i], UnsafePointer(fused + i * Self.width))
            }
        }
        if let dropout {
            precondition(dropout.keep.count == Self.hiddenWidth, "a dropout mask for fc6 has \(Self.hiddenWidth) units")
            classifier.scales = dropout.scales
        } else {
            for k in 0..<Self.hiddenWidth { classifier.scales[k] = 1 }
        }
        var hidden = classifier.hidden
        let probability = classifier.pooled.withUnsafeBufferPointer { pooled in
            classifier.scales.withUnsafeBufferPointer { scales in
                hidden.withUnsafeMutableBufferPointer {
                    CSMILHeadForward.classify(
                        pooled.baseAddress!, weights: weights, dropout: scales.baseAddress!, hidden: $0.baseAddress!)
                }
            }
        }
        classifier.hidden = hidden
        classifier.probability = probability
        return probability
    }

    // MARK: Backward

    /// Forward, loss and backward for the `n` gathered instances; adds ∂loss/∂θ into `gradient`.
    private func backward(
        instances n: Int, label: Double, dropout: DropoutMask?, into gradient: inout CSMILHeadParameters
    ) -> BagLoss {
        precondition(
            gradient.featureSize == featureSize, "a gradient for D = \(gradient.featureSize), not \(featureSize)")
        let p = forward(instances: n, dropout: dropout)
        let result = BagLoss(loss: BernoulliLoss.loss(probability: p, label: label), probability: p)
        let delta = BernoulliLoss.logitGradient(probability: p, label: label)
        guard delta != 0 else { return result }
        gradient.values.withUnsafeMutableBufferPointer { g in
            backward(instances: n, logitDelta: delta, into: g.baseAddress!)
        }
        return result
    }

    /// The chain rule from ∂loss/∂logit = `delta` back to every parameter, added into `g`.
    private func backward(instances n: Int, logitDelta delta: Double, into g: UnsafeMutablePointer<Double>) {
        let d = featureSize
        let width = Self.width
        let hiddenWidth = Self.hiddenWidth
        let rows = n * CSMILHead.scaleCount
        let o = offsets

        // fc6: logit = Σ_k w_f2[k]·s[k]·relu(q[k]) + b_f2, q = W_f1 · M + b_f1.
        g[o.classifierOutputBias] += delta
        var pooledDelta = [Double](repeating: 0, count: width)
        for k in 0..<hiddenWidth {
            let q = classifier.hidden[k]
            let kept = max(q, 0) * classifier.scales[k]
            g[o.classifierOutputWeight + k] += delta * kept
            guard q > 0 else { continue }
            let dq = delta * theta[o.classifierOutputWeight + k] * classifier.scales[k]
            guard dq != 0 else { continue }
            g[o.classifierHiddenBias + k] += dq
            let row = theta + o.classifierHiddenWeight + k * width
            let rowGradient = g + o.classifierHiddenWeight + k * width
            for j in 0..<width {
                rowGradient[j] += dq * classifier.pooled[j]
                pooledDelta[j] += dq * row[j]
            }
        }
        guard n > 0 else { return }

        // Pooling M = Σ α_i h_i and softmax: ∂α_i = ∂M · h_i, ∂a_i = α_i (∂α_i − Σ_m α_m ∂α_m); ∂h_i = α_i ∂M.
        var logitDelta = [Double](repeating: 0, count: n)
        var mean = 0.0
        for i in 0..<n {
            var s = 0.0
            for j in 0..<width { s += pooledDelta[j] * fused[i * width + j] }
            logitDelta[i] = s
            mean += attention[i] * s
        }
        for i in 0..<n {
            let alpha = attention[i]
            logitDelta[i] = alpha * (logitDelta[i] - mean)
            for j in 0..<width { fusedDelta[i * width + j] = alpha * pooledDelta[j] }
        }

        // Attention: a = w_a2 · t + b_a2, t = tanh(W_a1 · h + b_a1).
        for i in 0..<n {
            let da = logitDelta[i]
            guard da != 0 else { continue }
            g[o.attentionOutputBias] += da
            let h = fused + i * width
            let dh = fusedDelta + i * width
            for k in 0..<hiddenWidth {
                let t = attentionHidden[i * hiddenWidth + k]
                g[o.attentionOutputWeight + k] += da * t
                let dz = da * theta[o.attentionOutputWeight + k] * (1 - t * t)
                g[o.attentionHiddenBias + k] += dz
                let row = theta + o.attentionHiddenWeight + k * width
                let rowGradient = g + o.attentionHiddenWeight + k * width
                for j in 0..<width {
                    rowGradient[j] += dz * h[j]
                    dh[j] += dz * row[j]
                }
            }
        }

        // Fusion h_i = Σ_s r_is e_is: ∂r_is = ∂h_i · e_is, ∂e_is = r_is ∂h_i.
        // Scale weights r = w_r2 · relu(u) + b_r2, u = W_r1 · e + b_r1: ∂e += W_r1ᵀ ∂u.
        for row in 0..<rows {
            let i = row / CSMILHead.scaleCount
            let e = embeddings + row * width
            let de = embeddingDelta + row * width
            let dh = fusedDelta + i * width
            let r = scaleWeights[row]
            var dr = 0.0
            for j in 0..<width {
                dr += dh[j] * e[j]
                de[j] = r * dh[j]
            }
            guard dr != 0 else { continue }
            g[o.scaleOutputBias] += dr
            for k in 0..<hiddenWidth {
                let u = scaleHidden[row * hiddenWidth + k]
                guard u > 0 else { continue }
                g[o.scaleOutputWeight + k] += dr * u
                let du = dr * theta[o.scaleOutputWeight + k]
                g[o.scaleHiddenBias + k] += du
                let weightRow = theta + o.scaleHiddenWeight + k * width
                let rowGradient = g + o.scaleHiddenWeight + k * width
                for j in 0..<width {
                    rowGradient[j] += du * e[j]
                    de[j] += du * weightRow[j]
                }
            }
        }

        // Embedding e = relu(W_emb · f + b_emb): ∂pre = ∂e where e > 0; ∂W_emb = (∂pre)ᵀ · f (float32 GEMM).
        for row in 0..<rows {
            for j in 0..<width {
                let at = row * width + j
                let dpre = embeddings[at] > 0 ? embeddingDelta[at] : 0
                g[o.embeddingBias + j] += dpre
                preDelta[at] = Float(dpre)
            }
        }
        RowMajorGEMM.multiplyLeftTransposed(
            preDelta, rows: width, features, columns: d, inner: rows, into: embeddingGradient)
        let embeddingWeightGradient = g + o.embeddingWeight
        for i in 0..<width * d { embeddingWeightGradient[i] += Double(embeddingGradient[i]) }
    }

    // MARK: Scratch memory

    /// Makes room for `instances` instances (3 rows each).
    private func reserve(instances: Int) {
        guard instances > capacity else { return }
        releaseScratch()
        let size = max(instances, capacity * 2)
        let rows = 3 * size
        features = .allocate(capacity: rows * featureSize)
        products = .allocate(capacity: rows * Self.width)
        embeddings = .allocate(capacity: rows * Self.width)
        scaleHidden = .allocate(capacity: rows * Self.hiddenWidth)
        scaleWeights = .allocate(capacity: rows)
        fused = .allocate(capacity: size * Self.width)
        attentionHidden = .allocate(capacity: size * Self.hiddenWidth)
        logits = .allocate(capacity: size)
        attention = .allocate(capacity: size)
        embeddingDelta = .allocate(capacity: rows * Self.width)
        fusedDelta = .allocate(capacity: size * Self.width)
        preDelta = .allocate(capacity: rows * Self.width)
        capacity = size
    }

    private func releaseScratch() {
        features.deallocate()
        products.deallocate()
        embeddings.deallocate()
        scaleHidden.deallocate()
        scaleWeights.deallocate()
        fused.deallocate()
        attentionHidden.deallocate()
        logits.deallocate()
        attention.deallocate()
        embeddingDelta.deallocate()
        fusedDelta.deallocate()
        preDelta.deallocate()
    }
}
