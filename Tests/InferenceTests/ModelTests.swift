import Foundation
import Testing

@testable import Inference

/// The outputs tools/make_head_fixtures.py recorded for the head it saved as `Fixtures/heads/*.pth`.
private struct PthHeadFixture: Decodable {
    let torchVersion: String
    let featureSize: Int
    let files: [String]
    let bags: [HeadFixture.Bag]

    static func load() throws -> PthHeadFixture {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(
            PthHeadFixture.self, from: Data(contentsOf: Fixtures.url("heads/head_d24_expected.json")))
    }
}

/// A model directory in a temporary folder, removed when the value goes.
private final class ModelFolder {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("csmil-model-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path + "/heads", withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// The manifest entry for `name` in this folder, after writing `contents` there (if any).
    func file(_ role: String, _ name: String, _ contents: Data?) throws -> ModelManifest.File {
        let resolved = path + "/" + name
        if let contents { try contents.write(to: URL(fileURLWithPath: resolved)) }
        return ModelManifest.File(role: role, path: name, resolvedPath: resolved)
    }

    /// A manifest with the three seeded backbones and `heads` (contents nil: the file is not written),
    /// unless `backbones` replaces them.
    func manifest(
        architecture: Architecture = .resnet18, backbones: [Data] = SeededModel.backboneFiles,
        heads: [(name: String, contents: Data?)] = SeededModel.headFiles, bagsPerHead: Int = 20,
        clusters: Int = 8, seed: UInt64 = 1, threshold: Double = 0.5, normalization: Data? = nil
    ) throws -> ModelManifest {
        let roles = ["backbone_20x", "backbone_10x", "backbone_5x"]
        let names = ["simsiam-256.safetensors", "simsiam-512.safetensors", "simsiam-1024.safetensors"]
        let files = try (0..<3).map { try file(roles[$0], names[$0], backbones[$0]) }
        let headFiles = try heads.enumerated().map { try file("heads[\($0)]", $1.name, $1.contents) }
        return ModelManifest(
            name: "seeded", architecture: architecture, threshold: threshold, positiveLabel: "positive",
            negativeLabel: "negative", bagsPerHead: bagsPerHead, clusters: clusters, seed: seed,
            backbone20x: files[0], backbone10x: files[1], backbone5x: files[2], heads: headFiles,
            featureNormalization: try normalization.map {
                try file("feature_normalization", "feature_normalization.safetensors", $0)
            })
    }
}

/// A seeded ResNet-18 CS-MIL model: three backbones (`SeededWeights`, seeds 11, 12, 13, saved under
/// `backbone.` names with a SimSiam projector beside them) and two D = 512 heads from `SeededGenerator`.
/// Built once per test run; the files are written to a temporary folder, loaded, and removed.
private enum SeededModel {
    static let backboneSeeds: [UInt64] = [11, 12, 13]
    static let headSeeds: [UInt64] = [21, 22]

    /// The backbones' torchvision state_dicts, scale 0 (20x) first.
    static let backboneWeights: [StateDict] = backboneSeeds.map { SeededWeights.resnet(.resnet18, seed: $0) }

    /// The backbones as SimSiam checkpoints: `backbone.`-prefixed names plus a projector to ignore.
    static let backboneFiles: [Data] = backboneWeights.map { weights in
        var file = StateDict()
        for name in weights.names { file.set("backbone." + name, weights[name]!) }
        file.set("projector.0.weight", Tensor(shape: [4, 512], values: .init(repeating: 0.5, count: 2048)))
        return CheckpointWriter.safetensors(file)
    }

    static let heads: [StateDict] = headSeeds.map { headWeights(featureSize: 512, seed: $0) }

    static let headFiles: [(name: String, contents: Data?)] = heads.enumerated().map {
        ("heads/\($0)_model.safetensors", CheckpointWriter.safetensors($1))
    }

    /// The model loaded from those files, shared by the tests that only read it.
    static let loaded: Result<Model, any Error> = Result {
        let folder = try ModelFolder()
        return try Model(manifest: folder.manifest())
    }

