import Foundation
import Inference
import Testing

/// A slide of `tiles` random non-negative `[tile][scale][D]` features.
private func syntheticSlide(tiles: Int, featureSize d: Int, seed: UInt64 = 5) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<tiles * 3 * d).map { _ in
        generator.nextUniform() < 0.3 ? 0 : Float(-log(1 - generator.nextUniform()) * 0.8)
    }
}

/// Two different heads for D = 24: the fixture's and one with every weight scaled by 0.7.
private func twoHeads() throws -> [CSMILHead] {
    let fixture = try HeadFixture.load("d24")
    var scaled = StateDict()
    for name in fixture.weights.names {
        let tensor = fixture.weights[name]!
        scaled.set(name, Tensor(shape: tensor.shape, values: tensor.values.map { $0 * 0.7 }))
    }
    return [try fixture.head(), try CSMILHead(stateDict: scaled)]
}

/// The bag's features gathered from the slide (masked instances all zero) and its mask.
private func gather(_ bag: ArraySlice<Int32>, from slide: [Float], featureSize d: Int) -> ([Float], [Bool]) {
    var features: [Float] = []
    var mask: [Bool] = []
    for tile in bag {
        if tile == BagSet.masked {
            features += [Float](repeating: 0, count: 3 * d)
            mask.append(false)
        } else {
            features += slide[Int(tile) * 3 * d..<(Int(tile) + 1) * 3 * d]
            mask.append(true)
        }
    }
    return (features, mask)
}

private func clusters(_ labels: [Int32], _ k: Int) -> [[Int32]] {
    var members = [[Int32]](repeating: [], count: k)
    for (tile, label) in labels.enumerated() { members[Int(label)].append(Int32(tile)) }
    return members
}

@Suite("Bag sampling (spec §5)")
struct BagSamplerTests {
    /// 30 tiles over 8 clusters: sizes 1, 2, 3, 4, 5, 6, 9 and an empty cluster 7.
    static let labels: [Int32] =
        [0, 1, 1] + [Int32](repeating: 2, count: 3) + [Int32](repeating: 3, count: 4)
        + [Int32](repeating: 4, count: 5) + [Int32](repeating: 5, count: 6) + [Int32](repeating: 6, count: 9)

