import CDNNL

/// The oneDNN library csmil's bf16 backbones run on (Debian's libdnnl, the library PyTorch and ONNX Runtime use
/// for CPU convolutions): its version, the instruction set it dispatches to, and the one CPU engine every
/// primitive is made for.
public enum OneDNN {
    /// "major.minor.patch" of the loaded library.
    public static let version: String = {
        var (major, minor, patch): (Int32, Int32, Int32) = (0, 0, 0)
        csmil_dnnl_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }()

    /// The instruction set oneDNN's kernels use on this CPU (`dnnl_get_effective_cpu_isa`): the CPU's best, or
    /// less when `DNNL_MAX_CPU_ISA` in the environment caps it.
    public static var instructionSet: InstructionSet { InstructionSet(dnnl_get_effective_cpu_isa()) }

    /// oneDNN's view of the CPU, as far as csmil cares.
    public struct InstructionSet: Sendable, Equatable {
        let raw: dnnl_cpu_isa_t

        init(_ raw: dnnl_cpu_isa_t) { self.raw = raw }

        /// AVX512_BF16 or AMX: bf16 dot products in hardware.
        public var hasNativeBF16: Bool {
            let bf16 = dnnl_cpu_isa_avx512_core_bf16.rawValue
            let amx = dnnl_cpu_isa_avx512_core_amx.rawValue
            return raw.rawValue & bf16 == bf16 || raw.rawValue & amx == amx
        }

        /// AVX-512 (F, CD, BW, DQ, VL: oneDNN's avx512_core) or better.
        public var hasAVX512: Bool {
            let avx512 = dnnl_cpu_isa_avx512_core.rawValue
            return raw.rawValue & avx512 == avx512
        }

        /// oneDNN's name of it, e.g. "avx512_core_bf16".
        public var name: String {
            switch raw {
            case dnnl_cpu_isa_avx512_core_amx: "avx512_core_amx"
            case dnnl_cpu_isa_avx512_core_bf16: "avx512_core_bf16"
            case dnnl_cpu_isa_avx512_core_vnni: "avx512_core_vnni"
            case dnnl_cpu_isa_avx512_core: "avx512_core"
            case dnnl_cpu_isa_avx2_vnni: "avx2_vnni"
            case dnnl_cpu_isa_avx2: "avx2"
            case dnnl_cpu_isa_avx: "avx"
            case dnnl_cpu_isa_sse41: "sse41"
            default: "isa 0x\(String(raw.rawValue, radix: 16))"
            }
        }
    }

    /// The CPU engine (engines are thread-safe; one serves every primitive and memory object).
    nonisolated(unsafe) static let engine: dnnl_engine_t = {
        var engine: dnnl_engine_t?
        check(dnnl_engine_create(&engine, dnnl_cpu, 0), "creating the CPU engine")
        return engine!
    }()

    /// Limits the oneDNN primitives the calling thread runs to `count` OpenMP threads. csmil runs each primitive
    /// on one thread and splits the work across threads itself (see `Embedder`).
    static func setThreadCount(_ count: Int) {
        _ = csmil_dnnl_set_thread_count(Int32(clamping: count))
    }

    /// Stops with a message when a oneDNN call made after the network was built fails: every shape and layout
    /// was accepted when the primitives were created, so a failure here is a bug, not bad input.
    static func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) {
        precondition(status == dnnl_success, "oneDNN failed \(what()): \(describe(status))")
    }

    /// The name of a oneDNN status.
    static func describe(_ status: dnnl_status_t) -> String {
        switch status {
        case dnnl_success: "success"
        case dnnl_out_of_memory: "out of memory"
        case dnnl_invalid_arguments: "invalid arguments"
        case dnnl_unimplemented: "no implementation for these shapes and types on this CPU"
        case dnnl_runtime_error: "runtime error"
        default: "status \(status.rawValue)"
        }
    }
}
