/// The outcome of `KMeans.fit`: centres, the cluster of every point, and the fit's inertia.
public struct KMeansResult: Sendable, Equatable {
    /// The cluster centres, `clusters × dimension` floats, row-major.
    public var centroids: [Float]
    /// The cluster of each point, in `0 ..< clusters`, consistent with `centroids` (every point is
    /// labelled with its nearest centre, the lowest index on a tie).
    public var labels: [Int32]
    /// The sum over points of the squared Euclidean distance to their centre, accumulated in Double.
    public var inertia: Double
    /// Lloyd iterations of the restart that was kept (0 when the distinct points were the centres).
    public var iterations: Int
    /// The k actually used: the k asked for, or the number of distinct points when there are fewer
    /// (spec §5).
    public var clusters: Int
    /// The length of one point (and one centre).
    public var dimension: Int

    public init(centroids: [Float], labels: [Int32], inertia: Double, iterations: Int, clusters: Int, dimension: Int) {
        precondition(centroids.count == clusters * dimension, "centroids must hold clusters × dimension floats")
        self.centroids = centroids
        self.labels = labels
        self.inertia = inertia
        self.iterations = iterations
        self.clusters = clusters
        self.dimension = dimension
    }

    /// The number of points in each cluster.
    public var clusterSizes: [Int] {
        var sizes = [Int](repeating: 0, count: clusters)
        for label in labels { sizes[Int(label)] += 1 }
        return sizes
    }
}

/// Per-slide k-means with the semantics of scikit-learn 1.x `KMeans(init="k-means++",
/// algorithm="lloyd")`, the clustering of spec §5.
///
/// - Seeding: greedy k-means++, the first centre a uniformly drawn point, then for each further
///   centre `2 + ⌊ln k⌋` candidates drawn with probability proportional to the squared distance
///   to the nearest chosen centre, keeping the candidate that lowers the potential most.
/// - Lloyd iterations until the labels stop changing or the summed squared centre shift is at most
///   `tolerance × mean(var(X, axis: 0))` (scikit-learn's `_tolerance`), at most `maxIterations`;
///   then a final assignment so that the labels match the centres.
/// - A cluster left empty is moved to the point farthest from its centre (scikit-learn's
///   `_relocate_empty_clusters_dense`); a cluster emptied by such a move keeps its previous centre.
/// - The best of `restarts` runs by inertia (the first on a tie), all drawing from one
///   `SeededGenerator(seed:)` in turn, so a seed gives one result.
/// - With at most k distinct points (spec §5: "fewer tiles than k: k = number of distinct tiles"),
///   the distinct points, in order of first appearance, are the centres: inertia 0, 0 iterations,
///   `clusters` = the number of distinct points.
///
/// Exact labels differ from scikit-learn's (another random generator); the inertia is what compares.
///
/// Numerics: like scikit-learn the data are centred on their mean first, but block by block into a
/// small buffer instead of a centred copy, so memory is O(n + k·d + block) whatever n. Distances are
/// `‖x‖² − 2x·c + ‖c‖²` with `x·c` from `cblas_sgemm` (float32) and the norms and sums in Double;
/// centre sums and the inertia are accumulated in Double, the inertia directly as `Σ(x − c)²` (the
/// reported one with the returned float32 centroids, so the result is self-consistent).
/// This runs BLAS and long loops: call it from a thread of your own, not Swift's cooperative pool.
public enum KMeans {
    /// Clusters `n` points of dimension `d`.
    ///
    /// - Parameters:
    ///   - data: the points; point `i` is `data[i * rowStride ..< i * rowStride + d]`.
    ///   - n: the number of points, at least 1.
    ///   - d: the dimension, at least 1.
    ///   - rowStride: floats from one point to the next (`d` when nil), e.g. `3 · D` to cluster the 20x
    ///     features of a `[tile][scale][D]` array in place.
    ///   - k: the number of clusters asked for, at least 1.
    ///   - seed: seed of the `SeededGenerator` behind the k-means++ draws.
    ///   - restarts: runs from different seedings; the one with the lowest inertia is kept.
    ///   - maxIterations: Lloyd iterations per run at most.
    ///   - tolerance: relative tolerance on the summed squared centre shift.
    ///   - shouldStop: asked before every restart and Lloyd iteration; once it says yes the runs end early and the
    ///     result is not a real fit (the caller, who asked to stop, discards it).
    public static func fit(
        _ data: UnsafeBufferPointer<Float>, count n: Int, dimension d: Int, rowStride: Int? = nil,
        clusters k: Int, seed: UInt64, restarts: Int = 10, maxIterations: Int = 300, tolerance: Double = 1e-4,
        shouldStop: () -> Bool = { false }
    ) -> KMeansResult {
        let stride = rowStride ?? d
        precondition(n >= 1, "k-means needs at least one point")
        precondition(d >= 1 && stride >= d, "dimension must be at least 1 and the row stride at least the dimension")
        precondition(k >= 1 && restarts >= 1 && maxIterations >= 1, "k, restarts and maxIterations must be positive")
        precondition(data.count >= (n - 1) * stride + d, "data holds fewer than \(n) points of dimension \(d)")
        guard let base = data.baseAddress else { preconditionFailure("data has no storage") }

        let distinct = distinctRows(base, count: n, dimension: d, stride: stride, atMost: k + 1)
        if distinct.count <= k {
            return trivialFit(base, count: n, dimension: d, stride: stride, representatives: distinct)
        }

        let engine = KMeansEngine(base, count: n, dimension: d, stride: stride, clusters: k)
        let absoluteTolerance = tolerance == 0 ? 0 : tolerance * engine.meanVariance
        var generator = SeededGenerator(seed: seed)
        var best: (inertia: Double, centers: [Float], labels: [Int32], iterations: Int)?
        for restart in 0..<restarts {
            if restart > 0 && shouldStop() { break }
            engine.seedCenters(using: &generator)
            let iterations = engine.lloyd(
                maxIterations: maxIterations, tolerance: absoluteTolerance, shouldStop: shouldStop)
            let inertia = engine.assignFinal()
            if best == nil || inertia < best!.inertia {
                best = (inertia, engine.centeredCenters(), engine.currentLabels(), iterations)
            }
        }
        let kept = best!
        var centroids = kept.centers
        for c in 0..<k {
            for j in 0..<d { centroids[c * d + j] += engine.mean[j] }
        }
        // The inertia of the centres as returned (rounded to float32 after adding the mean back).
        let inertia = exactInertia(
            base, count: n, dimension: d, stride: stride, centroids: centroids, labels: kept.labels)
        return KMeansResult(
            centroids: centroids, labels: kept.labels, inertia: inertia, iterations: kept.iterations,
            clusters: k, dimension: d)
    }