    @Test("a seed gives the same bags every time")
    func deterministicForASeed() {
        let sampler = BagSampler(seed: 1)
        #expect(
            sampler.sample(labels: Self.labels, clusterCount: 8) == sampler.sample(labels: Self.labels, clusterCount: 8)
        )
        #expect(sampler.sample(labels: Self.labels, clusterCount: 8).count == 200)
    }

    @Test("different seeds give different bags")
    func seedsDiffer() {
        let one = BagSampler(seed: 1).sample(labels: Self.labels, clusterCount: 8)
        let two = BagSampler(seed: 2).sample(labels: Self.labels, clusterCount: 8)
        #expect(one != two)
    }

    @Test("each non-empty cluster gives min(L, size) of its own tiles, drawn with replacement")
    func drawsWithReplacementWithinClusters() {
        let bags = BagSampler().sample(labels: Self.labels, clusterCount: 8)
        let members = clusters(Self.labels, 8)
        var sawRepeat = false
        for b in 0..<bags.count {
            var instances = Array(bags[b])
            for (c, tiles) in members.enumerated() {
                let take = tiles.isEmpty ? 1 : min(bags.lengths[b], tiles.count)
                let part = Array(instances.prefix(take))
                instances.removeFirst(take)
                if tiles.isEmpty {
                    #expect(part == [BagSet.masked])
                } else {
                    #expect(part.allSatisfy { tiles.contains($0) }, "bag \(b) cluster \(c)")
                    if Set(part).count < part.count { sawRepeat = true }
                }
            }
            #expect(instances.isEmpty)
        }
        #expect(sawRepeat, "200 bags drawing up to 6 of 6 tiles with replacement never repeated a tile")
    }

    @Test("an empty cluster is one masked all-zero instance, in its cluster's place")
    func emptyClusterIsOneMaskedInstance() {
        let bags = BagSampler().sample(clusters: [[0, 1], [], [2]])
        for b in 0..<bags.count {
            let bag = Array(bags[b])
            let first = min(bags.lengths[b], 2)
            #expect(bag.count == first + 2)
            #expect(bag[first] == BagSet.masked)
            #expect(bag.filter { $0 == BagSet.masked }.count == 1)
        }
    }

    @Test("L is at least 1 and distributed as trunc(normal(3, 1)) clipped at 1")
    func lengthDistribution() {
        let bags = BagSampler(bagCount: 40_000).sample(clusters: [[0]])
        #expect(bags.lengths.allSatisfy { $0 >= 1 })
        // P(L = 1) = Φ(−1), P(2) = P(3) = Φ(1) − Φ(0), P(4) = Φ(2) − Φ(1), P(5) = Φ(3) − Φ(2).
        let expected: [Int: Double] = [1: 0.158655, 2: 0.341345, 3: 0.341345, 4: 0.135905, 5: 0.021400]
        for (length, probability) in expected.sorted(by: { $0.key < $1.key }) {
            let observed = Double(bags.lengths.filter { $0 == length }.count) / 40_000
            #expect(abs(observed - probability) < 0.008, "P(L = \(length)) = \(observed), expected \(probability)")
        }
        let mean = Double(bags.lengths.reduce(0, +)) / 40_000
        #expect(abs(mean - 2.524) < 0.02)  // E[max(1, trunc(X))] for X ~ normal(3, 1) ≈ 2.5241
    }

    @Test("the generator's normal draws have the asked mean and standard deviation")
    func normalDraws() {
        var generator = SeededGenerator(seed: 9)
        let draws = (0..<100_000).map { _ in generator.nextNormal(mean: 3, standardDeviation: 1) }
        let mean = draws.reduce(0, +) / Double(draws.count)
        let variance = draws.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(draws.count)
        #expect(abs(mean - 3) < 0.02)
        #expect(abs(variance.squareRoot() - 1) < 0.02)
        var uniform = SeededGenerator(seed: 9)
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { counts[uniform.nextInt(below: 7)] += 1 }
        #expect(counts.allSatisfy { abs($0 - 10_000) < 400 })
    }
}

@Suite("Slide scoring with the ensemble (spec §5)")
struct BagEnsembleScoringTests {
    static let d = 24
    static let tiles = 30

    private func scored(
        _ heads: [CSMILHead], slide: [Float], labels: [Int32] = BagSamplerTests.labels, clusterCount: Int = 8,
        bags: Int = 50
    ) throws -> SlideScore {
        let scorer = SlideScorer(heads: heads, configuration: .init(sampler: BagSampler(bagCount: bags)))
        let result = slide.withUnsafeBufferPointer {
            scorer.score(features: $0, tileCount: labels.count, labels: labels, clusterCount: clusterCount)
        }
        return try #require(result.score)
    }

    @Test("every head sees the same bags, and each bag's p is the head's forward pass on the gathered bag")
    func sameBagsForEveryHead() throws {
        let heads = try twoHeads()
        let slide = syntheticSlide(tiles: Self.tiles, featureSize: Self.d)
        let score = try scored(heads, slide: slide)
        let bags = BagSampler(bagCount: 50).sample(labels: BagSamplerTests.labels, clusterCount: 8)
        let workspace = CSMILHeadWorkspace()
        var largest = 0.0
        for (h, head) in heads.enumerated() {
            #expect(score.bagProbabilities[h].count == 50)
            for b in 0..<bags.count {
                let (features, mask) = gather(bags[b], from: slide, featureSize: Self.d)
                let direct = features.withUnsafeBufferPointer {
                    head.forward(bag: $0, mask: mask, workspace: workspace)
                }
                largest = max(largest, abs(direct.probability - score.bagProbabilities[h][b]))
            }
        }
        print("slide scorer vs gathered bag forward: max |Δp| \(largest)")
        #expect(largest < 1e-6)
    }

