/// Backbone weights that every machine computes identically from a seed, without downloading
/// anything: for parity tests against PyTorch (tools/make_resnet_fixtures.py builds the same
/// weights in NumPy), for `csmil bench embed`, and for the demo model.
///
/// The generator is counter-based SplitMix64: the i-th 64-bit output (i = 0, 1, …) of stream
/// `seed` is `mix(seed &+ (i + 1) &* 0x9E3779B97F4A7C15)` with
/// `mix(z) = z' ^ (z' >> 31)`, `z' = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9`, then
/// `(… ^ (… >> 27)) &* 0x94D049BB133111EB` — the standard SplitMix64 finaliser. A uniform float
/// in [0, 1) is `Float(output >> 40) / 2^24`, exact in float32.
///
/// Tensors are filled in `state_dict` order from one running counter, each element as a float32
/// expression of its uniform `u` (all arithmetic in float32, in this order):
/// - convolution weight: `(2u − 1) · sqrt(6 / fan_in)` (He-uniform, fan_in = Cin·k·k)
/// - BatchNorm weight: `u + 0.5`; bias: `(2u − 1) · 0.1`; running_mean: `(2u − 1) · 0.1`;
///   running_var: `u + 0.5`
public enum SeededWeights {
    /// The `index`-th 64-bit output of the SplitMix64 stream `seed`.
    @inline(__always)
    public static func splitMix64(seed: UInt64, index: UInt64) -> UInt64 {
        SplitMix64.output(seed: seed, index: index)
    }

    /// The `index`-th uniform float in [0, 1) of stream `seed`.
    @inline(__always)
    public static func uniform(seed: UInt64, index: UInt64) -> Float {
        Float(splitMix64(seed: seed, index: index) >> 40) * (1.0 / 16_777_216.0)
    }

    /// A complete backbone `state_dict` (torchvision names, without `fc.*` and
    /// `num_batches_tracked`) for `architecture`, deterministic in `seed`.
    public static func resnet(_ architecture: Architecture, seed: UInt64) -> StateDict {
        var dict = StateDict()
        var counter: UInt64 = 0
        for (name, shape) in ResNetLayout(architecture).expectedTensors {
            let count = shape.reduce(1, *)
            var values = [Float](repeating: 0, count: count)
            let suffix = name.split(separator: ".").last ?? ""
            let isConvolution = shape.count == 4
            let bound = isConvolution ? Float((6.0 / Double(shape[1] * shape[2] * shape[3])).squareRoot()) : 0
            for i in 0..<count {
                let u = uniform(seed: seed, index: counter + UInt64(i))
                let value: Float
                if isConvolution {
                    value = (2 * u - 1) * bound
                } else {
                    switch suffix {
                    case "weight", "running_var": value = u + 0.5
                    default: value = (2 * u - 1) * 0.1
                    }
                }
                values[i] = value
            }
            counter += UInt64(count)
            dict.set(name, Tensor(shape: shape, values: values))
        }
        return dict
    }

    /// A CS-MIL head `state_dict` (spec §4 names and shapes) for D = `featureSize`, uniform in
    /// ±2/√fan_in from `SeededGenerator(seed:)`, so attention and scale weights vary between
    /// instances. For tests and benchmarks; trained heads come from `csmil train`.
    public static func head(featureSize d: Int, seed: UInt64) -> StateDict {
        let layers: [(name: String, out: Int, in: Int, convolution: Bool)] = [
            ("embedding_net.0", 64, d, true), ("res_attention.0", 32, 64, true), ("res_attention.2", 1, 32, true),
            ("attention.0", 32, 64, false), ("attention.2", 1, 32, false), ("fc6.0", 32, 64, false),
            ("fc6.3", 1, 32, false),
        ]
        var generator = SeededGenerator(seed: seed)
        var dict = StateDict()
        for layer in layers {
            let bound = 2 / Double(layer.in).squareRoot()
            func values(_ count: Int) -> [Float] {
                (0..<count).map { _ in Float((2 * generator.nextUniform() - 1) * bound) }
            }
            let shape = layer.convolution ? [layer.out, layer.in, 1, 1] : [layer.out, layer.in]
            dict.set(layer.name + ".weight", Tensor(shape: shape, values: values(layer.out * layer.in)))
            dict.set(layer.name + ".bias", Tensor(shape: [layer.out], values: values(layer.out)))
        }
        return dict
    }

    /// `count` RGB images of `size`×`size` u8 pixels (HWC, interleaved), deterministic in `seed`:
    /// byte j is the top 8 bits of output j of stream `seed`.
    public static func images(count: Int, size: Int, seed: UInt64) -> [UInt8] {
        (0..<(count * size * size * 3)).map {
            UInt8(truncatingIfNeeded: splitMix64(seed: seed, index: UInt64($0)) >> 56)
        }
    }
}
