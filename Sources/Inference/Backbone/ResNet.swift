import COpenBLAS

/// A torchvision ResNet-18/34/50 backbone (v1.5, `fc` removed), inference only, on OpenBLAS.
///
/// Layout and fusion choices, all made here:
/// - Activations are NHWC (batch, row, column, channel), so a 1×1 stride-1 convolution is one
///   GEMM on the activation matrix as it lies in memory, and im2col copies contiguous
///   channel runs.
/// - BatchNorm is folded into each convolution at load (`w' = w·γ/√(σ²+ε)`,
///   `b' = β − μ·γ/√(σ²+ε)`, computed in double precision); convolution weights are stored
///   [Cout][kh][kw][Cin] to match the im2col column order.
/// - Bias, residual and ReLU are one pass over each GEMM's output (for Winograd layers they are
///   part of the output transform). Nothing is allocated per batch: all buffers live in a
///   `ResNetWorkspace`.
public struct ResNet: Sendable {
    /// One convolution with its BatchNorm folded in.
    struct FoldedConvolution: Sendable {
        var spec: ResNetLayout.Convolution
        /// [Cout][kh][kw][Cin]; empty for Winograd layers.
        var weights: [Float]
        /// [Cout]
        var bias: [Float]
        /// For 3×3 stride-1 convolutions: the Winograd-transformed weights U[16][Cout][Cin].
        var winograd: [Float]?

        var reduction: Int { spec.kernel * spec.kernel * spec.inChannels }

        func outputSide(_ side: Int) -> Int { (side + 2 * spec.padding - spec.kernel) / spec.stride + 1 }
    }

    struct Block: Sendable {
        var convolutions: [FoldedConvolution]
        var downsample: FoldedConvolution?
    }

    public let architecture: Architecture
    let stem: FoldedConvolution
    let blocks: [Block]

    /// Floating-point operations (2 × multiply-adds of a direct convolution) of one image.
    public func floatingPointOperations(side: Int = Preprocessing.outputSide) -> Int {
        2 * ResNetLayout(architecture).multiplyAdds(side: side)
    }

    /// D: the length of the feature vector of one image.
    public var featureSize: Int { architecture.featureSize }

    /// Builds the network from a backbone `state_dict` (torchvision names, as
    /// `Checkpoint.loadBackbone` returns them). Every tensor is checked for presence and shape.
    public init(architecture: Architecture, weights: StateDict, file: String = "<memory>") throws(CheckpointError) {
        let layout = ResNetLayout(architecture)
        try Checkpoint.check(weights, expected: layout.expectedTensors, file: file)
        func fold(_ spec: ResNetLayout.Convolution) -> FoldedConvolution {
            Self.fold(spec, weights: weights)
        }
        self.architecture = architecture
        stem = fold(layout.stem)
        blocks = layout.blocks.map {
            Block(convolutions: $0.convolutions.map(fold), downsample: $0.downsample.map(fold))
        }
    }

    /// Folds BatchNorm into a convolution and reorders its weights to [Cout][kh][kw][Cin]; with `winograd`, a 3×3
    /// stride-1 convolution keeps only its Winograd-transformed weights.
    static func fold(
        _ spec: ResNetLayout.Convolution, weights dict: StateDict, winograd useWinograd: Bool = true
    ) -> FoldedConvolution {
        // Presence and shapes were checked by `Checkpoint.check`.
        let weight = dict[spec.convName + ".weight"]!.values
        let gamma = dict[spec.normName + ".weight"]!.values
        let beta = dict[spec.normName + ".bias"]!.values
        let mean = dict[spec.normName + ".running_mean"]!.values
        let variance = dict[spec.normName + ".running_var"]!.values
        let (cout, cin, k) = (spec.outChannels, spec.inChannels, spec.kernel)
        var folded = [Float](repeating: 0, count: weight.count)
        var bias = [Float](repeating: 0, count: cout)
        for o in 0..<cout {
            let scale = Double(gamma[o]) / (Double(variance[o]) + 1e-5).squareRoot()
            bias[o] = Float(Double(beta[o]) - Double(mean[o]) * scale)
            for i in 0..<cin {
                for ky in 0..<k {
                    for kx in 0..<k {
                        let source = ((o * cin + i) * k + ky) * k + kx
                        folded[((o * k + ky) * k + kx) * cin + i] = Float(Double(weight[source]) * scale)
                    }
                }
            }
        }
        let winograd =
            useWinograd && k == 3 && spec.stride == 1
            ? Winograd.transformWeights(folded, outChannels: cout, inChannels: cin) : nil
        // A Winograd layer keeps only its transformed weights.
        return FoldedConvolution(spec: spec, weights: winograd == nil ? folded : [], bias: bias, winograd: winograd)
    }

