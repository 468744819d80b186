import COpenBLAS

/// The OpenBLAS runtime behind every GEMM: which build, which kernels, how many threads.
public enum BLASRuntime {
    /// The build configuration (`openblas_get_config`), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64".
    public static var configuration: String { String(cString: csmil_openblas_config()) }

    /// The kernel set chosen for this CPU (`openblas_get_corename`), e.g. "Haswell".
    /// `OPENBLAS_CORETYPE` in the environment overrides OpenBLAS's own detection.
    public static var coreName: String { String(cString: csmil_openblas_corename()) }

    /// The number of threads OpenBLAS uses for one call (`openblas_get_num_threads`).
    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// The number of processors OpenBLAS detected (`openblas_get_num_procs`).
    public static var processorCount: Int { Int(openblas_get_num_procs()) }

    /// Sets the number of threads for subsequent calls (`openblas_set_num_threads`).
    public static func setThreadCount(_ count: Int) {
        openblas_set_num_threads(Int32(clamping: max(1, count)))
    }

    /// Runs `body` with OpenBLAS limited to `count` threads, then restores the previous count.
    /// The setting is process-wide: a GEMM started meanwhile on another thread also uses
    /// `count` threads (slower, never wrong).
    public static func withThreadCount<Result>(_ count: Int, _ body: () throws -> Result) rethrows -> Result {
        let previous = threadCount
        guard previous != count else { return try body() }
        setThreadCount(count)
        defer { setThreadCount(previous) }
        return try body()
    }
}
