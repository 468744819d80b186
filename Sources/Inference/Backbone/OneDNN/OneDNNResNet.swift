import CDNNL

/// A torchvision ResNet-18/34/50 backbone (v1.5, `fc` removed) on oneDNN's convolutions: BatchNorm folded as in
/// `ResNet` (in double precision, then f32), then the folded weights converted once to the precision's type in the
/// layout oneDNN's kernels want. bf16: activations bf16, accumulation f32 inside oneDNN, biases f32. fp32 (on
/// CPUs where oneDNN's f32 convolutions beat csmil's own, see `Precision.fp32Kernels`): everything f32, and the 3×3
/// stride-1 convolutions without a residual are Winograd F(4×4,3×3) ones (`OneDNNPlan`): their filters transformed
/// once (`Winograd.transformWeights`, in double precision) and converted to the layout the plan's matmuls want.
/// Global average pooling is f32, here. Runs on `OneDNNPlan`s (primitives shared by every backbone of the architecture) with
/// one `OneDNNWorkspace` per thread. Immutable once built, so one network serves every thread.
///
/// `@unchecked Sendable`: immutable once built (C handles to the converted weights, read-only).
public final class OneDNNResNet: @unchecked Sendable {
    public let architecture: Architecture
    public let precision: Precision
    /// Plans for 1…`largestBatch` images.
    let plans: [OneDNNPlan]
    /// Converted weights, one per distinct layout (`weightIndex` says which a plan's convolution takes).
    private let weights: [dnnl_memory_t]
    /// [plan][convolution] → index into `weights`: most layouts do not depend on the batch, some do.
    private let weightIndex: [[Int]]
    /// f32 biases, one per convolution.
    private let biases: [dnnl_memory_t]
    /// The biases of the Winograd convolutions (csmil's output transform adds them); nil for the others.
    private let winogradBiases: [[Float]?]

    /// D: the length of the feature vector of one image.
    public var featureSize: Int { architecture.featureSize }

    /// The most images one `embed` call takes.
    public var largestBatch: Int { plans.count }