    static func headWeights(featureSize d: Int, seed: UInt64) -> StateDict {
        SeededWeights.head(featureSize: d, seed: seed)
    }

    /// The scorer a manifest with these settings should give, built by hand from the heads.
    static func scorer(bagsPerHead: Int, clusters: Int, seed: UInt64, threshold: Double) throws -> SlideScorer {
        SlideScorer(
            heads: try heads.map { try CSMILHead(stateDict: $0, featureSize: 512) },
            configuration: .init(
                clusters: clusters, clusteringSeed: 0, clusteringRestarts: 10,
                sampler: BagSampler(bagCount: bagsPerHead, meanLength: 3, lengthStandardDeviation: 1, seed: seed),
                threshold: threshold))
    }
}

/// Features of `tiles` tiles, `[tile][scale][512]`, in four loose groups so k-means has clusters to find.
private func syntheticFeatures(tiles: Int, seed: UInt64) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<tiles).flatMap { tile in
        (0..<3 * 512).map { j in Float(generator.nextUniform() * 0.5 + (j % 4 == tile % 4 ? 1 : 0)) }
    }
}

/// `tiles` triplets of `images` (one array per scale, 256, 512 and 1024 px) through `embedder`:
/// `[tile][scale][D]` features.
private func embedTriplets(_ embedder: TripletEmbedder, images: [[UInt8]], tiles: Int) -> [Float] {
    var features = [Float](repeating: .nan, count: tiles * 3 * embedder.featureSize)
    images[0].withUnsafeBufferPointer { tile in
        images[1].withUnsafeBufferPointer { context10x in
            images[2].withUnsafeBufferPointer { context5x in
                features.withUnsafeMutableBufferPointer { out in
                    embedder.embed(count: tiles, into: out.baseAddress!) { i in
                        TileTriplet(
                            tile: tile.baseAddress! + i * 256 * 256 * 3,
                            context10x: context10x.baseAddress! + i * 512 * 512 * 3,
                            context5x: context5x.baseAddress! + i * 1024 * 1024 * 3)
                    }
                }
            }
        }
    }
    return features
}

private func maxDifference(_ a: [Float], _ b: [Double]) -> Double {
    zip(a, b).map { abs(Double($0) - $1) }.max() ?? 0
}

/// `ModelError` thrown by `body`, or a recorded issue.
private func modelError(_ body: () throws -> Model) -> ModelError? {
    do {
        _ = try body()
        Issue.record("the model loaded")
    } catch let error as ModelError {
        return error
    } catch {
        Issue.record("not a ModelError: \(error)")
    }
    return nil
}

