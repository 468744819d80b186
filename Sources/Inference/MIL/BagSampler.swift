/// The bags drawn for one slide (spec §5), flat: bag b's instances are
/// `instances[offsets[b] ..< offsets[b + 1]]`, each a tile index or `BagSet.masked`.
public struct BagSet: Sendable, Equatable {
    /// The instance standing for an empty cluster: all-zero features, mask 0.
    public static let masked: Int32 = -1

    /// `bagCount + 1` offsets into `instances`.
    public var offsets: [Int]
    /// Tile indices (or `masked`), bag after bag, cluster 0 first within a bag.
    public var instances: [Int32]
    /// The drawn length L of each bag (instances per non-empty cluster at most).
    public var lengths: [Int]

    public init(offsets: [Int], instances: [Int32], lengths: [Int]) {
        precondition(offsets.count == lengths.count + 1 && offsets.last == instances.count, "inconsistent bag set")
        self.offsets = offsets
        self.instances = instances
        self.lengths = lengths
    }

    /// The number of bags.
    public var count: Int { lengths.count }

    /// The instances of bag `index`.
    public subscript(index: Int) -> ArraySlice<Int32> { instances[offsets[index]..<offsets[index + 1]] }
}

/// Draws the bags of spec §5 from a slide's cluster labels.
///
/// For each bag, `L = max(1, trunc(normal(meanLength, lengthStandardDeviation)))`; then for each
/// cluster c in `0 ..< clusterCount`: `min(L, count_c)` tiles of c drawn uniformly **with
/// replacement**, or, when c has no tile, one `BagSet.masked` instance. All draws come from one
/// `SeededGenerator(seed:)` in a fixed order (per bag: the length, then the tile draws cluster by
/// cluster), so a seed gives the same bags on every run; every head of the ensemble sees these same
/// bags, as in the reference. The reference's numpy `RandomState` stream is not reproduced, only its
/// distributions.
public struct BagSampler: Sendable, Equatable {
    /// Bags per head (200 in the reference).
    public var bagCount: Int
    /// Mean of the normal that L is drawn from (3).
    public var meanLength: Double
    /// Standard deviation of that normal (1).
    public var lengthStandardDeviation: Double
    /// Seed of the generator (1 in the reference).
    public var seed: UInt64

    public init(bagCount: Int = 200, meanLength: Double = 3, lengthStandardDeviation: Double = 1, seed: UInt64 = 1) {
        precondition(bagCount >= 1, "at least one bag")
        self.bagCount = bagCount
        self.meanLength = meanLength
        self.lengthStandardDeviation = lengthStandardDeviation
        self.seed = seed
    }

    /// The bags for tiles whose clusters are `labels` (each in `0 ..< clusterCount`).
    public func sample(labels: [Int32], clusterCount: Int) -> BagSet {
        precondition(clusterCount >= 1, "at least one cluster")
        var members = [[Int32]](repeating: [], count: clusterCount)
        for (tile, label) in labels.enumerated() {
            precondition(
                label >= 0 && Int(label) < clusterCount, "tile \(tile) has cluster \(label), not in 0..<\(clusterCount)"
            )
            members[Int(label)].append(Int32(tile))
        }
        return sample(clusters: members)
    }

    /// The bags for clusters given by their member tiles (a cluster may be empty).
    public func sample(clusters members: [[Int32]]) -> BagSet {
        var generator = SeededGenerator(seed: seed)
        var offsets = [0]
        var instances: [Int32] = []
        var lengths: [Int] = []
        offsets.reserveCapacity(bagCount + 1)
        lengths.reserveCapacity(bagCount)
        for _ in 0..<bagCount {
            lengths.append(drawBag(clusters: members, using: &generator, into: &instances))
            offsets.append(instances.count)
        }
        return BagSet(offsets: offsets, instances: instances, lengths: lengths)
    }

    /// One bag drawn from `generator`, appended to `instances`: L = max(1, trunc(normal(mean, sd))), then per
    /// cluster `min(L, count)` tiles uniformly with replacement, or one `BagSet.masked` instance for an empty
    /// cluster. ``sample(clusters:)`` draws its bags with it from one generator; training (spec §6: one fresh bag
    /// per slide per epoch, the seed continuing across epochs) keeps a generator of its own. `bagCount` and
    /// `seed` play no part.
    ///
    /// - Returns: L.
    @discardableResult
    public func drawBag(
        clusters members: [[Int32]], using generator: inout SeededGenerator, into instances: inout [Int32]
    ) -> Int {
        let drawn = generator.nextNormal(mean: meanLength, standardDeviation: lengthStandardDeviation)
        // Python's int(): truncation toward zero; then at least 1 (and no overflow on wild draws).
        let length = drawn >= 1 ? Int(min(drawn, 1e9)) : 1
        for tiles in members {
            if tiles.isEmpty {
                instances.append(BagSet.masked)
            } else {
                for _ in 0..<min(length, tiles.count) {
                    instances.append(tiles[generator.nextInt(below: tiles.count)])
                }
            }
        }
        return length
    }
}