    /// Builds the network from a backbone `state_dict` (torchvision names). For bf16, `Precision.prepare` must have
    /// accepted this CPU (it refuses one without AVX512_BF16 or AMX, with the reason).
    public init(
        architecture: Architecture, weights dict: StateDict, precision: Precision,
        largestBatch: Int = Embedder.defaultPieceSize, file: String = "<memory>"
    ) throws(CheckpointError) {
        let layout = ResNetLayout(architecture)
        try Checkpoint.check(dict, expected: layout.expectedTensors, file: file)
        precondition(
            precision.unsupportedReason == nil, "bf16 on a CPU without it: call Precision.prepare first, it refuses")
        let plans: [OneDNNPlan]
        do {
            plans = try OneDNNPlan.plans(architecture, type: precision.oneDNNType, largestBatch: largestBatch)
        } catch {
            // f32 always builds, bf16 on every CPU `Precision.prepare` accepts.
            preconditionFailure("\(error)")
        }
        self.architecture = architecture
        self.precision = precision
        self.plans = plans
        let engine = OneDNN.engine
        var stream: dnnl_stream_t?
        OneDNN.check(csmil_dnnl_stream(&stream, engine), "creating a stream")
        defer { dnnl_stream_destroy(stream) }

        var weights: [dnnl_memory_t] = []
        var layouts: [dnnl_memory_desc_t] = []
        var weightIndex = [[Int]](repeating: [], count: plans.count)
        var biases: [dnnl_memory_t] = []
        var winogradBiases: [[Float]?] = []
        // Every plan makes the same convolutions Winograd ones (the choice depends on the shape, not the batch).
        let winogradConvolutions = Set(plans[0].steps.compactMap { $0.winograd == nil ? nil : $0.convolution })
        for (index, spec) in layout.forwardOrder.enumerated() {
            let folded = ResNet.fold(spec, weights: dict, winograd: false)
            let isWinograd = winogradConvolutions.contains(index)
            winogradBiases.append(isWinograd ? folded.bias : nil)
            let filter =
                isWinograd
                ? Winograd.transformWeights(folded.weights, outChannels: spec.outChannels, inChannels: spec.inChannels)
                : folded.weights
            var bias = dnnl_memory_desc_t()
            csmil_dnnl_vector(&bias, Int32(spec.outChannels), 0)
            var biasMemory: dnnl_memory_t?
            OneDNN.check(csmil_dnnl_allocated_memory(&biasMemory, &bias, engine), "allocating a bias")
            var handle: UnsafeMutableRawPointer?
            dnnl_memory_get_data_handle(biasMemory, &handle)
            folded.bias.withUnsafeBytes { handle!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            biases.append(biasMemory!)

            var source = dnnl_memory_desc_t()
            if isWinograd {
                csmil_dnnl_winograd_filter(&source, Int32(spec.inChannels), Int32(spec.outChannels))
            } else {
                csmil_dnnl_folded_weights(
                    &source, Int32(spec.inChannels), Int32(spec.outChannels), Int32(spec.kernel))
            }
            let first = layouts.count
            for (planIndex, plan) in plans.enumerated() {
                var wanted = plan.weightDescriptors[index]
                if let known = (first..<layouts.count).first(where: {
                    dnnl_memory_desc_equal(&layouts[$0], &wanted) != 0
                }) {
                    weightIndex[planIndex].append(known)
                    continue
                }
                var converted: dnnl_memory_t?
                OneDNN.check(
                    csmil_dnnl_allocated_memory(&converted, &wanted, engine), "allocating weights")
                var reorder: dnnl_primitive_t?
                var pad = 0
                OneDNN.check(
                    csmil_dnnl_reorder(engine, &source, &wanted, &reorder, &pad), "converting \(spec.convName)")
                defer { dnnl_primitive_destroy(reorder) }
                let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(pad, 64), alignment: 64)
                defer { scratch.deallocate() }
                var scratchDescriptor = dnnl_memory_desc_t()
                csmil_dnnl_vector(&scratchDescriptor, Int32(max(pad, 64)), 1)
                var scratchMemory: dnnl_memory_t?
                var sourceMemory: dnnl_memory_t?
                OneDNN.check(dnnl_memory_create(&scratchMemory, &scratchDescriptor, engine, scratch), "scratchpad")
                defer { dnnl_memory_destroy(scratchMemory) }
                filter.withUnsafeBytes { raw in
                    OneDNN.check(
                        dnnl_memory_create(
                            &sourceMemory, &source, engine, UnsafeMutableRawPointer(mutating: raw.baseAddress!)),
                        "wrapping weights")
                    OneDNN.check(
                        csmil_dnnl_run(reorder, stream, sourceMemory, converted, scratchMemory),
                        "converting \(spec.convName)")
                    dnnl_memory_destroy(sourceMemory)
                }
                weightIndex[planIndex].append(layouts.count)
                layouts.append(wanted)
                weights.append(converted!)
            }
        }
        self.weights = weights
        self.weightIndex = weightIndex
        self.biases = biases
        self.winogradBiases = winogradBiases
    }

    deinit {
        for memory in weights + biases { dnnl_memory_destroy(memory) }
    }

