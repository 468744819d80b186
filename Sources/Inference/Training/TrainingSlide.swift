import Foundation

/// One labelled slide for training, from its cached features: the frozen backbones ran once, so
/// epochs only draw bags from these features (spec §6).
public struct TrainingSlide: Sendable {
    /// The slide's name, for progress, errors and the summary.
    public var name: String
    /// Its label: true for positive.
    public var label: Bool
    /// The cross-validation fold it belongs to (the head of fold k validates on the slides of fold k
    /// and trains on the others).
    public var fold: Int
    /// The number of tissue tiles.
    public var tileCount: Int
    /// `[tile][scale][D]` float32 features (scale 0 = 20x), host byte order, as the scorer and the
    /// feature spill files use them. May be memory-mapped (`Data(contentsOf:options: .alwaysMapped)`).
    public var features: Data
    /// The k-means cluster of each tile (spec §5), in `0 ..< clusterCount`.
    public var clusterLabels: [Int32]
    /// The clusters bags are drawn from; an empty one gives a masked instance.
    public var clusterCount: Int

    public init(
        name: String, label: Bool, fold: Int, tileCount: Int, features: Data, clusterLabels: [Int32],
        clusterCount: Int
    ) {
        self.name = name
        self.label = label
        self.fold = fold
        self.tileCount = tileCount
        self.features = features
        self.clusterLabels = clusterLabels
        self.clusterCount = clusterCount
    }

    /// A slide whose features are `features` (`tileCount × 3 × D` floats).
    public init(
        name: String, label: Bool, fold: Int, tileCount: Int, features: [Float], clusterLabels: [Int32],
        clusterCount: Int
    ) {
        self.init(
            name: name, label: label, fold: fold, tileCount: tileCount,
            features: features.withUnsafeBytes { Data($0) }, clusterLabels: clusterLabels, clusterCount: clusterCount)
    }

    /// A slide clustered as the scorer clusters it (spec §5: k-means of the 20x features, k = 8,
    /// k-means++ from `configuration.clusteringSeed`, best of `clusteringRestarts`).
    public static func clustered(
        name: String, label: Bool, fold: Int, tileCount: Int, features: Data, featureSize: Int,
        configuration: SlideScorer.Configuration = SlideScorer.Configuration()
    ) -> TrainingSlide {
        precondition(tileCount >= 1, "slide \(name) has no tissue tiles to cluster")
        let result = features.withUnsafeBytes { raw in
            raw.withMemoryRebound(to: Float.self) { floats in
                KMeans.fit(
                    floats, count: tileCount, dimension: featureSize, rowStride: CSMILHead.scaleCount * featureSize,
                    clusters: configuration.clusters, seed: configuration.clusteringSeed,
                    restarts: configuration.clusteringRestarts)
            }
        }
        return TrainingSlide(
            name: name, label: label, fold: fold, tileCount: tileCount, features: features,
            clusterLabels: result.labels, clusterCount: result.clusters)
    }

    /// The tiles of each cluster.
    var members: [[Int32]] {
        var members = [[Int32]](repeating: [], count: clusterCount)
        for (tile, label) in clusterLabels.enumerated() { members[Int(label)].append(Int32(tile)) }
        return members
    }

    /// Calls `body` with the features as floats.
    func withFeatures<Result>(_ body: (UnsafeBufferPointer<Float>) throws -> Result) rethrows -> Result {
        try features.withUnsafeBytes { raw in try raw.withMemoryRebound(to: Float.self, body) }
    }
}
