import COpenBLAS

/// A CS-MIL model ready to run: the three backbones and the head ensemble of spec §1, loaded from the
/// files a `ModelManifest` names and checked against its architecture, with the manifest's clustering,
/// sampling and decision settings (spec §5).
///
/// Immutable once loaded, so one model serves every thread; the per-thread state (input batches,
/// network workspaces) lives in the `TripletEmbedder`s it makes. Loading and scoring run BLAS: call
/// them from a thread of your own, not Swift's cooperative pool.
public final class Model: Sendable {
    /// The manifest the model was loaded from.
    public let manifest: ModelManifest
    /// The backbones of scales 0, 1 and 2: the 20x tile, the 10x context and the 5x context.
    public let backbones: [Backbone]
    /// The number format the backbones compute in (`[pipeline] precision`); the heads are always fp32.
    public let precision: Precision
    /// The head ensemble, configured from the manifest (see `Model.configuration(for:)`).
    public let scorer: SlideScorer
    /// The per-scale feature standardisation the manifest names, applied by the embedders this model
    /// makes; nil for the published layout.
    public let featureNormalization: FeatureNormalization?

    /// D, the features per image of every backbone and the input size of every head.
    public var featureSize: Int { manifest.architecture.featureSize }

    /// Loads and checks every file the manifest names.
    ///
    /// The heads are loaded first: they are small, so a missing or wrong head is reported before
    /// hundreds of megabytes of backbones are read. Each backbone is `Checkpoint.loadBackbone` (SimSiam's
    /// `backbone.` names, or plain torchvision names) into a `ResNet` of the manifest's architecture;
    /// each head is `Checkpoint.load` into a `CSMILHead` for that architecture's D.
    ///
    /// - Parameter precision: the backbones' number format; for bf16, `Precision.prepare(architecture:)` must
    ///   have accepted this CPU first.
    /// - Throws: `ModelError` naming the file, its role (`backbone_20x`, `heads[3]`, …) and what to do;
    ///   it wraps the `CheckpointError` or `HeadError` behind it.
    public init(manifest: ModelManifest, precision: Precision = .fp32) throws(ModelError) {
        try Self.validate(manifest)
        var heads: [CSMILHead] = []
        for file in manifest.heads {
            heads.append(try Self.loadHead(file, architecture: manifest.architecture))
        }
        let normalization = try manifest.featureNormalization.map { file throws(ModelError) in
            try Self.loadFeatureNormalization(file, architecture: manifest.architecture)
        }
        var backbones: [Backbone] = []
        for file in [manifest.backbone20x, manifest.backbone10x, manifest.backbone5x] {
            backbones.append(try Self.loadBackbone(file, architecture: manifest.architecture, precision: precision))
        }
        // Each checkpoint's tensors were freed once folded into its ResNet, but glibc keeps freed heap
        // pages (its mmap threshold grows to 32 MiB after the first large free), about 100 MB for three
        // ResNet-50s: hand them back so the daemon's resident size is what it uses.
        csmil_release_free_heap()
        self.manifest = manifest
        self.backbones = backbones
        self.precision = precision
        featureNormalization = normalization
        scorer = SlideScorer(heads: heads, configuration: Self.configuration(for: manifest))
    }

    /// The scorer settings a manifest gives: k = `clusters`, `bagsPerHead` bags per head drawn with
    /// `seed`, and `threshold`; the k-means seed (0, the reference's `random_state`), its 10 restarts and
    /// the bag length distribution (L ~ normal(3, 1)) are those of spec §5.
    public static func configuration(for manifest: ModelManifest) -> SlideScorer.Configuration {
        SlideScorer.Configuration(
            clusters: manifest.clusters, sampler: BagSampler(bagCount: manifest.bagsPerHead, seed: manifest.seed),
            threshold: manifest.threshold)
    }

    /// An embedder of tile triplets for one thread: each scale through its own backbone, `batchSize`
    /// tiles at a time (see `TripletEmbedder`), its features normalised when the model says so.
    ///
    /// - Parameter threads: threads that share each batch (default: one per core).
    public func makeTripletEmbedder(batchSize: Int, threads: Int = Parallel.workers) -> TripletEmbedder {
        TripletEmbedder(
            backbones: backbones, batchSize: batchSize, threads: threads, normalization: featureNormalization)
    }

    /// Scores a slide (spec §5): k-means on the 20x features, the manifest's bags, every head on every
    /// bag, the mean over bags and heads, and the decision at the manifest's threshold.
    ///
    /// - Parameters:
    ///   - features: `[tile][scale][D]` floats (scale 0 = 20x), at least `tileCount × 3 × D` of them,
    ///     as `TripletEmbedder.embed` writes them; a memory-mapped spill file does.
    ///   - tileCount: the slide's tissue tiles; 0 gives `.noTissue`.
    public func score(features: UnsafeBufferPointer<Float>, tileCount: Int) -> SlideScoring {
        precondition(tileCount >= 0, "a negative tile count")
        return scorer.score(features: features, tileCount: tileCount)
    }

