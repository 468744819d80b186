extension BagSampler {
    /// One bag drawn from `generator`, appended to `instances`, for training (spec §6: one fresh bag
    /// per slide per epoch, the seed continuing across epochs, so the caller keeps one generator).
    ///
    /// The draws are those of one bag of `sample(clusters:)`: L = max(1, trunc(normal(mean, sd))),
    /// then per cluster `min(L, count)` tiles uniformly with replacement, or one `BagSet.masked`
    /// instance for an empty cluster. `bagCount` and `seed` play no part.
    ///
    /// - Returns: L.
    @discardableResult
    public func drawBag(
        clusters members: [[Int32]], using generator: inout SeededGenerator, into instances: inout [Int32]
    ) -> Int {
        let drawn = generator.nextNormal(mean: meanLength, standardDeviation: lengthStandardDeviation)
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
