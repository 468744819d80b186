import Foundation

/// What one CS-MIL head says about one bag (spec §4).
public struct BagOutput: Sendable, Equatable {
    /// p: the bag's probability of being positive.
    public var probability: Double
    /// α[n]: the attention of each instance; masked instances get exactly 0, the others sum to 1.
    public var attention: [Float]
    /// r[n][s]: the raw cross-scale weights of each instance (s = 0, 1, 2 for 20x, 10x, 5x), no
    /// softmax over scales; masked instances get theirs too, computed from their features.
    public var scaleWeights: [[Float]]

    public init(probability: Double, attention: [Float], scaleWeights: [[Float]]) {
        self.probability = probability
        self.attention = attention
        self.scaleWeights = scaleWeights
    }
}

/// One CS-MIL head (spec §4): per instance, a 1×1-conv embedding of each of the three scales, raw
/// cross-scale weights r, the fused embedding h = Σₛ r·e, gated-free attention over the instances of
/// a bag (masked softmax), and a two-layer classifier on the attention-pooled embedding. Dropout is off.
///
/// Layout: weights are kept as PyTorch stores them (`[out, in]` row-major; a 1×1 conv weight
/// `[out, in, 1, 1]` is the same memory). Instance features are `[instance][scale][D]` floats, so
/// the embedding of all instances and scales is one `cblas_sgemm` of `3N × D` by `Dᵀ × 64`; the
/// small layers after it, the softmax, pooling and classifier run in Double.
public struct CSMILHead: Sendable {
    /// Width of e and h.
    public static let embeddingSize = 64
    /// Width of the hidden layers of `res_attention`, `attention` and `fc6`.
    public static let hiddenSize = 32
    /// Scales per instance: 20x, 10x, 5x.
    public static let scaleCount = 3

    /// D, the length of one scale's feature vector (2048 for ResNet-50).
    public let featureSize: Int

    // W_emb stays float32 for `cblas_sgemm`; the small layers are widened to Double once, at load.
    let embeddingWeight: [Float]  // 64 × D
    let embeddingBias: [Double]  // 64
    let scaleHiddenWeight: [Double]  // 32 × 64
    let scaleHiddenBias: [Double]  // 32
    let scaleOutputWeight: [Double]  // 32
    let scaleOutputBias: Double
    let attentionHiddenWeight: [Double]  // 32 × 64
    let attentionHiddenBias: [Double]  // 32
    let attentionOutputWeight: [Double]  // 32
    let attentionOutputBias: Double
    let classifierHiddenWeight: [Double]  // 32 × 64
    let classifierHiddenBias: [Double]  // 32
    let classifierOutputWeight: [Double]  // 32
    let classifierOutputBias: Double

    /// The head in `stateDict`, by its spec §4 names (a `module.` prefix, as DataParallel saves, is
    /// accepted too); extra tensors are ignored.
    ///
    /// - Parameter featureSize: D; when nil, taken from `embedding_net.0.weight`.
    /// - Throws: `HeadError` naming the first tensor that is missing or has the wrong shape.
    public init(stateDict: StateDict, featureSize: Int? = nil) throws(HeadError) {
        func tensor(_ name: String, _ shape: [Int]) throws(HeadError) -> [Float] {
            guard let found = stateDict[name] ?? stateDict["module." + name] else {
                throw HeadError(code: .missingTensor, tensor: name, expectedShape: shape, foundShape: nil)
            }
            guard found.shape == shape else {
                throw HeadError(code: .shapeMismatch, tensor: name, expectedShape: shape, foundShape: found.shape)
            }
            return found.values
        }
        let e = Self.embeddingSize
        let hidden = Self.hiddenSize
        let d: Int
        if let featureSize {
            d = featureSize
        } else if let weight = stateDict["embedding_net.0.weight"] ?? stateDict["module.embedding_net.0.weight"],
            weight.shape.count == 4, weight.shape[1] > 0
        {
            d = weight.shape[1]
        } else {
            d = 2048
        }
        self.featureSize = d
        func wide(_ name: String, _ shape: [Int]) throws(HeadError) -> [Double] {
            try tensor(name, shape).map(Double.init)
        }
        embeddingWeight = try tensor("embedding_net.0.weight", [e, d, 1, 1])
        embeddingBias = try wide("embedding_net.0.bias", [e])
        scaleHiddenWeight = try wide("res_attention.0.weight", [hidden, e, 1, 1])
        scaleHiddenBias = try wide("res_attention.0.bias", [hidden])
        scaleOutputWeight = try wide("res_attention.2.weight", [1, hidden, 1, 1])
        scaleOutputBias = try wide("res_attention.2.bias", [1])[0]
        attentionHiddenWeight = try wide("attention.0.weight", [hidden, e])
        attentionHiddenBias = try wide("attention.0.bias", [hidden])
        attentionOutputWeight = try wide("attention.2.weight", [1, hidden])
        attentionOutputBias = try wide("attention.2.bias", [1])[0]
        classifierHiddenWeight = try wide("fc6.0.weight", [hidden, e])
        classifierHiddenBias = try wide("fc6.0.bias", [hidden])
        classifierOutputWeight = try wide("fc6.3.weight", [1, hidden])
        classifierOutputBias = try wide("fc6.3.bias", [1])[0]
    }

