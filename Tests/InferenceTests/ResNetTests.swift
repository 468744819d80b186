import Foundation
import Testing

@testable import Inference

@Suite("ResNet backbones")
struct ResNetTests {
    /// tools/make_resnet_fixtures.py's meta.json.
    struct Meta: Decodable {
        struct Arch: Decodable {
            var feature_size: Int
            var conv1_first_values: [Float]
        }
        var weight_seed: UInt64
        var image_seed: UInt64
        var images_per_side: Int
        var sides: [Int]
        var architectures: [String: Arch]
    }

    static func meta() throws -> Meta {
        try JSONDecoder().decode(Meta.self, from: Data(contentsOf: Fixtures.url("resnet/meta.json")))
    }

    /// PyTorch's features: [side][image][D], little-endian float32.
    static func reference(_ architecture: Architecture) throws -> [Float] {
        let data = try Data(contentsOf: Fixtures.url("resnet/\(architecture.rawValue).f32"))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// Normalised network inputs for `images` (u8 HWC, `side`²) as a [count][256][256][3] array.
    static func inputs(_ images: [UInt8], count: Int, side: Int) -> [Float] {
        let plane = Preprocessing.outputSide * Preprocessing.outputSide * 3
        var input = [Float](repeating: 0, count: count * plane)
        images.withUnsafeBufferPointer { rgb in
            input.withUnsafeMutableBufferPointer { out in
                for index in 0..<count {
                    Preprocessing.normalise(
                        rgb: rgb.baseAddress! + index * side * side * 3, side: side,
                        into: out.baseAddress! + index * plane)
                }
            }
        }
        return input
    }

    @Test("the seeded generator reproduces the weights tools/make_resnet_fixtures.py gave PyTorch")
    func seededWeightsMatchTheScript() throws {
        let meta = try Self.meta()
        let weights = SeededWeights.resnet(.resnet18, seed: meta.weight_seed)
        let conv1 = try #require(weights["conv1.weight"])
        #expect(Array(conv1.values.prefix(4)) == meta.architectures["resnet18"]?.conv1_first_values)
        #expect(weights.names.first == "conv1.weight")
        #expect(weights.count == ResNetLayout(.resnet18).expectedTensors.count)
    }

    @Test(
        "features equal PyTorch's within 1e-4 × max |feature| for every input size",
        arguments: Architecture.allCases)
    func parityWithPyTorch(architecture: Architecture) throws {
        let meta = try Self.meta()
        let reference = try Self.reference(architecture)
        let d = architecture.featureSize
        #expect(meta.architectures[architecture.rawValue]?.feature_size == d)
        let network = try ResNet(
            architecture: architecture, weights: SeededWeights.resnet(architecture, seed: meta.weight_seed))
        let count = meta.images_per_side
        let workspace = ResNetWorkspace(architecture: architecture, batch: count)
        var features = [Float](repeating: 0, count: count * d)
        for (index, side) in meta.sides.enumerated() {
            let images = SeededWeights.images(count: count, size: side, seed: meta.image_seed + UInt64(index))
            let input = Self.inputs(images, count: count, side: side)
            input.withUnsafeBufferPointer { input in
                features.withUnsafeMutableBufferPointer { out in
                    network.embed(input.baseAddress!, count: count, into: out.baseAddress!, workspace: workspace)
                }
            }
            for image in 0..<count {
                let expected = reference[((index * count) + image) * d..<((index * count) + image + 1) * d]
                let ours = features[(image * d)..<((image + 1) * d)]
                let scale = expected.map(abs).max() ?? 0
                let error = zip(ours, expected).map { abs($0 - $1) }.max() ?? 0
                #expect(scale > 0)
                #expect(
                    error <= 1e-4 * scale,
                    "\(architecture) side \(side) image \(image): max error \(error), max |torch| \(scale)")
            }
        }
    }

    @Test("an image's features do not depend on the batch it is in")
    func batchIndependence() throws {
        let network = try ResNet(architecture: .resnet18, weights: SeededWeights.resnet(.resnet18, seed: 7))
        let images = SeededWeights.images(count: 3, size: 256, seed: 9)
        let input = Self.inputs(images, count: 3, side: 256)
        let plane = 256 * 256 * 3
        let batched = ResNetWorkspace(architecture: .resnet18, batch: 3)
        let single = ResNetWorkspace(architecture: .resnet18, batch: 1)
        var all = [Float](repeating: 0, count: 3 * 512)
        var one = [Float](repeating: 0, count: 512)
        input.withUnsafeBufferPointer { input in
            all.withUnsafeMutableBufferPointer {
                network.embed(input.baseAddress!, count: 3, into: $0.baseAddress!, workspace: batched)
            }
            one.withUnsafeMutableBufferPointer {
                network.embed(input.baseAddress! + 2 * plane, count: 1, into: $0.baseAddress!, workspace: single)
            }
        }
        let scale = one.map(abs).max() ?? 1
        #expect(zip(one, all[1024..<1536]).allSatisfy { abs($0 - $1) <= 1e-5 * scale })
    }

