/// Sets a backbone's BatchNorm statistics from data, layer by layer, as a network's BatchNorm would have learned
/// them on that data: for each convolution in forward order, the per-channel mean and variance of its output on
/// the calibration images (with every earlier layer already calibrated) become the layer's `running_mean` and
/// `running_var`, and its `weight`/`bias` become 1 and 0 (torchvision's initial values). Every layer then hands the
/// next one activations of mean 0 and variance 1 on such images.
///
/// For untrained, seeded backbones (the demo model): their drawn statistics do not match any real activations, so
/// features drift to a large offset shared by every tile, different per scale, and carry little of the image.
/// Deterministic for the same weights and images (up to OpenBLAS's summation order on another CPU).
public enum BatchNormCalibration {
    /// Returns `weights` with every BatchNorm calibrated on `images`: `count` normalised NHWC images (as
    /// `Preprocessing` makes them), run `batch` at a time.
    public static func calibrate(
        architecture: Architecture, weights: StateDict, images: UnsafePointer<Float>, count: Int, batch: Int = 8
    ) throws(CheckpointError) -> StateDict {
        precondition(count > 0 && batch > 0)
        let layout = ResNetLayout(architecture)
        let plane = Preprocessing.outputSide * Preprocessing.outputSide * 3
        let workspace = ResNetWorkspace(architecture: architecture, batch: min(batch, count), threads: 1)
        var calibrated = weights
        for (target, convolution) in layout.forwardOrder.enumerated() {
            let channels = convolution.outChannels
            func set(_ suffix: String, _ value: [Float]) {
                calibrated.set(convolution.normName + "." + suffix, Tensor(shape: [channels], values: value))
            }
            // Identity BatchNorm on this layer: its folded output is the raw convolution / √(1 + ε).
            set("running_mean", [Float](repeating: 0, count: channels))
            set("running_var", [Float](repeating: 1, count: channels))
            set("weight", [Float](repeating: 1, count: channels))
            set("bias", [Float](repeating: 0, count: channels))
            let network = try ResNet(architecture: architecture, weights: calibrated)
            var sums = [Double](repeating: 0, count: channels)
            var squares = [Double](repeating: 0, count: channels)
            var samples = 0
            var first = 0
            while first < count {
                let batchCount = min(workspace.batch, count - first)
                let (output, side, _) = network.convolutionOutput(
                    images + first * plane, count: batchCount, target: target, workspace: workspace)
                let pixels = batchCount * side * side
                for pixel in 0..<pixels {
                    let row = output + pixel * channels
                    for channel in 0..<channels {
                        let value = Double(row[channel])
                        sums[channel] += value
                        squares[channel] += value * value
                    }
                }
                samples += pixels
                first += batchCount
            }
            let epsilon = 1e-5
            var means = [Float](repeating: 0, count: channels)
            var variances = [Float](repeating: 1, count: channels)
            for channel in 0..<channels {
                let mean = sums[channel] / Double(samples)
                let variance = max(squares[channel] / Double(samples) - mean * mean, 0)
                // Undo the identity BatchNorm's 1/√(1 + ε) to get the raw convolution's statistics.
                means[channel] = Float(mean * (1 + epsilon).squareRoot())
                variances[channel] = Float(max(variance * (1 + epsilon), 1e-12))
            }
            set("running_mean", means)
            set("running_var", variances)
        }
        return calibrated
    }
}