    // MARK: Public forward passes

    /// The forward pass for one bag.
    ///
    /// - Parameters:
    ///   - features: `[instance][scale][D]` floats, `mask.count × 3 × D` of them.
    ///   - mask: false for padding instances (the all-zero instance of an empty cluster): their
    ///     attention is exactly 0 and they do not reach the pooled embedding.
    ///   - workspace: scratch memory, reused across calls.
    public func forward(
        bag features: UnsafeBufferPointer<Float>, mask: [Bool], workspace: CSMILHeadWorkspace
    ) -> BagOutput {
        let n = mask.count
        precondition(
            features.count == n * Self.scaleCount * featureSize,
            "a bag of \(n) instances needs \(n) × 3 × \(featureSize) floats")
        guard n > 0, let base = features.baseAddress else {
            return BagOutput(
                probability: pool(count: 0, into: workspace.attention) { _ in nil }, attention: [], scaleWeights: [])
        }
        workspace.reserve(instances: n)
        embed(base, instances: n, workspace: workspace)
        let logits = workspace.logits
        let fused = UnsafePointer(workspace.fused)
        let probability = pool(count: n, into: workspace.attention) { i in
            mask[i] ? (logits[i], fused + i * Self.embeddingSize) : nil
        }
        let r = workspace.scaleWeights
        return BagOutput(
            probability: probability,
            attention: (0..<n).map { Float(workspace.attention[$0]) },
            scaleWeights: (0..<n).map { i in [Float(r[3 * i]), Float(r[3 * i + 1]), Float(r[3 * i + 2])] })
    }

    /// r[tile][s] for `count` tiles, which depend on the tile alone, not on the bag.
    ///
    /// - Parameters:
    ///   - features: `[tile][scale][D]` floats, `count × 3 × D` of them.
    ///   - output: `count × 3` floats, row-major.
    public func scaleWeights(
        tiles features: UnsafeBufferPointer<Float>, count: Int, into output: UnsafeMutableBufferPointer<Float>,
        workspace: CSMILHeadWorkspace
    ) {
        precondition(features.count >= count * Self.scaleCount * featureSize, "features hold fewer than \(count) tiles")
        precondition(output.count >= count * Self.scaleCount, "output holds fewer than \(count) × 3 floats")
        guard count > 0, let base = features.baseAddress, let out = output.baseAddress else { return }
        let block = max(1, min(count, Self.tileBlock))
        workspace.reserve(instances: block)
        var start = 0
        while start < count {
            let rows = min(block, count - start)
            embed(base + start * Self.scaleCount * featureSize, instances: rows, workspace: workspace)
            for i in 0..<rows * Self.scaleCount { out[start * Self.scaleCount + i] = Float(workspace.scaleWeights[i]) }
            start += rows
        }
    }

    /// Tiles per embedding call when scoring a whole slide: 128 tiles are 384 GEMM rows.
    static let tileBlock = 128

    // MARK: Kernels

