import Errors

/// The number format the backbones compute in (`[pipeline] precision`). Clustering and the heads always run in
/// fp32.
public enum Precision: String, Sendable, CaseIterable, CustomStringConvertible {
    /// float32: the published numbers and the parity reference (features equal PyTorch's within 8e-7 of the
    /// largest), on csmil's own kernels (OpenBLAS sgemm, Winograd) or oneDNN's, whichever is faster on the CPU
    /// class (`fp32Kernels`).
    case fp32
    /// bfloat16 weights and activations through oneDNN's convolutions (f32 accumulation, as oneDNN does it), on
    /// CPUs with AVX512_BF16 or AMX. About twice fp32's speed; features within about 1 % of the largest. Slide
    /// probabilities are not held within 0.005 of fp32's: on seeded toy slides they moved by up to 0.03 (trained
    /// demo heads) and 0.05 (random heads), mostly because the per-slide k-means lands in another of its
    /// near-equal optima and the bags are drawn anew (docs/precision.md, "Fidelity of bf16"). Check a model on its
    /// own slides before using bf16.
    case bf16

    public var description: String { rawValue }

    /// Why this CPU cannot run the precision natively, or nil when it can. bf16 needs the instructions oneDNN's
    /// bf16 kernels use (AVX512_BF16, or AMX on Sapphire Rapids and later); without them oneDNN would emulate
    /// bf16 at a fraction of fp32's speed, which csmil refuses instead of running slowly.
    public var unsupportedReason: String? {
        switch self {
        case .fp32:
            return nil
        case .bf16:
            let isa = OneDNN.instructionSet
            guard isa.hasNativeBF16 else {
                return "this CPU (oneDNN dispatches to \(isa.name)) has neither AVX512_BF16 nor AMX, so bf16 "
                    + "would be emulated, slower than fp32"
            }
            return nil
        }
    }

    /// The precisions this CPU runs natively, fp32 first.
    public static var native: [Precision] { allCases.filter { $0.unsupportedReason == nil } }

    /// The kernels that run this precision on this CPU: bf16 always oneDNN's; fp32 `fp32Kernels`.
    public var defaultKernels: Backbone.Kernels { self == .bf16 ? .onednn : Self.fp32Kernels }

    /// The fp32 kernels for this CPU class, whichever measured faster there (docs/precision.md); both give
    /// PyTorch's features within 8e-7 of the largest (ResNetTests, PrecisionTests):
    /// - AVX-512 (Skylake-SP and later, AMD Zen 4 and later): oneDNN's (with csmil's Winograd transforms around
    ///   oneDNN's matmul for the 3×3 stride-1 convolutions, `OneDNNPlan`), about 30 % faster per core than
    ///   csmil's Winograd on OpenBLAS;
    /// - AVX2 and older: csmil's own, as fast as or faster than oneDNN's there.
    public static var fp32Kernels: Backbone.Kernels { OneDNN.instructionSet.hasAVX512 ? .onednn : .csmil }

    /// What computes the backbones at this precision with `kernels` (default: this CPU's), e.g.
    /// "csmil (OpenBLAS sgemm, Winograd F(4×4,3×3))", "oneDNN 2.6.3 avx512_core_bf16, Winograd F(4×4,3×3) on its
    /// matmul" (fp32) or "oneDNN 2.6.3 avx512_core_bf16" (bf16).
    public func kernelsDescription(_ kernels: Backbone.Kernels? = nil) -> String {
        switch kernels ?? defaultKernels {
        case .csmil: "csmil (OpenBLAS sgemm, Winograd F(4×4,3×3))"
        case .onednn:
            self == .fp32
                ? "oneDNN \(OneDNN.version) \(OneDNN.instructionSet.name), Winograd F(4×4,3×3) on its matmul"
                : "oneDNN \(OneDNN.version) \(OneDNN.instructionSet.name)"
        }
    }

    /// Throws when this CPU cannot run the precision natively; `subject` names where it was asked for.
    public func requireNative(subject: String = "[pipeline] precision") throws(PrecisionError) {
        guard let reason = unsupportedReason else { return }
        throw PrecisionError(
            code: .unsupported, subject: subject + " = \"\(rawValue)\"", message: reason,
            fix: "use precision = \"fp32\" on this machine (csmil doctor lists the precisions it runs natively), "
                + "or run csmil on a CPU with AVX512_BF16 (AMD Zen 4 and later) or AMX (Intel Sapphire Rapids "
                + "and later)")
    }
}

/// A precision this CPU cannot run, or a backbone oneDNN could not build at that precision.
public struct PrecisionError: CSMILError, Sendable, Equatable {
    public enum Code: String, ErrorCode {
        /// The CPU lacks the instructions the precision needs natively (bf16: AVX512_BF16 or AMX).
        case unsupported = "pipeline.precision_unsupported"
        /// oneDNN refused to build a primitive of the network.
        case onednn = "pipeline.onednn"

        /// Always: the precision is a setting, and retrying on the same CPU cannot help.
        public var needsConfigurationChange: Bool { true }
    }

    public var code: Code
    /// Where the precision was asked for: "[pipeline] precision" or "--precision".
    public var subject: String
    public var message: String
    public var fix: String

    public init(code: Code, subject: String, message: String, fix: String) {
        self.code = code
        self.subject = subject
        self.message = message
        self.fix = fix
    }
}
