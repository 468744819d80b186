import Foundation
import Testing

@testable import Inference

@Suite("FeatureNormalization: csmil's optional per-scale feature standardisation")
struct FeatureNormalizationTests {
    /// `tiles` tiles of `[tile][scale][d]` features whose scales sit on very different offsets and spreads.
    private static func features(tiles: Int, d: Int, seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        return (0..<tiles).flatMap { _ in
            (0..<3 * d).map { i in
                let scale = i / d
                return Float(50 * Double(scale + 1) + Double(scale * 4 + 1) * generator.nextUniform())
            }
        }
    }

    @Test("statistics gathered over several slides standardise each scale and channel to mean 0, deviation 1")
    func accumulatesAndStandardises() throws {
        let d = 16
        let slides = [Self.features(tiles: 40, d: d, seed: 1), Self.features(tiles: 25, d: d, seed: 2)]
        var accumulator = FeatureNormalization.Accumulator(featureSize: d)
        for slide in slides {
            slide.withUnsafeBufferPointer { accumulator.add($0, tileCount: slide.count / (3 * d)) }
        }
        #expect(accumulator.tileCount == 65)
        let normalization = try #require(accumulator.normalization())
        var all = slides.flatMap { $0 }
        all.withUnsafeMutableBufferPointer { normalization.apply($0.baseAddress!, tileCount: 65) }
        for i in 0..<3 * d {
            let column = stride(from: i, to: all.count, by: 3 * d).map { Double(all[$0]) }
            let mean = column.reduce(0, +) / Double(column.count)
            let variance = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(column.count)
            #expect(abs(mean) < 1e-4, "feature \(i): mean \(mean)")
            #expect(abs(variance - 1) < 1e-3, "feature \(i): variance \(variance)")
        }
        // Means differ by scale (about 50, 100, 150): each scale has its own.
        #expect(normalization.mean[0] < 60 && normalization.mean[d] > 90 && normalization.mean[2 * d] > 140)
    }

    @Test("a constant channel (a ReLU that never fires) is centred, not divided by zero")
    func constantChannel() throws {
        let d = 4
        var features = Self.features(tiles: 10, d: d, seed: 3)
        for tile in 0..<10 { features[tile * 3 * d + 1] = 0 }
        var accumulator = FeatureNormalization.Accumulator(featureSize: d)
        features.withUnsafeBufferPointer { accumulator.add($0, tileCount: 10) }
        let normalization = try #require(accumulator.normalization())
        #expect(normalization.standardDeviation[1] == 1)
        features.withUnsafeMutableBufferPointer { normalization.apply($0.baseAddress!, tileCount: 10) }
        let finite = features.allSatisfy { $0.isFinite }
        #expect(finite)
        #expect((0..<10).allSatisfy { features[$0 * 3 * d + 1] == 0 })
        #expect(FeatureNormalization.Accumulator(featureSize: d).normalization() == nil)
    }

    @Test("written as safetensors and read back unchanged; bad files are refused naming the problem")
    func fileRoundTripAndRefusals() throws {
        let d = 8
        var accumulator = FeatureNormalization.Accumulator(featureSize: d)
        let features = Self.features(tiles: 12, d: d, seed: 4)
        features.withUnsafeBufferPointer { accumulator.add($0, tileCount: 12) }
        let normalization = try #require(accumulator.normalization())
        let data = CheckpointWriter.safetensors(normalization.stateDict())
        let read = try FeatureNormalization(
            stateDict: Checkpoint.load(data, file: "norm.safetensors"), featureSize: d, file: "norm.safetensors")
        #expect(read == normalization)

        #expect {
            try FeatureNormalization(
                stateDict: Checkpoint.load(data, file: "norm.safetensors"), featureSize: 2 * d,
                file: "norm.safetensors")
        } throws: { ($0 as? CheckpointError)?.code == .wrongShape }

        var negative = StateDict()
        negative.set("mean", Tensor(shape: [3, d], values: normalization.mean))
        negative.set("std", Tensor(shape: [3, d], values: normalization.standardDeviation.map { -$0 }))
        #expect {
            try FeatureNormalization(stateDict: negative, featureSize: d, file: "norm.safetensors")
        } throws: { error in
            guard let error = error as? CheckpointError else { return false }
            return error.code == .corrupt && error.description.contains("norm.safetensors")
                && error.fix.contains("train")
        }
        var missing = StateDict()
        missing.set("mean", Tensor(shape: [3, d], values: normalization.mean))
        #expect {
            try FeatureNormalization(stateDict: missing, featureSize: d, file: "norm.safetensors")
        } throws: { ($0 as? CheckpointError)?.code == .missingTensor }
    }
}