    /// The per-instance part of spec §4 for `n` instances at `features` (`[n][3][D]`): fills the
    /// workspace's `embeddings` (e), `scaleWeights` (r), `fused` (h) and `logits` (a) for them.
    /// The workspace must have room for `n` instances.
    ///
    /// Precision: `W_emb · f` is float32 (`cblas_sgemm`, the only product that grows with D and the
    /// number of tiles); everything after it is Double (`cblas_dgemm` for the 64 → 32 layers), which
    /// costs a few per cent and keeps p within ~1e-7 of a float64 PyTorch forward.
    func embed(_ features: UnsafePointer<Float>, instances n: Int, workspace: CSMILHeadWorkspace) {
        let d = featureSize
        let width = Self.embeddingSize
        let hiddenWidth = Self.hiddenSize
        let rows = n * Self.scaleCount
        let products = workspace.products
        let e = workspace.embeddings
        let hidden = workspace.hidden
        let r = workspace.scaleWeights
        let h = workspace.fused
        let a = workspace.logits

        // e = relu(W_emb · f + b_emb) for every instance and scale: one GEMM.
        embeddingWeight.withUnsafeBufferPointer { w in
            RowMajorGEMM.multiplyTransposed(
                features, rows: rows, strideA: d, w.baseAddress!, columns: width, strideB: d, inner: d,
                into: products, strideC: width)
        }
        embeddingBias.withUnsafeBufferPointer { bias in
            for row in 0..<rows {
                let source = products + row * width
                let out = e + row * width
                for j in 0..<width { out[j] = max(Double(source[j]) + bias[j], 0) }
            }
        }

        // r = W_r2 · relu(W_r1 · e + b_r1) + b_r2 (raw, no softmax over scales).
        scaleHiddenWeight.withUnsafeBufferPointer { w in
            RowMajorGEMM.multiplyTransposed(
                e, rows: rows, strideA: width, w.baseAddress!, columns: hiddenWidth, strideB: width, inner: width,
                into: hidden, strideC: hiddenWidth)
        }
        scaleHiddenBias.withUnsafeBufferPointer { bias in
            scaleOutputWeight.withUnsafeBufferPointer { w2 in
                for row in 0..<rows {
                    let values = hidden + row * hiddenWidth
                    var s = 0.0
                    for j in 0..<hiddenWidth { s += w2[j] * max(values[j] + bias[j], 0) }
                    r[row] = s + scaleOutputBias
                }
            }
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

        // a = W_a2 · tanh(W_a1 · h + b_a1) + b_a2.
        attentionHiddenWeight.withUnsafeBufferPointer { w in
            RowMajorGEMM.multiplyTransposed(
                h, rows: n, strideA: width, w.baseAddress!, columns: hiddenWidth, strideB: width, inner: width,
                into: hidden, strideC: hiddenWidth)
        }
        attentionHiddenBias.withUnsafeBufferPointer { bias in
            attentionOutputWeight.withUnsafeBufferPointer { w2 in
                for i in 0..<n {
                    let values = hidden + i * hiddenWidth
                    var s = 0.0
                    for j in 0..<hiddenWidth { s += w2[j] * tanh(values[j] + bias[j]) }
                    a[i] = s + attentionOutputBias
                }
            }
        }
    }

    /// The bag-level part of spec §4: α = masked softmax of the logits, M = Σ α·h, p = fc6(M).
    ///
    /// `instance(i)` gives instance i's logit a and fused embedding h, or nil when it is masked.
    /// Writes α into `attention` (count values; masked ones exactly 0) and returns p. A bag with no
    /// unmasked instance (the sampler never makes one) pools to M = 0 instead of PyTorch's NaN.
    func pool(
        count: Int, into attention: UnsafeMutablePointer<Double>,
        instance: (Int) -> (logit: Double, fused: UnsafePointer<Double>)?
    ) -> Double {
        let width = Self.embeddingSize
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: width) { pooled in
            pooled.initialize(repeating: 0)
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
            if total > 0 {
                for i in 0..<count {
                    guard attention[i] != 0, let item = instance(i) else { continue }
                    attention[i] /= total
                    let alpha = attention[i]
                    for j in 0..<width { pooled[j] += alpha * item.fused[j] }
                }
            }
            return classify(UnsafePointer(pooled.baseAddress!))
        }
    }

    /// p = sigmoid(W_f2 · relu(W_f1 · M + b_f1) + b_f2), in Double.
    private func classify(_ pooled: UnsafePointer<Double>) -> Double {
        let width = Self.embeddingSize
        var logit = classifierOutputBias
        classifierHiddenWeight.withUnsafeBufferPointer { w in
            for k in 0..<Self.hiddenSize {
                let row = w.baseAddress! + k * width
                var s = classifierHiddenBias[k]
                for j in 0..<width { s += row[j] * pooled[j] }
                logit += classifierOutputWeight[k] * max(s, 0)
            }
        }
        return 1 / (1 + exp(-logit))
    }
}