    /// The same, asking `shouldStop` during the clustering and before the heads (the daemon's shutdown): nil when it
    /// said yes.
    public func score(
        features: UnsafeBufferPointer<Float>, tileCount: Int, shouldStop: () -> Bool
    ) -> SlideScoring? {
        precondition(tileCount >= 0, "a negative tile count")
        return scorer.score(features: features, tileCount: tileCount, shouldStop: shouldStop)
    }

    // MARK: - Loading

    /// Refuses settings the scorer cannot run with; the daemon's `model.toml` reader checks the same.
    static func validate(_ manifest: ModelManifest) throws(ModelError) {
        func invalid(_ key: String, _ problem: String, fix: String) -> ModelError {
            ModelError(
                code: .invalidManifest, role: key, file: "model.toml",
                message: "model \(manifest.name): \(key) \(problem)", fix: fix)
        }
        if manifest.heads.isEmpty {
            throw invalid(
                "heads", "lists no head files",
                fix: "List the CS-MIL head checkpoints in model.toml, e.g. heads = [\"heads/0_model.pth\"].")
        }
        if manifest.bagsPerHead < 1 {
            throw invalid(
                "bags_per_head", "is \(manifest.bagsPerHead); it must be at least 1",
                fix: "Use the published model's value, bags_per_head = 200.")
        }
        if manifest.clusters < 1 {
            throw invalid(
                "clusters", "is \(manifest.clusters); it must be at least 1",
                fix: "Use the published model's value, clusters = 8.")
        }
        if !(0...1).contains(manifest.threshold) {
            throw invalid(
                "threshold", "is \(manifest.threshold); it must be a probability between 0 and 1",
                fix: "Use the probability at which a slide is called positive, e.g. threshold = 0.5.")
        }
    }

    /// One head file into a `CSMILHead` for `architecture`'s features.
    static func loadHead(_ file: ModelManifest.File, architecture: Architecture) throws(ModelError) -> CSMILHead {
        let weights: StateDict
        do {
            weights = try Checkpoint.load(path: file.resolvedPath)
        } catch {
            throw ModelError(file, error)
        }
        do {
            return try CSMILHead(stateDict: weights, featureSize: architecture.featureSize)
        } catch {
            throw ModelError(file, error, weights: weights, architecture: architecture)
        }
    }

    /// The feature normalisation file (`mean` and `std`, [3, D] for `architecture`).
    static func loadFeatureNormalization(
        _ file: ModelManifest.File, architecture: Architecture
    ) throws(ModelError) -> FeatureNormalization {
        do {
            let weights = try Checkpoint.load(path: file.resolvedPath)
            return try FeatureNormalization(
                stateDict: weights, featureSize: architecture.featureSize, file: file.resolvedPath)
        } catch {
            throw ModelError(file, error)
        }
    }

    /// One backbone file into a network of `architecture` at `precision`.
    static func loadBackbone(
        _ file: ModelManifest.File, architecture: Architecture, precision: Precision = .fp32
    ) throws(ModelError) -> Backbone {
        let weights: StateDict
        do {
            weights = try Checkpoint.loadBackbone(path: file.resolvedPath)
        } catch {
            throw ModelError(file, error)
        }
        // Named before anything is folded; and ResNet-18's tensors are a subset of ResNet-34's, so a
        // deeper backbone would otherwise load as the shallower one.
        if let held = Self.architecture(of: weights), held != architecture {
            throw ModelError(backbone: file, holding: held, expected: architecture)
        }
        let network: Backbone
        do {
            network = try Backbone(
                architecture: architecture, weights: weights, precision: precision, file: file.resolvedPath)
        } catch {
            throw ModelError(backbone: file, error, weights: weights, architecture: architecture)
        }
        let extra = Self.extraBlocks(in: weights, beyond: architecture)
        if !extra.isEmpty {
            throw ModelError(backbone: file, extra: extra, architecture: architecture)
        }
        return network
    }

    /// The architecture whose backbone `weights` holds: every tensor of it with its shape, and no
    /// residual block beyond it. Nil when none fits.
    static func architecture(of weights: StateDict) -> Architecture? {
        Architecture.allCases.first { candidate in
            ResNetLayout(candidate).expectedTensors.allSatisfy { weights[$0.name]?.shape == $0.shape }
                && extraBlocks(in: weights, beyond: candidate).isEmpty
        }
    }

    /// The residual-block tensors (`layer…`) in `weights` that `architecture` does not have.
    static func extraBlocks(in weights: StateDict, beyond architecture: Architecture) -> [String] {
        let known = Set(ResNetLayout(architecture).expectedTensors.map(\.name))
        return weights.names.filter {
            $0.hasPrefix("layer") && !known.contains($0) && !$0.hasSuffix(".num_batches_tracked")
        }
    }
}

// MARK: - Errors naming the role

extension ModelError {
    /// "heads[1]" or, when `model.toml` wrote a relative path, `heads[1] ("heads/1.pth" in model.toml)`.
    private static func role(_ file: ModelManifest.File) -> String {
        file.path == file.resolvedPath ? file.role : "\(file.role) (\"\(file.path)\" in model.toml)"
    }

