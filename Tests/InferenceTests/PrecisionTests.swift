import Foundation
import Testing

@testable import Inference

/// bf16 backbones through oneDNN, judged against PyTorch's fp32 features (tools/make_resnet_fixtures.py). On a CPU
/// without AVX512_BF16 or AMX the same tests check that bf16 is refused with the reason instead.
@Suite("bf16 backbones (oneDNN)")
struct PrecisionTests {
    /// Whether this CPU runs bf16; the tests below check the refusal where it does not.
    static let native = Precision.bf16.unsupportedReason == nil

    @Test(
        "bf16 features stay within 1.5 % of PyTorch's largest fp32 feature, cosine ≥ 0.9999 per image (or bf16 is refused)",
        arguments: [Architecture.resnet18, .resnet50])
    func fidelity(architecture: Architecture) throws {
        guard Self.native else {
            let error = #expect(throws: PrecisionError.self) { try Precision.bf16.prepare(architecture: architecture) }
            #expect(error?.code == .unsupported)
            #expect(error?.subject == "[pipeline] precision = \"bf16\"")
            #expect(error?.message.contains("AVX512_BF16") == true)
            return
        }
        try Precision.bf16.prepare(architecture: architecture)
        let meta = try ResNetTests.meta()
        let reference = try ResNetTests.reference(architecture)
        let d = architecture.featureSize
        let backbone = try Backbone(
            architecture: architecture, weights: SeededWeights.resnet(architecture, seed: meta.weight_seed),
            precision: .bf16)
        // Two threads and pieces of one and two images: the plans for several batch sizes all run.
        let embedder = Embedder(backbone: backbone, threads: 2, pieceSize: 2)
        let count = meta.images_per_side
        for (index, side) in meta.sides.enumerated() {
            let images = SeededWeights.images(count: count, size: side, seed: meta.image_seed + UInt64(index))
            var features = [Float](repeating: .nan, count: count * d)
            images.withUnsafeBufferPointer { rgb in
                features.withUnsafeMutableBufferPointer { out in
                    embedder.embed(count: count, into: out.baseAddress!) { image, body in
                        body(rgb.baseAddress! + image * side * side * 3, side)
                    }
                }
            }
            for image in 0..<count {
                let expected = Array(reference[((index * count) + image) * d..<((index * count) + image + 1) * d])
                let ours = Array(features[(image * d)..<((image + 1) * d)])
                let scale = expected.map(abs).max() ?? 0
                let error = zip(ours, expected).map { abs($0 - $1) }.max() ?? .infinity
                let cosine = Self.cosine(ours, expected)
                #expect(scale > 0)
                #expect(
                    error <= 0.015 * scale && cosine >= 0.9999,
                    "\(architecture) side \(side) image \(image): max error \(error / scale) of the largest, cosine \(cosine)"
                )
            }
        }
    }

    @Test(
        "oneDNN's fp32 kernels (with Winograd on oneDNN's matmul for 3×3 stride 1) give PyTorch's features within 2e-6 of the largest, as csmil's own do",
        arguments: [Architecture.resnet18, .resnet50])
    func oneDNNFP32Parity(architecture: Architecture) throws {
        try Precision.fp32.prepare(architecture: architecture, kernels: .onednn)
        let meta = try ResNetTests.meta()
        let reference = try ResNetTests.reference(architecture)
        let d = architecture.featureSize
        let backbone = try Backbone(
            architecture: architecture, weights: SeededWeights.resnet(architecture, seed: meta.weight_seed),
            precision: .fp32, kernels: .onednn)
        // Every side's images in one call. Two threads with pieces of up to two images, and one thread with pieces
        // of four then two: a batch of four has 1,024 tiles in the first stage, more than one chunk of Winograd
        // scratch holds, so the matmuls for a full chunk and for the rest both run.
        let count = meta.images_per_side
        let images = meta.sides.enumerated().map { index, side in
            SeededWeights.images(count: count, size: side, seed: meta.image_seed + UInt64(index))
        }
        let total = meta.sides.count * count
        for (threads, piece) in [(2, 2), (1, 4)] {
            let embedder = Embedder(backbone: backbone, threads: threads, pieceSize: piece)
            var features = [Float](repeating: .nan, count: total * d)
            features.withUnsafeMutableBufferPointer { out in
                embedder.embed(count: total, into: out.baseAddress!) { image, body in
                    let (index, within) = image.quotientAndRemainder(dividingBy: count)
                    let side = meta.sides[index]
                    images[index].withUnsafeBufferPointer { rgb in
                        body(rgb.baseAddress! + within * side * side * 3, side)
                    }
                }
            }
            for image in 0..<total {
                let expected = Array(reference[image * d..<(image + 1) * d])
                let ours = Array(features[(image * d)..<((image + 1) * d)])
                let scale = expected.map(abs).max() ?? 0
                let error = zip(ours, expected).map { abs($0 - $1) }.max() ?? .infinity
                #expect(
                    error <= 2e-6 * scale,
                    "\(architecture) \(threads) threads, pieces of \(piece): side \(meta.sides[image / count]) image \(image % count): \(error / scale) of the largest"
                )
            }
        }
    }

    @Test("the triplet embedder runs bf16 backbones into the [tile][scale][D] order of fp32 (or bf16 is refused)")
    func tripletsAgree() throws {
        guard Self.native else {
            #expect(throws: PrecisionError.self) { try Precision.bf16.prepare(architecture: .resnet18) }
            return
        }
        try Precision.bf16.prepare(architecture: .resnet18)
        let weights = (0..<3).map { SeededWeights.resnet(.resnet18, seed: 5 + UInt64($0)) }
        let fp32 = try weights.map { try Backbone(architecture: .resnet18, weights: $0, precision: .fp32) }
        let bf16 = try weights.map { try Backbone(architecture: .resnet18, weights: $0, precision: .bf16) }
        #expect(fp32.allSatisfy { $0.precision == .fp32 } && bf16.allSatisfy { $0.precision == .bf16 })
        let tiles = 3
        let images = Preprocessing.inputSides.enumerated().map { scale, side in
            SeededWeights.images(count: tiles, size: side, seed: 6 + UInt64(scale))
        }
        func embed(_ backbones: [Backbone]) -> [Float] {
            let embedder = TripletEmbedder(backbones: backbones, batchSize: 2, threads: 2)
            var out = [Float](repeating: .nan, count: tiles * 3 * 512)
            images[0].withUnsafeBufferPointer { tile in
                images[1].withUnsafeBufferPointer { context10x in
                    images[2].withUnsafeBufferPointer { context5x in
                        out.withUnsafeMutableBufferPointer { out in
                            embedder.embed(count: tiles, into: out.baseAddress!) { index in
                                TileTriplet(
                                    tile: tile.baseAddress! + index * 256 * 256 * 3,
                                    context10x: context10x.baseAddress! + index * 512 * 512 * 3,
                                    context5x: context5x.baseAddress! + index * 1024 * 1024 * 3)
                            }
                        }
                    }
                }
            }
            return out
        }
        let (a, b) = (embed(fp32), embed(bf16))
        #expect(b.allSatisfy { $0.isFinite })
        for row in 0..<(tiles * 3) {
            let cosine = Self.cosine(Array(a[row * 512..<(row + 1) * 512]), Array(b[row * 512..<(row + 1) * 512]))
            #expect(cosine >= 0.9999, "tile \(row / 3) scale \(row % 3): cosine \(cosine)")
        }
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var (dot, aa, bb) = (0.0, 0.0, 0.0)
        for (x, y) in zip(a, b) {
            dot += Double(x) * Double(y)
            aa += Double(x) * Double(x)
            bb += Double(y) * Double(y)
        }
        return dot / max((aa * bb).squareRoot(), .leastNormalMagnitude)
    }
}