@Suite("Model: a manifest's files loaded, embedded and scored (spec §1, §4, §5)")
struct ModelTests {
    @Test(
        "a head saved by torch.save({'state_dict': …}) loads and gives PyTorch's p within 1e-6, α and r within 1e-5",
        arguments: ["head_d24.pth", "head_d24_module.pth"])
    func pthHeadMatchesPyTorch(file: String) throws {
        let fixture = try PthHeadFixture.load()
        #expect(fixture.files.contains(file))
        let weights = try Checkpoint.load(path: Fixtures.url("heads/" + file).path)
        #expect(weights.names.allSatisfy { !$0.hasPrefix("module.") })
        let head = try CSMILHead(stateDict: weights, featureSize: fixture.featureSize)
        #expect(fixture.bags.contains { $0.mask.contains(0) }, "a bag with an empty cluster's masked instance")
        for bag in fixture.bags {
            let output = bag.features.values.withUnsafeBufferPointer {
                head.forward(bag: $0, mask: bag.mask.map { $0 != 0 }, workspace: CSMILHeadWorkspace())
            }
            let dp = abs(output.probability - bag.expected.probability)
            let da = maxDifference(output.attention, bag.expected.attention)
            let dr = maxDifference(output.scaleWeights.flatMap { $0 }, bag.expected.scaleWeights.flatMap { $0 })
            let dp32 = abs(output.probability - bag.torchFloat32.probability)
            print("\(file)/\(bag.name): |Δp| \(dp), max |Δα| \(da), max |Δr| \(dr); |Δp| vs torch float32 \(dp32)")
            #expect(dp <= 1e-6)
            #expect(da <= 1e-5)
            #expect(dr <= 1e-5)
            for (alpha, mask) in zip(output.attention, bag.mask) where mask == 0 { #expect(alpha == 0) }
        }
    }

    @Test("a loaded model embeds each scale with its own backbone, as [tile][scale][D], and scores like SlideScorer")
    func embedsLikeItsBackbonesAndScoresLikeSlideScorer() throws {
        let model = try SeededModel.loaded.get()
        #expect(model.featureSize == 512)
        #expect(model.backbones.map(\.architecture) == [.resnet18, .resnet18, .resnet18])
        let tiles = 3
        let d = 512
        let images = Preprocessing.inputSides.enumerated().map { scale, side in
            SeededWeights.images(count: tiles, size: side, seed: 40 + UInt64(scale))
        }

        // batchSize 2: three tiles take a full batch and a partial one.
        let features = embedTriplets(model.makeTripletEmbedder(batchSize: 2, threads: 2), images: images, tiles: tiles)

        // Each scale through a ResNet built straight from that scale's seeded weights.
        var worst = 0.0
        for (scale, side) in Preprocessing.inputSides.enumerated() {
            let network = try ResNet(architecture: .resnet18, weights: SeededModel.backboneWeights[scale])
            let input = ResNetTests.inputs(images[scale], count: tiles, side: side)
            var expected = [Float](repeating: 0, count: tiles * d)
            let workspace = ResNetWorkspace(architecture: .resnet18, batch: tiles)
            input.withUnsafeBufferPointer { input in
                expected.withUnsafeMutableBufferPointer { out in
                    network.embed(input.baseAddress!, count: tiles, into: out.baseAddress!, workspace: workspace)
                }
            }
            let largest = expected.map { abs(Double($0)) }.max()!
            #expect(largest > 0)
            for tile in 0..<tiles {
                let row = Array(features[(tile * 3 + scale) * d..<(tile * 3 + scale + 1) * d])
                let difference = maxDifference(row, expected[tile * d..<(tile + 1) * d].map(Double.init))
                worst = max(worst, difference / largest)
            }
        }
        print("triplet embedder vs each ResNet: max |Δ| / max |feature| = \(worst)")
        #expect(worst <= 1e-5)

        let scored = features.withUnsafeBufferPointer { model.score(features: $0, tileCount: tiles) }
        let direct = try SeededModel.scorer(bagsPerHead: 20, clusters: 8, seed: 1, threshold: 0.5)
        let expected = features.withUnsafeBufferPointer { direct.score(features: $0, tileCount: tiles) }
        #expect(nearlyEqual(try #require(scored.score), try #require(expected.score)))
        let score = try #require(scored.score)
        #expect(score.headProbabilities.count == 2)
        #expect(score.bagProbabilities.allSatisfy { $0.count == 20 })
        #expect(score.scaleWeights.count == tiles)
    }

    @Test("the manifest's clusters, bags_per_head, seed and threshold reach the scorer")
    func manifestSettingsReachTheScorer() throws {
        let model = try SeededModel.loaded.get()
        let tiles = 40
        let features = syntheticFeatures(tiles: tiles, seed: 5)
        let settings: [(bags: Int, clusters: Int, seed: UInt64, threshold: Double)] = [
            (20, 8, 1, 0.5), (7, 3, 9, 0.25), (50, 1, 2, 1),
        ]
        var probabilities: [[Double]] = []
        for setting in settings {
            var manifest = model.manifest
            manifest.bagsPerHead = setting.bags
            manifest.clusters = setting.clusters
            manifest.seed = setting.seed
            manifest.threshold = setting.threshold
            let configured = Model.configuration(for: manifest)
            let direct = try SeededModel.scorer(
                bagsPerHead: setting.bags, clusters: setting.clusters, seed: setting.seed,
                threshold: setting.threshold)
            #expect(configured == direct.configuration)
            let scorer = SlideScorer(heads: model.scorer.heads, configuration: configured)
            let result = try #require(
                features.withUnsafeBufferPointer { scorer.score(features: $0, tileCount: tiles) }.score)
            let expected = try #require(
                features.withUnsafeBufferPointer { direct.score(features: $0, tileCount: tiles) }.score)
            #expect(nearlyEqual(result, expected))
            #expect(result.clusterCount == setting.clusters)
            #expect(result.threshold == setting.threshold)
            #expect(result.bagProbabilities.allSatisfy { $0.count == setting.bags })
            probabilities.append(result.headProbabilities)
        }
        #expect(Set(probabilities.map { $0.map(\.bitPattern) }).count == settings.count)

