/// An optional per-scale, per-channel standardisation of tile features, applied after the backbones and
/// before clustering and the heads: `f'[s][c] = (f[s][c] − mean[s][c]) / std[s][c]`.
///
/// Not part of the published model (model spec §4 feeds the backbone features to the head as they are);
/// a model uses it only when its `model.toml` names a `feature_normalization` file, which `csmil train
/// --normalize-features` writes from its training features. The head's first layer is shared by the
/// three scales, so it cannot remove an offset or a spread that differs between scales; backbones
/// trained per scale (the paper's SimSiam) give comparable features, untrained seeded ones do not.
///
/// The file is a safetensors (or `torch.save`) file with two float32 tensors of shape [3, D]: `mean` and
/// `std`, scale 0 = 20x.
public struct FeatureNormalization: Sendable, Equatable {
    /// The tensor names in the file.
    public static let meanName = "mean"
    public static let standardDeviationName = "std"
    /// A channel whose spread is below this is constant: it is centred, not scaled.
    public static let smallestDeviation: Float = 1e-6

    /// D, the features per scale.
    public let featureSize: Int
    /// `[scale][D]`, scale 0 = 20x.
    public let mean: [Float]
    /// `[scale][D]`, each > 0.
    public let standardDeviation: [Float]
    /// 1 / `standardDeviation`.
    private let inverse: [Float]

    /// - Precondition: `mean` and `standardDeviation` hold 3 × `featureSize` finite values, the deviations
    ///   positive.
    public init(mean: [Float], standardDeviation: [Float], featureSize: Int) {
        let count = CSMILHead.scaleCount * featureSize
        precondition(mean.count == count && standardDeviation.count == count, "3 × D means and deviations")
        precondition(mean.allSatisfy(\.isFinite), "finite means")
        precondition(standardDeviation.allSatisfy { $0.isFinite && $0 > 0 }, "positive, finite deviations")
        self.featureSize = featureSize
        self.mean = mean
        self.standardDeviation = standardDeviation
        inverse = standardDeviation.map { 1 / $0 }
    }

    /// The normalisation in `weights` (`mean` and `std`, [3, D]); `file` names it in errors.
    public init(stateDict weights: StateDict, featureSize: Int, file: String) throws(CheckpointError) {
        let shape = [CSMILHead.scaleCount, featureSize]
        try Checkpoint.check(
            weights, expected: [(Self.meanName, shape), (Self.standardDeviationName, shape)], file: file)
        let mean = weights[Self.meanName]!.values
        let deviation = weights[Self.standardDeviationName]!.values
        guard mean.allSatisfy(\.isFinite), deviation.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw CheckpointError(
                code: .corrupt, file: file,
                message: "is not a feature normalisation: its means must be finite and its standard "
                    + "deviations finite and positive",
                fix: "Write it again with csmil train --normalize-features, or remove feature_normalization "
                    + "from model.toml if the heads were trained without it.")
        }
        self.init(mean: mean, standardDeviation: deviation, featureSize: featureSize)
    }

    /// The tensors to write (`CheckpointWriter.safetensors`).
    public func stateDict() -> StateDict {
        var dict = StateDict()
        let shape = [CSMILHead.scaleCount, featureSize]
        dict.set(Self.meanName, Tensor(shape: shape, values: mean))
        dict.set(Self.standardDeviationName, Tensor(shape: shape, values: standardDeviation))
        return dict
    }

    /// Normalises `tileCount` tiles of `[tile][scale][D]` features in place.
    public func apply(_ features: UnsafeMutablePointer<Float>, tileCount: Int) {
        let perTile = CSMILHead.scaleCount * featureSize
        mean.withUnsafeBufferPointer { mean in
            inverse.withUnsafeBufferPointer { inverse in
                for tile in 0..<tileCount {
                    let row = features + tile * perTile
                    for i in 0..<perTile { row[i] = (row[i] - mean[i]) * inverse[i] }
                }
            }
        }
    }

    /// Sums of features over many slides, for the mean and standard deviation of each scale and channel.
    public struct Accumulator: Sendable {
        public let featureSize: Int
        /// Tiles added.
        public private(set) var tileCount = 0
        private var sums: [Double]
        private var squares: [Double]

        public init(featureSize: Int) {
            self.featureSize = featureSize
            sums = [Double](repeating: 0, count: CSMILHead.scaleCount * featureSize)
            squares = sums
        }

        /// Adds `tileCount` tiles of `[tile][scale][D]` features.
        public mutating func add(_ features: UnsafeBufferPointer<Float>, tileCount: Int) {
            let perTile = CSMILHead.scaleCount * featureSize
            precondition(features.count >= tileCount * perTile, "fewer features than tiles")
            for tile in 0..<tileCount {
                for i in 0..<perTile {
                    let value = Double(features[tile * perTile + i])
                    sums[i] += value
                    squares[i] += value * value
                }
            }
            self.tileCount += tileCount
        }

        /// The normalisation of the tiles added (population standard deviation); nil before any tile.
        public func normalization() -> FeatureNormalization? {
            guard tileCount > 0 else { return nil }
            let n = Double(tileCount)
            let mean = sums.map { $0 / n }
            let deviation = zip(squares, mean).map { square, mean -> Float in
                let spread = Float(max(square / n - mean * mean, 0).squareRoot())
                return spread >= FeatureNormalization.smallestDeviation ? spread : 1
            }
            return FeatureNormalization(
                mean: mean.map { Float($0) }, standardDeviation: deviation, featureSize: featureSize)
        }
    }
}
