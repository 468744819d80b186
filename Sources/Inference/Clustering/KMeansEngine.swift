import Foundation

/// The buffers and passes of one `KMeans.fit` call: every buffer is allocated once here; every pass
/// streams the points block by block through `cblas_sgemm`, straight from the caller's memory.
///
/// Coordinates: like scikit-learn, which centres dense data before fitting, centres and candidates
/// are kept centred (`c̃ = c − μ`) and every squared norm is that of a centred vector, computed in
/// Double. The points themselves are not copied: the GEMM reads raw rows `x` and the centring is
/// algebra, `x̃·c̃ = x·c̃ − μ·c̃`. So distances `‖x̃‖² − 2x̃·c̃ + ‖c̃‖²` never cancel large norms, and
/// memory stays O(n + k·d + block) whatever n. `KMeans.fit` adds μ back to the centres it returns.
final class KMeansEngine {
    let source: UnsafePointer<Float>
    let n: Int
    let d: Int
    let stride: Int
    let k: Int
    /// Candidates per k-means++ step: 2 + ⌊ln k⌋, as scikit-learn.
    let trials: Int
    /// Rows per GEMM: about 1 MiB of points, so a block is still in cache when the centre sums read
    /// it again.
    let blockRows: Int
    /// μ, the mean of every feature over the points (rounded to float32; `x̃ = x − μ` with this μ).
    let mean: UnsafeMutableBufferPointer<Float>
    /// The mean over features of each feature's (population) variance: `Σ‖x̃‖² / (n·d)`.
    private(set) var meanVariance: Double = 0

    private let norms: UnsafeMutablePointer<Double>  // n: ‖x̃ᵢ‖²
    private let products: UnsafeMutablePointer<Float>  // blockRows × max(k, trials): x·c̃
    private let centers: UnsafeMutablePointer<Float>  // k × d, centred
    private let candidates: UnsafeMutablePointer<Float>  // trials × d, centred
    private let columnNorms: UnsafeMutablePointer<Double>  // max(k, trials): ‖c̃‖²
    private let meanProducts: UnsafeMutablePointer<Double>  // max(k, trials): μ·c̃
    private let candidatePotentials: UnsafeMutablePointer<Double>  // trials
    private let sums: UnsafeMutablePointer<Double>  // k × d: Σ x (raw) per cluster
    private let counts: UnsafeMutablePointer<Int>  // k
    private let labels: UnsafeMutablePointer<Int32>  // n
    private let previousLabels: UnsafeMutablePointer<Int32>  // n
    private let distances: UnsafeMutablePointer<Double>  // n: to the nearest centre (seeding) or own centre
    private let cumulative: UnsafeMutablePointer<Double>  // n
    private let trialDistances: UnsafeMutablePointer<Double>  // n × trials

    init(_ source: UnsafePointer<Float>, count n: Int, dimension d: Int, stride: Int, clusters k: Int) {
        self.source = source
        self.n = n
        self.d = d
        self.stride = stride
        self.k = k
        trials = 2 + Int(log(Double(k)))
        blockRows = max(1, min(n, max(16, (1 << 18) / d)))
        let columns = max(k, trials)
        mean = .allocate(capacity: d)
        norms = .allocate(capacity: n)
        products = .allocate(capacity: blockRows * columns)
        centers = .allocate(capacity: k * d)
        candidates = .allocate(capacity: trials * d)
        columnNorms = .allocate(capacity: columns)
        meanProducts = .allocate(capacity: columns)
        candidatePotentials = .allocate(capacity: trials)
        sums = .allocate(capacity: k * d)
        counts = .allocate(capacity: k)
        labels = .allocate(capacity: n)
        previousLabels = .allocate(capacity: n)
        distances = .allocate(capacity: n)
        cumulative = .allocate(capacity: n)
        trialDistances = .allocate(capacity: n * trials)
        computeStatistics()
    }

    deinit {
        mean.deallocate()
        norms.deallocate()
        products.deallocate()
        centers.deallocate()
        candidates.deallocate()
        columnNorms.deallocate()
        meanProducts.deallocate()
        candidatePotentials.deallocate()
        sums.deallocate()
        counts.deallocate()
        labels.deallocate()
        previousLabels.deallocate()
        distances.deallocate()
        cumulative.deallocate()
        trialDistances.deallocate()
    }

    // MARK: Passes

