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
    public var featureSize: Int { parameters.featureSize }

    /// The weights, Double, in `CSMILHeadParameters`' layout (what training updates, read the same way here).
    public let parameters: CSMILHeadParameters
    /// W_emb rounded to float32, for `cblas_sgemm`.
    let embeddingWeight: [Float]

    /// The head in `stateDict`, by its spec §4 names (a `module.` prefix, as DataParallel saves, is
    /// accepted too); extra tensors are ignored.
    ///
    /// - Parameter featureSize: D; when nil, taken from `embedding_net.0.weight`.
    /// - Throws: `HeadError` naming the first tensor that is missing or has the wrong shape.
    public init(stateDict: StateDict, featureSize: Int? = nil) throws(HeadError) {
        self.init(parameters: try CSMILHeadParameters(stateDict: stateDict, featureSize: featureSize))
    }

    /// The head with these weights.
    public init(parameters: CSMILHeadParameters) {
        self.parameters = parameters
        let start = parameters.offsets.embeddingWeight
        embeddingWeight = parameters.values[start..<(start + Self.embeddingSize * parameters.featureSize)].map {
            Float($0)
        }
    }

    /// Runs `body` with the weights as the shared kernels read them.
    func withWeights<Result>(_ body: (CSMILHeadForward.Weights) -> Result) -> Result {
        parameters.values.withUnsafeBufferPointer { theta in
            embeddingWeight.withUnsafeBufferPointer { embedding in
                body(
                    CSMILHeadForward.Weights(
                        theta: theta.baseAddress!, offsets: parameters.offsets, embedding: embedding.baseAddress!,
                        featureSize: featureSize))
            }
        }
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
    /// workspace's `embeddings` (e), `scaleWeights` (r), `fused` (h) and `logits` (a) for them
    /// (``CSMILHeadForward/instances(_:count:weights:into:)``). The workspace must have room for `n` instances.
    func embed(_ features: UnsafePointer<Float>, instances n: Int, workspace: CSMILHeadWorkspace) {
        withWeights { weights in
            CSMILHeadForward.instances(
                features, count: n, weights: weights,
                into: CSMILHeadForward.Buffers(
                    products: workspace.products, embeddings: workspace.embeddings, scaleHidden: workspace.hidden,
                    scaleWeights: workspace.scaleWeights, fused: workspace.fused, attentionHidden: workspace.hidden,
                    logits: workspace.logits))
        }
    }

    /// The bag-level part of spec §4: α = masked softmax of the logits, M = Σ α·h, p = fc6(M).
    ///
    /// `instance(i)` gives instance i's logit a and fused embedding h, or nil when it is masked. Writes α into
    /// `attention` (count values; masked ones exactly 0) and returns p.
    func pool(
        count: Int, into attention: UnsafeMutablePointer<Double>,
        instance: (Int) -> (logit: Double, fused: UnsafePointer<Double>)?
    ) -> Double {
        withUnsafeTemporaryAllocation(of: Double.self, capacity: Self.embeddingSize) { pooled in
            CSMILHeadForward.pool(
                count: count, attention: attention, pooled: pooled.baseAddress!, instance: instance)
            return withWeights { CSMILHeadForward.classify(UnsafePointer(pooled.baseAddress!), weights: $0) }
        }
    }
}
