import Foundation
import Inference
import Testing

/// A head fixture made by tools/make_head_fixtures.py (PyTorch reimplementation of the reference head).
struct HeadFixture: Decodable {
    struct Floats: Decodable {
        let shape: [Int]
        let f32: String

        var values: [Float] {
            let bytes = Data(base64Encoded: f32)!
            return bytes.withUnsafeBytes { raw in
                (0..<raw.count / 4).map {
                    Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
                }
            }
        }
    }

    struct Outputs: Decodable {
        let probability: Double
        let attention: [Double]
        let scaleWeights: [[Double]]
    }

    struct Bag: Decodable {
        let name: String
        let clusterSizes: [Int]
        let features: Floats
        let mask: [Int]
        let expected: Outputs
        let torchFloat32: Outputs
    }

    let torchVersion: String
    let featureSize: Int
    let stateDict: [String: Floats]
    let bags: [Bag]

    static func load(_ name: String) throws -> HeadFixture {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(HeadFixture.self, from: Data(contentsOf: Fixtures.url("head_\(name).json")))
    }

    var weights: StateDict {
        var dict = StateDict()
        for name in stateDict.keys.sorted() {
            dict.set(name, Tensor(shape: stateDict[name]!.shape, values: stateDict[name]!.values))
        }
        return dict
    }

    func head() throws -> CSMILHead { try CSMILHead(stateDict: weights) }
}

private func run(
    _ head: CSMILHead, _ bag: HeadFixture.Bag, workspace: CSMILHeadWorkspace = CSMILHeadWorkspace()
)
    -> BagOutput
{
    bag.features.values.withUnsafeBufferPointer {
        head.forward(bag: $0, mask: bag.mask.map { $0 != 0 }, workspace: workspace)
    }
}

private func maxDifference(_ a: [Float], _ b: [Double]) -> Double {
    zip(a, b).map { abs(Double($0) - $1) }.max() ?? 0
}

@Suite("CS-MIL head (spec §4) against the PyTorch reference")
struct CSMILHeadTests {
    static let bags: [(String, String)] = [
        ("d24", "two_empty_clusters"), ("d24", "single_instance"), ("d24", "all_clusters_full"),
        ("d512", "one_empty_cluster"), ("d512", "long_bag"),
    ]

    @Test("probability within 1e-6, α and r within 1e-5 of PyTorch (float64 reference)", arguments: bags)
    func matchesPyTorch(file: String, bagName: String) throws {
        let fixture = try HeadFixture.load(file)
        let head = try fixture.head()
        #expect(head.featureSize == fixture.featureSize)
        let bag = try #require(fixture.bags.first { $0.name == bagName })
        let output = run(head, bag)
        let dp = abs(output.probability - bag.expected.probability)
        let da = maxDifference(output.attention, bag.expected.attention)
        let dr = maxDifference(output.scaleWeights.flatMap { $0 }, bag.expected.scaleWeights.flatMap { $0 })
        print("head \(file)/\(bagName): |Δp| \(dp), max |Δα| \(da), max |Δr| \(dr)")
        #expect(dp <= 1e-6)
        #expect(da <= 1e-5)
        #expect(dr <= 1e-5)
        #expect(output.attention.count == bag.mask.count)
        #expect(output.scaleWeights.allSatisfy { $0.count == 3 })
    }