    /// Embeds `count` normalised images (NHWC, `side`×`side`×3 each, as `Preprocessing`
    /// makes them) into `count` × D features at `output`. `count` must not exceed the
    /// workspace's batch size.
    public func embed(
        _ input: UnsafePointer<Float>, count: Int, side: Int = Preprocessing.outputSide,
        into output: UnsafeMutablePointer<Float>, workspace: ResNetWorkspace
    ) {
        precondition(count <= workspace.batch && side == workspace.side, "workspace too small for this batch")
        let last = forward(input, count: count, side: side, stoppingAt: nil, workspace: workspace)
        Self.averagePool(last.output, count, last.side, featureSize, into: output)
    }

    /// The output of convolution number `target` in forward order (the stem is 0, then each block's projection, if
    /// it has one, and its convolutions), with its folded BatchNorm but before its residual and ReLU, for `count`
    /// images: NHWC, `side`² × `channels` per image, in one of the workspace's buffers (valid until the next call).
    /// For `BatchNormCalibration`.
    func convolutionOutput(
        _ input: UnsafePointer<Float>, count: Int, side inputSide: Int = Preprocessing.outputSide, target: Int,
        workspace: ResNetWorkspace
    ) -> (output: UnsafePointer<Float>, side: Int, channels: Int) {
        precondition(count <= workspace.batch && inputSide == workspace.side, "workspace too small for this batch")
        return forward(input, count: count, side: inputSide, stoppingAt: target, workspace: workspace)
    }

    /// The network up to its last block's output (`target` nil), or up to convolution number `target` (see
    /// `convolutionOutput`), which is then left without its residual and ReLU.
    private func forward(
        _ input: UnsafePointer<Float>, count: Int, side inputSide: Int, stoppingAt target: Int?,
        workspace: ResNetWorkspace
    ) -> (output: UnsafePointer<Float>, side: Int, channels: Int) {
        let wide = workspace.wide
        let narrow = workspace.narrow
        // Stem: conv 7×7/2 + ReLU into wide 0, max-pool 3×3/2 into wide 1.
        let stemOnly = target == 0
        var side = convolve(stem, input, count, inputSide, wide[0], residual: nil, relu: !stemOnly, workspace)
        if stemOnly { return (UnsafePointer(wide[0]), side, stem.spec.outChannels) }
        side = Self.maxPool(wide[0], count, side, stem.spec.outChannels, into: wide[1], threads: workspace.threads)
        var index = 1
        var current = 1
        var channels = stem.spec.outChannels
        for block in blocks {
            // The block reads wide[current]; the projection (if any) and the output take the other two.
            let (projection, next) = ((current + 1) % 3, (current + 2) % 3)
            let x = UnsafePointer(wide[current])
            var identity = x
            if let downsample = block.downsample {
                let outSide = convolve(
                    downsample, x, count, side, wide[projection], residual: nil, relu: false, workspace)
                if index == target { return (UnsafePointer(wide[projection]), outSide, downsample.spec.outChannels) }
                index += 1
                identity = UnsafePointer(wide[projection])
            }
            var previous = x
            var blockSide = side
            for (position, conv) in block.convolutions.enumerated() {
                let last = position == block.convolutions.count - 1
                let destination = last ? wide[next] : narrow[position % 2]
                let stop = index == target
                blockSide = convolve(
                    conv, previous, count, blockSide, destination, residual: last && !stop ? identity : nil,
                    relu: !stop, workspace)
                if stop { return (UnsafePointer(destination), blockSide, conv.spec.outChannels) }
                previous = UnsafePointer(destination)
                channels = conv.spec.outChannels
                index += 1
            }
            side = blockSide
            current = next
        }
        precondition(target == nil, "convolution \(target!) does not exist")
        return (UnsafePointer(wide[current]), side, channels)
    }