    /// Σᵢ ‖xᵢ − c_label(i)‖², accumulated in Double.
    static func exactInertia(
        _ base: UnsafePointer<Float>, count n: Int, dimension d: Int, stride: Int, centroids: [Float], labels: [Int32]
    ) -> Double {
        centroids.withUnsafeBufferPointer { centers in
            var total = 0.0
            for i in 0..<n {
                let row = base + i * stride
                let center = centers.baseAddress! + Int(labels[i]) * d
                var s = 0.0
                for j in 0..<d {
                    let difference = Double(row[j]) - Double(center[j])
                    s += difference * difference
                }
                total += s
            }
            return total
        }
    }

    /// The first rows (indices, in order) that are pairwise different, stopping at `limit` of them.
    static func distinctRows(
        _ base: UnsafePointer<Float>, count n: Int, dimension d: Int, stride: Int, atMost limit: Int
    ) -> [Int] {
        var representatives: [Int] = []
        var buckets: [Int: [Int]] = [:]
        for i in 0..<n {
            let row = base + i * stride
            var hasher = Hasher()
            for j in 0..<d {
                let v = row[j]
                hasher.combine(v == 0 ? 0 : v.bitPattern)  // -0.0 == 0.0
            }
            let key = hasher.finalize()
            let same = buckets[key, default: []].contains { other in
                let otherRow = base + other * stride
                for j in 0..<d where otherRow[j] != row[j] { return false }
                return true
            }
            if !same {
                representatives.append(i)
                buckets[key, default: []].append(i)
                if representatives.count >= limit { break }
            }
        }
        return representatives
    }

    /// Every distinct row its own cluster.
    private static func trivialFit(
        _ base: UnsafePointer<Float>, count n: Int, dimension d: Int, stride: Int, representatives: [Int]
    ) -> KMeansResult {
        var centroids = [Float]()
        centroids.reserveCapacity(representatives.count * d)
        for r in representatives {
            centroids.append(contentsOf: UnsafeBufferPointer(start: base + r * stride, count: d))
        }
        var labels = [Int32](repeating: 0, count: n)
        for i in 0..<n {
            let row = base + i * stride
            for (c, r) in representatives.enumerated() {
                let other = base + r * stride
                var equal = true
                for j in 0..<d where other[j] != row[j] {
                    equal = false
                    break
                }
                if equal {
                    labels[i] = Int32(c)
                    break
                }
            }
        }
        return KMeansResult(
            centroids: centroids, labels: labels, inertia: 0, iterations: 0, clusters: representatives.count,
            dimension: d)
    }
}
