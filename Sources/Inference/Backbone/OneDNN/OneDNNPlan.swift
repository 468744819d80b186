import CDNNL
import Synchronization

/// The oneDNN primitives that run one ResNet architecture at one data type on batches of exactly `batch` images,
/// and which buffer each reads and writes. Primitives hold no weights, so one plan serves every backbone of its
/// shape (the three scales of a model) and every thread at once: each thread brings its own buffers, scratchpad
/// and stream (`OneDNNWorkspace`). Plans are made once per process and kept (`OneDNNPlan.plans`).
///
/// Buffers, all NHWC: the normalised f32 input; for bf16 it is first converted into `wide1`. The stem writes
/// `wide0`, max pooling `wide1`; then each block reads the wide buffer that holds its input, its inner
/// convolutions go through `narrow0` and `narrow1`, and its last convolution adds its result to the identity
/// (oneDNN's `sum` post-op), in place: into the block input itself, or into the other wide buffer where the
/// projection put the identity. So two wide buffers suffice, and bias, residual and ReLU are part of the
/// convolutions.
///
/// At fp32 the 3×3 stride-1 convolutions that add no residual (a bottleneck's middle one, a basic block's first) are
/// Winograd F(4×4,3×3) convolutions instead (oneDNN 2.6 offers no Winograd for these shapes): csmil's transforms
/// (`Winograd`) around one oneDNN batched matmul per chunk of tiles for the 36 products, in the same buffers.
///
/// `@unchecked Sendable`: immutable once made (C handles); oneDNN primitives may run on several threads at once,
/// each with its own memory objects and stream.
final class OneDNNPlan: @unchecked Sendable {
    enum Buffer: Int, CaseIterable {
        case input, wide0, wide1, narrow0, narrow1
    }

    /// One primitive and the buffers it reads and writes.
    struct Step {
        var primitive: dnnl_primitive_t
        /// The convolution's index in `ResNetLayout.forwardOrder`; nil for the conversion and the pooling.
        var convolution: Int?
        var source: Buffer
        var sourceDescriptor: dnnl_memory_desc_t
        var destination: Buffer
        var destinationDescriptor: dnnl_memory_desc_t
        /// oneDNN's name of the implementation it chose, e.g. "brgconv_1x1:avx512_core_bf16".
        var implementation: String
        /// A Winograd convolution's products (then `primitive` is the first's); nil for oneDNN's own steps.
        var winograd: WinogradProducts? = nil
    }

    /// The products of one Winograd convolution of this plan's batch: its tiles go in chunks of `chunk` (V and M
    /// of a chunk fill at most `winogradScratchFloats`), the last perhaps fewer; one matmul per chunk size.
    struct WinogradProducts {
        var chunk: Int
        var products: [Product]

        struct Product {
            /// The tiles of the chunk: the rows of V and M.
            var rows: Int
            var primitive: dnnl_primitive_t
            /// V, the input, at the start of the workspace's Winograd scratch.
            var source: dnnl_memory_desc_t
            /// M, the output, at `mOffset` floats into it.
            var destination: dnnl_memory_desc_t
        }

        /// Floats from the start of the scratch to M (after the largest V).
        var mOffset: Int { Winograd.positions * chunk * Int(products[0].source.dims.2) }

        /// The matmul for a chunk of `rows` tiles.
        func product(rows: Int) -> (index: Int, product: Product) {
            let index = products.firstIndex { $0.rows == rows }
            precondition(index != nil, "no Winograd product for \(rows) tiles")
            return (index!, products[index!])
        }
    }

    /// The floats of Winograd scratch (V and M of a chunk) each thread has: 8 MiB.
    static let winogradScratchFloats = 1 << 21

    let architecture: Architecture
    let type: dnnl_data_type_t
    let batch: Int
    let steps: [Step]
    /// The layout each convolution wants its weights in, in `ResNetLayout.forwardOrder`; for a Winograd one, the
    /// layout its matmul wants U in.
    let weightDescriptors: [dnnl_memory_desc_t]
    /// The buffer holding the last block's output, `batch` × side² × D of `type`.
    let output: Buffer
    /// The side of the last block's output (8 for 256-px inputs).
    let outputSide: Int
    /// Bytes each buffer needs.
    let bytes: [Buffer: Int]
    /// The largest scratchpad any step needs.
    let scratchpadBytes: Int

    /// Bytes per element of `type`.
    var elementSize: Int { type == dnnl_bf16 ? 2 : 4 }