    /// One folded convolution over an NHWC batch; returns the output side.
    private func convolve(
        _ conv: FoldedConvolution, _ input: UnsafePointer<Float>, _ batch: Int, _ side: Int,
        _ output: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>?, relu: Bool,
        _ workspace: ResNetWorkspace
    ) -> Int {
        let columns = workspace.columns
        let outSide = conv.outputSide(side)
        if let u = conv.winograd {
            u.withUnsafeBufferPointer { u in
                conv.bias.withUnsafeBufferPointer { bias in
                    Winograd.convolve(
                        input: input, batch: batch, side: side, inChannels: conv.spec.inChannels,
                        outChannels: conv.spec.outChannels, u: u.baseAddress!, bias: bias.baseAddress!,
                        residual: residual, relu: relu, output: output, scratch: columns,
                        zeros: workspace.zeros, edges: workspace.edges, threads: workspace.threads)
                }
            }
            return outSide
        }
        let rows = batch * outSide * outSide
        let n = conv.spec.outChannels
        let k = conv.reduction
        conv.weights.withUnsafeBufferPointer { weights in
            if conv.spec.kernel == 1 && conv.spec.stride == 1 {
                Self.gemm(rows, n, k, input, weights.baseAddress!, output)
            } else {
                let chunk = max(1, columns.count / k)
                var start = 0
                while start < rows {
                    let count = min(chunk, rows - start)
                    Parallel.ranges(count, threads: workspace.threads) { part in
                        Self.im2col(
                            conv.spec, input, side, outSide,
                            rows: (start + part.lowerBound)..<(start + part.upperBound),
                            into: columns.baseAddress! + part.lowerBound * k)
                    }
                    Self.gemm(count, n, k, columns.baseAddress!, weights.baseAddress!, output + start * n)
                    start += count
                }
            }
        }
        // One pass adds the bias and the residual and applies ReLU.
        conv.bias.withUnsafeBufferPointer { bias in
            Self.epilogue(
                output, rows: rows, channels: n, bias: bias.baseAddress!, residual: residual, relu: relu,
                threads: workspace.threads)
        }
        return outSide
    }

    /// `output[row][c] = max(output[row][c] + bias[c] + residual[row][c], 0 if relu)`, split across cores.
    static func epilogue(
        _ output: UnsafeMutablePointer<Float>, rows: Int, channels n: Int, bias: UnsafePointer<Float>,
        residual: UnsafePointer<Float>?, relu: Bool, threads: Int
    ) {
        let floor: Float = relu ? 0 : -.infinity
        Parallel.ranges(rows, threads: threads) { range in
            for row in range {
                let out = output + row * n
                if let residual {
                    let add = residual + row * n
                    for c in 0..<n { out[c] = max(out[c] + bias[c] + add[c], floor) }
                } else {
                    for c in 0..<n { out[c] = max(out[c] + bias[c], floor) }
                }
            }
        }
    }

    /// C[m×n] = A[m×k] · W[n×k]ᵀ (row-major), `cblas_sgemm`.
    @inline(__always)
    private static func gemm(
        _ m: Int, _ n: Int, _ k: Int, _ a: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
        _ c: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), w, Int32(k), 0, c,
            Int32(n))
    }

    /// Gathers the receptive fields of output rows `rows` into a [rows][kh][kw][Cin] matrix;
    /// positions in the zero padding are zero.
    private static func im2col(
        _ spec: ResNetLayout.Convolution, _ input: UnsafePointer<Float>, _ side: Int, _ outSide: Int,
        rows: Range<Int>, into columns: UnsafeMutablePointer<Float>
    ) {
        let (k, stride, padding, cin) = (spec.kernel, spec.stride, spec.padding, spec.inChannels)
        let plane = outSide * outSide
        var destination = columns
        for row in rows {
            let image = row / plane
            let y = (row % plane) / outSide
            let x = row % outSide
            let base = input + image * side * side * cin
            let x0 = x * stride - padding
            // Columns kx whose pixel lies inside the image: one contiguous run of NHWC memory.
            let first = max(0, -x0)
            let last = min(k, side - x0)
            for ky in 0..<k {
                let iy = y * stride - padding + ky
                if iy < 0 || iy >= side || first >= last {
                    destination.update(repeating: 0, count: k * cin)
                } else {
                    if first > 0 { destination.update(repeating: 0, count: first * cin) }
                    (destination + first * cin).update(
                        from: base + (iy * side + x0 + first) * cin, count: (last - first) * cin)
                    if last < k { (destination + last * cin).update(repeating: 0, count: (k - last) * cin) }
                }
                destination += k * cin
            }
        }
    }

    /// 3×3 stride-2 max pooling with padding 1 (padding never wins); returns the output side.
    private static func maxPool(
        _ input: UnsafePointer<Float>, _ batch: Int, _ side: Int, _ channels: Int,
        into output: UnsafeMutablePointer<Float>, threads: Int
    ) -> Int {
        let outSide = (side + 2 - 3) / 2 + 1
        Parallel.ranges(batch * outSide, threads: threads, minimumPerWorker: 1) { range in
            for row in range {
                let image = row / outSide
                let y = row % outSide
                let source = input + image * side * side * channels
                let destination = output + image * outSide * outSide * channels
                for x in 0..<outSide {
                    let out = destination + (y * outSide + x) * channels
                    out.update(repeating: -.infinity, count: channels)
                    for iy in max(0, 2 * y - 1)...min(side - 1, 2 * y + 1) {
                        for ix in max(0, 2 * x - 1)...min(side - 1, 2 * x + 1) {
                            let pixel = source + (iy * side + ix) * channels
                            for c in 0..<channels { out[c] = max(out[c], pixel[c]) }
                        }
                    }
                }
            }
        }
        return outSide
    }

    /// Global average pooling: [batch][side²][channels] → [batch][channels].
    private static func averagePool(
        _ input: UnsafePointer<Float>, _ batch: Int, _ side: Int, _ channels: Int,
        into output: UnsafeMutablePointer<Float>
    ) {
        let pixels = side * side
        for image in 0..<batch {
            let destination = output + image * channels
            destination.update(repeating: 0, count: channels)
            for pixel in 0..<pixels {
                let source = input + (image * pixels + pixel) * channels
                for c in 0..<channels { destination[c] += source[c] }
            }
            let scale = 1 / Float(pixels)
            for c in 0..<channels { destination[c] *= scale }
        }
    }
}

