import Testing

@testable import Inference

@Suite("BatchNorm calibration")
struct BatchNormCalibrationTests {
    @Test(
        "after calibration every convolution's output on the calibration images has mean 0 and variance 1 per channel")
    func layersAreNormalised() throws {
        let count = 4
        let plane = Preprocessing.outputSide * Preprocessing.outputSide * 3
        let pixels = SeededWeights.images(count: count, size: 256, seed: 3)
        var images = [Float](repeating: 0, count: count * plane)
        images.withUnsafeMutableBufferPointer { output in
            pixels.withUnsafeBufferPointer { rgb in
                for index in 0..<count {
                    Preprocessing.normalise(
                        rgb: rgb.baseAddress! + index * 256 * 256 * 3, side: 256,
                        into: output.baseAddress! + index * plane)
                }
            }
        }
        let seeded = SeededWeights.resnet(.resnet18, seed: 1)
        let calibrated = try images.withUnsafeBufferPointer {
            try BatchNormCalibration.calibrate(
                architecture: .resnet18, weights: seeded, images: $0.baseAddress!, count: count, batch: 4)
        }
        let network = try ResNet(architecture: .resnet18, weights: calibrated)
        let workspace = ResNetWorkspace(architecture: .resnet18, batch: count, threads: 1)
        let layout = ResNetLayout(.resnet18)
        var worstMean = 0.0
        var worstVariance = 0.0
        for target in layout.forwardOrder.indices {
            let (output, side, channels) = images.withUnsafeBufferPointer {
                network.convolutionOutput($0.baseAddress!, count: count, target: target, workspace: workspace)
            }
            let samples = count * side * side
            for channel in 0..<channels {
                var sum = 0.0
                var squares = 0.0
                for pixel in 0..<samples {
                    let value = Double(output[pixel * channels + channel])
                    sum += value
                    squares += value * value
                }
                let mean = sum / Double(samples)
                let variance = squares / Double(samples) - mean * mean
                worstMean = max(worstMean, abs(mean))
                if variance > 1e-6 { worstVariance = max(worstVariance, abs(variance - 1)) }
            }
        }
        print("calibrated ResNet-18: max |mean| \(worstMean), max |variance − 1| \(worstVariance)")
        #expect(worstMean < 1e-3)
        #expect(worstVariance < 1e-2)
        #expect(calibrated["layer4.1.bn2.weight"]?.values.allSatisfy { $0 == 1 } == true)

        // Uncalibrated, the seeded statistics are far from the data.
        let plain = try ResNet(architecture: .resnet18, weights: seeded)
        let (output, side, channels) = images.withUnsafeBufferPointer {
            plain.convolutionOutput(
                $0.baseAddress!, count: count, target: layout.forwardOrder.count - 1, workspace: workspace)
        }
        var sum = 0.0
        for index in 0..<(count * side * side * channels) { sum += abs(Double(output[index])) }
        #expect(sum / Double(count * side * side * channels) > 0.1)
    }
}