    /// μ (Double sums), then every ‖x̃ᵢ‖²; their total over `n·d` is the mean per-feature variance.
    private func computeStatistics() {
        let columnSums = UnsafeMutablePointer<Double>.allocate(capacity: d)
        defer { columnSums.deallocate() }
        columnSums.update(repeating: 0, count: d)
        for i in 0..<n {
            let row = source + i * stride
            for j in 0..<d { columnSums[j] += Double(row[j]) }
        }
        for j in 0..<d { mean[j] = Float(columnSums[j] / Double(n)) }
        let mu = UnsafePointer(mean.baseAddress!)
        var total = 0.0
        for i in 0..<n {
            let row = source + i * stride
            var s = 0.0
            for j in 0..<d {
                let centred = Double(row[j]) - Double(mu[j])
                s += centred * centred
            }
            norms[i] = s
            total += s
        }
        meanVariance = total / (Double(n) * Double(d))
    }

    /// `destination = x_i − μ` (float32).
    private func centerRow(_ i: Int, into destination: UnsafeMutablePointer<Float>) {
        let row = source + i * stride
        let mu = mean.baseAddress!
        for j in 0..<d { destination[j] = row[j] - mu[j] }
    }

    /// `‖c̃‖²` and `μ·c̃` of the first `columns` rows of `matrix`, for the distance formula.
    private func prepareColumns(_ matrix: UnsafePointer<Float>, columns: Int) {
        let mu = mean.baseAddress!
        for c in 0..<columns {
            let row = matrix + c * d
            var norm = 0.0
            var dot = 0.0
            for j in 0..<d {
                norm += Double(row[j]) * Double(row[j])
                dot += Double(mu[j]) * Double(row[j])
            }
            columnNorms[c] = norm
            meanProducts[c] = dot
        }
    }

    /// Calls `body(start, rows)` once per block of rows, after `products[r][c] = x_{start+r} · matrix[c]`.
    private func forEachBlock(
        multipliedBy matrix: UnsafePointer<Float>, columns: Int, _ body: (_ start: Int, _ rows: Int) -> Void
    ) {
        var start = 0
        while start < n {
            let rows = min(blockRows, n - start)
            RowMajorGEMM.multiplyTransposed(
                source + start * stride, rows: rows, strideA: stride, matrix, columns: columns, strideB: d,
                inner: d, into: products, strideC: columns)
            body(start, rows)
            start += rows
        }
    }

    /// `‖x̃ᵢ − c̃‖²` from the block's products (clamped at 0 against rounding).
    @inline(__always)
    private func squaredDistance(point i: Int, product: Float, column c: Int) -> Double {
        max(0, norms[i] - 2 * (Double(product) - meanProducts[c]) + columnNorms[c])
    }

    // MARK: k-means++

    /// Greedy k-means++ (scikit-learn's `_kmeans_plusplus` with unit sample weights) into `centers`.
    func seedCenters(using generator: inout SeededGenerator) {
        let first = generator.nextInt(below: n)
        centerRow(first, into: centers)
        prepareColumns(centers, columns: 1)
        var potential = 0.0
        forEachBlock(multipliedBy: centers, columns: 1) { start, rows in
            for r in 0..<rows {
                let distance = squaredDistance(point: start + r, product: products[r], column: 0)
                distances[start + r] = distance
                potential += distance
            }
        }
        let trials = self.trials
        for c in 1..<k {
            var running = 0.0
            for i in 0..<n {
                running += distances[i]
                cumulative[i] = running
            }
            for t in 0..<trials {
                let target = generator.nextUniform() * potential
                centerRow(min(firstIndex(notBelow: target), n - 1), into: candidates + t * d)
            }
            prepareColumns(candidates, columns: trials)
            candidatePotentials.update(repeating: 0, count: trials)
            forEachBlock(multipliedBy: candidates, columns: trials) { start, rows in
                for r in 0..<rows {
                    let i = start + r
                    let nearest = distances[i]
                    for t in 0..<trials {
                        let distance = min(
                            nearest, squaredDistance(point: i, product: products[r * trials + t], column: t))
                        trialDistances[i * trials + t] = distance
                        candidatePotentials[t] += distance
                    }
                }
            }
            var best = 0
            for t in 1..<trials where candidatePotentials[t] < candidatePotentials[best] { best = t }
            potential = candidatePotentials[best]
            for i in 0..<n { distances[i] = trialDistances[i * trials + best] }
            (centers + c * d).update(from: candidates + best * d, count: d)
        }
    }

    /// Starts from the given points as centres instead of k-means++ (tests use it to force an empty
    /// cluster).
    func useCenters(points: [Int]) {
        precondition(points.count == k, "one point per centre")
        for (c, i) in points.enumerated() { centerRow(i, into: centers + c * d) }
    }

    /// numpy's `searchsorted(cumulative, target, side="left")`: the first i with cumulative[i] ≥ target.
    private func firstIndex(notBelow target: Double) -> Int {
        var low = 0
        var high = n
        while low < high {
            let middle = (low + high) / 2
            if cumulative[middle] < target { low = middle + 1 } else { high = middle }
        }
        return low
    }

    // MARK: Lloyd