        // The loaded model itself uses the manifest's settings (20 bags, k = 8, seed 1, 0.5).
        let scored = try #require(
            features.withUnsafeBufferPointer { model.score(features: $0, tileCount: tiles) }.score)
        let direct = try SeededModel.scorer(bagsPerHead: 20, clusters: 8, seed: 1, threshold: 0.5)
        let expected = try #require(
            features.withUnsafeBufferPointer { direct.score(features: $0, tileCount: tiles) }.score)
        #expect(nearlyEqual(scored, expected))
    }

    /// Equal up to float rounding: OpenBLAS's thread count is process-wide and other tests
    /// change it while embedding, and a different GEMM split may change the last bits.
    /// Two scores of the same features agree to float32 precision, not bit for bit: OpenBLAS's
    /// thread count is process-wide, other tests change it meanwhile, and `cblas_sgemm` may sum
    /// in another order with another count (seen: 1e-8 relative).
    func nearlyEqual(_ a: SlideScore, _ b: SlideScore) -> Bool {
        func close(_ x: Double, _ y: Double) -> Bool { abs(x - y) <= 1e-6 * max(1, abs(y)) }
        func closeFloats(_ x: [Float], _ y: [Float]) -> Bool {
            x.count == y.count && zip(x, y).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }
        }
        return close(a.probability, b.probability) && a.isPositive == b.isPositive && a.threshold == b.threshold
            && a.clusterCount == b.clusterCount && a.headProbabilities.count == b.headProbabilities.count
            && zip(a.headProbabilities, b.headProbabilities).allSatisfy(close)
            && zip(a.bagProbabilities, b.bagProbabilities).allSatisfy {
                $0.count == $1.count && zip($0, $1).allSatisfy(close)
            }
            && a.tileAttention.map { $0 == nil } == b.tileAttention.map { $0 == nil }
            && closeFloats(a.tileAttention.compactMap { $0 }, b.tileAttention.compactMap { $0 })
            && zip(a.scaleWeights, b.scaleWeights).allSatisfy(closeFloats)
    }

    @Test("a slide with zero tiles has no tissue and no score")
    func zeroTilesIsNoTissue() throws {
        let model = try SeededModel.loaded.get()
        let scored = [Float]().withUnsafeBufferPointer { model.score(features: $0, tileCount: 0) }
        #expect(scored == .noTissue)
        #expect(scored.score == nil)
    }

    @Test("a missing head file is an error naming the file, its role and the path in model.toml")
    func missingHeadFile() throws {
        let folder = try ModelFolder()
        let heads = [SeededModel.headFiles[0], (name: "heads/1_model.pth", contents: nil)]
        let error = try #require(modelError { try Model(manifest: folder.manifest(heads: heads)) })
        #expect(error.code == .unreadable)
        #expect(error.role == "heads[1]")
        #expect(error.file == folder.path + "/heads/1_model.pth")
        #expect(error.message.contains("heads[1]"))
        #expect(error.message.contains("\"heads/1_model.pth\" in model.toml"))
        #expect(error.description.contains(error.file))
        #expect(error.fix.contains("model.toml"))
        guard case .checkpoint(let cause)? = error.cause else {
            Issue.record("no CheckpointError behind \(error)")
            return
        }
        #expect(cause.code == .unreadable)
        print(error)
    }

    @Test("a head with a misshapen tensor is an error naming the file, its role, the tensor and both shapes")
    func misshapenHead() throws {
        let folder = try ModelFolder()
        var weights = SeededModel.heads[1]
        weights.set("attention.0.weight", Tensor(shape: [32, 63], values: .init(repeating: 0, count: 32 * 63)))
        let heads = [
            SeededModel.headFiles[0], (name: "heads/1_model.safetensors", CheckpointWriter.safetensors(weights)),
        ]
        let error = try #require(modelError { try Model(manifest: folder.manifest(heads: heads)) })
        #expect(error.code == .wrongShape)
        #expect(error.role == "heads[1]")
        #expect(error.message.contains("heads[1]"))
        #expect(error.description.contains(folder.path + "/heads/1_model.safetensors"))
        #expect(error.message.contains("attention.0.weight"))
        #expect(error.message.contains("[32, 63]") && error.message.contains("[32, 64]"))
        #expect(
            error.cause
                == .head(
                    HeadError(
                        code: .shapeMismatch, tensor: "attention.0.weight", expectedShape: [32, 64],
                        foundShape: [32, 63])))
        print(error)
    }

    @Test("a head trained on other features than the architecture's (the D = 24 .pth for a ResNet-18) says so")
    func headForAnotherFeatureSize() throws {
        let folder = try ModelFolder()
        let pth = try Data(contentsOf: Fixtures.url("heads/head_d24.pth"))
        let heads = [SeededModel.headFiles[0], (name: "heads/1_model.pth", contents: pth)]
        let error = try #require(modelError { try Model(manifest: folder.manifest(heads: heads)) })
        #expect(error.code == .wrongShape)
        #expect(error.role == "heads[1]")
        #expect(error.description.contains(folder.path + "/heads/1_model.pth"))
        #expect(error.message.contains("24-dimensional") && error.message.contains("resnet18"))
        print(error)
    }

    @Test("a backbone file where a head belongs, and a head where a backbone belongs, are named as such")
    func swappedRoles() throws {
        let folder = try ModelFolder()
        let heads = [SeededModel.headFiles[0], (name: "heads/1_model.safetensors", SeededModel.backboneFiles[0])]
        let error = try #require(modelError { try Model(manifest: folder.manifest(heads: heads)) })
        #expect(error.code == .missingTensor)
        #expect(error.role == "heads[1]")
        #expect(error.message.contains("backbone, not a CS-MIL head"))

        var backbones = SeededModel.backboneFiles
        backbones[1] = try #require(SeededModel.headFiles[0].contents)
        let swapped = try #require(modelError { try Model(manifest: folder.manifest(backbones: backbones)) })
        #expect(swapped.role == "backbone_10x")
        #expect(swapped.message.contains("CS-MIL head, not a backbone"))
        #expect(swapped.description.contains(folder.path + "/simsiam-512.safetensors"))
    }

    @Test("ResNet-18 backbones for a model.toml that says resnet34 are refused, naming the architecture they are")
    func backboneOfAnotherArchitecture() throws {
        let folder = try ModelFolder()
        let error = try #require(modelError { try Model(manifest: folder.manifest(architecture: .resnet34)) })
        #expect(error.code == .wrongArchitecture)
        #expect(error.role == "backbone_20x")
        #expect(error.file == folder.path + "/simsiam-256.safetensors")
        #expect(error.message.contains("backbone_20x"))
        #expect(error.description.contains(error.file))
        #expect(error.message.contains("holds a resnet18 backbone"))
        #expect(error.message.contains("architecture = \"resnet34\""))
        #expect(error.fix.contains("architecture = \"resnet18\""))
        print(error)
    }

    @Test("a ResNet-34 backbone (a superset of ResNet-18's tensors) for a resnet18 model is refused")
    func deeperBackboneIsRefused() throws {
        var weights = StateDict()
        for (name, shape) in ResNetLayout(.resnet34).expectedTensors {
            weights.set(
                "backbone." + name, Tensor(shape: shape, values: .init(repeating: 0.5, count: shape.reduce(1, *))))
        }
        let folder = try ModelFolder()
        var backbones = SeededModel.backboneFiles
        backbones[2] = CheckpointWriter.safetensors(weights)
        let error = try #require(modelError { try Model(manifest: folder.manifest(backbones: backbones)) })
        #expect(error.code == .wrongArchitecture)
        #expect(error.role == "backbone_5x")
        #expect(error.description.contains(folder.path + "/simsiam-1024.safetensors"))
        #expect(error.message.contains("architecture = \"resnet18\""))
        #expect(error.message.contains("holds a resnet34 backbone"))
        print(error)
    }

    @Test("a manifest without heads, bags or clusters is refused before any file is read")
    func invalidManifest() throws {
        let folder = try ModelFolder()
        var manifest = try folder.manifest(backbones: [Data(), Data(), Data()], heads: [])
        var error = try #require(modelError { try Model(manifest: manifest) })
        #expect(error.code == .invalidManifest)
        #expect(error.role == "heads")
        manifest.heads = [try folder.file("heads[0]", "heads/0.pth", nil)]
        manifest.bagsPerHead = 0
        error = try #require(modelError { try Model(manifest: manifest) })
        #expect(error.role == "bags_per_head")
        manifest.bagsPerHead = 200
        manifest.clusters = 0
        error = try #require(modelError { try Model(manifest: manifest) })
        #expect(error.role == "clusters")
    }

    @Test("a model.toml feature_normalization is applied to every tile's features by the model's embedders")
    func featureNormalizationApplied() throws {
        let d = 512
        var generator = SeededGenerator(seed: 7)
        let normalization = FeatureNormalization(
            mean: (0..<3 * d).map { _ in Float(generator.nextUniform() * 4) },
            standardDeviation: (0..<3 * d).map { _ in Float(0.5 + generator.nextUniform()) }, featureSize: d)
        let folder = try ModelFolder()
        let model = try Model(
            manifest: folder.manifest(normalization: CheckpointWriter.safetensors(normalization.stateDict())))
        #expect(model.featureNormalization == normalization)
        #expect(model.manifest.files.last?.role == "feature_normalization")

        let tiles = 3
        let images = Preprocessing.inputSides.enumerated().map { scale, side in
            SeededWeights.images(count: tiles, size: side, seed: 50 + UInt64(scale))
        }
        let normalized = embedTriplets(
            model.makeTripletEmbedder(batchSize: 2, threads: 2), images: images, tiles: tiles)
        let raw = embedTriplets(
            TripletEmbedder(backbones: model.backbones, batchSize: 2, threads: 2), images: images, tiles: tiles)
        // The two runs recompute the ResNets, whose float32 sums may be ordered differently (batches shared
        // between workers, OpenBLAS threads), so compare relative to the largest raw feature, as the
        // triplet-embedder test does; a normalisation not applied would be off by the mean itself (up to 4).
        var worst: Float = 0
        var largest: Float = 0
        for tile in 0..<tiles {
            for i in 0..<3 * d {
                let value = raw[tile * 3 * d + i]
                let restored =
                    normalized[tile * 3 * d + i] * normalization.standardDeviation[i] + normalization.mean[i]
                worst = max(worst, abs(restored - value))
                largest = max(largest, abs(value))
            }
        }
        let relative = worst / max(largest, 1)
        print("feature_normalization: max |f·std + mean − raw| / max |raw| = \(relative)")
        #expect(
            relative <= 1e-5, "normalised features differ from (raw − mean) / std by \(relative) of the largest feature"
        )
        #expect(raw != normalized)
    }

    @Test("a feature_normalization file of the wrong size is a model error naming its role and the shapes")
    func featureNormalizationWrongSize() throws {
        let folder = try ModelFolder()
        let small = FeatureNormalization(
            mean: .init(repeating: 0, count: 3 * 64), standardDeviation: .init(repeating: 1, count: 3 * 64),
            featureSize: 64)
        let error = try #require(
            modelError {
                try Model(manifest: folder.manifest(normalization: CheckpointWriter.safetensors(small.stateDict())))
            })
        #expect(error.code == .wrongShape)
        #expect(error.role == "feature_normalization")
        #expect(error.message.contains("[3, 64]") && error.message.contains("[3, 512]"))
    }
}