    /// The file could not be read as a checkpoint.
    init(_ file: ModelManifest.File, _ error: CheckpointError) {
        self.init(
            code: Code(error.code), role: file.role, file: file.resolvedPath,
            message: "\(Self.role(file)): \(error.message)", fix: error.fix, cause: .checkpoint(error))
    }

    /// A head file was read but its tensors are not a CS-MIL head for `architecture`.
    init(_ file: ModelManifest.File, _ error: HeadError, weights: StateDict, architecture: Architecture) {
        let role = Self.role(file)
        let path = file.resolvedPath
        let expected = Checkpoint.describe(error.expectedShape)
        let message: String
        let fix: String
        if error.code == .shapeMismatch, error.tensor == "embedding_net.0.weight", let found = error.foundShape,
            found.count == 4
        {
            let trained = found[1]
            let fitting = Architecture.allCases.filter { $0.featureSize == trained }.map(\.rawValue)
            message =
                "\(role): the CS-MIL head takes \(trained)-dimensional features, but model.toml's "
                + "architecture \(architecture.rawValue) gives \(architecture.featureSize)"
            fix =
                fitting.isEmpty
                ? "No supported backbone gives \(trained) features; list heads trained on "
                    + "\(architecture.rawValue) features."
                : "Set architecture to the backbone the heads were trained with ("
                    + fitting.joined(separator: " or ") + "), or list heads trained on \(architecture.rawValue) "
                    + "features."
        } else if error.code == .missingTensor, Self.looksLikeBackbone(weights) {
            message = "\(role) holds a ResNet backbone, not a CS-MIL head (it has no \(error.tensor))"
            fix =
                "List the head checkpoints (the N_model….pth files) under heads, and the SimSiam backbones under "
                + "backbone_20x, backbone_10x and backbone_5x."
        } else {
            let problem =
                switch error.code {
                case .missingTensor: "tensor \(error.tensor) \(expected) is missing"
                case .shapeMismatch:
                    "tensor \(error.tensor) has shape \(error.foundShape.map(Checkpoint.describe) ?? "none"), "
                        + "expected \(expected)"
                }
            message = "\(role) is not a CS-MIL head (spec §4): \(problem)"
            fix =
                "Check that heads lists this model's CS-MIL head checkpoints (the N_model….pth files its "
                + "training saved), trained on \(architecture.rawValue) features."
        }
        self.init(
            code: Code(error.code), role: file.role, file: path, message: message, fix: fix, cause: .head(error))
    }

    /// A backbone file was read but its tensors are not a `architecture` backbone, nor one of another
    /// architecture.
    init(backbone file: ModelManifest.File, _ error: CheckpointError, weights: StateDict, architecture: Architecture) {
        let role = Self.role(file)
        let path = file.resolvedPath
        let message: String
        let fix: String
        if weights["embedding_net.0.weight"] != nil {
            message = "\(role) holds a CS-MIL head, not a backbone"
            fix =
                "Point \(file.role) at the SimSiam backbone checkpoint of that scale, and list the head "
                + "checkpoints under heads."
        } else {
            message = "\(role): \(error.message)"
            fix =
                "Check that \(file.role) names this model's \(Self.scaleDescription(file.role)) SimSiam backbone, "
                + "a torchvision \(architecture.rawValue)."
        }
        self.init(
            code: Code(error.code), role: file.role, file: path, message: message, fix: fix,
            cause: .checkpoint(error))
    }

    /// A backbone file that has every tensor of `architecture` and residual blocks beyond it, but is
    /// no architecture csmil knows.
    init(backbone file: ModelManifest.File, extra: [String], architecture: Architecture) {
        let more = extra.count == 1 ? "" : " and \(extra.count - 1) more"
        self.init(
            code: .wrongArchitecture, role: file.role, file: file.resolvedPath,
            message: "\(Self.role(file)) holds a deeper network than a \(architecture.rawValue): it has "
                + "\(extra[0])\(more), which a \(architecture.rawValue) has not",
            fix: "Set architecture in model.toml to the backbone these files hold, or point \(file.role) at "
                + "this model's \(architecture.rawValue) backbone.")
    }

    /// A backbone file that holds a ResNet of another architecture.
    init(backbone file: ModelManifest.File, holding other: Architecture, expected architecture: Architecture) {
        self.init(
            code: .wrongArchitecture, role: file.role, file: file.resolvedPath,
            message: "\(Self.role(file)) holds a \(other.rawValue) backbone, but model.toml says "
                + "architecture = \"\(architecture.rawValue)\"",
            fix: "If all three backbones are \(other.rawValue), set architecture = \"\(other.rawValue)\" in "
                + "model.toml (the heads must have been trained on its features); otherwise point \(file.role) "
                + "at this model's \(architecture.rawValue) backbone.")
    }

    private static func looksLikeBackbone(_ weights: StateDict) -> Bool {
        weights["conv1.weight"] != nil || weights["backbone.conv1.weight"] != nil
    }

    private static func scaleDescription(_ role: String) -> String {
        switch role {
        case "backbone_20x": "256-px (20x)"
        case "backbone_10x": "512-px (10x)"
        case "backbone_5x": "1024-px (5x)"
        default: "matching"
        }
    }
}