    /// Assigns every point to its nearest centre (`labels`, `distances`: the lowest index on a tie)
    /// and, when `accumulate`, sums the (raw) points of each cluster into `sums`/`counts`.
    private func assignmentPass(accumulate: Bool) {
        prepareColumns(centers, columns: k)
        if accumulate {
            sums.update(repeating: 0, count: k * d)
            counts.update(repeating: 0, count: k)
        }
        let k = self.k
        let d = self.d
        forEachBlock(multipliedBy: centers, columns: k) { start, rows in
            for r in 0..<rows {
                let i = start + r
                let dots = products + r * k
                // ‖x̃‖² is the same for every centre: compare ‖c̃‖² − 2x̃·c̃.
                var best = 0
                var bestValue = columnNorms[0] - 2 * (Double(dots[0]) - meanProducts[0])
                for c in 1..<k {
                    let value = columnNorms[c] - 2 * (Double(dots[c]) - meanProducts[c])
                    if value < bestValue {
                        best = c
                        bestValue = value
                    }
                }
                labels[i] = Int32(best)
                distances[i] = max(0, norms[i] + bestValue)
                if accumulate {
                    counts[best] += 1
                    let row = source + i * stride
                    let sum = sums + best * d
                    for j in 0..<d { sum[j] += Double(row[j]) }
                }
            }
        }
    }

    /// Moves each empty cluster onto one of the points farthest from their centres, taking that
    /// point out of its own cluster's sum (scikit-learn's `_relocate_empty_clusters_dense`, which
    /// leaves the moved point's label as it was until the next assignment).
    private func relocateEmptyClusters() {
        var empty: [Int] = []
        for c in 0..<k where counts[c] == 0 { empty.append(c) }
        guard !empty.isEmpty else { return }
        // The `empty.count` points with the largest distance to their centre, farthest first.
        var farthest: [Int] = []
        for i in 0..<n {
            if farthest.count == empty.count, distances[i] <= distances[farthest[farthest.count - 1]] { continue }
            var position = farthest.count
            while position > 0, distances[farthest[position - 1]] < distances[i] { position -= 1 }
            farthest.insert(i, at: position)
            if farthest.count > empty.count { farthest.removeLast() }
        }
        for (cluster, point) in zip(empty, farthest) {
            let old = Int(labels[point])
            let row = source + point * stride
            let oldSum = sums + old * d
            let newSum = sums + cluster * d
            for j in 0..<d {
                oldSum[j] -= Double(row[j])
                newSum[j] = Double(row[j])
            }
            counts[cluster] = 1
            counts[old] -= 1
        }
    }

    /// Lloyd iterations from `centers` (scikit-learn's `_kmeans_single_lloyd`): stops when the labels
    /// do not change or the summed squared centre shift is at most `tolerance`; returns the number of
    /// iterations run (`n_iter_`).
    func lloyd(maxIterations: Int, tolerance: Double, shouldStop: () -> Bool = { false }) -> Int {
        previousLabels.update(repeating: -1, count: n)
        let mu = mean.baseAddress!
        var iteration = 0
        while iteration < maxIterations && !shouldStop() {
            iteration += 1
            assignmentPass(accumulate: true)
            relocateEmptyClusters()
            var shift = 0.0
            // A cluster emptied by a relocation keeps its centre.
            for c in 0..<k where counts[c] > 0 {
                let center = centers + c * d
                let sum = sums + c * d
                let count = Double(counts[c])
                for j in 0..<d {
                    let updated = Float(sum[j] / count - Double(mu[j]))
                    let difference = Double(updated) - Double(center[j])
                    shift += difference * difference
                    center[j] = updated
                }
            }
            var unchanged = true
            for i in 0..<n where labels[i] != previousLabels[i] {
                unchanged = false
                break
            }
            if unchanged || shift <= tolerance { break }
            previousLabels.update(from: labels, count: n)
        }
        return iteration
    }

    /// The final E-step, so that the labels match the centres; returns the inertia `Σ‖x̃ − c̃‖²`
    /// accumulated in Double from the points themselves (not from the GEMM).
    func assignFinal() -> Double {
        assignmentPass(accumulate: false)
        let mu = mean.baseAddress!
        var inertia = 0.0
        for i in 0..<n {
            let row = source + i * stride
            let center = centers + Int(labels[i]) * d
            var s = 0.0
            for j in 0..<d {
                let difference = Double(row[j]) - Double(mu[j]) - Double(center[j])
                s += difference * difference
            }
            inertia += s
        }
        return inertia
    }

    func centeredCenters() -> [Float] { Array(UnsafeBufferPointer(start: centers, count: k * d)) }

    func currentLabels() -> [Int32] { Array(UnsafeBufferPointer(start: labels, count: n)) }
}