    @Test(
        "any number of threads and any piece size give the features of one thread",
        arguments: [(2, 4), (3, 1), (2, 3)])
    func workSplit(threads: Int, piece: Int) throws {
        let network = try ResNet(architecture: .resnet18, weights: SeededWeights.resnet(.resnet18, seed: 3))
        let images = SeededWeights.images(count: 5, size: 512, seed: 4)
        func features(threads: Int, piece: Int) -> [Float] {
            let embedder = Embedder(backbone: .csmil(network), threads: threads, pieceSize: piece)
            var out = [Float](repeating: .nan, count: 5 * 512)
            images.withUnsafeBufferPointer { rgb in
                out.withUnsafeMutableBufferPointer { out in
                    embedder.embed(count: 5, into: out.baseAddress!) { index, body in
                        body(rgb.baseAddress! + index * 512 * 512 * 3, 512)
                    }
                }
            }
            return out
        }
        let single = features(threads: 1, piece: 4)
        let split = features(threads: threads, piece: piece)
        let scale = single.map(abs).max() ?? 1
        #expect(split.allSatisfy { $0.isFinite })
        #expect(zip(single, split).allSatisfy { abs($0 - $1) <= 1e-5 * scale })
    }

    @Test("pieces cover every image once, stay inside their segment and shrink towards the end")
    func pieces() {
        let segments = [8, 8, 8]
        let pieces = Embedder.Pieces(segments: segments, largest: 4, threads: 2)
        var seen: [Int] = []
        var sizes: [Int] = []
        while let (segment, range) = pieces.next() {
            #expect(range.lowerBound >= segment * 8 && range.upperBound <= (segment + 1) * 8, "\(range)")
            #expect((1...4).contains(range.count))
            seen += Array(range)
            sizes.append(range.count)
        }
        #expect(seen == Array(0..<24))
        #expect(sizes.first == 4 && sizes.last == 1)
        #expect(pieces.next() == nil)
        // The earlier scheme, kept for `bench embed --schedule shares`: equal parts per thread, fixed up front.
        let shares = Embedder.Pieces(segments: segments, largest: 4, threads: 2, shares: true)
        for thread in 0..<2 {
            var ranges: [Range<Int>] = []
            while let (_, range) = shares.next(thread: thread) { ranges.append(range) }
            #expect(ranges == [0, 8, 16].map { ($0 + 4 * thread)..<($0 + 4 * thread + 4) })
        }
    }

    @Test("a 2× context is the mean of each 2×2 block, a 4× one the mean of the central 2×2 of each 4×4")
    func resizeSemantics() {
        for side in [512, 1024] {
            let factor = side / 256
            var rgb = [UInt8](repeating: 0, count: side * side * 3)
            for i in rgb.indices { rgb[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 7) }
            var out = [Float](repeating: 0, count: 256 * 256 * 3)
            rgb.withUnsafeBufferPointer { rgb in
                out.withUnsafeMutableBufferPointer {
                    Preprocessing.normalise(rgb: rgb.baseAddress!, side: side, into: $0.baseAddress!)
                }
            }
            for (y, x, c) in [(0, 0, 0), (17, 200, 1), (255, 255, 2), (128, 3, 0)] {
                let first = factor == 4 ? 1 : 0
                var sum = 0.0
                for dy in 0..<2 {
                    for dx in 0..<2 {
                        sum += Double(rgb[((y * factor + first + dy) * side + x * factor + first + dx) * 3 + c])
                    }
                }
                let expected = (sum / 4 / 255 - Double(Preprocessing.mean[c])) / Double(Preprocessing.std[c])
                #expect(abs(Double(out[(y * 256 + x) * 3 + c]) - expected) < 1e-5)
            }
        }
    }

    @Test("a missing or misshapen backbone tensor is an error naming it and both shapes")
    func shapeErrors() throws {
        var weights = SeededWeights.resnet(.resnet18, seed: 1)
        weights.set("layer2.0.conv1.weight", Tensor(shape: [128, 64, 1, 1], values: .init(repeating: 0, count: 8192)))
        #expect {
            try ResNet(architecture: .resnet18, weights: weights, file: "b.pth")
        } throws: { error in
            let text = "\(error)"
            return text.contains("layer2.0.conv1.weight") && text.contains("[128, 64, 3, 3]")
                && text.contains("[128, 64, 1, 1]") && text.contains("b.pth")
        }
        #expect {
            try ResNet(architecture: .resnet50, weights: SeededWeights.resnet(.resnet18, seed: 1), file: "b.pth")
        } throws: { error in
            "\(error)".contains("layer1.0.conv3.weight")
        }
    }
}