    private init(architecture: Architecture, type: dnnl_data_type_t, batch: Int) throws(PrecisionError) {
        self.architecture = architecture
        self.type = type
        self.batch = batch
        let engine = OneDNN.engine
        let layout = ResNetLayout(architecture)
        var steps: [Step] = []
        var weights: [dnnl_memory_desc_t] = []
        var largest: [Buffer: Int] = [:]
        var scratchpad = 0
        func fail(_ what: String, _ status: dnnl_status_t) -> PrecisionError {
            PrecisionError(
                code: .onednn, subject: "oneDNN \(OneDNN.version)",
                message: "oneDNN cannot build \(what) of a \(architecture.rawValue) "
                    + "(\(type == dnnl_bf16 ? "bf16" : "fp32"), batch \(batch)): \(OneDNN.describe(status))",
                fix: "use precision = \"fp32\", or install Debian's libdnnl-dev 2.6 or later")
        }
        func note(_ buffer: Buffer, _ descriptor: dnnl_memory_desc_t) {
            var descriptor = descriptor
            largest[buffer] = max(largest[buffer] ?? 0, dnnl_memory_desc_get_size(&descriptor))
        }

        var input = dnnl_memory_desc_t()
        csmil_dnnl_activation(&input, dnnl_f32, Int32(batch), 3, Int32(Preprocessing.outputSide))
        note(.input, input)
        var current = (buffer: Buffer.input, descriptor: input)
        if type != dnnl_f32 {
            var converted = dnnl_memory_desc_t()
            csmil_dnnl_activation(&converted, type, Int32(batch), 3, Int32(Preprocessing.outputSide))
            var primitive: dnnl_primitive_t?
            var pad = 0
            let status = csmil_dnnl_reorder(engine, &input, &converted, &primitive, &pad)
            guard status == dnnl_success, let primitive else { throw fail("the input conversion", status) }
            scratchpad = max(scratchpad, pad)
            steps.append(
                Step(
                    primitive: primitive, convolution: nil, source: .input, sourceDescriptor: input,
                    destination: .wide1, destinationDescriptor: converted, implementation: "reorder"))
            note(.wide1, converted)
            current = (.wide1, converted)
        }

        func winograd(
            _ spec: ResNetLayout.Convolution, from source: (buffer: Buffer, descriptor: dnnl_memory_desc_t),
            into destination: Buffer
        ) throws(PrecisionError) -> (buffer: Buffer, descriptor: dnnl_memory_desc_t) {
            let side = Int(source.descriptor.dims.2)
            let tiles = batch * Winograd.tiles(side: side)
            let chunk = Winograd.chunk(
                totalTiles: tiles, inChannels: spec.inChannels, outChannels: spec.outChannels,
                scratchFloats: Self.winogradScratchFloats)
            var filter = dnnl_memory_desc_t()
            var products: [WinogradProducts.Product] = []
            var implementations: [String] = []
            for rows in tiles % chunk == 0 ? [chunk] : [chunk, tiles % chunk] {
                var primitive: dnnl_primitive_t?
                var v = dnnl_memory_desc_t()
                var m = dnnl_memory_desc_t()
                var implementation: UnsafePointer<CChar>?
                var pad = 0
                // The first chooses U's layout, the other takes it: one copy of the filter serves both.
                let status = csmil_dnnl_winograd_products(
                    engine, Int32(rows), Int32(spec.inChannels), Int32(spec.outChannels), products.isEmpty ? 0 : 1,
                    &filter, &primitive, &v, &m, &implementation, &pad)
                guard status == dnnl_success, let primitive else {
                    throw fail("the Winograd products of \(spec.convName)", status)
                }
                scratchpad = max(scratchpad, pad)
                products.append(.init(rows: rows, primitive: primitive, source: v, destination: m))
                implementations.append(implementation.map { String(cString: $0) } ?? "")
            }
            var output = dnnl_memory_desc_t()
            csmil_dnnl_activation(&output, type, Int32(batch), Int32(spec.outChannels), Int32(side))
            steps.append(
                Step(
                    primitive: products[0].primitive, convolution: weights.count, source: source.buffer,
                    sourceDescriptor: source.descriptor, destination: destination, destinationDescriptor: output,
                    implementation: "winograd_4x4_3x3+matmul:" + Set(implementations).sorted().joined(separator: "/"),
                    winograd: WinogradProducts(chunk: chunk, products: products)))
            weights.append(filter)
            note(destination, output)
            return (destination, output)
        }

        func convolution(
            _ spec: ResNetLayout.Convolution, from source: (buffer: Buffer, descriptor: dnnl_memory_desc_t),
            into destination: Buffer, sum: Bool, relu: Bool
        ) throws(PrecisionError) -> (buffer: Buffer, descriptor: dnnl_memory_desc_t) {
            if Self.runsWinograd(spec, type: type, sum: sum, relu: relu, side: Int(source.descriptor.dims.2)) {
                return try winograd(spec, from: source, into: destination)
            }
            var sourceDescriptor = source.descriptor
            var primitive: dnnl_primitive_t?
            var weightDescriptor = dnnl_memory_desc_t()
            var destinationDescriptor = dnnl_memory_desc_t()
            var implementation: UnsafePointer<CChar>?
            var pad = 0
            let status = csmil_dnnl_convolution(
                engine, type, &sourceDescriptor, Int32(spec.inChannels), Int32(spec.outChannels),
                Int32(spec.kernel), Int32(spec.stride), Int32(spec.padding), sum ? 1 : 0, relu ? 1 : 0, &primitive,
                &weightDescriptor, &destinationDescriptor, &implementation, &pad)
            guard status == dnnl_success, let primitive else { throw fail("convolution \(spec.convName)", status) }
            scratchpad = max(scratchpad, pad)
            steps.append(
                Step(
                    primitive: primitive, convolution: weights.count, source: source.buffer,
                    sourceDescriptor: sourceDescriptor, destination: destination,
                    destinationDescriptor: destinationDescriptor,
                    implementation: implementation.map { String(cString: $0) } ?? ""))
            weights.append(weightDescriptor)
            note(destination, destinationDescriptor)
            return (destination, destinationDescriptor)
        }

        // Stem: convolution 7×7/2 + ReLU into wide0, max pooling 3×3/2 into wide1.
        let stem = try convolution(layout.stem, from: current, into: .wide0, sum: false, relu: true)
        do {
            var source = stem.descriptor
            var primitive: dnnl_primitive_t?
            var pooled = dnnl_memory_desc_t()
            var implementation: UnsafePointer<CChar>?
            var pad = 0
            let status = csmil_dnnl_max_pool(engine, &source, &primitive, &pooled, &implementation, &pad)
            guard status == dnnl_success, let primitive else { throw fail("the max pooling", status) }
            scratchpad = max(scratchpad, pad)
            steps.append(
                Step(
                    primitive: primitive, convolution: nil, source: .wide0, sourceDescriptor: source,
                    destination: .wide1, destinationDescriptor: pooled,
                    implementation: implementation.map { String(cString: $0) } ?? ""))
            note(.wide1, pooled)
            current = (.wide1, pooled)
        }
        for block in layout.blocks {
            let x = current
            var identity = x.buffer
            if let downsample = block.downsample {
                identity = x.buffer == .wide0 ? .wide1 : .wide0
                _ = try convolution(downsample, from: x, into: identity, sum: false, relu: false)
            }
            var previous = x
            for (position, spec) in block.convolutions.enumerated() {
                let last = position == block.convolutions.count - 1
                previous = try convolution(
                    spec, from: previous, into: last ? identity : (position % 2 == 0 ? .narrow0 : .narrow1),
                    sum: last, relu: true)
            }
            current = previous
        }
        self.steps = steps
        weightDescriptors = weights
        output = current.buffer
        outputSide = Int(current.descriptor.dims.2)
        bytes = largest
        scratchpadBytes = scratchpad
    }