    @Test("head probability is the mean over bags, slide probability the mean over heads, decision ≥ threshold")
    func ensembleMeans() throws {
        let heads = try twoHeads()
        let slide = syntheticSlide(tiles: Self.tiles, featureSize: Self.d)
        let score = try scored(heads, slide: slide)
        for (h, probabilities) in score.bagProbabilities.enumerated() {
            #expect(abs(score.headProbabilities[h] - probabilities.reduce(0, +) / Double(probabilities.count)) < 1e-12)
        }
        #expect(abs(score.probability - (score.headProbabilities[0] + score.headProbabilities[1]) / 2) < 1e-12)
        #expect(score.headProbabilities[0] != score.headProbabilities[1])
        #expect(score.isPositive == (score.probability >= 0.5))

        let single = try scored([heads[0]], slide: slide)
        let twice = try scored([heads[0], heads[0]], slide: slide)
        // Two separate runs: float32 GEMMs may sum in another order under another OpenBLAS thread count.
        #expect(abs(twice.probability - single.probability) < 1e-6)

        let atThreshold = SlideScore(
            probability: 0.5, threshold: 0.5, headProbabilities: [0.5], bagProbabilities: [[0.5]], tileAttention: [],
            scaleWeights: [], scaleWeightsSoftmax: [], clusterCount: 1)
        #expect(atThreshold.isPositive)
    }

    @Test(
        "per-tile attention is the mean of α · (real instances in the bag) over heads and slots; undrawn tiles get nil")
    func tileAttentionNormalisation() throws {
        let heads = try twoHeads()
        let slide = syntheticSlide(tiles: Self.tiles, featureSize: Self.d)
        let score = try scored(heads, slide: slide)
        let bags = BagSampler(bagCount: 50).sample(labels: BagSamplerTests.labels, clusterCount: 8)
        var sums = [Double](repeating: 0, count: Self.tiles)
        var counts = [Int](repeating: 0, count: Self.tiles)
        let workspace = CSMILHeadWorkspace()
        for head in heads {
            for b in 0..<bags.count {
                let (features, mask) = gather(bags[b], from: slide, featureSize: Self.d)
                let output = features.withUnsafeBufferPointer {
                    head.forward(bag: $0, mask: mask, workspace: workspace)
                }
                let real = mask.filter { $0 }.count
                for (i, tile) in bags[b].enumerated() where tile != BagSet.masked {
                    sums[Int(tile)] += Double(output.attention[i]) * Double(real)
                    counts[Int(tile)] += 1
                }
            }
        }
        for tile in 0..<Self.tiles {
            if counts[tile] == 0 {
                #expect(score.tileAttention[tile] == nil)
            } else {
                let value = try #require(score.tileAttention[tile])
                #expect(abs(Double(value) - sums[tile] / Double(counts[tile])) < 1e-5)
            }
        }
        // With 50 bags, the tile alone in cluster 0 is in every bag.
        #expect(score.tileAttention[0] != nil)
    }

    @Test("uniform attention gives every drawn tile an attention of exactly 1, whatever its bag's size")
    func uniformAttentionIsOne() throws {
        let fixture = try HeadFixture.load("d24")
        var weights = fixture.weights
        weights.set("attention.2.weight", Tensor(shape: [1, 32], values: [Float](repeating: 0, count: 32)))
        let head = try CSMILHead(stateDict: weights)
        let slide = syntheticSlide(tiles: 40, featureSize: Self.d)
        let labels = (0..<40).map { Int32($0 % 3) }
        let score = try scored([head], slide: slide, labels: labels, clusterCount: 5, bags: 5)
        let drawn = score.tileAttention.compactMap { $0 }
        #expect(!drawn.isEmpty)
        #expect(drawn.allSatisfy { abs($0 - 1) < 1e-6 })
        #expect(score.tileAttention.contains { $0 == nil })
    }