    /// Embeds `count` normalised images (NHWC f32, 256×256×3 each), which must already be in the workspace's
    /// input buffer, into `count` × D f32 features at `output`. Runs on the calling thread only.
    func embed(count: Int, workspace: OneDNNWorkspace, into output: UnsafeMutablePointer<Float>) {
        precondition(count >= 1 && count <= plans.count && count <= workspace.largestBatch, "batch too large")
        OneDNN.setThreadCount(1)
        let planIndex = count - 1
        let plan = plans[planIndex]
        let memories = workspace.memories[planIndex]
        let scratchpad = workspace.scratchpad
        for (index, step) in plan.steps.enumerated() {
            let (source, destination) = memories[index]
            if let winograd = step.winograd, let convolution = step.convolution, let bias = winogradBiases[convolution]
            {
                let filter = weights[weightIndex[planIndex][convolution]]
                let products = workspace.products[planIndex][index]
                bias.withUnsafeBufferPointer { bias in
                    Winograd.convolve(
                        input: UnsafePointer(workspace.buffer(step.source).assumingMemoryBound(to: Float.self)),
                        batch: count, side: Int(step.sourceDescriptor.dims.2),
                        inChannels: Int(step.sourceDescriptor.dims.1),
                        outChannels: Int(step.destinationDescriptor.dims.1), bias: bias.baseAddress!, residual: nil,
                        relu: true, output: workspace.buffer(step.destination).assumingMemoryBound(to: Float.self),
                        scratch: workspace.winogradScratch, zeros: workspace.winogradZeros,
                        edges: workspace.winogradEdges, threads: 1
                    ) { rows, _, _ in
                        let (which, product) = winograd.product(rows: rows)
                        OneDNN.check(
                            csmil_dnnl_run_matmul(
                                product.primitive, workspace.stream, products[which].v, filter, products[which].m,
                                scratchpad), "running the Winograd products of step \(index)")
                    }
                }
            } else if let convolution = step.convolution {
                OneDNN.check(
                    csmil_dnnl_run_convolution(
                        step.primitive, workspace.stream, source, weights[weightIndex[planIndex][convolution]],
                        biases[convolution], destination, scratchpad), "running step \(index)")
            } else {
                OneDNN.check(
                    csmil_dnnl_run(step.primitive, workspace.stream, source, destination, scratchpad),
                    "running step \(index)")
            }
        }
        // Global average pooling in f32 over the last block's output.
        let d = featureSize
        let pixels = plan.outputSide * plan.outputSide
        let scale = 1 / Float(pixels)
        let last = workspace.buffer(plan.output)
        for image in 0..<count {
            let destination = output + image * d
            destination.update(repeating: 0, count: d)
            if precision == .bf16 {
                let bf16 = UnsafePointer(last.assumingMemoryBound(to: UInt16.self))
                for pixel in 0..<pixels {
                    let source = bf16 + (image * pixels + pixel) * d
                    for c in 0..<d { destination[c] += Float(bitPattern: UInt32(source[c]) << 16) }
                }
            } else {
                let f32 = UnsafePointer(last.assumingMemoryBound(to: Float.self))
                for pixel in 0..<pixels {
                    let source = f32 + (image * pixels + pixel) * d
                    for c in 0..<d { destination[c] += source[c] }
                }
            }
            for c in 0..<d { destination[c] *= scale }
        }
    }

    /// The implementations oneDNN chose for the largest batch, e.g. ["reorder", "brgconv:avx512_core_bf16", …].
    public var implementations: [String] { plans.last?.steps.map(\.implementation) ?? [] }
}

/// What one thread needs to run `OneDNNResNet`s of one architecture on up to `largestBatch` images: its buffers
/// (sized for the largest plan; smaller batches use their beginnings), a scratchpad, a stream, and a memory object
/// for every step's source and destination in every plan. The input buffer is the caller's (the normalised images).
/// Plans with Winograd convolutions (fp32) add the Winograd scratch (`OneDNNPlan.winogradScratchFloats`, V and M of
/// a chunk of tiles), the zeros standing in for padding and the outputs of tiles crossing an edge: 8 MiB + 136 KiB.
final class OneDNNWorkspace {
    let largestBatch: Int
    let stream: dnnl_stream_t
    let scratchpad: dnnl_memory_t
    private let scratchpadBuffer: UnsafeMutableRawPointer
    private let buffers: [OneDNNPlan.Buffer: UnsafeMutableRawPointer]
    /// [plan][step] → (source, destination).
    let memories: [[(dnnl_memory_t, dnnl_memory_t)]]
    /// [plan][step][product] → V and M of a Winograd step's matmuls, in `winogradScratch`; empty for other steps.
    let products: [[[(v: dnnl_memory_t, m: dnnl_memory_t)]]]
    let winogradScratch: UnsafeMutableBufferPointer<Float>
    let winogradZeros: UnsafeMutablePointer<Float>
    let winogradEdges: UnsafeMutablePointer<Float>
    /// More channels than any ResNet convolution has (2,048 at most).
    static let widestChannels = 2048