    @Test("masked instances get attention exactly 0 and the others sum to 1", arguments: bags)
    func maskedAttentionIsZero(file: String, bagName: String) throws {
        let fixture = try HeadFixture.load(file)
        let bag = try #require(fixture.bags.first { $0.name == bagName })
        let output = run(try fixture.head(), bag)
        for (alpha, mask) in zip(output.attention, bag.mask) where mask == 0 { #expect(alpha == 0) }
        let total = output.attention.reduce(0.0) { $0 + Double($1) }
        #expect(abs(total - 1) < 1e-6)
    }

    @Test("a masked instance's features do not change p or α")
    func maskedFeaturesAreIgnored() throws {
        let fixture = try HeadFixture.load("d24")
        let head = try fixture.head()
        let bag = try #require(fixture.bags.first { $0.name == "two_empty_clusters" })
        var features = bag.features.values
        let perInstance = 3 * fixture.featureSize
        for (i, mask) in bag.mask.enumerated() where mask == 0 {
            for j in 0..<perInstance { features[i * perInstance + j] = Float(j % 7) * 0.9 }
        }
        let mask = bag.mask.map { $0 != 0 }
        let workspace = CSMILHeadWorkspace()
        let altered = features.withUnsafeBufferPointer { head.forward(bag: $0, mask: mask, workspace: workspace) }
        let original = run(head, bag)
        #expect(altered.probability == original.probability)
        #expect(altered.attention == original.attention)
    }

    @Test("one workspace, grown and reused across bags and heads, gives the results of fresh ones")
    func workspaceReuse() throws {
        let small = try HeadFixture.load("d24")
        let large = try HeadFixture.load("d512")
        let shared = CSMILHeadWorkspace(instances: 1)
        for fixture in [small, large, small] {
            let head = try fixture.head()
            for bag in fixture.bags {
                #expect(run(head, bag, workspace: shared) == run(head, bag))
            }
        }
    }

    @Test("per-tile scale weights do not depend on the bag and equal the bag forward's r")
    func tileScaleWeightsMatchBagForward() throws {
        let fixture = try HeadFixture.load("d512")
        let head = try fixture.head()
        for bag in fixture.bags {
            let output = run(head, bag)
            let n = bag.mask.count
            var r = [Float](repeating: .nan, count: 3 * n)
            bag.features.values.withUnsafeBufferPointer { features in
                r.withUnsafeMutableBufferPointer { out in
                    head.scaleWeights(tiles: features, count: n, into: out, workspace: CSMILHeadWorkspace(instances: 2))
                }
            }
            #expect(maxDifference(r, output.scaleWeights.flatMap { $0 }.map(Double.init)) == 0)
        }
    }

    @Test("instance order changes neither p nor the attention of each instance")
    func permutationInvariance() throws {
        let fixture = try HeadFixture.load("d24")
        let head = try fixture.head()
        let bag = try #require(fixture.bags.first { $0.name == "all_clusters_full" })
        let n = bag.mask.count
        let perInstance = 3 * fixture.featureSize
        let order = Array((0..<n).reversed())
        let values = bag.features.values
        let permuted = order.flatMap { values[$0 * perInstance..<($0 + 1) * perInstance] }
        let output = run(head, bag)
        let shuffled = permuted.withUnsafeBufferPointer {
            head.forward(bag: $0, mask: order.map { bag.mask[$0] != 0 }, workspace: CSMILHeadWorkspace())
        }
        // Equal up to float32 rounding: the GEMM may round a row differently at another position.
        #expect(abs(shuffled.probability - output.probability) < 1e-7)
        for (k, i) in order.enumerated() { #expect(abs(shuffled.attention[k] - output.attention[i]) < 1e-6) }
    }

    @Test("a tensor with the wrong shape is refused with its name, the expected and the found shape")
    func wrongShapeIsRefused() throws {
        let fixture = try HeadFixture.load("d24")
        var weights = fixture.weights
        weights.set("attention.0.weight", Tensor(shape: [32, 63], values: [Float](repeating: 0, count: 32 * 63)))
        #expect(
            throws: HeadError(
                code: .shapeMismatch, tensor: "attention.0.weight", expectedShape: [32, 64], foundShape: [32, 63])
        ) {
            try CSMILHead(stateDict: weights)
        }
        do {
            _ = try CSMILHead(stateDict: fixture.weights, featureSize: 2048)
            Issue.record("a head for D = 24 loaded as D = 2048")
        } catch {
            #expect(error.code == .shapeMismatch)
            #expect(error.tensor == "embedding_net.0.weight")
            #expect(error.description.contains("[64, 24, 1, 1]"))
            #expect(error.description.contains("[64, 2048, 1, 1]"))
        }
    }

    @Test("a missing tensor is refused by name; DataParallel's module. prefix is accepted")
    func missingTensorAndModulePrefix() throws {
        let fixture = try HeadFixture.load("d24")
        var partial = StateDict()
        var prefixed = StateDict()
        for name in fixture.weights.names {
            let tensor = fixture.weights[name]!
            prefixed.set("module." + name, tensor)
            if name != "fc6.3.bias" { partial.set(name, tensor) }
        }
        #expect(throws: HeadError(code: .missingTensor, tensor: "fc6.3.bias", expectedShape: [1], foundShape: nil)) {
            try CSMILHead(stateDict: partial)
        }
        let head = try CSMILHead(stateDict: prefixed)
        let bag = fixture.bags[0]
        #expect(run(head, bag) == run(try fixture.head(), bag))
    }
}
