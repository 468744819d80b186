import COpenBLAS

/// The one matrix product k-means and the CS-MIL heads need, through `cblas_sgemm` (and
/// `cblas_dgemm` for the heads' small layers):
/// `C = A · Bᵀ (+ C when accumulating)`, every matrix row-major with an explicit row stride.
///
/// `A` is `rows × inner` (rows `strideA` floats apart), `B` is `columns × inner` (rows `strideB`
/// apart, i.e. a PyTorch `Linear`/1×1 `Conv2d` weight as stored), `C` is `rows × columns`
/// (rows `strideC` apart). Blocking: OpenBLAS threads the call itself, so callers run it on their
/// own thread, never on Swift's cooperative pool.
enum RowMajorGEMM {
    static func multiplyTransposed(
        _ a: UnsafePointer<Float>, rows: Int, strideA: Int,
        _ b: UnsafePointer<Float>, columns: Int, strideB: Int, inner: Int,
        into c: UnsafeMutablePointer<Float>, strideC: Int, accumulate: Bool = false
    ) {
        guard rows > 0, columns > 0 else { return }
        guard inner > 0 else {
            if !accumulate {
                for i in 0..<rows { (c + i * strideC).update(repeating: 0, count: columns) }
            }
            return
        }
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans,
            blasint(rows), blasint(columns), blasint(inner),
            1, a, blasint(strideA), b, blasint(strideB),
            accumulate ? 1 : 0, c, blasint(strideC))
    }

    /// The same product in double precision (`cblas_dgemm`).
    static func multiplyTransposed(
        _ a: UnsafePointer<Double>, rows: Int, strideA: Int,
        _ b: UnsafePointer<Double>, columns: Int, strideB: Int, inner: Int,
        into c: UnsafeMutablePointer<Double>, strideC: Int
    ) {
        guard rows > 0, columns > 0 else { return }
        guard inner > 0 else {
            for i in 0..<rows { (c + i * strideC).update(repeating: 0, count: columns) }
            return
        }
        cblas_dgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans,
            blasint(rows), blasint(columns), blasint(inner),
            1, a, blasint(strideA), b, blasint(strideB),
            0, c, blasint(strideC))
    }
}
