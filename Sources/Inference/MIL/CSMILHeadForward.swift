import Foundation

/// The forward pass of spec §4, written once: `CSMILHead` (scoring) and `CSMILHeadBackpropagation` (training, which
/// keeps the intermediate values for its backward pass) both run these kernels on a head's parameters in
/// ``CSMILHeadParameters``' flat Double layout, with W_emb rounded to float32 for `cblas_sgemm`.
///
/// Precision: `W_emb · f` is float32 (the one product that grows with D and the number of tiles); everything after
/// it is Double, which keeps p within ~1e-7 of a float64 PyTorch forward.
enum CSMILHeadForward {
    /// A head's parameters as the kernels read them.
    struct Weights {
        /// All parameters, `offsets.total` Doubles.
        let theta: UnsafePointer<Double>
        let offsets: CSMILHeadParameters.Offsets
        /// W_emb as float32, 64 × D.
        let embedding: UnsafePointer<Float>
        /// D.
        let featureSize: Int
    }

    /// Where the per-instance values go, for `n` instances (3N rows, one per instance and scale).
    struct Buffers {
        /// 3N × 64: `W_emb · f`.
        let products: UnsafeMutablePointer<Float>
        /// 3N × 64: e = relu(W_emb · f + b_emb).
        let embeddings: UnsafeMutablePointer<Double>
        /// 3N × 32: u = W_r1 · e + b_r1, before its ReLU.
        let scaleHidden: UnsafeMutablePointer<Double>
        /// 3N: r = W_r2 · relu(u) + b_r2 (raw, no softmax over scales).
        let scaleWeights: UnsafeMutablePointer<Double>
        /// N × 64: h = Σₛ r[s] · e[s].
        let fused: UnsafeMutablePointer<Double>
        /// N × 32: t = tanh(W_a1 · h + b_a1). May be `scaleHidden` when u is not needed afterwards.
        let attentionHidden: UnsafeMutablePointer<Double>
        /// N: a = W_a2 · t + b_a2.
        let logits: UnsafeMutablePointer<Double>
    }

    static let width = CSMILHead.embeddingSize
    static let hiddenWidth = CSMILHead.hiddenSize

    /// The per-instance part of spec §4 for `n` instances at `features` (`[n][3][D]`).
    static func instances(
        _ features: UnsafePointer<Float>, count n: Int, weights: Weights, into buffers: Buffers
    ) {
        let d = weights.featureSize
        let rows = n * CSMILHead.scaleCount
        let theta = weights.theta
        let o = weights.offsets
        let e = buffers.embeddings
        let u = buffers.scaleHidden
        let r = buffers.scaleWeights
        let h = buffers.fused
        let t = buffers.attentionHidden
        let a = buffers.logits

        // e = relu(W_emb · f + b_emb) for every instance and scale: one float32 GEMM.
        RowMajorGEMM.multiplyTransposed(
            features, rows: rows, strideA: d, weights.embedding, columns: width, strideB: d, inner: d,
            into: buffers.products, strideC: width)
        let embeddingBias = theta + o.embeddingBias
        for row in 0..<rows {
            let source = buffers.products + row * width
            let out = e + row * width
            for j in 0..<width { out[j] = max(Double(source[j]) + embeddingBias[j], 0) }
        }

        // u = W_r1 · e + b_r1; r = W_r2 · relu(u) + b_r2.
        RowMajorGEMM.multiplyTransposed(
            e, rows: rows, strideA: width, theta + o.scaleHiddenWeight, columns: hiddenWidth, strideB: width,
            inner: width, into: u, strideC: hiddenWidth)
        let scaleBias = theta + o.scaleHiddenBias
        let scaleOut = theta + o.scaleOutputWeight
        for row in 0..<rows {
            let values = u + row * hiddenWidth
            var s = 0.0
            for j in 0..<hiddenWidth {
                let pre = values[j] + scaleBias[j]
                values[j] = pre
                s += scaleOut[j] * max(pre, 0)
            }
            r[row] = s + theta[o.scaleOutputBias]
        }

        // h = Σ_s r[s] · e[s].
        for i in 0..<n {
            let out = h + i * width
            let e0 = e + (3 * i) * width
            let e1 = e0 + width
            let e2 = e1 + width
            let r0 = r[3 * i]
            let r1 = r[3 * i + 1]
            let r2 = r[3 * i + 2]
            for j in 0..<width { out[j] = r0 * e0[j] + r1 * e1[j] + r2 * e2[j] }
        }

        // t = tanh(W_a1 · h + b_a1); a = W_a2 · t + b_a2.
        RowMajorGEMM.multiplyTransposed(
            h, rows: n, strideA: width, theta + o.attentionHiddenWeight, columns: hiddenWidth, strideB: width,
            inner: width, into: t, strideC: hiddenWidth)
        let attentionBias = theta + o.attentionHiddenBias
        let attentionOut = theta + o.attentionOutputWeight
        for i in 0..<n {
            let values = t + i * hiddenWidth
            var s = 0.0
            for j in 0..<hiddenWidth {
                let value = tanh(values[j] + attentionBias[j])
                values[j] = value
                s += attentionOut[j] * value
            }
            a[i] = s + theta[o.attentionOutputBias]
        }
    }

    /// α = softmax of the logits over the unmasked instances (masked ones get exactly 0), and M = Σ α·h into
    /// `pooled` (64). `instance(i)` gives instance i's logit a and fused embedding h, or nil when it is masked. A
    /// bag with no unmasked instance (the sampler never makes one) pools to M = 0 instead of PyTorch's NaN.
    static func pool(
        count: Int, attention: UnsafeMutablePointer<Double>, pooled: UnsafeMutablePointer<Double>,
        instance: (Int) -> (logit: Double, fused: UnsafePointer<Double>)?
    ) {
        pooled.update(repeating: 0, count: width)
        var largest = -Double.infinity
        for i in 0..<count {
            if let item = instance(i) { largest = max(largest, item.logit) }
        }
        var total = 0.0
        for i in 0..<count {
            if let item = instance(i) {
                let weight = exp(item.logit - largest)
                attention[i] = weight
                total += weight
            } else {
                attention[i] = 0
            }
        }
        guard total > 0 else { return }
        for i in 0..<count {
            guard attention[i] != 0, let item = instance(i) else { continue }
            attention[i] /= total
            let alpha = attention[i]
            for j in 0..<width { pooled[j] += alpha * item.fused[j] }
        }
    }

    /// p = sigmoid(W_f2 · (s ⊙ relu(q)) + b_f2), q = W_f1 · M + b_f1; `dropout` is s (training), nil for none.
    /// Writes q into `hidden` when given (the backward pass needs it).
    static func classify(
        _ pooled: UnsafePointer<Double>, weights: Weights, dropout: UnsafePointer<Double>? = nil,
        hidden: UnsafeMutablePointer<Double>? = nil
    ) -> Double {
        let theta = weights.theta
        let o = weights.offsets
        var logit = theta[o.classifierOutputBias]
        for k in 0..<hiddenWidth {
            let row = theta + o.classifierHiddenWeight + k * width
            var s = theta[o.classifierHiddenBias + k]
            for j in 0..<width { s += row[j] * pooled[j] }
            hidden?[k] = s
            let activation = theta[o.classifierOutputWeight + k] * max(s, 0)
            logit += dropout.map { activation * $0[k] } ?? activation
        }
        return 1 / (1 + exp(-logit))
    }
}
