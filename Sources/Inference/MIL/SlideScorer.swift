import Foundation

/// Scores a slide with an ensemble of CS-MIL heads (spec §5): clusters the 20x features, draws the
/// bags once, runs every head on every bag and averages.
///
/// Nothing in spec §4 before the attention softmax depends on the bag: e, r, h and the attention
/// logit a are functions of one tile. So each head runs once per tile (one GEMM per block of tiles,
/// the block read once for all heads), and a bag is then only a masked softmax over the logits of
/// its tiles, a weighted sum of their h and the classifier: the same numbers as
/// `CSMILHead.forward(bag:)` on the gathered features, without gathering them.
///
/// Memory beyond the features: O(tiles) for labels and per-tile outputs, plus h and a of the tiles
/// the bags drew, per head. Runs BLAS: call it from a thread of your own, not Swift's cooperative pool.
public struct SlideScorer: Sendable {
    /// How a slide is clustered, sampled and decided.
    public struct Configuration: Sendable, Equatable {
        /// k of the per-slide k-means (8).
        public var clusters: Int
        /// Seed of the k-means++ seeding (the reference passes `random_state=0`).
        public var clusteringSeed: UInt64
        /// k-means restarts (10).
        public var clusteringRestarts: Int
        /// The bags every head sees (200 bags, L ~ normal(3, 1), seed 1).
        public var sampler: BagSampler
        /// A slide is positive when its probability is ≥ this (0.5).
        public var threshold: Double

        public init(
            clusters: Int = 8, clusteringSeed: UInt64 = 0, clusteringRestarts: Int = 10,
            sampler: BagSampler = BagSampler(), threshold: Double = 0.5
        ) {
            self.clusters = clusters
            self.clusteringSeed = clusteringSeed
            self.clusteringRestarts = clusteringRestarts
            self.sampler = sampler
            self.threshold = threshold
        }
    }

    /// The ensemble, all heads for the same feature size.
    public let heads: [CSMILHead]
    public var configuration: Configuration

    /// D, the feature size of every head.
    public var featureSize: Int { heads[0].featureSize }

    public init(heads: [CSMILHead], configuration: Configuration = Configuration()) {
        precondition(!heads.isEmpty, "an ensemble needs at least one head")
        precondition(heads.allSatisfy { $0.featureSize == heads[0].featureSize }, "heads disagree on the feature size")
        self.heads = heads
        self.configuration = configuration
    }

    /// The k-means of spec §5 on the 20x features of `[tile][scale][D]` features, in place.
    public func cluster(
        features: UnsafeBufferPointer<Float>, tileCount: Int, shouldStop: () -> Bool = { false }
    ) -> KMeansResult {
        KMeans.fit(
            features, count: tileCount, dimension: featureSize, rowStride: CSMILHead.scaleCount * featureSize,
            clusters: configuration.clusters, seed: configuration.clusteringSeed,
            restarts: configuration.clusteringRestarts, shouldStop: shouldStop)
    }

    /// Clusters the slide, then scores it.
    ///
    /// - Parameters:
    ///   - features: `[tile][scale][D]` floats (scale 0 = 20x), `tileCount × 3 × D` of them; a
    ///     memory-mapped spill file does: tiles are read in blocks.
    ///   - tileCount: the slide's tissue tiles; 0 gives `.noTissue`.
    public func score(features: UnsafeBufferPointer<Float>, tileCount: Int) -> SlideScoring {
        score(features: features, tileCount: tileCount, shouldStop: { false })!
    }

    /// The same, asking `shouldStop` during the clustering (its longest part) and before the heads: nil when it said
    /// yes.
    public func score(
        features: UnsafeBufferPointer<Float>, tileCount: Int, shouldStop: () -> Bool
    ) -> SlideScoring? {
        guard tileCount > 0 else { return .noTissue }
        let clustering = cluster(features: features, tileCount: tileCount, shouldStop: shouldStop)
        if shouldStop() { return nil }
        return score(
            features: features, tileCount: tileCount, labels: clustering.labels, clusterCount: clustering.clusters)
    }

