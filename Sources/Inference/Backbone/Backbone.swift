import CDNNL

/// One scale's network: on csmil's own kernels (fp32: OpenBLAS sgemm and Winograd) or on oneDNN's (bf16, and
/// fp32 where oneDNN's are faster, see `Precision.fp32Kernels`).
public enum Backbone: Sendable {
    case csmil(ResNet)
    case oneDNN(OneDNNResNet)

    /// What computes a backbone.
    public enum Kernels: String, Sendable, CaseIterable {
        /// csmil's own: OpenBLAS sgemm, Winograd F(4×4, 3×3); fp32 only.
        case csmil
        /// oneDNN's convolutions (Debian's libdnnl).
        case onednn
    }

    /// Builds a backbone from a `state_dict` (torchvision names) at `precision`, on `kernels` (default: the
    /// precision's kernels on this CPU, `Precision.defaultKernels`). `Precision.prepare(architecture:)` must have
    /// accepted this CPU first.
    public init(
        architecture: Architecture, weights: StateDict, precision: Precision, kernels: Kernels? = nil,
        file: String = "<memory>"
    ) throws(CheckpointError) {
        let kernels = kernels ?? precision.defaultKernels
        precondition(precision == .fp32 || kernels == .onednn, "bf16 runs on oneDNN's kernels only")
        switch kernels {
        case .csmil: self = .csmil(try ResNet(architecture: architecture, weights: weights, file: file))
        case .onednn:
            self = .oneDNN(
                try OneDNNResNet(architecture: architecture, weights: weights, precision: precision, file: file))
        }
    }

    public var architecture: Architecture {
        switch self {
        case .csmil(let network): network.architecture
        case .oneDNN(let network): network.architecture
        }
    }

    public var precision: Precision {
        switch self {
        case .csmil: .fp32
        case .oneDNN(let network): network.precision
        }
    }

    public var kernels: Kernels {
        switch self {
        case .csmil: .csmil
        case .oneDNN: .onednn
        }
    }

    /// D, the features per image.
    public var featureSize: Int { architecture.featureSize }

    /// Floating-point operations (2 × multiply-adds of a direct convolution) of one 256-px image.
    public var floatingPointOperations: Int {
        2 * ResNetLayout(architecture).multiplyAdds(side: Preprocessing.outputSide)
    }
}

extension Precision {
    /// Checks that this CPU runs the precision natively and builds oneDNN's kernels for `architecture` when they
    /// are the ones to run (kept for the process; later backbones reuse them). Call it before loading backbones:
    /// this is where csmil refuses bf16 on a CPU without AVX512_BF16 or AMX, with the reason.
    public func prepare(
        architecture: Architecture, kernels: Backbone.Kernels? = nil, subject: String = "[pipeline] precision"
    ) throws(PrecisionError) {
        try requireNative(subject: subject)
        if (kernels ?? defaultKernels) == .onednn {
            _ = try OneDNNPlan.plans(architecture, type: oneDNNType, largestBatch: Embedder.defaultPieceSize)
        }
    }
}

/// What one embedding thread owns: a normalised input batch of up to `capacity` images and the activation
/// memory of the backbone kind it runs (made on first use).
final class BackboneWorkspace {
    let capacity: Int
    let input: UnsafeMutablePointer<Float>
    private var fp32: (architecture: Architecture, workspace: ResNetWorkspace)?
    private var oneDNN: (plan: ObjectIdentifier, workspace: OneDNNWorkspace)?
    private static let plane = Preprocessing.outputSide * Preprocessing.outputSide * 3

    init(capacity: Int) {
        self.capacity = capacity
        input = .allocate(capacity: capacity * Self.plane)
        input.initialize(repeating: 0, count: capacity * Self.plane)
    }

    deinit { input.deallocate() }

    /// The normalised input of image `index` of the piece.
    func input(_ index: Int) -> UnsafeMutablePointer<Float> { input + index * Self.plane }

    /// Runs `backbone` on the first `count` images of the input, on this thread only; writes `count` × D floats.
    func run(_ backbone: Backbone, count: Int, into output: UnsafeMutablePointer<Float>) {
        precondition(count <= capacity)
        switch backbone {
        case .csmil(let network):
            if fp32?.architecture != network.architecture {
                fp32 = (
                    network.architecture,
                    ResNetWorkspace(architecture: network.architecture, batch: capacity, threads: 1)
                )
            }
            network.embed(input, count: count, into: output, workspace: fp32!.workspace)
        case .oneDNN(let network):
            // Backbones of one architecture share their plans, and so a workspace.
            let plan = ObjectIdentifier(network.plans[0])
            if oneDNN?.plan != plan {
                precondition(capacity <= network.largestBatch, "a piece larger than the oneDNN plans")
                oneDNN = (plan, OneDNNWorkspace(plans: Array(network.plans.prefix(capacity)), input: input))
            }
            network.embed(count: count, workspace: oneDNN!.workspace, into: output)
        }
    }
}
