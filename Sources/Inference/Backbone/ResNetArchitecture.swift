/// The shape of a torchvision ResNet (v1.5: the stride of a bottleneck sits on its 3×3
/// convolution), as a list of convolutions in `state_dict` order. Everything that depends only
/// on the architecture — expected tensor names and shapes, layer strides — is derived here.
struct ResNetLayout: Sendable {
    /// One convolution followed by BatchNorm: `<conv>.weight` and `<bn>.{weight,bias,running_mean,running_var}`.
    struct Convolution: Sendable {
        var convName: String
        var normName: String
        var inChannels: Int
        var outChannels: Int
        var kernel: Int
        var stride: Int
        var padding: Int
    }

    /// A residual block: two (basic) or three (bottleneck) convolutions and an optional projection.
    struct Block: Sendable {
        var convolutions: [Convolution]
        var downsample: Convolution?
    }

    var stem: Convolution
    var blocks: [Block]
    var featureSize: Int

    /// Every convolution in forward order: the stem, then each block's projection (if any) and its convolutions.
    var forwardOrder: [Convolution] {
        [stem] + blocks.flatMap { ($0.downsample.map { [$0] } ?? []) + $0.convolutions }
    }

    init(_ architecture: Architecture) {
        let bottleneck = architecture == .resnet50
        let depths =
            switch architecture {
            case .resnet18: [2, 2, 2, 2]
            case .resnet34, .resnet50: [3, 4, 6, 3]
            }
        stem = Convolution(
            convName: "conv1", normName: "bn1", inChannels: 3, outChannels: 64, kernel: 7, stride: 2, padding: 3)
        let expansion = bottleneck ? 4 : 1
        var inplanes = 64
        var blocks: [Block] = []
        for (stage, depth) in depths.enumerated() {
            let planes = 64 << stage
            for index in 0..<depth {
                let stride = (stage > 0 && index == 0) ? 2 : 1
                let prefix = "layer\(stage + 1).\(index)."
                func conv(_ number: Int, _ input: Int, _ output: Int, _ kernel: Int, _ stride: Int) -> Convolution {
                    Convolution(
                        convName: prefix + "conv\(number)", normName: prefix + "bn\(number)", inChannels: input,
                        outChannels: output, kernel: kernel, stride: stride, padding: kernel / 2)
                }
                var convolutions: [Convolution]
                if bottleneck {
                    convolutions = [
                        conv(1, inplanes, planes, 1, 1), conv(2, planes, planes, 3, stride),
                        conv(3, planes, planes * expansion, 1, 1),
                    ]
                } else {
                    convolutions = [conv(1, inplanes, planes, 3, stride), conv(2, planes, planes, 3, 1)]
                }
                var downsample: Convolution?
                if stride != 1 || inplanes != planes * expansion {
                    downsample = Convolution(
                        convName: prefix + "downsample.0", normName: prefix + "downsample.1", inChannels: inplanes,
                        outChannels: planes * expansion, kernel: 1, stride: stride, padding: 0)
                }
                blocks.append(Block(convolutions: convolutions, downsample: downsample))
                inplanes = planes * expansion
            }
        }
        self.blocks = blocks
        featureSize = inplanes
    }

    /// Every convolution in `state_dict` order (stem, then each block's convolutions, then its projection).
    var convolutions: [Convolution] {
        [stem] + blocks.flatMap { $0.convolutions + ($0.downsample.map { [$0] } ?? []) }
    }

    /// Multiply-adds of one forward pass on a `side`×`side` image, counted as a direct
    /// convolution would do them (the usual way to state a network's cost).
    func multiplyAdds(side: Int) -> Int {
        var total = 0
        var current = side
        func visit(_ conv: Convolution, _ input: Int) -> Int {
            let out = (input + 2 * conv.padding - conv.kernel) / conv.stride + 1
            total += out * out * conv.outChannels * conv.inChannels * conv.kernel * conv.kernel
            return out
        }
        current = (visit(stem, current) + 2 - 3) / 2 + 1
        for block in blocks {
            if let downsample = block.downsample { _ = visit(downsample, current) }
            var blockSide = current
            for conv in block.convolutions { blockSide = visit(conv, blockSide) }
            current = blockSide
        }
        return total
    }

    /// The float tensors a backbone checkpoint must hold, in torchvision's `state_dict` order
    /// (without `num_batches_tracked` and `fc.*`, which csmil does not use).
    var expectedTensors: [(name: String, shape: [Int])] {
        convolutions.flatMap { conv in
            [(conv.convName + ".weight", [conv.outChannels, conv.inChannels, conv.kernel, conv.kernel])]
                + ["weight", "bias", "running_mean", "running_var"].map {
                    (conv.normName + "." + $0, [conv.outChannels])
                }
        }
    }
}