    /// Whether a convolution runs as Winograd F(4×4,3×3): at f32, 3×3 stride 1 with ReLU and no residual (those
    /// stay oneDNN's, which adds the residual in place), on images of at least 16×16. On the last stage's 8×8 (from
    /// 256-px tiles) four tiles per image leave the products too small to pay for a filter 4 × the size (measured:
    /// 2.6 against 3.0 ms per image and convolution for 57 MB more per ResNet-50).
    static func runsWinograd(
        _ spec: ResNetLayout.Convolution, type: dnnl_data_type_t, sum: Bool, relu: Bool, side: Int
    ) -> Bool {
        type == dnnl_f32 && spec.kernel == 3 && spec.stride == 1 && spec.padding == 1 && !sum && relu && side >= 16
    }

    /// The plans for batches of 1…`largestBatch` images (index = batch − 1), made on first use and kept for the
    /// life of the process (a handful of shapes; each holds JIT-compiled kernels).
    static func plans(
        _ architecture: Architecture, type: dnnl_data_type_t, largestBatch: Int
    ) throws(PrecisionError) -> [OneDNNPlan] {
        try cache.withLock { (cache) throws(PrecisionError) -> [OneDNNPlan] in
            var plans: [OneDNNPlan] = []
            for batch in 1...largestBatch {
                let key = Key(architecture: architecture, type: type.rawValue, batch: batch)
                if let plan = cache[key] {
                    plans.append(plan)
                    continue
                }
                // The kernels are chosen for the thread count of the thread that makes them: one, as they run.
                OneDNN.setThreadCount(1)
                let plan = try OneDNNPlan(architecture: architecture, type: type, batch: batch)
                cache[key] = plan
                plans.append(plan)
            }
            return plans
        }
    }

    private struct Key: Hashable {
        var architecture: Architecture
        var type: UInt32
        var batch: Int
    }

    private static let cache = Mutex<[Key: OneDNNPlan]>([:])
}
