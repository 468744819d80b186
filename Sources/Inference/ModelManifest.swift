/// The backbone architectures a CS-MIL model can use (torchvision ResNet v1.5 without `fc`).
public enum Architecture: String, Sendable, CaseIterable, Codable {
    case resnet18, resnet34, resnet50

    /// D, the length of one tile's feature vector after global average pooling.
    public var featureSize: Int {
        switch self {
        case .resnet18, .resnet34: 512
        case .resnet50: 2048
        }
    }
}

/// What a model directory's `model.toml` says: the architecture, the decision rule, the
/// sampling parameters of spec §5 and the files that hold the weights.
///
/// A plain value: the daemon reads and validates the TOML and hands this to Inference.
public struct ModelManifest: Sendable, Equatable {
    /// One weight file the model needs, with the role it plays.
    public struct File: Sendable, Equatable {
        /// "backbone_20x", "backbone_10x", "backbone_5x", "heads[i]" or "feature_normalization".
        public var role: String
        /// The path as written in `model.toml`, relative to the model directory or absolute.
        public var path: String
        /// `path` resolved against the model directory.
        public var resolvedPath: String

        public init(role: String, path: String, resolvedPath: String) {
            self.role = role
            self.path = path
            self.resolvedPath = resolvedPath
        }
    }

    public var name: String
    public var architecture: Architecture
    /// A slide is positive when its probability is ≥ this.
    public var threshold: Double
    public var positiveLabel: String
    public var negativeLabel: String
    /// Bags drawn per head (spec §5; 200 in the published model).
    public var bagsPerHead: Int
    /// k of the per-slide k-means (spec §5; 8 in the published model).
    public var clusters: Int
    /// Seed of the bag sampler (spec §5; 1 in the published model).
    public var seed: UInt64
    public var backbone20x: File
    public var backbone10x: File
    public var backbone5x: File
    public var heads: [File]
    /// csmil's optional per-scale feature standardisation (`FeatureNormalization`); nil in the published
    /// model.
    public var featureNormalization: File?

    public init(
        name: String, architecture: Architecture, threshold: Double, positiveLabel: String,
        negativeLabel: String, bagsPerHead: Int, clusters: Int, seed: UInt64,
        backbone20x: File, backbone10x: File, backbone5x: File, heads: [File], featureNormalization: File? = nil
    ) {
        self.name = name
        self.architecture = architecture
        self.threshold = threshold
        self.positiveLabel = positiveLabel
        self.negativeLabel = negativeLabel
        self.bagsPerHead = bagsPerHead
        self.clusters = clusters
        self.seed = seed
        self.backbone20x = backbone20x
        self.backbone10x = backbone10x
        self.backbone5x = backbone5x
        self.heads = heads
        self.featureNormalization = featureNormalization
    }

    /// Every file in a fixed order: the three backbones, the heads, then the feature normalisation if any.
    public var files: [File] {
        [backbone20x, backbone10x, backbone5x] + heads + (featureNormalization.map { [$0] } ?? [])
    }
}