/// The memory one thread needs to run a `ResNet` on batches of up to `batch` images: three
/// "wide" activation buffers for block inputs, outputs and projections, two "narrow" ones for
/// the intermediate convolutions inside a block (a bottleneck's are a quarter as wide), and an
/// im2col/Winograd buffer of at most `columnBudget` floats. Allocated once, reused every batch.
public final class ResNetWorkspace {
    public let batch: Int
    public let side: Int
    /// How many threads the memory-bound passes (im2col, Winograd transforms, epilogues) use.
    /// GEMMs use OpenBLAS's threads regardless.
    public let threads: Int
    let wide: [UnsafeMutablePointer<Float>]
    let narrow: [UnsafeMutablePointer<Float>]
    /// im2col matrices, or Winograd's V and M matrices.
    let columns: UnsafeMutableBufferPointer<Float>
    /// Zeros standing in for the padding in Winograd input tiles.
    let zeros: UnsafeMutablePointer<Float>
    /// Winograd outputs of tiles that cross an odd image edge.
    let edges: UnsafeMutablePointer<Float>

    /// The im2col / Winograd buffer is at most this many floats (16 MiB); larger GEMMs run in
    /// chunks of rows or tiles (measured: no slower than one chunk per layer).
    static let columnBudget = 1 << 22

    public init(
        architecture: Architecture, batch: Int, side: Int = Preprocessing.outputSide, threads: Int = Parallel.workers
    ) {
        precondition(batch > 0 && side >= 32 && threads > 0)
        self.batch = batch
        self.side = side
        self.threads = threads
        let layout = ResNetLayout(architecture)
        var wideSize = 0
        var narrowSize = 0
        var largestColumns = 0
        var widest = 0
        var current = side
        func visit(_ conv: ResNetLayout.Convolution, input: Int, intermediate: Bool = false) -> Int {
            let out = (input + 2 * conv.padding - conv.kernel) / conv.stride + 1
            if intermediate {
                narrowSize = max(narrowSize, batch * out * out * conv.outChannels)
            } else {
                wideSize = max(wideSize, batch * out * out * conv.outChannels)
            }
            if conv.kernel == 3 && conv.stride == 1 {
                let tiles = batch * Winograd.tiles(side: out)
                let perTile = Winograd.scratchPerTile(inChannels: conv.inChannels, outChannels: conv.outChannels)
                largestColumns = max(largestColumns, min(tiles * perTile, max(Self.columnBudget, perTile)))
            } else if conv.kernel != 1 || conv.stride != 1 {
                let k = conv.kernel * conv.kernel * conv.inChannels
                largestColumns = max(largestColumns, min(batch * out * out * k, max(Self.columnBudget, k)))
            }
            widest = max(widest, conv.inChannels, conv.outChannels)
            return out
        }
        current = visit(layout.stem, input: current)
        current = (current + 2 - 3) / 2 + 1
        wideSize = max(wideSize, batch * current * current * layout.stem.outChannels)
        for block in layout.blocks {
            if let downsample = block.downsample { _ = visit(downsample, input: current) }
            var blockSide = current
            for (index, conv) in block.convolutions.enumerated() {
                blockSide = visit(conv, input: blockSide, intermediate: index < block.convolutions.count - 1)
            }
            current = blockSide
        }
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
            buffer.initialize(repeating: 0, count: count)
            return buffer
        }
        wide = (0..<3).map { _ in buffer(wideSize) }
        narrow = (0..<2).map { _ in buffer(narrowSize) }
        columns = .allocate(capacity: max(largestColumns, 1))
        columns.initialize(repeating: 0)
        zeros = .allocate(capacity: widest)
        zeros.initialize(repeating: 0, count: widest)
        edges = .allocate(capacity: Winograd.block * Winograd.block * widest)
        edges.initialize(repeating: 0, count: Winograd.block * Winograd.block * widest)
    }

    deinit {
        for buffer in wide + narrow { buffer.deallocate() }
        columns.deallocate()
        zeros.deallocate()
        edges.deallocate()
    }
}