    @Test("per-tile scale weights are the heads' mean r, and their softmax over scales sums to 1")
    func tileScaleWeights() throws {
        let heads = try twoHeads()
        let slide = syntheticSlide(tiles: Self.tiles, featureSize: Self.d)
        let score = try scored(heads, slide: slide)
        var perHead: [[Float]] = []
        for head in heads {
            var r = [Float](repeating: 0, count: Self.tiles * 3)
            slide.withUnsafeBufferPointer { features in
                r.withUnsafeMutableBufferPointer {
                    head.scaleWeights(tiles: features, count: Self.tiles, into: $0, workspace: CSMILHeadWorkspace())
                }
            }
            perHead.append(r)
        }
        for tile in 0..<Self.tiles {
            #expect(score.scaleWeights[tile].count == 3)
            for s in 0..<3 {
                let mean = (Double(perHead[0][tile * 3 + s]) + Double(perHead[1][tile * 3 + s])) / 2
                #expect(abs(Double(score.scaleWeights[tile][s]) - mean) < 1e-6)
            }
            let softmax = score.scaleWeightsSoftmax[tile]
            #expect(abs(softmax.reduce(0, +) - 1) < 1e-6)
            let r = score.scaleWeights[tile]
            #expect((r[0] > r[1]) == (softmax[0] > softmax[1]))
        }
    }

    @Test("a slide without tissue tiles has no score")
    func zeroTiles() throws {
        let scorer = SlideScorer(heads: try twoHeads())
        let empty: [Float] = []
        let result = empty.withUnsafeBufferPointer { scorer.score(features: $0, tileCount: 0) }
        #expect(result == .noTissue)
        #expect(result.score == nil)
    }

    @Test("fewer distinct tiles than k: k-means makes that many clusters and bags have no masked instance")
    func fewerTilesThanClusters() throws {
        let heads = try twoHeads()
        var slide = syntheticSlide(tiles: 5, featureSize: Self.d)
        let scorer = SlideScorer(heads: heads, configuration: .init(sampler: BagSampler(bagCount: 20)))
        let clustering = slide.withUnsafeBufferPointer { scorer.cluster(features: $0, tileCount: 5) }
        #expect(clustering.clusters == 5)
        let score = try #require(slide.withUnsafeBufferPointer { scorer.score(features: $0, tileCount: 5) }.score)
        #expect(score.clusterCount == 5)
        #expect(score.tileAttention.allSatisfy { $0 != nil })
        #expect((0...1).contains(score.probability))

        // Tile 3 repeats tile 1's 20x features: 4 distinct 20x features, so 4 clusters.
        let perTile = 3 * Self.d
        for j in 0..<Self.d { slide[3 * perTile + j] = slide[1 * perTile + j] }
        let fewer = try #require(slide.withUnsafeBufferPointer { scorer.score(features: $0, tileCount: 5) }.score)
        #expect(fewer.clusterCount == 4)
    }

    @Test("a single tile is scored from bags of that one tile")
    func singleTile() throws {
        let heads = try twoHeads()
        let slide = syntheticSlide(tiles: 1, featureSize: Self.d)
        let scorer = SlideScorer(heads: heads, configuration: .init(sampler: BagSampler(bagCount: 10)))
        let score = try #require(slide.withUnsafeBufferPointer { scorer.score(features: $0, tileCount: 1) }.score)
        #expect(score.clusterCount == 1)
        #expect(score.tileAttention == [1])
        let direct = slide.withUnsafeBufferPointer {
            heads[0].forward(bag: $0, mask: [true], workspace: CSMILHeadWorkspace())
        }
        #expect(abs(score.headProbabilities[0] - direct.probability) < 1e-6)
    }
}
