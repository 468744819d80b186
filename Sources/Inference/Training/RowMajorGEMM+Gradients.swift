import COpenBLAS

extension RowMajorGEMM {
    /// `C = Aᵀ · B` through `cblas_sgemm`, every matrix row-major: `A` is `inner × rows`, `B` is
    /// `inner × columns`, `C` is `rows × columns` (contiguous rows). It is the weight gradient of a
    /// layer `Y = X · Wᵀ`: `∂W = (∂Y)ᵀ · X`, summed over the `inner` rows of a batch.
    static func multiplyLeftTransposed(
        _ a: UnsafePointer<Float>, rows: Int, _ b: UnsafePointer<Float>, columns: Int, inner: Int,
        into c: UnsafeMutablePointer<Float>
    ) {
        guard rows > 0, columns > 0 else { return }
        guard inner > 0 else {
            c.update(repeating: 0, count: rows * columns)
            return
        }
        cblas_sgemm(
            CblasRowMajor, CblasTrans, CblasNoTrans,
            blasint(rows), blasint(columns), blasint(inner),
            1, a, blasint(rows), b, blasint(columns),
            0, c, blasint(columns))
    }
}