    init(plans: [OneDNNPlan], input: UnsafeMutablePointer<Float>) {
        largestBatch = plans.count
        let engine = OneDNN.engine
        var stream: dnnl_stream_t?
        OneDNN.check(csmil_dnnl_stream(&stream, engine), "creating a stream")
        self.stream = stream!
        var buffers: [OneDNNPlan.Buffer: UnsafeMutableRawPointer] = [.input: UnsafeMutableRawPointer(input)]
        for buffer in OneDNNPlan.Buffer.allCases where buffer != .input {
            let bytes = plans.map { $0.bytes[buffer] ?? 0 }.max() ?? 0
            let memory = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
            memory.initializeMemory(as: UInt8.self, repeating: 0, count: max(bytes, 64))
            buffers[buffer] = memory
        }
        self.buffers = buffers
        let scratchBytes = max(plans.map(\.scratchpadBytes).max() ?? 0, 64)
        scratchpadBuffer = .allocate(byteCount: scratchBytes, alignment: 64)
        var scratchDescriptor = dnnl_memory_desc_t()
        csmil_dnnl_vector(&scratchDescriptor, Int32(scratchBytes), 1)
        var scratchpad: dnnl_memory_t?
        OneDNN.check(dnnl_memory_create(&scratchpad, &scratchDescriptor, engine, scratchpadBuffer), "scratchpad")
        self.scratchpad = scratchpad!
        let winograd = Self.hasWinograd(plans)
        let widest = winograd ? Self.widestChannels : 1
        let winogradScratch = UnsafeMutableBufferPointer<Float>.allocate(
            capacity: winograd ? OneDNNPlan.winogradScratchFloats : 1)
        self.winogradScratch = winogradScratch
        winogradZeros = .allocate(capacity: widest)
        winogradZeros.initialize(repeating: 0, count: widest)
        winogradEdges = .allocate(capacity: Winograd.block * Winograd.block * widest)
        winogradEdges.initialize(repeating: 0, count: Winograd.block * Winograd.block * widest)
        products = plans.map { plan in
            plan.steps.map { step in
                guard let winograd = step.winograd else { return [] }
                return winograd.products.map { product in
                    var v = product.source
                    var m = product.destination
                    var vMemory: dnnl_memory_t?
                    var mMemory: dnnl_memory_t?
                    OneDNN.check(dnnl_memory_create(&vMemory, &v, engine, winogradScratch.baseAddress!), "memory")
                    OneDNN.check(
                        dnnl_memory_create(&mMemory, &m, engine, winogradScratch.baseAddress! + winograd.mOffset),
                        "memory")
                    return (vMemory!, mMemory!)
                }
            }
        }
        memories = plans.map { plan in
            plan.steps.map { step in
                var source = step.sourceDescriptor
                var destination = step.destinationDescriptor
                var sourceMemory: dnnl_memory_t?
                var destinationMemory: dnnl_memory_t?
                OneDNN.check(dnnl_memory_create(&sourceMemory, &source, engine, buffers[step.source]!), "memory")
                OneDNN.check(
                    dnnl_memory_create(&destinationMemory, &destination, engine, buffers[step.destination]!), "memory")
                return (sourceMemory!, destinationMemory!)
            }
        }
    }

    deinit {
        for (v, m) in products.joined().joined() {
            dnnl_memory_destroy(v)
            dnnl_memory_destroy(m)
        }
        winogradScratch.deallocate()
        winogradZeros.deallocate()
        winogradEdges.deallocate()
        for steps in memories {
            for (source, destination) in steps {
                dnnl_memory_destroy(source)
                dnnl_memory_destroy(destination)
            }
        }
        dnnl_memory_destroy(scratchpad)
        dnnl_stream_destroy(stream)
        scratchpadBuffer.deallocate()
        for (buffer, memory) in buffers where buffer != .input { memory.deallocate() }
    }

    func buffer(_ buffer: OneDNNPlan.Buffer) -> UnsafeMutableRawPointer { buffers[buffer]! }

    /// Bytes this workspace allocated (its buffers and scratchpad; not the input, not oneDNN's own).
    static func bytes(plans: [OneDNNPlan]) -> Int {
        let winograd =
            hasWinograd(plans)
            ? (OneDNNPlan.winogradScratchFloats + (1 + Winograd.block * Winograd.block) * widestChannels) * 4 : 0
        return OneDNNPlan.Buffer.allCases.filter { $0 != .input }.reduce(
            (plans.map(\.scratchpadBytes).max() ?? 0) + winograd
        ) { total, buffer in total + (plans.map { $0.bytes[buffer] ?? 0 }.max() ?? 0) }
    }

    private static func hasWinograd(_ plans: [OneDNNPlan]) -> Bool {
        plans.contains { $0.steps.contains { $0.winograd != nil } }
    }
}

extension Precision {
    /// The oneDNN data type of activations and weights.
    var oneDNNType: dnnl_data_type_t { self == .bf16 ? dnnl_bf16 : dnnl_f32 }
}