    /// Scores a slide whose tiles are already clustered.
    ///
    /// - Parameters:
    ///   - labels: the cluster of each tile, in `0 ..< clusterCount`.
    ///   - clusterCount: the clusters bags are drawn from; an empty one gives a masked instance.
    public func score(
        features: UnsafeBufferPointer<Float>, tileCount: Int, labels: [Int32], clusterCount: Int
    ) -> SlideScoring {
        guard tileCount > 0 else { return .noTissue }
        let d = featureSize
        let perTile = CSMILHead.scaleCount * d
        precondition(features.count >= tileCount * perTile, "features hold fewer than \(tileCount) tiles of 3 × \(d)")
        precondition(labels.count == tileCount, "one label per tile")
        let bags = configuration.sampler.sample(labels: labels, clusterCount: clusterCount)

        // The tiles the bags drew, each given a slot for its h and a.
        var slotOfTile = [Int32](repeating: -1, count: tileCount)
        var slotCount = 0
        for tile in bags.instances where tile != BagSet.masked && slotOfTile[Int(tile)] < 0 {
            slotOfTile[Int(tile)] = Int32(slotCount)
            slotCount += 1
        }
        let width = CSMILHead.embeddingSize
        let headCount = heads.count
        var fused = [Double](repeating: 0, count: headCount * slotCount * width)
        var logits = [Double](repeating: 0, count: headCount * slotCount)
        var scaleSums = [Double](repeating: 0, count: tileCount * CSMILHead.scaleCount)

        // Per tile, every head: one pass over the features, a block of tiles at a time.
        let workspace = CSMILHeadWorkspace(instances: CSMILHead.tileBlock)
        let base = features.baseAddress!
        fused.withUnsafeMutableBufferPointer { fused in
            logits.withUnsafeMutableBufferPointer { logits in
                scaleSums.withUnsafeMutableBufferPointer { scaleSums in
                    var start = 0
                    while start < tileCount {
                        let rows = min(CSMILHead.tileBlock, tileCount - start)
                        for (index, head) in heads.enumerated() {
                            head.embed(base + start * perTile, instances: rows, workspace: workspace)
                            for i in 0..<rows {
                                let tile = start + i
                                for s in 0..<CSMILHead.scaleCount {
                                    scaleSums[tile * 3 + s] += workspace.scaleWeights[3 * i + s]
                                }
                                let slot = Int(slotOfTile[tile])
                                guard slot >= 0 else { continue }
                                let at = index * slotCount + slot
                                logits[at] = workspace.logits[i]
                                (fused.baseAddress! + at * width).update(
                                    from: workspace.fused + i * width, count: width)
                            }
                        }
                        start += rows
                    }
                }
            }
        }

        // The bags, head by head.
        var attentionSums = [Double](repeating: 0, count: tileCount)
        var attentionCounts = [Int32](repeating: 0, count: tileCount)
        var bagProbabilities: [[Double]] = []
        let longest = (0..<bags.count).map { bags.offsets[$0 + 1] - bags.offsets[$0] }.max() ?? 0
        workspace.reserve(instances: longest)
        let alpha = workspace.attention
        fused.withUnsafeBufferPointer { fused in
            bags.instances.withUnsafeBufferPointer { instances in
                for (index, head) in heads.enumerated() {
                    var probabilities: [Double] = []
                    probabilities.reserveCapacity(bags.count)
                    for b in 0..<bags.count {
                        let first = bags.offsets[b]
                        let count = bags.offsets[b + 1] - first
                        let p = head.pool(count: count, into: alpha) { i in
                            let tile = instances[first + i]
                            guard tile != BagSet.masked else { return nil }
                            let at = index * slotCount + Int(slotOfTile[Int(tile)])
                            return (logits[at], fused.baseAddress! + at * width)
                        }
                        probabilities.append(p)
                        var real = 0
                        for i in 0..<count where instances[first + i] != BagSet.masked { real += 1 }
                        for i in 0..<count where instances[first + i] != BagSet.masked {
                            let tile = Int(instances[first + i])
                            attentionSums[tile] += alpha[i] * Double(real)
                            attentionCounts[tile] += 1
                        }
                    }
                    bagProbabilities.append(probabilities)
                }
            }
        }

        let headProbabilities = bagProbabilities.map { $0.reduce(0, +) / Double($0.count) }
        let probability = headProbabilities.reduce(0, +) / Double(headCount)
        let tileAttention: [Float?] = (0..<tileCount).map {
            attentionCounts[$0] > 0 ? Float(attentionSums[$0] / Double(attentionCounts[$0])) : nil
        }
        var scaleWeights: [[Float]] = []
        var scaleWeightsSoftmax: [[Float]] = []
        scaleWeights.reserveCapacity(tileCount)
        scaleWeightsSoftmax.reserveCapacity(tileCount)
        for tile in 0..<tileCount {
            let mean = (0..<CSMILHead.scaleCount).map { scaleSums[tile * 3 + $0] / Double(headCount) }
            scaleWeights.append(mean.map { Float($0) })
            let largest = mean.max()!
            let exps = mean.map { exp($0 - largest) }
            let total = exps.reduce(0, +)
            scaleWeightsSoftmax.append(exps.map { Float($0 / total) })
        }
        return .scored(
            SlideScore(
                probability: probability, threshold: configuration.threshold, headProbabilities: headProbabilities,
                bagProbabilities: bagProbabilities, tileAttention: tileAttention, scaleWeights: scaleWeights,
                scaleWeightsSoftmax: scaleWeightsSoftmax, clusterCount: clusterCount))
    }
}
